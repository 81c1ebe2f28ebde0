"""Zero wrong outcomes (issue 10, "Done when", verification part): the real CLI against a tenant
that does everything at once (clock 2 minutes off either way, stale failed results, listing
omissions, offline and failing devices); every verdict must equal the simulator's truth.

VERIFY_TRUTH_DEVICES sets the number of devices rotated per run (1,000 in the suite).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.clock import Answer
from batch_rotate.sim.devices import Devices
from batch_rotate.sim.escrow import EscrowConfig
from batch_rotate.sim.inventory import eligible

from .conftest import run_dirs, sim_flags

Cli = Callable[..., Result]
DEVICES = int(os.environ.get("VERIFY_TRUTH_DEVICES", "1000"))
SCALE = 400.0  # a 20 s throttling window lasts 50 ms; a 160 s check-in takes 0.4 s
FATES = EscrowConfig(
    checkin_mean_s=160.0,  # 0.4 s: most check in while verify polls, all within its wait
    never_share=0.15,  # offline for good: stays pending, its stale result with it
    fail_share=0.15,  # fails at check-in with an HRESULT
    not_supported_share=0.05,
    ceiling_share=0.05,  # Entra already holds 200 keys: done, but no new key
    near_ceiling_share=0.05,
)
ROOMY = "100000/1s"  # the client's budgets: the sim's limits are raised to match
SIM_LIMITS: dict[str, Any] = {
    "app_write_limit": 100_000,
    "tenant_write_limit": 100_000,
    "app_any_limit": 1_000_000,
    "tenant_any_limit": 1_000_000,
}

VERIFY_DONE = (0, 1, 75)  # verify answered: verified / something to look at / pending


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {r["Intune device ID"]: r for r in csv.DictReader(handle) if r["Intune device ID"]}


@pytest.fixture
def stale_results_outlive_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hardest reading of GRAPH_NOTES.md "Action results": after a 204 the device's old
    (months-old, failed) result stays listed until the device checks in and replaces it."""
    original = Devices.rotate

    def rotate(self: Devices, version: str, device_id: str, *rest: Any, **named: Any) -> Answer:
        device = self.t.fleet.get(device_id)
        old = [
            dict(a)
            for a in (device or {}).get("deviceActionResults", [])
            if a["actionName"] == "rotateBitLockerKeys" and a["actionState"] != "pending"
        ]
        answer = original(self, version, device_id, *rest, **named)
        if answer[0] == 204 and device is not None and old:
            self.t.fleet.record_action(device["id"], old[0])
        return answer

    monkeypatch.setattr(Devices, "rotate", rotate)


@pytest.mark.usefixtures("stale_results_outlive_the_request")
@pytest.mark.parametrize("clock_offset_s", [-120.0, 120.0])
def test_every_verdict_equals_the_devices_true_fate(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path, clock_offset_s: float
) -> None:
    sim = make_sim(
        devices=int(DEVICES * 1.4) + 50,
        seed=10,
        time_scale=SCALE,
        clock_offset_s=clock_offset_s,
        stale_action_results_share=0.3,
        listing_omit_share=0.2,
        escrow=FATES,
        **SIM_LIMITS,
    )
    chosen = [d for d in sim.inventory if eligible(d)][:DEVICES]
    assert len(chosen) == DEVICES
    stale = {d["id"] for d in chosen if d["deviceActionResults"]}
    path = tmp_path / "entra.csv"
    path.write_text(
        "\n".join(["Azure AD Device ID", *(d["azureADDeviceId"] for d in chosen)]) + "\n",
        encoding="utf-8",
    )
    budgets = ["--read-budget", ROOMY]
    rotated = run_cli(
        [
            "rotate",
            str(path),
            "--yes",
            "--write-budget",
            ROOMY,
            *budgets,
            "--verify-wait",
            "0s",  # one round at once: devices that have not checked in show their old result
            *sim_flags(sim),
        ],
        env=sim.env(),
    )
    assert rotated.exit_code == 0, rotated.output
    assert "listed the inventory" in rotated.output  # Entra ids go through the listing
    (run_dir,) = run_dirs(tmp_path)
    first = _report(run_dir)
    waiting_behind_history = {
        i
        for i, r in first.items()
        if r["Verification"] == "pending"
        and "earlier request's (failed" in r["Verification detail"]
    }

    checked = run_cli(
        ["verify", str(run_dir), "--wait", "5s", "--every", "0.5s", *budgets], env=sim.env()
    )
    assert checked.exit_code in VERIFY_DONE, checked.output
    report = _report(run_dir)
    truth = sim.verification_truth()

    # Resolution: every listed device found (none not_found), each rotated once.
    assert {i: r["Status"] for i, r in report.items()} == {d["id"]: "queued" for d in chosen}
    assert set(truth) == {d["id"] for d in chosen}
    got = {i: r["Verification"] for i, r in report.items()}
    wrong = {i: (got[i], truth[i]) for i in truth if got[i] != truth[i]}
    assert wrong == {}, f"{len(wrong)} wrong outcomes, e.g. {list(wrong.items())[:5]}"

    # The run met every case the issue names, not just some of them.
    fates = Counter(truth.values())
    assert set(fates) == {"verified", "failed", "not_supported", "done_no_new_key", "pending"}
    stale_fates = Counter(truth[i] for i in stale)
    assert stale_fates["verified"] and stale_fates["pending"] and stale_fates["failed"]
    later = Counter(truth[i] for i in waiting_behind_history)
    assert later["verified"] and later["failed"]  # seen pending behind an old failure, then done
    for i in stale:
        row = report[i]
        if truth[i] == "pending":  # never checked in: its old failure is history, not the verdict
            assert "earlier request's (failed 0x" in row["Verification detail"]
            assert row["Device error code"] == "" and row["Device action state"] == ""
    for row in report.values():
        if row["Verification"] == "failed":
            assert row["Device error code"].startswith("0x8031")
            assert row["Verification detail"].startswith(row["Device error code"] + ": ")
    way = "behind" if clock_offset_s < 0 else "ahead of"
    notice = f"the tenant's clock is 120 s {way} this machine; verification uses the tenant's clock"
    assert notice in " ".join(checked.output.split())
