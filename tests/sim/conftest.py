"""Fixtures for the simulator's own tests (`sim` and `make_sim` live in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _plain_requests_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """Here MSAL is called directly with verify=; these variables would override it."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
