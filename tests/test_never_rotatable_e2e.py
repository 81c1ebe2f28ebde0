"""Windows 365 Cloud PCs and Home editions are ineligible with a reason, and never sent: by id
(batched lookups), by name (the inventory listing) and through `rotate --select --all-windows`."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(make_sim: Callable[..., SimTenant]) -> SimTenant:
    return make_sim(devices=300, cloud_pc_share=0.08, home_edition_share=0.08)


def _kinds(sim: SimTenant) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    devices = list(sim.inventory)
    cloud = [d for d in devices if d["deviceType"] == "cloudPC"]
    home = [d for d in devices if d.get("skuNumber") == 101]
    names = [d["deviceName"] for d in devices]
    good = [d["id"] for d in devices if eligible(d) and names.count(d["deviceName"]) == 1]
    assert cloud and home and all(d["operatingSystem"] == "Windows" for d in cloud + home)
    assert all(d["joinType"] in ("azureADJoined", "hybridAzureADJoined") for d in cloud)
    return cloud, home, good


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Intune device ID"]: row for row in csv.DictReader(handle)}


def test_cloud_pcs_and_home_editions_are_never_sent(
    fleet: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    cloud, home, good = _kinds(fleet)
    listed = tmp_path / "ids.csv"
    rows = [d["id"] for d in cloud + home] + good[:5]
    listed.write_text("Device ID\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = run_cli(["rotate", str(listed), "--yes", *sim_flags(fleet)], env=fleet.env())
    assert result.exit_code == 0, result.output
    sent = set(fleet.metrics()["accepted_by_device"])
    assert sent == set(good[:5])
    (run_dir,) = run_dirs(tmp_path)
    report = _report(run_dir)
    for device in cloud:
        row = report[device["id"]]
        assert row["Status"] == "ineligible", row
        assert row["Reason"].startswith("cloud_pc: the device is a Windows 365 Cloud PC")
        assert "Cloud PCs do not support BitLocker" in row["Reason"]
    for device in home:
        row = report[device["id"]]
        assert row["Status"] == "ineligible", row
        assert row["Reason"].startswith("windows_home: the device runs a Windows Home edition")


def test_the_inventory_listing_and_select_all_windows_leave_them_out(
    fleet: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    cloud, home, _ = _kinds(fleet)
    names = [d["deviceName"] for d in fleet.inventory]
    by_name = [d for d in cloud + home if names.count(d["deviceName"]) == 1]
    listed = tmp_path / "names.csv"
    listed.write_text(
        "Device name\n" + "\n".join(d["deviceName"] for d in by_name) + "\n", encoding="utf-8"
    )
    result = run_cli(["plan", str(listed), *sim_flags(fleet)], env=fleet.env())
    assert result.exit_code == 0, result.output
    assert "listed the inventory" in result.output
    (plan_dir,) = run_dirs(tmp_path)
    statuses = {row["Status"] for row in _report(plan_dir).values()}
    assert statuses == {"ineligible"}

    result = run_cli(
        ["rotate", "--select", "--all-windows", "--yes", *sim_flags(fleet)], env=fleet.env()
    )
    assert result.exit_code == 0, result.output
    sent = set(fleet.metrics()["accepted_by_device"])
    never = {d["id"] for d in cloud + home}
    assert sent and not sent & never
    assert sent == {d["id"] for d in fleet.inventory if eligible(d)}
