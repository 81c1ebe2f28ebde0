"""One of the run's own reads (not in a `$batch`): paced on its lane and retried by the same
policy as batch items, so a single GET never escapes the budget or the outage bound."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from batch_rotate.graph.batch import error_info
from batch_rotate.graph.client import GraphResponse
from batch_rotate.graph.errors import ServiceError, TransportError
from batch_rotate.graph.lane import Lane
from batch_rotate.graph.policy import Action, Limits, Scope, Tries, decide
from batch_rotate.graph.runner import READ_PERMISSION, Answer, Transport


async def get_with_retry(
    transport: Transport,
    lane: Lane,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    max_attempts: int = 8,
    version: str = "beta",
    passed: Collection[int] = (404,),
    permission: str = READ_PERMISSION,
    headers: Mapping[str, str] | None = None,
) -> GraphResponse:
    """One of the run's own reads, paced and retried by the same policy as batch items.

    Statuses in `passed` are returned for the caller to judge; other errors stop the run.
    """
    tries, limits, what = Tries(), Limits(max_attempts=max_attempts), f"GET {path}"
    while True:
        await lane.gate.wait()
        await lane.pacer.acquire(1)
        if lane.app_wide is not None:
            await lane.app_wide.acquire(1)
        response: GraphResponse | None = None
        try:
            response = await transport.request(
                "GET", path, params=params, version=version, headers=headers
            )
            answer = Answer(response.status, response.headers, response.body)
        except TransportError as exc:
            answer = Answer(exc)
        decision = decide(
            answer.answer,
            answer.headers,
            tries,
            scope=Scope.READ,
            now_epoch=lane.clock.epoch(),
            backoff_s=lane.backoff.delay,
            limits=limits,
            info=error_info(answer.body),
            what=what,
            passed=passed,
            permission=permission,
        )
        if decision.error is not None:
            raise decision.error
        if decision.action is Action.THROTTLE:
            tries = Tries(tries.attempts, tries.throttles + 1)
            lane.pacer.on_throttle()
            lane.gate.pause(decision.delay_s)
        elif decision.action is Action.RETRY:
            tries = Tries(tries.attempts + 1, tries.throttles)
            if decision.pause_all:
                lane.gate.pause(decision.delay_s)
            else:
                await lane.clock.sleep(decision.delay_s)
        elif response is None:
            raise TransportError(f"{what}: {decision.reason}")
        elif response.status >= 400 and response.status not in passed:
            raise ServiceError(f"{what}: {decision.reason} (request-id {response.request_id})")
        else:
            if response.status < 400:
                lane.pacer.on_success(1)
            return response
