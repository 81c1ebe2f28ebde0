"""Intune write/any windows per app and tenant: every request counts, throttled ones included."""

from __future__ import annotations

import time
from collections.abc import Callable

from batch_rotate.sim import SimConfig, SimTenant
from batch_rotate.sim.metrics import Metrics
from batch_rotate.sim.throttling import Budget

from .helpers import batch, call, rotate_requests, token


def test_inner_throttling_at_the_limit_with_scaled_retry_after(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(time_scale=4.0, app_write_limit=10)
    tok = token(sim)
    _, _, body = batch(sim, tok, rotate_requests(sim, 20))
    statuses = sorted(r["status"] for r in body["responses"])
    assert statuses.count(204) == 10 and statuses.count(429) == 10
    throttled = next(r for r in body["responses"] if r["status"] == 429)
    retry_after = throttled["headers"]["Retry-After"]
    assert 0 < float(retry_after) <= 5.0 and len(retry_after.split(".")[1]) == 3
    assert throttled["body"]["error"]["code"] == "TooManyRequests"
    metrics = sim.metrics()
    assert metrics["throttled_429_inner"] == 10 and metrics["write_windows"] == [20]
    assert metrics["accepted_windows"] == [10]


def test_unscaled_retry_after_is_whole_seconds(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(app_write_limit=1)
    tok = token(sim)
    _, _, body = batch(sim, tok, rotate_requests(sim, 2))
    (throttled,) = [r for r in body["responses"] if r["status"] == 429]
    assert throttled["headers"]["Retry-After"].isdigit()
    assert 1 <= int(throttled["headers"]["Retry-After"]) <= 20


def test_throttled_requests_still_use_budget(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(app_write_limit=10, app_any_limit=15)
    tok = token(sim)
    _, _, body = batch(sim, tok, rotate_requests(sim, 20))
    assert sum(r["status"] == 204 for r in body["responses"]) == 10
    # 20 writes counted (10 refused) exceed the "any" limit of 15: a read is refused too.
    status, headers, err = call(
        sim, "GET", "/beta/deviceManagement/managedDevices?$top=1", token=tok
    )
    assert status == 429 and err["error"]["code"] == "TooManyRequests" and headers["Retry-After"]


def test_window_reopens_and_early_retries_are_counted(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(time_scale=20.0, app_write_limit=5)  # 1 s windows
    tok = token(sim)
    requests = rotate_requests(sim, 10)
    _, _, body = batch(sim, tok, requests)
    throttled = [r for r in body["responses"] if r["status"] == 429]
    assert len(throttled) == 5
    again = [r for r in requests if r["id"] in {t["id"] for t in throttled}]
    elapsed = time.monotonic()
    _, _, early = batch(sim, tok, again)  # at once: early, and refused again
    assert all(r["status"] == 429 for r in early["responses"])
    assert sim.metrics()["early_retries"] == 5
    wait = max(float(r["headers"]["Retry-After"]) for r in early["responses"])
    time.sleep(max(0.0, wait - (time.monotonic() - elapsed)) + 0.05)
    _, _, late = batch(sim, tok, again)
    assert all(r["status"] == 204 for r in late["responses"])
    metrics = sim.metrics()
    assert metrics["early_retries"] == 5 and metrics["devices_rotated"] == 10
    assert metrics["duplicate_rotations"] == 0 and sum(metrics["write_windows"]) == 20


def test_neighbour_takes_its_share_of_the_tenant_budget(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(tenant_write_limit=20, app_write_limit=20, neighbour_write_share=0.5)
    tok = token(sim)
    _, _, body = batch(sim, tok, rotate_requests(sim, 20))
    assert sum(r["status"] == 204 for r in body["responses"]) == 10


def test_throttling_can_be_switched_off(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(app_write_limit=1, throttling=False)
    tok = token(sim)
    _, _, body = batch(sim, tok, rotate_requests(sim, 20))
    assert all(r["status"] == 204 for r in body["responses"])
    assert sim.metrics()["write_windows"] == [20]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _admitted(budget: Budget, clock: _Clock, times: list[float]) -> list[float | None]:
    waits = []
    for when in times:
        clock.now = when
        waits.append(budget.take("app", write=True)[1])
    return waits


def test_sliding_window_refuses_a_burst_that_fixed_windows_let_through() -> None:
    burst = [9.5, 9.6, 9.7, 10.0, 10.1, 10.2]  # across the fixed boundary at 10 s
    for mode, refused in (("fixed", 0), ("sliding", 3)):
        clock = _Clock()
        budget = Budget(SimConfig(app_write_limit=3, window_s=10.0, window_mode=mode), clock)
        waits = _admitted(budget, clock, burst)
        assert sum(w is not None for w in waits) == refused


def test_sliding_retry_after_is_when_one_more_fits() -> None:
    clock = _Clock()
    budget = Budget(SimConfig(app_write_limit=3, window_s=10.0, window_mode="sliding"), clock)
    waits = _admitted(budget, clock, [0.0, 1.0, 2.0, 3.0])
    assert waits[:3] == [None] * 3 and waits[3] == 8.0  # the 1.0 request leaves at 11.0
    assert _admitted(budget, clock, [10.9]) != [None]  # too early: refused, and counted
    assert _admitted(budget, clock, [13.0]) == [None]  # only 10.9 is left in the window: room


def test_metrics_report_the_busiest_window_of_writes(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(app_write_limit=5, window_mode="sliding")
    tok = token(sim)
    _, _, body = batch(sim, tok, rotate_requests(sim, 10))
    assert sum(r["status"] == 204 for r in body["responses"]) == 5
    metrics = sim.metrics()
    assert metrics["max_writes_any_window"] == 10
    assert metrics["max_admitted_writes_any_window"] == 5


def test_take_reports_the_moment_it_counted_so_metrics_agree_with_the_limiter() -> None:
    """The admitted-writes metric read the clock again after `take`: a write the sliding limiter
    admitted just as an old one left was counted by the metric beside that old one (read a hair
    later), and the bench printed 201 admitted writes against a limit of 200."""
    # start; then (take, a later reading) per write: the first write's later reading lags
    readings = iter([0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 2.0, 10.0, 10.0])
    budget = Budget(
        SimConfig(app_write_limit=3, window_s=10.0, window_mode="sliding"), lambda: next(readings)
    )
    metrics = Metrics(budget.window_real_s)
    for _ in range(4):
        window, wait, at = budget.take("app", write=True)
        next(readings)  # what the old code read for the metric instead of `at`
        metrics.write(window, at, admitted=wait is None)
        assert wait is None  # the fourth fits: the first left the window at 10.0
    assert metrics.snapshot()["max_admitted_writes_any_window"] == 3
