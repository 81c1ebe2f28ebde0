"""Real-tenant behaviours (issue 10), each off by default: omissions, clock, stale results."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from batch_rotate.sim import SimTenant
from batch_rotate.sim.escrow import STALE_CODES, EscrowConfig

from .helpers import batch, call, rotate_requests, token

LIST = "/beta/deviceManagement/managedDevices"


def _listed(sim: SimTenant, tok: str, flt: str = "") -> list[dict[str, Any]]:
    url = f"{LIST}?$top=50" + (f"&$filter={quote(flt)}" if flt else "")
    out: list[dict[str, Any]] = []
    while url:
        status, _, body = call(sim, "GET", url, token=tok)
        assert status == 200
        out += body["value"]
        url = body.get("@odata.nextLink", "")
    return out


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_listings_omit_a_stable_share_that_direct_queries_still_find(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(devices=200, listing_omit_share=0.2, seed=4)
    tok = token(sim)
    everyone = {d["id"]: d for d in sim.inventory}
    listed = {d["id"] for d in _listed(sim, tok)}
    omitted = set(everyone) - listed
    assert 10 <= len(omitted) <= 70 and {d["id"] for d in _listed(sim, tok)} == listed
    windows = {d["id"] for d in _listed(sim, tok, "operatingSystem eq 'Windows'")}
    assert windows and not windows & omitted  # a broad filter is a listing too
    for device_id in sorted(omitted)[:5]:
        device = everyone[device_id]
        assert call(sim, "GET", f"{LIST}/{device_id}", token=tok)[0] == 200
        for prop in ("azureADDeviceId", "deviceName", "serialNumber"):
            value = device[prop].replace("'", "''")
            if value:
                found = _listed(sim, tok, f"{prop} eq '{value}'")
                assert device_id in {d["id"] for d in found}
    control = make_sim(devices=200, seed=4)
    assert len(_listed(control, token(control))) == 200


def test_or_filters_answer_the_first_match_only_unless_switched(
    make_sim: Callable[..., SimTenant],
) -> None:
    for first_only, expected in ((True, 1), (False, 2)):
        sim = make_sim(devices=50, or_filter_first_match_only=first_only)
        tok = token(sim)
        a, b = sim.inventory[1], sim.inventory[2]
        flt = (
            f"azureADDeviceId eq '{a['azureADDeviceId']}' or serialNumber eq '{b['serialNumber']}'"
        )
        found = _listed(sim, tok, flt)
        assert len(found) == expected and found[0]["id"] in (a["id"], b["id"])


def test_every_answer_carries_a_date_on_the_tenant_clock(
    make_sim: Callable[..., SimTenant],
) -> None:
    for offset_s in (0.0, -7200.0):
        sim = make_sim(devices=30, clock_offset_s=offset_s)
        expected = datetime.now(UTC) + timedelta(seconds=offset_s)
        tok = token(sim)
        answers = [
            call(sim, "GET", f"/{sim.config.tenant_id}/v2.0/.well-known/openid-configuration"),
            call(sim, "GET", LIST + "?$top=1", token=tok),
            call(sim, "GET", LIST),  # 401
            call(sim, "GET", "/_sim/metrics"),
            batch(sim, tok, rotate_requests(sim, 2)),
        ]
        for _, headers, _ in answers:
            assert abs(parsedate_to_datetime(headers["Date"]) - expected) < timedelta(minutes=5)
        error_date = _when(answers[2][2]["error"]["innerError"]["date"])
        assert abs(error_date - expected) < timedelta(minutes=5)
        device_id = rotate_requests(sim, 1)[0]["url"].split("/")[3]
        _, _, device = call(sim, "GET", f"{LIST}/{device_id}", token=tok)
        (result,) = device["deviceActionResults"]
        assert abs(_when(result["startDateTime"]) - expected) < timedelta(minutes=5)


def test_stale_failed_results_exist_before_any_request_and_a_rotate_replaces_them(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(devices=100, stale_action_results_share=0.3, time_scale=1.0)
    stale = [d for d in sim.inventory if d["deviceActionResults"]]
    assert 10 <= len(stale) <= 50
    now = datetime.now(UTC)
    for device in stale:
        (result,) = device["deviceActionResults"]
        assert result["actionState"] == "failed" and result["errorCode"] in STALE_CODES
        assert now - _when(result["startDateTime"]) > timedelta(days=59)
    target = next(d for d in stale if d["operatingSystem"] == "Windows")
    tok = token(sim)
    status, _, _ = call(sim, "POST", f"{LIST}/{target['id']}/rotateBitLockerKeys", token=tok)
    assert status == 204
    (result,) = sim.inventory.get(target["id"])["deviceActionResults"]  # type: ignore[index]
    assert result["actionState"] == "pending" and result["errorCode"] == 0
    assert now - _when(result["startDateTime"]) < timedelta(minutes=5)
    assert not any(d["deviceActionResults"] for d in make_sim(devices=100).inventory)


def test_device_fates_show_in_results_and_keys_as_the_truth_says(
    make_sim: Callable[..., SimTenant],
) -> None:
    fates = EscrowConfig(
        checkin_mean_s=0.001,
        never_share=0.3,
        fail_share=0.3,
        not_supported_share=0.0,
        ceiling_share=0.0,
        near_ceiling_share=0.0,
    )
    sim = make_sim(devices=60, escrow=fates, time_scale=1000.0, clock_offset_s=-120.0)
    tok = token(sim)
    requests = rotate_requests(sim, 20)
    assert all(r["status"] == 204 for r in batch(sim, tok, requests)[2]["responses"])
    time.sleep(0.01)  # check-ins fall due within microseconds of simulated time
    seen = set()
    for request in requests:
        device_id = request["url"].split("/")[3]
        _, _, device = call(sim, "GET", f"{LIST}/{device_id}", token=tok)
        (result,) = device["deviceActionResults"]
        keys_url = "/v1.0/informationProtection/bitlocker/recoveryKeys?$filter=" + quote(
            f"deviceId eq '{device['azureADDeviceId']}'"
        )
        keys = call(sim, "GET", keys_url, token=tok)[2]["value"]
        start = _when(result["startDateTime"])
        new_keys = [k for k in keys if _when(k["createdDateTime"]) >= start]
        truth = sim.verification_truth()[device_id]
        seen.add(truth)
        state = {"pending": "pending", "failed": "failed", "verified": "done"}[truth]
        assert result["actionState"] == state
        assert bool(new_keys) == (truth == "verified")
        assert (result["errorCode"] != 0) == (truth == "failed")
        assert len(keys) == sim.initial_key_count(device_id) + len(new_keys)
    assert seen == {"pending", "failed", "verified"}
