"""Verify queued rotations: the device's BitLocker action result and a newly escrowed key.

A 204 only queues the rotation; proof is a recovery key in Entra ID created after the request, on
the tenant's clock (GRAPH_NOTES.md "Observing the outcome later", "Clocks"). The verdict is a
pure function of the evidence and the request's tenant time (`tenant_clock.py`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import Any

from batch_rotate.actions import RotationAction, rotation_action
from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.pacer import Clock
from batch_rotate.graph.paths import device_path, is_guid, recovery_keys_of
from batch_rotate.graph.runner import ItemResult
from batch_rotate.graph.session import GraphSession
from batch_rotate.hresults import describe_hresult, hresult_hex
from batch_rotate.journal import Journal, VerifyTarget
from batch_rotate.models import Verdict, Verification
from batch_rotate.present import plural
from batch_rotate.tenant_clock import (
    CLOCK_MARGIN_S,
    iso,
    measured_offset_s,
    offset_notice,
    offset_sample_s,
    parse_graph_time,
    reference_time,
    run_offset_s,
)

KEY_CEILING_WARN = 190  # Entra keeps at most 200 recovery keys per device
KEY_PERMISSION = "BitlockerKey.ReadBasic.All"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What Graph says about one device now; times are on the tenant's clock."""

    action_state: str = ""  # of the BitLocker rotate action, "" if none is listed
    action_error: int | None = None
    action_started: str = ""  # the action result's startDateTime
    action_updated: str = ""
    last_check_in: str = ""
    key_times: tuple[str, ...] | None = None  # createdDateTime per key; None when unreadable
    key_volumes: tuple[str, ...] = ()  # volumeType per key, alongside key_times
    key_error: str = ""


def explain(code: int | None) -> str:
    """A device's HRESULT in words: hex, cause and fix (no code, or 0, is said plainly)."""
    cause, fix = describe_hresult(code or 0)
    if not code:
        return f"{cause}; {fix}"
    return f"{hresult_hex(code)}: {cause}; {fix}"


def _since(reference_at: str) -> datetime | None:
    reference = parse_graph_time(reference_at)
    return None if reference is None else reference - timedelta(seconds=CLOCK_MARGIN_S)


def _new_keys(ev: Evidence, since: datetime | None) -> list[tuple[datetime, str, str]]:
    """(created, as written, volume) of keys created at or after `since`, oldest first."""
    if since is None:
        return []
    found = []
    for text, volume in zip_longest(ev.key_times or (), ev.key_volumes, fillvalue=""):
        created = parse_graph_time(text)
        if created is not None and created >= since:
            found.append((created, text, volume))
    return sorted(found)


def _history(ev: Evidence, reference_at: str) -> str:
    """An older request's result, for the detail (GRAPH_NOTES.md "Action results")."""
    code = "" if ev.action_error in (None, 0) else f" {hresult_hex(ev.action_error or 0)}"
    started = ev.action_started or "an unknown time"
    return (
        f"; the BitLocker result listed is an earlier request's ({ev.action_state}{code}, "
        f"started {started}, before this rotation at {reference_at or 'an unknown time'})"
    )


def verdict(row: int, reference_at: str, ev: Evidence) -> Verdict:
    """The verification status of one device from its evidence (pure).

    `reference_at` is when this rotation was requested, on the tenant's clock. Only a key created,
    or an action result started, at or after it (less CLOCK_MARGIN_S) is this rotation's outcome.
    Long because it is one decision table, read top to bottom, with the wording of each verdict.
    """
    since = _since(reference_at)
    times = ev.key_times
    count = None if times is None else len(times)
    new = _new_keys(ev, since)
    started = parse_graph_time(ev.action_started)
    current = since is not None and started is not None and started >= since
    state = ev.action_state.lower() if current else ""
    history = _history(ev, reference_at) if ev.action_state and not current else ""
    ceiling = ""
    if count is not None and count >= KEY_CEILING_WARN:
        ceiling = (
            f"; key_ceiling: {plural(count, 'key')} escrowed, Entra keeps at most 200: delete old "
            "keys"
        )

    def make(status: Verification, detail: str) -> Verdict:
        error = ev.action_error
        shown = current and error is not None and (state == "failed" or error != 0)
        code = hresult_hex(error) if shown and error is not None else ""
        return Verdict(
            row,
            status,
            detail + history + ceiling,
            ev.action_state if current else "",
            code,
            new[0][1] if new else "",
            ev.last_check_in,
            count,
        )

    if new:
        volumes = ", ".join(sorted({v for _, _, v in new if v})) or "unknown volume"
        return make(Verification.VERIFIED, f"new recovery key escrowed at {new[0][1]} ({volumes})")
    if state == "failed":
        return make(Verification.FAILED, explain(ev.action_error))
    if state == "notsupported":
        return make(
            Verification.NOT_SUPPORTED,
            "the device cannot rotate BitLocker keys (edition, OS or hardware)",
        )
    if times is None:
        if state == "done":
            return make(
                Verification.UNKNOWN,
                f"the device reports done, but recovery keys cannot be read ({ev.key_error}); "
                f"grant {KEY_PERMISSION}",
            )
        return make(
            Verification.PENDING,
            f"waiting for the device to check in (last check-in "
            f"{ev.last_check_in or 'unknown'}); keys unreadable: {ev.key_error}",
        )
    if state == "done":
        return make(
            Verification.DONE_NO_NEW_KEY,
            "the device reports the rotation done but no key newer than the request is in "
            "Entra ID; check the escrow policy and the key count",
        )
    return make(
        Verification.PENDING,
        f"waiting for the device to check in (last check-in {ev.last_check_in or 'unknown'}; "
        f"action {state or ('not listed yet for this rotation' if history else 'not listed yet')})",
    )


KEY_PAGE_GUESS = 200  # keys per page of an unfiltered listing (Graph documents no page size)
KEYS_PER_DEVICE_GUESS = 2  # an OS volume, sometimes a fixed drive; old keys age out rarely


def keys_strategy(wanted: int, inventory_size: int | None, choice: str = "auto") -> str:
    """Per-device filtered reads, or one listing of all the tenant's keys: the cheaper one."""
    if choice != "auto":
        return choice
    if not inventory_size:
        return "per-device"
    listing_cost = inventory_size * KEYS_PER_DEVICE_GUESS / KEY_PAGE_GUESS
    return "listing" if wanted > listing_cost else "per-device"


KeysFound = dict[str, list[dict[str, Any]] | str]  # by lower-case Entra device id; str = why not


async def recovery_keys(
    entra_ids: Sequence[str], session: GraphSession, *, strategy: str = "per-device"
) -> KeysFound:
    """Key metadata (never the key itself) for these Entra device ids, by the chosen strategy.

    Long because both strategies (per-device batched reads, one tenant listing) live here so
    their answers are shaped alike.
    """
    wanted = sorted({e.lower() for e in entra_ids if e})
    found: KeysFound = {}
    if not wanted:
        return found
    if strategy == "listing":
        keep = set(wanted)
        for entra in wanted:
            found[entra] = []
        listing = session.pages(
            "informationProtection/bitlocker/recoveryKeys",
            version="v1.0",
            passed=(403,),
            permission=KEY_PERMISSION,
            ahead=True,
        )
        async with aclosing(listing):  # a page read ahead is cancelled if it stops early
            async for page in listing:
                if page.status == 403:
                    return {e: f"403: the app lacks {KEY_PERMISSION}" for e in wanted}
                body = page.body if isinstance(page.body, dict) else {}
                for key in body.get("value", []):
                    entra = str(key.get("deviceId", "")).lower() if isinstance(key, dict) else ""
                    if entra in keep:
                        found_list = found[entra]
                        assert isinstance(found_list, list)
                        found_list.append(key)
        return found
    next_links: dict[str, str] = {}
    for entra in wanted:
        if not is_guid(entra):  # never into a URL; read as "could not be read"
            found[entra] = "invalid_id: the Entra device id is not a GUID; its keys were not read"
    items = [
        BatchItem(n, "GET", recovery_keys_of(entra), str(uuid.uuid4()))
        for n, entra in enumerate(wanted)
        if entra not in found
    ]

    def on_keys(results: Sequence[ItemResult]) -> None:
        for r in results:
            if not r.final:
                continue
            entra = wanted[r.item.key]
            if r.status == 200 and isinstance(r.body, dict):
                found[entra] = [k for k in r.body.get("value", []) if isinstance(k, dict)]
                if r.body.get("@odata.nextLink"):
                    next_links[entra] = str(r.body["@odata.nextLink"])
            elif r.status == 403:
                found[entra] = f"403 {r.error.code}: the app lacks {KEY_PERMISSION}"
            else:
                found[entra] = r.reason or f"HTTP {r.status}"

    await session.runner(version="v1.0").run(items, on_send=lambda _: None, on_answer=on_keys)
    for entra, link in next_links.items():  # a device with many keys: follow its pages
        more = session.pages(link, permission=KEY_PERMISSION)
        async for page in more:
            body = page.body if isinstance(page.body, dict) else {}
            keys = found[entra]
            if isinstance(keys, list):
                keys.extend(k for k in body.get("value", []) if isinstance(k, dict))
    return found


@dataclass(frozen=True, slots=True)
class Checked:
    """One round's verdicts, and the local clock's offset from the tenant's as measured in it."""

    verdicts: list[Verdict]
    offset_s: float | None  # tenant minus local; None when no answer carried a Date


async def check(
    targets: Sequence[VerifyTarget], session: GraphSession, *, strategy: str = "per-device"
) -> Checked:
    """One round: action results (beta, batched) and recovery keys (v1.0), on the read budget.

    Long because it joins the two reads per device, on the tenant's clock, before each verdict.
    """
    devices: dict[int, dict[str, Any]] = {}
    samples: list[float] = []
    items = [
        BatchItem(
            t.row,
            "GET",
            device_path(t.device_id, "?$select=id,deviceActionResults,lastSyncDateTime"),
            str(uuid.uuid4()),
        )
        for t in targets
    ]

    def on_device(results: Sequence[ItemResult]) -> None:
        local = session.clock.epoch()
        for r in results:
            sample = offset_sample_s(r.answered_at, local)
            if sample is not None:
                samples.append(sample)
            if r.final and r.status == 200 and isinstance(r.body, dict):
                devices[r.item.key] = r.body

    await session.runner().run(items, on_send=lambda _: None, on_answer=on_device)
    keys = await recovery_keys([t.entra_device_id for t in targets], session, strategy=strategy)
    offset = measured_offset_s(samples)
    sent = run_offset_s((t.requested_at, t.accepted_at) for t in targets)
    verdicts = []
    for t in targets:
        reference = reference_time(
            t.requested_at, t.accepted_at, run_offset=sent, now_offset=offset
        )
        device = devices.get(t.row, {})
        action = rotation_action(device) or RotationAction()
        found = keys.get(t.entra_device_id.lower(), "no Entra device id")
        listed = found if isinstance(found, list) else []
        evidence = Evidence(
            action_state=action.state,
            action_error=action.error_code,
            action_started=action.started_at,
            action_updated=action.updated_at,
            last_check_in=str(device.get("lastSyncDateTime", "")),
            key_times=(
                tuple(str(k.get("createdDateTime", "")) for k in listed)
                if isinstance(found, list)
                else None
            ),
            key_volumes=tuple(str(k.get("volumeType", "")) for k in listed),
            key_error=found if isinstance(found, str) else "",
        )
        verdicts.append(verdict(t.row, "" if reference is None else iso(reference), evidence))
    return Checked(verdicts, offset)


async def verify_journal(
    journal: Journal,
    session: GraphSession,
    *,
    wait_s: float = 0.0,
    every_s: float = 60.0,
    stop: asyncio.Event | None = None,
    notify: Callable[[str], None] = lambda _: None,
    strategy: str = "auto",
) -> dict[str, int]:
    """Check until every queued device has a final verdict, or `wait_s` has passed.

    The local clock's offset from the tenant's is kept in the run's meta
    (`tenant_clock_offset_s`); beyond OFFSET_NOTICE_S it is said once and logged as an event.
    Waits are on the session's clock.
    """
    stop = stop or asyncio.Event()
    clock = session.clock
    deadline = clock.now() + wait_s
    told = False
    while True:
        targets = journal.verification_targets()
        if not targets:
            break
        inventory = int(journal.meta().get("inventory_size") or 0) or None
        chosen = keys_strategy(len(targets), inventory, strategy)
        checked = await check(targets, session, strategy=chosen)
        journal.record_verification(checked.verdicts)
        if checked.offset_s is not None:
            journal.set_meta(tenant_clock_offset_s=f"{checked.offset_s:.1f}")
            notice = offset_notice(checked.offset_s)
            if notice and not told:
                told = True
                journal.event("tenant_clock_offset", notice)
                notify(notice)
        counts = journal.verification_counts()
        notify(
            f"verification ({chosen} key reads): "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
        remaining = deadline - clock.now()
        if stop.is_set() or remaining <= 0 or all(v.status.final for v in checked.verdicts):
            break
        await _sleep_unless_stopped(clock, min(every_s, remaining), stop)
    return journal.verification_counts()


async def _sleep_unless_stopped(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    waiters = {asyncio.ensure_future(clock.sleep(seconds)), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
