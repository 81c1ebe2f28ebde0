"""A year of four quarterly sweeps against the simulated tenant: keys age between sweeps, devices
go offline and come back, rotations fail on the device and recover. Every device that can comply
ends compliant, none is rotated more than once per sweep, and the trend shows it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.escrow import EscrowConfig
from batch_rotate.sim.targeting import TargetingConfig
from batch_rotate.sweep_posture import CANNOT_COMPLY

from .conftest import sim_flags
from .schema_check import problems, schema

Cli = Callable[..., Result]
pytestmark = pytest.mark.slow
QUARTER_DAYS = 91


def _sweep(run_cli: Cli, sim: SimTenant) -> tuple[int, dict]:
    # --recent 0: the run index's hold-back is on the local clock, which the simulated year
    # does not move; the sweep's own --resend-after (tenant clock) is what this test exercises.
    args = ["sweep", "--keys-older-than", "90d", "--policy-name", "quarterly", "--yes"]
    args += ["--verify-wait", "1s", "--verify-every", "0.2s", "--recent", "0", "--json"]
    args += ["--write-budget", "1000/1s"]  # the sim runs 1000x: its 200/20s is 10,000/s
    result = run_cli([*args, *sim_flags(sim)], env=sim.env())
    doc = json.loads(result.stdout)
    assert not problems(doc, schema("sweep.schema.json")), problems(
        doc, schema("sweep.schema.json")
    )
    assert doc["exit_code"] == result.exit_code
    return result.exit_code, doc


def test_a_year_of_quarterly_sweeps(make_sim: Callable[..., SimTenant], run_cli: Cli) -> None:
    escrow = EscrowConfig(
        checkin_mean_s=30.0,
        never_share=0.0,
        fail_share=0.0,
        not_supported_share=0.0,
        ceiling_share=0.04,
        near_ceiling_share=0.0,
    )
    sim = make_sim(
        devices=120,
        time_scale=1000,
        targeting=TargetingConfig(),
        escrow=escrow,
        cloud_pc_share=0.05,
    )
    due = sim.select_truth("keys_older", sim.tenant_now() - timedelta(days=90))
    windows = sorted(d for d in due if sim.initial_key_count(d) < 200)  # can comply
    offline_q1, failing_q1, offline_q2 = set(windows[:4]), set(windows[4:8]), set(windows[8:11])
    sent_total: dict[str, int] = {}
    codes, docs = [], []
    for quarter in range(4):
        if quarter == 0:
            sim.set_offline(offline_q1)
            sim.set_failing(failing_q1)
        elif quarter == 1:  # the first ones are back and fixed; others go away for a quarter
            sim.set_failing(set())
            sim.set_offline(offline_q2)
        elif quarter == 2:
            sim.set_offline(set())
        if quarter:
            sim.advance_days(QUARTER_DAYS)  # every key ages a quarter
        before = dict(sim.metrics()["accepted_by_device"])
        code, doc = _sweep(run_cli, sim)
        after = sim.metrics()["accepted_by_device"]
        sent = {d: n - before.get(d, 0) for d, n in after.items() if n - before.get(d, 0)}
        assert max(sent.values(), default=0) <= 1, "a device was rotated twice in one sweep"
        assert sum(sent.values()) == doc["counts"]["to_send"]
        for device in sent:
            sent_total[device] = sent_total.get(device, 0) + 1
        codes.append(code)
        docs.append(doc)

    first, last = docs[0], docs[-1]
    # the first quarter: offline devices wait (75), failing ones need a look (1)
    assert codes[0] == 1
    reasons = {e["intune_device_id"]: e["reason"] for e in first["exceptions"]}
    assert all(reasons[d] == "device_failed" for d in failing_q1), reasons
    assert all(reasons[d] == "pending" for d in offline_q1), reasons
    # the second sweep verified the first's late arrivals before reading the keys
    assert docs[1]["runs"]["verified"] == first["runs"]["rotation"]
    assert docs[1]["previous_sweep"]["sweep_id"] == first["sweep_id"]
    # a run whose devices were all verified (or sent again later) is not read again
    assert first["runs"]["rotation"][0] not in docs[3]["runs"]["verified"]
    # at the end only devices that cannot comply are left, and the sweep says compliant
    assert codes[-1] == 0, last["exceptions"]
    assert {e["reason"] for e in last["exceptions"]} <= {w.value for w in CANNOT_COMPLY}
    assert {e["reason"] for e in last["exceptions"]} >= {"cloud_pc", "key_ceiling"}
    for device in offline_q1 | failing_q1 | offline_q2:
        assert device not in {e["intune_device_id"] for e in last["exceptions"]}
    # the trend: four points, one per quarter, ending at everything that can comply
    trend = last["trend"]
    assert [p["sweep_id"] for p in trend] == [d["sweep_id"] for d in docs]
    can_comply = last["posture"]["population"] - len(last["exceptions"])
    assert trend[-1]["compliant_after"] == can_comply
    assert trend[0]["share_after"] < trend[-1]["share_after"]
    assert all(p["share_before"] < p["share_after"] for p in trend)  # keys aged, then rotated
    sweep_dir = Path(last["sweep_dir"])
    assert {"sweep.json", "sweep.xlsx", "summary.md", "events.jsonl"} <= {
        p.name for p in sweep_dir.iterdir()
    }
