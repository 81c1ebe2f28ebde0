"""Verify queued rotations: the device's BitLocker action result and a newly escrowed key.

A 204 only queues the rotation; proof is a recovery key in Entra ID created after the request
(GRAPH_NOTES.md "Observing the outcome later"). The verdict is a pure function of the evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.lane import Lane
from batch_rotate.graph.pages import pages
from batch_rotate.graph.runner import BatchRunner, ItemResult, Transport
from batch_rotate.journal import Journal, VerifyTarget
from batch_rotate.models import Verdict, Verification

KEY_CEILING_WARN = 190  # Entra keeps at most 200 recovery keys per device
KEY_PERMISSION = "BitLockerKey.ReadBasic.All"

# HRESULTs a rotation reports (GRAPH_NOTES.md): code -> (cause, fix)
ERROR_CODES: dict[int, tuple[str, str]] = {
    0x803100DA: (
        "recovery information backup to Entra ID is not Required (OS drive)",
        "set 'Save BitLocker recovery information to Entra ID' and 'Do not enable BitLocker "
        "until recovery information is stored' to Required for OS drives",
    ),
    0x803100DB: (
        "recovery information backup to Entra ID is not Required (fixed drives)",
        "set the same backup policy to Required for fixed data drives",
    ),
    0x803100E1: ("the backup endpoint was busy", "rotate again later"),
    0x80310059: ("another BitLocker operation was in progress", "rotate again later"),
    0x80310008: ("BitLocker is not enabled on the drive", "enable BitLocker first"),
    0x80310000: ("the drive is locked", "unlock the drive, then rotate again"),
    0x80070490: (
        "element not found (no recovery password protector)",
        "add a recovery password protector",
    ),
    0x80070057: ("invalid parameter", "check the BitLocker policy on the device"),
    0x80004005: ("unspecified failure", "check the device's BitLocker event log"),
    0x80090029: ("operation not supported", "the device cannot rotate (edition or TPM)"),
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """What Graph says about one device now."""

    action_state: str = ""  # of the BitLocker rotate action, "" if none is listed
    action_error: int | None = None
    action_updated: str = ""
    last_check_in: str = ""
    key_times: tuple[str, ...] | None = None  # createdDateTime per key; None when unreadable
    key_volumes: tuple[str, ...] = ()
    key_error: str = ""


def hresult_hex(code: int) -> str:
    return f"0x{code & 0xFFFFFFFF:08X}"


def explain(code: int) -> str:
    cause, fix = ERROR_CODES.get(
        code & 0xFFFFFFFF, ("unknown error", "see the device's BitLocker event log")
    )
    return f"{hresult_hex(code)}: {cause}; {fix}"


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 UTC time as Graph writes it (up to 7 fraction digits, 'Z'), or None."""
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", text.strip()
    )
    if not match:
        return None
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = match.group(3) or "Z"
    parsed = datetime.fromisoformat(
        f"{match.group(1)}.{fraction}{'+00:00' if zone == 'Z' else zone}"
    )
    return parsed.astimezone(UTC)


def _newer(created: str, requested_at: str) -> bool:
    when, requested = parse_time(created), parse_time(requested_at)
    return when is not None and requested is not None and when > requested


def verdict(row: int, requested_at: str, ev: Evidence) -> Verdict:
    """The verification status of one device from its evidence (pure).

    Long because it is one decision table, read top to bottom, with the wording of each verdict.
    """
    times = ev.key_times
    count = None if times is None else len(times)
    new = sorted(t for t in times or () if _newer(t, requested_at))
    code = "" if ev.action_error is None else hresult_hex(ev.action_error)
    ceiling = ""
    if count is not None and count >= KEY_CEILING_WARN:
        ceiling = f"; key_ceiling: {count} keys escrowed, Entra keeps at most 200: delete old keys"

    def make(status: Verification, detail: str) -> Verdict:
        return Verdict(
            row,
            status,
            detail + ceiling,
            ev.action_state,
            code,
            new[0] if new else "",
            ev.last_check_in,
            count,
        )

    if new:
        volumes = ", ".join(sorted(set(ev.key_volumes))) or "unknown volume"
        return make(Verification.VERIFIED, f"new recovery key escrowed at {new[0]} ({volumes})")
    state = ev.action_state.lower()
    if state == "failed":
        return make(
            Verification.FAILED,
            explain(ev.action_error)
            if ev.action_error is not None
            else "the device reported failure without an error code",
        )
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
        f"action {ev.action_state or 'not listed yet'})",
    )


def _bitlocker_action(device: dict[str, Any]) -> dict[str, Any]:
    for action in device.get("deviceActionResults") or []:
        if isinstance(action, dict) and "bitlocker" in str(action.get("actionName", "")).lower():
            return action
    return {}


def _error_code(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


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
    entra_ids: Sequence[str],
    graph: Transport,
    reads: Lane,
    *,
    strategy: str = "per-device",
    max_attempts: int = 8,
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
        listing = pages(
            graph,
            reads,
            "informationProtection/bitlocker/recoveryKeys",
            version="v1.0",
            max_attempts=max_attempts,
            passed=(403,),
            permission=KEY_PERMISSION,
        )
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
    items = [
        BatchItem(
            n,
            "GET",
            "/informationProtection/bitlocker/recoveryKeys?$filter="
            + quote(f"deviceId eq '{entra}'", safe="'"),
            str(uuid.uuid4()),
        )
        for n, entra in enumerate(wanted)
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

    await BatchRunner(graph, reads, max_attempts=max_attempts, version="v1.0").run(
        items, on_send=lambda _: None, on_answer=on_keys
    )
    for entra, link in next_links.items():  # a device with many keys: follow its pages
        more = pages(graph, reads, link, max_attempts=max_attempts, permission=KEY_PERMISSION)
        async for page in more:
            body = page.body if isinstance(page.body, dict) else {}
            keys = found[entra]
            if isinstance(keys, list):
                keys.extend(k for k in body.get("value", []) if isinstance(k, dict))
    return found


async def check(
    targets: Sequence[VerifyTarget],
    graph: Transport,
    reads: Lane,
    *,
    strategy: str = "per-device",
    max_attempts: int = 8,
) -> list[Verdict]:
    """One round: action results (beta, batched) and recovery keys (v1.0), on the read budget.

    Long because it joins the two reads per device before deciding its verdict.
    """
    devices: dict[int, dict[str, Any]] = {}
    items = [
        BatchItem(
            t.row,
            "GET",
            f"/deviceManagement/managedDevices/{t.device_id}"
            "?$select=id,deviceActionResults,lastSyncDateTime",
            str(uuid.uuid4()),
        )
        for t in targets
    ]

    def on_device(results: Sequence[ItemResult]) -> None:
        for r in results:
            if r.final and r.status == 200 and isinstance(r.body, dict):
                devices[r.item.key] = r.body

    await BatchRunner(graph, reads, max_attempts=max_attempts).run(
        items, on_send=lambda _: None, on_answer=on_device
    )
    keys = await recovery_keys(
        [t.entra_device_id for t in targets],
        graph,
        reads,
        strategy=strategy,
        max_attempts=max_attempts,
    )
    verdicts = []
    for t in targets:
        device = devices.get(t.row, {})
        action = _bitlocker_action(device)
        found = keys.get(t.entra_device_id.lower(), "no Entra device id")
        new_volumes: tuple[str, ...] = ()
        times: tuple[str, ...] | None = None
        if isinstance(found, list):
            times = tuple(str(k.get("createdDateTime", "")) for k in found)
            new_volumes = tuple(
                str(k.get("volumeType", ""))
                for k in found
                if _newer(str(k.get("createdDateTime", "")), t.requested_at)
            )
        evidence = Evidence(
            action_state=str(action.get("actionState", "")),
            action_error=_error_code(action.get("errorCode")),
            action_updated=str(action.get("lastUpdatedDateTime", "")),
            last_check_in=str(device.get("lastSyncDateTime", "")),
            key_times=times,
            key_volumes=new_volumes,
            key_error=found if isinstance(found, str) else "",
        )
        verdicts.append(verdict(t.row, t.requested_at, evidence))
    return verdicts


async def verify_journal(
    journal: Journal,
    graph: Transport,
    reads: Lane,
    *,
    wait_s: float = 0.0,
    every_s: float = 60.0,
    stop: asyncio.Event | None = None,
    notify: Callable[[str], None] = lambda _: None,
    max_attempts: int = 8,
    strategy: str = "auto",
) -> dict[str, int]:
    """Check until every queued device has a final verdict, or `wait_s` has passed."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        targets = journal.verification_targets()
        if not targets:
            break
        inventory = int(journal.meta().get("inventory_size") or 0) or None
        chosen = keys_strategy(len(targets), inventory, strategy)
        verdicts = await check(targets, graph, reads, strategy=chosen, max_attempts=max_attempts)
        journal.record_verification(verdicts)
        counts = journal.verification_counts()
        notify(
            f"verification ({chosen} key reads): "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
        remaining = deadline - loop.time()
        if stop.is_set() or remaining <= 0 or all(v.status.final for v in verdicts):
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(every_s, remaining))
    return journal.verification_counts()
