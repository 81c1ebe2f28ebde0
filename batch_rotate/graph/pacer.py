"""Pacing under a known budget: a token bucket at an adaptive rate behind a sliding log, so no
window of the budget's length, however aligned, carries more than its count. A burst of 429s is
one CUBIC decrease (beta 0.7); recovery is concave to the ceiling, then slow convex probing."""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import re
import time
from collections import deque
from datetime import UTC
from typing import Protocol

from batch_rotate.graph.budget import Budget

__all__ = ["Budget", "Clock", "SystemClock"]

MAX_RETRY_AFTER_S = 3600.0  # a longer Retry-After is a server bug; an hour is plenty


class Clock(Protocol):
    """Monotonic time, wall time and sleeping, injected so pacing is tested on virtual time."""

    def now(self) -> float: ...

    def epoch(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.time` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    def epoch(self) -> float:
        """Wall-clock seconds since 1970, to read Retry-After dates."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


_DELAY_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_retry_after(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date); None when absent or unusable."""
    if value is None or not (text := value.strip()):
        return None
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)  # "2.128" has been seen from Graph (GRAPH_NOTES.md "Throttling")
    else:
        try:  # IMF-fixdate, RFC 850 and asctime forms (RFC 9110 section 5.6.7)
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # asctime and "-0000" carry no zone; HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now_epoch
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Backoff:
    """Exponential backoff, full jitter (AWS): uniform in [base/10, min(cap, base * 2^(n-1))]."""

    def __init__(self, *, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError(f"Backoff needs 0 < base_s <= cap_s, got {base_s} and {cap_s}")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng

    def ceiling(self, attempt: int) -> float:
        """The largest delay for `attempt` (attempts below 1 count as 1)."""
        exponent = min(max(attempt, 1) - 1, 60)  # 2**60 s is past any cap; avoids float overflow
        return min(self.cap_s, self.base_s * 2.0**exponent)

    def delay(self, attempt: int) -> float:
        """A random delay before retry number `attempt` (1 = first retry)."""
        ceiling = self.ceiling(attempt)
        # A small floor: an instant retry after a throttle only adds to the pile-up.
        return self._rng.uniform(min(self.base_s / 10, ceiling), ceiling)


class RetryGate:
    """One pause shared by all senders: a throttle anywhere holds everyone until it has passed."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until = clock.now()

    def pause(self, seconds: float) -> None:
        """Pause everyone until now + `seconds`, unless already paused for longer."""
        if math.isnan(seconds):
            raise ValueError("RetryGate.pause(nan): the pause must be a number of seconds")
        until = self._clock.now() + max(seconds, 0.0)
        self._until = max(self._until, until)

    @property
    def paused_until(self) -> float:
        return self._until

    def remaining(self) -> float:
        return max(self._until - self._clock.now(), 0.0)

    async def wait(self) -> None:
        """Return once not paused; the pause may grow while we sleep, so look again on waking."""
        while (left := self.remaining()) > 0:
            await self._clock.sleep(left)


class AdaptivePacer:
    """Token bucket whose rate adapts: never above the budget, cut on 429, CUBIC recovery after.

    Pass the shared `gate` so `acquire` also waits out Retry-After pauses: a batch that was
    waiting for tokens when a 429 arrived must not go out during the pause.
    """

    BETA = 0.7  # multiplicative decrease, as botocore's adaptive mode
    RECOVERY_WINDOWS = 3.0  # CUBIC's K in budget windows: concave climb back to the ceiling
    # Convex probing above a ceiling, in windows. Against 20 s windows each failed probe costs a
    # whole batch of 429s, so probe slowly: ~3% 429s with a neighbour, yet 95% of the budget is
    # back ~4 min after the neighbour leaves (tuned on the fixed-window server in the tests).
    PROBE_WINDOWS = 10.0
    CONFIRM_BAND = 0.1  # a ceiling within 10% of the previous one confirms it: cut gently

    def __init__(
        self,
        budget: Budget,
        *,
        clock: Clock,
        headroom: float = 0.98,
        min_rate: float = 0.2,
        burst: int = 20,
        beta: float = BETA,
        recovery_s: float | None = None,
        probe_s: float | None = None,
        hold_s: float | None = None,
        gate: RetryGate | None = None,
    ) -> None:
        if not 0 < headroom <= 1 or not 0 < beta < 1 or burst < 1 or min_rate <= 0:
            raise ValueError(
                "AdaptivePacer needs 0 < headroom <= 1, 0 < beta < 1, burst >= 1 and min_rate > 0"
            )
        window_s = budget.window_s
        self.budget = budget
        self._clock = clock
        self._gate = gate
        self._max_rate = budget.per_second * headroom
        self._min_rate = min(min_rate, self._max_rate)
        self._burst = burst
        self._beta = beta
        self._k = recovery_s if recovery_s is not None else self.RECOVERY_WINDOWS * window_s
        self._probe_s = probe_s if probe_s is not None else self.PROBE_WINDOWS * window_s
        # About one round trip: the inner 429s of a batch and batches in flight are one event.
        self._hold_s = hold_s if hold_s is not None else max(2.0, window_s / 4)
        self._rate = self._max_rate  # the budget is published: start at it, no slow start
        self._tokens = float(burst)  # one batch of burst, none on top of the full rate
        # Grants of the last log_s (when, how many): the log, not the bucket, is what keeps any
        # window at or under budget.count (GRAPH_NOTES.md "Throttling": 429s still count). It
        # is longer than the window by half the headroom: requests reach Graph jittered, and
        # however the bucket forgives late timers, budget.count grants never span less than
        # window_s plus that margin (the other half is the margin in the steady state).
        self._log_s = window_s / ((1 + headroom) / 2)
        self._granted: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._window_cap = budget.count
        self._filled_at = clock.now()
        self._turns: deque[asyncio.Future[None]] = deque()  # waiting acquirers, FIFO
        self._w_max = self._max_rate
        self._cut_at: float | None = None
        self._cut_beta = beta
        self._sent_since_cut = True
        self._ok_since_cut = 0
        self._since: float | None = None  # first success, or first success after the last cut
        self._span_s = 2 * window_s
        self._ok: deque[tuple[float, int]] = deque()  # (when, how many) accepted lately
        self.throttle_events = 0  # decreases: one per burst of 429s

    @property
    def rate(self) -> float:
        """Current fill rate in requests per second."""
        return self._rate

    @property
    def max_rate(self) -> float:
        return self._max_rate

    @property
    def w_max(self) -> float:
        """The ceiling CUBIC climbs back to: the estimated rate at the last throttle."""
        return self._w_max

    @property
    def max_take(self) -> int:
        """The most one `acquire` may ask for: the burst, and never more than the budget."""
        return min(self._burst, self._window_cap)

    async def acquire(self, n: int = 1) -> None:
        """Wait until `n` tokens (1 <= n <= max_take) can be taken; first come, first served."""
        if not 1 <= n <= self.max_take:
            raise ValueError(f"acquire({n}): ask for 1 to {self.max_take} tokens (the burst size)")
        if not self._turns and self._remaining_pause() == 0 and self._take(n):
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        try:
            if self._turns[0] is not turn:
                await turn
            late_s = 0.0
            while True:
                if self._gate is not None:
                    await self._gate.wait()
                if self._take(n, late_s=late_s):
                    return
                # The rate may change while we sleep; the loop looks again on waking.
                wait_s = self._wait_s(n)
                due = self._clock.now() + wait_s
                await self._clock.sleep(wait_s)
                late_s = self._clock.now() - due
        finally:
            self._turns.remove(turn)
            if self._turns and not self._turns[0].done():
                self._turns[0].set_result(None)

    def on_success(self, n: int = 1) -> None:
        """`n` requests were accepted: count them and follow the CUBIC curve up."""
        now = self._clock.now()
        self._ok.append((now, n))
        if self._ok_since_cut == 0:
            self._since = now  # the first success after a cut: a fresh server window
        self._ok_since_cut += n
        self._trim(now)
        self._set_rate(self._cubic(now))

    def on_throttle(self) -> None:
        """A 429 arrived: one multiplicative decrease per congestion event."""
        now = self._clock.now()
        if self._cut_at is not None and self._same_event(now):
            return
        self.throttle_events += 1
        # The ceiling is our rate, or what the server accepted over the last window(s) if less
        # (a neighbour uses part of the tenant budget). Floor beta^2 * rate: a low count may only
        # mean we had little to send.
        ceiling = self._rate
        accepted = self._accepted_rate(now)
        if accepted:  # nothing accepted at all is a storm, not a measure: plain cut
            ceiling = min(ceiling, max(accepted, self._beta**2 * self._rate))
        ceiling = max(ceiling, self._min_rate)
        # Hitting the same ceiling again means it is real: the cut can be half as deep.
        confirmed = self._cut_at is not None and (
            abs(ceiling - self._w_max) <= self.CONFIRM_BAND * self._w_max
        )
        self._cut_beta = (1 + self._beta) / 2 if confirmed else self._beta
        self._w_max = ceiling
        self._cut_at = now
        self._sent_since_cut = False
        self._ok_since_cut = 0
        self._set_rate(self._cut_beta * ceiling)

    def _same_event(self, now: float) -> bool:
        # A 429 answers a request sent before the cut when nothing was sent since (the gate held
        # everyone) or within about one round trip; and while nothing at all was accepted since
        # the cut, the server window that caused it is still used up: one event per window.
        since_cut = now - self._cut_at if self._cut_at is not None else math.inf
        if not self._sent_since_cut or since_cut < self._hold_s:
            return True
        return self._ok_since_cut == 0 and since_cut < self.budget.window_s

    def _cubic(self, now: float) -> float:
        # CUBIC with a fixed K: from cut_beta * w_max, concave up to w_max at K (slow near the rate
        # that was throttled), then convex probing above it; _set_rate caps it at max_rate.
        if self._cut_at is None:
            return self._max_rate
        t = now - self._cut_at
        if t <= self._k:
            return self._w_max * (1 - (1 - self._cut_beta) * (1 - t / self._k) ** 3)
        # Probing grows with max_rate, not w_max, so a deep cut does not take an hour to undo.
        x = (t - self._k) / self._probe_s
        return self._w_max + (1 - self._beta) * self._max_rate * x**3

    def _accepted_rate(self, now: float) -> float | None:
        # What was accepted since success resumed after the last cut (a pause must not dilute it),
        # over at least one window (a 429 says the window is used up, however young) and at most
        # two (one batch is a coarse unit of a window's count).
        if self._since is None:
            return None
        span = min(self._span_s, now - self._since)
        if span < self.budget.window_s / 4:
            return None  # too early to tell
        self._trim(now)
        accepted = sum(n for when, n in self._ok if when >= now - span)
        return accepted / max(span, self.budget.window_s)

    def _trim(self, now: float) -> None:
        while self._ok and self._ok[0][0] <= now - self._span_s:
            self._ok.popleft()

    def _remaining_pause(self) -> float:
        return self._gate.remaining() if self._gate is not None else 0.0

    def _take(self, n: int, *, late_s: float = 0.0) -> bool:
        # A waiter its timer woke late keeps the tokens of the lateness (at most one more
        # batch): it takes its batch late and the next one comes on time, so a loaded event
        # loop does not cost rate. Idle time earns nothing beyond the burst.
        self._refill(extra=min(max(late_s, 0.0) * self._rate, float(self._burst)))
        now = self._clock.now()
        self._expire(now)
        if self._tokens < n - 1e-9:  # float slack: never sleep for a 1e-16 shortfall
            return False
        if self._in_window + n > self._window_cap:
            return False
        self._tokens = max(self._tokens - n, 0.0)
        self._granted.append((now, n))
        self._in_window += n
        self._sent_since_cut = True
        return True

    def _expire(self, now: float) -> None:
        # `when + log_s <= now`: the same sum a half-open window [when, when + log_s) ends at.
        while self._granted and self._granted[0][0] + self._log_s <= now:
            self._in_window -= self._granted.popleft()[1]

    def _wait_s(self, n: int) -> float:
        """Seconds until `n` tokens could be taken: the bucket's refill, or room in the window."""
        now = self._clock.now()
        wait = max(n - self._tokens, 0.0) / self._rate
        excess = self._in_window + n - self._window_cap
        for when, granted in self._granted:
            if excess <= 0:
                break
            excess -= granted
            if excess <= 0:
                wait = max(wait, when + self._log_s - now)
        return max(wait, 1e-6)  # float sums may land a hair early: look again a moment later

    def _refill(self, extra: float = 0.0) -> None:
        now = self._clock.now()
        room = max(float(self._burst) + extra, self._tokens)
        self._tokens = min(room, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now

    def _set_rate(self, rate: float) -> None:
        self._refill()  # tokens earned so far accrue at the old rate
        self._rate = min(max(rate, self._min_rate), self._max_rate)
