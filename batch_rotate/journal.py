"""The run journal: one SQLite database per run, the source of truth for resume and reports.

It stores; it never decides: eligibility, reason wording and display come from their stages.
Rows are marked `in_flight` and committed before their batch is sent; each answer is committed
as soon as it is read, so a kill at any instant resumes."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from batch_rotate.errors import DiskFullError, JournalError
from batch_rotate.journal_plan import PlanRecords
from batch_rotate.journal_schema import (
    JOURNAL_NAME,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    utc_now,
)
from batch_rotate.journal_send import SendRecords
from batch_rotate.models import (
    ReportRow,
    Status,
    Verdict,
    Verification,
)
from batch_rotate.runlock import RunLock


def damaged(path: Path, exc: BaseException | str) -> JournalError:
    """The error for a journal SQLite cannot read: which file, and what the operator can do."""
    return JournalError(
        f"{path}: the run journal is damaged ({exc}); nothing was sent. The reports already "
        f"written in {path.parent} are still there; restore {path.name} from a backup, or "
        "start a new run from the input file"
    )


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL ('database or disk is full') or the OS's ENOSPC / EDQUOT."""
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(folder: Path, exc: BaseException, what: str = "the run journal") -> DiskFullError:
    """The disk filled up: which folder, that nothing half-written stays, and what to do."""
    return DiskFullError(
        f"{folder}: no space left on its disk while writing {what} ({exc}); the journal keeps "
        "every complete write (the failed one was rolled back). Free some space, then resume "
        f"the run ({folder})"
    )


@contextlib.contextmanager
def journal_errors(run_dir: Path) -> Iterator[None]:
    """SQLite's 'malformed' and 'not a database' errors, met at any read, as `damaged`; a full
    disk at any write as `disk_full`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if is_disk_full(exc):
            raise disk_full(run_dir, exc) from None
        raise damaged(run_dir / JOURNAL_NAME, exc) from None
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(run_dir, exc) from None
        raise


@dataclass(frozen=True, slots=True)
class VerifyTarget:
    """A queued device whose rotation is not yet proven (or disproven)."""

    row: int
    device_id: str
    entra_device_id: str
    requested_at: str  # the local clock, when the request first left
    accepted_at: str = ""  # the tenant's clock when it answered 204 ('' for older runs)


class Journal(PlanRecords, SendRecords):
    """Open with `Journal.create(run_dir)` for a new run or `Journal.open(run_dir)` to resume."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, lock: RunLock | None = None
    ) -> None:
        self.path = path
        self._db = connection
        self._lock = lock

    @classmethod
    def create(cls, run_dir: Path, meta: dict[str, str]) -> Journal:
        """A new run: folder 0700, journal 0600, locked for this process until `close()`."""
        path = run_dir / JOURNAL_NAME
        if path.exists():
            raise JournalError(f"{path} already exists; resume it with --resume {run_dir}")
        try:
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            run_dir.chmod(0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise JournalError(
                f"{run_dir}: cannot create the run folder ({exc.strerror})"
            ) from None
        lock = RunLock(run_dir).acquire()
        journal = cls(path, cls._connect(path), lock)
        try:
            with journal_errors(run_dir), journal._db:
                journal._db.executescript(SCHEMA)
                journal._db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), *meta.items()],
                )
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def open(cls, run_dir: Path, *, write: bool = True) -> Journal:
        """An earlier run. To write, the run is locked for this process; reading needs no lock."""
        path = run_dir / JOURNAL_NAME
        if not path.is_file():
            raise JournalError(
                f"{run_dir}: no {JOURNAL_NAME} here; give a run folder such as reports/<run-id>"
            )
        lock = RunLock(run_dir).acquire() if write else None
        try:
            journal = cls(path, cls._connect(path), lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        try:
            version = journal.meta().get("schema_version")
        except sqlite3.DatabaseError as exc:
            journal.close()
            raise damaged(path, exc) from None
        if version in MIGRATIONS and write:
            journal._migrate(MIGRATIONS[version])
        elif version != SCHEMA_VERSION and (write or version not in MIGRATIONS):
            journal.close()
            raise JournalError(f"{path}: journal schema {version!r}, expected {SCHEMA_VERSION}")
        try:
            journal.check_statuses()
        except BaseException:
            journal.close()
            raise
        return journal

    def check_statuses(self) -> None:
        """Every stored status is one this version knows: an unknown one is a damaged journal
        (exit 2, naming the file), never a crash in whichever command meets it first."""
        known = {
            "devices": {s.value for s in Status},
            "verification": {v.value for v in Verification},
        }
        with journal_errors(self.path.parent):
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
            for table, values in known.items():
                if table not in tables:  # an older schema, read as it is
                    continue
                found = {r[0] for r in self._db.execute(f"SELECT DISTINCT status FROM {table}")}  # noqa: S608
                if unknown := sorted(map(str, found - values)):
                    raise damaged(self.path, f"unknown {table} status {', '.join(unknown)!s}")

    def _migrate(self, statements: Sequence[str]) -> None:
        """An older run's journal gains what this version stores (in one transaction)."""
        try:
            with self._db:
                for statement in statements:
                    self._db.execute(statement)
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,)
                )
        except sqlite3.DatabaseError as exc:
            self.close()
            raise damaged(self.path, exc) from None

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # The journal names devices, the tenant and the command line: owner-only, WAL and SHM too.
        old_umask = os.umask(0o077)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only a power cut may lose the tail.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
        except sqlite3.DatabaseError as exc:
            raise damaged(path, exc) from None
        except sqlite3.Error as exc:
            raise JournalError(f"{path}: cannot open the run journal ({exc})") from None
        finally:
            os.umask(old_umask)
        db.isolation_level = "DEFERRED"
        return db

    def check(self) -> None:
        """Before a run writes again: every page must read back (SQLite's quick_check)."""
        try:
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path, exc) from None
        if problems != ["ok"]:
            raise damaged(self.path, "; ".join(problems))

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()

    # --- metadata -------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: str) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def event(self, kind: str, detail: str = "", row: int | None = None) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO events(at, row, kind, detail) VALUES (?, ?, ?, ?)",
                (utc_now(), row, kind, detail),
            )

    # --- rows -----------------------------------------------------------------------------
    # --- resolution, done in SQL so memory follows a page, not the tenant ---------------------
    def verification_targets(self) -> list[VerifyTarget]:
        """Queued devices without a final verification verdict."""
        cursor = self._db.execute(
            "SELECT d.row, d.intune_id, d.entra_device_id, d.requested_at, d.accepted_at, "
            "v.status "
            "FROM devices d LEFT JOIN verification v ON v.row = d.row "
            "WHERE d.status = ? ORDER BY d.row",
            (Status.QUEUED.value,),
        )
        return [
            VerifyTarget(*row[:5])
            for row in cursor
            if row[5] is None or not Verification(row[5]).final
        ]

    def record_verification(self, verdicts: Sequence[Verdict]) -> None:
        """Upsert one verdict per device."""
        now = utc_now()
        with self._db:
            self._db.executemany(
                "INSERT INTO verification(row, status, detail, action_state, error_code, "
                "new_key_at, last_check_in, key_count, checked_at) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(row) DO UPDATE SET status=excluded.status, detail=excluded.detail, "
                "action_state=excluded.action_state, error_code=excluded.error_code, "
                "new_key_at=excluded.new_key_at, last_check_in=excluded.last_check_in, "
                "key_count=excluded.key_count, checked_at=excluded.checked_at, "
                "checks=verification.checks + 1",
                [
                    (
                        v.row,
                        v.status.value,
                        v.detail,
                        v.action_state,
                        v.error_code,
                        v.new_key_at,
                        v.last_check_in,
                        v.key_count,
                        now,
                    )
                    for v in verdicts
                ],
            )

    def rows_with_event(self, kind: str) -> set[int]:
        """Rows an event of this kind was recorded for (e.g. re-sent after a failure)."""
        return {
            row
            for (row,) in self._db.execute(
                "SELECT DISTINCT row FROM events WHERE kind = ? AND row IS NOT NULL", (kind,)
            )
        }

    def verification_counts(self) -> dict[str, int]:
        return dict(
            self._db.execute("SELECT status, COUNT(*) FROM verification GROUP BY status").fetchall()
        )

    def counts(self) -> dict[str, int]:
        """Rows by stored status (the report side maps them to what it shows)."""
        return dict(
            self._db.execute("SELECT status, COUNT(*) FROM devices GROUP BY status").fetchall()
        )

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}

    def report_rows(self) -> Iterator[ReportRow]:
        """Rows in input order, as stored (statuses and reasons are shown by the report)."""
        # Schema 5 rows carry their device's flag; a schema 4 journal read as it is joins the
        # inventory for it; a schema 3 one has no flags (they came with schema 4).
        flag, inventory = "d.flag", ""
        if "flag" not in self._columns("devices"):
            inventory = "LEFT JOIN inventory i ON i.id = d.intune_id AND d.intune_id != '' "
            flag = "i.flag" if "flag" in self._columns("inventory") else "''"
        # A run nobody verified (every plan) joins no verification: the join's lookup per row
        # was 1.8 s of a million-row report (issue 23).
        verification = "LEFT JOIN verification v ON v.row = d.row "
        checked = ", ".join(
            "v.key_count" if c == "key_count" else f"coalesce(v.{c}, '')" for c in _VERIFIED
        )
        if self._db.execute("SELECT NOT EXISTS (SELECT 1 FROM verification)").fetchone()[0]:
            verification, checked = (
                "",
                ", ".join("NULL" if c == "key_count" else "''" for c in _VERIFIED),
            )
        # Columns in ReportRow's order, built positionally: a million rows are read for every
        # report (keywords and `or ""` per field were a tenth of the read, issue 23).
        cursor = self._db.execute(
            "SELECT d.row, d.input_value, d.id_kind, d.intune_id, d.device_name, "  # noqa: S608
            "d.serial_number, d.entra_device_id, d.os, d.status, d.reason, d.http_status, "
            "d.error_code, d.error_message, d.request_id, d.client_request_id, d.attempts, "
            "d.requested_at, d.resent_after_interrupt, d.accepted_at, "
            f"d.confirmed_after_lost_answer, {checked}, "
            f"coalesce({flag}, '') FROM devices d {verification}{inventory}ORDER BY d.row"
        )
        for r in cursor:
            values = list(r)
            values[17], values[19] = bool(r[17]), bool(r[19])  # stored as 0 or 1
            yield ReportRow._make(values)


# The verification columns a report row shows, in ReportRow's order.
_VERIFIED = (
    "status",
    "detail",
    "action_state",
    "error_code",
    "new_key_at",
    "last_check_in",
    "key_count",
    "checked_at",
)


def has_journal(run_dir: Path) -> bool:
    return (run_dir / JOURNAL_NAME).is_file()
