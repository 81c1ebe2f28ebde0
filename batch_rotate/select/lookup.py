"""Reads the selectors share: the tenant's clock, the inventory, and batched device lookups.

Every read goes through the graph layer's lanes and runner; `Counting` wraps the transport so
each selector can report what it cost.
"""

from __future__ import annotations

import dataclasses
import email.utils
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.graph.errors import ServiceError
from batch_rotate.graph.runner import ItemResult, Transport
from batch_rotate.graph.session import GraphSession
from batch_rotate.models import Device
from batch_rotate.present import plural
from batch_rotate.resolve import SELECT, device_from_graph

DEVICE_SELECT = SELECT + ",userPrincipalName"


@dataclass
class Counting:
    """A transport that counts HTTP requests and the Graph requests inside them."""

    inner: Transport
    requests: int = 0
    graph_requests: int = 0

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        self.requests += 1
        self.graph_requests += len(items)
        return await self.inner.batch(items, version=version)

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str = "beta",
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        self.requests += 1
        self.graph_requests += 1
        return await self.inner.request(
            method, path, version=version, json_body=json_body, params=params, headers=headers
        )


def device_of(data: Mapping[str, Any]) -> Device:
    """A managed device from Graph's JSON (with its primary user, for the list's columns)."""
    device = device_from_graph(dict(data))
    return dataclasses.replace(device, user_principal_name=str(data.get("userPrincipalName") or ""))


async def tenant_now(session: GraphSession) -> datetime:
    """The tenant's clock, from a Graph answer's `Date` (key and audit times are on it)."""
    response = await session.get(
        "deviceManagement/managedDevices", params={"$top": "1", "$select": "id"}
    )
    try:
        when = email.utils.parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        # no Date header: the local clock (the session's) is the only one left
        return datetime.fromtimestamp(session.clock.epoch(), UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def inventory(session: GraphSession) -> list[Device]:
    """Every managed Windows device, one paged listing (about a request per 1,000 devices)."""
    out: list[Device] = []
    listing = session.pages(
        "deviceManagement/managedDevices", params={"$select": DEVICE_SELECT}, passed=(), ahead=True
    )
    async with aclosing(listing):  # the page read ahead is cancelled if the listing fails
        async for page in listing:
            body = page.body if isinstance(page.body, dict) else {}
            for data in body.get("value", []):
                os_name = str(data.get("operatingSystem", "")) if isinstance(data, dict) else ""
                if os_name.lower() == "windows":
                    out.append(device_of(data))
    return out


async def devices_where(
    session: GraphSession, prop: str, values: Iterable[str]
) -> dict[str, list[Device]]:
    """Managed devices with `prop eq value`, one clause per request in `$batch` (GRAPH_NOTES.md:
    `or` chains answer the first match only), re-checked here (ignored filters list everything).
    """
    wanted = sorted({v for v in values if v})
    found: dict[str, list[Device]] = {v: [] for v in wanted}
    items = [
        BatchItem(
            n,
            "GET",
            "/deviceManagement/managedDevices?$filter="
            + quote(f"{prop} eq '{value.replace(chr(39), chr(39) * 2)}'", safe="'")
            + f"&$select={DEVICE_SELECT}",
            str(uuid.uuid4()),
        )
        for n, value in enumerate(wanted)
    ]
    failures: list[str] = []
    more: list[tuple[str, Any]] = []  # (value, first page) of results Graph paged

    def keep(value: str, listed: Iterable[Any]) -> None:
        for data in listed:
            if isinstance(data, dict) and str(data.get(prop, "")).lower() == value.lower():
                found[value].append(device_of(data))

    def on_answer(results: Sequence[ItemResult]) -> None:
        for result in results:
            if not result.final:
                continue
            value = wanted[result.item.key]
            body = result.body if isinstance(result.body, dict) else {}
            if result.status != 200:
                failures.append(f"{prop} {value}: {result.reason or result.status}")
                continue
            keep(value, body.get("value", []))
            if body.get("@odata.nextLink"):
                more.append((value, body))

    await session.runner().run(items, on_send=lambda _: None, on_answer=on_answer)
    for value, first in more:  # a filtered result can page like any listing
        keep(value, await session.rest_of(first))
    if failures:
        raise ServiceError(
            f"{plural(len(failures), 'device lookup')} failed (first: {failures[0]}); nothing "
            "was written, "
            "run select again"
        )
    return found


def windows(devices: Iterable[Device]) -> list[Device]:
    return [d for d in devices if d.os.strip().lower() == "windows"]
