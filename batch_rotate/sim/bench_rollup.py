"""`python -m batch_rotate.sim.bench_rollup [TENANTS [DEVICES]]`: time the campaign roll-up.

A campaign of 50 tenants x 2,000 devices (default), each tenant a finished run's synthetic
journal (bench_report's shape: a tenth failing, verification on most), one tenant failed at
pre-flight. The roll-up (rollup.xlsx, rollup.csv, rollup-summary.csv) is written in a fresh
child process (its own peak RSS). Prints figures and the goal; never asserts.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from batch_rotate.campaign_model import TenantEntry, TenantOutcome
from batch_rotate.sim.bench_machine import cpu_model
from batch_rotate.sim.bench_report import build_journal

GOAL = "50 tenants x 2,000 devices (100,000 rows) written in < 60 s"


def outcomes(campaign_dir: Path, tenants: int) -> list[TenantOutcome]:
    """The campaign's tenants: every run folder found, then one that failed pre-flight."""
    found = [
        TenantOutcome(
            TenantEntry(f"tenant{n:03d}.example", f"Customer {n:03d}", n + 1),
            f"00000000-0000-4000-8000-{n:012d}",
            "client secret",
            run_dir=campaign_dir / f"tenant{n:03d}",
            duration_s=600.0,
            budget_use=0.95,
        )
        for n in range(tenants)
    ]
    failed = TenantOutcome(
        TenantEntry("unconsented.example", "Unconsented", tenants + 1),
        "",
        "client secret",
        preflight="AADSTS65001: the app has no admin consent in this tenant",
        fix="grant admin consent for the app in this tenant, then run the campaign again",
    )
    return [*found, failed]


def _child(campaign_dir: Path, tenants: int) -> dict[str, Any]:
    """The roll-up, in this (fresh) process: seconds, CPU seconds, peak RSS, file sizes."""
    from batch_rotate.report.rollup import write_rollup

    started, cpu = time.perf_counter(), time.process_time()
    paths = write_rollup(campaign_dir, outcomes(campaign_dir, tenants))
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "xlsx_mb": paths.xlsx.stat().st_size / 1e6,
        "csv_mb": paths.csv.stat().st_size / 1e6,
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(Path(argv[1]), int(argv[2]))))
        return
    tenants = int(argv[0]) if argv else 50
    devices = int(argv[1]) if len(argv) > 1 else 2000
    print(
        f"rollup bench: {platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        campaign_dir = Path(folder) / "campaign"
        started = time.perf_counter()
        for n in range(tenants):
            build_journal(campaign_dir / f"tenant{n:03d}", devices)
        took = time.perf_counter() - started
        print(f"{tenants} journals of {devices:,} rows built in {took:.1f} s", flush=True)
        done = subprocess.run(  # noqa: S603 (this interpreter, this module, our arguments)
            [
                sys.executable,
                "-m",
                "batch_rotate.sim.bench_rollup",
                "--child",
                str(campaign_dir),
                str(tenants),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(done.stdout)
    rows = tenants * devices
    print(
        f"rollup {tenants} tenants x {devices:,} devices ({rows:,} rows): "
        f"{figures['seconds']:.1f} s ({rows / figures['seconds']:,.0f} rows/s), "
        f"cpu {figures['cpu_s']:.1f} s, peak {figures['peak_rss_mb']:.0f} MB, "
        f"rollup.xlsx {figures['xlsx_mb']:.1f} MB, rollup.csv {figures['csv_mb']:.1f} MB",
        flush=True,
    )
    print(f"goal (issue 21): {GOAL}")
    print(f"  rollup_100k_s {figures['seconds']:.1f}  (cpu {figures['cpu_s']:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
