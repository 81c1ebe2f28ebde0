"""The campaign's gate: no lane writes before every lane has planned or failed; one question;
a lane waiting at the gate gives its place among the tenants at once to another."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from batch_rotate.campaign import Campaign, Gate, TenantPlan, exit_code_of
from batch_rotate.campaign_model import TenantEntry, TenantOutcome
from batch_rotate.runkit import ConfirmRequest


def entry(n: int) -> TenantEntry:
    return TenantEntry(f"t{n}.example", f"T{n}", n)


def request(count: int) -> ConfirmRequest:
    return ConfirmRequest("t", "https://graph", count, [])


def test_one_question_after_every_lane_arrived_even_with_one_place() -> None:
    asked: list[tuple[list[int], list[str]]] = []
    order: list[str] = []

    def ask(plans: list[TenantPlan], failed: list[TenantOutcome]) -> bool:
        asked.append(([p.request.count for p in plans], [f.entry.name for f in failed]))
        return True

    async def main() -> list[bool]:
        places = asyncio.Semaphore(1)  # one tenant at a time: the gate must not deadlock
        gate = Gate(4, ask, places, stop_on_failure=False)

        async def planner(n: int) -> bool:
            async with places:
                order.append(f"plan {n}")
                answer = await gate.confirm(entry(n))(request(n * 10))
                order.append(f"send {n}")
                return answer

        async def failer(n: int) -> bool:
            async with places:
                outcome = TenantOutcome(entry(n), "", "", preflight="no consent")
                gate.done(outcome)
                return False

        return list(await asyncio.gather(planner(1), failer(2), planner(3), planner(4)))

    answers = asyncio.run(main())
    assert answers == [True, False, True, True]
    assert asked == [([10, 30, 40], ["T2"])]
    first_send = min(i for i, step in enumerate(order) if step.startswith("send"))
    assert all(step.startswith("plan") for step in order[:first_send]) and first_send == 3


def test_all_or_nothing_answers_no_without_asking() -> None:
    def ask(_plans: list[TenantPlan], _failed: list[TenantOutcome]) -> bool:
        raise AssertionError("must not ask")

    async def main() -> bool:
        gate = Gate(2, ask, asyncio.Semaphore(2), stop_on_failure=True)
        waiting = asyncio.ensure_future(gate.confirm(entry(1))(request(5)))
        await asyncio.sleep(0)
        gate.done(TenantOutcome(entry(2), "", "", preflight="403"))
        return await waiting

    assert asyncio.run(main()) is False


def test_no_terminal_to_ask_on_stops_every_waiting_lane() -> None:
    def ask(_plans: list[TenantPlan], _failed: list[TenantOutcome]) -> bool:
        raise RuntimeError("no terminal")

    async def main() -> list[object]:
        gate = Gate(2, ask, asyncio.Semaphore(2), stop_on_failure=False)
        lanes = [gate.confirm(entry(n))(request(1)) for n in (1, 2)]
        return list(await asyncio.gather(*lanes, return_exceptions=True))

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


@pytest.mark.parametrize(
    ("codes", "preflights", "expected"),
    [
        ([0, 0], ["ok", "ok"], 0),
        ([0, 75], ["ok", "ok"], 75),
        ([0, 1], ["ok", "ok"], 1),
        ([0, 0], ["ok", "no consent"], 1),
    ],
)
def test_the_campaigns_exit_code(codes: list[int], preflights: list[str], expected: int) -> None:
    campaign = Campaign(Path("."), "rotate", "t.csv")
    campaign.outcomes = [
        TenantOutcome(entry(n), "", "", preflight=p, exit_code=c)
        for n, (c, p) in enumerate(zip(codes, preflights, strict=True))
    ]
    assert exit_code_of(campaign, {}, interrupted=False) == expected
    assert exit_code_of(campaign, {}, interrupted=True) == 130
