"""The journal's SQLite schema and the identifier-kind columns resolution matches on."""

from __future__ import annotations

from datetime import UTC, datetime

from batch_rotate.models import IdKind


def utc_now() -> str:
    """The journal's timestamps: UTC, milliseconds, `Z` (they sort as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


KEY_COLUMN = {
    IdKind.INTUNE_ID: "k_intune",
    IdKind.ENTRA_DEVICE_ID: "k_entra",
    IdKind.DEVICE_NAME: "k_name",
    IdKind.SERIAL_NUMBER: "k_serial",
}

JOURNAL_NAME = "journal.sqlite"
SCHEMA_VERSION = "6"
# Schema 5: each row keeps its device's flag, so the report reads rows without joining the
# inventory on its text id (a third of a million-row report's time, issue 23). Filled in for
# the rows an older journal already matched (the join, once).
_TO_5 = (
    "ALTER TABLE devices ADD COLUMN flag TEXT NOT NULL DEFAULT ''",
    "UPDATE devices SET flag = i.flag FROM inventory i "
    "WHERE i.id = devices.intune_id AND devices.intune_id != '' AND i.flag != ''",
)
# Schema 6: the inventory's id is no primary key while the listing stores it (a B-tree of
# random GUIDs filled one by one: 27 s a million devices, 2.6 s without, issue 23); the unique
# index `inventory_id` is built once, by sorting, before any row is matched to it.
_TO_6 = ("CREATE UNIQUE INDEX IF NOT EXISTS inventory_id ON inventory(id)",)
# Older schemas a writer brings up to SCHEMA_VERSION on open (each step only adds columns, so a
# reader of the older schema finds everything it reads).
MIGRATIONS: dict[str, tuple[str, ...]] = {
    "3": (
        "ALTER TABLE inventory ADD COLUMN last_sync TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE inventory ADD COLUMN flag TEXT NOT NULL DEFAULT ''",
        *_TO_5,
        *_TO_6,
    ),
    "4": (*_TO_5, *_TO_6),
    "5": _TO_6,
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    row INTEGER PRIMARY KEY,
    input_value TEXT NOT NULL,
    id_kind TEXT NOT NULL,
    intune_id TEXT NOT NULL DEFAULT '',
    device_name TEXT NOT NULL DEFAULT '',
    serial_number TEXT NOT NULL DEFAULT '',
    entra_device_id TEXT NOT NULL DEFAULT '',
    os TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    http_status INTEGER,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    client_request_id TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    requested_at TEXT NOT NULL DEFAULT '',
    accepted_at TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL DEFAULT '',
    resent_after_interrupt INTEGER NOT NULL DEFAULT 0,
    confirmed_after_lost_answer INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT NOT NULL DEFAULT '',
    ref_key TEXT NOT NULL DEFAULT '',
    flag TEXT NOT NULL DEFAULT ''  -- its device's flag (inventory.flag) when matched; schema 5
);
CREATE INDEX IF NOT EXISTS devices_status ON devices(status);
CREATE TABLE IF NOT EXISTS inventory (
    id TEXT NOT NULL,  -- unique once listed: the index inventory_id (schema 6)
    k_intune TEXT NOT NULL,
    k_entra TEXT NOT NULL,
    k_name TEXT NOT NULL,
    k_serial TEXT NOT NULL,
    name TEXT NOT NULL,
    serial TEXT NOT NULL,
    entra TEXT NOT NULL,
    os TEXT NOT NULL,
    ineligible TEXT NOT NULL,
    last_sync TEXT NOT NULL DEFAULT '',  -- lastSyncDateTime as Graph gave it; schema 4
    flag TEXT NOT NULL DEFAULT ''  -- the planned row's reason (the co-managed note); schema 4
);
CREATE TABLE IF NOT EXISTS verification (
    row INTEGER PRIMARY KEY REFERENCES devices(row),
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    action_state TEXT NOT NULL DEFAULT '',
    error_code TEXT NOT NULL DEFAULT '',
    new_key_at TEXT NOT NULL DEFAULT '',
    last_check_in TEXT NOT NULL DEFAULT '',
    key_count INTEGER,
    checked_at TEXT NOT NULL,
    checks INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    row INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""


# The states `runs --state` filters on: the journal's, and the two `runs` itself tells.
RUN_STATES = (
    "resolving",
    "planned",
    "rotating",
    "plan",
    "finished",
    "interrupted",
    "failed",
    "refused",
    "nothing_to_rotate",  # every row ineligible, held back or not found: nothing sent
    "running",  # a process holds the run now
    "unreadable",  # the journal cannot be read (detail says why)
)
