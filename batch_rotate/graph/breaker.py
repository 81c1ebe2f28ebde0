"""A circuit breaker for outages: when Graph has not answered for a bounded time, stop sending.

An outage is a state of the run, not a failure of every remaining device: once the breaker opens,
every further request raises `GraphUnreachable` at once, and the run ends resumable (exit 3).
"""

from __future__ import annotations

from datetime import UTC, datetime

from batch_rotate.graph.errors import ServiceError
from batch_rotate.graph.pacer import Clock


class GraphUnreachable(ServiceError):
    """Graph (or the way to it) gave no usable answer for too long; nothing more is sent."""


class Breaker:
    """Opens after `outage_s` of failures with no answer in between, or `max_refused` refused
    connections in a row. Any HTTP answer below 500 closes the failing streak."""

    def __init__(self, *, clock: Clock, outage_s: float = 60.0, max_refused: int = 10) -> None:
        self._clock = clock
        self.outage_s = outage_s
        self.max_refused = max_refused
        self._failing_since: float | None = None
        self._failing_since_utc = ""
        self._refused = 0
        self._last_error = ""
        self.open = False

    def check(self) -> None:
        """Raise `GraphUnreachable` when open (before a request is sent)."""
        if self.open:
            raise GraphUnreachable(self.describe())

    def succeeded(self) -> None:
        self._failing_since = None
        self._refused = 0

    def failed(self, error: str, *, refused: bool) -> None:
        now = self._clock.now()
        if self._failing_since is None:
            self._failing_since = now
            self._failing_since_utc = (
                datetime.fromtimestamp(self._clock.epoch(), UTC)
                .isoformat(timespec="seconds")
                .replace("+00:00", "Z")
            )
        self._refused = self._refused + 1 if refused else 0
        self._last_error = error
        if self._refused >= self.max_refused or now - self._failing_since >= self.outage_s:
            self.open = True

    def describe(self) -> str:
        return (
            f"Graph unreachable since {self._failing_since_utc} (last: {self._last_error}); "
            "nothing more was sent"
        )
