"""Sign-in modes end to end: device code (delegated, persisted cache) and managed identity
(App Service and VM styles), from the real CLI and MSAL against the simulated tenant."""

from __future__ import annotations

import csv
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.targeting import TargetingConfig

from .conftest import sim_flags

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow
ADMIN = "admin@contoso.example"


@pytest.fixture(autouse=True)
def _never_imds(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the real instance metadata service, whatever MSAL decides."""
    real = socket.create_connection

    def guarded(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        assert address[0] != "169.254.169.254", "a test tried to reach IMDS"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tsim(make_sim: Callable[..., SimTenant]) -> SimTenant:
    return make_sim(targeting=TargetingConfig(), devices=200)


def _ids(path: Path) -> set[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {row["Device ID"] for row in csv.DictReader(handle)}


def test_device_code_prints_code_and_reuses_the_cache(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    tsim.approve_device_codes(ADMIN)
    cache = tmp_path / "cache" / "tokens.json"
    env = {"AZURE_TENANT_ID": tsim.config.tenant_id, "AZURE_CLIENT_ID": tsim.config.client_id}
    args = ["select", "--group", "Finance", "--auth", "device-code", "--token-cache", str(cache)]
    out = tmp_path / "dc.csv"
    result = run_cli([*args, "--out", str(out), *sim_flags(tsim)], env=env)
    assert result.exit_code == 0, result.output
    assert f"{tsim.base_url}/devicelogin" in result.output and "enter the code" in result.output
    assert _ids(out) == tsim.select_truth("group", "Finance")
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert "access_token" not in result.output
    assert tsim.count("devicecode_requests") == 1
    tsim.approve_device_codes(None)  # a second prompt would now hang: the cache must serve
    again = run_cli([*args, "--out", str(out), "--force", *sim_flags(tsim)], env=env)
    assert again.exit_code == 0, again.output
    assert "enter the code" not in again.output
    assert tsim.count("devicecode_requests") == 1


def test_device_code_delegated_scopes_are_checked(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(targeting=TargetingConfig(), delegated_scopes=["GroupMember.Read.All"])
    sim.approve_device_codes(ADMIN)
    env = {"AZURE_TENANT_ID": sim.config.tenant_id, "AZURE_CLIENT_ID": sim.config.client_id}
    result = run_cli(
        [
            "select",
            "--all-windows",
            "--auth",
            "device-code",
            "--token-cache",
            str(tmp_path / "c.json"),
            *sim_flags(sim),
        ],
        env=env,
    )
    assert result.exit_code == 3, result.output
    assert "delegated permission DeviceManagementManagedDevices.Read.All" in result.output
    assert ADMIN in result.output


@pytest.mark.parametrize("user_assigned", [False, True])
def test_managed_identity_app_service(
    make_sim: Callable[..., SimTenant],
    run_cli: Cli,
    tmp_path: Path,
    user_assigned: bool,
) -> None:
    mi = "11111111-2222-4333-8444-555555555555"
    roles = ["DeviceManagementManagedDevices.Read.All", "BitlockerKey.ReadBasic.All"]
    sim = make_sim(
        targeting=TargetingConfig(),
        devices=200,
        managed_identities={mi: roles} if user_assigned else {"system": roles},
    )
    env = {
        "IDENTITY_ENDPOINT": f"{sim.base_url}/msi/token",
        "IDENTITY_HEADER": sim.config.identity_header,
        "REQUESTS_CA_BUNDLE": str(sim.ca_path),
    }
    extra = ["--managed-identity-client-id", mi] if user_assigned else []
    out = tmp_path / "mi.csv"
    result = run_cli(
        [
            "select",
            "--all-windows",
            "--auth",
            "managed-identity",
            *extra,
            "--out",
            str(out),
            *sim_flags(sim),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert _ids(out) == sim.select_truth("all_windows")


def test_managed_identity_unknown_client_id_fails_clearly(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    env = {
        "IDENTITY_ENDPOINT": f"{tsim.base_url}/msi/token",
        "IDENTITY_HEADER": tsim.config.identity_header,
    }
    result = run_cli(
        [
            "select",
            "--all-windows",
            "--auth",
            "managed-identity",
            "--managed-identity-client-id",
            "99999999-0000-4000-8000-000000000000",
            "--out",
            str(tmp_path / "x.csv"),
            *sim_flags(tsim),
        ],
        env=env,
    )
    assert result.exit_code == 3, result.output
    assert "managed identity" in result.output
