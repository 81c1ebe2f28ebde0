"""Uncertain means uncertain (issue 19 item 3): against a tenant that shows an accepted rotation
only seconds later, a lost answer is never re-sent while the tenant may not show it yet."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.faults import FaultConfig
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags

VISIBLE_AFTER_S = 10.0  # the tenant shows an accepted rotation this long after its 204
GRACE_S = 12.0


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Intune device ID"]: row for row in csv.DictReader(handle)}


def test_a_lost_answer_is_checked_after_the_grace_never_re_sent_before(
    make_sim: Callable[..., SimTenant], run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    sim = make_sim(
        devices=60,
        # every rotation batch processed, then its answer lost
        faults=FaultConfig(lost_after_processing_5xx=1.0, lose_writes_only=True),
        action_visible_after_s=VISIBLE_AFTER_S,
    )
    ids = [d["id"] for d in sim.inventory if eligible(d)][:20]
    (tmp_path / "devices.csv").write_text("managedDeviceId\n" + "\n".join(ids) + "\n")
    flags = ["--yes", "--uncertain-grace", f"{GRACE_S:g}s", *sim_flags(sim)]
    started = time.monotonic()
    first = run_cli(["rotate", "devices.csv", *flags], env=sim.env())
    assert first.exit_code == 1, first.output  # uncertain devices: see the report
    (run_dir,) = run_dirs(tmp_path)
    resume = f"--resume {run_dir.relative_to(tmp_path)}"
    assert resume in first.output, first.output
    assert sim.metrics()["accepted_by_device"] == dict.fromkeys(ids, 1)

    # an immediate resume: the tenant shows nothing yet, and nothing is sent again
    again = run_cli(["rotate", "--resume", str(run_dir), *flags], env=sim.env())
    assert time.monotonic() - started < VISIBLE_AFTER_S, "too slow to resume in time: retry"
    assert again.exit_code == 1, again.output
    assert resume in again.output
    assert sim.metrics()["accepted_by_device"] == dict.fromkeys(ids, 1)
    report = _report(run_dir)
    assert {report[i]["Status"] for i in ids} == {"uncertain"}
    assert all("not sent again before" in report[i]["Reason"] for i in ids)

    # after the grace: checked, and the tenant shows every rotation it accepted
    time.sleep(max(0.0, started + GRACE_S + 0.5 - time.monotonic()))
    last = run_cli(["rotate", "--resume", str(run_dir), *flags], env=sim.env())
    assert last.exit_code == 0, last.output
    report = _report(run_dir)
    assert {report[i]["Status"] for i in ids} == {"queued"}
    assert all(report[i]["Reason"].startswith("confirmed_after_lost_answer") for i in ids)
    assert sim.metrics()["accepted_by_device"] == dict.fromkeys(ids, 1)  # sent once in all
