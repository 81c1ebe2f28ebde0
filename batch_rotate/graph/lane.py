"""A lane: the pacing parts every sender on one budget shares (pacer, gate, backoff, clock)."""

from __future__ import annotations

import random
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
