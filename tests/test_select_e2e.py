"""`batch-rotate select` and `rotate --select` from the real CLI against the simulated tenant;
every selected list is compared device for device with the simulator's ground truth."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.errors import InputError
from batch_rotate.select.selectors import group_members
from batch_rotate.sim import SimTenant
from batch_rotate.sim.targeting import TargetingConfig

from .conftest import run_dirs, sim_flags
from .graph.fakeclock import FakeClock
from .graph.fakes import ScriptedGraph, response, session_on

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow


@pytest.fixture
def tsim(make_sim: Callable[..., SimTenant]) -> SimTenant:
    return make_sim(targeting=TargetingConfig(), devices=300)


def _listed(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {row["Device ID"]: row for row in csv.DictReader(handle)}


def _select(run_cli: Cli, sim: SimTenant, tmp_path: Path, *args: str) -> dict[str, dict[str, str]]:
    out = tmp_path / "selected.csv"
    cli_args = ["select", *args, "--out", str(out), "--force", *sim_flags(sim)]
    result = run_cli(cli_args, env=sim.env())
    assert result.exit_code == 0, result.output
    return _listed(out)


def test_exposed_since_matches_audit_truth(tsim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    got = _select(run_cli, tsim, tmp_path, "--exposed-since", "5d")
    truth = tsim.select_truth("exposed", tsim.tenant_now() - timedelta(days=5))
    assert set(got) == truth and truth
    # events outside the window exist and were left out
    wider = tsim.select_truth("exposed", tsim.tenant_now() - timedelta(days=29))
    assert wider > truth
    assert all("key read" in row["Selected because"] for row in got.values())


def test_read_by_narrows_to_one_actor_and_warns_past_retention(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "mallory.csv"
    actor = "mallory@contoso.example"
    result = run_cli(
        [
            "select",
            "--exposed-since",
            "60d",
            "--read-by",
            actor,
            "--out",
            str(out),
            *sim_flags(tsim),
        ],
        env=tsim.env(),
    )
    assert result.exit_code == 0, result.output
    assert "retention" in result.output and "can no longer be proven" in result.output
    truth = tsim.select_truth("exposed", tsim.tenant_now() - timedelta(days=60), actor)
    assert set(_listed(out)) == truth and truth
    assert all(actor in r["Selected because"] for r in _listed(out).values())


def test_group_is_transitive_with_user_devices(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    got = _select(run_cli, tsim, tmp_path, "--group", "Finance")
    assert set(got) == tsim.select_truth("group", "Finance")
    nested = tsim.select_truth("group", "Finance-Auditors")
    assert nested and nested <= set(got)  # two levels down
    assert any("primary user" in r["Selected because"] for r in got.values())
    by_id = _select(run_cli, tsim, tmp_path, "--group", tsim.group_id("Finance-Contractors"))
    assert set(by_id) == tsim.select_truth("group", "Finance-Contractors")


def test_keys_older_than_includes_devices_without_keys(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    got = _select(run_cli, tsim, tmp_path, "--keys-older-than", "120d")
    assert set(got) == tsim.select_truth("keys_older", tsim.tenant_now() - timedelta(days=120))
    reasons = [r["Selected because"] for r in got.values()]
    assert any("no recovery key" in r for r in reasons)
    assert any("days old" in r for r in reasons)


def test_intersection_and_exclude(tsim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    now = tsim.tenant_now()
    all_windows = _select(run_cli, tsim, tmp_path, "--all-windows")
    assert set(all_windows) == tsim.select_truth("all_windows")
    truth = tsim.select_truth("group", "Finance") & tsim.select_truth(
        "keys_older", now - timedelta(days=60)
    )
    exclude = tmp_path / "vip.csv"
    dropped = sorted(truth)[:1]
    exclude.write_text("Device ID\n" + "".join(f"{d}\n" for d in dropped), encoding="utf-8")
    got = _select(
        run_cli,
        tsim,
        tmp_path,
        "--group",
        "Finance",
        "--keys-older-than",
        "60d",
        "--exclude",
        str(exclude),
    )
    assert set(got) == truth - set(dropped)


def test_exclude_with_a_lone_device_id_column_drops_intune_and_entra_ids(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    """A lone `DeviceId` header may hold either kind: an exclusion list is never guessed."""
    truth = tsim.select_truth("group", "Finance")
    by_id = {d["id"]: d for d in tsim.inventory}
    by_intune, by_entra = sorted(truth)[:2]
    exclude = tmp_path / "keep-out.csv"
    exclude.write_text(
        f"DeviceId\n{by_intune}\n{by_id[by_entra]['azureADDeviceId']}\n", encoding="utf-8"
    )
    got = _select(run_cli, tsim, tmp_path, "--group", "Finance", "--exclude", str(exclude))
    assert set(got) == truth - {by_intune, by_entra}


def test_rotate_select_runs_the_list_as_a_normal_run(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    result = run_cli(
        ["rotate", "--select", "--group", "Finance", "--yes", *sim_flags(tsim)], env=tsim.env()
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    listed = _listed(run_dir / "selected.csv")
    assert set(listed) == tsim.select_truth("group", "Finance")
    rotated = set(tsim.metrics()["accepted_by_device"])
    assert rotated and rotated <= set(listed)
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        report = list(csv.DictReader(handle))
    assert len(report) == len(listed)


def test_rotate_select_max_devices_guard(tsim: SimTenant, run_cli: Cli) -> None:
    result = run_cli(
        ["rotate", "--select", "--all-windows", "--yes", "--max-devices", "3", *sim_flags(tsim)],
        env=tsim.env(),
    )
    assert result.exit_code == 2, result.output
    assert tsim.metrics()["rotate_calls"] == 0


def test_missing_audit_permission_is_named(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(targeting=TargetingConfig(), roles=["DeviceManagementManagedDevices.Read.All"])
    result = run_cli(
        ["select", "--exposed-since", "3d", "--out", str(tmp_path / "x.csv"), *sim_flags(sim)],
        env=sim.env(),
    )
    assert result.exit_code == 3, result.output
    assert "AuditLog.Read.All" in result.output


def test_selector_options_need_select(run_cli: Cli) -> None:
    result = run_cli(["rotate", "--group", "Finance"])
    assert result.exit_code == 2
    assert "--select" in result.output


@pytest.mark.parametrize("group", ["NoSuchGroup", "00000000-0000-4000-8000-0000000000ff"])
def test_a_group_that_is_not_there_is_an_input_mistake(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path, group: str
) -> None:
    out = tmp_path / "selected.csv"
    result = run_cli(
        ["select", "--group", group, "--out", str(out), *sim_flags(tsim)], env=tsim.env()
    )
    assert result.exit_code == 2, result.output  # the operator's input, not sign-in or Graph
    text = " ".join(result.output.split())
    assert f"--group {group}" in text.replace("'", "")
    assert "no group in the tenant has this" in text and "Entra ID (Groups)" in text
    assert not out.exists()


def test_a_name_several_groups_share_asks_for_one_id() -> None:
    clock = FakeClock()
    twins = [{"id": "g-1", "displayName": "Finance"}, {"id": "g-2", "displayName": "FINANCE"}]
    graph = ScriptedGraph(clock, gets=[response(200, body={"value": twins})])

    async def go() -> None:
        await group_members(session_on(graph, clock, max_attempts=1), "finance")

    with pytest.raises(InputError, match=r"2 groups have this display name \(g-1, g-2\)") as info:
        asyncio.run(go())
    assert "--group g-1" in str(info.value)
