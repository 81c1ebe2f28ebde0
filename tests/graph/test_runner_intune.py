"""The real runner and lane against a simulated Intune (fixed windows, 429s still count)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from batch_rotate.graph.batch import BatchItem, InnerResponse
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.pacer import Budget
from batch_rotate.graph.runner import BatchRunner
from tests.graph.fakeclock import FakeClock
from tests.graph.fakes import response

INTUNE = Budget.parse("200/20s")


@dataclass
class _Server:
    """Fixed 20 s windows (offset from our clock) of `capacity` writes; 429s still count."""

    capacity: Callable[[float], int]
    offset: float = 7.3
    window_s: float = 20.0
    accepted: int = 0
    throttled: int = 0

    def __post_init__(self) -> None:
        self.used: dict[int, int] = {}
        self.ok: dict[int, int] = {}

    def take(self, now: float) -> float | None:
        """Count one request; None when accepted, else the Retry-After in seconds."""
        index = int((now + self.offset) // self.window_s)
        self.used[index] = self.used.get(index, 0) + 1
        if self.used[index] <= self.capacity(now):
            self.accepted += 1
            self.ok[index] = self.ok.get(index, 0) + 1
            return None
        self.throttled += 1
        return (index + 1) * self.window_s - (now + self.offset)

    def share(self, capacity: int, seconds: float) -> float:
        """Accepted / capacity over the windows wholly inside [0, seconds)."""
        first = math.ceil(self.offset / self.window_s)
        last = int((seconds + self.offset) // self.window_s)  # exclusive
        return sum(self.ok.get(i, 0) for i in range(first, last)) / (capacity * (last - first))


@dataclass
class _Intune:
    """A `$batch` transport in front of `_Server`: 0.2-3 s round trips, inner 429s."""

    server: _Server
    clock: FakeClock
    rng: random.Random

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        half_rtt = self.rng.uniform(0.2, 3.0) / 2
        await self.clock.sleep(half_rtt)
        responses = {}
        for item in items:
            wait = self.server.take(self.clock.now())
            headers = {} if wait is None else {"retry-after": str(math.ceil(wait))}
            responses[item.key] = InnerResponse(204 if wait is None else 429, headers)
        await self.clock.sleep(half_rtt)
        return BatchResult(outer=response(200), responses=responses)

    async def request(
        self, method: str, path: str, *, version: str = "beta", json_body: Any = None,
        params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:  # fmt: skip
        raise AssertionError("the runner only sends batches")


def _simulate(server: _Server, *, seconds: float) -> tuple[Lane, list[tuple[float, float]]]:
    """Rotate more devices than fit in `seconds` through the real runner; stop at `seconds`."""
    clock = FakeClock()
    pacing = lane(INTUNE, clock=clock, seed=1)
    graph = _Intune(server, clock, random.Random(1))
    rates: list[tuple[float, float]] = []
    items = [BatchItem(k, "POST", f"/d/{k}", f"c{k}") for k in range(int(seconds * 12))]

    async def main() -> None:
        stop = asyncio.Event()

        async def stopper() -> None:
            await clock.sleep(seconds)
            stop.set()

        task = asyncio.create_task(stopper())
        runner = BatchRunner(graph, pacing, max_concurrency=4)
        await runner.run(
            items,
            on_send=lambda _: rates.append((clock.now(), pacing.pacer.rate)),
            on_answer=lambda _: None,
            stop=stop,
        )
        await task

    asyncio.run(main())
    return pacing, rates


@pytest.mark.parametrize("capacity", [200, 100])
def test_rides_what_is_left_of_a_fixed_window_budget(capacity: int) -> None:
    server = _Server(lambda _: capacity)
    pacing, _ = _simulate(server, seconds=600.0)
    share = server.share(capacity, 600.0)
    throttled_share = server.throttled / (server.accepted + server.throttled)
    print(
        f"C={capacity}: share of C {share:.3f}, 429 share {throttled_share:.3f}, "
        f"decreases {pacing.pacer.throttle_events}"
    )
    assert share >= 0.9
    assert throttled_share <= 0.05
    if capacity == 200:
        assert throttled_share <= 0.01


def test_regains_the_budget_when_the_neighbour_leaves() -> None:
    server = _Server(lambda now: 100 if now < 600 else 200)
    pacing, rates = _simulate(server, seconds=1200.0)
    regained = next(t for t, rate in rates if t > 600 and rate >= 0.95 * pacing.pacer.max_rate)
    print(f"95% of max_rate {regained - 600:.0f} s after the neighbour left")
    assert regained - 600 <= 300
    assert server.throttled / (server.accepted + server.throttled) <= 0.05


def test_settles_below_a_neighbour_that_arrives() -> None:
    server = _Server(lambda now: 200 if now < 300 else 100)
    pacing, rates = _simulate(server, seconds=1200.0)
    late = [rate for t, rate in rates if t > 600]
    assert max(late) <= 6.0  # slow probing, no climb back into a 429 storm
    assert sum(late) / len(late) >= 4.5  # but close to the 5/s left
    assert pacing.pacer.throttle_events <= 8
