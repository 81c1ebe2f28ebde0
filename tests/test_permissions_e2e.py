"""Every selector and `rotate --select` against a simulated tenant whose tokens carry Entra's
spelling (`BitlockerKey...`), with the least-privileged and with broader permissions."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.targeting import TargetingConfig

from .conftest import run_dirs, sim_flags
from .sim.helpers import token

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow

BROADER = [
    "DeviceManagementManagedDevices.ReadWrite.All",  # includes ...Read.All
    "BitlockerKey.Read.All",  # includes BitlockerKey.ReadBasic.All
    "AuditLog.Read.All",
    "Directory.Read.All",  # includes GroupMember.Read.All and Device.Read.All
]


def _selected(run_cli: Cli, sim: SimTenant, out: Path, *selector: str) -> tuple[set[str], str]:
    result = run_cli(
        ["select", *selector, "--out", str(out), "--force", *sim_flags(sim)], env=sim.env()
    )
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8-sig").splitlines()[1:]
    return {line.split(",")[0].strip('"') for line in text if line}, " ".join(result.output.split())


def _token_roles(sim: SimTenant, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The roles of a token the sim issues (MSAL called with verify=: no override by env)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    payload = token(sim).split(".")[1]
    return list(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["roles"])


@pytest.mark.parametrize("roles", [None, BROADER], ids=["least privileged", "broader"])
def test_every_selector_and_rotate_select_work_with_entras_spelling(
    make_sim: Callable[..., SimTenant],
    run_cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    roles: list[str] | None,
) -> None:
    extra = {} if roles is None else {"roles": roles}
    sim = make_sim(targeting=TargetingConfig(), devices=200, **extra)
    held = _token_roles(sim, monkeypatch)
    assert ("BitlockerKey.ReadBasic.All" in held) is (roles is None)
    assert not any("BitLockerKey" in name for name in held)  # Entra's spelling only
    now = sim.tenant_now()

    got, said = _selected(run_cli, sim, tmp_path / "exposed.csv", "--exposed-since", "5d")
    assert got == sim.select_truth("exposed", now - timedelta(days=5)) and got
    # The directory-audit docs also list Directory.Read.All: a warning, never a refusal.
    assert ("lacks Directory.Read.All" in said) is (roles is None)

    got, _ = _selected(run_cli, sim, tmp_path / "old.csv", "--keys-older-than", "120d")
    assert got == sim.select_truth("keys_older", now - timedelta(days=120)) and got

    got, _ = _selected(run_cli, sim, tmp_path / "group.csv", "--group", "Finance")
    assert got == sim.select_truth("group", "Finance") and got

    result = run_cli(
        ["rotate", "--select", "--group", "Finance", "--yes", *sim_flags(sim)], env=sim.env()
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    assert set(sim.metrics()["accepted_by_device"]) <= sim.select_truth("group", "Finance")
    assert (run_dir / "selected.csv").exists()


def test_a_missing_key_permission_is_named_in_entras_spelling(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(targeting=TargetingConfig(), roles=["DeviceManagementManagedDevices.Read.All"])
    out = tmp_path / "x.csv"
    result = run_cli(
        ["select", "--keys-older-than", "90d", "--out", str(out), *sim_flags(sim)], env=sim.env()
    )
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "lacks BitlockerKey.ReadBasic.All (or a broader one: BitlockerKey.Read.All)" in text
    assert not out.exists()
