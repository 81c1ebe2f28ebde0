"""Turn input refs into Intune managed devices, choosing the cheaper of two strategies.

Few Intune ids: batched GETs (one inner read per device). Otherwise: one paged listing joined
locally, then every row it did not find re-checked by a direct query (listings omit devices).
Stopped part way (Ctrl-C, an outage), it keeps what it learned: a resume asks only for the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.errors import GraphLayerError
from batch_rotate.graph.paths import device_path
from batch_rotate.graph.runner import ItemResult
from batch_rotate.graph.session import GraphSession
from batch_rotate.journal import Journal
from batch_rotate.models import Device, IdKind
from batch_rotate.present import plural
from batch_rotate.resolve_reasons import invalid_id, match_texts
from batch_rotate.textsafe import match_key

SELECT = (
    "id,deviceName,serialNumber,azureADDeviceId,operatingSystem,osVersion,joinType,"
    "lastSyncDateTime,managementAgent,deviceType,model,skuFamily,skuNumber"
)
LOOKUP_MAX = 2000  # above this many ids a listing is cheaper for any realistic tenant
# Listed devices are stored this many at a time (one transaction each); an interrupted listing
# stores what it matched, then stops.
STORE_EVERY = 20_000
LISTED = "listed"  # journal meta: "<requests> <devices>" of a finished listing not yet resolved
Eligibility = Callable[[Device], str | None]  # why a device cannot rotate; None: it can
Flag = Callable[[Device], str | None]  # what a planned device's row notes anyway; None: nothing


@dataclass(frozen=True, slots=True)
class ResolveReport:
    strategy: str  # "lookup" or "listing"
    requests: int  # HTTP requests made (a batch counts once)
    inner_requests: int  # Graph requests counted against the read budget
    inventory_size: int  # devices listed (listing only)
    rechecked: int = 0  # identifiers the listing missed, queried directly
    recheck_requests: int = 0  # $batch requests those direct queries took
    found_by_recheck: int = 0  # of them, found: the listing had left them out
    listed_before: bool = False  # the listing was made before an interrupt (resume reused it)

    def describe(self) -> str:
        if self.strategy == "lookup":
            return (
                f"looked up devices by id: {plural(self.inner_requests, 'read')} in "
                f"{plural(self.requests, '$batch request')}"
            )
        inventory = plural(self.inventory_size, "managed device")
        text = (
            f"listed the inventory ({inventory}) in {plural(self.requests, 'request')} and "
            "matched locally"
        )
        if self.listed_before:
            text = (
                f"matched locally against the inventory listed before the interrupt ({inventory})"
            )
        if self.rechecked:
            text += (
                f"; re-checked {plural(self.rechecked, 'identifier')} (those it did not find, and "
                f"every name and serial) by direct query ({plural(self.rechecked, 'read')} in "
                f"{plural(self.recheck_requests, '$batch request')}): "
                f"{self.found_by_recheck} found that the listing had left out"
            )
        return text


def device_from_graph(data: dict[str, Any]) -> Device:
    # Few distinct values: interned, a million devices share a handful of strings.
    return Device(
        id=str(data.get("id") or ""),
        name=str(data.get("deviceName") or ""),
        serial_number=str(data.get("serialNumber") or ""),
        entra_device_id=str(data.get("azureADDeviceId") or ""),
        os=sys.intern(str(data.get("operatingSystem") or "")),
        os_version=sys.intern(str(data.get("osVersion") or "")),
        join_type=sys.intern(str(data.get("joinType") or "")),
        last_sync=str(data.get("lastSyncDateTime") or ""),
        management_agent=sys.intern(str(data.get("managementAgent") or "")),
        device_type=sys.intern(str(data.get("deviceType") or "")),
        model=sys.intern(str(data.get("model") or "")),
        sku_family=sys.intern(str(data.get("skuFamily") or "")),
        sku_number=sys.intern(str(data.get("skuNumber") or "")),
    )


@dataclass(frozen=True)
class Wanted:
    """What the input names, by kind (keys normalised like `DeviceRef.key`), and the strategy."""

    keys: dict[IdKind, set[str]]
    strategy: str  # "lookup" or "listing"

    @classmethod
    def of(cls, refs: Iterable[tuple[IdKind, str]]) -> Wanted:
        """From (kind, key) pairs: the refs, or the journal's unresolved rows."""
        keys: dict[IdKind, set[str]] = {kind: set() for kind in IdKind}
        for kind, key in refs:
            keys[kind].add(key)
        total = sum(len(v) for v in keys.values())
        only_ids = bool(total) and total == len(keys[IdKind.INTUNE_ID])
        # Lookups cost one read per device; a listing about one per thousand devices. Nothing
        # left to resolve (a resumed run) is zero lookups, never a listing of the tenant.
        strategy = "lookup" if (only_ids and total <= LOOKUP_MAX) or not total else "listing"
        return cls(keys, strategy)

    def names(self, device: Device) -> bool:
        return (
            device.id.lower() in self.keys[IdKind.INTUNE_ID]
            or device.entra_device_id.lower() in self.keys[IdKind.ENTRA_DEVICE_ID]
            or match_key(device.name) in self.keys[IdKind.DEVICE_NAME]
            or match_key(device.serial_number) in self.keys[IdKind.SERIAL_NUMBER]
        )


async def resolve(
    journal: Journal,
    wanted: Wanted,
    session: GraphSession,
    *,
    eligibility: Eligibility,
    flag: Flag = lambda _: None,
    on_progress: Callable[[str, int, int | None], None] | None = None,
) -> ResolveReport:
    """Match the journal's rows to managed devices; results land in the journal.

    `eligibility` says why a device cannot rotate, `flag` what its planned row notes anyway
    (both stored with the device, None for nothing); `on_progress(what, done, total or None)` is
    told after each page or batch answered."""
    store = _Store(journal, eligibility, flag, on_progress or (lambda *_: None))
    basis = journal.meta().get("id_kind_basis", "")  # how the input column's kind was settled
    texts = {kind: match_texts(kind, basis) for kind in IdKind if wanted.keys[kind]}
    try:
        if wanted.strategy == "lookup":
            report = await _by_lookup(store, wanted, session)
        else:
            listed = _listed_before(journal)
            if listed is None:
                listed = await _by_listing(store, wanted, session)
            # Whole, the listing leaves no twin of a matched id to find (names are re-checked):
            # those rows are matched before the re-check, which then reads only the rest.
            store.matched.update((IdKind.INTUNE_ID, IdKind.ENTRA_DEVICE_ID))
            journal.match_settled({k: t for k, t in texts.items() if k in store.matched})
            report = await _recheck(store, listed, session)
    except (asyncio.CancelledError, GraphLayerError):
        # Ctrl-C or an outage: rows whose answer is complete stay resolved; resume asks the rest
        journal.keep_resolved(texts, answered=store.answered, matched=store.matched)
        raise
    journal.resolve_rows(
        texts, duplicate=("duplicate: same device as row ", "; rotated once there")
    )
    journal.fail_devices(store.invalid)  # every row naming one, duplicates included
    journal.set_meta(**{LISTED: ""})
    return report


@dataclass(frozen=True)
class _Store:
    """Where found devices go: the journal, each with its eligibility and flag decided here.

    It also notes which rows' answers are complete, for a resolution stopped part way. A device
    with an invalid id is stored ineligible, its reason kept in `invalid` (by id) so its rows
    fail once matched."""

    journal: Journal
    eligibility: Eligibility
    flag: Flag
    progress: Callable[[str, int, int | None], None]
    answered: list[tuple[IdKind, str]] = field(default_factory=list)  # every device stored
    matched: set[IdKind] = field(default_factory=set)  # kinds a stored device settles
    invalid: dict[str, str] = field(default_factory=dict)

    def add(self, devices: Iterable[Device]) -> None:
        self.journal.add_inventory(self._decided(d) for d in devices)

    def _decided(self, device: Device) -> tuple[Device, str, str]:
        bad = invalid_id(device)
        if bad is not None:
            self.invalid[device.id] = bad
            return device, bad, ""
        return device, self.eligibility(device) or "", self.flag(device) or ""


async def _by_listing(store: _Store, wanted: Wanted, session: GraphSession) -> ResolveReport:
    requests = size = 0
    # An Intune id names one device: listed once, it is matched for good, even part way.
    store.matched.add(IdKind.INTUNE_ID)
    if any(wanted.keys.values()):
        listing = session.pages(
            "deviceManagement/managedDevices", params={"$select": SELECT}, ahead=True
        )
        kept: list[Device] = []
        # Stored on this thread: a worker thread storing while the listing read on cost 12 CPU-s
        # more a million devices (the GIL passed back and forth on every row SQLite bound),
        # once the inventory lost its random-key index (schema 6, issue 23).
        try:
            async for response in listing:
                requests += 1
                body = response.body if isinstance(response.body, dict) else {}
                values = body.get("value", [])
                page = [device_from_graph(d) for d in values if isinstance(d, dict)]
                size += len(page)
                kept += (d for d in page if wanted.names(d))
                if len(kept) >= STORE_EVERY:
                    store.add(kept)
                    kept = []
                store.progress("listed managed devices", size, None)
        finally:  # what the listing matched is kept, whatever stops it
            await listing.aclose()  # a page read ahead is cancelled, not left running
            store.add(kept)
    store.journal.set_meta(**{LISTED: f"{requests} {size}"})
    return ResolveReport("listing", requests, requests, size)


def _listed_before(journal: Journal) -> ResolveReport | None:
    """The listing a stopped resolution finished (its devices are stored), or None."""
    recorded = journal.meta().get(LISTED, "").split()
    if len(recorded) != 2:
        return None
    return ResolveReport("listing", 0, 0, int(recorded[1]), listed_before=True)


async def _by_lookup(store: _Store, wanted: Wanted, session: GraphSession) -> ResolveReport:
    keys = sorted(wanted.keys[IdKind.INTUNE_ID])
    items = [
        BatchItem(
            key=n,
            method="GET",
            url=device_path(key, f"?$select={SELECT}"),
            client_request_id=str(uuid.uuid4()),
        )
        for n, key in enumerate(keys)
    ]
    failures: dict[str, str] = {}
    answered = [0]

    def on_answer(results: Sequence[ItemResult]) -> None:
        found = []
        for result in results:
            if not result.final:
                continue
            answered[0] += 1
            if result.status == 200 and isinstance(result.body, dict):
                device = device_from_graph(result.body)
                found.append(device)
                if (bad := invalid_id(device)) is not None:
                    failures[keys[result.item.key]] = bad  # its id cannot match the row's
            elif result.status != 404:
                failures[keys[result.item.key]] = _lookup_failed(result)
                continue
            store.answered.append((IdKind.INTUNE_ID, keys[result.item.key]))
        store.add(found)
        store.progress("looked up devices", answered[0], len(items))

    runner = session.runner()
    await runner.run(items, on_send=lambda _: None, on_answer=on_answer)
    store.journal.fail_resolving(failures)
    return ResolveReport("lookup", runner.stats.batches, len(items), 0)


async def _recheck(store: _Store, listed: ResolveReport, session: GraphSession) -> ResolveReport:
    """Query directly every identifier the listing missed, and every name and serial.

    Unfiltered listings are known to leave devices out (GRAPH_NOTES.md; microsoftgraph docs
    issues #21658/#21659): a miss is only `not_found` once a direct query agrees, and a name or
    serial the listing matched once may have a twin it left out (then it is ambiguous, never
    silently one device). One clause per request: Graph has answered `or` chains with the first
    match only.
    """
    every = (IdKind.DEVICE_NAME, IdKind.SERIAL_NUMBER)
    keys = list(store.journal.unmatched_keys(every=every))
    missed = {key for _, key, _, matched in keys if not matched}
    misses = [(kind, key, value) for kind, key, value, _ in keys]
    if not misses:
        return listed
    items = [
        BatchItem(
            key=n,
            method="GET",
            url=_direct_url(kind, key, value),
            client_request_id=str(uuid.uuid4()),
        )
        for n, (kind, key, value) in enumerate(misses)
    ]
    failures: dict[str, str] = {}
    found: set[str] = set()
    answered = [0]
    more: list[tuple[IdKind, str, Any]] = []  # filtered results Graph paged: (kind, key, page 1)

    def on_answer(results: Sequence[ItemResult]) -> None:
        devices = []
        for result in results:
            if not result.final:
                continue
            answered[0] += 1
            body = result.body if isinstance(result.body, dict) else {}
            kind, key, _ = misses[result.item.key]
            if result.status == 200:
                page = body.get("value") if "value" in body else [body]
                got = [device_from_graph(d) for d in page or [] if isinstance(d, dict)]
                devices += got
                if page:
                    found.add(key)
                bad = next((b for d in got if (b := invalid_id(d)) is not None), None)
                if kind == IdKind.INTUNE_ID and bad is not None:
                    failures[key] = bad  # a GET by id: its id cannot match the row's
                if body.get("@odata.nextLink"):
                    more.append((kind, key, body))  # answered once every page is read
                    continue
            elif result.status != 404:
                failures[key] = _lookup_failed(result)
                continue
            store.answered.append((kind, key))
        store.add(devices)
        store.progress("re-checked identifiers", answered[0], len(items))

    runner = session.runner()
    await runner.run(items, on_send=lambda _: None, on_answer=on_answer)
    for kind, key, first in more:  # the rest of a paged filtered result, before any verdict
        store.add(device_from_graph(d) for d in await session.rest_of(first))
        store.answered.append((kind, key))
    store.journal.fail_resolving(failures)
    return dataclasses.replace(
        listed,
        inner_requests=listed.inner_requests + len(items),
        rechecked=len(items),
        recheck_requests=runner.stats.batches,
        found_by_recheck=len(found & missed),
    )


_FILTER_PROPERTY = {
    IdKind.ENTRA_DEVICE_ID: "azureADDeviceId",
    IdKind.DEVICE_NAME: "deviceName",
    IdKind.SERIAL_NUMBER: "serialNumber",
}


def _direct_url(kind: IdKind, key: str, value: str) -> str:
    """GET by id, or a single-clause `$filter=prop eq 'value'` (OData quotes doubled)."""
    if kind == IdKind.INTUNE_ID:
        return device_path(key, f"?$select={SELECT}")
    literal = (key if kind == IdKind.ENTRA_DEVICE_ID else value.strip()).replace("'", "''")
    clause = quote(f"{_FILTER_PROPERTY[kind]} eq '{literal}'", safe="'")
    return f"/deviceManagement/managedDevices?$filter={clause}&$select={SELECT}"


def _lookup_failed(result: ItemResult) -> str:
    return f"lookup_failed: {result.reason or f'HTTP {result.status}'}"
