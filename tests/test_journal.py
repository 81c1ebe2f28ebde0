"""The run journal: ordering of writes, resume state, report rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_rotate.errors import JournalError
from batch_rotate.journal import Journal
from batch_rotate.models import Device, DeviceRef, IdKind, Outcome, Resolution, Status


def _journal(tmp_path: Path, n: int = 3, dry_run: bool = False) -> Journal:
    journal = Journal.create(tmp_path / "run", {"tenant_id": "t", "dry_run": str(dry_run)})
    journal.add_resolutions(
        Resolution(
            DeviceRef(row, f"dev{row}", IdKind.INTUNE_ID, f"dev{row}"),
            Status.PENDING,
            Device(id=f"dev{row}", name=f"N{row}"),
        )
        for row in range(2, 2 + n)
    )
    return journal


def test_create_refuses_an_existing_journal(tmp_path: Path) -> None:
    _journal(tmp_path).close()
    with pytest.raises(JournalError, match="--resume"):
        Journal.create(tmp_path / "run", {})


def test_open_refuses_a_folder_without_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="reports/<run-id>"):
        Journal.open(tmp_path)


def test_in_flight_rows_are_uncertain_then_resent_flagged(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.mark_in_flight([(2, "c2"), (3, "c3")])
    journal.record([Outcome(row=2, status=Status.QUEUED, http_status=204, client_request_id="c2")])
    journal.close()  # the process "dies" with row 3 on the wire

    reopened = Journal.open(tmp_path / "run")
    assert reopened.counts() == {"queued": 1, "uncertain": 1, "not_sent": 1}
    todo = reopened.to_send()
    assert [(t.row, t.attempts) for t in todo] == [(3, 1), (4, 0)]
    rows = {r.row: r for r in reopened.report_rows()}
    assert rows[2].status == "queued" and rows[2].attempts == 1
    assert rows[3].reason.startswith("resent_after_interrupt")
    reopened.mark_in_flight([(3, "c3b"), (4, "c4")])
    reopened.record(
        [
            Outcome(row=3, status=Status.QUEUED, http_status=204),
            Outcome(
                row=4,
                status=Status.FAILED,
                http_status=404,
                error_code="ResourceNotFound",
                message="gone",
                reason="HTTP 404",
            ),
        ]
    )
    rows = {r.row: r for r in reopened.report_rows()}
    assert rows[3].status == "queued" and rows[3].attempts == 2
    assert "resent_after_interrupt" in rows[3].reason
    assert rows[4].status == "failed" and rows[4].error_code == "ResourceNotFound"
    assert reopened.to_send() == []


def test_dry_run_shows_pending_as_would_rotate(tmp_path: Path) -> None:
    journal = _journal(tmp_path, dry_run=True)
    assert journal.counts() == {"would_rotate": 3}
    assert all(r.status == "would_rotate" for r in journal.report_rows())


def test_retry_outcome_keeps_row_pending_with_last_error(tmp_path: Path) -> None:
    journal = _journal(tmp_path, n=1)
    journal.mark_in_flight([(2, "c2")])
    journal.record(
        [Outcome(row=2, status=Status.PENDING, http_status=429, error_code="TooManyRequests")]
    )
    (row,) = journal.report_rows()
    assert row.status == "not_sent" and row.http_status == 429
    assert [t.row for t in journal.to_send()] == [2]
