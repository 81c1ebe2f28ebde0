"""Verification end to end: devices check in (or not) on the simulated tenant; the report's
verification column matches the simulator's ground truth device for device."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant
from batch_rotate.sim.escrow import EscrowConfig

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]
LIVELY = EscrowConfig(
    checkin_mean_s=400.0,  # 1 s at time scale 400
    never_share=0.1,
    fail_share=0.12,
    not_supported_share=0.1,
    ceiling_share=0.12,
    near_ceiling_share=0.1,
)

VERIFY_DONE = (0, 1, 75)  # verify answered: verified / something to look at / pending


def _report(run_dir: Path) -> dict[str, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {
            row["Intune device ID"]: row
            for row in csv.DictReader(handle)
            if row["Intune device ID"]
        }


@pytest.mark.parametrize("strategy", ["per-device", "listing"])
def test_rotate_then_verify_matches_ground_truth(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path, strategy: str
) -> None:
    sim = make_sim(time_scale=400.0, escrow=LIVELY)
    flags = sim_flags(sim)
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--write-budget", "400/1s", *flags], env=sim.env()
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    result = run_cli(
        [
            "verify",
            str(run_dir),
            "--wait",
            "6s",
            "--every",
            "0.5s",
            "--ca-bundle",
            str(sim.ca_path),
            "--keys-strategy",
            strategy,
        ],
        env=sim.env(),
    )
    assert result.exit_code in VERIFY_DONE, result.output  # 0, 1 (look) or 75 (pending)
    assert f"verification ({strategy} key reads)" in result.output
    report = _report(run_dir)
    truth = sim.verification_truth()
    queued = {i: r for i, r in report.items() if r["Status"] == "queued"}
    assert set(truth) == set(queued)
    got = {i: r["Verification"] for i, r in queued.items()}
    assert got == truth
    assert {"verified", "failed", "not_supported", "done_no_new_key", "pending"} <= set(
        got.values()
    )
    for row in queued.values():
        if row["Verification"] == "failed":
            assert (
                row["Device error code"].startswith("0x8031") and "; " in row["Verification detail"]
            )
        if row["Verification"] == "verified":
            assert row["New key escrowed at (UTC)"] > row["Requested at (UTC)"]
        if row["Verification"] == "done_no_new_key":
            assert "key_ceiling: 200 keys" in row["Verification detail"]
        if row["Verification"] == "pending":
            assert "last check-in" in row["Verification detail"]
    assert "verification:" in result.output


def test_verify_without_key_permission_says_unknown(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(
        time_scale=400.0,
        escrow=EscrowConfig(
            checkin_mean_s=40.0,
            never_share=0.0,
            fail_share=0.0,
            not_supported_share=0.0,
            ceiling_share=0.0,
        ),
        roles=["DeviceManagementManagedDevices.ReadWrite.All"],
    )
    result = run_cli(
        [
            "rotate",
            str(SAMPLE),
            "--yes",
            "--verify-wait",
            "3s",
            "--verify-every",
            "0.5s",
            *sim_flags(sim),
        ],
        env=sim.env(),
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    statuses = {r["Verification"] for r in _report(run_dir).values() if r["Status"] == "queued"}
    assert statuses == {"unknown"}
    assert any(
        "BitlockerKey.ReadBasic.All" in r["Verification detail"] for r in _report(run_dir).values()
    )


def test_plan_check_keys_flags_devices_near_the_ceiling(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    sim = make_sim(escrow=LIVELY)
    result = run_cli(["plan", str(SAMPLE), "--check-keys", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    # flagged devices are held back (ineligible) unless --allow-key-ceiling (issue 12 item 3)
    rows = [r for r in _report(run_dir).values() if r["Status"] in ("would_rotate", "ineligible")]
    flagged = {r["Intune device ID"] for r in rows if r["Reason"].startswith("key_ceiling:")}
    expected = {
        r["Intune device ID"]
        for r in rows
        if (r["Status"] == "would_rotate" or r["Reason"].startswith("key_ceiling:"))
        and sim.initial_key_count(r["Intune device ID"]) >= 190
    }
    assert flagged == expected and flagged
    assert all(r["Status"] == "ineligible" for r in rows if r["Reason"].startswith("key_ceil"))


def test_verify_and_resume_reuse_the_runs_trust_settings(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    # exactly as the README writes it: no --ca-bundle, no --graph-url
    checked = run_cli(["verify", str(run_dir)], env=sim.env())
    assert checked.exit_code == 75, checked.output  # verified it could: all still pending
    resumed = run_cli(["rotate", "--resume", str(run_dir), "--yes"], env=sim.env())
    assert resumed.exit_code == 0, resumed.output
    # a recorded CA that has gone is a clear error, not a TLS failure
    moved = sim.ca_path.with_name("moved.pem")
    sim.ca_path.rename(moved)
    try:
        gone = run_cli(["verify", str(run_dir)], env=sim.env())
    finally:
        moved.rename(sim.ca_path)
    assert gone.exit_code == 2
    assert "--ca-bundle" in gone.output and "no longer exists" in gone.output
