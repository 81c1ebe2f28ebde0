"""Intune devices-service throttling (GRAPH_NOTES.md "Throttling"): per app and tenant.

Fixed windows (aligned on the server's start) or a sliding window. Every inner request counts (the
`$batch` POST itself does not), refused ones included: Graph counts throttled requests too.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable

from batch_rotate.sim.config import SimConfig

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TENANT = "*"


class Budget:
    """Counts requests; `take` says whether one more is allowed and how long to wait if not."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        if config.window_mode not in ("fixed", "sliding"):
            raise ValueError(
                f"window_mode must be 'fixed' or 'sliding', not {config.window_mode!r}"
            )
        self.config = config
        self.clock = clock
        self.start = clock()
        self.used: dict[tuple[int, str, str], int] = defaultdict(int)
        self.log: dict[tuple[str, str], deque[float]] = defaultdict(deque)  # sliding mode

    @property
    def window_real_s(self) -> float:
        return self.config.window_s / self.config.time_scale

    def window(self, now: float | None = None) -> tuple[int, float]:
        """The current fixed window's index and the real seconds left in it."""
        elapsed = (self.clock() if now is None else now) - self.start
        index = int(elapsed // self.window_real_s)
        return index, (index + 1) * self.window_real_s - elapsed

    def neighbour_writes(self) -> float:
        """The other app's share: taken as each fixed window opens, or held steady when sliding."""
        return self.config.neighbour_write_share * self.config.tenant_write_limit

    def _limits(self, app: str, write: bool) -> list[tuple[tuple[str, str], float]]:
        cfg, neighbour = self.config, self.neighbour_writes()
        limits = [
            ((app, "any"), cfg.app_any_limit),
            ((TENANT, "any"), cfg.tenant_any_limit - neighbour),
        ]
        if write:
            limits += [
                ((app, "write"), cfg.app_write_limit),
                ((TENANT, "write"), cfg.tenant_write_limit - neighbour),
            ]
        return limits

    def take(self, app: str, write: bool) -> tuple[int, float | None, float]:
        """Count one request first, then decide: (window, None) if allowed, else the wait; and
        the moment it was counted at (metrics must use the limiter's own clock reading)."""
        now = self.clock()
        if self.config.window_mode == "sliding":
            return self.window(now)[0], self._take_sliding(app, write, now), now
        index, remaining = self.window(now)
        self._forget_before(index)
        limits = self._limits(app, write)
        for key, _ in limits:
            self.used[(index, *key)] += 1
        if not self.config.throttling:
            return index, None, now
        over = any(self.used[(index, *key)] > limit for key, limit in limits)
        return index, (remaining if over else None), now

    def _take_sliding(self, app: str, write: bool, now: float) -> float | None:
        """Refused when the last window already holds `limit`; wait until one more would fit."""
        span = self.window_real_s
        waits = []
        for key, limit in self._limits(app, write):
            log = self.log[key]
            while log and log[0] <= now - span:
                log.popleft()
            log.append(now)
            allowed = max(0, math.floor(limit))
            if self.config.throttling and len(log) > allowed:
                # The refused request counts too: wait until enough older ones leave for a retry.
                waits.append(log[len(log) - allowed] + span - now if allowed else span)
        return max(waits) if waits else None

    def _forget_before(self, index: int) -> None:
        if len(self.used) > 64:  # long runs: keep only the current window's counters
            for key in [k for k in self.used if k[0] < index]:
                del self.used[key]


class RetryAfter:
    """Formats Retry-After like Intune and remembers it per device to count early retries."""

    def __init__(self, time_scale: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.time_scale = time_scale
        self.clock = clock
        self.deadline: dict[str, float] = {}  # device id -> when the last Retry-After ends

    def header(self, wait_real_s: float) -> str:
        """Whole seconds (at least 1) as Intune sends; with time scaling, milliseconds."""
        if self.time_scale == 1.0:
            return str(max(1, math.ceil(wait_real_s)))
        return f"{max(wait_real_s, 0.001):.3f}"

    def note(self, device_id: str, wait_real_s: float) -> None:
        if device_id:
            self.deadline[device_id] = self.clock() + wait_real_s

    def is_early(self, device_id: str) -> bool:
        return bool(device_id) and self.clock() < self.deadline.get(device_id, 0.0)


class SlidingLimit:
    """At most `limit` requests per key in any `window_s`; a refused request is not counted.

    `wait` only looks and `record` counts, so two limits (per tenant, per app across tenants)
    can both be asked before either counts a request one of them refuses."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    def wait(self, key: str) -> float | None:
        """Seconds until one more request fits, or None when it fits now."""
        now, seen = self.clock(), self._seen[key]
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if len(seen) < self.limit:
            return None
        return (
            seen[len(seen) - self.limit] + self.window_s - now if self.limit > 0 else self.window_s
        )

    def record(self, key: str) -> None:
        self._seen[key].append(self.clock())
