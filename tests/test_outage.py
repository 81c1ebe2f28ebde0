"""Graph goes away mid-run: the breaker stops sending, exits 3 with the resume command, no device
is `failed` for the outage, and resuming after Graph returns queues every remaining device once."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from batch_rotate.sim import SimConfig, SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Intune device ID"]: row for row in csv.DictReader(handle)}


def _cli(args: list[str], sim: SimTenant, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **sim.env()}
    env.pop("SSL_CERT_FILE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "batch_rotate", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_outage_mid_run_exits_3_then_resume_queues_the_rest_once(tmp_path: Path) -> None:
    config = SimConfig(devices=1500, time_scale=20.0)
    sim = SimTenant(config, workdir=tmp_path / "sim").start()
    port = urlsplit(sim.graph_url).port
    ids = [d["id"] for d in sim.inventory if eligible(d)][:240]
    (tmp_path / "devices.csv").write_text("managedDeviceId\n" + "\n".join(ids) + "\n")
    flags = ["--yes", "--write-budget", "100/1s", "--max-devices", "1000", "--timeout", "2"]
    proc = _cli(["rotate", "devices.csv", *flags, *sim_flags(sim)], sim, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while sim.metrics()["rotate_accepted"] < 60:
            assert time.monotonic() < deadline, "the run never started sending"
            time.sleep(0.05)
        first = dict(sim.metrics()["accepted_by_device"])
    finally:
        sim.stop()  # Graph goes away
    stopped = time.monotonic()
    output, _ = proc.communicate(timeout=120)
    assert time.monotonic() - stopped < 60 + 15  # within the breaker's bound
    assert proc.returncode == 3, output
    assert "Graph unreachable since" in output
    (run_dir,) = run_dirs(tmp_path)
    resume = f"batch-rotate rotate --resume {run_dir.relative_to(tmp_path)}"
    assert resume in output
    report = _report(run_dir)
    statuses = {row["Status"] for row in report.values()}
    assert "failed" not in statuses  # an outage is not a device's failure
    assert "not_sent" in statuses

    again = SimTenant(config, workdir=tmp_path / "sim", port=port or 0).start()  # Graph is back
    try:
        # exactly as printed (endpoints and CA come from the run), with this test's fast budget;
        # no grace: the restarted simulator forgot the rotations in flight, no later read shows
        # them (a real tenant would), so waiting would change nothing
        args = ["rotate", "--resume", str(run_dir), *flags, "--uncertain-grace", "0s"]
        proc = _cli(args, again, tmp_path)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        second = again.metrics()["accepted_by_device"]
    finally:
        again.stop()
    report = _report(run_dir)
    assert all(report[i]["Status"] == "queued" for i in ids)
    # every device accepted once over both lives of the tenant, except those in flight when it
    # went away: the restarted simulator forgot their rotation (a real tenant would not), so the
    # check found none and they were re-sent, flagged
    assert set(first) | set(second) == set(ids)
    both = set(first) & set(second)
    assert len(both) <= 20 * 4  # at most the batches on the wire
    assert all(report[i]["Reason"].startswith("resent_after_interrupt") for i in both)


def test_plan_with_graph_unreachable_exits_3_promptly(tmp_path: Path) -> None:
    import socket

    from typer.testing import CliRunner

    from batch_rotate.cli import app

    from .conftest import SAMPLE

    with socket.socket() as probe:  # a port nobody listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with SimTenant(SimConfig(), workdir=tmp_path / "sim") as sim:  # sign-in works
        started = time.monotonic()
        result = CliRunner().invoke(
            app,
            [
                "plan",
                str(SAMPLE),
                "--authority-url",
                sim.authority_url,
                "--graph-url",
                f"https://127.0.0.1:{closed}",
                "--scope",
                f"{sim.graph_url}/.default",
                "--ca-bundle",
                str(sim.ca_path),
                "--reports-dir",
                str(tmp_path / "reports"),
                "--retry-delay",
                "0.05",
            ],
            env=sim.env(),
        )
    assert result.exit_code == 3, result.output
    assert "Graph unreachable since" in " ".join(result.output.split())
    assert time.monotonic() - started < 30  # refused connections open the breaker at once
