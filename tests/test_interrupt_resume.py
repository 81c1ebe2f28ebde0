"""Ctrl-C and kill -9 in the middle of a run, then resume: nothing lost, nothing sent twice
(devices in flight are checked before any resend)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags


def _device_list(sim: SimTenant, path: Path, count: int) -> list[str]:
    ids = [d["id"] for d in sim.inventory if eligible(d)][:count]
    path.write_text("managedDeviceId\n" + "\n".join(ids) + "\n", encoding="utf-8")
    return ids


def _start(args: list[str], sim: SimTenant, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **sim.env()}
    for name in ("SSL_CERT_FILE",):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "batch_rotate", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_sends(sim: SimTenant, at_least: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while sim.metrics()["rotate_accepted"] < at_least:
        assert time.monotonic() < deadline, "the run never started sending"
        time.sleep(0.05)


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Intune device ID"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupt_then_resume(
    make_sim: Callable[..., SimTenant], tmp_path: Path, how: str
) -> None:
    sim = make_sim(devices=1500, time_scale=20.0)  # 200 writes per 1 s window
    ids = _device_list(sim, tmp_path / "devices.csv", 240)
    flags = ["--yes", "--write-budget", "120/1s", "--max-devices", "1000", *sim_flags(sim)]
    proc = _start(["rotate", "devices.csv", *flags], sim, tmp_path)
    _wait_for_sends(sim, 60)
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    output, _ = proc.communicate(timeout=60)
    (run_dir,) = run_dirs(tmp_path)
    first = sim.metrics()["accepted_by_device"]
    assert 0 < len(first) < len(ids)
    if how == "sigint":
        assert proc.returncode == 130, output
        assert f"--resume {run_dir.relative_to(tmp_path)}" in output
        statuses = {row["Status"] for row in _report(run_dir).values()}
        assert "queued" in statuses and "not_sent" in statuses
    else:
        assert proc.returncode == -signal.SIGKILL
    # the report can be rendered from the journal whatever happened
    assert (
        subprocess.run(
            [sys.executable, "-m", "batch_rotate", "report", str(run_dir)], check=False
        ).returncode
        == 0
    )

    again = _start(["rotate", "devices.csv", "--dry-run", *flags], sim, tmp_path)
    hint, _ = again.communicate(timeout=60)
    assert f"--resume {run_dir.relative_to(tmp_path)}" in hint  # an unfinished run of this file

    proc = _start(["rotate", "--resume", str(run_dir), *flags], sim, tmp_path)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    report = _report(run_dir)
    accepted = sim.metrics()["accepted_by_device"]
    assert set(accepted) == set(ids)  # every device rotated
    assert all(report[i]["Status"] == "queued" for i in ids)
    assert all(n == 1 for n in accepted.values())  # nobody rotated twice
    flagged = {
        i
        for i in ids
        if "resent_after_interrupt" in report[i]["Reason"]
        or "confirmed_after_lost_answer" in report[i]["Reason"]
    }
    assert all(n <= 2 for n in accepted.values())
    assert len(flagged) <= 20 * 4  # at most the batches in flight (batch size x concurrency)


def test_two_resumes_of_one_run_one_sends_the_other_exits_2(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim = make_sim(devices=600, time_scale=20.0)
    ids = _device_list(sim, tmp_path / "devices.csv", 200)
    flags = ["--write-budget", "40/1s", "--max-devices", "1000", *sim_flags(sim)]
    # a run that planned but never sent: refused at the prompt (no terminal to confirm on)
    first = _start(["rotate", "devices.csv", *flags], sim, tmp_path)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 2, output
    (run_dir,) = run_dirs(tmp_path)
    assert sim.metrics()["rotate_accepted"] == 0

    one = _start(["rotate", "--resume", str(run_dir), "--yes", *flags], sim, tmp_path)
    _wait_for_sends(sim, 1)  # it holds the run now
    two = _start(["rotate", "--resume", str(run_dir), "--yes", *flags], sim, tmp_path)
    second, _ = two.communicate(timeout=60)
    assert two.returncode == 2, second
    assert "in use by another batch-rotate process" in second
    assert f"pid {one.pid}" in second  # names the holder
    # the report of a run in use can still be read and rendered
    busy = subprocess.run(
        [sys.executable, "-m", "batch_rotate", "report", str(run_dir)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert busy.returncode == 0, busy.stdout + busy.stderr
    output, _ = one.communicate(timeout=120)
    assert one.returncode == 0, output
    accepted = sim.metrics()["accepted_by_device"]
    assert set(accepted) == set(ids)
    assert all(n == 1 for n in accepted.values())  # nobody rotated twice
    # the lock went with the process: the run can be opened again
    again = subprocess.run(
        [sys.executable, "-m", "batch_rotate", "rotate", "--resume", str(run_dir), "--yes", *flags],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **sim.env()},
    )
    assert "in use" not in again.stdout + again.stderr
