"""`make bench`'s --check-recent-rotations figure measures what it says: one extra read per
eligible device, and the check holds back exactly the devices rotated in the portal."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_rotate.sim.bench_recent import measure

pytestmark = pytest.mark.slow


def test_the_check_costs_one_read_per_device_and_holds_back_the_portal_rotations(
    tmp_path: Path,
) -> None:
    figures = measure(200, tmp_path)
    assert figures["extra_reads"] == 200
    assert figures["extra_batch_requests"] == 10  # $batch of 20
    assert figures["portal_rotated"] == 2
    assert figures["with"]["held_back"] == 2
    assert figures["without"]["held_back"] == 0
    assert figures["without"]["exit"] == figures["with"]["exit"] == 0
