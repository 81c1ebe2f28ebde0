"""`batch-rotate sweep` from the real CLI against the simulated tenant: idempotent, guarded,
never waiting on a prompt without a terminal, its run an ordinary run, its evidence complete."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.escrow import EscrowConfig
from batch_rotate.sim.targeting import TargetingConfig

from .conftest import run_dirs, sim_flags
from .schema_check import problems, schema

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow
FAST = ["--write-budget", "1000/1s", "--recent", "0"]  # the sim below runs 1000x


@pytest.fixture
def tsim(make_sim: Callable[..., SimTenant]) -> SimTenant:
    escrow = EscrowConfig(checkin_mean_s=30.0, never_share=0.1)
    return make_sim(devices=150, time_scale=1000, targeting=TargetingConfig(), escrow=escrow)


def _sweep(run_cli: Cli, sim: SimTenant, *args: str) -> Result:
    base = ["sweep", "--keys-older-than", "90d", *FAST, "--json"]
    return run_cli([*base, *args, *sim_flags(sim)], env=sim.env())


def test_twice_in_a_day_the_second_sends_nothing(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    due = tsim.select_truth("keys_older", tsim.tenant_now() - timedelta(days=90))
    first = _sweep(run_cli, tsim, "--yes", "--verify-wait", "1s", "--verify-every", "0.2s")
    doc = json.loads(first.stdout)
    assert first.exit_code in (1, 75), first.output
    assert not problems(doc, schema("sweep.schema.json"))
    sent = tsim.metrics()["accepted_by_device"]
    assert set(sent) == due and set(sent.values()) == {1}
    (run_dir,) = run_dirs(tmp_path)  # an ordinary run folder, found by every run command
    assert doc["runs"]["rotation"] == [str(run_dir.resolve())]

    again = _sweep(run_cli, tsim, "--yes")
    second = json.loads(again.stdout)
    assert tsim.metrics()["accepted_by_device"] == sent  # nothing new was sent
    assert second["counts"]["to_send"] == 0 and second["runs"]["rotation"] == []
    assert second["counts"]["held"] == doc["posture"]["population"] - (
        doc["posture"]["after"]["compliant"]
    ) - sum(
        n
        for why, n in doc["posture"]["exceptions_by_reason"].items()
        if why in ("ineligible", "cloud_pc")
    )
    assert second["runs"]["verified"] == doc["runs"]["rotation"]  # pending ones verified again
    assert second["previous_sweep"]["sweep_id"] == doc["sweep_id"]
    assert [p["sweep_id"] for p in second["trend"]] == [doc["sweep_id"], second["sweep_id"]]
    assert again.exit_code == second["exit_code"]

    listed = run_cli(["runs", "--sweeps", "--json"])
    runs = json.loads(listed.stdout)["runs"]
    assert not problems(json.loads(listed.stdout), schema("runs.schema.json"))
    assert [(r["kind"], r["sweep"]) for r in runs] == [("sweep", doc["sweep_id"])]


def test_evidence_files(tsim: SimTenant, run_cli: Cli) -> None:
    result = _sweep(run_cli, tsim, "--yes", "--policy-name", "q1 audit")
    doc = json.loads(result.stdout)
    folder = Path(doc["sweep_dir"])
    assert folder.parent.name == "q1-audit"  # the policy's history folder
    book = load_workbook(folder / "sweep.xlsx")
    assert book.sheetnames == ["Summary", "Key ages", "Trend", "Exceptions"]
    assert book["Key ages"]._charts and book["Trend"]._charts
    assert book["Exceptions"].max_row == len(doc["exceptions"]) + 1
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    for fact in (
        doc["policy"]["tenant_id"],
        doc["sweep_id"],
        Path(doc["runs"]["rotation"][0]).name,
        doc["tool_version"],
        "compliant before",
        "Trend",
    ):
        assert fact in summary
    event = schema("sweep.schema.json")["$defs"]["event"]
    lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == [
        "sweep_started",
        "selected",
        "rotated",
        "sweep_finished",
    ]
    assert not [p for r in records for p in problems(r, event)]
    assert "sim-secret" not in (folder / "sweep.json").read_text(encoding="utf-8") + summary


def test_without_a_terminal_and_without_yes_nothing_is_sent(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    result = _sweep(run_cli, tsim)  # CliRunner's stdin is no terminal
    assert result.exit_code == 2
    assert "no terminal to confirm on" in result.stderr and "--yes" in result.stderr
    assert tsim.metrics()["rotate_accepted"] == 0 and not run_dirs(tmp_path)
    (record,) = (tmp_path / "reports" / "sweeps").glob("*/*/sweep.json")
    assert json.loads(record.read_text(encoding="utf-8"))["state"] == "refused"


def test_share_and_device_caps_refuse_before_sending(tsim: SimTenant, run_cli: Cli) -> None:
    capped = _sweep(run_cli, tsim, "--yes", "--max-share", "0.2")
    assert capped.exit_code == 2 and "--max-share 0.2" in capped.stderr
    assert json.loads(capped.stdout)["exit_code"] == 2
    few = _sweep(run_cli, tsim, "--yes", "--max-devices", "3")
    assert few.exit_code == 2 and "more than --max-devices 3" in few.stderr
    assert tsim.metrics()["rotate_accepted"] == 0
    # a refused sweep is no previous sweep: the next one starts the history
    ok = _sweep(run_cli, tsim, "--yes")
    assert json.loads(ok.stdout)["previous_sweep"] is None


def test_a_sweep_needs_the_key_age_limit(tsim: SimTenant, run_cli: Cli) -> None:
    result = run_cli(["sweep", "--group", "Finance", "--yes", *sim_flags(tsim)], env=tsim.env())
    assert result.exit_code == 2 and "--keys-older-than" in result.stderr


def test_a_history_restored_elsewhere_is_still_this_policys_history(
    tsim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    """A pipeline restores reports/ into a new workspace: the runs are found by name there."""
    first = json.loads(_sweep(run_cli, tsim, "--yes", "--reports-dir", "old").stdout)
    sent = dict(tsim.metrics()["accepted_by_device"])
    (tmp_path / "old").rename(tmp_path / "new")
    again = _sweep(run_cli, tsim, "--yes", "--reports-dir", "new")
    second = json.loads(again.stdout)
    assert second["previous_sweep"]["sweep_id"] == first["sweep_id"]
    assert second["counts"]["to_send"] == 0 and tsim.metrics()["accepted_by_device"] == sent
    assert [Path(r).name for r in second["runs"]["verified"]] == [
        Path(r).name for r in first["runs"]["rotation"]
    ]


def test_a_group_policy_sweeps_only_the_groups_due_devices(tsim: SimTenant, run_cli: Cli) -> None:
    result = _sweep(run_cli, tsim, "--yes", "--group", "Finance")
    doc = json.loads(result.stdout)
    truth = tsim.select_truth("group", "Finance") & tsim.select_truth(
        "keys_older", tsim.tenant_now() - timedelta(days=90)
    )
    assert truth and set(tsim.metrics()["accepted_by_device"]) == truth
    assert doc["counts"]["to_send"] == len(truth)
    assert doc["policy"]["group"] == "Finance" and "--group Finance" in doc["policy"]["description"]
