"""`python -m batch_rotate.sim.bench_recent [DEVICES ...]`: the cost of `plan
--check-recent-rotations` (issue 20 item 7) at 10,000 and 100,000 eligible devices, time-scaled
like `bench.py`; prints each plan with and without the check, in real-budget terms. Never asserts.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from batch_rotate.sim import SimConfig, SimTenant
from batch_rotate.sim.bench import (
    LATENCY_S,
    SCALE,
    _baseline,
    _eligible_ids,
    _fleet,
    _run_cli,
    _write_ids,
)
from batch_rotate.sim.bench_machine import cpu_model

SIZES = (10_000, 100_000)
READ_LIMIT = 2000  # the default --read-budget, 2000/20s, and the simulated tenant's read limit
WINDOW_S = 20.0
PORTAL_SHARE = 0.01  # devices an admin rotated in the portal just before the plan
STALE_SHARE = 0.3  # devices holding a months-old failed rotate result (must not hold back)


def _plan(sim: SimTenant, workdir: Path, devices_csv: Path, *extra: str) -> dict[str, Any]:
    """One `plan` as a child at the scaled default read budget; the tenant's counts for it."""
    workdir.mkdir()
    sim.reset_metrics()
    budget = f"{READ_LIMIT}/{WINDOW_S / SCALE:g}s"
    extra = ("--read-budget", budget, *extra)
    result = _run_cli(sim, workdir, devices_csv, *extra, command_name="plan")
    metrics = sim.metrics()
    held = sum(1 for row in result["report"] if row["Reason"].startswith("recent_rotation:"))
    return {
        "wall_s": result["wall_s"],
        "cpu_s": result["cpu_s"],
        "client_cpu_share": result["client_cpu_share"],
        "sim_cpu_share": result["sim_cpu_share"],
        "reads": metrics["reads"],
        "batch_requests": metrics["batch_requests"],
        "throttled_429": metrics["throttled_429_inner"] + metrics["throttled_429_outer"],
        "held_back": held,
        "exit": result["exit"],
    }


def measure(devices: int, tmp: Path) -> dict[str, Any]:
    """Both plans on one tenant and one list of `devices` eligible devices, a hundredth of them
    rotated in the portal a moment before (the check must hold exactly those back)."""
    config = SimConfig(
        devices=_fleet(devices),
        time_scale=SCALE,
        latency_s=LATENCY_S,
        stale_action_results_share=STALE_SHARE,
    )
    with SimTenant(config, workdir=tmp / "sim") as sim:
        ids = _eligible_ids(sim, devices)
        portal = ids[:: int(1 / PORTAL_SHARE)]
        if asyncio.run(_baseline(sim, portal))["lost"]:
            raise SystemExit("the portal rotations before the plan were throttled away")
        _write_ids(tmp / "devices.csv", ids)
        without = _plan(sim, tmp / "without", tmp / "devices.csv")
        with_check = _plan(sim, tmp / "with", tmp / "devices.csv", "--check-recent-rotations")
    extra_s = with_check["wall_s"] - without["wall_s"]
    return {
        "devices": devices,
        "portal_rotated": len(portal),
        "without": without,
        "with": with_check,
        "extra_reads": with_check["reads"] - without["reads"],
        "extra_batch_requests": with_check["batch_requests"] - without["batch_requests"],
        "extra_s": extra_s,
        "extra_real_s": extra_s * SCALE,  # the same reads at the unscaled 2000/20s budget
        "floor_real_s": devices / READ_LIMIT * WINDOW_S,  # the budget alone: reads / rate
    }


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def report(r: dict[str, Any]) -> None:
    """Print one size's figures, and the README's sentence."""
    n, w, c = r["devices"], r["without"], r["with"]
    for name, p in (("without", w), ("with   ", c)):
        print(
            f"  plan {name} the check: {p['wall_s']:7.1f} s scaled ({p['reads']:,} reads in "
            f"{p['batch_requests']:,} $batch, {p['throttled_429']} 429s, {p['held_back']:,} "
            f"held back, exit {p['exit']}; cpu client {p['client_cpu_share']:.2f} "
            f"sim {p['sim_cpu_share']:.2f})",
            flush=True,
        )
    print(
        f"  recent_check {n:,} devices: +{r['extra_reads']:,} reads in "
        f"+{r['extra_batch_requests']:,} $batch, +{r['extra_s']:.1f} s scaled = about "
        f"{_minutes(r['extra_real_s'])} at the "
        f"default {READ_LIMIT}/{WINDOW_S:g}s budget (floor {_minutes(r['floor_real_s'])}; "
        f"{r['portal_rotated']:,} portal rotations, {c['held_back']:,} held back)",
        flush=True,
    )


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or list(SIZES)
    print(
        f"--check-recent-rotations bench: {platform.machine()}, {os.cpu_count()} cores, "
        f"{cpu_model()}, Python {platform.python_version()}, time scale x{SCALE:g}",
        flush=True,
    )
    for devices in sizes:
        print(f"{devices:,} eligible devices:", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-recent-") as tmp:
            report(measure(devices, Path(tmp)))


if __name__ == "__main__":
    main(sys.argv[1:])
