"""Seeded faults: before processing nothing was accepted; lost answers were processed first."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import aiohttp
import pytest

from batch_rotate.sim import FaultConfig, SimTenant

from .helpers import batch, rotate_requests, token


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("inner_500", 500, "InternalServerError"),
        ("inner_502", 502, "BadGateway"),
        ("inner_503", 503, "ServiceUnavailable"),
        ("inner_503_retry_after", 503, "ServiceUnavailable"),
        ("inner_504", 504, "GatewayTimeout"),
        ("inner_429_no_retry_after", 429, "TooManyRequests"),
    ],
)
def test_inner_faults(
    make_sim: Callable[..., SimTenant], fault: str, status: int, code: str
) -> None:
    sim = make_sim(faults=FaultConfig(**{fault: 1.0}))
    tok = token(sim)
    outer, _, body = batch(sim, tok, rotate_requests(sim, 3))
    assert outer == 200 and len(body["responses"]) == 3
    for answer in body["responses"]:
        assert answer["status"] == status and answer["body"]["error"]["code"] == code
        assert ("Retry-After" in answer["headers"]) == (fault == "inner_503_retry_after")
    metrics = sim.metrics()
    assert metrics["faults_injected"] == {fault: 3} and metrics["rotate_calls"] == 0


@pytest.mark.parametrize(
    ("fault", "status"), [("batch_429", 429), ("batch_503", 503), ("batch_504", 504)]
)
def test_batch_faults_happen_before_processing(
    make_sim: Callable[..., SimTenant], fault: str, status: int
) -> None:
    sim = make_sim(faults=FaultConfig(**{fault: 1.0}))
    tok = token(sim)
    got, headers, body = batch(sim, tok, rotate_requests(sim, 5))
    assert got == status and body["error"]["innerError"]["request-id"]
    assert ("Retry-After" in headers) == (status != 504)
    metrics = sim.metrics()
    assert metrics["rotate_calls"] == 0 and metrics["inner_requests"] == 0
    assert metrics["throttled_429_outer"] == (1 if status == 429 else 0)
    if status != 504:
        batch(sim, tok, rotate_requests(sim, 5))  # at once, before the Retry-After ran out
        assert sim.metrics()["early_retries"] == 0  # refused again at batch level: not counted


def test_timeout_holds_the_answer_and_processes_nothing(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(faults=FaultConfig(timeout=1.0, timeout_s=0.5))
    tok = token(sim)
    started = time.monotonic()
    status, _, body = batch(sim, tok, rotate_requests(sim, 2))  # a client would have given up
    assert time.monotonic() - started >= 0.5
    assert status == 504 and body["error"]["code"] == "GatewayTimeout"
    assert sim.metrics()["rotate_calls"] == 0 and sim.metrics()["faults_injected"] == {"timeout": 1}


def test_connection_reset(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(faults=FaultConfig(connection_reset=1.0))
    tok = token(sim)
    with pytest.raises(aiohttp.ClientError):
        batch(sim, tok, rotate_requests(sim, 3))
    assert sim.metrics()["rotate_calls"] == 0


@pytest.mark.parametrize("fault", ["truncated_body", "non_json_body"])
def test_unreadable_bodies(make_sim: Callable[..., SimTenant], fault: str) -> None:
    sim = make_sim(faults=FaultConfig(**{fault: 1.0}))
    tok = token(sim)
    for _ in range(4):
        status, _, body = batch(sim, tok, rotate_requests(sim, 3))
        assert status in (200, 502) and isinstance(body, str)  # not JSON
    assert sim.metrics()["rotate_calls"] == 0


def test_omitted_ids_were_not_processed(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(faults=FaultConfig(omit_ids=0.5), seed=3)
    tok = token(sim)
    requests = rotate_requests(sim, 20)
    _, _, body = batch(sim, tok, requests)
    answered = {r["id"] for r in body["responses"]}
    assert 0 < len(answered) < 20
    metrics = sim.metrics()
    assert metrics["rotate_accepted"] == len(answered)
    assert metrics["faults_injected"]["omit_ids"] == 20 - len(answered)
    device_of = {r["id"]: r["url"].split("/")[3] for r in requests}
    assert set(metrics["accepted_by_device"]) == {device_of[i] for i in answered}


def test_faults_replay_for_a_seed(make_sim: Callable[..., SimTenant]) -> None:
    def run(seed: int) -> tuple[list[tuple[str, int]], dict[str, int]]:
        sim = make_sim(faults=FaultConfig.mix(rate=0.2, timeout_s=0.05), seed=seed)
        tok = token(sim)
        seen = []
        for _ in range(5):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, _, body = batch(sim, tok, rotate_requests(sim, 5))
                answers = body.get("responses", []) if isinstance(body, dict) else []
                seen += [(str(status), 0), *sorted((r["id"], r["status"]) for r in answers)]
        return seen, sim.metrics()["faults_injected"]

    first, fired = run(5)
    assert sum(fired.values()) > 0 and len(fired) > 1  # the mix really hit
    assert run(5) == (first, fired)
    assert run(6) != (first, fired)  # the control: the seed drives the faults


@pytest.mark.parametrize("kind", ["timeout", "reset", "5xx", "truncated", "omit_ids"])
def test_answers_lost_after_processing_were_processed(
    make_sim: Callable[..., SimTenant], kind: str
) -> None:
    fault = f"lost_after_processing_{kind}"
    sim = make_sim(faults=FaultConfig(**{fault: 1.0}, timeout_s=0.2))
    tok = token(sim)
    requests = rotate_requests(sim, 5)
    devices = {r["url"].split("/")[3] for r in requests}
    for attempt in (1, 2):  # a blind re-send rotates every device twice
        status, body = 0, None
        with contextlib.suppress(aiohttp.ClientError):
            status, _, body = batch(sim, tok, requests)
        answers = body.get("responses", []) if isinstance(body, dict) else []
        answered = {r["id"] for r in answers}
        if kind == "timeout":
            assert status == 504
        elif kind == "reset":
            assert status == 0
        elif kind == "5xx":
            assert status in (502, 503) and body["error"]["code"]
        elif kind == "truncated":
            assert status == 200 and isinstance(body, str)
        else:
            assert status == 200 and 0 < len(answered) < 5
        assert len(answered) < 5
        metrics = sim.metrics()
        assert metrics["accepted_by_device"] == {d: attempt for d in devices}
        assert metrics["faults_injected"] == {fault: attempt}
        assert metrics["answers_lost_after_processing"] == attempt
        assert 0 < metrics["rotations_answer_lost"] <= 5 * attempt


def test_the_fault_mix_loses_answers_after_processing_only_when_asked() -> None:
    assert FaultConfig.mix().lost_after_processing_reset == 0.0
    assert FaultConfig.mix(0.1, lost_after_processing=True).lost_after_processing_reset == 0.1
