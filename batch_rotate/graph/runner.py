"""Send many inner requests through `$batch` at a lane's budget, re-sending only what needs it.

The clock and the transport are parameters, so the same runner is tested on virtual time
against scripted answers; what to do with each answer is `policy.decide`'s call.
"""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

from batch_rotate.graph.batch import BatchItem, GraphErrorInfo, error_info
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.graph.errors import TransportError
from batch_rotate.graph.lane import Lane
from batch_rotate.graph.policy import RETRYABLE, Action, Decision, Limits, Scope, Tries, decide

READ_PERMISSION = "DeviceManagementManagedDevices.Read.All (or ReadWrite.All)"


class Transport(Protocol):
    """What the runner sends through: `GraphClient`, or a scripted fake in tests."""

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str = "beta",
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse: ...


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The answer to one item. `final` is False when the item goes back in the queue."""

    item: BatchItem
    final: bool
    status: int | None  # inner HTTP status; None when no answer was read
    error: GraphErrorInfo
    request_id: str
    body: Any
    reason: str = ""  # why it failed or is retried, in words
    answered_at: str = ""  # the tenant's time of the answer (outer `Date`, ISO-8601 UTC), if any
    lost: bool = False  # final without an answer although Graph may have processed the request


@dataclass
class RunnerStats:
    """Counters for progress displays; times are on the runner's clock."""

    started: float  # clock.now() when the runner was made
    batches: int = 0
    succeeded: int = 0
    failed: int = 0
    throttled: int = 0  # inner 429s
    outer_throttled: int = 0  # whole batches answered 429
    transient: int = 0  # retries after faults
    lost: int = 0  # answers lost after the request may have been processed (handed back)
    pacing_per_s: float = 0.0  # the pacer's current rate
    paused_s: float = 0.0  # how long every sender still waits for a Retry-After


@dataclass(slots=True)
class _Entry:
    item: BatchItem
    tries: Tries = field(default_factory=Tries)


@dataclass(frozen=True, slots=True)
class Answer:
    """One item's answer as read: a status (with headers and body) or why none was read."""

    answer: int | BaseException
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    request_id: str = ""
    answered_at: str = ""

    @property
    def status(self) -> int | None:
        return self.answer if isinstance(self.answer, int) else None


class BatchRunner:
    """Runs items through `$batch` with a concurrency limit, pacing, and per-item retries."""

    def __init__(
        self,
        transport: Transport,
        lane: Lane,
        *,
        batch_size: int = 20,
        max_concurrency: int = 4,
        max_attempts: int = 8,
        version: str = "beta",
        grace_s: float = 10.0,
        hand_back_lost: bool = False,
    ) -> None:
        """`hand_back_lost`: an answer lost after the request may have been processed is not
        re-sent but handed back final with `lost=True` (writes: check before sending again)."""
        self._transport = transport
        self._hand_back_lost = hand_back_lost
        self._lane = lane
        self._clock = lane.clock
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self._limits = Limits(max_attempts=max_attempts)
        self.version = version
        self.grace_s = grace_s
        self.stats = RunnerStats(started=lane.clock.now())
        self._ready: deque[_Entry] = deque()
        self._delayed: list[tuple[float, int, _Entry]] = []  # (due on the clock, seq, entry)
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    async def run(
        self,
        items: Iterable[BatchItem],
        *,
        on_send: Callable[[Sequence[BatchItem]], None],
        on_answer: Callable[[Sequence[ItemResult]], None],
        stop: asyncio.Event | None = None,
    ) -> list[BatchItem]:
        """Send everything; returns the items never sent because `stop` was set."""
        stop = stop or asyncio.Event()
        self._ready.extend(_Entry(item) for item in items)
        tasks: set[asyncio.Future[None]] = set()
        stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._promote_due()
                if self._ready and len(tasks) < self.max_concurrency:
                    task = await self._dispatch(stop_waiter, on_send, on_answer)
                    if task is None:
                        break
                    tasks.add(task)
                elif self._ready or self._delayed or tasks:
                    await self._idle(tasks, stop_waiter)
                else:
                    break
        finally:
            stop_waiter.cancel()
            await self._drain(tasks, stop)
        return [e.item for e in self._ready] + [e.item for _, _, e in self._delayed]

    async def _dispatch(
        self,
        stop_waiter: asyncio.Future[Any],
        on_send: Callable[[Sequence[BatchItem]], None],
        on_answer: Callable[[Sequence[ItemResult]], None],
    ) -> asyncio.Future[None] | None:
        """Wait out a pause and the pacer, then send the next batch; None when stopped."""
        if not await _unless_stopped(self._lane.gate.wait(), stop_waiter):
            return None
        size = min(self.batch_size, self._lane.pacer.max_take, len(self._ready))
        batch = [self._ready.popleft() for _ in range(size)]
        if not await _unless_stopped(self._lane.pacer.acquire(len(batch)), stop_waiter):
            self._ready.extendleft(reversed(batch))
            return None
        on_send([entry.item for entry in batch])
        return asyncio.ensure_future(self._send(batch, on_answer))

    async def _idle(
        self, tasks: set[asyncio.Future[None]], stop_waiter: asyncio.Future[Any]
    ) -> None:
        """Wait on the clock for an answer, a stop, or the next delayed item falling due."""
        self._wake.clear()
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        if self._delayed and len(tasks) < self.max_concurrency:
            due_in = max(self._delayed[0][0] - self._clock.now(), 0.0)
            waiters.add(asyncio.ensure_future(self._clock.sleep(due_in)))
        done, _ = await asyncio.wait({*tasks, stop_waiter, *waiters}, return_when="FIRST_COMPLETED")
        for waiter in waiters:
            waiter.cancel()
        for task in done & tasks:
            tasks.discard(task)
            task.result()  # re-raise what stops the run (sign-in lost)

    async def _drain(self, tasks: set[asyncio.Future[None]], stop: asyncio.Event) -> None:
        """Give batches in flight `grace_s` on the clock to answer, then cancel the rest."""
        if not tasks:
            return
        grace = asyncio.ensure_future(self._clock.sleep(self.grace_s))
        pending = set(tasks)
        while pending and not grace.done():
            await asyncio.wait({*pending, grace}, return_when="FIRST_COMPLETED")
            pending = {task for task in pending if not task.done()}
        grace.cancel()
        for task in pending:
            task.cancel()
        await asyncio.gather(grace, *pending, return_exceptions=True)
        errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
        first = next((error for error in errors if error is not None), None)
        if first is not None and not stop.is_set():
            raise first

    def _promote_due(self) -> None:
        now = self._clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])

    async def _send(
        self, batch: list[_Entry], on_answer: Callable[[Sequence[ItemResult]], None]
    ) -> None:
        self.stats.batches += 1
        results = await self._exchange(batch)
        self.stats.pacing_per_s = self._lane.pacer.rate
        self.stats.paused_s = self._lane.gate.remaining()
        on_answer(results)
        self._wake.set()

    async def _exchange(self, batch: list[_Entry]) -> list[ItemResult]:
        """Send one batch and settle each item's answer (inner, or the batch's own)."""
        try:
            result = await self._transport.batch([e.item for e in batch], version=self.version)
        except TransportError as exc:
            return self._settle([(entry, Answer(exc)) for entry in batch], Scope.ITEM)
        outer = result.outer
        if outer.status != 200:
            self.stats.outer_throttled += outer.status == 429
            answer = Answer(outer.status, outer.headers, outer.body, outer.request_id)
            return self._settle([(entry, answer) for entry in batch], Scope.BATCH)
        missing = Answer(
            TransportError("missing from the batch answer"), {}, None, outer.request_id
        )
        # Inner answers carry no Date: the tenant's clock is read from the batch's own answer.
        answered_at = http_date_iso(outer.headers.get("date"))
        pairs = []
        for entry in batch:
            inner = result.responses.get(entry.item.key)
            if inner is None:
                pairs.append((entry, missing))
            else:
                answer = Answer(
                    inner.status, inner.headers, inner.body, outer.request_id, answered_at
                )
                pairs.append((entry, answer))
        return self._settle(pairs, Scope.ITEM)

    def _settle(self, pairs: list[tuple[_Entry, Answer]], scope: Scope) -> list[ItemResult]:
        """Decide for every item, feed the lane once for the whole batch, then act."""
        now_epoch = self._clock.epoch()
        decisions = [
            decide(
                answer.answer,
                answer.headers,
                entry.tries,
                scope=scope,
                now_epoch=now_epoch,
                backoff_s=self._lane.backoff.delay,
                limits=self._limits,
                info=error_info(answer.body),
                what="POST $batch",
            )
            for entry, answer in pairs
        ]
        for decision in decisions:
            if decision.error is not None:
                raise decision.error
        self._feedback([answer for _, answer in pairs], decisions, scope)
        return [
            self._act(entry, answer, decision)
            for (entry, answer), decision in zip(pairs, decisions, strict=True)
        ]

    def _feedback(self, answers: list[Answer], decisions: list[Decision], scope: Scope) -> None:
        """One success report, one throttle event and one pause per batch, not per item."""
        accepted = sum(
            1
            for answer, decision in zip(answers, decisions, strict=True)
            if decision.action is Action.FINAL and (answer.status or 1000) < 400
        )
        if accepted:
            self._lane.pacer.on_success(accepted)
        throttled = sum(1 for d in decisions if d.action is Action.THROTTLE)
        if throttled:
            self.stats.throttled += throttled if scope is Scope.ITEM else 0
            self._lane.pacer.on_throttle()
        pauses = [d.delay_s for d in decisions if d.pause_all]
        if pauses:
            self._lane.gate.pause(max(pauses))

    def _act(self, entry: _Entry, answer: Answer, decision: Decision) -> ItemResult:
        info = error_info(answer.body)
        request_id = info.request_id or answer.request_id
        final = decision.action is Action.FINAL
        lost = self._hand_back_lost and _maybe_processed(answer) and not decision.error
        if lost:
            self.stats.lost += 1
            return ItemResult(
                entry.item,
                True,
                answer.status,
                info,
                request_id,
                answer.body,
                f"answer lost after sending ({_last(answer, info)})",
                answer.answered_at,
                lost=True,
            )
        if decision.action is Action.THROTTLE:
            entry.tries = Tries(entry.tries.attempts, entry.tries.throttles + 1)
            self._ready.append(entry)  # the gate holds it until the pause has passed
        elif decision.action is Action.RETRY:
            entry.tries = Tries(entry.tries.attempts + 1, entry.tries.throttles)
            self.stats.transient += 1
            due = self._clock.now() + decision.delay_s
            heapq.heappush(self._delayed, (due, next(self._seq), entry))
        elif answer.status is not None and answer.status < 400:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        return ItemResult(
            entry.item,
            final,
            answer.status,
            info,
            request_id,
            answer.body,
            decision.reason,
            answer.answered_at,
        )


def _maybe_processed(answer: Answer) -> bool:
    """A fault after the request may have reached Graph: a 5xx, or no readable answer."""
    if isinstance(answer.answer, TransportError):
        return answer.answer.maybe_sent
    if isinstance(answer.answer, BaseException):
        return True
    return answer.answer in RETRYABLE


def _last(answer: Answer, info: GraphErrorInfo) -> str:
    if isinstance(answer.answer, BaseException):
        return str(answer.answer)
    return f"HTTP {answer.answer} {info.code}".strip()


def http_date_iso(value: str | None) -> str:
    """An HTTP `Date` header as ISO-8601 UTC with a `Z` ('' when absent or unreadable)."""
    if not value:
        return ""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _unless_stopped(awaitable: Any, stop_waiter: asyncio.Future[Any]) -> bool:
    """Await `awaitable` unless the run is stopped first (then cancel it and return False)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task, stop_waiter}, return_when="FIRST_COMPLETED")
    if task in done:
        task.result()
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False
