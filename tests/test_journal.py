"""The run journal: ordering of writes, resume state, report rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from batch_rotate.eligibility import ineligibility
from batch_rotate.errors import JournalError
from batch_rotate.journal import Journal
from batch_rotate.journal_plan import MatchTexts
from batch_rotate.journal_schema import SCHEMA_VERSION
from batch_rotate.models import Device, DeviceRef, IdKind, Outcome, ReportRow, Status
from batch_rotate.present import shown_counts, shown_rows

GOOD = {"os": "Windows", "os_version": "10.0.22631.1", "join_type": "azureADJoined"}


def _device(n: int, **changes: str) -> Device:
    values = {"id": f"dev{n}", "name": f"N{n}", "entra_device_id": f"e{n}", **GOOD, **changes}
    return Device(management_agent="mdm", **values)


def _resolve(journal: Journal) -> None:
    journal.resolve_rows(
        {
            kind: MatchTexts(f"not_found: {kind}", ("ambiguous: ", f" share {kind} (", ")"))
            for kind in IdKind
        },
        duplicate=("duplicate: same device as row ", ""),
    )


def _add(journal: Journal, devices: list[Device]) -> None:
    journal.add_inventory((d, ineligibility(d) or "", "") for d in devices)


def _rows(journal: Journal) -> list[ReportRow]:
    """Rows as the report shows them."""
    dry_run = journal.meta().get("dry_run") == "True"
    return list(shown_rows(journal.report_rows(), dry_run=dry_run))


def _counts(journal: Journal) -> dict[str, int]:
    return shown_counts(journal.counts(), dry_run=journal.meta().get("dry_run") == "True")


def _journal(tmp_path: Path, n: int = 3, dry_run: bool = False) -> Journal:
    journal = Journal.create(tmp_path / "run", {"tenant_id": "t", "dry_run": str(dry_run)})
    journal.add_refs(
        DeviceRef(row, f"dev{row}", IdKind.INTUNE_ID, f"dev{row}") for row in range(2, 2 + n)
    )
    _add(journal, [_device(row) for row in range(2, 2 + n)])
    _resolve(journal)
    return journal


def test_create_refuses_an_existing_journal(tmp_path: Path) -> None:
    _journal(tmp_path).close()
    with pytest.raises(JournalError, match="--resume"):
        Journal.create(tmp_path / "run", {})


def test_open_refuses_a_folder_without_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="reports/<run-id>"):
        Journal.open(tmp_path)


def _as_schema_4(run_dir: Path) -> None:
    """Make a journal look written by schema 4 (before each row kept its device's flag)."""
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        db.execute("ALTER TABLE devices DROP COLUMN flag")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    db.close()


def test_a_schema_4_journal_reads_flags_from_its_inventory_and_keeps_them_brought_up_to_date(
    tmp_path: Path,
) -> None:
    journal = Journal.create(tmp_path / "run", {"tenant_id": "t", "dry_run": "True"})
    journal.add_refs(DeviceRef(row, f"dev{row}", IdKind.INTUNE_ID, f"dev{row}") for row in (2, 3))
    journal.add_inventory([(_device(2), "", "comanaged: note"), (_device(3), "", "")])
    _resolve(journal)
    journal.close()
    run_dir = tmp_path / "run"
    _as_schema_4(run_dir)
    for write in (False, True):  # read as it is (the join), then migrated (copied to the rows)
        opened = Journal.open(run_dir, write=write)
        assert opened.meta()["schema_version"] == ("4" if not write else SCHEMA_VERSION)
        assert [r.flag for r in opened.report_rows()] == ["comanaged: note", ""]
        assert _rows(opened)[0].reason.endswith("; comanaged: note")  # shown past its reason
        opened.close()
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        assert db.execute("SELECT flag FROM devices ORDER BY row").fetchall() == [
            ("comanaged: note",),
            ("",),
        ]
    db.close()


def test_a_device_listed_twice_before_matching_keeps_its_latest_copy_and_matches_once(
    tmp_path: Path,
) -> None:
    """Schema 6 stores a listing without a unique id (issue 23): the index built before
    matching removes the earlier copy, so the row is one device (not ambiguous), as listed last;
    once the index exists, a device stored again replaces itself."""
    journal = Journal.create(tmp_path / "run", {"tenant_id": "t", "dry_run": "True"})
    journal.add_refs(DeviceRef(row, f"dev{row}", IdKind.INTUNE_ID, f"dev{row}") for row in (2, 3))
    _add(journal, [_device(2, name="OLD"), _device(3)])
    _add(journal, [_device(2, name="NEW")])  # a page shifted: the device comes again
    _resolve(journal)
    rows = journal.report_rows()
    assert [(r.status, r.device_name) for r in rows] == [("pending", "NEW"), ("pending", "N3")]
    _add(journal, [_device(3, name="LATER")])
    count = journal._db.execute("SELECT COUNT(*), MAX(name) FROM inventory WHERE id = 'dev3'")
    assert count.fetchone() == (1, "LATER")
    journal.close()


def test_a_schema_5_journal_gains_the_unique_inventory_index_when_written(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "run", {"tenant_id": "t", "dry_run": "True"})
    journal.close()
    with sqlite3.connect(tmp_path / "run" / "journal.sqlite") as db:
        db.execute("DROP INDEX IF EXISTS inventory_id")
        db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    db.close()
    writer = Journal.open(tmp_path / "run")
    indexes = {r[1] for r in writer._db.execute("PRAGMA index_list(inventory)")}
    assert "inventory_id" in indexes and writer.meta()["schema_version"] == SCHEMA_VERSION
    writer.close()


def _as_schema_3(run_dir: Path) -> None:
    """Make a journal look written by schema 3 (before the inventory kept syncs and flags)."""
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        db.execute("ALTER TABLE devices DROP COLUMN flag")
        db.execute("ALTER TABLE inventory DROP COLUMN last_sync")
        db.execute("ALTER TABLE inventory DROP COLUMN flag")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.close()


def test_a_schema_3_journal_is_read_as_it_is_and_brought_up_to_date_to_write(
    tmp_path: Path,
) -> None:
    _journal(tmp_path).close()
    run_dir = tmp_path / "run"
    _as_schema_3(run_dir)
    reader = Journal.open(run_dir, write=False)
    assert reader.meta()["schema_version"] == "3" and len(_rows(reader)) == 3
    reader.close()
    writer = Journal.open(run_dir)
    assert writer.meta()["schema_version"] == SCHEMA_VERSION
    _add(writer, [_device(9)])  # a resumed resolution stores devices with the new columns
    assert writer.any_flagged() is False
    writer.close()


def test_open_refuses_an_unknown_schema(tmp_path: Path) -> None:
    _journal(tmp_path).close()
    with sqlite3.connect(tmp_path / "run" / "journal.sqlite") as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.close()
    for write in (True, False):
        with pytest.raises(JournalError, match="journal schema '2', expected"):
            Journal.open(tmp_path / "run", write=write)


def test_in_flight_rows_are_uncertain_then_resent_flagged(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.mark_in_flight([(2, "c2"), (3, "c3")])
    journal.record([Outcome(row=2, status=Status.QUEUED, http_status=204, client_request_id="c2")])
    journal.close()  # the process "dies" with row 3 on the wire

    reopened = Journal.open(tmp_path / "run")
    assert _counts(reopened) == {"queued": 1, "uncertain": 1, "not_sent": 1}
    # an unknown answer is never simply re-sent: it waits for the check
    assert [t.row for t in reopened.to_send()] == [4]
    assert [(t.row, t.device_id) for t in reopened.in_flight()] == [(3, "dev3")]
    assert reopened.in_flight()[0].sent_at.endswith("Z")
    reopened.settle_in_flight({}, resend=[3])  # the check found no rotation: send again
    todo = reopened.to_send()
    assert [(t.row, t.attempts) for t in todo] == [(3, 1), (4, 0)]
    rows = {r.row: r for r in _rows(reopened)}
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
    rows = {r.row: r for r in _rows(reopened)}
    assert rows[3].status == "queued" and rows[3].attempts == 2
    assert "resent_after_interrupt" in rows[3].reason
    assert rows[4].status == "failed" and rows[4].error_code == "ResourceNotFound"
    assert reopened.to_send() == []


def test_dry_run_shows_pending_as_would_rotate(tmp_path: Path) -> None:
    journal = _journal(tmp_path, dry_run=True)
    assert _counts(journal) == {"would_rotate": 3}
    assert all(r.status == "would_rotate" for r in _rows(journal))


def test_retry_outcome_keeps_row_pending_with_last_error(tmp_path: Path) -> None:
    journal = _journal(tmp_path, n=1)
    journal.mark_in_flight([(2, "c2")])
    journal.record(
        [Outcome(row=2, status=Status.PENDING, http_status=429, error_code="TooManyRequests")]
    )
    (row,) = _rows(journal)
    assert row.status == "not_sent" and row.http_status == 429
    assert [t.row for t in journal.to_send()] == [2]


def test_resolution_in_sql_gives_every_outcome(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "run", {})
    journal.add_refs(
        [
            DeviceRef(2, "N2", IdKind.DEVICE_NAME, "n2"),  # one device
            DeviceRef(3, "TWIN", IdKind.DEVICE_NAME, "twin"),  # two devices share the name
            DeviceRef(4, "dev2", IdKind.INTUNE_ID, "dev2"),  # same device as row 2
            DeviceRef(5, "nope", IdKind.DEVICE_NAME, "nope"),  # unknown
            DeviceRef(6, "MAC", IdKind.DEVICE_NAME, "mac"),  # not Windows
            DeviceRef(7, "", None, "", "empty Device name"),  # unusable
            DeviceRef(8, "SN-9", IdKind.SERIAL_NUMBER, "sn-9"),
        ]
    )
    _add(
        journal,
        [
            _device(2),
            _device(3, name="TWIN"),
            _device(4, name="twin"),
            _device(5, name="MAC", os="macOS"),
            Device(
                id="dev9",
                name="N9",
                serial_number="SN-9",
                entra_device_id="e9",
                management_agent="mdm",
                **GOOD,
            ),
        ],
    )
    _resolve(journal)
    rows = {r.row: r for r in _rows(journal)}
    assert rows[2].status == "not_sent" and rows[2].intune_device_id == "dev2"
    assert rows[3].status == "ambiguous" and "dev3" in rows[3].reason and "dev4" in rows[3].reason
    assert rows[4].status == "duplicate" and "row 2" in rows[4].reason
    assert rows[5].status == "not_found"
    assert rows[6].status == "ineligible" and rows[6].reason.startswith("not_windows")
    assert rows[7].status == "invalid_input" and rows[7].reason == "empty Device name"
    assert rows[8].status == "not_sent" and rows[8].intune_device_id == "dev9"
    assert [t.row for t in journal.to_send()] == [2, 8]


def test_an_ineligible_first_row_still_makes_later_rows_duplicates(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "run", {})
    journal.add_refs(DeviceRef(row, "dev5", IdKind.INTUNE_ID, "dev5") for row in (2, 3))
    _add(journal, [_device(5, os="iOS")])
    _resolve(journal)
    rows = {r.row: r.status for r in _rows(journal)}
    assert rows == {2: "ineligible", 3: "duplicate"}


def test_rows_stopped_before_resolution_say_why(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "run", {})
    journal.add_refs([DeviceRef(2, "dev2", IdKind.INTUNE_ID, "dev2")])
    journal.abandon_resolving("run stopped before any rotation: sign-in failed")
    (row,) = _rows(journal)
    assert row.status == "not_sent" and "sign-in failed" in row.reason
    assert journal.to_send() == []


def test_a_lost_answer_confirmed_by_the_check_is_queued_and_flagged(tmp_path: Path) -> None:
    journal = _journal(tmp_path, n=1)
    journal.mark_in_flight([(2, "c2")])
    journal.record([Outcome(row=2, status=Status.IN_FLIGHT, reason="answer lost after sending")])
    assert [t.row for t in journal.in_flight()] == [2] and journal.to_send() == []
    journal.settle_in_flight({2: ("accepted (confirmed)", "2026-11-27T10:00:00Z")}, resend=[])
    (row,) = _rows(journal)
    assert row.status == "queued" and row.accepted_at == "2026-11-27T10:00:00Z"
    assert row.reason.startswith("confirmed_after_lost_answer: accepted")
    assert not row.resent_after_interrupt and journal.in_flight() == []


def test_verify_exit_codes_tell_retry_later_from_look_at_this() -> None:
    from batch_rotate.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PENDING
    from batch_rotate.runkit import verify_exit_code

    assert verify_exit_code({"verified": 5}, False) == EXIT_OK
    assert verify_exit_code({}, False) == EXIT_OK  # nothing queued: nothing to wait for
    assert verify_exit_code({"verified": 5, "pending": 2}, False) == EXIT_PENDING == 75
    for look in ("failed", "done_no_new_key", "not_supported", "unknown"):
        assert verify_exit_code({"verified": 5, "pending": 2, look: 1}, False) == EXIT_FAILED
    assert verify_exit_code({"pending": 2}, True) == EXIT_INTERRUPTED
