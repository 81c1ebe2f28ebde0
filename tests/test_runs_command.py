"""`batch-rotate runs`, damaged journals and the last-resort handler (issue 14 items 1 and 5):
every run folder is listed with what to do next, and nothing ever prints a traceback."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from batch_rotate.cli import app
from batch_rotate.journal import Journal
from batch_rotate.models import DeviceRef, IdKind, Status
from batch_rotate.runlock import RunLock
from batch_rotate.runs import render
from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, sim_flags
from .schema_check import problems, schema

TENANT = "00000000-0000-4000-8000-000000000001"
ENV = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": "app", "AZURE_CLIENT_SECRET": "s"}


def _run(
    reports: Path,
    name: str,
    statuses: list[Status],
    *,
    state: str,
    dry_run: bool = False,
    failures: dict[int, tuple[int | None, str]] | None = None,
) -> Path:
    """A run folder whose rows have the given stored statuses (row n is statuses[n-1])."""
    run_dir = reports / name
    meta = {
        "tenant_id": TENANT,
        "input_file": f"/data/{name}.csv",
        "input_sha256": name,
        "started_at": "2024-05-01T10:00:00.000Z",
        "dry_run": str(dry_run),
        "state": state,
        "resolution": "looked up devices by id",
        "graph_url": "https://127.0.0.1:9",
        "authority_url": "https://127.0.0.1:9/t",
    }
    refs = [
        DeviceRef(n, f"{n:08d}-0000-4000-8000-{n:012d}", IdKind.INTUNE_ID, f"{n:012d}")
        for n in range(1, len(statuses) + 1)
    ]
    journal = Journal.create(run_dir, meta)
    try:
        journal.add_refs(refs)
        with journal._db:
            for ref, status in zip(refs, statuses, strict=True):
                http, reason = (failures or {}).get(ref.row, (None, ""))
                journal._db.execute(
                    "UPDATE devices SET status = ?, intune_id = ?, http_status = ?, reason = ? "
                    "WHERE row = ?",
                    (status.value, ref.value, http, reason, ref.row),
                )
    finally:
        journal.close()
    return run_dir


def _invoke(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Result:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, args, env=env or {}, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_runs_lists_every_run_with_state_counts_and_next_command(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    q, p, f = Status.QUEUED, Status.PENDING, Status.FAILED
    _run(reports, "a-plan", [p, p, Status.NOT_FOUND], state="plan", dry_run=True)
    _run(reports, "b-interrupted", [q, q, p], state="interrupted")
    _run(reports, "c-finished", [q, q], state="finished")
    _run(
        reports,
        "d-failed",
        [q, f, f],
        state="finished",
        failures={2: (429, "still throttled after 100 tries; run again later"), 3: (403, "x")},
    )
    _run(reports, "e-refused", [p, p], state="refused")
    running = _run(reports, "f-running", [q, p], state="rotating")
    broken = reports / "g-broken"
    broken.mkdir()
    (broken / "journal.sqlite").write_bytes(b"this is not a database at all" * 100)
    with RunLock(running):
        result = _invoke(["runs", "--json"], tmp_path)
        human = _invoke(["runs"], tmp_path)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert problems(doc, schema("runs.schema.json")) == []
    runs = {r["run_id"]: r for r in doc["runs"]}
    # newest first: folders named by hand sort by their journal's last write
    assert list(runs) == [
        "g-broken",
        "f-running",
        "e-refused",
        "d-failed",
        "c-finished",
        "b-interrupted",
        "a-plan",
    ]
    assert runs["a-plan"]["counts"] == {"would_rotate": 2, "not_found": 1}
    assert runs["a-plan"]["next_command"] == "batch-rotate rotate --plan reports/a-plan"  # apply it
    assert runs["b-interrupted"]["counts"] == {"queued": 2, "not_sent": 1}
    resume = f"batch-rotate rotate --resume {Path('reports', 'b-interrupted')}"
    assert runs["b-interrupted"]["next_command"] == resume
    assert runs["c-finished"]["next_command"] == (
        f"batch-rotate verify {Path('reports', 'c-finished')}"
    )
    assert runs["d-failed"]["next_command"] == (
        f"batch-rotate rotate --resume {Path('reports', 'd-failed')} --retry-failed"
    )
    assert runs["e-refused"]["next_command"] is None  # it sent nothing: no hint offers it
    assert runs["f-running"]["state"] == "running"
    assert f"pid {os.getpid()}" in runs["f-running"]["detail"]
    assert runs["f-running"]["next_command"] is None
    assert runs["g-broken"]["state"] == "unreadable"
    assert "journal.sqlite" in runs["g-broken"]["detail"]
    assert runs["b-interrupted"]["tenant_id"] == TENANT
    assert runs["b-interrupted"]["input_file"] == "/data/b-interrupted.csv"
    assert human.exit_code == 0 and "Traceback" not in human.output
    assert resume in human.output and "unreadable" in human.output


def test_runs_with_no_reports_folder_says_so(tmp_path: Path) -> None:
    result = _invoke(["runs", "--reports-dir", "nowhere"], tmp_path)
    assert result.exit_code == 0
    assert "no runs under nowhere" in result.output


def _corrupt_pages(path: Path) -> None:
    """Overwrite the middle of the database (the devices' pages), keeping its header."""
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096, "the journal is too small to corrupt in the middle"
    data[3 * 4096 : len(data) - 4096] = b"\xab" * (len(data) - 4 * 4096)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["pages", "header"])
def test_a_damaged_journal_is_a_clear_error_for_report_resume_and_runs(
    tmp_path: Path, where: str
) -> None:
    reports = tmp_path / "reports"
    run_dir = _run(
        reports, "damaged", [Status.QUEUED] * 1500 + [Status.PENDING] * 1500, state="interrupted"
    )
    render(run_dir)
    journal = run_dir / "journal.sqlite"
    if where == "pages":
        _corrupt_pages(journal)
    else:
        journal.write_bytes(b"\0" * 100 + journal.read_bytes()[100:])
    for args in (["report", str(run_dir)], ["rotate", "--resume", str(run_dir), "--yes"]):
        result = _invoke(args, tmp_path, ENV)
        assert result.exit_code == 2, (args, result.output)
        text = " ".join(result.output.split())
        assert "Traceback" not in result.output
        assert str(journal) in text and "damaged" in text, text
        assert "restore journal.sqlite from a backup" in text and "new run" in text
    assert (run_dir / "report.xlsx").is_file() and (run_dir / "report.csv").is_file()
    listed = json.loads(_invoke(["runs", "--json"], tmp_path).stdout)["runs"]
    assert listed[0]["state"] == "unreadable" and "damaged" in listed[0]["detail"]


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def _crash_log(folder: Path) -> str:
    log = folder / "crash.log"
    assert log.is_file()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    return log.read_text(encoding="utf-8")


def test_an_unexpected_error_in_a_run_folder_goes_to_its_crash_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = _run(tmp_path / "reports", "r", [Status.QUEUED], state="finished")

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom in the report writer")

    monkeypatch.setattr("batch_rotate.runs.write_reports", boom)
    result = _invoke(["report", str(run_dir)], tmp_path)
    assert result.exit_code == 70
    line = _one_line(result.output)
    assert str(run_dir / "crash.log") in line and "RuntimeError" in line
    text = _crash_log(run_dir)
    assert "Traceback" in text and "RuntimeError: boom in the report writer" in text


def test_an_unexpected_error_before_any_run_folder_goes_to_the_reports_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "elsewhere"
    reports.mkdir()

    def boom(*_: object, **__: object) -> Callable[..., object]:
        raise KeyError("no such thing")

    monkeypatch.setattr("batch_rotate.runs.list_runs", boom)
    result = _invoke(["runs", "--reports-dir", str(reports)], tmp_path)
    assert result.exit_code == 70
    assert str(reports / "crash.log") in _one_line(result.output)
    assert "KeyError: 'no such thing'" in _crash_log(reports)


def test_plan_shows_resolution_progress_and_a_crash_mid_run_goes_to_the_run_folder(
    sim: SimTenant,
    run_cli: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=sim.env())
    assert planned.exit_code == 0, planned.output
    assert "resolving: looked up devices: " in planned.output  # item 6: never silent

    def boom(*_: object, **__: object) -> list[str]:
        raise ZeroDivisionError("a stage went wrong")

    monkeypatch.setattr("batch_rotate.stages.guard_recent", boom)
    before = {p.parent for p in (tmp_path / "reports").glob("*/journal.sqlite")}
    crashed = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=sim.env())
    assert crashed.exit_code == 70
    # the new run's folder (two runs in one second sort by their random suffix, not by time)
    (run_dir,) = {p.parent for p in (tmp_path / "reports").glob("*/journal.sqlite")} - before
    line = [x for x in crashed.output.splitlines() if "crash.log" in x]
    assert len(line) == 1 and "ZeroDivisionError" in line[0], crashed.output
    assert "Traceback" not in crashed.output
    assert str(Path("reports", run_dir.name, "crash.log")) in line[0]
    assert "ZeroDivisionError: a stage went wrong" in _crash_log(run_dir)
