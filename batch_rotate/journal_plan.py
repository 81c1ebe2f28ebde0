"""The journal's resolution and plan records: the input rows, the inventory they match, and
what the plan says of each row (flags, reasons, skips). It stores what resolution decided."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from batch_rotate.journal_schema import KEY_COLUMN, utc_now
from batch_rotate.models import Device, DeviceRef, IdKind, Status, Target
from batch_rotate.textsafe import ascii_shown, match_key, spelling

# The raw value a look-alike is told apart on, per kind whose match key folds Unicode.
_SPELLED = {IdKind.DEVICE_NAME: "name", IdKind.SERIAL_NUMBER: "serial"}


@dataclass(frozen=True, slots=True)
class MatchTexts:
    """The resolution stage's wording for one identifier kind (the journal only stores it)."""

    not_found: str  # the whole reason
    ambiguous: tuple[str, str, str]  # the text before the count, before the ids, after them
    # A single match spelled differently but for ASCII case (`KIOSK` for `\u212aIOSK`): the text
    # before the input's spelling, between it and the device's, after it. None: no such check.
    lookalike: tuple[str, str, str] | None = None


class PlanRecords:
    """Part of `Journal`: the rows from the input to the plan."""

    _db: sqlite3.Connection

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
        and the flag its planned row shows ('' for none).

        A device stored again replaces itself once `inventory_id` exists; before it (while a
        listing stores pages), a second copy is removed when the index is built."""
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
                        match_key(d.name),
                        match_key(d.serial_number),
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

    def _index_inventory(self, kinds: Iterable[IdKind]) -> None:
        """Index the match keys of these kinds once the listing is stored (cheaper than while
        inserting); only kinds rows use (a million ids need no name, serial or Entra index).
        First the unique id: a device listed twice (pages shift under a listing) keeps its
        latest copy."""
        with self._db:
            try:
                self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS inventory_id ON inventory(id)")
            except sqlite3.IntegrityError:
                self._db.execute(
                    "DELETE FROM inventory WHERE rowid NOT IN "
                    "(SELECT MAX(rowid) FROM inventory GROUP BY id)"
                )
                self._db.execute("CREATE UNIQUE INDEX inventory_id ON inventory(id)")
            for kind in kinds:
                column = KEY_COLUMN[kind]
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
    ) -> Iterator[tuple[IdKind, str, str, bool]]:
        """(kind, key, one input value, matched) of unresolved rows no stored device matches
        yet (matched False); for the kinds in `every`, all unresolved keys, matched or not.

        One pass over the rows, each looked up once (issue 23: twice was 3 s a million rows)."""
        kinds = [
            IdKind(kind)
            for (kind,) in self._db.execute(
                "SELECT DISTINCT id_kind FROM devices WHERE status = ?", (Status.RESOLVING.value,)
            )
        ]
        # without an index, each row would scan the whole inventory: quadratic
        self._index_inventory(kinds)
        for kind in kinds:
            # Column names come from KEY_COLUMN, never from input: S608 does not apply.
            column = KEY_COLUMN[kind]
            found = f"EXISTS (SELECT 1 FROM inventory i WHERE i.{column} = d.ref_key)"  # noqa: S608
            select, where = (found, "") if kind in every else ("0", f"AND NOT {found} ")
            yield from (
                (kind, key, value, bool(matched))
                for key, value, matched in self._db.execute(
                    f"SELECT d.ref_key, MIN(d.input_value), {select} FROM devices d "  # noqa: S608
                    f"WHERE d.status = ? AND d.id_kind = ? {where}GROUP BY d.ref_key",
                    (Status.RESOLVING.value, kind.value),
                )
            )

    def fail_resolving(self, keys: dict[str, str]) -> None:
        """Rows whose lookup failed for good (key -> the whole reason)."""
        with self._db:
            self._db.executemany(
                "UPDATE devices SET status = ?, reason = ? WHERE status = ? AND ref_key = ?",
                [
                    (Status.FAILED.value, reason, Status.RESOLVING.value, key)
                    for key, reason in keys.items()
                ],
            )

    def fail_devices(self, reasons: dict[str, str]) -> None:
        """Every row matched to these devices fails (device id -> reason): never planned."""
        held = (Status.PENDING.value, Status.INELIGIBLE.value, Status.DUPLICATE.value)
        with self._db:
            self._db.executemany(
                "UPDATE devices SET status = ?, reason = ? WHERE intune_id = ? "
                "AND status IN (?, ?, ?)",
                [(Status.FAILED.value, why, device, *held) for device, why in reasons.items()],
            )

    def resolve_rows(self, texts: dict[IdKind, MatchTexts], duplicate: tuple[str, str]) -> None:
        """Match rows to the inventory: not found, ambiguous, one device; then duplicates.

        `duplicate` is (head, tail) around the first row's number.
        """
        self._index_inventory(texts)
        with self._db:
            self._match(texts, "")
            # Indexed once every row has its device (not while each one's is set: 3x slower).
            self._db.execute("CREATE INDEX IF NOT EXISTS devices_intune ON devices(intune_id)")
            # The same device on several rows: rotated once, at its first row. Only devices
            # named twice are joined back (every device was 3 s of a million rows, issue 23).
            self._db.execute(
                "UPDATE devices SET status = ?, reason = ? || first.row || ? "
                "FROM (SELECT intune_id, MIN(row) AS row FROM devices WHERE status IN (?, ?) "
                "GROUP BY intune_id HAVING COUNT(*) > 1) AS first "
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

    def match_settled(self, texts: dict[IdKind, MatchTexts]) -> None:
        """Match now the rows of these kinds a stored device settles (a whole listing settles
        Intune and Entra ids); rows it does not match stay to resolve, so the re-check that
        follows scans only them (looking every row up twice was 4 s a million rows, issue 23)."""
        self._index_inventory(texts)
        with self._db:
            self._match(texts, "", final=False)

    def keep_resolved(
        self,
        texts: dict[IdKind, MatchTexts],
        *,
        answered: Iterable[tuple[IdKind, str]],
        matched: Collection[IdKind] = (),
    ) -> int:
        """A stopped resolution keeps what it learned; how many rows it resolved.

        Rows whose key is `answered` (every device it names is stored) and rows of a `matched`
        kind that a stored device matches are resolved as `resolve_rows` would; the others stay
        to resolve. Duplicates wait for the whole resolution (a row resolved later may come first).
        """
        self._index_inventory({*texts, *matched})
        with self._db:
            db = self._db
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS settled "
                "(id_kind TEXT, ref_key TEXT, PRIMARY KEY (id_kind, ref_key))"
            )
            db.execute("DELETE FROM temp.settled")
            db.executemany(
                "INSERT OR IGNORE INTO temp.settled VALUES (?, ?)",
                ((kind.value, key) for kind, key in answered),
            )
            for kind in matched:
                column = KEY_COLUMN[kind]  # from KEY_COLUMN, never from input: S608 does not apply
                db.execute(
                    "INSERT OR IGNORE INTO temp.settled SELECT DISTINCT d.id_kind, d.ref_key "  # noqa: S608
                    "FROM devices d WHERE d.status = ? AND d.id_kind = ? AND EXISTS "
                    f"(SELECT 1 FROM inventory i WHERE i.{column} = d.ref_key)",
                    (Status.RESOLVING.value, kind.value),
                )
            before = db.total_changes
            self._match(
                texts,
                "AND EXISTS (SELECT 1 FROM temp.settled s WHERE s.id_kind = devices.id_kind "
                "AND s.ref_key = devices.ref_key)",
            )
            kept = db.total_changes - before
            db.execute("DELETE FROM temp.settled")
        return kept

    def _match(self, texts: dict[IdKind, MatchTexts], only: str, *, final: bool = True) -> None:
        """The resolving rows (those `only` also selects): ambiguous, one device, not found
        (not `final`: unmatched rows stay to resolve).

        Up to four SQL statements per identifier kind, kept together so their order is visible.
        Keys several devices share are found from the inventory side (one scan of its index),
        then rows with one device are matched, and what is left has none: no row is counted
        against the inventory one by one (twice 2 s a million rows, issue 23).
        """
        db = self._db
        db.create_function("spelling", 1, spelling, deterministic=True)
        db.create_function("ascii_shown", 1, ascii_shown, deterministic=True)
        for kind, text in texts.items():
            # Column names come from KEY_COLUMN, never from input: S608 does not apply.
            column = KEY_COLUMN[kind]
            matches = f"SELECT COUNT(*) FROM inventory i WHERE i.{column} = devices.ref_key"  # noqa: S608
            shared = f"SELECT {column} FROM inventory GROUP BY {column} HAVING COUNT(*) > 1"  # noqa: S608
            db.execute(
                f"UPDATE devices SET status = ?, reason = ? || ({matches}) || ? || "  # noqa: S608
                "(SELECT group_concat(id, ', ') FROM (SELECT i.id FROM inventory i WHERE "
                f"i.{column} = devices.ref_key LIMIT 10)) || ? "
                f"WHERE status = ? AND id_kind = ? AND ref_key IN ({shared}) {only}",
                (
                    Status.AMBIGUOUS.value,
                    *text.ambiguous,
                    Status.RESOLVING.value,
                    kind.value,
                ),
            )
            if text.lookalike is not None and kind in _SPELLED:
                # One match left; it names the row only if spelled alike but for ASCII case.
                raw = _SPELLED[kind]
                db.execute(
                    "UPDATE devices SET status = ?, reason = ? || "  # noqa: S608
                    f"ascii_shown(devices.input_value) || ? || ascii_shown(i.{raw}) || ? "
                    f"FROM inventory i WHERE devices.status = ? AND devices.id_kind = ? "
                    f"AND i.{column} = devices.ref_key "
                    f"AND spelling(devices.input_value) != spelling(i.{raw}) {only}",
                    (
                        Status.AMBIGUOUS.value,
                        *text.lookalike,
                        Status.RESOLVING.value,
                        kind.value,
                    ),
                )
            db.execute(
                "UPDATE devices SET intune_id = i.id, device_name = i.name, "  # noqa: S608
                "serial_number = i.serial, entra_device_id = i.entra, os = i.os, flag = i.flag, "
                "status = CASE WHEN i.ineligible = '' THEN ? ELSE ? END, reason = i.ineligible "
                f"FROM inventory i WHERE devices.status = ? AND devices.id_kind = ? "
                f"AND i.{column} = devices.ref_key {only}",
                (
                    Status.PENDING.value,
                    Status.INELIGIBLE.value,
                    Status.RESOLVING.value,
                    kind.value,
                ),
            )
            if not final:
                continue
            db.execute(  # no stored device has the key
                "UPDATE devices SET status = ?, reason = ? "  # noqa: S608
                f"WHERE status = ? AND id_kind = ? {only}",
                (Status.NOT_FOUND.value, text.not_found, Status.RESOLVING.value, kind.value),
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
            # Each row holds its device's flag since it was matched (schema 5): no join.
            cursor = self._db.execute(
                "UPDATE devices SET reason = flag WHERE status = ? AND flag != ''",
                (Status.PENDING.value,),
            )
        return cursor.rowcount

    def planned_last_syncs(self, not_after: str = "9999-12-31") -> Iterator[tuple[int, str, str]]:
        """(row, device name, last sync as Graph gave it) of each planned row, in row order.

        Rows whose last sync starts with a date (`YYYY-MM-DD`) later than `not_after` are left
        out (the caller still parses every time it gets): most devices synced recently, so the
        inventory is scanned once and only the few older ones are joined to their rows, instead
        of joining every planned row on its text id (issue 23)."""
        self._db.execute("CREATE INDEX IF NOT EXISTS devices_intune ON devices(intune_id)")
        yield from self._db.execute(
            "SELECT d.row, d.device_name, i.last_sync FROM inventory i "
            "CROSS JOIN devices d ON d.intune_id = i.id "  # from the few old syncs to their rows
            "WHERE d.status = ? AND i.last_sync != '' AND NOT (i.last_sync GLOB "
            "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' AND substr(i.last_sync, 1, 10) > ?) "
            "ORDER BY d.row",
            (Status.PENDING.value, not_after),
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
