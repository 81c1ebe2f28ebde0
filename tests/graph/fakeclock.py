"""Virtual time for tests: sleepers wake instantly, in deadline order, one instant at a time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Sized


class FakeClock:
    """A `Clock` on virtual time; `epoch()` is `start_epoch` plus the virtual seconds passed.

    A driver task waits until every other task is blocked, then jumps to the earliest deadline.
    Only sleeps through this clock are virtual: `asyncio.wait(timeout=...)` still uses real time.
    """

    _SETTLE_MIN = 2  # yields before trusting an empty ready queue
    _SETTLE_BLIND = 50  # yields when the loop does not expose its ready queue
    _SETTLE_MAX = 1000  # stops a busy-looping task from freezing time forever

    def __init__(self, start: float = 0.0, *, start_epoch: float = 1_800_000_000.0) -> None:
        self._now = start
        self._epoch_offset = start_epoch - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._now

    def epoch(self) -> float:
        return self._epoch_offset + self._now

    async def sleep(self, seconds: float) -> None:
        if math.isnan(seconds) or math.isinf(seconds):
            raise ValueError(f"FakeClock.sleep({seconds}): the delay must be a finite number")
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        try:
            await future
        finally:
            future.cancel()  # no-op when woken; otherwise the driver skips this entry

    def advance(self, seconds: float) -> None:
        """Move time forward by hand and wake whoever is due (call from inside the loop)."""
        self._now += max(seconds, 0.0)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def _drive(self) -> None:
        while True:
            await self._settle()
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # cancelled sleepers do not move time
            if not self._sleepers:
                return
            wake_at = self._sleepers[0][0]
            self._now = max(self._now, wake_at)
            while self._sleepers and self._sleepers[0][0] <= wake_at:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)

    async def _settle(self) -> None:
        # asyncio has no public "all tasks are blocked" hook; the loop's ready queue is the
        # honest signal (with a fixed number of yields where an event loop does not expose it).
        ready: Sized | None = getattr(asyncio.get_running_loop(), "_ready", None)
        for i in range(1, self._SETTLE_MAX + 1):
            await asyncio.sleep(0)
            if ready is None and i >= self._SETTLE_BLIND:
                return
            if ready is not None and i >= self._SETTLE_MIN and len(ready) == 0:
                return
