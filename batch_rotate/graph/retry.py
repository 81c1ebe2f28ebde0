"""Send many inner requests through `$batch` at the budget, re-sending only what needs it.

Throttled items (429) wait behind the shared gate and do not use up attempts; transient faults
(5xx, resets, timeouts, unusable bodies, omitted ids) back off and count towards `max_attempts`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batch_rotate.errors import AuthError, GraphError
from batch_rotate.graph.batch import BatchItem, GraphErrorInfo, InnerResponse, error_info
from batch_rotate.graph.client import GraphClient, GraphResponse, TransportError
from batch_rotate.graph.pacer import AdaptivePacer, Backoff, Clock, RetryGate, parse_retry_after

RETRYABLE = frozenset({429, 500, 502, 503, 504})
MAX_THROTTLED = 100  # throttles are the service pacing us, not failures; this only stops a loop


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


@dataclass
class RunnerStats:
    batches: int = 0
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    throttled: int = 0
    outer_throttled: int = 0
    transient: int = 0
    in_flight: int = 0
    pacing_per_s: float = 0.0  # the pacer's current rate
    paused_s: float = 0.0  # how long every sender still waits for a Retry-After
    started: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Entry:
    item: BatchItem
    attempts: int = 0  # transient failures so far
    throttles: int = 0


class Throttle:
    """The pacing parts shared by every sender on one budget."""

    def __init__(self, pacer: AdaptivePacer, gate: RetryGate, backoff: Backoff, clock: Clock):
        self.pacer = pacer
        self.gate = gate
        self.backoff = backoff
        self.clock = clock

    def wait_for(self, headers: Mapping[str, str], attempt: int) -> float:
        """Seconds to wait: the server's Retry-After, else capped exponential backoff."""
        retry_after = parse_retry_after(headers.get("retry-after"), now_epoch=time.time())
        if retry_after is None:
            return self.backoff.delay(max(attempt, 1))
        return retry_after

    def throttled(self, wait_s: float) -> None:
        self.pacer.on_throttle()
        self.gate.pause(wait_s)


class BatchRunner:
    """Runs items through `$batch` with a concurrency limit, pacing, and per-item retries."""

    def __init__(
        self,
        graph: GraphClient,
        throttle: Throttle,
        *,
        batch_size: int = 20,
        max_concurrency: int = 4,
        max_attempts: int = 8,
        version: str = "beta",
        grace_s: float = 10.0,
    ) -> None:
        self.graph = graph
        self.throttle = throttle
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.version = version
        self.grace_s = grace_s
        self.stats = RunnerStats()
        self._ready: deque[_Entry] = deque()
        self._delayed: list[tuple[float, int, _Entry]] = []
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
        tasks: set[asyncio.Future[object]] = set()
        stop_waiter: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
        clock = self.throttle.clock
        try:
            while not stop.is_set():
                self._promote_due(clock.now())
                if self._ready and len(tasks) < self.max_concurrency:
                    if not await _unless_stopped(self.throttle.gate.wait(), stop_waiter):
                        break
                    batch = [
                        self._ready.popleft() for _ in range(min(self.batch_size, len(self._ready)))
                    ]
                    acquired = self.throttle.pacer.acquire(len(batch))
                    if not await _unless_stopped(acquired, stop_waiter):
                        self._ready.extendleft(reversed(batch))
                        break
                    on_send([entry.item for entry in batch])
                    tasks.add(asyncio.ensure_future(self._send(batch, on_answer)))
                    continue
                if not self._ready and not self._delayed and not tasks:
                    break
                timeout = None
                if self._delayed and len(tasks) < self.max_concurrency:
                    timeout = max(self._delayed[0][0] - clock.now(), 0.0)
                self._wake.clear()
                wake: asyncio.Future[object] = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait(
                    {*tasks, stop_waiter, wake}, timeout=timeout, return_when="FIRST_COMPLETED"
                )
                wake.cancel()
                for task in done & tasks:
                    tasks.discard(task)
                    task.result()  # re-raise what stops the run (sign-in lost)
        finally:
            stop_waiter.cancel()
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=self.grace_s)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
                for task in done:
                    if not task.cancelled() and task.exception() and not stop.is_set():
                        raise task.exception()  # type: ignore[misc]
        unsent = [entry.item for entry in self._ready]
        unsent += [entry.item for _, _, entry in self._delayed]
        return unsent

    def _promote_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])

    def _later(self, entry: _Entry, delay_s: float) -> None:
        heapq.heappush(self._delayed, (self.throttle.clock.now() + delay_s, next(self._seq), entry))

    async def _send(
        self, batch: list[_Entry], on_answer: Callable[[Sequence[ItemResult]], None]
    ) -> None:
        self.stats.batches += 1
        self.stats.sent += len(batch)
        self.stats.in_flight += len(batch)
        try:
            results = await self._exchange(batch)
        finally:
            self.stats.in_flight -= len(batch)
        self.stats.pacing_per_s = self.throttle.pacer.rate
        self.stats.paused_s = self.throttle.gate.remaining()
        on_answer(results)
        self._wake.set()

    async def _exchange(self, batch: list[_Entry]) -> list[ItemResult]:
        items = [entry.item for entry in batch]
        try:
            result = await self.graph.batch(items, version=self.version)
        except TransportError as exc:
            return [self._transient(entry, None, {}, None, str(exc), "") for entry in batch]
        outer = result.outer
        if outer.status != 200:
            return self._outer_failure(batch, outer)
        answers: list[ItemResult] = []
        throttled: list[_Entry] = []
        longest_wait = 0.0
        succeeded = 0
        for entry in batch:
            inner = result.responses.get(entry.item.key)
            if inner is None:
                answers.append(
                    self._transient(entry, None, {}, None, "missing from the batch answer", "")
                )
            elif inner.status == 429:
                entry.throttles += 1
                wait = self.throttle.wait_for(inner.headers, entry.throttles)
                longest_wait = max(longest_wait, wait)
                answer = self._throttled_answer(entry, inner, outer)
                if not answer.final:
                    throttled.append(entry)
                answers.append(answer)
            elif inner.status in RETRYABLE:
                answers.append(
                    self._transient(
                        entry,
                        inner.status,
                        inner.headers,
                        inner.body,
                        _describe(inner),
                        outer.request_id,
                    )
                )
            else:
                succeeded += inner.status < 400
                answers.append(self._final(entry, inner, outer))
        if succeeded:
            self.throttle.pacer.on_success(succeeded)
        if throttled:
            self.stats.throttled += len(throttled)
            self.throttle.throttled(longest_wait)
            for entry in throttled:
                self._ready.append(entry)
        return answers

    def _outer_failure(self, batch: list[_Entry], outer: GraphResponse) -> list[ItemResult]:
        info = error_info(outer.body)
        if outer.status == 401:
            raise AuthError(
                "Graph refused the access token even after renewing it "
                f"({info.code or 'HTTP 401'}: {info.message}); check the app's credentials, "
                "its admin consent and --graph-url / --scope"
            )
        if outer.status == 429:
            self.stats.outer_throttled += 1
            wait = self.throttle.wait_for(outer.headers, max(e.throttles for e in batch) + 1)
            self.throttle.throttled(wait)
            for entry in batch:
                entry.throttles += 1
                self._ready.append(entry)
            reason = f"batch throttled (429); retrying after {wait:.1f} s"
            return [
                ItemResult(e.item, False, 429, info, outer.request_id, None, reason) for e in batch
            ]
        if outer.status in RETRYABLE:
            wait = self.throttle.wait_for(outer.headers, max(e.attempts for e in batch) + 1)
            if outer.status == 503 and "retry-after" in outer.headers:
                self.throttle.gate.pause(wait)
            text = f"batch answered {outer.status} {info.code}".strip()
            return [
                self._transient(e, outer.status, outer.headers, outer.body, text, outer.request_id)
                for e in batch
            ]
        if outer.status == 400:
            # A malformed batch is our bug, not the devices': report it on every item, loudly.
            raise GraphError(
                f"Graph rejected a $batch request as malformed ({info.code}: {info.message}); "
                f"request-id {outer.request_id}. This is a batch-rotate bug: please report it."
            )
        self.stats.failed += len(batch)
        reason = f"batch refused: HTTP {outer.status} {info.code} {info.message}".strip()
        return [
            ItemResult(e.item, True, outer.status, info, outer.request_id, None, reason)
            for e in batch
        ]

    def _throttled_answer(
        self, entry: _Entry, inner: InnerResponse, outer: GraphResponse
    ) -> ItemResult:
        info = error_info(inner.body)
        if entry.throttles >= MAX_THROTTLED:
            self.stats.failed += 1
            reason = f"still throttled after {entry.throttles} tries; run again later"
            return ItemResult(
                entry.item, True, 429, info, info.request_id or outer.request_id, inner.body, reason
            )
        return ItemResult(
            entry.item,
            False,
            429,
            info,
            info.request_id or outer.request_id,
            inner.body,
            "throttled; will retry",
        )

    def _transient(
        self,
        entry: _Entry,
        status: int | None,
        headers: Mapping[str, str],
        body: Any,
        reason: str,
        request_id: str,
    ) -> ItemResult:
        entry.attempts += 1
        self.stats.transient += 1
        info = error_info(body)
        if entry.attempts >= self.max_attempts:
            self.stats.failed += 1
            text = f"gave up after {entry.attempts} attempts; last: {reason}"
            return ItemResult(
                entry.item, True, status, info, info.request_id or request_id, body, text
            )
        delay = self.throttle.wait_for(headers, entry.attempts)
        self._later(entry, delay)
        return ItemResult(
            entry.item,
            False,
            status,
            info,
            info.request_id or request_id,
            body,
            f"{reason}; retry {entry.attempts} in {delay:.1f} s",
        )

    def _final(self, entry: _Entry, inner: InnerResponse, outer: GraphResponse) -> ItemResult:
        info = error_info(inner.body)
        if inner.status < 400:
            self.stats.succeeded += 1
            return ItemResult(entry.item, True, inner.status, info, outer.request_id, inner.body)
        self.stats.failed += 1
        return ItemResult(
            entry.item,
            True,
            inner.status,
            info,
            info.request_id or outer.request_id,
            inner.body,
            _describe(inner),
        )


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


def _describe(inner: InnerResponse) -> str:
    info = error_info(inner.body)
    text = f"HTTP {inner.status}"
    if info.code:
        text += f" {info.code}"
    if info.message:
        text += f": {info.message}"
    return text


async def get_with_retry(
    graph: GraphClient,
    throttle: Throttle,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    max_attempts: int = 8,
    version: str = "beta",
    pass_through: Collection[int] = (404,),
) -> GraphResponse:
    """One read (e.g. a page of the inventory), paced and retried like batch items.

    Statuses in `pass_through` are returned for the caller to judge; other errors stop the run.
    """
    attempts = throttles = 0
    while True:
        await throttle.gate.wait()
        await throttle.pacer.acquire(1)
        try:
            response = await graph.request("GET", path, params=params, version=version)
        except TransportError as exc:
            attempts += 1
            if attempts >= max_attempts:
                raise GraphError(f"{exc}; gave up after {attempts} attempts") from None
            await throttle.clock.sleep(throttle.backoff.delay(attempts))
            continue
        if response.status == 429:
            throttles += 1
            if throttles >= MAX_THROTTLED:
                raise GraphError(f"GET {path}: still throttled after {throttles} tries")
            throttle.throttled(throttle.wait_for(response.headers, throttles))
            continue
        if response.status in RETRYABLE:
            attempts += 1
            if attempts >= max_attempts:
                break
            await throttle.clock.sleep(throttle.wait_for(response.headers, attempts))
            continue
        if response.status == 401:
            raise AuthError(
                f"Graph refused the access token for GET {path} even after renewing it; "
                "check the app's credentials and admin consent"
            )
        break
    if response.status >= 400 and response.status not in pass_through:
        info = error_info(response.body)
        if response.status == 403:
            raise AuthError(
                f"GET {path}: 403 {info.code}: {info.message}; grant the app "
                "DeviceManagementManagedDevices.Read.All (or ReadWrite.All) with admin consent"
            )
        raise GraphError(
            f"GET {path}: HTTP {response.status} {info.code}: {info.message} "
            f"(request-id {response.request_id})"
        )
    if response.status < 400:
        throttle.pacer.on_success(1)
    return response
