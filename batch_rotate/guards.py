"""Plan-time guards: the warnings that matter before the first write.

Devices at Entra's key ceiling (with --check-keys) and devices another run queued recently are held
back as `ineligible` unless the operator allows them, and those another live run still has to send
always are; devices Intune has not seen for a month are only warned about.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sized
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_rotate.errors import BatchRotateError
from batch_rotate.graph.session import GraphSession
from batch_rotate.journal import Journal
from batch_rotate.journal_schema import JOURNAL_NAME
from batch_rotate.models import Status
from batch_rotate.present import plural
from batch_rotate.runindex import known_runs, same_tenant
from batch_rotate.runlock import is_held
from batch_rotate.settings import Settings
from batch_rotate.tenant_clock import parse_graph_time
from batch_rotate.verify import KEY_CEILING_WARN, recovery_keys

STALE_AFTER = timedelta(days=30)


def _examples(rows: dict[int, str], names: dict[int, str], total: int | None = None) -> str:
    shown = ", ".join(f"row {row} {names.get(row, '')}".strip() for row in sorted(rows)[:3])
    return shown + (" …" if (len(rows) if total is None else total) > 3 else "")


def _verb(things: Sized, one: str, many: str) -> str:
    """The word that agrees with how many `things` a message counts (`plural` names them)."""
    return one if len(things) == 1 else many


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hours(seconds: float) -> str:
    return f"{seconds / 3600:g}h"


async def flag_key_ceiling(
    journal: Journal, session: GraphSession, settings: Settings
) -> list[str]:
    """Count escrowed keys of every device to rotate; hold back those near the 200-key limit."""
    targets = list(journal.pending_devices())
    found = await recovery_keys(
        [target.entra_device_id for target in targets], session, strategy="per-device"
    )
    unknown: dict[int, str] = {}
    ceiling: dict[int, str] = {}
    for target in targets:
        keys = found.get(target.entra_device_id.lower())
        if isinstance(keys, str):
            unknown[target.row] = f"key count unknown ({keys})"
        elif keys is not None and len(keys) >= KEY_CEILING_WARN:
            ceiling[target.row] = (
                f"key_ceiling: {plural(len(keys), 'key')} escrowed, Entra keeps at most 200; "
                "delete old "
                "keys first or the new key will not be escrowed"
            )
    journal.set_reasons(unknown)
    if not ceiling:
        return []
    names = {t.row: t.name for t in targets}
    if settings.allow_key_ceiling:
        journal.set_reasons(ceiling)
        return [
            f"{plural(len(ceiling), 'device')} {_verb(ceiling, 'holds', 'hold')} "
            f"{KEY_CEILING_WARN}+ recovery keys and WILL be rotated "
            f"(--allow-key-ceiling): {_examples(ceiling, names)}"
        ]
    journal.skip(ceiling)
    return [
        f"{plural(len(ceiling), 'device')} {_verb(ceiling, 'holds', 'hold')} {KEY_CEILING_WARN}+ "
        f"recovery keys (Entra keeps 200) and {_verb(ceiling, 'is', 'are')} skipped as "
        f"ineligible/key_ceiling: {_examples(ceiling, names)}; delete old keys, or add "
        "--allow-key-ceiling"
    ]


def recently_queued(
    reports_dir: Path, *, since: datetime, exclude: Path, tenant_id: str = ""
) -> dict[str, str]:
    """Intune ids (lower-case) queued by other runs of this tenant since `since` -> "run <id> at
    <time>".

    Every run of this user counts (the run index), and those under `reports_dir`; a run of
    another tenant never does. Read-only: journals are opened without the run lock, so a run in
    progress is seen too. A journal last written before `since` is not opened.
    """
    cutoff = _stamp(since)
    found: dict[str, str] = {}
    excluded = exclude.resolve()
    for entry in reversed(known_runs(reports_dir)):  # oldest first: the newest run is named
        run_dir = entry.run_dir
        if run_dir == excluded or not same_tenant(entry.tenant_id, tenant_id):
            continue
        if _last_written(run_dir) < since - timedelta(minutes=1):
            continue
        with (
            contextlib.suppress(BatchRotateError, sqlite3.DatabaseError),
            closing(Journal.open(run_dir, write=False)) as journal,
        ):
            if not same_tenant(journal.meta().get("tenant_id"), tenant_id):
                continue
            for row in journal.report_rows():
                if row.status == Status.QUEUED.value and row.requested_at >= cutoff:
                    found[row.intune_device_id.lower()] = (
                        f"run {run_dir.name} at {row.requested_at}"
                    )
    return found


def _last_written(run_dir: Path) -> datetime:
    """The journal's last change: the WAL file holds a running run's writes until a checkpoint."""
    times = [datetime.max.replace(tzinfo=UTC)]  # unknown: open it
    for name in (JOURNAL_NAME, f"{JOURNAL_NAME}-wal"):
        with contextlib.suppress(OSError):
            times.append(datetime.fromtimestamp((run_dir / name).stat().st_mtime, UTC))
    return max(times[1:], default=times[0])


def held_by_live_runs(reports_dir: Path, *, exclude: Path, tenant_id: str = "") -> dict[str, str]:
    """Intune ids (lower-case) pending or in flight in another run of this tenant whose lock a
    live process holds -> its run id. A run that died holds no lock: its resume hint covers it."""
    found: dict[str, str] = {}
    excluded = exclude.resolve()
    for entry in known_runs(reports_dir):
        run_dir = entry.run_dir
        if run_dir == excluded or not same_tenant(entry.tenant_id, tenant_id):
            continue
        if not is_held(run_dir):
            continue
        with (
            contextlib.suppress(BatchRotateError, sqlite3.DatabaseError),
            closing(Journal.open(run_dir, write=False)) as journal,
        ):
            if not same_tenant(journal.meta().get("tenant_id"), tenant_id):
                continue
            for target in journal.pending_devices(in_flight=True):
                found.setdefault(target.device_id.lower(), run_dir.name)
    return found


def guard_other_live_runs(journal: Journal, run_dir: Path, settings: Settings) -> list[str]:
    """Hold back devices another live run may still send: a device is sent by one run at a time
    (no option loosens this; --force-recent is for finished runs)."""
    tenant_id = journal.meta().get("tenant_id", "")
    found = held_by_live_runs(settings.reports_dir, exclude=run_dir, tenant_id=tenant_id)
    if not found:
        return []
    targets = [t for t in journal.pending_devices() if t.device_id.lower() in found]
    if not targets:
        return []
    reasons = {
        t.row: f"in_another_run: {found[t.device_id.lower()]} (running now); it is pending or "
        "in flight there: let that run finish, then run this list again (the recent-run guard "
        "then says whether it was rotated)"
        for t in targets
    }
    journal.skip(reasons)
    runs = sorted({found[t.device_id.lower()] for t in targets})
    names = {t.row: t.name for t in targets}
    return [
        f"{plural(len(targets), 'device')} {_verb(targets, 'is', 'are')} pending or in flight in "
        f"{_verb(runs, 'another run', 'other runs')} running now ({', '.join(runs)}) and "
        f"{_verb(targets, 'is', 'are')} skipped as ineligible/in_another_run: "
        f"{_examples(reasons, names)}; let that run finish, then run this list again"
    ]


def guard_recent(journal: Journal, run_dir: Path, settings: Settings) -> list[str]:
    """Hold back devices another run queued within --recent, unless --force-recent."""
    if settings.recent_s <= 0:
        return []
    since = datetime.now(UTC) - timedelta(seconds=settings.recent_s)
    tenant_id = journal.meta().get("tenant_id", "")
    found = recently_queued(settings.reports_dir, since=since, exclude=run_dir, tenant_id=tenant_id)
    if not found:
        return []
    targets = [t for t in journal.pending_devices() if t.device_id.lower() in found]
    if not targets:
        return []
    window = hours(settings.recent_s)
    reasons = {
        t.row: f"recent_run: already queued by {found[t.device_id.lower()]} (within --recent "
        f"{window}); add --force-recent to rotate it again"
        for t in targets
    }
    names = {t.row: t.name for t in targets}
    runs = sorted({found[t.device_id.lower()].split(" at ")[0] for t in targets})
    if settings.force_recent:
        journal.set_reasons(reasons)
        return [
            f"{plural(len(targets), 'device')} {_verb(targets, 'was', 'were')} already queued "
            f"within {window} by {', '.join(runs)} "
            f"and WILL be rotated again (--force-recent): {_examples(reasons, names)}"
        ]
    journal.skip(reasons)
    return [
        f"{plural(len(targets), 'device')} {_verb(targets, 'was', 'were')} already queued "
        f"within {window} by {', '.join(runs)} and {_verb(targets, 'is', 'are')} skipped as "
        f"ineligible/recent_run: {_examples(reasons, names)}; add --force-recent "
        f"to rotate {_verb(targets, 'it', 'them')} again"
    ]


def stale_warnings(journal: Journal, cutoff: datetime) -> list[str]:
    """One line about planned devices that have not synced since `cutoff` (not skipped).

    Streamed from the journal: only the count and the first examples are held, whatever the size.
    """
    count = 0
    seen: dict[int, str] = {}
    # A time whose date is two days past the cutoff's is after it, whatever its offset (< 24 h)
    not_after = (cutoff.astimezone(UTC).date() + timedelta(days=1)).isoformat()
    for row, name, last_sync in journal.planned_last_syncs(not_after):
        moment = parse_graph_time(last_sync)
        if moment is not None and moment < cutoff:
            count += 1
            if len(seen) < 3:
                seen[row] = f"{name} (last sync {last_sync[:10]})"
    if not count:
        return []
    return [
        f"{plural(count, 'device')} {'has' if count == 1 else 'have'} not synced with Intune "
        "for more than "
        f"{STALE_AFTER.days} days and will likely stay pending: {_examples(seen, seen, count)}"
    ]
