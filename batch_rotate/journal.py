"""The run journal: one SQLite database per run, the source of truth for resume and reports.

It stores; it never decides: eligibility, reason wording and display come from their stages.
Rows are marked `in_flight` and committed before their batch is sent; each answer is committed
as soon as it is read, so a kill at any instant resumes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batch_rotate.errors import JournalError
from batch_rotate.journal_schema import (
    JOURNAL_NAME,
    KEY_COLUMN,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
)
from batch_rotate.models import (
    Device,
    DeviceRef,
    IdKind,
    Outcome,
    ReportRow,
    Status,
    Target,
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


@contextlib.contextmanager
def journal_errors(run_dir: Path) -> Iterator[None]:
    """SQLite's 'malformed' and 'not a database' errors, met at any read, as `damaged`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise damaged(run_dir / JOURNAL_NAME, exc) from None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class VerifyTarget:
    """A queued device whose rotation is not yet proven (or disproven)."""

    row: int
    device_id: str
    entra_device_id: str
    requested_at: str  # the local clock, when the request first left
    accepted_at: str = ""  # the tenant's clock when it answered 204 ('' for older runs)


@dataclass(frozen=True, slots=True)
class LostItem:
    """A device whose rotate request left without a recorded answer."""

    row: int
    device_id: str
    sent_at: str  # the local clock when the last request left


@dataclass(frozen=True, slots=True)
class MatchTexts:
    """The resolution stage's wording for one identifier kind (the journal only stores it)."""

    not_found: str  # the whole reason
    ambiguous: tuple[str, str, str]  # the text before the count, before the ids, after them


@dataclass(frozen=True, slots=True)
class SendItem:
    """A device the engine still has to send (pending, or uncertain after an interrupt)."""

    row: int
    device_id: str
    attempts: int


class Journal:
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
        with journal._db:
            journal._db.executescript(SCHEMA)
            journal._db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("schema_version", SCHEMA_VERSION), *meta.items()],
            )
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
        return journal

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
    def add_refs(self, refs: Iterable[DeviceRef]) -> None:
        """Every input row, before resolution: unusable ones are final at once."""
        now = utc_now()
        with self._db:
            self._db.executemany(
                "INSERT INTO devices(row, input_value, id_kind, ref_key, status, reason, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        ref.row,
                        ref.value,
                        ref.kind.value if ref.kind else "",
                        ref.key,
                        Status.RESOLVING.value if ref.kind else Status.INVALID_INPUT.value,
                        ref.error or "",
                        now,
                    )
                    for ref in refs
                ),
            )

    def add_inventory(self, devices: Iterable[tuple[Device, str, str]]) -> None:
        """Managed devices some row may name, each with why it is ineligible ('' if it is not)
        and the flag its planned row shows ('' for none)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO inventory(id, k_intune, k_entra, k_name, k_serial, name, "
                "serial, entra, os, ineligible, last_sync, flag) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        d.id,
                        d.id.lower(),
                        d.entra_device_id.lower(),
                        d.name.strip().casefold(),
                        d.serial_number.strip().casefold(),
                        d.name,
                        d.serial_number,
                        d.entra_device_id,
                        d.os,
                        ineligible,
                        d.last_sync,
                        flag,
                    )
                    for d, ineligible, flag in devices
                ),
            )

    def _index_inventory(self) -> None:
        """Index the match keys once the listing is stored (cheaper than while inserting)."""
        with self._db:
            for column in KEY_COLUMN.values():
                self._db.execute(
                    f"CREATE INDEX IF NOT EXISTS inventory_{column} ON inventory({column})"
                )

    def unresolved_keys(self) -> Iterator[tuple[IdKind, str]]:
        """(kind, key) of rows not yet matched, streamed from disk."""
        for kind, key in self._db.execute(
            "SELECT id_kind, ref_key FROM devices WHERE status = ?", (Status.RESOLVING.value,)
        ):
            yield IdKind(kind), key

    def unmatched_keys(
        self, *, every: Collection[IdKind] = ()
    ) -> Iterator[tuple[IdKind, str, str]]:
        """(kind, key, one input value) of unresolved rows no stored device matches yet.

        For the kinds in `every`, all unresolved keys, matched or not.
        """
        self._index_inventory()  # without it, each row scans the whole inventory: quadratic
        for kind, column in KEY_COLUMN.items():
            # Column names come from KEY_COLUMN, never from input: S608 does not apply.
            unmatched = (
                ""
                if kind in every
                else f"AND NOT EXISTS (SELECT 1 FROM inventory i WHERE i.{column} = d.ref_key) "  # noqa: S608
            )
            yield from (
                (kind, key, value)
                for key, value in self._db.execute(
                    "SELECT d.ref_key, MIN(d.input_value) FROM devices d "  # noqa: S608
                    f"WHERE d.status = ? AND d.id_kind = ? {unmatched}GROUP BY d.ref_key",
                    (Status.RESOLVING.value, kind.value),
                )
            )

    def fail_resolving(self, keys: dict[str, str]) -> None:
        """Rows whose lookup failed for good (key -> reason)."""
        with self._db:
            self._db.executemany(
                "UPDATE devices SET status = ?, reason = ? WHERE status = ? AND ref_key = ?",
                [
                    (Status.FAILED.value, f"lookup_failed: {reason}", Status.RESOLVING.value, key)
                    for key, reason in keys.items()
                ],
            )

    def resolve_rows(self, texts: dict[IdKind, MatchTexts], duplicate: tuple[str, str]) -> None:
        """Match rows to the inventory: not found, ambiguous, one device; then duplicates.

        Long because it is four SQL statements per identifier kind, kept together so their order
        (not found, ambiguous, matched, then duplicates) is visible in one place.

        `duplicate` is (head, tail) around the first row's number.
        """
        self._index_inventory()
        with self._db:
            db = self._db
            for kind, text in texts.items():
                # Column names come from KEY_COLUMN, never from input: S608 does not apply.
                column = KEY_COLUMN[kind]
                matches = f"SELECT COUNT(*) FROM inventory i WHERE i.{column} = devices.ref_key"  # noqa: S608
                db.execute(
                    f"UPDATE devices SET status = ?, reason = ? WHERE status = ? AND id_kind = ? "  # noqa: S608
                    f"AND ({matches}) = 0",
                    (Status.NOT_FOUND.value, text.not_found, Status.RESOLVING.value, kind.value),
                )
                db.execute(
                    f"UPDATE devices SET status = ?, reason = ? || ({matches}) || ? || "  # noqa: S608
                    "(SELECT group_concat(id, ', ') FROM (SELECT i.id FROM inventory i WHERE "
                    f"i.{column} = devices.ref_key LIMIT 10)) || ? "
                    f"WHERE status = ? AND id_kind = ? AND ({matches}) > 1",
                    (
                        Status.AMBIGUOUS.value,
                        *text.ambiguous,
                        Status.RESOLVING.value,
                        kind.value,
                    ),
                )
                db.execute(
                    "UPDATE devices SET intune_id = i.id, device_name = i.name, "  # noqa: S608
                    "serial_number = i.serial, entra_device_id = i.entra, os = i.os, "
                    "status = CASE WHEN i.ineligible = '' THEN ? ELSE ? END, reason = i.ineligible "
                    f"FROM inventory i WHERE devices.status = ? AND devices.id_kind = ? "
                    f"AND i.{column} = devices.ref_key",
                    (
                        Status.PENDING.value,
                        Status.INELIGIBLE.value,
                        Status.RESOLVING.value,
                        kind.value,
                    ),
                )
            # Indexed once every row has its device (not while each one's is set: 3x slower).
            db.execute("CREATE INDEX IF NOT EXISTS devices_intune ON devices(intune_id)")
            # The same device on several rows: rotated once, at its first row.
            db.execute(
                "UPDATE devices SET status = ?, reason = ? || first.row || ? "
                "FROM (SELECT intune_id, MIN(row) AS row FROM devices WHERE status IN (?, ?) "
                "GROUP BY intune_id) AS first "
                "WHERE devices.intune_id = first.intune_id AND devices.row > first.row "
                "AND devices.status IN (?, ?)",
                (
                    Status.DUPLICATE.value,
                    *duplicate,
                    Status.PENDING.value,
                    Status.INELIGIBLE.value,
                    Status.PENDING.value,
                    Status.INELIGIBLE.value,
                ),
            )

    def abandon_resolving(self, reason: str) -> None:
        """Sign-in or Graph failed before planning: the rows still say why."""
        with self._db:
            self._db.execute(
                "UPDATE devices SET reason = ? WHERE status = ?", (reason, Status.RESOLVING.value)
            )

    def pending_devices(
        self, limit: int | None = None, *, in_flight: bool = False
    ) -> Iterator[Target]:
        """Devices planned for rotation (and, with `in_flight`, those sent without an answer),
        streamed in row order: a million planned rows never need to be in memory at once."""
        statuses = (Status.PENDING.value, Status.IN_FLIGHT.value if in_flight else "")
        sql = (
            "SELECT row, intune_id, device_name, entra_device_id FROM devices "
            "WHERE status IN (?, ?) ORDER BY row"
        )
        params: tuple[object, ...] = statuses
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        for row in self._db.execute(sql, params):
            yield Target(*row)

    def any_flagged(self) -> bool:
        """Whether a stored device carries a flag (named by a planned row or not)."""
        query = "SELECT EXISTS (SELECT 1 FROM inventory WHERE flag != '')"
        return bool(self._db.execute(query).fetchone()[0])

    def flag_planned(self) -> int:
        """Planned rows of flagged devices take the flag as their reason; how many did."""
        with self._db:
            # From the flagged devices to their rows (`+status`: not from every planned row).
            cursor = self._db.execute(
                "UPDATE devices SET reason = (SELECT i.flag FROM inventory i "
                "WHERE i.id = devices.intune_id) WHERE +devices.status = ? "
                "AND devices.intune_id IN (SELECT id FROM inventory WHERE flag != '')",
                (Status.PENDING.value,),
            )
        return cursor.rowcount

    def planned_last_syncs(self) -> Iterator[tuple[int, str, str]]:
        """(row, device name, last sync as Graph gave it) of each planned row, in row order."""
        yield from self._db.execute(
            "SELECT d.row, d.device_name, i.last_sync FROM devices d "
            "JOIN inventory i ON i.id = d.intune_id "
            "WHERE d.status = ? AND i.last_sync != '' ORDER BY d.row",
            (Status.PENDING.value,),
        )

    def set_reasons(self, reasons: dict[int, str]) -> None:
        with self._db:
            self._db.executemany(
                "UPDATE devices SET reason = ? WHERE row = ?",
                [(reason, row) for row, reason in reasons.items()],
            )

    def skip(self, reasons: dict[int, str], status: Status = Status.INELIGIBLE) -> None:
        """Planned rows a plan-time guard holds back; the reason says which guard and why."""
        with self._db:
            self._db.executemany(
                "UPDATE devices SET status = ?, reason = ? WHERE row = ? AND status = ?",
                [
                    (status.value, reason, row, Status.PENDING.value)
                    for row, reason in reasons.items()
                ],
            )

    def to_send(self) -> list[SendItem]:
        """Devices still to send (rows in flight are checked first: see `in_flight`)."""
        return [
            SendItem(row, device_id, attempts)
            for row, device_id, attempts in self._db.execute(
                "SELECT row, intune_id, attempts FROM devices WHERE status = ? ORDER BY row",
                (Status.PENDING.value,),
            )
        ]

    def in_flight(self) -> list[LostItem]:
        """Rows sent whose answer is unknown (lost, or the process died): check before resending."""
        return [
            LostItem(row, device_id, sent_at)
            for row, device_id, sent_at in self._db.execute(
                "SELECT row, intune_id, sent_at FROM devices WHERE status = ? ORDER BY row",
                (Status.IN_FLIGHT.value,),
            )
        ]

    def settle_in_flight(
        self, confirmed: dict[int, tuple[str, str]], resend: Sequence[int]
    ) -> None:
        """After the check: `confirmed` rows (row -> reason, tenant start time) were queued;
        `resend` rows go again."""
        now = utc_now()
        with self._db:
            self._db.executemany(
                "UPDATE devices SET status = ?, confirmed_after_lost_answer = 1, reason = ?, "
                "accepted_at = CASE WHEN accepted_at = '' THEN ? ELSE accepted_at END, "
                "updated_at = ? WHERE row = ? AND status = ?",
                [
                    (Status.QUEUED.value, reason, started, now, row, Status.IN_FLIGHT.value)
                    for row, (reason, started) in confirmed.items()
                ],
            )
            self._db.executemany(
                "UPDATE devices SET status = ?, resent_after_interrupt = 1, updated_at = ? "
                "WHERE row = ? AND status = ?",
                [(Status.PENDING.value, now, row, Status.IN_FLIGHT.value) for row in resend],
            )

    def mark_in_flight(self, rows: Sequence[tuple[int, str]]) -> None:
        """Before a batch is sent: rows (row, client-request-id) are on the wire."""
        now = utc_now()
        with self._db:
            self._db.executemany(
                "UPDATE devices SET status = ?, attempts = attempts + 1, client_request_id = ?, "
                "requested_at = CASE WHEN requested_at = '' THEN ? ELSE requested_at END, "
                "sent_at = ?, updated_at = ? WHERE row = ?",
                [(Status.IN_FLIGHT.value, crid, now, now, now, row) for row, crid in rows],
            )

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Answers of one batch, in one transaction. PENDING outcomes go back in the queue."""
        now = utc_now()
        with self._db:
            self._db.executemany(
                "UPDATE devices SET status = ?, http_status = ?, error_code = ?, "
                "error_message = ?, request_id = ?, reason = CASE WHEN ? = '' THEN reason "
                "ELSE ? END, accepted_at = CASE WHEN ? = ? AND accepted_at = '' THEN ? "
                "ELSE accepted_at END, updated_at = ? WHERE row = ?",
                [
                    (
                        o.status.value,
                        o.http_status,
                        o.error_code,
                        o.message,
                        o.request_id,
                        o.reason,
                        o.reason,
                        o.status.value,
                        Status.QUEUED.value,
                        o.answered_at,
                        now,
                        o.row,
                    )
                    for o in outcomes
                ],
            )

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

    def failed_rows(self) -> list[tuple[int, int | None, str]]:
        """(row, HTTP status, reason) of each resolved device that ended failed."""
        return list(
            self._db.execute(
                "SELECT row, http_status, reason FROM devices WHERE status = ? "
                "AND intune_id != '' ORDER BY row",
                (Status.FAILED.value,),
            )
        )

    def lookup_failures(self) -> list[tuple[int, str]]:
        """(row, reason) of each row whose lookup failed: never resolved, so never sent."""
        return list(
            self._db.execute(
                "SELECT row, reason FROM devices WHERE status = ? AND intune_id = '' "
                "AND reason LIKE 'lookup\\_failed:%' ESCAPE '\\' ORDER BY row",
                (Status.FAILED.value,),
            )
        )

    def reopen_failed(self, rows: Sequence[int], kind: str, *, lookups: bool = False) -> None:
        """Failed rows go back to be sent, or with `lookups` (rows never resolved) to be
        resolved; the caller decided which. An event marks each."""
        now = utc_now()
        to, reason, resolved = (
            (Status.RESOLVING, "''", "=") if lookups else (Status.PENDING, "reason", "!=")
        )
        with self._db:
            self._db.executemany(
                "INSERT INTO events(at, row, kind, detail) SELECT ?, row, ?, reason "
                "FROM devices WHERE row = ? AND status = ?",
                [(now, kind, row, Status.FAILED.value) for row in rows],
            )
            self._db.executemany(
                f"UPDATE devices SET status = ?, reason = {reason}, updated_at = ? "  # noqa: S608
                f"WHERE row = ? AND status = ? AND intune_id {resolved} ''",
                [(to.value, now, row, Status.FAILED.value) for row in rows],
            )

    def verification_counts(self) -> dict[str, int]:
        return dict(
            self._db.execute("SELECT status, COUNT(*) FROM verification GROUP BY status").fetchall()
        )

    def counts(self) -> dict[str, int]:
        """Rows by stored status (the report side maps them to what it shows)."""
        return dict(
            self._db.execute("SELECT status, COUNT(*) FROM devices GROUP BY status").fetchall()
        )

    def report_rows(self) -> Iterator[ReportRow]:
        """Rows in input order, as stored (statuses and reasons are shown by the report)."""
        cursor = self._db.execute(
            "SELECT d.row, d.input_value, d.id_kind, d.intune_id, d.device_name, "
            "d.serial_number, d.entra_device_id, d.os, d.status, d.reason, d.http_status, "
            "d.error_code, d.error_message, d.request_id, d.client_request_id, d.attempts, "
            "d.requested_at, d.resent_after_interrupt, v.status, v.detail, v.action_state, "
            "v.error_code, v.new_key_at, v.last_check_in, v.key_count, v.checked_at, "
            "d.accepted_at, d.confirmed_after_lost_answer "
            "FROM devices d LEFT JOIN verification v ON v.row = d.row ORDER BY d.row"
        )
        for r in cursor:
            yield ReportRow(
                row=r[0],
                input_value=r[1],
                id_kind=r[2],
                intune_device_id=r[3],
                device_name=r[4],
                serial_number=r[5],
                entra_device_id=r[6],
                os=r[7],
                status=r[8],
                reason=r[9],
                http_status=r[10],
                error_code=r[11],
                error_message=r[12],
                request_id=r[13],
                client_request_id=r[14],
                attempts=r[15],
                requested_at=r[16],
                accepted_at=r[26],
                confirmed_after_lost_answer=bool(r[27]),
                resent_after_interrupt=bool(r[17]),
                verification=r[18] or "",
                verification_detail=r[19] or "",
                action_state=r[20] or "",
                action_error_code=r[21] or "",
                new_key_at=r[22] or "",
                last_check_in=r[23] or "",
                key_count=r[24],
                verified_at=r[25] or "",
            )


def has_journal(run_dir: Path) -> bool:
    return (run_dir / JOURNAL_NAME).is_file()
