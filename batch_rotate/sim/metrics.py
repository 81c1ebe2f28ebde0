"""What the sim saw, served at /_sim/metrics: counts, faults, rotations per device, windows."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

COUNTERS = (
    "token_requests",
    "graph_requests",
    "inner_requests",
    "batch_requests",
    "rotate_calls",
    "throttled_429_inner",
    "throttled_429_outer",
    "early_retries",
    "reads",
    "writes",
    "answers_lost_after_processing",  # batches processed whose answer the sim then lost
    "rotations_answer_lost",  # rotations accepted (204) inside those batches
)


class _SlidingPeak:
    """The most events any window of `span_s` ever held (a window can end at an event)."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self.times: deque[float] = deque()
        self.peak = 0

    def add(self, now: float) -> None:
        while self.times and self.times[0] <= now - self.span_s:
            self.times.popleft()
        self.times.append(now)
        self.peak = max(self.peak, len(self.times))


class Metrics:
    """Ground truth for tests and benchmarks; `reset` starts the lists at the current window."""

    def __init__(self, window_real_s: float) -> None:
        self.window_real_s = window_real_s
        self.reset(0)

    def reset(self, window: int) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.faults: dict[str, int] = defaultdict(int)
        self.accepted_by_device: dict[str, int] = defaultdict(int)  # answers lost or not
        self.write_windows: dict[int, int] = defaultdict(int)
        self.accepted_windows: dict[int, int] = defaultdict(int)
        self.first_window = window  # lists start at the window of the last reset
        self.in_flight = 0
        self.peak_concurrency = 0
        self.sliding_writes = _SlidingPeak(self.window_real_s)
        self.sliding_admitted = _SlidingPeak(self.window_real_s)
        self.requests: list[str] = []  # "METHOD /version/path?query", when the config asks

    def write(self, window: int, now: float, *, admitted: bool) -> None:
        """One write counted by the budget; `admitted` when throttling let it through."""
        self.write_windows[window] += 1
        self.sliding_writes.add(now)
        if admitted:
            self.sliding_admitted.add(now)

    def snapshot(self) -> dict[str, Any]:
        accepted = dict(self.accepted_by_device)
        last = max([*self.write_windows, *self.accepted_windows], default=self.first_window - 1)
        span = range(self.first_window, last + 1)
        return {
            **{k: self.counts.get(k, 0) for k in COUNTERS},
            "rotate_accepted": sum(accepted.values()),
            "devices_rotated": len(accepted),
            "duplicate_rotations": sum(max(0, n - 1) for n in accepted.values()),
            "accepted_by_device": accepted,
            "faults_injected": dict(self.faults),
            "peak_concurrency": self.peak_concurrency,
            "write_windows": [self.write_windows.get(i, 0) for i in span],
            "accepted_windows": [self.accepted_windows.get(i, 0) for i in span],
            "max_writes_any_window": self.sliding_writes.peak,
            "max_admitted_writes_any_window": self.sliding_admitted.peak,
        }
