"""The select stage: build a reviewable device list from the tenant (key reads, key age, group,
every Windows device). Selectors intersect; `--exclude` removes devices; the list is a CSV in the
Intune export's shape that `plan` and `rotate` read unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from batch_rotate.eligibility import ineligibility
from batch_rotate.graph.pacer import Budget
from batch_rotate.graph.permissions import AUDIT_ALSO
from batch_rotate.graph.session import GraphSession, Needs
from batch_rotate.inputs import read_device_list
from batch_rotate.models import Device
from batch_rotate.present import plural
from batch_rotate.resolve import Wanted
from batch_rotate.select import selectors
from batch_rotate.select.lookup import Counting, inventory, tenant_now
from batch_rotate.select.output import write_csv

__all__ = [
    "Criteria",
    "Selection",
    "SelectorReport",
    "exclude_listed",
    "needed_permissions",
    "select",
    "write_csv",
]

RETENTION_FREE_DAYS, RETENTION_PREMIUM_DAYS = 7, 30
AUDIT_BUDGET = Budget(5, 10.0)  # Entra logs and reports: 5 requests / 10 s per app per tenant
APP_AUDIT_BUDGET = Budget(122, 10.0)  # and 122 / 10 s per app across all tenants (a campaign)


@dataclass(frozen=True)
class Criteria:
    """What to select; every given selector must hold (intersection)."""

    exposed_since: datetime | float | None = None  # a time, or seconds back from the tenant's now
    read_by: str | None = None
    keys_older_than_s: float | None = None
    group: str | None = None
    all_windows: bool = False
    exclude: Path | None = None

    def any(self) -> bool:
        return bool(
            self.exposed_since is not None
            or self.keys_older_than_s is not None
            or self.group
            or self.all_windows
        )

    def describe(self) -> str:
        parts = []
        if self.exposed_since is not None:
            since = self.exposed_since
            shown = f"{since:%Y-%m-%d %H:%M}Z" if isinstance(since, datetime) else f"{since:g}s"
            parts.append(f"--exposed-since {shown}")
        if self.read_by:
            parts.append(f"--read-by {self.read_by}")
        if self.keys_older_than_s is not None:
            parts.append(f"--keys-older-than {self.keys_older_than_s / 86400:g}d")
        if self.group:
            parts.append(f"--group {self.group}")
        if self.all_windows:
            parts.append("--all-windows")
        if self.exclude:
            parts.append(f"--exclude {self.exclude.name}")
        return " ".join(parts)


def needed_permissions(criteria: Criteria) -> list[Needs]:
    """The permissions each selector needs, least privileged first, for the pre-flight check."""
    needs = [Needs(("DeviceManagementManagedDevices.Read.All",), "list Intune managed devices")]
    if criteria.exposed_since is not None:
        needs.append(Needs((selectors.AUDIT_PERMISSION,), "read 'Read BitLocker key' audit events"))
        needs.append(Needs((AUDIT_ALSO,), "read 'Read BitLocker key' audit events", advisory=True))
        needs.append(Needs((selectors.KEY_PERMISSION,), "map audited key ids to devices"))
    if criteria.keys_older_than_s is not None:
        needs.append(Needs((selectors.KEY_PERMISSION,), "read recovery key ages (metadata only)"))
    if criteria.group:
        needs.append(Needs((selectors.GROUP_PERMISSION,), "read the group's transitive members"))
        needs.append(Needs((selectors.DEVICE_PERMISSION,), "read the group's device members"))
    return needs


@dataclass(frozen=True)
class SelectorReport:
    name: str
    devices: int
    requests: int  # HTTP requests (a $batch counts once)
    graph_requests: int  # Graph requests counted against the read budget
    seconds: float
    note: str = ""

    def describe(self) -> str:
        rate = self.graph_requests / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.name}: {plural(self.devices, 'device')}; "
            f"{plural(self.graph_requests, 'Graph read')} in "
            f"{plural(self.requests, 'HTTP request')}, {self.seconds:.1f} s ({rate:.0f} reads/s)"
        )
        return f"{text}; {self.note}" if self.note else text


@dataclass
class Selection:
    devices: list[tuple[Device, str]]
    reports: list[SelectorReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    excluded: int = 0


def retention_warnings(since: datetime, now: datetime) -> list[str]:
    """What the audit log can no longer prove for a window reaching back to `since`."""
    age = now - since
    out = []
    tiers = ((RETENTION_PREMIUM_DAYS, "any license"), (RETENTION_FREE_DAYS, "Entra ID Free"))
    for days, tier in tiers:
        if age > timedelta(days=days):
            edge = f"{now - timedelta(days=days):%Y-%m-%d %H:%M}Z"
            out.append(
                f"warning: --exposed-since {since:%Y-%m-%d %H:%M}Z is older than the audit log's "
                f"retention on {tier} ({days} days): key reads between then and {edge} can no "
                "longer be proven or ruled out; devices read only then are not on this list "
                "(consider --keys-older-than or --all-windows for a full sweep)"
            )
            break
    return out


async def select(
    criteria: Criteria,
    session: GraphSession,
    *,
    notify: Callable[[str], None] = lambda _: None,
) -> Selection:
    """Run each selector given (cheap, narrow ones first), intersect, then exclude.

    Long because it is the selector sequence with each one's cost measured around it.
    """
    result = Selection([])
    # the audit log has its own budget, shared by its reads, and one per app across tenants
    audit = session.lane(AUDIT_BUDGET, app_wide=APP_AUDIT_BUDGET)
    count = Counting(session.transport)
    started, now = time.monotonic(), await tenant_now(session.through(count))
    result.reports.append(
        SelectorReport("tenant clock", 0, count.requests, count.graph_requests, 0.0, f"{now:%c}Z")
    )
    chosen: dict[str, tuple[Device, list[str]]] | None = None

    def narrow(picked: selectors.Picked) -> None:
        nonlocal chosen
        if chosen is None:
            chosen = {k: (d, [why]) for k, (d, why) in picked.items()}
        else:
            chosen = {
                k: (d, [*whys, picked[k][1]]) for k, (d, whys) in chosen.items() if k in picked
            }

    def measure(name: str, devices: int, note: str = "") -> None:
        result.reports.append(
            SelectorReport(
                name,
                devices,
                count.requests,
                count.graph_requests,
                time.monotonic() - started,
                note,
            )
        )

    if criteria.exposed_since is not None:
        since = criteria.exposed_since
        since = since if isinstance(since, datetime) else now - timedelta(seconds=since)
        result.warnings += retention_warnings(since, now)
        count, started = Counting(session.transport), time.monotonic()
        picked, found = await selectors.exposed(
            session.through(count), audit, since, criteria.read_by
        )
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(found.skipped.items()))
        note = f"{plural(found.records, 'audit record')}, "
        note += plural(len(found.reads), "distinct key read")
        measure("--exposed-since", len(picked), f"{note}; skipped: {skipped or 'none'}")
        narrow(picked)
    if criteria.group:
        count, started = Counting(session.transport), time.monotonic()
        picked, name = await selectors.group_members(session.through(count), criteria.group)
        measure("--group", len(picked), f"group {name}, transitive")
        narrow(picked)
    if criteria.all_windows or (criteria.keys_older_than_s is not None and chosen is None):
        count, started = Counting(session.transport), time.monotonic()
        if chosen is None:
            listed = await inventory(session.through(count))
            picked = {d.id: (d, "eligible Windows device") for d in listed if not ineligibility(d)}
        else:
            picked = {k: (d, "eligible Windows device") for k, (d, _) in chosen.items()}
            picked = {k: v for k, v in picked.items() if not ineligibility(v[0])}
        measure("--all-windows" if criteria.all_windows else "(eligible Windows)", len(picked))
        if criteria.all_windows:
            narrow(picked)
        else:  # only the keys selector's universe, not a selector of its own
            chosen = {k: (d, []) for k, (d, _) in picked.items()}
    if criteria.keys_older_than_s is not None:
        assert chosen is not None
        count, started = Counting(session.transport), time.monotonic()
        cutoff = now - timedelta(seconds=criteria.keys_older_than_s)
        # Only devices that can rotate: an ineligible device has no key age worth sweeping.
        candidates = [d for d, _ in chosen.values() if not ineligibility(d)]
        picked = await selectors.old_keys(session.through(count), candidates, cutoff, now)
        measure("--keys-older-than", len(picked), f"newest key before {cutoff:%Y-%m-%d %H:%M}Z")
        narrow(picked)
    final = chosen or {}
    if criteria.exclude is not None:
        final, result.excluded = exclude_listed(final, criteria.exclude)
    result.devices = sorted(
        ((d, "; ".join(w for w in whys if w)) for d, whys in final.values()),
        key=lambda pair: (pair[0].name.lower(), pair[0].id),
    )
    return result


def exclude_listed(
    chosen: dict[str, tuple[Device, list[str]]], path: Path
) -> tuple[dict[str, tuple[Device, list[str]]], int]:
    """Drop devices named in `path` (any identifier column the input reader accepts).

    A column whose kind is undecided (a lone `DeviceId`) excludes a device whose Intune or Entra
    id it holds: leaving a device out needs no probe, and a guess could rotate a kiosk."""
    listed = read_device_list(path)
    kinds = listed.kind_candidates if listed.ambiguous else (listed.kind,)
    wanted = Wanted.of(
        (kind, ref.key)
        for kind in kinds
        for ref in listed.refs.as_kind(kind)
        if ref.kind is not None and ref.key
    )
    kept = {k: v for k, v in chosen.items() if not wanted.names(v[0])}
    return kept, len(chosen) - len(kept)
