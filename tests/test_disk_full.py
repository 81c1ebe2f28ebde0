"""A full disk is a named error (exit 2, "free some space, then resume"), never a crash, and the
journal stays consistent: the resume sends each device once (issue 19 item 7)."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import Result

from batch_rotate.journal import Journal
from batch_rotate.journal_send import SendRecords
from batch_rotate.models import Outcome
from batch_rotate.sim import SimTenant

from .conftest import SAMPLE, run_dirs, sim_flags

Cli = Callable[..., Result]


def test_a_full_disk_while_recording_answers_stops_with_exit_2_and_resumes_once(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SendRecords.record
    calls = []

    def record(self: SendRecords, outcomes: Sequence[Outcome]) -> None:
        calls.append(len(outcomes))
        if len(calls) >= 2:  # the first batch's answers fit, then the disk is full
            raise sqlite3.OperationalError("database or disk is full")
        real(self, outcomes)

    monkeypatch.setattr(SendRecords, "record", record)
    flags = ["--yes", "--batch-size", "10", "--max-concurrency", "1", *sim_flags(sim)]
    result = run_cli(["rotate", str(SAMPLE), *flags], env=sim.env())
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split()).lower()
    assert "no space left" in said and "free some space, then resume" in said
    assert "unexpected" not in said
    (run_dir,) = run_dirs(tmp_path)
    with closing(Journal.open(run_dir, write=False)) as journal:
        journal.check()  # consistent: the failed write was rolled back, nothing half-written
        assert journal.in_flight()  # the answers that could not be written stay to check
    monkeypatch.setattr(SendRecords, "record", real)  # space freed
    again = run_cli(["rotate", "--resume", str(run_dir), *flags], env=sim.env())
    assert again.exit_code == 0, again.output
    accepted = sim.metrics()["accepted_by_device"]
    assert accepted and all(n == 1 for n in accepted.values())  # nothing sent twice


def test_a_full_disk_while_writing_the_report_is_named(
    sim: SimTenant, run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batch_rotate.report.files as files  # the reports' atomic replace

    def replace(source: object, target: object) -> None:  # the last write: moving it in place
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", replace)
    result = run_cli(["plan", str(SAMPLE), *sim_flags(sim)], env=sim.env())
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split()).lower()
    assert "no space left" in said and "the report" in said
