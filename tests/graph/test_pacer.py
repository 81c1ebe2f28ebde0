"""Pacer, gate, backoff, Retry-After parsing and the fake clock, all on virtual time."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_rotate.graph.pacer import (
    MAX_RETRY_AFTER_S,
    AdaptivePacer,
    Backoff,
    Budget,
    RetryGate,
    parse_retry_after,
)
from tests.graph.fakeclock import FakeClock

NOW = 1_800_000_000.0  # an epoch in 2027
INTUNE = Budget.parse("200/20s")


def _run(body: Callable[[], Awaitable[None]]) -> None:
    """Run a test body on a fresh event loop (no pytest-asyncio)."""

    async def main() -> None:
        await body()

    asyncio.run(main())


# --- Budget -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "window_s"),
    [
        ("200/20s", 200, 20.0),
        ("2000/20s", 2000, 20.0),
        ("10/1s", 10, 1.0),
        ("600/1m", 600, 60.0),
        ("36000/1h", 36000, 3600.0),
        ("5/500ms", 5, 0.5),
        ("10/s", 10, 1.0),
        (" 5 / 2 ", 5, 2.0),
        ("400/20S", 400, 20.0),
    ],
)
def test_budget_parse(text: str, count: int, window_s: float) -> None:
    budget = Budget.parse(text)
    assert budget.count == count
    assert budget.window_s == pytest.approx(window_s)
    assert budget.per_second == pytest.approx(count / window_s)


@pytest.mark.parametrize(
    "text", ["", "200", "200/", "/20s", "0/20s", "200/0s", "x/20s", "200/20d", "-5/20s", "1.5/20s"]
)
def test_budget_parse_refuses_nonsense_with_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match=r"COUNT/WINDOW.*200/20s"):
        Budget.parse(text)


def test_budget_itself_refuses_a_zero_window() -> None:
    with pytest.raises(ValueError, match="positive"):
        Budget(200, 0.0)


# --- Retry-After ------------------------------------------------------------------------------


def _http_date(delta_s: float) -> str:
    when = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=delta_s)
    return format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 7 ", 7.0),
        ("2.128", 2.128),
        ("0", 0.0),
        ("0.0", 0.0),
        ("-3", 0.0),
        ("99999999", MAX_RETRY_AFTER_S),
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("7s", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now_epoch=NOW) == expected


def test_parse_retry_after_http_dates() -> None:
    assert parse_retry_after(_http_date(30), now_epoch=NOW) == pytest.approx(30.0)
    assert parse_retry_after(_http_date(-30), now_epoch=NOW) == 0.0
    assert parse_retry_after(_http_date(86_400), now_epoch=NOW) == MAX_RETRY_AFTER_S
    # The obsolete forms RFC 9110 still asks recipients to accept: RFC 850 and asctime.
    epoch = datetime(1994, 11, 6, 8, 49, 7, tzinfo=UTC).timestamp()
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now_epoch=epoch) == 30.0
    assert parse_retry_after("Sun Nov  6 08:49:37 1994", now_epoch=epoch) == 30.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now_epoch=NOW) == 0.0
    assert parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT", now_epoch=NOW) is None


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises_and_stays_in_range(value: str) -> None:
    result = parse_retry_after(value, now_epoch=NOW)
    assert result is None or 0.0 <= result <= MAX_RETRY_AFTER_S


@given(st.floats(min_value=0, max_value=MAX_RETRY_AFTER_S, allow_nan=False))
def test_parse_retry_after_reads_back_any_plain_delay(seconds: float) -> None:
    text = f"{seconds:.3f}"
    assert parse_retry_after(text, now_epoch=NOW) == pytest.approx(float(text))


# --- Backoff ----------------------------------------------------------------------------------


def test_backoff_bounds_growth_and_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=30.0, rng=random.Random(7))
    assert [backoff.ceiling(n) for n in (0, 1, 2, 3, 4, 5, 6, 50, 10**6)] == [
        1, 1, 2, 4, 8, 16, 30, 30, 30,
    ]  # fmt: skip
    for attempt in range(1, 40):
        for _ in range(20):
            assert 0.1 <= backoff.delay(attempt) <= backoff.ceiling(attempt)
    # Full jitter: spread over the whole range, so the mean grows with the ceiling.
    means = [sum(backoff.delay(n) for _ in range(400)) / 400 for n in (1, 3, 5)]
    assert means[0] < means[1] < means[2]
    assert means[2] == pytest.approx(16 / 2, rel=0.15)


def test_backoff_is_deterministic_with_a_seeded_rng() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.delay(n) for n in range(1, 15)] == [b.delay(n) for n in range(1, 15)]
    c = Backoff(rng=random.Random(43))
    assert [a.delay(n) for n in range(1, 15)] != [c.delay(n) for n in range(1, 15)]


def test_backoff_refuses_a_base_above_the_cap() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=10, cap_s=1, rng=random.Random(0))


# --- FakeClock --------------------------------------------------------------------------------


def test_fake_clock_wakes_concurrent_sleepers_in_time_order() -> None:
    clock = FakeClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delays: list[float]) -> None:
        for delay in delays:
            await clock.sleep(delay)
            woke.append((name, clock.now()))

    async def main() -> None:
        await asyncio.gather(sleeper("a", [3, 3, 3]), sleeper("b", [5, 0.5]), sleeper("c", [1]))

    _run(main)
    assert woke == [
        ("c", 101.0), ("a", 103.0), ("b", 105.0), ("b", 105.5), ("a", 106.0), ("a", 109.0),
    ]  # fmt: skip


def test_fake_clock_ignores_zero_and_cancelled_sleeps() -> None:
    clock = FakeClock()

    async def main() -> None:
        await clock.sleep(0)
        await clock.sleep(-5)
        assert clock.now() == 0.0
        long = asyncio.create_task(clock.sleep(1000))
        await clock.sleep(1)
        long.cancel()
        await asyncio.gather(long, return_exceptions=True)
        await clock.sleep(2)
        assert clock.now() == 3.0  # the cancelled sleep never moved time to 1000
        with pytest.raises(ValueError, match="finite"):
            await clock.sleep(math.inf)

    _run(main)


def test_fake_clock_advance_by_hand() -> None:
    clock = FakeClock()

    async def main() -> None:
        woke = asyncio.Event()

        async def sleeper() -> None:
            await clock.sleep(10)
            woke.set()

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        clock.advance(10)
        await woke.wait()
        await task
        assert clock.now() == 10.0

    _run(main)


# --- RetryGate --------------------------------------------------------------------------------


def test_gate_releases_concurrent_waiters_after_the_longest_pause() -> None:
    clock = FakeClock()
    gate = RetryGate(clock)
    released: list[float] = []

    async def waiter() -> None:
        await gate.wait()
        released.append(clock.now())

    async def main() -> None:
        gate.pause(5)
        gate.pause(2)  # never shortens
        assert gate.paused_until == 5.0
        tasks = [asyncio.create_task(waiter()) for _ in range(3)]
        await clock.sleep(1)
        assert gate.remaining() == 4.0
        gate.pause(10)  # extended while they wait: now until t=11
        await asyncio.gather(*tasks)

    _run(main)
    assert released == [11.0, 11.0, 11.0]
    assert gate.remaining() == 0.0


def test_gate_does_not_wait_when_not_paused() -> None:
    clock = FakeClock(start=50.0)
    gate = RetryGate(clock)

    async def main() -> None:
        await gate.wait()
        gate.pause(0)
        gate.pause(-3)
        await gate.wait()

    _run(main)
    assert clock.now() == 50.0
    assert gate.remaining() == 0.0
    with pytest.raises(ValueError, match="nan"):
        gate.pause(math.nan)


# --- AdaptivePacer ----------------------------------------------------------------------------


def _drive(pacer: AdaptivePacer, clock: FakeClock, seconds: float, batch: int) -> list[float]:
    """Acquire `batch` tokens as fast as allowed for `seconds`; return the acquisition times."""
    times: list[float] = []

    async def main() -> None:
        while True:
            await pacer.acquire(batch)
            if clock.now() >= seconds:
                return
            times.append(clock.now())
            pacer.on_success(batch)

    _run(main)
    return times


@pytest.mark.parametrize("batch", [20, 1])
def test_pacer_holds_max_rate_in_steady_state(batch: int) -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock)
    assert pacer.max_rate == pytest.approx(0.98 * 10)
    times = _drive(pacer, clock, 120.0, batch)
    sent = batch * sum(1 for t in times if 10 <= t < 110)  # 100 s after the first burst
    assert sent == pytest.approx(0.98 * 10 * 100, abs=batch)  # one batch either way
    assert pacer.rate == pytest.approx(pacer.max_rate)
    assert pacer.throttle_events == 0


class LateClock(FakeClock):
    """Every timer fires `late_s` after its deadline, as a loaded event loop's do."""

    def __init__(self, late_s: float) -> None:
        super().__init__()
        self.late_s = late_s

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.late_s if seconds > 0 else seconds)


@pytest.mark.parametrize("late_s", [0.02, 0.1])
def test_a_late_timer_costs_no_rate(late_s: float) -> None:
    """Timers 1% and 5% of a batch interval late: a waiter woken late takes its batch late and
    the next one on time, so the pacer still hands out its full rate (the lost time cost the
    old bucket as much), and no window of the budget's length carries more than its count."""
    clock = LateClock(late_s)
    pacer = AdaptivePacer(INTUNE, clock=clock)
    times = _drive(pacer, clock, 300.0, 20)
    rate = 20 * (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.995 * pacer.max_rate
    for start in times:
        assert 20 * sum(1 for t in times if start <= t < start + INTUNE.window_s) <= INTUNE.count


def test_pacer_spreads_requests_and_never_exceeds_the_budget() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock)
    times = _drive(pacer, clock, 200.0, 20)
    for start in times:  # every 20 s window starting at a send holds at most the budget
        in_window = 20 * sum(1 for t in times if start <= t < start + 20)
        assert in_window <= 200
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(20 / pacer.max_rate)  # even spacing, not front-loaded
    assert max(gaps) == pytest.approx(20 / pacer.max_rate)


def test_one_decrease_per_burst_of_throttles() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock)

    async def main() -> None:
        await pacer.acquire(20)
        for _ in range(20):  # every inner request of one batch came back 429
            pacer.on_throttle()
        assert pacer.throttle_events == 1
        assert pacer.rate == pytest.approx(0.7 * pacer.max_rate)
        await clock.sleep(3)
        pacer.on_throttle()  # another batch that was in flight: within the hold-off
        await clock.sleep(7)
        pacer.on_throttle()  # nothing was sent since the cut: it answers an older request
        assert pacer.throttle_events == 1
        await pacer.acquire(20)
        await clock.sleep(2)
        pacer.on_throttle()  # nothing accepted since the cut: that window is still used up
        assert pacer.throttle_events == 1
        pacer.on_success(20)  # the server accepts again: a new window began
        await clock.sleep(1)
        pacer.on_throttle()
        assert pacer.throttle_events == 2

    _run(main)


def test_throttles_without_any_success_cut_once_per_window() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock)

    async def main() -> None:
        for _ in range(12):  # a storm: every batch is refused, every 5 s, for a minute
            await pacer.acquire(20)
            pacer.on_throttle()
            await clock.sleep(5)

    _run(main)
    assert pacer.throttle_events == 3  # at t=0, 20 and 40
    assert pacer.rate >= pacer.budget.per_second * 0.98 * 0.7**3 * 0.9


def test_recovery_is_concave_and_reaches_max_rate_in_a_few_windows() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock)
    rates: dict[int, float] = {}

    async def main() -> None:
        await pacer.acquire(20)
        pacer.on_throttle()
        for second in range(1, 121):
            await clock.sleep(1)
            pacer.on_success(1)
            rates[second] = pacer.rate

    _run(main)
    low, top = 0.7 * pacer.max_rate, pacer.max_rate
    assert rates[20] - low > 0.6 * (top - low)  # fast at first...
    assert rates[40] < top  # ...then slow near the rate that was throttled
    assert rates[60] == pytest.approx(top)
    assert all(rate <= top for rate in rates.values())
    assert all(b >= a for a, b in itertools.pairwise(rates.values()))


def test_ceiling_follows_what_the_server_accepted() -> None:
    """A neighbour leaves us 100 per window: one 429 teaches the pacer about 5/s."""
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock)

    async def main() -> None:
        for _ in range(5):
            await pacer.acquire(20)
            pacer.on_success(20)
        await pacer.acquire(20)
        pacer.on_throttle()

    _run(main)
    assert pacer.w_max == pytest.approx(5.0)
    assert pacer.rate == pytest.approx(3.5)
    assert pacer.throttle_events == 1


def test_a_quiet_sender_is_not_cut_below_half() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock)

    async def main() -> None:
        await pacer.acquire(1)
        pacer.on_success(1)
        await clock.sleep(30)
        await pacer.acquire(1)
        pacer.on_throttle()

    _run(main)
    assert pacer.w_max == pytest.approx(0.49 * pacer.max_rate)


@given(
    st.lists(
        st.tuples(st.sampled_from(["ok", "429", "send"]), st.floats(0, 30), st.integers(1, 20)),
        max_size=60,
    )
)
def test_never_hands_out_more_than_the_bucket_allows(ops: list[tuple[str, float, int]]) -> None:
    """Whatever 429s and successes do to the rate, no span of T seconds gets more than two
    batches (one, and one more to forgive late timers) plus T seconds at the budget's rate,
    and the pacer never stalls below min_rate."""
    clock = FakeClock()
    pacer = AdaptivePacer(INTUNE, clock=clock, min_rate=0.2)
    grants: list[tuple[float, int]] = []

    async def main() -> None:
        for op, wait_s, n in ops:
            await clock.sleep(wait_s)
            if op == "ok":
                pacer.on_success(n)
            elif op == "429":
                pacer.on_throttle()
            else:
                asked = clock.now()
                await pacer.acquire(n)
                assert clock.now() - asked <= n / 0.2 + 1e-6  # min_rate keeps it moving
                grants.append((clock.now(), n))

    _run(main)
    for start, _ in grants:
        for end, _ in grants:
            if end >= start:
                taken = sum(n for t, n in grants if start <= t <= end)
                assert taken <= 2 * 20 + pacer.max_rate * (end - start) + 1e-6


@settings(max_examples=60, deadline=None)
@given(
    budget=st.sampled_from([INTUNE, Budget(10, 1.0), Budget(45, 7.5), Budget(3, 0.25)]),
    senders=st.lists(
        st.lists(
            st.tuples(
                st.floats(0, 5),
                st.integers(1, 20),
                st.sampled_from(["ok", "429", "none"]),
            ),
            min_size=1,
            max_size=25,
        ),
        min_size=1,
        max_size=4,
    ),
    headroom=st.sampled_from([1.0, 0.98, 0.5]),
)
def test_no_window_of_the_budget_ever_carries_more_than_its_count(
    budget: Budget, senders: list[list[tuple[float, int, str]]], headroom: float
) -> None:
    """Concurrent senders, random sizes and gaps, 429s and successes: slide a window of
    window_s (plus the jitter margin) over every grant (any alignment starts at some grant)."""
    clock = FakeClock(start=3.7)
    pacer = AdaptivePacer(budget, clock=clock, headroom=headroom, burst=20)
    grants: list[tuple[float, int]] = []

    async def sender(steps: list[tuple[float, int, str]]) -> None:
        for gap_s, n, feedback in steps:
            await clock.sleep(gap_s)
            size = min(n, pacer.max_take)
            await pacer.acquire(size)
            grants.append((clock.now(), size))
            if feedback == "ok":
                pacer.on_success(size)
            elif feedback == "429":
                pacer.on_throttle()

    async def main() -> None:
        await asyncio.gather(*(sender(steps) for steps in senders))

    _run(main)
    # Stronger than the budget: a margin of half the headroom for requests that arrive jittered.
    span_s = budget.window_s / ((1 + headroom) / 2)
    for start, _ in grants:
        in_window = sum(n for t, n in grants if start <= t < start + span_s - 1e-9)
        assert in_window <= budget.count


def test_waiters_are_served_first_come_first_served() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(Budget.parse("10/1s"), clock=clock, headroom=1.0, burst=10)
    served: list[tuple[int, float]] = []

    async def take(i: int, n: int) -> None:
        await pacer.acquire(n)
        served.append((i, clock.now()))

    async def main() -> None:
        tasks = []
        for i, n in enumerate([10, 10, 1, 10, 1]):  # small requests may not jump the queue
            tasks.append(asyncio.create_task(take(i, n)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    _run(main)
    assert [i for i, _ in served] == [0, 1, 2, 3, 4]
    # Each 1 s window is full: the 1 waits for room in the window, and so does the next 10.
    assert [t for _, t in served] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])


def test_a_cancelled_waiter_does_not_block_the_queue() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(Budget.parse("10/1s"), clock=clock, headroom=1.0, burst=10)

    async def main() -> None:
        await pacer.acquire(10)
        first = asyncio.create_task(pacer.acquire(10))
        second = asyncio.create_task(pacer.acquire(10))
        await clock.sleep(0.5)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await second
        assert clock.now() == pytest.approx(1.0)

    _run(main)


def test_acquire_refuses_more_than_the_burst() -> None:
    pacer = AdaptivePacer(INTUNE, clock=FakeClock())

    async def main() -> None:
        with pytest.raises(ValueError, match="1 to 20"):
            await pacer.acquire(21)
        with pytest.raises(ValueError, match="1 to 20"):
            await pacer.acquire(0)

    asyncio.run(main())


def test_acquire_waits_out_the_gate_it_was_given() -> None:
    clock = FakeClock()
    gate = RetryGate(clock)
    pacer = AdaptivePacer(INTUNE, clock=clock, gate=gate)

    async def main() -> None:
        gate.pause(7.5)
        await pacer.acquire(20)
        assert clock.now() == 7.5
        gate.pause(3)
        await pacer.acquire(20)  # the bucket also needs 20 / 9.8 s, but the pause is longer
        assert clock.now() == 10.5

    _run(main)
