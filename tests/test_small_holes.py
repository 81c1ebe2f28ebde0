"""Small holes of issue 19 item 7, end to end: `HTTPS://` in upper case, SIGHUP."""

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
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]


def test_upper_case_https_urls_are_accepted(sim: SimTenant, run_cli: Cli) -> None:
    flags = [flag.replace("https://", "HTTPS://") for flag in sim_flags(sim)]
    assert "HTTPS://" in " ".join(flags)
    result = run_cli(["plan", str(SAMPLE), *flags], env=sim.env())
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="the platform has no SIGHUP")
def test_sighup_stops_a_run_as_sigterm_does(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    """A closed terminal: the batches in flight finish, the report matches the journal, exit
    130 with the resume command (it used to kill the run, leaving a stale report)."""
    sim = make_sim(devices=120)
    ids = [d["id"] for d in sim.inventory if eligible(d)][:40]
    (tmp_path / "devices.csv").write_text("managedDeviceId\n" + "\n".join(ids) + "\n")
    args = ["rotate", "devices.csv", "--yes", "--write-budget", "2/1s", *sim_flags(sim)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_rotate", *args],
        cwd=tmp_path,
        env={**os.environ, **sim.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a speed threshold
        while sim.metrics()["rotate_accepted"] < 1:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the run never started sending"
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output
    (run_dir,) = run_dirs(tmp_path)
    assert f"--resume {run_dir.relative_to(tmp_path)}" in output
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        statuses = {row["Intune device ID"]: row["Status"] for row in csv.DictReader(handle)}
    accepted = set(sim.metrics()["accepted_by_device"])
    assert {i for i, s in statuses.items() if s == "queued"} == accepted  # report is current
    assert "not_sent" in statuses.values()


def test_ctrl_c_stops_a_device_code_wait_at_once(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    """Nobody enters the code: the first Ctrl-C stops the wait (MSAL used to poll until the
    code expired, 15 minutes), exit 130, and the polling stops."""
    sim = make_sim()
    env = {
        **os.environ,
        **sim.env(),
        "AZURE_TENANT_ID": sim.config.tenant_id,
        "AZURE_CLIENT_ID": sim.config.client_id,
    }
    env.pop("AZURE_CLIENT_SECRET", None)
    cache = tmp_path / "tokens.json"
    args = ["plan", str(SAMPLE), "--auth", "device-code", "--token-cache", str(cache)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_rotate", *args, *sim_flags(sim)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a speed threshold
        while sim.count("devicecode_requests") < 1 or sim.metrics()["token_requests"] < 1:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the device code flow never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)  # the code would expire in 900 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output
    assert "device code sign-in stopped" in " ".join(output.split())
    assert "Traceback" not in output
    polls = sim.metrics()["token_requests"]
    time.sleep(2.5)  # MSAL would poll every second
    assert sim.metrics()["token_requests"] == polls
    assert sim.metrics()["graph_requests"] == 0
