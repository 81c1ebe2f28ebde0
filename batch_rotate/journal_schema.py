"""The journal's SQLite schema and the identifier-kind columns resolution matches on."""

from __future__ import annotations

from batch_rotate.models import IdKind

KEY_COLUMN = {
    IdKind.INTUNE_ID: "k_intune",
    IdKind.ENTRA_DEVICE_ID: "k_entra",
    IdKind.DEVICE_NAME: "k_name",
    IdKind.SERIAL_NUMBER: "k_serial",
}

JOURNAL_NAME = "journal.sqlite"
SCHEMA_VERSION = "3"

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
    ref_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS devices_status ON devices(status);
CREATE TABLE IF NOT EXISTS inventory (
    id TEXT PRIMARY KEY,
    k_intune TEXT NOT NULL,
    k_entra TEXT NOT NULL,
    k_name TEXT NOT NULL,
    k_serial TEXT NOT NULL,
    name TEXT NOT NULL,
    serial TEXT NOT NULL,
    entra TEXT NOT NULL,
    os TEXT NOT NULL,
    ineligible TEXT NOT NULL
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
