"""A scripted `$batch` transport on a fake clock, for driving the real runner."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batch_rotate.graph.batch import BatchItem, InnerResponse
from batch_rotate.graph.client import BatchResult, GraphResponse
from batch_rotate.graph.pacer import Budget
from batch_rotate.graph.runner import Transport
from batch_rotate.graph.session import GraphSession, Pacing
from tests.graph.fakeclock import FakeClock

ROOMY = Budget(100_000, 1.0)  # no pacing wait worth noticing


def session_on(transport: Transport, clock: FakeClock, **pacing: Any) -> GraphSession:
    """A session through `transport` on a fake clock, with roomy budgets unless told otherwise."""
    given = {"read_budget": ROOMY, "write_budget": ROOMY, "seed": 1, **pacing}
    return GraphSession.paced(transport, Pacing(**given), clock=clock)


# Per inner request: (batch call number, item, times this item was sent before) -> its answer,
# or None to leave it out of the batch answer.
InnerScript = Callable[[int, BatchItem, int], InnerResponse | None]
# Per batch call: a non-200 outer answer, an exception to raise, or None for a normal 200.
OuterScript = Callable[[int], GraphResponse | Exception | None]


def response(
    status: int, headers: Mapping[str, str] | None = None, body: Any = None
) -> GraphResponse:
    return GraphResponse(status, dict(headers or {}), body, f"rid-{status}", "crid")


@dataclass
class ScriptedGraph:
    """Answers batches after `rtt_s` of virtual time, as the scripts say; records every send."""

    clock: FakeClock
    inner: InnerScript = lambda _call, _item, _sent: InnerResponse(204)
    outer: OuterScript = lambda _call: None
    rtt_s: float = 1.0
    gets: list[GraphResponse | Exception] = field(default_factory=list)
    sends: list[tuple[float, list[int]]] = field(default_factory=list)
    get_times: list[float] = field(default_factory=list)
    get_headers: list[dict[str, str]] = field(default_factory=list)  # extra headers per GET
    get_paths: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, params
    sent: Counter[int] = field(default_factory=Counter)

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        call = len(self.sends)
        self.sends.append((self.clock.now(), [item.key for item in items]))
        await self.clock.sleep(self.rtt_s)
        before = {item.key: self.sent[item.key] for item in items}
        self.sent.update(item.key for item in items)
        outer = self.outer(call)
        if isinstance(outer, Exception):
            raise outer
        if outer is not None:
            return BatchResult(outer=outer, missing=list(items))
        answers = {item.key: self.inner(call, item, before[item.key]) for item in items}
        return BatchResult(
            outer=response(200),
            responses={key: answer for key, answer in answers.items() if answer is not None},
            missing=[item for item in items if answers[item.key] is None],
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str = "beta",
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        self.get_times.append(self.clock.now())
        self.get_headers.append(dict(headers or {}))
        self.get_paths.append((path, dict(params or {})))
        await self.clock.sleep(self.rtt_s)
        answer = self.gets.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def times_of(self, key: int) -> list[float]:
        return [when for when, keys in self.sends if key in keys]
