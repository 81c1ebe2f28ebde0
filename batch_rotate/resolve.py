"""Turn input refs into Intune managed devices, choosing the cheaper of two strategies.

Few Intune ids: batched GETs (one inner read per device). Otherwise: one paged listing of the
inventory with `$select`, joined locally (about one request per page of devices).
"""

from __future__ import annotations

import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.client import GraphClient
from batch_rotate.graph.retry import BatchRunner, ItemResult, Throttle, get_with_retry
from batch_rotate.models import Device, DeviceRef, IdKind, Resolution, Status

SELECT = (
    "id,deviceName,serialNumber,azureADDeviceId,operatingSystem,osVersion,joinType,"
    "lastSyncDateTime,managementAgent"
)
LOOKUP_MAX = 2000  # above this many ids a listing is cheaper for any realistic tenant


@dataclass(frozen=True, slots=True)
class ResolveReport:
    strategy: str  # "lookup" or "listing"
    requests: int  # HTTP requests made (a batch counts once)
    inner_requests: int  # Graph requests counted against the read budget
    inventory_size: int  # devices listed (listing only)

    def describe(self) -> str:
        if self.strategy == "lookup":
            return (
                f"looked up devices by id: {self.inner_requests} reads in {self.requests} $batch "
                "requests"
            )
        return (
            f"listed the inventory ({self.inventory_size} managed devices) in {self.requests} "
            "requests and matched locally"
        )


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
    )


def choose_strategy(refs: Sequence[DeviceRef]) -> str:
    """Lookups only pay off for a modest list of Intune ids; names and serials need the listing."""
    valid = [ref for ref in refs if ref.kind is not None]
    if valid and len(valid) <= LOOKUP_MAX and all(r.kind == IdKind.INTUNE_ID for r in valid):
        return "lookup"
    return "listing"


class Index:
    """Devices indexed by identifier kind (keys normalised like `DeviceRef.key`).

    With `wanted`, only devices some input row names are kept: memory follows the list, not
    the tenant. Every device a wanted key names is kept, so ambiguity is still seen.
    """

    def __init__(
        self, devices: Iterable[Device], wanted: dict[IdKind, set[str]] | None = None
    ) -> None:
        self.by_kind: dict[IdKind, dict[str, list[Device]]] = {k: defaultdict(list) for k in IdKind}
        self.wanted = wanted
        self.size = 0
        for device in devices:
            self.add(device)

    def add(self, device: Device) -> None:
        self.size += 1
        for kind, value in (
            (IdKind.INTUNE_ID, device.id.lower()),
            (IdKind.ENTRA_DEVICE_ID, device.entra_device_id.lower()),
            (IdKind.DEVICE_NAME, device.name.strip().casefold()),
            (IdKind.SERIAL_NUMBER, device.serial_number.strip().casefold()),
        ):
            if value and (self.wanted is None or value in self.wanted[kind]):
                self.by_kind[kind][value].append(device)

    def match(self, ref: DeviceRef) -> Resolution:
        if ref.kind is None:
            return Resolution(ref, Status.INVALID_INPUT, None, ref.error or "unusable value")
        found = self.by_kind[ref.kind].get(ref.key, [])
        if not found:
            return Resolution(ref, Status.NOT_FOUND, None, _not_found(ref))
        if len(found) > 1:
            ids = ", ".join(d.id for d in found[:10])
            return Resolution(
                ref,
                Status.AMBIGUOUS,
                None,
                f"ambiguous: {len(found)} managed devices have this {_label(ref.kind)} "
                f"({ids}); list the device by its Intune device ID instead",
            )
        return Resolution(ref, Status.PENDING, found[0])


async def resolve(
    refs: Sequence[DeviceRef],
    graph: GraphClient,
    throttle: Throttle,
    *,
    max_concurrency: int = 4,
    max_attempts: int = 8,
) -> tuple[list[Resolution], ResolveReport]:
    """Resolve every ref (invalid ones pass through as `invalid_input`); order is kept."""
    if choose_strategy(refs) == "lookup":
        return await _by_lookup(refs, graph, throttle, max_concurrency, max_attempts)
    return await _by_listing(refs, graph, throttle, max_attempts)


async def _by_listing(
    refs: Sequence[DeviceRef], graph: GraphClient, throttle: Throttle, max_attempts: int
) -> tuple[list[Resolution], ResolveReport]:
    wanted: dict[IdKind, set[str]] = {kind: set() for kind in IdKind}
    for ref in refs:
        if ref.kind is not None:
            wanted[ref.kind].add(ref.key)
    index = Index((), wanted)
    requests = 0
    path: str = "deviceManagement/managedDevices"
    params: dict[str, str] | None = {"$select": SELECT}
    if any(ref.kind is not None for ref in refs):
        while path:
            response = await get_with_retry(
                graph, throttle, path, params=params, max_attempts=max_attempts
            )
            requests += 1
            body = response.body if isinstance(response.body, dict) else {}
            for data in body.get("value", []):
                if isinstance(data, dict):
                    index.add(device_from_graph(data))
            path, params = str(body.get("@odata.nextLink") or ""), None
    report = ResolveReport("listing", requests, requests, index.size)
    return [index.match(ref) for ref in refs], report


async def _by_lookup(
    refs: Sequence[DeviceRef],
    graph: GraphClient,
    throttle: Throttle,
    max_concurrency: int,
    max_attempts: int,
) -> tuple[list[Resolution], ResolveReport]:
    keys = sorted({ref.key for ref in refs if ref.kind is not None})
    items = [
        BatchItem(
            key=n,
            method="GET",
            url=f"/deviceManagement/managedDevices/{key}?$select={SELECT}",
            client_request_id=str(uuid.uuid4()),
        )
        for n, key in enumerate(keys)
    ]
    found: dict[str, Device] = {}
    failures: dict[str, str] = {}

    def on_answer(results: Sequence[ItemResult]) -> None:
        for result in results:
            if not result.final:
                continue
            key = keys[result.item.key]
            if result.status == 200 and isinstance(result.body, dict):
                found[key] = device_from_graph(result.body)
            elif result.status != 404:
                failures[key] = result.reason or f"HTTP {result.status}"

    runner = BatchRunner(
        graph, throttle, max_concurrency=max_concurrency, max_attempts=max_attempts
    )
    await runner.run(items, on_send=lambda _: None, on_answer=on_answer)
    index = Index(found.values())
    resolutions = []
    for ref in refs:
        if ref.kind is not None and ref.key in failures:
            reason = f"lookup_failed: {failures[ref.key]}"
            resolutions.append(Resolution(ref, Status.FAILED, None, reason))
        else:
            resolutions.append(index.match(ref))
    report = ResolveReport("lookup", runner.stats.batches, len(items), 0)
    return resolutions, report


def _label(kind: IdKind) -> str:
    return {
        IdKind.INTUNE_ID: "Intune device ID",
        IdKind.ENTRA_DEVICE_ID: "Entra device ID",
        IdKind.DEVICE_NAME: "device name",
        IdKind.SERIAL_NUMBER: "serial number",
    }[kind]


def _not_found(ref: DeviceRef) -> str:
    assert ref.kind is not None
    hint = {
        IdKind.INTUNE_ID: "check it is the Intune 'Device ID', not the Entra device ID",
        IdKind.ENTRA_DEVICE_ID: "the device may not be enrolled in Intune",
        IdKind.DEVICE_NAME: "check the spelling; the device may have been renamed or retired",
        IdKind.SERIAL_NUMBER: "check the serial; Excel may have changed it",
    }[ref.kind]
    return f"not_found: no Intune managed device has this {_label(ref.kind)}; {hint}"
