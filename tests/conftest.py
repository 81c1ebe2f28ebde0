"""Shared fixtures: the simulated tenant on 127.0.0.1 over TLS, and the real CLI against it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from batch_rotate.cli import app
from batch_rotate.graph.endpoints import Cloud, Endpoints
from batch_rotate.settings import Credentials, Settings
from batch_rotate.sim import SimConfig, SimTenant

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "inputs" / "sample-devices.csv"
AZURE_VARS = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "SSL_CERT_FILE",
)
# Sign-in and Graph both honour these now: a developer's proxy must not carry the tests' traffic.
PROXY_VARS = tuple(
    name
    for base in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
    for name in (base, base.lower())
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a developer's real tenant settings."""
    for name in (*AZURE_VARS, *PROXY_VARS):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _session_run_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module- and session-scoped fixtures start before any test's own index: a shared one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BATCH_ROTATE_STATE_DIR", str(tmp_path_factory.mktemp("session-state")))
        yield


@pytest.fixture(autouse=True)
def _own_run_index(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test may read or write the developer's run index (batch_rotate/runindex.py)."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("BATCH_ROTATE_STATE_DIR", str(state))
    return state


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., SimTenant]]:
    started: list[SimTenant] = []

    def make(**config: Any) -> SimTenant:
        sim = SimTenant(SimConfig(**config), workdir=tmp_path / f"sim{len(started)}")
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., SimTenant]) -> SimTenant:
    return make_sim()


def sim_settings(sim: SimTenant, reports: Path, **changes: Any) -> tuple[Settings, Credentials]:
    """Settings and app credentials for a run against `sim` from this process (`changes`:
    batch size, budgets, ...), as the CLI builds them from `sim_flags`."""
    endpoints = Endpoints.for_cloud(
        Cloud.GLOBAL,
        sim.config.tenant_id,
        graph_url=sim.graph_url,
        authority_url=sim.authority_url,
        ca_bundle=sim.ca_path,
    )
    credentials = Credentials(sim.config.tenant_id, sim.config.client_id, sim.config.client_secret)
    return Settings(endpoints=endpoints, reports_dir=reports, **changes), credentials


def sim_flags(sim: SimTenant) -> list[str]:
    return [
        "--authority-url",
        sim.authority_url,
        "--graph-url",
        sim.graph_url,
        "--ca-bundle",
        str(sim.ca_path),
    ]


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., Result]:
    """Invoke the real CLI in-process (real MSAL, aiohttp and TLS) with reports in tmp_path."""

    def invoke(
        args: list[str], *, env: dict[str, str] | None = None, input: str | None = None
    ) -> Result:
        runner = CliRunner()
        full_env = {k: v for k, v in (env or {}).items()}
        old_cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            return runner.invoke(app, args, env=full_env, input=input, catch_exceptions=False)
        finally:
            os.chdir(old_cwd)

    return invoke


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted(p.parent for p in (tmp_path / "reports").glob("*/journal.sqlite"))
