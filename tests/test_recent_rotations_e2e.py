"""`--check-recent-rotations`: a rotation someone else requested (the portal, another tool)
within --recent holds the device back; months-old results and devices without one do not."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags
from .sim.helpers import call, token

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow


@pytest.fixture
def portal(make_sim: Callable[..., SimTenant], monkeypatch: pytest.MonkeyPatch) -> SimTenant:
    """A tenant where an admin rotated three devices in the portal a moment ago, and a third
    of the devices hold a months-old failed rotate result."""
    sim = make_sim(devices=200, stale_action_results_share=0.3)
    with monkeypatch.context() as env:  # MSAL with verify=: no CA override from the environment
        env.delenv("REQUESTS_CA_BUNDLE", raising=False)
        env.delenv("CURL_CA_BUNDLE", raising=False)
        tok = token(sim)
    for device in _ids(sim)[:3]:
        path = f"/beta/deviceManagement/managedDevices/{device}/rotateBitLockerKeys"
        status, _, _ = call(sim, "POST", path, token=tok)
        assert status == 204
    return sim


def _ids(sim: SimTenant) -> list[str]:
    return [d["id"] for d in sim.inventory if eligible(d)][:12]


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Intune device ID"]: row for row in csv.DictReader(handle)}


def _listed(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "devices.csv"
    path.write_text("Device ID\n" + "\n".join(ids) + "\n", encoding="utf-8")
    return path


def test_a_portal_rotation_within_recent_holds_the_device_back(
    portal: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    ids = _ids(portal)
    stale = [d for d in ids[3:] if (portal.inventory.get(d) or {}).get("deviceActionResults")]
    assert stale  # months-old results are in the list, and must not hold anything back
    listed = _listed(tmp_path, ids)
    args = ["rotate", str(listed), "--check-recent-rotations", "--yes", *sim_flags(portal)]
    result = run_cli(args, env=portal.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    report = _report(run_dir)
    for device in ids[:3]:
        row = report[device]
        assert row["Status"] == "ineligible", row
        assert row["Reason"].startswith("recent_rotation: requested 20"), row
        assert "by the service" in row["Reason"] and "--force-recent" in row["Reason"]
    assert {report[d]["Status"] for d in ids[3:]} == {"queued"}
    sent = portal.metrics()["accepted_by_device"]
    assert all(sent[d] == 1 for d in ids[:3])  # the portal's request only, never a second
    assert all(sent[d] == 1 for d in ids[3:])
    assert "skipped as ineligible/recent_rotation" in " ".join(result.output.split())


def test_off_by_default_and_force_recent_rotates_them_again(
    portal: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    ids = _ids(portal)
    listed = _listed(tmp_path, ids)
    result = run_cli(["plan", str(listed), *sim_flags(portal)], env=portal.env())
    assert result.exit_code == 0, result.output
    (plan_dir,) = run_dirs(tmp_path)
    assert {r["Status"] for r in _report(plan_dir).values()} == {"would_rotate"}
    args = [
        "rotate",
        str(listed),
        "--check-recent-rotations",
        "--force-recent",
        "--yes",
        *sim_flags(portal),
    ]
    result = run_cli(args, env=portal.env())
    assert result.exit_code == 0, result.output
    assert "WILL be rotated again (--force-recent)" in " ".join(result.output.split())
    sent = portal.metrics()["accepted_by_device"]
    assert all(sent[d] == 2 for d in ids[:3]) and all(sent[d] == 1 for d in ids[3:])
