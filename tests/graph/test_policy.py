"""The retry policy alone: one answer in, one decision out (no clock, no I/O)."""

from __future__ import annotations

import pytest

from batch_rotate.graph.batch import GraphErrorInfo
from batch_rotate.graph.errors import ServiceError, SignInError, TransportError
from batch_rotate.graph.policy import Action, Decision, Limits, Scope, Tries, decide

NOW = 1_800_000_000.0


_NO_TRIES = Tries()


def _decide(
    answer: int | BaseException,
    headers: dict[str, str] | None = None,
    tries: Tries = _NO_TRIES,
    scope: Scope = Scope.ITEM,
    **options: object,
) -> Decision:
    return decide(
        answer,
        headers or {},
        tries,
        scope=scope,
        now_epoch=NOW,
        backoff_s=lambda n: 0.5 * n,
        limits=Limits(max_attempts=3, max_throttles=5),
        what="GET things",
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("scope", list(Scope))
def test_429_throttles_without_using_an_attempt_and_pauses_everyone(scope: Scope) -> None:
    decision = _decide(429, {"retry-after": "2.5"}, Tries(attempts=2), scope)
    assert (decision.action, decision.delay_s, decision.pause_all) == (Action.THROTTLE, 2.5, True)
    assert _decide(429, tries=Tries(throttles=1), scope=scope).delay_s == 1.0  # backoff(2)
    assert _decide(429, tries=Tries(throttles=4), scope=scope).action is Action.FINAL


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("status", [503, 504])
def test_503_504_with_retry_after_pause_everyone_without_it_back_off(
    scope: Scope, status: int
) -> None:
    gated = _decide(status, {"retry-after": "4"}, scope=scope)
    # the batch or a read: everyone waits; one inner request: only that one waits
    everyone = scope is not Scope.ITEM
    assert (gated.action, gated.delay_s, gated.pause_all) == (Action.RETRY, 4.0, everyone)
    alone = _decide(status, scope=scope)
    assert (alone.action, alone.delay_s, alone.pause_all) == (Action.RETRY, 0.5, False)


def test_faults_count_attempts_then_give_up_with_the_last_reason() -> None:
    assert _decide(TransportError("reset"), tries=Tries(attempts=1)).action is Action.RETRY
    last = _decide(TransportError("reset"), tries=Tries(attempts=2, throttles=4))
    assert (last.action, last.reason) == (Action.FINAL, "gave up after 3 attempts; last: reset")
    info = GraphErrorInfo("ServiceUnavailable", "busy")
    assert _decide(500, tries=Tries(attempts=2), info=info).reason.endswith(
        "HTTP 500 ServiceUnavailable: busy"
    )


@pytest.mark.parametrize("status", [200, 204, 400, 401, 403, 404, 409])
def test_an_item_answer_is_final_data(status: int) -> None:
    assert _decide(status, scope=Scope.ITEM).action is Action.FINAL


def test_the_batch_itself_stops_on_401_and_400_and_refuses_others_finally() -> None:
    assert isinstance(_decide(401, scope=Scope.BATCH).error, SignInError)
    assert isinstance(_decide(400, scope=Scope.BATCH).error, ServiceError)
    refused = _decide(403, scope=Scope.BATCH)
    assert (refused.action, refused.reason) == (Action.FINAL, "batch refused: HTTP 403")


def test_a_read_stops_unless_the_status_is_passed() -> None:
    denied = _decide(403, scope=Scope.READ, permission="Things.Read.All")
    assert isinstance(denied.error, SignInError)
    assert "grant the app Things.Read.All" in str(denied.error)
    assert _decide(403, scope=Scope.READ, passed=(403,)).action is Action.FINAL
    assert isinstance(_decide(404, scope=Scope.READ).error, ServiceError)
    assert isinstance(_decide(401, scope=Scope.READ).error, SignInError)
