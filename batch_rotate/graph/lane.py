"""A lane: the pacing parts every sender on one budget shares (pacer, gate, backoff, clock)."""

from __future__ import annotations

import asyncio
import random
import weakref
from dataclasses import dataclass

from batch_rotate.graph.batch import MAX_BATCH
from batch_rotate.graph.pacer import AdaptivePacer, Backoff, Budget, Clock, RetryGate


@dataclass(frozen=True, slots=True)
class Lane:
    """One budget's shared state: a 429 anywhere pauses the whole lane through its gate."""

    budget: Budget
    pacer: AdaptivePacer
    gate: RetryGate
    backoff: Backoff
    clock: Clock
    # A limit per app across every tenant (audit reads: 122 / 10 s), shared by every tenant's
    # lane of a campaign in this event loop; None where only the per-tenant budget applies.
    app_wide: AdaptivePacer | None = None


def lane(
    budget: Budget, *, clock: Clock, retry_delay_s: float = 1.0, seed: int | None = None
) -> Lane:
    """A lane at `budget`; a batch already waiting for tokens also waits out a 429 pause."""
    gate = RetryGate(clock)
    # One batch of burst, no more on top of the full rate; the pacer's sliding log keeps every
    # window within the budget (issue 11).
    return Lane(
        budget=budget,
        pacer=AdaptivePacer(budget, clock=clock, burst=MAX_BATCH, gate=gate),
        gate=gate,
        backoff=Backoff(base_s=retry_delay_s, rng=random.Random(seed)),
        clock=clock,
    )


# (app, budget) -> the one pacer every session of that app shares, per event loop (a pacer's
# waits belong to the loop it was made in; a later command's loop gets its own).
_APP_WIDE: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, Budget], AdaptivePacer]
] = weakref.WeakKeyDictionary()


def app_wide(app: str, budget: Budget, *, clock: Clock) -> AdaptivePacer:
    """The pacer for a per-app limit that spans tenants (GRAPH_NOTES "Many tenants")."""
    pacers = _APP_WIDE.setdefault(asyncio.get_running_loop(), {})
    key = (app, budget)
    if key not in pacers:
        pacers[key] = AdaptivePacer(budget, clock=clock, burst=1)
    return pacers[key]
