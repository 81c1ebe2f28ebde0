"""Intune devices-service throttling (GRAPH_NOTES.md "Throttling"): fixed windows, app and tenant.

Windows are aligned on the server's monotonic start. Every inner request counts (the `$batch` POST
itself does not), including refused ones: Graph counts throttled requests against the budget too.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from batch_rotate.sim.config import SimConfig

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TENANT = "*"


class Budget:
    """Counts requests per window; `take` says whether one more is allowed and how long to wait."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.start = clock()
        self.used: dict[tuple[int, str, str], int] = defaultdict(int)

    @property
    def window_real_s(self) -> float:
        return self.config.window_s / self.config.time_scale

    def window(self) -> tuple[int, float]:
        """The current window's index and the real seconds left in it."""
        elapsed = self.clock() - self.start
        index = int(elapsed // self.window_real_s)
        return index, (index + 1) * self.window_real_s - elapsed

    def neighbour_writes(self) -> float:
        """The other app takes its whole share as each window opens, so what is left is exact."""
        return self.config.neighbour_write_share * self.config.tenant_write_limit

    def take(self, app: str, write: bool) -> tuple[int, float | None]:
        """Count one request first, then decide: (window, None) if allowed, else the wait."""
        cfg = self.config
        index, remaining = self.window()
        self._forget_before(index)
        kinds = ("write", "any") if write else ("any",)
        for kind in kinds:
            self.used[(index, app, kind)] += 1
            self.used[(index, TENANT, kind)] += 1
        if not cfg.throttling:
            return index, None
        neighbour = self.neighbour_writes()
        over = (
            self.used[(index, app, "any")] > cfg.app_any_limit
            or self.used[(index, TENANT, "any")] + neighbour > cfg.tenant_any_limit
        )
        if write:
            over = over or self.used[(index, app, "write")] > cfg.app_write_limit
            over = over or self.used[(index, TENANT, "write")] + neighbour > cfg.tenant_write_limit
        return index, (remaining if over else None)

    def _forget_before(self, index: int) -> None:
        if len(self.used) > 64:  # long runs: keep only the current window's counters
            for key in [k for k in self.used if k[0] < index]:
                del self.used[key]
