"""Decide whose GUIDs an ambiguous column holds by asking Graph about a sample, both ways.

A lone `DeviceId` holds Entra device ids in Entra exports and Intune ids in Log Analytics and
Graph PowerShell scripts: one `$batch` GETs each sampled value by id and filters by it as
`azureADDeviceId`; only one-sided evidence decides, anything else stops and names `--id-kind`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from batch_rotate.connect import graph_errors, signed_in
from batch_rotate.errors import GraphError, InputError
from batch_rotate.graph.batch import MAX_BATCH, BatchItem
from batch_rotate.graph.runner import ItemResult
from batch_rotate.graph.session import GraphSession, Needs
from batch_rotate.inputs import DeviceList
from batch_rotate.models import DeviceRef, IdKind
from batch_rotate.present import plural
from batch_rotate.settings import WRITE_PERMISSIONS, Credentials, Settings

SAMPLE_SIZE = MAX_BATCH // 2  # two reads per value: the whole probe is one $batch
KIND_OPTION = "--id-kind intune_id or --id-kind entra_device_id"
TO_PROBE = Needs(
    ("DeviceManagementManagedDevices.Read.All", *WRITE_PERMISSIONS),
    "read managed devices (to tell which device IDs the input column holds)",
)
# How the column's kind was settled, kept in the journal (meta `id_kind_basis`) so that later
# stages word their reasons by it: "read" (header, columns beside it, --id-kind), "sampled" (this
# module asked Graph), "assumed" (nothing could be asked: no usable value).
READ, SAMPLED, ASSUMED = "read", "sampled", "assumed"
_WORDS = {IdKind.INTUNE_ID: "Intune device IDs", IdKind.ENTRA_DEVICE_ID: "Entra device IDs"}


@dataclass(frozen=True, slots=True)
class Sighting:
    """What Graph said of one sampled value; None where it gave no usable answer."""

    value: str
    by_id: bool | None  # GET /managedDevices/{value} found a device
    by_entra: bool | None  # $filter=azureADDeviceId eq '{value}' found one


@dataclass(frozen=True, slots=True)
class Verdict:
    """The kind the sample shows (None: it shows none, or both), and what was seen."""

    kind: IdKind | None
    evidence: str
    mixed: bool = False  # values of both kinds were found


@dataclass(frozen=True, slots=True)
class Settled:
    """The device list with its column's kind settled, and how (for the journal's meta)."""

    devices: DeviceList
    basis: str

    @property
    def meta(self) -> dict[str, str]:
        return {
            "id_kind": self.devices.kind.value,
            "id_kind_evidence": self.devices.kind_evidence,
            "id_kind_basis": self.basis,
        }


def sample(refs: Sequence[DeviceRef], size: int = SAMPLE_SIZE) -> list[str]:
    """Up to `size` distinct usable keys spread over the rows (then the first others found)."""
    count = len(refs)
    chosen: dict[str, None] = {}
    spread = sorted({i * count // size for i in range(size)}) if count else []
    for index in itertools.chain(spread, range(count)):
        ref = refs[index]
        if ref.kind is not None and ref.key:
            chosen.setdefault(ref.key)
            if len(chosen) == size:
                break
    return list(chosen)


def judge(sightings: Sequence[Sighting]) -> Verdict:
    """Intune ids if only GET by id found values, Entra ids if only the filter did; else none."""
    total = len(sightings)
    by_id = sum(1 for s in sightings if s.by_id and not s.by_entra)
    by_entra = sum(1 for s in sightings if s.by_entra and not s.by_id)
    both = sum(1 for s in sightings if s.by_id and s.by_entra)
    neither = sum(1 for s in sightings if s.by_id is False and s.by_entra is False)
    unanswered = total - by_id - by_entra - both - neither
    sampled = plural(total, "sampled value")
    rest = []
    if neither:
        rest.append(f"{neither} found neither way")
    if unanswered:
        rest.append(f"{unanswered} not answered")
    tail = f"; {', '.join(rest)}" if rest else ""
    if by_id and not by_entra and not both:
        return Verdict(
            IdKind.INTUNE_ID,
            f"{by_id} of {sampled} {_are(by_id, 'Intune device ID')} (GET by id found "
            f"{_them(by_id)}; none is an Entra device ID){tail}",
        )
    if by_entra and not by_id and not both:
        return Verdict(
            IdKind.ENTRA_DEVICE_ID,
            f"{by_entra} of {sampled} {_are(by_entra, 'Entra device ID')} (the azureADDeviceId "
            f"filter found {_them(by_entra)}; none is an Intune device ID){tail}",
        )
    if by_id or by_entra or both:
        found = (
            f"of {sampled}, {by_id} {_are(by_id, 'Intune device ID')} (GET by id found "
            f"{_them(by_id)}) and {by_entra} {_are(by_entra, 'Entra device ID')} (the "
            f"azureADDeviceId filter found {_them(by_entra)})"
        )
        if both:
            found += f"; {both} {'was' if both == 1 else 'were'} found both ways"
        return Verdict(None, f"{found}{tail}; the column mixes both kinds", mixed=True)
    unsure = f" ({unanswered} not answered)" if unanswered else ""
    return Verdict(
        None,
        f"none of {sampled} was found, neither as an Intune device ID (GET by id) "
        f"nor as an Entra device ID (the azureADDeviceId filter){unsure}",
    )


def _are(count: int, kind: str) -> str:
    """`is an Intune device ID` or `are Intune device IDs`, agreeing with `count`."""
    return f"is {'an' if kind[0] in 'AEIOU' else 'a'} {kind}" if count == 1 else f"are {kind}s"


def _them(count: int) -> str:
    return "it" if count == 1 else "them"


async def probe(session: GraphSession, values: Sequence[str]) -> list[Sighting]:
    """Ask for every value both ways in one `$batch` (re-sending only what Graph asks to)."""
    items = []
    for n, value in enumerate(values):
        clause = quote(f"azureADDeviceId eq '{value}'", safe="'")
        for key, url in (
            (2 * n, f"/deviceManagement/managedDevices/{quote(value)}?$select=id"),
            (2 * n + 1, f"/deviceManagement/managedDevices?$filter={clause}&$select=id"),
        ):
            items.append(BatchItem(key, "GET", url, str(uuid.uuid4())))
    found: dict[int, bool] = {}

    def on_answer(results: Sequence[ItemResult]) -> None:
        for result in results:
            key, body = result.item.key, result.body
            if not result.final:
                continue
            if result.status == 200 and isinstance(body, dict):
                found[key] = bool(body.get("value")) if key % 2 else bool(body.get("id"))
            elif result.status == 404:  # an id that is no managed device's
                found[key] = False

    runner = session.runner(max_concurrency=1)  # one full batch: the whole probe
    await runner.run(items, on_send=lambda _: None, on_answer=on_answer)
    return [
        Sighting(value, found.get(2 * n), found.get(2 * n + 1)) for n, value in enumerate(values)
    ]


async def settle_kind(
    devices: DeviceList,
    *,
    credentials: Credentials,
    settings: Settings,
    notify: Callable[[str], None] = lambda _: None,
) -> Settled:
    """The list as read when its column's kind is known; else decided by a probe, or refused."""
    if not devices.ambiguous:
        return Settled(devices, READ)
    values = sample(devices.refs)
    if not values:  # no usable value: every row is invalid_input, no kind is ever asserted
        return Settled(devices, ASSUMED)
    with graph_errors():
        async with signed_in(credentials, settings, needs=TO_PROBE) as session:
            sightings = await probe(session, values)
    column, where = devices.column, devices.path.name
    if all(s.by_id is None and s.by_entra is None for s in sightings):
        raise GraphError(
            f"{where}: to tell whether column {column!r} holds Intune or Entra device IDs, "
            f"{plural(len(values), 'sampled value')} {'was' if len(values) == 1 else 'were'} "
            "looked up, and Graph answered none of the "
            f"lookups; nothing was sent. Run again when Graph answers, or say what the column "
            f"holds with {KIND_OPTION}"
        )
    verdict = judge(sightings)
    if verdict.kind is None:
        fix = f"say what the column holds with {KIND_OPTION}"
        if verdict.mixed:
            fix += " (a file that mixes both kinds: split it into one file per kind)"
        else:
            fix += f" (and check AZURE_TENANT_ID {credentials.tenant_id} is the devices' tenant)"
        raise InputError(
            f"{where}: {devices.kind_evidence}, and a sample looked up in Graph both ways does "
            f"not tell either: {verdict.evidence}. Nothing was sent; {fix}"
        )
    notify(f"column {column}: {verdict.evidence}: reading it as {verdict.kind.value}")
    evidence = (
        f"{column!r} was read as {_WORDS[verdict.kind]} by sampling: {verdict.evidence} "
        f"(header alone: {devices.kind_evidence})"
    )
    return Settled(devices.as_kind(verdict.kind, evidence), SAMPLED)
