"""A request budget, apart from the pacer so the command line can parse one without asyncio."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_BUDGET = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|sec|s|min|m|h)?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """A request budget: `count` requests per `window_s` seconds (GRAPH_NOTES.md "Throttling")."""

    count: int
    window_s: float

    def __post_init__(self) -> None:
        if self.count <= 0 or not (0 < self.window_s < math.inf):
            raise ValueError(
                f"budget {self.count}/{self.window_s}s must have a positive count and window"
            )

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Read "200/20s", "10/1s", "600/1m", "5/500ms" (no unit means seconds, "10/s" one)."""
        match = _BUDGET.fullmatch(text)
        if match is None or (match.group(2) is None and not match.group(3)):
            raise ValueError(
                f"{text!r} is not a budget: write COUNT/WINDOW with a unit of ms, s, m or h, "
                "such as 200/20s, 10/1s or 600/1m"
            )
        count = int(match.group(1))
        window_s = float(match.group(2) or 1) * _UNITS[(match.group(3) or "s").lower()]
        if count <= 0 or window_s <= 0:
            raise ValueError(
                f"{text!r} is not a budget: COUNT/WINDOW needs a count and a window above zero, "
                "such as 200/20s"
            )
        return cls(count, window_s)

    @property
    def per_second(self) -> float:
        return self.count / self.window_s
