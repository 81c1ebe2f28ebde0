"""What a benchmark figure was measured on: the CPU model, and how fast it ran at that moment.

A shared 2-core VM's speed drifts (the same 1,000,000-row plan took 55 and 79 CPU-seconds an hour
apart on one machine, issue 23): `reference_s` times a fixed pure-Python workload so a figure can
be read against the speed the machine had when it was taken.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU, so a figure can be compared with another machine's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def reference_s() -> float:
    """Seconds of one core for a fixed workload (strings, dicts, arithmetic: what the client
    spends its time on), the best of three; about 0.3 s on a quiet 2-core AMD EPYC VM."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        seen: dict[str, int] = {}
        for n in range(1_000_000):
            key = f"{n % 5000:08x}-row"
            seen[key] = seen.get(key, 0) + n * 3 % 7
        best = min(best, time.process_time() - started)
    return best
