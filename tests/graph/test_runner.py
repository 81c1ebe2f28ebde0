"""The real BatchRunner and get_with_retry on virtual time against scripted Graph answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_rotate.graph.batch import BatchItem, InnerResponse
from batch_rotate.graph.errors import ServiceError, SignInError, TransportError
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.pacer import Budget
from batch_rotate.graph.reads import get_with_retry
from batch_rotate.graph.runner import BatchRunner, ItemResult
from tests.graph.fakeclock import FakeClock
from tests.graph.fakes import ScriptedGraph, response

T = TypeVar("T")
ROOMY = Budget(100_000, 1.0)  # pacing never the bottleneck: timings come from the answers


def _run(body: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await body()

    return asyncio.run(main())


def _items(n: int) -> list[BatchItem]:
    return [BatchItem(k, "POST", f"/devices/d{k}/rotate", f"crid-{k}") for k in range(n)]


def _setup(**script: Any) -> tuple[FakeClock, ScriptedGraph, Lane]:
    clock = FakeClock()
    return clock, ScriptedGraph(clock, **script), lane(ROOMY, clock=clock, seed=7)


def _rotate(
    graph: ScriptedGraph, pacing: Lane, n: int, **options: Any
) -> tuple[dict[int, ItemResult], BatchRunner]:
    """Run n items; return each item's final answer (checking there is exactly one)."""
    finals: dict[int, ItemResult] = {}
    runner = BatchRunner(graph, pacing, **options)

    def on_answer(results: Sequence[ItemResult]) -> None:
        for result in results:
            if result.final:
                assert result.item.key not in finals, "an item was answered finally twice"
                finals[result.item.key] = result

    async def go() -> None:
        assert await runner.run(_items(n), on_send=lambda _: None, on_answer=on_answer) == []

    _run(go)
    assert sorted(finals) == list(range(n))
    return finals, runner


def test_inner_429_resends_only_the_throttled_after_retry_after_without_using_attempts() -> None:
    def inner(_call: int, item: BatchItem, sent: int) -> InnerResponse:
        if item.key in (2, 5) and sent < 3:
            return InnerResponse(429, {"retry-after": "5"})
        return InnerResponse(204)

    _clock, graph, pacing = _setup(inner=inner)
    finals, runner = _rotate(graph, pacing, 10, max_attempts=1)
    assert {r.status for r in finals.values()} == {204}
    assert graph.sends == [(0.0, list(range(10))), (6.0, [2, 5]), (12.0, [2, 5]), (18.0, [2, 5])]
    assert runner.stats.throttled == 6
    assert runner.stats.transient == 0


def test_a_batch_429_pauses_every_sender_until_retry_after() -> None:
    _clock, graph, pacing = _setup(
        outer=lambda call: response(429, {"retry-after": "7"}) if call == 0 else None
    )
    finals, runner = _rotate(graph, pacing, 80, batch_size=10, max_concurrency=2)
    times = [when for when, _ in graph.sends]
    assert times[:2] == [0.0, 0.0]
    assert not [t for t in times if 1.0 < t < 8.0]  # nobody sends during the pause
    assert next(t for t, _ in graph.sends if t > 1.0) == 8.0  # everyone resumes at the end
    assert graph.times_of(0)[0] == 0.0
    assert graph.times_of(0)[1] >= 8.0  # the throttled items go again, behind the queue
    assert all(r.status == 204 for r in finals.values())
    assert runner.stats.outer_throttled == 1


def test_503_with_retry_after_pauses_everyone_and_uses_an_attempt() -> None:
    _clock, graph, pacing = _setup(
        outer=lambda call: response(503, {"retry-after": "4"}) if call == 0 else None
    )
    finals, runner = _rotate(graph, pacing, 40, batch_size=10, max_concurrency=2)
    assert not [t for t, _ in graph.sends if 1.0 < t < 5.0]
    assert graph.times_of(0)[1] >= 5.0
    assert runner.stats.transient == 10
    assert all(r.status == 204 for r in finals.values())


def test_503_without_retry_after_backs_off_alone() -> None:
    _clock, graph, pacing = _setup(outer=lambda call: response(503) if call == 0 else None)
    finals, _ = _rotate(graph, pacing, 40, batch_size=10, max_concurrency=2)
    fresh_at_1 = [keys for t, keys in graph.sends if t == 1.0 and 0 not in keys]
    assert fresh_at_1  # the other sender went on at once
    _first, again = graph.times_of(0)
    assert 1.0 + 0.1 <= again <= 1.0 + 1.0 + 1.0  # backoff: retry_delay 1 s, full jitter
    assert all(r.status == 204 for r in finals.values())


def test_timeouts_count_attempts_then_the_item_fails_with_the_reason() -> None:
    _clock, graph, pacing = _setup(outer=lambda _call: TransportError("timed out waiting"))
    finals, runner = _rotate(graph, pacing, 3, max_attempts=3)
    assert [graph.sent[k] for k in range(3)] == [3, 3, 3]
    for result in finals.values():
        assert result.status is None
        assert result.reason == "gave up after 3 attempts; last: timed out waiting"
    assert runner.stats.failed == 3


def test_omitted_ids_are_resent_and_a_204_is_never_sent_again() -> None:
    def inner(_call: int, item: BatchItem, sent: int) -> InnerResponse | None:
        return None if item.key == 3 and sent == 0 else InnerResponse(204)

    _clock, graph, pacing = _setup(inner=inner)
    finals, _ = _rotate(graph, pacing, 6)
    assert [graph.sent[k] for k in range(6)] == [1, 1, 1, 2, 1, 1]
    assert finals[3].status == 204


def test_item_errors_are_final_data_not_exceptions() -> None:
    def inner(_call: int, item: BatchItem, sent: int) -> InnerResponse:
        if item.key == 1:
            return InnerResponse(403, body={"error": {"code": "Forbidden", "message": "no role"}})
        return InnerResponse(404, body={"error": "text, not an object"})

    _clock, graph, pacing = _setup(inner=inner)
    finals, _ = _rotate(graph, pacing, 2)
    assert finals[1].reason == "HTTP 403 Forbidden: no role"
    assert finals[0].reason == "HTTP 404: text, not an object"
    assert sum(graph.sent.values()) == 2


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [(401, SignInError, "even after renewing"), (400, ServiceError, "malformed")],
)
def test_batch_401_and_400_stop_the_run(status: int, error: type[Exception], words: str) -> None:
    _clock, graph, pacing = _setup(outer=lambda _call: response(status))
    runner = BatchRunner(graph, pacing)

    async def go() -> None:
        await runner.run(_items(3), on_send=lambda _: None, on_answer=lambda _: None)

    with pytest.raises(error, match=words):
        _run(go)


def test_stop_returns_what_was_never_sent_and_lets_batches_in_flight_answer() -> None:
    clock, graph, pacing = _setup()
    stop = asyncio.Event()
    answered: list[int] = []
    runner = BatchRunner(graph, pacing, batch_size=10, max_concurrency=2)

    async def go() -> list[BatchItem]:
        async def stopper() -> None:
            await clock.sleep(0.5)
            stop.set()

        task = asyncio.create_task(stopper())
        unsent = await runner.run(
            _items(50),
            on_send=lambda _: None,
            on_answer=lambda rs: answered.extend(r.item.key for r in rs),
            stop=stop,
        )
        await task
        return unsent

    unsent = _run(go)
    assert sorted(answered) == list(range(20))
    assert [item.key for item in unsent] == list(range(20, 50))


_ANSWERS = st.sampled_from(["204", "404", "429", "429-no-ra", "503", "omit"])


@settings(max_examples=40, deadline=None)
@given(table=st.lists(st.lists(_ANSWERS, min_size=4, max_size=4), min_size=1, max_size=25))
def test_any_mix_of_answers_ends_each_item_once_and_never_resends_a_204(
    table: list[list[str]],
) -> None:
    def inner(_call: int, item: BatchItem, sent: int) -> InnerResponse | None:
        kind = table[item.key][sent] if sent < 4 else "204"
        if kind == "omit":
            return None
        if kind == "429":
            return InnerResponse(429, {"retry-after": "2"})
        if kind == "429-no-ra":
            return InnerResponse(429)
        return InnerResponse(int(kind))

    _clock, graph, pacing = _setup(inner=inner)
    finals, _ = _rotate(graph, pacing, len(table), batch_size=3, max_attempts=3)
    for key, row in enumerate(table):
        answers = [*row, "204"]
        sent = graph.sent[key]
        final = answers[sent - 1]
        assert final in ("204", "404") or final in ("503", "omit")  # done, or gave up
        assert "204" not in answers[: sent - 1]  # nothing after a 204 or 404
        assert "404" not in answers[: sent - 1]
        faults = sum(1 for a in answers[:sent] if a in ("503", "omit"))
        assert faults <= 3  # throttles used no attempts: only faults count to max_attempts
        if final in ("503", "omit"):
            assert faults == 3 and finals[key].reason.startswith("gave up after 3 attempts")


def test_a_read_waits_out_429_and_returns_passed_statuses() -> None:
    _clock, graph, pacing = _setup(
        gets=[response(429, {"retry-after": "3"}), response(404)], rtt_s=1.0
    )

    async def go() -> int:
        answer = await get_with_retry(graph, pacing, "deviceManagement/managedDevices/x")
        return answer.status

    assert _run(go) == 404
    assert graph.get_times == [0.0, 4.0]


def test_a_read_refused_403_names_the_permission() -> None:
    body = {"error": {"code": "Authorization_RequestDenied", "message": "nope"}}
    _clock, graph, pacing = _setup(gets=[response(403, body=body)])

    async def go() -> None:
        await get_with_retry(graph, pacing, "things", permission="Things.Read.All")

    with pytest.raises(
        SignInError, match="Authorization_RequestDenied: nope; grant the app Things"
    ):
        _run(go)


def test_a_read_503_with_retry_after_pauses_the_lane() -> None:
    clock, graph, pacing = _setup(gets=[response(503, {"retry-after": "6"}), response(200)])
    paused: list[float] = []

    async def go() -> None:
        read = asyncio.create_task(get_with_retry(graph, pacing, "things"))
        await clock.sleep(1.5)
        paused.append(pacing.gate.remaining())
        await read

    _run(go)
    assert paused == [5.5]
    assert graph.get_times == [0.0, 7.0]


@pytest.mark.parametrize(
    ("answers", "error", "words"),
    [
        ([response(500)] * 3, ServiceError, "gave up after 3 attempts; last: HTTP 500"),
        ([TransportError("reset")] * 3, TransportError, "gave up after 3 attempts; last: reset"),
        ([response(401)], SignInError, "even after renewing"),
    ],
)
def test_a_read_that_keeps_failing_stops_the_run(
    answers: list[Any], error: type[Exception], words: str
) -> None:
    _clock, graph, pacing = _setup(gets=list(answers))

    async def go() -> None:
        await get_with_retry(graph, pacing, "things", max_attempts=3)

    with pytest.raises(error, match=words):
        _run(go)
