"""Pacer, gate, backoff and Retry-After parsing on a virtual clock (no real sleeping)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from batch_rotate.graph.throttle import (
    AdaptivePacer,
    Backoff,
    Budget,
    FakeClock,
    RetryGate,
    parse_retry_after,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "count", "window"),
    [
        ("200/20s", 200, 20.0),
        ("2000/20s", 2000, 20.0),
        ("10/1s", 10, 1.0),
        ("600/1m", 600, 60.0),
        (" 5 / 2 ", 5, 2.0),
    ],
)
def test_budget_parse(text: str, count: int, window: float) -> None:
    budget = Budget.parse(text)
    assert (budget.count, budget.window_s) == (count, window)


@pytest.mark.parametrize("text", ["", "200", "0/20s", "200/0s", "x/20s", "200/20d"])
def test_budget_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="COUNT/WINDOW"):
        Budget.parse(text)


def _http_date(delta_s: float) -> str:
    return format_datetime(
        datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=delta_s), usegmt=True
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("2.128", 2.128),
        ("0", 0.0),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("99999999", 3600.0),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now_epoch=NOW) == expected


def test_parse_retry_after_http_dates() -> None:
    assert parse_retry_after(_http_date(30), now_epoch=NOW) == pytest.approx(30.0)
    assert parse_retry_after(_http_date(-30), now_epoch=NOW) == 0.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now_epoch=NOW) == 0.0


def test_backoff_is_bounded_grows_and_is_deterministic() -> None:
    a = Backoff(base_s=1, cap_s=30, rng=random.Random(7))
    b = Backoff(base_s=1, cap_s=30, rng=random.Random(7))
    delays = [a.delay(n) for n in range(1, 12)]
    assert delays == [b.delay(n) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        assert 0 < delay <= min(30, 2 ** (n - 1))
    assert a.ceiling(20) == 30
    assert max(Backoff(rng=random.Random(1)).delay(8) for _ in range(50)) > 8


def test_gate_releases_all_waiters_after_the_longest_pause() -> None:
    clock = FakeClock()
    gate = RetryGate(clock)
    released: list[float] = []

    async def waiter() -> None:
        await gate.wait()
        released.append(clock.now())

    async def main() -> None:
        gate.pause(5)
        gate.pause(2)  # never shortens
        tasks = [asyncio.create_task(waiter()) for _ in range(3)]
        await clock.sleep(1)
        gate.pause(10)  # extended while they wait: now until t=11
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert released == [pytest.approx(11.0)] * 3


def _drive_pacer(pacer: AdaptivePacer, clock: FakeClock, seconds: float, batch: int = 20) -> int:
    sent = 0

    async def main() -> None:
        nonlocal sent
        while clock.now() < seconds:
            await pacer.acquire(batch)
            sent += batch
            pacer.on_success(batch)

    asyncio.run(main())
    return sent


def test_pacer_holds_the_budget_rate_in_steady_state() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(Budget.parse("200/20s"), clock=clock)
    sent = _drive_pacer(pacer, clock, 100.0)
    # 0.98 x 10/s x 100 s, plus the initial burst of one batch
    assert 0.98 * 1000 * 0.99 <= sent - 20 <= 0.98 * 1000 * 1.01
    assert pacer.rate == pytest.approx(pacer.max_rate)


def test_one_decrease_per_burst_of_throttles_and_recovery() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(Budget.parse("200/20s"), clock=clock)
    for _ in range(20):
        pacer.on_throttle()
    assert pacer.throttle_events == 1
    assert pacer.rate == pytest.approx(pacer.max_rate * AdaptivePacer.BETA)

    async def later() -> None:
        await clock.sleep(600)

    asyncio.run(later())
    pacer.on_success(20)
    assert pacer.rate == pytest.approx(pacer.max_rate)
    assert pacer.rate <= pacer.max_rate


def test_waiters_are_served_in_arrival_order() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(Budget.parse("10/1s"), clock=clock, burst=10)
    order: list[int] = []

    async def take(i: int) -> None:
        await pacer.acquire(10)
        order.append(i)

    async def main() -> None:
        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(take(i)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("capacity", [200, 150, 100, 60])
def test_against_a_fixed_window_server_it_rides_what_is_left(capacity: int) -> None:
    """A server with 20 s windows of `capacity` writes (throttled ones count too)."""
    clock = FakeClock()
    pacer = AdaptivePacer(Budget.parse("200/20s"), clock=clock)
    gate = RetryGate(clock)
    used: dict[int, int] = {}
    accepted = throttled = 0

    async def main() -> None:
        nonlocal accepted, throttled
        while clock.now() < 1200:
            await gate.wait()
            await pacer.acquire(20)
            window = int(clock.now() // 20)
            ok = 0
            for _ in range(20):
                used[window] = used.get(window, 0) + 1
                if used[window] <= capacity:
                    ok += 1
            accepted += ok
            throttled += 20 - ok
            if ok:
                pacer.on_success(ok)
            if ok < 20:
                pacer.on_throttle()
                gate.pause((window + 1) * 20 - clock.now())

    asyncio.run(main())
    share = accepted / (capacity * 60)
    throttle_share = throttled / (accepted + throttled)
    print(f"capacity {capacity}: share {share:.3f}, 429 share {throttle_share:.3f}")
    assert share >= 0.90
    assert throttle_share <= (0.01 if capacity == 200 else 0.07)
