"""Error texts keep what Microsoft support asks for: AADSTS codes, Trace and Correlation IDs,
request ids; a long text is cut at a word, never mid-identifier (issue 14 item 7)."""

from __future__ import annotations

import re

import aiohttp

from batch_rotate.graph.auth import _describe_failure, error_text
from batch_rotate.graph.client import _describe_transport
from batch_rotate.graph.endpoints import Credentials

TRACE = "6a1f2b3c-4d5e-6f70-8192-a3b4c5d6e7f8"
CORRELATION = "11111111-2222-3333-4444-555555555555"
DESCRIPTION = (
    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request "
    "is the client secret value, not the client secret ID, for a secret added to app "
    "'0b1f6d2e-1111-2222-3333-444455556666'. "
    + "The identity platform explains at length. " * 20
    + f"\r\nTrace ID: {TRACE}\r\nCorrelation ID: {CORRELATION}\r\nTimestamp: 2024-05-01 10:11:12Z"
)


def _words_whole(shown: str, original: str) -> None:
    words = set(original.split())
    for word in shown.replace("(", " ").replace(")", " ").replace(";", " ").split():
        assert word in words or word == "…" or word in original, f"{word!r} was cut"


def test_a_long_identity_error_keeps_every_identifier_and_whole_words() -> None:
    shown = error_text(DESCRIPTION, limit=200)
    assert "\n" not in shown and "\r" not in shown
    assert "AADSTS7000215" in shown
    assert f"Trace ID: {TRACE}" in shown
    assert f"Correlation ID: {CORRELATION}" in shown
    assert "Timestamp: 2024-05-01 10:11:12Z" in shown
    _words_whole(shown, DESCRIPTION)
    assert len(shown) < len(DESCRIPTION)


def test_a_short_text_is_only_put_on_one_line() -> None:
    assert error_text("first\n  second ") == "first second"


def test_sign_in_failure_names_the_trace_and_correlation_ids() -> None:
    creds = Credentials("tenant-1", "client-1", "secret", None, None)
    result = {"error": "invalid_client", "error_description": DESCRIPTION}
    text = _describe_failure(result, creds)
    assert "AADSTS7000215" in text and TRACE in text and CORRELATION in text
    # ids MSAL gives beside a description that lacks them are added
    bare = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.",
        "trace_id": TRACE,
        "correlation_id": CORRELATION,
    }
    text = _describe_failure(bare, creds)
    assert TRACE in text and CORRELATION in text


def test_transport_errors_are_not_cut_at_a_fixed_length() -> None:
    request_id = "0f9e8d7c-6b5a-4321-8765-43210fedcba9"
    message = "x " * 150 + f"server said request-id: {request_id}"
    text = _describe_transport(aiohttp.ClientPayloadError(message), "https://graph.test/beta/x")
    assert request_id in text
    assert re.search(r"request-id: " + request_id, text)
