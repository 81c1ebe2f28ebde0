"""Ctrl-C in every phase (issue 14 item 3): resolution, sending, verification, rendering.

Each leaves a journal that resumes and a report that matches it (or none, never a stale or
half-written one), and always prints the command that continues the run. The tests wait on what
the run shows (a progress line, the sim's counters, a temp file), never on sleeps.
"""

from __future__ import annotations

import contextlib
import csv
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from batch_rotate.present import plural
from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags


class _Cli:
    """The real CLI in a subprocess, its output (stdout and stderr) read as it comes."""

    def __init__(self, args: list[str], sim: SimTenant, cwd: Path) -> None:
        env = {**os.environ, **sim.env()}
        env.pop("SSL_CERT_FILE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batch_rotate", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line)

    def wait_for(self, ready: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert self.proc.poll() is None or not self.lines.empty(), (what, self.output())
            assert time.monotonic() < deadline, (f"never saw {what}", self.output())
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=0.05))

    def said(self, text: str) -> Callable[[], bool]:
        return lambda: any(text in line for line in self.seen)

    def finish(self, timeout_s: float = 120) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout_s)
        self.reader.join(timeout=30)  # the pipe is read to its end, then closed
        return code, self.output()

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return "".join(self.seen)


FAST = ["--read-budget", "2000/1s", "--write-budget", "200/1s"]  # the sim runs 20x: 200 per 1 s


def _ids(sim: SimTenant, path: Path, count: int) -> list[str]:
    ids = [d["id"] for d in sim.inventory if eligible(d)][:count]
    path.write_text("managedDeviceId\n" + "\n".join(ids) + "\n", encoding="utf-8")
    return ids


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Input value"]: row for row in csv.DictReader(handle)}


def _state(run_dir: Path) -> str:
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        return str(db.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()[0])


def _resume_line(run_dir: Path, tmp_path: Path) -> str:
    return f"resume with  batch-rotate rotate --resume {run_dir.relative_to(tmp_path)}"


def _interrupt_before_sending(
    cli: _Cli, sim: SimTenant, tmp_path: Path, ids: list[str]
) -> tuple[dict[str, dict[str, str]], Path]:
    """One Ctrl-C before any rotation: exit 130, the resume command, every row reported."""
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    assert "Traceback" not in output
    (run_dir,) = run_dirs(tmp_path)
    assert _resume_line(run_dir, tmp_path) in output
    assert _state(run_dir) == "interrupted"
    report = _report(run_dir)
    assert set(report) == set(ids)  # every row is in the report, none sent
    assert sim.metrics()["rotate_accepted"] == 0
    return report, run_dir


def test_ctrl_c_during_resolution_resumes_resolution_then_rotates(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim = make_sim(devices=1500, time_scale=20.0)
    ids = _ids(sim, tmp_path / "devices.csv", 200)
    flags = ["--yes", "--max-devices", "1000", *sim_flags(sim)]
    # 200 lookups at 20 reads a second: resolution lasts long enough to be interrupted
    cli = _Cli(["rotate", "devices.csv", "--read-budget", "20/1s", *flags], sim, tmp_path)
    cli.wait_for(cli.said("resolving: looked up devices"), "resolution progress")
    report, run_dir = _interrupt_before_sending(cli, sim, tmp_path, ids)
    assert {row["Status"] for row in report.values()} <= {"not_sent", "not_found"}
    # the lookups answered before the Ctrl-C stay resolved (the progress line followed one)
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        (left,) = db.execute("SELECT COUNT(*) FROM devices WHERE status = 'resolving'").fetchone()
    assert 0 <= left < len(ids)
    reads = sim.metrics()["reads"]

    resumed = _Cli(["rotate", "--resume", str(run_dir), *FAST, *flags], sim, tmp_path)
    code, output = resumed.finish()
    assert code == 0, output
    assert f"{plural(left, 'row')} still to resolve" in output
    assert sim.metrics()["reads"] - reads == left  # only the rest is looked up again
    report = _report(run_dir)
    assert all(report[i]["Status"] == "queued" for i in ids)
    accepted = sim.metrics()["accepted_by_device"]
    assert set(accepted) == set(ids) and all(n == 1 for n in accepted.values())


def test_ctrl_c_during_the_key_count_check_resumes_with_the_plan_checks_then_rotates(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    """--check-keys reads after resolution and before the plan is recorded: interrupted there,
    the printed resume command plans (the checks again) and rotates, each device once."""
    sim = make_sim(devices=1500, time_scale=20.0)
    ids = _ids(sim, tmp_path / "devices.csv", 200)
    flags = ["--yes", "--max-devices", "1000", "--check-keys", *sim_flags(sim)]
    # 200 key reads at 20 a second: the check lasts long enough to be interrupted
    cli = _Cli(["rotate", "devices.csv", "--read-budget", "20/1s", *flags], sim, tmp_path)
    cli.wait_for(cli.said("resolution: "), "the end of resolution")
    reads = sim.metrics()["reads"]
    cli.wait_for(lambda: sim.metrics()["reads"] > reads, "the key reads")
    report, run_dir = _interrupt_before_sending(cli, sim, tmp_path, ids)
    assert {row["Status"] for row in report.values()} == {"not_sent"}

    resumed = _Cli(["rotate", "--resume", str(run_dir), *FAST, *flags], sim, tmp_path)
    code, output = resumed.finish()
    assert code == 0, output
    assert "0 rows still to resolve" in output
    assert "listed the inventory" not in output  # nothing left to resolve: no tenant listing
    report = _report(run_dir)
    queued = {i for i, row in report.items() if row["Status"] == "queued"}
    held = {i for i, row in report.items() if row["Reason"].startswith("key_ceiling")}
    assert queued and held and queued | held == set(ids), output  # the checks ran on resume
    accepted = sim.metrics()["accepted_by_device"]
    assert set(accepted) == queued and all(n == 1 for n in accepted.values())


def test_second_ctrl_c_while_sending_leaves_at_once_with_the_resume_command(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim = make_sim(devices=1500, time_scale=20.0)
    ids = _ids(sim, tmp_path / "devices.csv", 200)
    flags = ["--yes", "--max-devices", "1000", *sim_flags(sim)]
    cli = _Cli(["rotate", "devices.csv", "--write-budget", "40/1s", *flags], sim, tmp_path)
    cli.wait_for(lambda: sim.metrics()["rotate_accepted"] >= 40, "sending")
    cli.proc.send_signal(signal.SIGINT)
    cli.wait_for(cli.said("interrupt: finishing"), "the first interrupt taken")
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    (run_dir,) = run_dirs(tmp_path)
    assert _resume_line(run_dir, tmp_path) in output
    assert not list(run_dir.glob("*report*"))  # no stale or half-written report
    resumed = _Cli(["rotate", "--resume", str(run_dir), *FAST, *flags], sim, tmp_path)
    code, output = resumed.finish()
    assert code == 0, output
    assert all(row["Status"] == "queued" for row in _report(run_dir).values())
    assert set(sim.metrics()["accepted_by_device"]) == set(ids)


def test_ctrl_c_during_verification_exits_130_with_the_verify_command(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim = make_sim(devices=300)
    _ids(sim, tmp_path / "devices.csv", 30)
    wait = ["--verify-wait", "1h", "--verify-every", "10m"]
    cli = _Cli(["rotate", "devices.csv", "--yes", *wait, *sim_flags(sim)], sim, tmp_path)
    cli.wait_for(cli.said("verification ("), "a verification round after rotating")
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output  # interrupted, not "every device queued"
    (run_dir,) = run_dirs(tmp_path)
    verify = f"resume with  batch-rotate verify {run_dir.relative_to(tmp_path)}"
    assert verify in output
    assert _state(run_dir) == "finished"  # the rotation itself was complete
    report = _report(run_dir)
    assert all(row["Status"] == "queued" for row in report.values())
    assert all(row["Verification"] for row in report.values())  # the report has the checks
    # and `verify` itself, interrupted, says how to go on
    cli = _Cli(["verify", str(run_dir), "--wait", "1h", "--every", "10m"], sim, tmp_path)
    cli.wait_for(cli.said("verification ("), "a verification round")
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    assert verify in output


def test_ctrl_c_while_the_report_is_written_removes_it_and_prints_the_commands(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim = make_sim(devices=50)
    # unusable rows resolve without a read: the run goes straight to a long report
    rows = "\n".join(f"not-a-device-{n}" for n in range(30_000))
    (tmp_path / "big.csv").write_text(f"managedDeviceId\n{rows}\n", encoding="utf-8")
    cli = _Cli(["rotate", "big.csv", "--yes", *sim_flags(sim)], sim, tmp_path)
    cli.wait_for(
        lambda: bool(run_dirs(tmp_path)) and any(run_dirs(tmp_path)[0].glob(".report-*.csv")),
        "the report being written",
    )
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    assert "Traceback" not in output
    (run_dir,) = run_dirs(tmp_path)
    text = " ".join(output.split())
    assert "interrupted while writing the report" in text
    assert f"batch-rotate report {run_dir.relative_to(tmp_path)}" in text
    assert f"batch-rotate rotate --resume {run_dir.relative_to(tmp_path)}" in text
    assert not list(run_dir.glob("*report*"))  # neither half-written nor stale
    again = subprocess.run(
        [sys.executable, "-m", "batch_rotate", "report", str(run_dir)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(_report(run_dir)) == 30_000
