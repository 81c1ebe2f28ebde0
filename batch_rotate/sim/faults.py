"""Seeded fault injection: one RNG, one roll per fault kind per request, every hit counted."""

from __future__ import annotations

import random
from collections import defaultdict

from batch_rotate.sim.config import FaultConfig


class Faults:
    """Rolls faults in a fixed order so a seed replays the same run against the same client."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.injected: dict[str, int] = defaultdict(int)

    def roll(self, name: str) -> bool:
        """True (and counted) when fault `name` hits this request."""
        probability = float(getattr(self.config, name))
        if probability and self.rng.random() < probability:
            self.injected[name] += 1
            return True
        return False
