"""A sweep's posture (pure): which devices of the targeted population hold a key younger than
the policy's limit before and after the sweep, how old the keys are, why the rest cannot comply,
and the trend across the sweeps of one policy.

A rotation counts only once `verify` saw its new key escrowed (GRAPH_NOTES.md "Observing the
outcome later"): a queued rotation leaves its device non-compliant, pending.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from batch_rotate.eligibility import cloud_pc
from batch_rotate.models import Device
from batch_rotate.verify import KEY_CEILING_WARN

OFFLINE_AFTER = timedelta(days=30)  # as the plan's warning (guards.STALE_AFTER)
# Key-age buckets in days (upper bounds); the policy's limit is added so the chart shows it.
AGE_BOUNDS = (30, 60, 90, 180, 365)


class Why(StrEnum):
    """Why a device of the population is not compliant after the sweep (stable codes)."""

    INELIGIBLE = "ineligible"  # the rotate action cannot apply (not joined, Home, old build...)
    CLOUD_PC = "cloud_pc"
    NOT_SUPPORTED = "not_supported"  # the device answered it cannot rotate
    KEY_CEILING = "key_ceiling"  # Entra keeps at most 200 keys per device
    OFFLINE = "offline"  # queued, but the device has not checked in for 30+ days
    NO_KEY_ESCROWED = "no_key_escrowed"  # no key in Entra ID: BitLocker backup policy missing?
    PENDING = "pending"  # queued, waiting for the device's next check-in
    DEVICE_FAILED = "device_failed"  # the device ran the rotation and failed (HRESULT)
    NO_NEW_KEY = "no_new_key"  # done on the device, no newer key in Entra ID
    SEND_FAILED = "send_failed"  # Graph refused the request or retries ran out
    KEY_UNREADABLE = "key_unreadable"


# Nothing an operator can do this quarter: the sweep may still end 0 (compliant).
CANNOT_COMPLY = frozenset({Why.INELIGIBLE, Why.CLOUD_PC, Why.NOT_SUPPORTED, Why.KEY_CEILING})
WAITING = frozenset({Why.PENDING, Why.OFFLINE})  # a later sweep will know: exit 75


@dataclass(frozen=True, slots=True)
class KeyState:
    """What Entra ID holds for one device at selection time (metadata only)."""

    newest: datetime | None  # None: no key escrowed
    count: int | None  # None: the keys could not be read
    error: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """A device's latest rotation by this policy's sweeps, read from a run's journal."""

    sweep_id: str
    run_id: str
    status: str  # the journal's: queued, failed, not_sent, uncertain, ...
    reason: str
    http_status: int | None
    verification: str  # verified, pending, failed, ... or ""
    detail: str
    requested_at: datetime | None  # on the tenant's clock
    key_count: int | None = None


@dataclass(frozen=True, slots=True)
class Exception_:
    """One device that is not compliant after the sweep, and why, in words and as a code."""

    device: Device
    why: Why
    detail: str


@dataclass
class Posture:
    """The population's state before and after the sweep."""

    population: int
    eligible: int
    compliant_before: int
    compliant_after: int
    ages_before: dict[str, int]
    ages_after: dict[str, int]
    exceptions: list[Exception_]

    def share(self, count: int) -> float:
        return round(count / self.population, 4) if self.population else 1.0

    def by_why(self) -> dict[str, int]:
        return dict(sorted(Counter(e.why.value for e in self.exceptions).items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "eligible": self.eligible,
            "before": {
                "compliant": self.compliant_before,
                "share": self.share(self.compliant_before),
                "key_ages": self.ages_before,
            },
            "after": {
                "compliant": self.compliant_after,
                "share": self.share(self.compliant_after),
                "key_ages": self.ages_after,
            },
            "exceptions_by_reason": self.by_why(),
        }


def age_bucket(newest: datetime | None, now: datetime) -> str:
    """The chart's bucket of a key's age: `0-30d` ... `>365d`, or `no key`."""
    if newest is None:
        return "no key"
    days = (now - newest).total_seconds() / 86400
    low = 0
    for bound in AGE_BOUNDS:
        if days < bound:
            return f"{low}-{bound}d"
        low = bound
    return f">{AGE_BOUNDS[-1]}d"


def bucket_names() -> list[str]:
    names, low = [], 0
    for bound in AGE_BOUNDS:
        names.append(f"{low}-{bound}d")
        low = bound
    return [*names, f">{AGE_BOUNDS[-1]}d", "no key", "unreadable"]


def _ages(rows: Iterable[str]) -> dict[str, int]:
    counts = Counter(rows)
    return {name: counts.get(name, 0) for name in bucket_names()}


def _offline_since(device: Device, now: datetime) -> str:
    from batch_rotate.tenant_clock import parse_graph_time

    seen = parse_graph_time(device.last_sync)
    if seen is not None and now - seen > OFFLINE_AFTER and seen.year > 1:
        return f"{seen:%Y-%m-%d}"
    return ""


def why_not(
    device: Device,
    ineligible: str | None,
    key: KeyState,
    attempt: Attempt | None,
    now: datetime,
) -> tuple[Why, str]:
    """Why a non-compliant device stays so, most fundamental reason first (pure)."""
    if ineligible is not None:
        return (Why.CLOUD_PC if cloud_pc(device) else Why.INELIGIBLE), ineligible
    count = attempt.key_count if attempt and attempt.key_count is not None else key.count
    if count is not None and count >= KEY_CEILING_WARN:
        return Why.KEY_CEILING, (
            f"{count} recovery keys escrowed; Entra keeps at most 200: delete old keys, then the "
            "next sweep rotates it"
        )
    if key.count is None and attempt is None:
        return Why.KEY_UNREADABLE, f"recovery keys could not be read ({key.error})"
    if attempt is None:
        return Why.SEND_FAILED, "due, but no rotation was sent (see the run's report)"
    state = attempt.verification or attempt.status
    where = f"sweep {attempt.sweep_id}, run {attempt.run_id}"
    if state == "not_supported":
        return Why.NOT_SUPPORTED, f"the device cannot rotate BitLocker keys ({where})"
    if state == "failed" and attempt.verification == "failed":
        return Why.DEVICE_FAILED, f"{attempt.detail} ({where})"
    if state in ("done_no_new_key", "unknown"):
        if key.newest is None and key.count is not None:
            return Why.NO_KEY_ESCROWED, (
                "no recovery key escrowed in Entra ID, not even after the rotation: check the "
                f"BitLocker policy backs keys up to Entra ID ({where})"
            )
        return Why.NO_NEW_KEY, f"{attempt.detail} ({where})"
    if state in ("failed", "not_sent", "uncertain", "invalid_input", "not_found", "ineligible"):
        return Why.SEND_FAILED, f"{attempt.reason or attempt.status} ({where})"
    offline = _offline_since(device, now)
    if offline:
        return Why.OFFLINE, f"queued, but the device is offline since {offline} ({where})"
    requested = f"{attempt.requested_at:%Y-%m-%d}" if attempt.requested_at else "an unknown date"
    none_yet = "; no key escrowed yet" if key.newest is None and key.count is not None else ""
    return (
        Why.PENDING,
        f"queued {requested}, waiting for the device to check in{none_yet} ({where})",
    )


@dataclass(frozen=True, slots=True)
class Member:
    """One device of the targeted population, as the posture needs it."""

    device: Device
    ineligible: str | None
    key: KeyState
    compliant_before: bool


def posture(
    members: Sequence[Member],
    attempts: Mapping[str, Attempt],
    verified_now: Mapping[str, datetime],
    held: Mapping[str, Attempt],
    now: datetime,
) -> Posture:
    """The population before and after the sweep: `verified_now` holds the devices whose new key
    this sweep saw escrowed (with its time); `held` those not sent this time, with their attempt.
    """
    before, after, exceptions = [], [], []
    compliant_after = 0
    for m in members:
        bucket = "unreadable" if m.key.count is None else age_bucket(m.key.newest, now)
        before.append(bucket)
        new_key = verified_now.get(m.device.id)
        if m.compliant_before or new_key is not None:
            compliant_after += 1
            after.append(age_bucket(new_key, now) if new_key is not None else bucket)
            continue
        after.append(bucket)
        attempt = held.get(m.device.id) or attempts.get(m.device.id)
        why, detail = why_not(m.device, m.ineligible, m.key, attempt, now)
        exceptions.append(Exception_(m.device, why, detail))
    return Posture(
        population=len(members),
        eligible=sum(1 for m in members if m.ineligible is None),
        compliant_before=sum(1 for m in members if m.compliant_before),
        compliant_after=compliant_after,
        ages_before=_ages(before),
        ages_after=_ages(after),
        exceptions=sorted(exceptions, key=lambda e: (e.why.value, e.device.name.lower())),
    )


def sweep_exit_code(p: Posture, *, run_failed: bool) -> int:
    """0: every device that can comply does; 75: the rest only wait (pending, offline, held);
    1: something to look at (a failed send or rotation, no key escrowed, keys unreadable)."""
    from batch_rotate.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_PENDING

    whys = {e.why for e in p.exceptions}
    if run_failed or whys - CANNOT_COMPLY - WAITING:
        return EXIT_FAILED
    return EXIT_PENDING if whys & WAITING else EXIT_OK
