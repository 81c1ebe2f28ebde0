"""The tenant's clock (which may differ from the client's) and the Graph error shape that uses it.

Every timestamp the sim produces comes from `TenantClock`, so an offset shows in all of them alike.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

Answer = tuple[int, dict[str, str], Any]


class TenantClock:
    """Wall time shifted by `offset_s` (negative: the tenant is behind the real time)."""

    def __init__(self, offset_s: float = 0.0, wall: Callable[[], float] = time.time) -> None:
        self.offset_s = offset_s
        self.wall = wall

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall() + self.offset_s, UTC)

    def iso(self, *, ms: bool = False) -> str:
        return iso(self.now(), ms=ms)

    def http_date(self) -> str:
        """RFC 7231 IMF-fixdate, as in a `Date` header."""
        return format_datetime(self.now().replace(microsecond=0), usegmt=True)


def iso(when: datetime, *, ms: bool = False) -> str:
    return when.isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")


def device_fraction(seed: int, salt: str, device_id: str) -> float:
    """A stable number in [0, 1) per (seed, purpose, device): seeded shares that never reshuffle."""
    digest = hashlib.sha256(f"{seed}:{salt}:{device_id.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def graph_error(clock: TenantClock, status: int, code: str, message: str, crid: str) -> Answer:
    """Graph's standard error body, dated on the tenant's clock."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "request-id": str(uuid.uuid4()),
                "date": clock.iso(),
                "client-request-id": crid,
            },
        }
    }
    return status, {"Content-Type": "application/json"}, body
