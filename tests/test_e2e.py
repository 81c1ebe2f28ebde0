"""End to end: the real CLI, MSAL and aiohttp against the simulated tenant over TLS."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from typer.testing import Result

from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]


def _report(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_rotate_sample_end_to_end(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    report = _report(run_dir)
    sample = _sample_rows()
    # one report row per input row, in order, pointing at the same line of the file
    assert [r["Row"] for r in report] == [str(i) for i in range(2, len(sample) + 2)]
    assert [r["Input value"] for r in report] == [s["Device ID"].strip() for s in sample]
    by_status: dict[str, list[dict[str, str]]] = {}
    for row in report:
        by_status.setdefault(row["Status"], []).append(row)
    assert set(by_status) <= {"queued", "ineligible", "not_found", "invalid_input"}
    assert any("not_windows" in r["Reason"] for r in by_status["ineligible"])
    assert len(by_status["not_found"]) == 1
    assert len(by_status["invalid_input"]) == 1
    queued = by_status["queued"]
    assert len(queued) >= 40
    metrics = sim.metrics()
    assert metrics["rotate_accepted"] == len(queued)
    assert metrics["duplicate_rotations"] == 0
    assert set(metrics["accepted_by_device"]) == {r["Intune device ID"] for r in queued}
    for row in queued:
        assert row["HTTP status"] == "204"
        assert len(row["Client request ID"]) == 36
        assert row["Attempts"] == "1"
        assert row["Requested at (UTC)"].endswith("Z")
    # the workbook says the same, with the summary sheet
    book = openpyxl.load_workbook(run_dir / "report.xlsx")
    assert book.sheetnames[:2] == ["Devices", "Summary"]
    assert book["Devices"].max_row == len(sample) + 1
    assert "queued" in result.output


def test_no_secret_or_token_anywhere(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    secret = sim.env()["AZURE_CLIENT_SECRET"]
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--client-secret", secret, *sim_flags(sim)],
        env={k: v for k, v in sim.env().items() if k != "AZURE_CLIENT_SECRET"},
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    texts = [result.output]
    for path in run_dir.iterdir():
        texts.append(path.read_bytes().decode("latin-1"))
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        texts.extend(str(row) for row in db.execute("SELECT * FROM meta"))
    # the workbook is zipped: open it and read every cell of every sheet
    book = openpyxl.load_workbook(run_dir / "report.xlsx", read_only=True)
    cells = [
        str(value)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    ]
    book.close()
    assert any("command" in c.lower() for c in cells)  # the Summary's command line was read
    texts.extend(cells)
    for text in texts:
        assert secret not in text
        assert "eyJ" not in text  # no JWT (access token or assertion) anywhere


def test_plan_sends_no_write(sim: SimTenant, run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    statuses = {r["Status"] for r in _report(run_dir)}
    assert "would_rotate" in statuses and "queued" not in statuses
    assert sim.metrics()["rotate_calls"] == 0


def test_without_terminal_and_without_yes_it_refuses(sim: SimTenant, run_cli: Cli) -> None:
    result = run_cli(["rotate", str(SAMPLE), *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 2
    assert "--yes" in result.output
    assert sim.metrics()["rotate_calls"] == 0


def test_guard_stops_before_any_write(sim: SimTenant, run_cli: Cli) -> None:
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--max-devices", "3", *sim_flags(sim)], env=sim.env()
    )
    assert result.exit_code == 2
    assert "--max-devices" in result.output and "nothing was sent" in result.output
    assert sim.metrics()["rotate_calls"] == 0


def test_wrong_secret_exits_3_with_one_clear_line(sim: SimTenant, run_cli: Cli) -> None:
    env = {**sim.env(), "AZURE_CLIENT_SECRET": "wrong-secret-value"}
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=env)
    assert result.exit_code == 3
    assert "invalid_client" in result.output
    assert "Traceback" not in result.output
    assert "wrong-secret-value" not in result.output


def test_missing_permission_stops_before_writes(
    make_sim: Callable[..., SimTenant], run_cli: Cli
) -> None:
    sim = make_sim(roles=["DeviceManagementManagedDevices.Read.All"])
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 3
    assert "DeviceManagementManagedDevices.ReadWrite.All" in result.output
    assert "admin consent" in result.output
    assert sim.metrics()["rotate_calls"] == 0


def test_missing_configuration_is_a_usage_error(run_cli: Cli) -> None:
    result = run_cli(["rotate", str(SAMPLE), "--yes"], env={})
    assert result.exit_code == 2
    assert "AZURE_TENANT_ID" in result.output


@pytest.mark.parametrize("name", ["nope.csv", "devices.pdf"])
def test_unreadable_input_exits_2(sim: SimTenant, run_cli: Cli, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".pdf"):
        path.write_bytes(b"%PDF-1.4")
    result = run_cli(["rotate", str(path), "--yes", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 2, result.output
    assert name in result.output
    assert "Traceback" not in result.output


def test_no_identifier_column_names_what_was_found(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("Owner,Department\nalice,IT\n", encoding="utf-8")
    result = run_cli(["rotate", str(path), "--yes", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 2
    assert "Owner" in result.output and "Device ID" in result.output


def test_report_command_rerenders_from_the_journal(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    assert run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env()).exit_code == 0
    (run_dir,) = run_dirs(tmp_path)
    before = _report(run_dir)
    (run_dir / "report.csv").unlink()
    (run_dir / "report.xlsx").unlink()
    result = run_cli(["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert _report(run_dir) == before
    assert (run_dir / "report.xlsx").is_file()


def test_inner_throttling_resends_only_throttled_items(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    # The sim allows 10 writes per 1 s window; the client is told its budget is far higher, so
    # its first $batch of 20 alone (however slow a loaded machine makes it) meets inner 429s,
    # and every device must still be accepted exactly once.
    sim = make_sim(time_scale=20.0, app_write_limit=10, tenant_write_limit=20)
    result = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--write-budget", "400/1s", *sim_flags(sim)], env=sim.env()
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    queued = [r for r in _report(run_dir) if r["Status"] == "queued"]
    metrics = sim.metrics()
    assert metrics["throttled_429_inner"] > 0
    assert metrics["rotate_accepted"] == len(queued)
    assert metrics["duplicate_rotations"] == 0
    assert metrics["early_retries"] == 0
    assert any(int(r["Attempts"]) > 1 for r in queued)


def test_runs_that_never_sent_are_not_offered_for_resume(
    sim: SimTenant, run_cli: Cli, tmp_path: Path
) -> None:
    refused = run_cli(["rotate", str(SAMPLE), *sim_flags(sim)], env=sim.env())  # no terminal
    assert refused.exit_code == 2
    guarded = run_cli(
        ["rotate", str(SAMPLE), "--yes", "--max-devices", "1", *sim_flags(sim)], env=sim.env()
    )
    assert guarded.exit_code == 2 and "--max-devices" in guarded.output
    assert sim.metrics()["rotate_calls"] == 0
    again = run_cli(["rotate", str(SAMPLE), "--dry-run", *sim_flags(sim)], env=sim.env())
    assert again.exit_code == 0
    assert "--resume" not in again.output  # neither refused run is offered
    states = set()
    for run_dir in run_dirs(tmp_path):
        with sqlite3.connect(run_dir / "journal.sqlite") as db:
            states.add(db.execute("SELECT value FROM meta WHERE key='state'").fetchone()[0])
    assert states == {"refused", "plan"}


def test_each_rotation_records_the_tenants_clock(
    make_sim: Callable[..., SimTenant], run_cli: Cli, tmp_path: Path
) -> None:
    from datetime import datetime

    sim = make_sim(clock_offset_s=-120.0)  # the tenant's clock two minutes behind this machine
    result = run_cli(["rotate", str(SAMPLE), "--yes", *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    queued = [r for r in _report(run_dir) if r["Status"] == "queued"]
    assert queued
    for row in queued:
        local = datetime.fromisoformat(row["Requested at (UTC)"].replace("Z", "+00:00"))
        tenant = datetime.fromisoformat(
            row["Accepted at (tenant clock, UTC)"].replace("Z", "+00:00")
        )
        assert -130 < (tenant - local).total_seconds() < -110


def test_a_stopping_error_is_printed_once(sim: SimTenant, run_cli: Cli) -> None:
    env = {**sim.env(), "AZURE_CLIENT_SECRET": "wrong-secret-value"}
    result = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=env)
    assert result.exit_code == 3
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
