"""Pacing under a known budget: a token bucket with CUBIC-style recovery, a shared Retry-After gate.

Starts at the budget (it is published: no slow start), bursts at most one batch so requests spread
across each window, and after a 429 recovers concavely toward the rate measured before it.
"""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
import random
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

MAX_RETRY_AFTER_S = 3600.0


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class FakeClock:
    """Virtual time for tests: sleeping tasks wake in time order, instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(seconds, 0.0), next(self._seq), future))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.ensure_future(self._drive())
        await future

    async def _drive(self) -> None:
        while self._sleepers:
            # Let every runnable task run (and maybe add sleepers) before time moves on.
            for _ in range(20):
                await asyncio.sleep(0)
            wake_at, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake_at)
            if not future.cancelled():
                future.set_result(None)


@dataclass(frozen=True)
class Budget:
    count: int
    window_s: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
        if not match or int(match.group(1)) <= 0 or float(match.group(2)) <= 0:
            raise ValueError(
                f"{text!r} is not a budget; write COUNT/WINDOW such as 200/20s, 10/1s or 600/1m"
            )
        unit = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(3) or "s"]
        return cls(int(match.group(1)), float(match.group(2)) * unit)

    @property
    def per_second(self) -> float:
        return self.count / self.window_s


def parse_retry_after(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds to wait from a Retry-After header: seconds (int or float) or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now_epoch
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Backoff:
    """Exponential backoff with full jitter (AWS): uniform in [0, min(cap, base * 2^(n-1))]."""

    def __init__(self, *, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng

    def ceiling(self, attempt: int) -> float:
        exponent: int = min(max(attempt, 1) - 1, 30)
        return min(self.cap_s, self.base_s * float(2**exponent))

    def delay(self, attempt: int) -> float:
        # Never zero: an immediate retry only adds to the pile-up.
        ceiling = self.ceiling(attempt)
        return max(self._rng.uniform(0.0, ceiling), min(0.1, ceiling))


class RetryGate:
    """One pause shared by all senders, extended (never shortened) by each throttle."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until = 0.0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        until = self._clock.now() + max(seconds, 0.0)
        if until > self._until:
            self._until = until
            self.pauses += 1

    @property
    def paused_until(self) -> float:
        return self._until

    def remaining(self) -> float:
        return max(self._until - self._clock.now(), 0.0)

    async def wait(self) -> None:
        while (left := self.remaining()) > 0:
            await self._clock.sleep(left)


class AdaptivePacer:
    """Token bucket at an adaptive rate: at most the budget, cut on 429, CUBIC recovery after.

    A burst of 429s (several inner requests of one batch, or batches in flight together) is one
    congestion event: decreases within `hold_s` of the last one are ignored.
    """

    # botocore uses beta 0.7 and C 0.4 with t in seconds; Intune counts in 20 s windows and we
    # cut from a measured rate, so a gentler cut and a flatter curve in windows fit better
    # (tuned in tests/graph/test_throttle.py against a fixed-window server with a neighbour).
    BETA = 0.9
    SCALE = 0.02

    def __init__(
        self,
        budget: Budget,
        *,
        clock: Clock,
        headroom: float = 0.98,
        min_rate: float = 0.2,
        burst: int = 20,
        hold_s: float | None = None,
    ) -> None:
        self.budget = budget
        self._clock = clock
        self._max_rate = budget.per_second * headroom
        self._min_rate = min(min_rate, self._max_rate)
        self._burst = max(burst, 1)
        self._rate = self._max_rate
        self._tokens = float(self._burst)
        self._last_fill = clock.now()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._lock = asyncio.Lock()
        # CUBIC state: the rate at the last throttle and when it happened.
        self._w_max = self._max_rate
        self._last_throttle: float | None = None
        self._hold_s = hold_s if hold_s is not None else max(2.0, budget.window_s / 10)
        self._ok_since = 0
        self.throttle_events = 0
        self.acquired = 0

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def max_rate(self) -> float:
        return self._max_rate

    def _refill(self) -> None:
        now = self._clock.now()
        self._tokens = min(float(self._burst), self._tokens + (now - self._last_fill) * self._rate)
        self._last_fill = now

    async def acquire(self, n: int = 1) -> None:
        """Wait until `n` tokens are available, first come first served."""
        n = min(max(n, 1), self._burst)
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
            while True:
                self._refill()
                if self._tokens >= n - 1e-9:  # float slack: never spin on a 1e-16 shortfall
                    self._tokens = max(self._tokens - n, 0.0)
                    self.acquired += n
                    return
                await self._clock.sleep(max((n - self._tokens) / self._rate, 1e-3))

    def on_success(self, n: int = 1) -> None:
        self._ok_since += n
        if self._last_throttle is None:
            return
        # CUBIC: W(t) = C (t - K)^3 + W_max, K = cbrt(W_max * (1 - beta) / C), t in windows
        t = (self._clock.now() - self._last_throttle) / self.budget.window_s
        k = (self._w_max * (1 - self.BETA) / self.SCALE) ** (1 / 3)
        target = self.SCALE * (t - k) ** 3 + self._w_max
        self._set_rate(max(target, self._rate))

    def on_throttle(self) -> None:
        now = self._clock.now()
        if self._last_throttle is not None and now - self._last_throttle < self._hold_s:
            return
        self.throttle_events += 1
        self._refill()
        # What the server really let through since the last event is the best estimate of
        # what is left for us (a neighbour may be using part of the tenant budget).
        w_max = self._rate
        if self._last_throttle is not None and now - self._last_throttle >= self._hold_s:
            w_max = min(w_max, self._ok_since / (now - self._last_throttle))
        self._w_max = max(w_max, self._min_rate)
        self._last_throttle = now
        self._ok_since = 0
        self._set_rate(self._w_max * self.BETA)

    def _set_rate(self, rate: float) -> None:
        self._refill()
        self._rate = min(max(rate, self._min_rate), self._max_rate)
