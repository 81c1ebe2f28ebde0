"""The journal's sending records: rows marked in flight before their batch leaves, each
answer as it is read, and failed rows sent (or looked up) again by `--retry-failed`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from batch_rotate.journal_schema import utc_now
from batch_rotate.models import Outcome, Status


@dataclass(frozen=True, slots=True)
class LostItem:
    """A device whose rotate request left without a recorded answer."""

    row: int
    device_id: str
    sent_at: str  # the local clock when the last request left


@dataclass(frozen=True, slots=True)
class SendItem:
    """A device the engine still has to send (pending, or uncertain after an interrupt)."""

    row: int
    device_id: str
    attempts: int


class SendRecords:
    """Part of `Journal`: what was sent, and what came back."""

    _db: sqlite3.Connection

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
