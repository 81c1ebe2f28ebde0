"""Managed devices listing and get, the rotate action, and `$batch` shape rules."""

from __future__ import annotations

from collections.abc import Callable

from batch_rotate.sim import SimTenant

from .helpers import batch, call, rotate_requests, token

LIST = "/beta/deviceManagement/managedDevices"


def _device_path(device_id: str, action: str = "") -> str:
    return f"/beta/deviceManagement/managedDevices/{device_id}{action}"


def test_listing_pages_with_select_and_ignores_unknown_filters(
    make_sim: Callable[..., SimTenant],
) -> None:
    sim = make_sim(devices=25, page_size=10)
    tok = token(sim)
    status, _, body = call(
        sim, "GET", f"{LIST}?$select=deviceName,serialNumber&$filter=jailBroken eq 'x'", token=tok
    )
    assert status == 200 and len(body["value"]) == 10
    assert body["@odata.context"].endswith("$metadata#deviceManagement/managedDevices")
    assert set(body["value"][0]) == {"id", "deviceName", "serialNumber"}
    assert (
        body["@odata.nextLink"].startswith(f"{sim.base_url}/beta/")
        and "$skiptoken=" in (body["@odata.nextLink"])
    )
    seen = [d["id"] for d in body["value"]]
    while "@odata.nextLink" in body:
        status, _, body = call(sim, "GET", body["@odata.nextLink"], token=tok)
        assert status == 200 and set(body["value"][0]) == {"id", "deviceName", "serialNumber"}
        seen += [d["id"] for d in body["value"]]
    assert seen == [d["id"] for d in sim.inventory]
    _, _, body = call(sim, "GET", f"{LIST}?$top=4000", token=tok)
    assert len(body["value"]) == 10  # $top is capped at the page size
    assert call(sim, "GET", f"{LIST}?$top=ten", token=tok)[0] == 400


def test_supported_filters(sim: SimTenant) -> None:
    tok = token(sim)
    _, _, body = call(sim, "GET", f"{LIST}?$filter=operatingSystem eq 'Windows'", token=tok)
    windows = [d["id"] for d in sim.inventory if d["operatingSystem"] == "Windows"]
    assert [d["id"] for d in body["value"]] == windows
    target = sim.inventory[7]
    for prop in ("deviceName", "serialNumber", "azureADDeviceId"):
        _, _, body = call(sim, "GET", f"{LIST}?$filter={prop} eq '{target[prop]}'", token=tok)
        assert target["id"] in [d["id"] for d in body["value"]]
        assert all(d[prop] == target[prop] for d in body["value"])
    _, _, body = call(sim, "GET", f"{LIST}?$filter=deviceName eq 'NO-SUCH-PC'", token=tok)
    assert body["value"] == [] and "@odata.nextLink" not in body


def test_get_select_and_404(sim: SimTenant) -> None:
    tok = token(sim)
    device = sim.inventory[3]
    status, headers, body = call(
        sim, "GET", _device_path(device["id"]), token=tok, headers={"client-request-id": "c-1"}
    )
    assert status == 200 and body == device and body["deviceActionResults"] == []
    assert headers["client-request-id"] == "c-1" and headers["request-id"]
    _, _, body = call(sim, "GET", _device_path(device["id"]) + "?$select=osVersion", token=tok)
    assert body == {"id": device["id"], "osVersion": device["osVersion"]}
    status, _, body = call(
        sim, "GET", _device_path("6f1c0b4e-9a51-4c3e-8f7d-2b5e0d9c4a11"), token=tok
    )
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"


def test_rotate_answers_and_action_results(sim: SimTenant) -> None:
    tok = token(sim)
    device = next(d for d in sim.inventory if d["operatingSystem"] == "Windows")
    rotate = _device_path(device["id"], "/rotateBitLockerKeys")
    status, headers, body = call(sim, "POST", rotate, token=tok)
    assert status == 204 and body is None and headers["request-id"]
    assert call(sim, "POST", rotate, token=tok)[0] == 204  # accepted twice: a duplicate
    _, _, body = call(sim, "GET", _device_path(device["id"]), token=tok)
    (result,) = body["deviceActionResults"]
    assert result["actionName"] == "rotateBitLockerKeys" and result["actionState"] == "pending"
    assert result["startDateTime"] <= result["lastUpdatedDateTime"]
    status, _, body = call(sim, "POST", _device_path("nope", "/rotateBitLockerKeys"), token=tok)
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    mac = next(d for d in sim.inventory if d["operatingSystem"] == "macOS")
    status, _, body = call(sim, "POST", _device_path(mac["id"], "/rotateBitLockerKeys"), token=tok)
    assert status == 400 and "not supported on this platform" in body["error"]["message"]
    status, _, body = call(sim, "POST", rotate.replace("/beta/", "/v1.0/"), token=tok)
    assert status == 400 and "rotateBitLockerKeys" in body["error"]["message"]  # beta only
    metrics = sim.metrics()
    assert metrics["rotate_calls"] == 5 and metrics["rotate_accepted"] == 2
    assert metrics["devices_rotated"] == 1 and metrics["duplicate_rotations"] == 1
    assert metrics["accepted_by_device"] == {device["id"]: 2}
    assert metrics["writes"] == 5 and metrics["reads"] == 1 and metrics["graph_requests"] == 6


def test_batch_shape_rules(sim: SimTenant) -> None:
    tok = token(sim)
    status, _, body = batch(sim, tok, rotate_requests(sim, 21))
    assert status == 400 and body["error"]["code"] == "BadRequest"
    duplicated = rotate_requests(sim, 2)
    duplicated[1]["id"] = "1"
    assert batch(sim, tok, duplicated)[0] == 400
    missing = rotate_requests(sim, 2)
    del missing[1]["url"]
    assert batch(sim, tok, missing)[0] == 400
    status, _, _ = call(sim, "POST", "/beta/$batch", token=tok, data=b"{not json")
    assert status == 400
    assert sim.metrics()["rotate_calls"] == 0  # a malformed batch processes nothing


def test_batch_answers_shuffled_by_id_and_checks_inner_content_type(sim: SimTenant) -> None:
    tok = token(sim)
    requests = rotate_requests(sim, 20)
    del requests[4]["headers"]
    status, headers, body = batch(sim, tok, requests)
    assert status == 200 and headers["request-id"]
    answers = {r["id"]: r for r in body["responses"]}
    assert sorted(answers, key=int) == [str(i) for i in range(1, 21)]
    assert [r["id"] for r in body["responses"]] != [str(i) for i in range(1, 21)]
    assert (
        answers["5"]["status"] == 400 and "Content-Type" in answers["5"]["body"]["error"]["message"]
    )
    ok = [r for i, r in answers.items() if i != "5"]
    assert all(r["status"] == 204 and "body" not in r and "headers" in r for r in ok)
    metrics = sim.metrics()
    assert metrics["batch_requests"] == 1 and metrics["inner_requests"] == 19
    assert metrics["rotate_accepted"] == 19 and metrics["graph_requests"] == 1


def test_batch_reads_and_v1_batches(sim: SimTenant) -> None:
    tok = token(sim)
    device = sim.inventory[0]
    reads = [
        {
            "id": "a",
            "method": "GET",
            "url": f"/deviceManagement/managedDevices/{device['id']}?$select=deviceName",
        },
        {"id": "b", "method": "GET", "url": "/deviceManagement/managedDevices/missing"},
    ]
    _, _, body = batch(sim, tok, reads, version="v1.0")
    answers = {r["id"]: r for r in body["responses"]}
    assert answers["a"]["status"] == 200
    assert answers["a"]["body"] == {"id": device["id"], "deviceName": device["deviceName"]}
    assert answers["b"]["status"] == 404
    _, _, body = batch(sim, tok, rotate_requests(sim, 1), version="v1.0")
    assert body["responses"][0]["status"] == 400  # rotate is beta only
    assert sim.metrics()["reads"] == 2


def test_metrics_endpoint_and_reset(sim: SimTenant) -> None:
    tok = token(sim)
    batch(sim, tok, rotate_requests(sim, 3))
    status, _, body = call(sim, "GET", "/_sim/metrics")
    assert status == 200 and body == sim.metrics()
    assert body["peak_concurrency"] >= 1 and body["write_windows"] == [3]
    assert set(body) >= {
        "token_requests", "graph_requests", "inner_requests", "batch_requests", "rotate_calls",
        "rotate_accepted", "devices_rotated", "duplicate_rotations", "accepted_by_device",
        "throttled_429_inner", "throttled_429_outer", "early_retries", "faults_injected",
        "peak_concurrency", "write_windows", "reads", "writes",
    }  # fmt: skip
    assert call(sim, "POST", "/_sim/reset")[0] == 200
    assert sim.metrics()["rotate_accepted"] == 0 and sim.metrics()["write_windows"] == []
    sim.reset_metrics()
    assert sim.metrics()["token_requests"] == 0
