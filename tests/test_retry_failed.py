"""`rotate --resume RUN --retry-failed` (issue 14 item 2): devices that failed for a transient
reason (retries given up on 5xx, timeouts, resets or 429s) go again, flagged in the report;
a device's own 4xx failure never does."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from batch_rotate.sim import SimConfig, SimTenant
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags

TRANSIENT = {  # by input row (the header is row 1)
    2: (503, "gave up after 8 attempts; last: HTTP 503 ServiceUnavailable"),
    3: (429, "still throttled after 100 tries; run again later"),
    4: (None, "gave up after 1 attempts; last: ClientConnectorError talking to https://x"),
}
OWN = {
    5: (400, "HTTP 400 BadRequest: not supported on this device"),
    6: (403, "HTTP 403 Forbidden"),
    7: (404, "HTTP 404 ResourceNotFound"),
}


def _cli(args: list[str], sim: SimTenant, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **sim.env()}
    env.pop("SSL_CERT_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "batch_rotate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["Intune device ID"]: row for row in csv.DictReader(handle)}


def _rotated(
    make_sim: Callable[..., SimTenant], tmp_path: Path, count: int
) -> tuple[SimTenant, list[str], Path]:
    """A finished run that queued `count` devices (the tests then edit its journal)."""
    sim = make_sim(devices=300)
    ids = [d["id"] for d in sim.inventory if eligible(d)][:count]
    (tmp_path / "devices.csv").write_text("managedDeviceId\n" + "\n".join(ids) + "\n")
    first = _cli(["rotate", "devices.csv", "--yes", *sim_flags(sim)], sim, tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = run_dirs(tmp_path)
    return sim, ids, run_dir


def test_retry_failed_resends_only_the_transient_failures(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim, ids, run_dir = _rotated(make_sim, tmp_path, 10)
    # the run as it would have ended with these failures (their requests never took effect)
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        for row, (http, reason) in {**TRANSIENT, **OWN}.items():
            db.execute(
                "UPDATE devices SET status = 'failed', http_status = ?, reason = ? WHERE row = ?",
                (http, reason, row),
            )
    before = dict(sim.metrics()["accepted_by_device"])

    plain = _cli(["rotate", "--resume", str(run_dir), "--yes"], sim, tmp_path)
    assert plain.returncode == 1, plain.stderr  # without the flag, failures stay failures
    assert sim.metrics()["accepted_by_device"] == before

    listed = _cli(["runs"], sim, tmp_path)
    assert f"--resume {run_dir.relative_to(tmp_path)} --retry-failed" in listed.stdout

    retried = _cli(["rotate", "--resume", str(run_dir), "--yes", "--retry-failed"], sim, tmp_path)
    assert retried.returncode == 1, retried.stderr  # the 4xx devices are still failed
    assert "3 of 6 failed devices failed for a transient reason" in retried.stderr
    after = sim.metrics()["accepted_by_device"]
    report = _report(run_dir)
    for row in TRANSIENT:
        device = ids[row - 2]
        assert after[device] == before[device] + 1  # sent once more
        assert report[device]["Status"] == "queued"
        assert report[device]["Reason"].startswith("retried_after_failure: accepted by Intune")
    for row in OWN:
        device = ids[row - 2]
        assert after[device] == before[device]  # never again
        assert report[device]["Status"] == "failed"
        assert not report[device]["Reason"].startswith("retried_after_failure")


def test_failures_of_an_outage_with_max_attempts_1_go_again_with_retry_failed(
    tmp_path: Path,
) -> None:
    """Connections refused while Graph is down give up at once with --max-attempts 1."""
    config = SimConfig(devices=1500, time_scale=20.0)
    sim = SimTenant(config, workdir=tmp_path / "sim").start()
    port = urlsplit(sim.graph_url).port
    ids = [d["id"] for d in sim.inventory if eligible(d)][:200]
    (tmp_path / "devices.csv").write_text("managedDeviceId\n" + "\n".join(ids) + "\n")
    flags = ["--yes", "--max-devices", "1000", "--max-attempts", "1", "--timeout", "2"]
    env = {**os.environ, **sim.env()}
    env.pop("SSL_CERT_FILE", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_rotate",
            "rotate",
            "devices.csv",
            "--write-budget",
            "40/1s",
            *flags,
            *sim_flags(sim),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while sim.metrics()["rotate_accepted"] < 40:
            assert time.monotonic() < deadline, "the run never started sending"
            time.sleep(0.05)
    finally:
        sim.stop()
    output, _ = proc.communicate(timeout=120)
    # 1: each batch gave up at its first refused connection; 3: then the breaker opened too
    assert proc.returncode in (1, 3), output
    (run_dir,) = run_dirs(tmp_path)
    failed = {i for i, row in _report(run_dir).items() if row["Status"] == "failed"}
    assert failed, output  # refused connections gave up at once
    assert all(_report(run_dir)[i]["Reason"].startswith("gave up after 1") for i in failed)
    again = SimTenant(config, workdir=tmp_path / "sim", port=port or 0).start()
    try:
        done = _cli(
            [
                "rotate",
                "--resume",
                str(run_dir),
                "--retry-failed",
                "--write-budget",
                "200/1s",
                *flags,
            ],
            again,
            tmp_path,
        )
    finally:
        again.stop()
    assert done.returncode == 0, done.stderr
    report = _report(run_dir)
    assert all(row["Status"] == "queued" for row in report.values())
    assert all(report[i]["Reason"].startswith("retried_after_failure:") for i in failed)


LOOKUPS = {  # by input row: lookups that failed during resolution, so nothing was ever sent
    2: "lookup_failed: gave up after 8 attempts; last: HTTP 503 ServiceUnavailable",
    3: "lookup_failed: still throttled after 100 tries; run again later",
    4: "lookup_failed: HTTP 403 Forbidden",
}


def test_retry_failed_looks_up_again_the_rows_whose_lookup_gave_up(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    """A lookup that gave up on the service (5xx, 429) is resolved again and the device sent;
    one Graph refused (403) is not; the rows that were queued are not sent again."""
    sim, ids, run_dir = _rotated(make_sim, tmp_path, 8)
    with sqlite3.connect(run_dir / "journal.sqlite") as db:  # as if these lookups had failed
        for row, reason in LOOKUPS.items():
            db.execute(
                "UPDATE devices SET status = 'failed', reason = ?, intune_id = '', "
                "device_name = '', entra_device_id = '', os = '', attempts = 0, "
                "requested_at = '', accepted_at = '', sent_at = '', http_status = NULL, "
                "client_request_id = '' WHERE row = ?",
                (reason, row),
            )
    before = dict(sim.metrics()["accepted_by_device"])
    listed = _cli(["runs"], sim, tmp_path)
    assert f"--resume {run_dir.relative_to(tmp_path)} --retry-failed" in listed.stdout

    plain = _cli(["rotate", "--resume", str(run_dir), "--yes"], sim, tmp_path)
    assert sim.metrics()["accepted_by_device"] == before, plain.stderr

    retried = _cli(["rotate", "--resume", str(run_dir), "--yes", "--retry-failed"], sim, tmp_path)
    assert retried.returncode == 1, retried.stderr  # the 403 lookup is still failed
    assert "2 of 3 failed lookups failed for a transient reason" in retried.stderr
    with sqlite3.connect(run_dir / "journal.sqlite") as db:  # the first resolution is kept
        (resolution,) = db.execute("SELECT value FROM meta WHERE key = 'resolution'").fetchone()
    assert resolution.startswith("looked up devices by id: 8 reads")
    assert resolution.endswith(
        "then for --retry-failed: looked up devices by id: 2 reads in 1 $batch request"
    )
    after = sim.metrics()["accepted_by_device"]
    report = _report(run_dir)
    for n, device in enumerate(ids, start=2):
        if n in (2, 3):
            assert after[device] == before[device] + 1  # resolved, then sent once
            assert report[device]["Status"] == "queued"
            assert report[device]["Reason"].startswith("retried_after_failure: accepted")
        else:
            assert after[device] == before[device]  # queued before, or refused: never again
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = {int(r["Row"]): r for r in csv.DictReader(handle)}
    assert rows[4]["Status"] == "failed" and rows[4]["Reason"].startswith("lookup_failed: HTTP 403")
    assert len(rows) == len(ids)
