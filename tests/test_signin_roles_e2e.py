"""The delegated role pre-flight end to end: an admin signed in by device code (approved by the
test hook) must hold an Entra or Intune role that may rotate, checked before any write."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.config import _default_scopes

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow
ADMIN = "alice@contoso.example"
ROLE_READS = ("RoleManagement.Read.Directory", "DeviceManagementRBAC.Read.All")


def _sim(make_sim: Callable[..., SimTenant], roles: list[str], **config: Any) -> SimTenant:
    sim = make_sim(user_roles={ADMIN: roles}, **config)
    sim.approve_device_codes(ADMIN)
    return sim


def _rotate(sim: SimTenant, run_cli: Cli, tmp_path: Path, *extra: str) -> Result:
    env = {"AZURE_TENANT_ID": sim.config.tenant_id, "AZURE_CLIENT_ID": sim.config.client_id}
    args = ["--auth", "device-code", "--token-cache", str(tmp_path / "cache.json")]
    return run_cli(["rotate", str(SAMPLE), "--yes", *args, *extra, *sim_flags(sim)], env=env)


def _report(tmp_path: Path) -> list[dict[str, str]]:
    (run_dir,) = run_dirs(tmp_path)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    "roles",
    [["Intune Administrator"], ["Global Administrator"], ["Help Desk Operator"]],
)
def test_an_admin_with_a_rotating_role_rotates(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path, roles: list[str]
) -> None:
    sim = _sim(make_sim, roles)
    result = _rotate(sim, run_cli, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"the signed-in admin {ADMIN} may rotate" in result.output
    assert "could not check" not in result.output
    queued = [r for r in _report(tmp_path) if r["Status"] == "queued"]
    assert len(queued) >= 40
    assert sim.metrics()["rotate_accepted"] == len(queued)
    assert sim.count("rotate_refused_rbac") == 0
    # An Entra admin role ends the check after one read; an Intune role needs the second.
    assert sim.count("role_reads") == (2 if roles == ["Help Desk Operator"] else 1)


@pytest.mark.parametrize("roles", [[], ["Read Only Operator", "Global Reader"]])
def test_an_admin_without_a_rotating_role_stops_before_any_write(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path, roles: list[str]
) -> None:
    sim = _sim(make_sim, roles)
    result = _rotate(sim, run_cli, tmp_path)
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert f"the signed-in admin {ADMIN} has neither the Intune Administrator role" in text
    assert "an Intune role with 'Rotate BitLocker keys'" in text
    assert "Intune > Tenant administration > Roles" in text
    assert sim.metrics()["rotate_calls"] == 0
    assert sim.count("writes") == 0
    report = _report(tmp_path)
    assert report and all(r["Status"] != "queued" for r in report)
    assert any("stopped before any rotation" in r["Reason"] for r in report)


@pytest.mark.parametrize("has_role", [True, False])
def test_a_refused_role_read_warns_and_graph_decides_per_device(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path, has_role: bool
) -> None:
    scopes = [s for s in _default_scopes() if s not in ROLE_READS]
    sim = _sim(make_sim, ["Endpoint Security Manager"] if has_role else [], delegated_scopes=scopes)
    result = _rotate(sim, run_cli, tmp_path)
    text = " ".join(result.output.split())
    assert f"warning: could not check that the signed-in admin {ADMIN} holds a role" in text
    assert "getEffectivePermissions was refused (403" in text
    assert "delegated permission DeviceManagementRBAC.Read.All" in text
    assert sim.metrics()["rotate_calls"] > 0  # the run went on
    report = [r for r in _report(tmp_path) if r["Intune device ID"] and r["Status"] != "ineligible"]
    if has_role:
        assert result.exit_code == 0, result.output
        assert all(r["Status"] == "queued" for r in report)
        return
    assert result.exit_code == 1, result.output
    assert report and all(r["Status"] == "failed" and r["HTTP status"] == "403" for r in report)
    assert sim.metrics()["rotate_accepted"] == 0
    assert sim.count("rotate_refused_rbac") == len(report)


def test_directory_roles_with_limited_information_fall_back_to_intune(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    """Without RoleManagement.Read.Directory Graph hides the roles' template ids; Intune's
    effective permissions ("*" for an Intune Administrator) still answer."""
    scopes = [s for s in _default_scopes() if s != "RoleManagement.Read.Directory"]
    sim = _sim(make_sim, ["Intune Administrator"], delegated_scopes=scopes)
    result = _rotate(sim, run_cli, tmp_path)
    assert result.exit_code == 0, result.output
    assert "could not check" not in result.output
    assert sim.count("role_reads") == 2


def test_app_tokens_and_plans_read_no_roles(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = _sim(make_sim, [])
    env = {"AZURE_TENANT_ID": sim.config.tenant_id, "AZURE_CLIENT_ID": sim.config.client_id}
    args = ["--auth", "device-code", "--token-cache", str(tmp_path / "cache.json")]
    plan = run_cli(["rotate", str(SAMPLE), "--dry-run", *args, *sim_flags(sim)], env=env)
    assert plan.exit_code == 0, plan.output  # a dry run writes nothing: no role needed
    app = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert app.exit_code == 0, app.output
    assert sim.count("role_reads") == 0
