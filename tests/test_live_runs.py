"""Two runs, one device: a second run of a list never sends what a live run still has to send
(issue 19 item 2)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Intune device ID"]: row for row in csv.DictReader(handle)}


def test_a_second_run_holds_back_what_a_live_run_still_has_to_send(
    make_sim: Callable[..., SimTenant], run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    sim = make_sim(devices=120)
    ids = [d["id"] for d in sim.inventory if eligible(d)][:40]
    (tmp_path / "devices.csv").write_text("managedDeviceId\n" + "\n".join(ids) + "\n")
    flags = ["--yes", "--max-devices", "100", *sim_flags(sim)]
    env = {**os.environ, **sim.env()}
    # run A: a slow write budget keeps most of its devices pending while run B plans
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_rotate",
            "rotate",
            "devices.csv",
            "--write-budget",
            "2/1s",
            *flags,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sim.metrics()["rotate_accepted"] < 1:
            assert time.monotonic() < deadline, "run A never started sending"
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.05)
        (run_a,) = run_dirs(tmp_path)  # run dirs made in one second sort by a random suffix
        second = run_cli(
            ["rotate", "devices.csv", "--write-budget", "100/1s", *flags], env=sim.env()
        )
        assert first.poll() is None, "run A finished before run B planned: slow it down"
    finally:
        output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    assert len(run_dirs(tmp_path)) == 2, second.output
    (run_b,) = set(run_dirs(tmp_path)) - {run_a}
    report_b = _report(run_b)
    held = [i for i in ids if report_b[i]["Reason"].startswith(f"in_another_run: {run_a.name}")]
    assert held, second.output  # A still had devices to send when B planned
    assert all(report_b[i]["Status"] == "ineligible" for i in held)
    assert "in_another_run" in second.output
    accepted = sim.metrics()["accepted_by_device"]
    assert set(accepted) == set(ids)  # run A sent every device
    assert all(n == 1 for n in accepted.values()), accepted  # and none was rotated twice
    assert all(report_b[i]["Status"] != "queued" for i in ids)  # B sent none of them
