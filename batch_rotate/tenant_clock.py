"""The tenant's clock: when each rotation was requested on it, and how far the local clock is off.

Key `createdDateTime`, action `startDateTime` and every `Date` header are on the tenant's clock
(GRAPH_NOTES.md "Clocks"), so verification compares tenant times only; the local clock is used
for nothing but our own sends' order (pure).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

# Evidence at or after `reference - CLOCK_MARGIN_S` belongs to this rotation (verify), and an
# action started after `sent - CLOCK_MARGIN_S` answers a lost request (engine). `Date` has whole
# seconds (a 204 at 12:00:00.9 may be dated 12:00:01), a batch's twenty 204s share one `Date`,
# and the device's action `startDateTime` is stamped when Intune accepts the request, before it.
CLOCK_MARGIN_S = 5.0
# A rotation whose answer was lost and was sent again: its action result may carry the first
# send's start (Graph documents nothing; the simulator keeps a pending start), up to this long
# before the 204 that was read. Older starts are history (GRAPH_NOTES.md "Action results").
RESEND_WINDOW_S = 900.0
# Below this the local clock counts as right (Date's whole seconds and the network add ~1 s).
OFFSET_NOTICE_S = 5.0


_GRAPH_TIME = re.compile(
    r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*([Zz]|[+-]\d\d:\d\d)?"
)


def parse_graph_time(text: str) -> datetime | None:
    """A Graph timestamp as aware UTC, or None: any fraction (Graph writes up to 7 digits, more
    than `datetime` holds), `Z`, an offset, or no zone (Graph's zone-less times are UTC)."""
    match = _GRAPH_TIME.fullmatch(text.strip())
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    fraction = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{fraction}{zone}").astimezone(UTC)
    except (ValueError, OverflowError):  # 31 February; an offset past year 1 or 9999
        return None


def iso(when: datetime) -> str:
    """UTC with milliseconds and 'Z', as the journal writes times."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_offset_s(stamps: Iterable[tuple[str, str]]) -> float | None:
    """The local clock's offset when the run sent (tenant minus local), from (requested, accepted).

    Each accepted row's `accepted_at - requested_at` is the offset plus that request's wait for
    its answer, less Date's truncation (under 1 s): the smallest is the offset, give or take 1 s.
    """
    gaps = []
    for requested_at, accepted_at in stamps:
        requested, accepted = parse_graph_time(requested_at), parse_graph_time(accepted_at)
        if requested is not None and accepted is not None:
            gaps.append((accepted - requested).total_seconds())
    return min(gaps) if gaps else None


def reference_time(
    requested_at: str,
    accepted_at: str,
    *,
    run_offset: float | None = None,
    now_offset: float | None = None,
) -> datetime | None:
    """When this rotation was requested, on the tenant's clock (None when nothing says).

    The 204's `Date` (`accepted_at`), pulled back to the first send on the tenant's clock when a
    lost answer made us send again (by at most RESEND_WINDOW_S). Runs journalled before
    `accepted_at` existed have only the local `requested_at`: shifted by the offset measured now.
    """
    requested, accepted = parse_graph_time(requested_at), parse_graph_time(accepted_at)
    if accepted is not None:
        if requested is None or run_offset is None:
            return accepted
        first_send = requested + timedelta(seconds=run_offset)
        earliest = accepted - timedelta(seconds=RESEND_WINDOW_S)
        return min(accepted, max(first_send, earliest))
    if requested is not None:
        return requested + timedelta(seconds=now_offset or 0.0)
    return None


def offset_sample_s(answered_at: str, local_epoch: float) -> float | None:
    """One read's offset (tenant minus local): its `Date`, centred in its whole second."""
    answered = parse_graph_time(answered_at)
    if answered is None:
        return None
    return answered.timestamp() + 0.5 - local_epoch


def measured_offset_s(samples: Sequence[float]) -> float | None:
    """The median of the samples: one answer held up in a queue cannot sway it."""
    return statistics.median(samples) if samples else None


def offset_notice(offset_s: float) -> str:
    """What to tell the administrator about a local clock that is off ('' when it is not)."""
    if abs(offset_s) <= OFFSET_NOTICE_S:
        return ""
    way = "behind" if offset_s < 0 else "ahead of"
    return (
        f"the tenant's clock is {abs(offset_s):.0f} s {way} this machine; verification uses "
        "the tenant's clock"
    )
