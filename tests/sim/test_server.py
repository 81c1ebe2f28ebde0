"""The simulated tenant speaks Graph's and the identity platform's HTTP faithfully enough."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msal
import pytest

from batch_rotate.sim import FaultConfig, SimTenant
from batch_rotate.sim.inventory import generate, write_sample

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _plain_requests_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """Here MSAL is called directly with verify=; these variables would override it."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _token(sim: SimTenant) -> str:
    app = msal.ConfidentialClientApplication(
        sim.config.client_id,
        client_credential=sim.config.client_secret,
        authority=sim.authority_url,
        instance_discovery=False,
        verify=str(sim.ca_path),
    )
    result = app.acquire_token_for_client(scopes=[f"{sim.graph_url}/.default"])
    app.http_client.close()
    assert "access_token" in result, result
    return str(result["access_token"])


def _call(
    sim: SimTenant, method: str, path: str, *, token: str | None = None, json: Any = None
) -> tuple[int, dict[str, str], Any]:
    async def go() -> tuple[int, dict[str, str], Any]:
        context = ssl.create_default_context(cafile=str(sim.ca_path))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{sim.base_url}{path}", json=json, headers=headers, ssl=context
            ) as resp,
        ):
            body = await resp.json(content_type=None) if resp.status != 204 else None
            return resp.status, dict(resp.headers), body

    return asyncio.run(go())


def test_msal_gets_a_jwt_with_roles_and_audience(sim: SimTenant) -> None:
    claims = jwt.decode(_token(sim), options={"verify_signature": False})
    assert claims["aud"] == sim.graph_url
    assert claims["tid"] == sim.config.tenant_id
    assert "DeviceManagementManagedDevices.ReadWrite.All" in claims["roles"]


def test_graph_requires_a_valid_token(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(token_lifetime_s=1)
    status, headers, body = _call(sim, "GET", "/beta/deviceManagement/managedDevices")
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    assert "request-id" in {k.lower() for k in headers}
    token = _token(sim)
    time.sleep(1.5)
    status, _, body = _call(sim, "GET", "/beta/deviceManagement/managedDevices", token=token)
    assert status == 401 and "expired" in body["error"]["message"]


def test_listing_pages_select_and_ignored_filter(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(devices=25, page_size=10)
    token = _token(sim)
    status, _, body = _call(
        sim,
        "GET",
        "/beta/deviceManagement/managedDevices?$select=deviceName&$filter=jailBroken eq 'x'",
        token=token,
    )
    assert status == 200 and len(body["value"]) == 10
    assert set(body["value"][0]) == {"id", "deviceName"}
    seen = [d["id"] for d in body["value"]]
    while "@odata.nextLink" in body:
        _, _, body = _call(
            sim, "GET", body["@odata.nextLink"].removeprefix(sim.base_url), token=token
        )
        seen += [d["id"] for d in body["value"]]
    assert seen == [d["id"] for d in sim.inventory]


def test_rotate_get_and_404(sim: SimTenant) -> None:
    token = _token(sim)
    device = next(d for d in sim.inventory if d["operatingSystem"] == "Windows")
    status, _, _ = _call(
        sim,
        "POST",
        f"/beta/deviceManagement/managedDevices/{device['id']}/rotateBitLockerKeys",
        token=token,
    )
    assert status == 204
    status, _, body = _call(
        sim, "GET", f"/beta/deviceManagement/managedDevices/{device['id']}", token=token
    )
    assert body["deviceActionResults"][0]["actionName"] == "rotateBitLockerKeys"
    status, _, body = _call(
        sim, "POST", "/beta/deviceManagement/managedDevices/nope/rotateBitLockerKeys", token=token
    )
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    status, _, _ = _call(
        sim,
        "POST",
        f"/v1.0/deviceManagement/managedDevices/{device['id']}/rotateBitLockerKeys",
        token=token,
    )
    assert status == 400  # beta only
    assert sim.metrics()["rotate_accepted"] == 1


def _rotate_requests(sim: SimTenant, n: int) -> list[dict[str, Any]]:
    ids = [d["id"] for d in sim.inventory if d["operatingSystem"] == "Windows"][:n]
    return [
        {
            "id": str(i),
            "method": "POST",
            "url": f"/deviceManagement/managedDevices/{d}/rotateBitLockerKeys",
            "headers": {"Content-Type": "application/json"},
            "body": {},
        }
        for i, d in enumerate(ids, start=1)
    ]


def test_batch_limits_and_shuffled_answers(sim: SimTenant) -> None:
    token = _token(sim)
    status, _, body = _call(
        sim, "POST", "/beta/$batch", token=token, json={"requests": _rotate_requests(sim, 21)}
    )
    assert status == 400
    duplicated = _rotate_requests(sim, 2)
    duplicated[1]["id"] = "1"
    assert _call(sim, "POST", "/beta/$batch", token=token, json={"requests": duplicated})[0] == 400
    status, _, body = _call(
        sim, "POST", "/beta/$batch", token=token, json={"requests": _rotate_requests(sim, 20)}
    )
    assert status == 200
    assert sorted(int(r["id"]) for r in body["responses"]) == list(range(1, 21))
    assert [r["id"] for r in body["responses"]] != [str(i) for i in range(1, 21)]
    assert all(r["status"] == 204 and "body" not in r for r in body["responses"])


def test_inner_throttling_counts_throttled_requests(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(time_scale=4.0, app_write_limit=10)
    token = _token(sim)
    _, _, body = _call(
        sim, "POST", "/beta/$batch", token=token, json={"requests": _rotate_requests(sim, 20)}
    )
    statuses = sorted(r["status"] for r in body["responses"])
    assert statuses.count(204) == 10 and statuses.count(429) == 10
    throttled = next(r for r in body["responses"] if r["status"] == 429)
    assert 0 < float(throttled["headers"]["Retry-After"]) <= 5.0
    assert throttled["body"]["error"]["code"] == "TooManyRequests"
    metrics = sim.metrics()
    assert metrics["throttled_429_inner"] == 10 and metrics["write_windows"][-1] == 20


def test_batch_level_faults_happen_before_processing(make_sim: Callable[..., SimTenant]) -> None:
    sim = make_sim(faults=FaultConfig(batch_503=1.0))
    token = _token(sim)
    status, headers, _ = _call(
        sim, "POST", "/beta/$batch", token=token, json={"requests": _rotate_requests(sim, 5)}
    )
    assert status == 503 and "Retry-After" in headers
    assert sim.metrics()["rotate_calls"] == 0


def test_committed_sample_matches_the_default_fleet(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    write_sample(path, generate(500, 1))
    assert path.read_bytes() == (ROOT / "inputs" / "sample-devices.csv").read_bytes()


def test_fleet_has_the_trouble_resolution_must_handle() -> None:
    fleet = generate(2000, 7)
    names = [d["deviceName"] for d in fleet]
    serials = [d["serialNumber"] for d in fleet]
    assert len(set(names)) < len(names) and len(set(serials)) < len(serials)
    assert {d["operatingSystem"] for d in fleet} == {"Windows", "macOS", "iOS", "Android"}
    assert any(
        d["joinType"] == "azureADRegistered" and d["operatingSystem"] == "Windows" for d in fleet
    )
    assert generate(50, 3) == generate(50, 3)


@pytest.mark.parametrize(
    "fault", ["connection_reset", "truncated_body", "non_json_body", "omit_ids"]
)
def test_each_transport_fault_is_injected(make_sim: Callable[..., SimTenant], fault: str) -> None:
    sim = make_sim(faults=FaultConfig(**{fault: 1.0}))
    token = _token(sim)
    with contextlib.suppress(aiohttp.ClientError, ValueError):
        _call(sim, "POST", "/beta/$batch", token=token, json={"requests": _rotate_requests(sim, 3)})
    assert sim.metrics()["faults_injected"][fault] >= 1
