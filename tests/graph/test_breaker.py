"""The outage breaker: opens on sustained failure or refused connections, never on slowness."""

from __future__ import annotations

import pytest

from batch_rotate.graph.breaker import Breaker, GraphUnreachable

from .fakeclock import FakeClock


def test_opens_after_failures_with_no_answer_for_the_bound() -> None:
    clock = FakeClock()
    breaker = Breaker(clock=clock, outage_s=60.0)
    breaker.failed("timed out", refused=False)
    clock.advance(59.0)
    breaker.failed("timed out", refused=False)
    breaker.check()  # still closed: 59 s of failures
    clock.advance(2.0)
    breaker.failed("timed out", refused=False)
    # the streak's start, on the breaker's (here the fake) clock: 1_800_000_000 s since 1970
    since = r"Graph unreachable since 2027-01-15T08:00:00Z \(last: timed out\)"
    with pytest.raises(GraphUnreachable, match=since):
        breaker.check()


def test_an_answer_resets_the_streak_and_slowness_is_not_an_outage() -> None:
    clock = FakeClock()
    breaker = Breaker(clock=clock, outage_s=60.0)
    breaker.failed("HTTP 503", refused=False)
    clock.advance(50.0)
    breaker.succeeded()
    clock.advance(500.0)
    breaker.failed("HTTP 503", refused=False)
    breaker.check()
    assert not breaker.open


def test_refused_connections_in_a_row_open_it_at_once() -> None:
    breaker = Breaker(clock=FakeClock(), outage_s=3600.0, max_refused=3)
    breaker.failed("refused", refused=True)
    breaker.failed("reset", refused=False)  # breaks the run of refusals
    breaker.failed("refused", refused=True)
    breaker.failed("refused", refused=True)
    assert not breaker.open
    breaker.failed("refused", refused=True)
    assert breaker.open
