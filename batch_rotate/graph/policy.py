"""The one retry policy: an answer (status or exception) and its headers in, a `Decision` out.

Pure and apart from sending (as in tenacity and aiohttp-retry): `$batch` items, the batch
itself and single reads all ask `decide` (GRAPH_NOTES.md "Throttling").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import Enum

from batch_rotate.graph.batch import GraphErrorInfo
from batch_rotate.graph.errors import GraphLayerError, ServiceError, SignInError
from batch_rotate.graph.pacer import parse_retry_after

RETRYABLE = frozenset({500, 502, 503, 504})  # and 429, which is a throttle, not a fault
GATED = frozenset({503, 504})  # with a Retry-After the service asks everyone to wait
MAX_THROTTLED = 100  # throttles are the service pacing us, not failures; this only stops a loop


class Action(Enum):
    RETRY = "retry"  # a transient fault: wait delay_s, counts an attempt
    THROTTLE = "throttle"  # 429: wait delay_s, everyone pauses, no attempt used
    FINAL = "final"  # hand the answer to the caller (success, a device's failure, or giving up)
    STOP = "stop"  # raise `error`: the run cannot go on


class Scope(Enum):
    ITEM = "item"  # an inner request of a batch: its failure is the device's
    BATCH = "batch"  # the `$batch` POST itself
    READ = "read"  # one of the run's own reads (a listing page): a failure stops the run


@dataclass(frozen=True, slots=True)
class Tries:
    """How often an answer was already retried: transient faults and throttles, counted apart."""

    attempts: int = 0
    throttles: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    pause_all: bool = False  # hold every sender on the budget for delay_s (the shared gate)
    reason: str = ""  # in words, for the report
    error: GraphLayerError | None = None  # set for STOP


@dataclass(frozen=True, slots=True)
class Limits:
    max_attempts: int = 8
    max_throttles: int = MAX_THROTTLED


_NO_INFO = GraphErrorInfo()


def decide(
    answer: int | BaseException,
    headers: Mapping[str, str],
    tries: Tries,
    *,
    scope: Scope,
    now_epoch: float,
    backoff_s: Callable[[int], float],
    limits: Limits = Limits(),
    info: GraphErrorInfo = _NO_INFO,
    what: str = "",
    passed: Collection[int] = (),
    permission: str = "",
) -> Decision:
    """What to do with one answer; `tries` counts retries before it, `backoff_s(n)` the nth wait.

    `what` names the request in messages; for reads, statuses in `passed` go to the caller and
    a 403 names `permission`.
    """
    if isinstance(answer, BaseException) or answer in RETRYABLE:
        return _transient(answer, headers, tries, now_epoch, backoff_s, limits, info, scope)
    if answer == 429:
        throttles = tries.throttles + 1
        if throttles >= limits.max_throttles:
            return Decision(
                Action.FINAL,
                reason=f"still throttled after {throttles} {'try' if throttles == 1 else 'tries'}; "
                "run again later",
            )
        wait = _wait(headers, throttles, now_epoch, backoff_s)
        return Decision(
            Action.THROTTLE, wait, True, f"throttled (429); retrying after {wait:.1f} s"
        )
    detail = _detail(answer, info)
    if scope is Scope.ITEM or answer < 400 or answer in passed:
        return Decision(Action.FINAL, reason="" if answer < 400 else detail)
    if answer == 401:
        return _stop(
            SignInError(
                f"Graph refused the access token for {what} even after renewing it ({detail}); "
                "check the app's credentials, its admin consent and --graph-url / --scope"
            )
        )
    if scope is Scope.BATCH and answer == 400:
        # A malformed batch is our bug, not the devices': stop loudly.
        return _stop(
            ServiceError(
                f"Graph rejected a $batch request as malformed ({detail}); request-id "
                f"{info.request_id or 'unknown'}. This is a batch-rotate bug: please report it."
            )
        )
    if scope is Scope.BATCH:
        return Decision(Action.FINAL, reason=f"batch refused: {detail}")
    if answer == 403:
        return _stop(
            SignInError(
                f"{what}: {detail}; grant the app {permission or 'the permission this read needs'} "
                "with admin consent"
            )
        )
    return _stop(ServiceError(f"{what}: {detail} (request-id {info.request_id or 'unknown'})"))


def _transient(
    answer: int | BaseException,
    headers: Mapping[str, str],
    tries: Tries,
    now_epoch: float,
    backoff_s: Callable[[int], float],
    limits: Limits,
    info: GraphErrorInfo,
    scope: Scope,
) -> Decision:
    attempts = tries.attempts + 1
    last = str(answer) if isinstance(answer, BaseException) else _detail(answer, info)
    if attempts >= limits.max_attempts:
        attempted = f"{attempts} attempt{'' if attempts == 1 else 's'}"  # closed layer: no present
        return Decision(Action.FINAL, reason=f"gave up after {attempted}; last: {last}")
    wait = _wait(headers, attempts, now_epoch, backoff_s)
    # A whole batch or one of the run's reads answered 503/504 + Retry-After: the service asks
    # everyone to wait. One inner request's 503 only delays that request: pausing every sender
    # for it cost most of the budget under a 2% fault mix.
    gated = answer in GATED and "retry-after" in headers and scope is not Scope.ITEM
    return Decision(Action.RETRY, wait, gated, f"{last}; retry {attempts} in {wait:.1f} s")


def _wait(
    headers: Mapping[str, str], n: int, now_epoch: float, backoff_s: Callable[[int], float]
) -> float:
    """The server's Retry-After, else capped exponential backoff with jitter."""
    retry_after = parse_retry_after(headers.get("retry-after"), now_epoch=now_epoch)
    return backoff_s(n) if retry_after is None else retry_after


def _detail(status: int, info: GraphErrorInfo) -> str:
    text = f"HTTP {status}"
    if info.code:
        text += f" {info.code}"
    if info.message:
        text += f": {info.message}"
    return text


def _stop(error: GraphLayerError) -> Decision:
    return Decision(Action.STOP, reason=str(error), error=error)
