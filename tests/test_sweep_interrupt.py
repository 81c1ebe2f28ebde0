"""A sweep stopped while it sends: by Ctrl-C (it stops cleanly, recorded as interrupted, not
finished), or killed (a second Ctrl-C leaves the same way, with `os._exit`). Either way the next
sweep of the policy finds its rotation run, holds what it sent and sends the rest: every due
device rotated exactly once. Real simulated tenant, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from batch_rotate.graph.pacer import Budget
from batch_rotate.graph.runner import RunnerStats
from batch_rotate.select import Criteria
from batch_rotate.settings import Credentials, Settings
from batch_rotate.sim import SimTenant
from batch_rotate.sim.escrow import EscrowConfig
from batch_rotate.sim.targeting import TargetingConfig
from batch_rotate.sweep import SWEEP_FILE, Policy, run_sweep

from .conftest import sim_flags, sim_settings

pytestmark = pytest.mark.slow
DAY = 86_400.0


def _ctrl_c_after(rotated: int) -> Callable[[RunnerStats, int], None]:
    """A progress callback that sends this process one SIGINT once `rotated` were accepted."""
    sent = [False]

    def on_progress(stats: RunnerStats, _total: int) -> None:
        if stats.succeeded >= rotated and not sent[0]:
            sent[0] = True
            os.kill(os.getpid(), signal.SIGINT)

    return on_progress


def _sim(make_sim: Callable[..., SimTenant]) -> tuple[SimTenant, set[str]]:
    escrow = EscrowConfig(checkin_mean_s=30.0, never_share=0.1)
    sim = make_sim(devices=150, time_scale=1000, targeting=TargetingConfig(), escrow=escrow)
    return sim, sim.select_truth("keys_older", sim.tenant_now() - timedelta(days=90))


def _settings(sim: SimTenant, reports: Path) -> tuple[Settings, Credentials]:
    """Slow writes, small batches: a stop lands while most devices are still to send. No check
    of other runs' recent rotations: the sweep's own history must hold what it sent."""
    return sim_settings(
        sim,
        reports,
        batch_size=2,
        max_concurrency=1,
        write_budget=Budget(8, 1.0),
        read_budget=Budget(100_000, 1.0),
        recent_s=0.0,
    )


def _policy(sim: SimTenant) -> Policy:
    return Policy(Criteria(keys_older_than_s=90 * DAY), sim.config.tenant_id, "quarterly")


def _the_next_sweep_finishes(
    sim: SimTenant,
    due: set[str],
    settings: Settings,
    credentials: Credentials,
    stopped: dict[str, Any],
) -> None:
    sent = sim.metrics()["accepted_by_device"]
    assert 6 <= len(sent) < len(due)
    second = asyncio.run(run_sweep(_policy(sim), settings=settings, credentials=credentials))
    again = json.loads((second.sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
    assert again["state"] == "finished"
    assert again["previous_sweep"]["sweep_id"] == stopped["sweep_id"]
    assert stopped["runs"]["rotation"][0] in again["runs"]["verified"]  # its rotations checked
    accepted = sim.metrics()["accepted_by_device"]
    assert set(accepted) == due and set(accepted.values()) == {1}  # the rest, none twice


def test_a_sweep_stopped_by_ctrl_c_is_interrupted_and_the_next_one_finishes_it(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    sim, due = _sim(make_sim)
    settings, credentials = _settings(sim, tmp_path / "reports")
    first = asyncio.run(
        run_sweep(
            _policy(sim), settings=settings, credentials=credentials, on_progress=_ctrl_c_after(6)
        )
    )
    assert first.exit_code == 130
    doc = json.loads((first.sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
    assert doc["state"] == "interrupted" and len(doc["runs"]["rotation"]) == 1
    assert "| State | interrupted (stopped before the end" in (
        first.sweep_dir / "summary.md"
    ).read_text(encoding="utf-8")
    _the_next_sweep_finishes(sim, due, settings, credentials, doc)


def test_a_sweep_killed_while_sending_is_found_by_the_next_one(
    make_sim: Callable[..., SimTenant], tmp_path: Path
) -> None:
    """SIGKILL: no handler runs, nothing is written after the kill. The rotation run was
    recorded in sweep.json before the first request, so the next sweep still holds it."""
    sim, due = _sim(make_sim)
    settings, credentials = _settings(sim, tmp_path / "reports")
    env = {**os.environ, **sim.env()}
    env.pop("SSL_CERT_FILE", None)
    slow = ["--write-budget", "8/1s", "--batch-size", "2", "--max-concurrency", "1"]
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-m", "batch_rotate", "sweep", "--keys-older-than", "90d", "--policy-name"),
            *("quarterly", "--yes", "--recent", "0", *slow, *sim_flags(sim)),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while sim.metrics()["rotate_accepted"] < 6:
        assert proc.poll() is None and time.monotonic() < deadline, "it never started sending"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    (path,) = _policy(sim).folder(settings.reports_dir).glob(f"*/{SWEEP_FILE}")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["state"] == "running" and len(doc["runs"]["rotation"]) == 1  # as it was left
    _the_next_sweep_finishes(sim, due, settings, credentials, doc)
