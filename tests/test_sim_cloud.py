"""The simulated cloud: many tenants on one Graph URL and one authority host, routed by `tid`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msal
import pytest

from batch_rotate.sim.cloud import CloudTenant, SimCloud
from batch_rotate.sim.config import SimConfig
from batch_rotate.sim.inventory import eligible
from batch_rotate.sim.targeting import TargetingConfig
from batch_rotate.sim.throttling import SlidingLimit

from .sim.helpers import call

A = "0000000a-0000-4000-8000-00000000000a"
B = "0000000b-0000-4000-8000-00000000000b"
C = "0000000c-0000-4000-8000-00000000000c"
LIST = "/beta/deviceManagement/managedDevices"


@pytest.fixture(autouse=True)
def _plain_requests_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """MSAL is called directly with verify=; these variables would override it."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _specs(**a: Any) -> list[CloudTenant]:
    return [
        CloudTenant(
            SimConfig(tenant_id=A, seed=1, devices=40, **a), "Contoso", domain="contoso.example"
        ),
        CloudTenant(SimConfig(tenant_id=B, seed=2, devices=40), "Fabrikam", "fabrikam.example"),
        CloudTenant(SimConfig(tenant_id=C, seed=3, devices=10), "Northwind", "northwind.example"),
    ]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[SimCloud]:
    with SimCloud(_specs(), workdir=tmp_path) as started:
        yield started


def _msal(cloud: SimCloud, tenant: str) -> dict[str, Any]:
    """The real MSAL client-credential path, authority `{host}/{tenant id or domain}`."""
    app = msal.ConfidentialClientApplication(
        cloud.env()["AZURE_CLIENT_ID"],
        client_credential=cloud.env()["AZURE_CLIENT_SECRET"],
        authority=f"{cloud.authority_host}/{tenant}",
        instance_discovery=False,
        verify=str(cloud.ca_path),
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[f"{cloud.graph_url}/.default"])
    app.http_client.close()
    return result


def _token(cloud: SimCloud, tenant: str) -> str:
    result = _msal(cloud, tenant)
    assert "access_token" in result, result
    return str(result["access_token"])


def _windows_ids(cloud: SimCloud, tenant: str, count: int) -> list[str]:
    return [d["id"] for d in cloud.tenant(tenant).inventory if eligible(d)][:count]


def _rotations(ids: list[str]) -> dict[str, Any]:
    return {
        "requests": [
            {
                "id": str(n),
                "method": "POST",
                "url": f"/deviceManagement/managedDevices/{i}/rotateBitLockerKeys",
            }
            for n, i in enumerate(ids)
        ]
    }


def test_a_token_per_tenant_carries_its_tid_by_guid_or_domain(cloud: SimCloud) -> None:
    for authority, tid in ((A, A), ("contoso.example", A), ("FABRIKAM.example", B), (C, C)):
        claims = jwt.decode(_token(cloud, authority), options={"verify_signature": False})
        assert claims["tid"] == tid and claims["iss"] == f"{cloud.base_url}/{tid}/"
    assert cloud.tenant("contoso.example").count("app_token_requests") == 2
    assert cloud.tenant(B).count("app_token_requests") == 1
    status, _, body = call(cloud, "GET", "/northwind.example/v2.0/.well-known/openid-configuration")
    assert status == 200
    assert body["issuer"] == f"{cloud.base_url}/{C}/v2.0"
    assert body["token_endpoint"] == f"{cloud.base_url}/{C}/oauth2/v2.0/token"
    status, _, body = call(
        cloud, "POST", "/nowhere.example/oauth2/v2.0/token", data={"grant_type": "x"}
    )
    assert status == 400 and body["error_codes"] == [90002]


def test_listing_with_a_tenants_token_returns_only_its_devices(cloud: SimCloud) -> None:
    seen = {}
    for tenant in (A, B, C):
        status, _, body = call(cloud, "GET", f"{LIST}?$select=id", token=_token(cloud, tenant))
        assert status == 200 and "@odata.nextLink" not in body
        seen[tenant] = {d["id"] for d in body["value"]}
        assert seen[tenant] == {d["id"] for d in cloud.tenant(tenant).inventory}
    assert len(seen[A]) == 40 and len(seen[C]) == 10
    assert not seen[A] & seen[B] and not seen[B] & seen[C] and not seen[A] & seen[C]
    assert cloud.cross_tenant_requests() == 0
    assert cloud.tenant(A).count("graph_requests") == 1


def test_a_rotate_on_another_tenants_device_is_counted_and_changes_nothing(
    cloud: SimCloud,
) -> None:
    a_token = _token(cloud, A)
    theirs, mine = _windows_ids(cloud, B, 1)[0], _windows_ids(cloud, A, 1)[0]
    before = cloud.tenant(B).inventory.get(theirs)
    status, _, body = call(cloud, "POST", f"{LIST}/{theirs}/rotateBitLockerKeys", token=a_token)
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    assert cloud.cross_tenant_requests() == 1
    status, _, body = call(cloud, "POST", "/beta/$batch", token=a_token, json=_rotations([theirs]))
    assert status == 200 and body["responses"][0]["status"] == 404
    # Its Entra device id in a key lookup is another tenant's object too.
    entra = before["azureADDeviceId"] if before else ""
    flt = f"deviceId eq '{entra}'"
    status, _, body = call(
        cloud,
        "GET",
        f"/v1.0/informationProtection/bitlocker/recoveryKeys?$filter={flt}",
        token=a_token,
    )
    assert status == 200 and body["value"] == []
    assert cloud.cross_tenant_requests() == 3
    assert cloud.tenant(B).metrics()["rotate_accepted"] == 0
    assert cloud.tenant(B).inventory.get(theirs) == before
    assert cloud.tenant(A).count("cross_tenant_requests") == 3
    status, _, _ = call(cloud, "POST", f"{LIST}/{mine}/rotateBitLockerKeys", token=a_token)
    assert status == 204 and cloud.cross_tenant_requests() == 3
    assert cloud.tenant(A).metrics()["accepted_by_device"] == {mine: 1}
    # A key id B has shown (to B's own token) is B's object too.
    keys = "/v1.0/informationProtection/bitlocker/recoveryKeys"
    status, _, body = call(cloud, "GET", f"{keys}?$filter={flt}", token=_token(cloud, B))
    assert status == 200 and body["value"]
    key_id = body["value"][0]["id"]
    assert call(cloud, "GET", f"{keys}/{key_id}", token=a_token)[0] == 404
    assert cloud.cross_tenant_requests() == 4


def test_budgets_are_per_tenant_a_throttled_neighbour_does_not_slow_another(
    tmp_path: Path,
) -> None:
    """A's neighbour leaves it 2 writes per (long) window; B, with the same app, gets all 10."""
    specs = _specs(tenant_write_limit=100, neighbour_write_share=0.98, window_s=600.0)
    with SimCloud(specs, workdir=tmp_path) as cloud:
        statuses = {}
        for tenant in (A, B):
            ids = _windows_ids(cloud, tenant, 10)
            status, _, body = call(
                cloud, "POST", "/beta/$batch", token=_token(cloud, tenant), json=_rotations(ids)
            )
            assert status == 200
            statuses[tenant] = sorted(r["status"] for r in body["responses"])
        assert statuses[A] == [204, 204] + [429] * 8
        assert statuses[B] == [204] * 10
        assert cloud.tenant(A).metrics()["throttled_429_inner"] == 8
        assert cloud.tenant(B).metrics()["throttled_429_inner"] == 0


def test_an_unconsented_tenant_refuses_the_app_with_its_aadsts_code(tmp_path: Path) -> None:
    specs = _specs()
    specs[1].consent = "AADSTS7000229"
    specs[2].consent = "AADSTS700016"
    with SimCloud(specs, workdir=tmp_path) as cloud:
        client = cloud.env()["AZURE_CLIENT_ID"]
        missing = _msal(cloud, "fabrikam.example")
        assert missing["error"] == "invalid_client" and missing["error_codes"] == [7000229]
        assert missing["error_description"].startswith(
            f"AADSTS7000229: The client application {client} is missing service principal in "
            f"the tenant {B}."
        )
        unknown = _msal(cloud, C)
        assert unknown["error"] == "unauthorized_client" and unknown["error_codes"] == [700016]
        assert f"'{client}' was not found in the directory 'Northwind'" in str(
            unknown["error_description"]
        )
        assert "access_token" in _msal(cloud, "contoso.example")  # consented: the same app works


def test_a_tenant_without_intune_answers_403_while_its_token_works(tmp_path: Path) -> None:
    specs = _specs()
    specs[0].intune = False
    with SimCloud(specs, workdir=tmp_path) as cloud:
        token = _token(cloud, "contoso.example")
        status, _, body = call(cloud, "GET", LIST, token=token)
        assert status == 403 and set(body["error"]) >= {"code", "message"}
        ids = _windows_ids(cloud, A, 2)
        status, _, body = call(cloud, "POST", "/beta/$batch", token=token, json=_rotations(ids))
        assert [r["status"] for r in body["responses"]] == [403, 403]
        keys = "/v1.0/informationProtection/bitlocker/recoveryKeys"
        assert call(cloud, "GET", keys, token=token)[0] == 200  # Entra still answers
        assert call(cloud, "GET", LIST, token=_token(cloud, B))[0] == 200  # other tenants too
        assert cloud.tenant(A).metrics()["rotate_accepted"] == 0


def test_a_tenant_set_down_answers_503_then_recovers(cloud: SimCloud) -> None:
    token, other = _token(cloud, A), _token(cloud, B)
    cloud.set_down("contoso.example", True)
    status, headers, body = call(cloud, "GET", LIST, token=token)
    assert status == 503 and body["error"]["code"] == "ServiceUnavailable"
    assert int(headers["Retry-After"]) >= 1
    assert call(cloud, "POST", "/beta/$batch", token=token, json=_rotations(["x"]))[0] == 503
    assert call(cloud, "GET", LIST, token=other)[0] == 200  # the others are up
    cloud.set_down(A, False)
    assert call(cloud, "GET", LIST, token=token)[0] == 200
    assert cloud.tenant(A).count("down_503") == 2


def _tokens(cloud: SimCloud, tenants: list[str]) -> dict[str, str]:
    """Client-credential tokens posted directly (25 MSAL apps would only add discovery)."""

    async def go() -> dict[str, str]:
        context = ssl.create_default_context(cafile=str(cloud.ca_path))
        out = {}
        async with aiohttp.ClientSession() as session:
            for tenant in tenants:
                form = {
                    "grant_type": "client_credentials",
                    "client_id": cloud.env()["AZURE_CLIENT_ID"],
                    "client_secret": cloud.env()["AZURE_CLIENT_SECRET"],
                    "scope": f"{cloud.graph_url}/.default",
                }
                url = f"{cloud.authority_host}/{tenant}/oauth2/v2.0/token"
                async with session.post(url, data=form, ssl=context) as resp:
                    out[tenant] = (await resp.json())["access_token"]
        return out

    return asyncio.run(go())


def _audit_reads(cloud: SimCloud, plan: list[tuple[str, str]]) -> list[tuple[int, str]]:
    """(status, Retry-After) of each audit read, in order, on one connection."""

    async def go() -> list[tuple[int, str]]:
        context = ssl.create_default_context(cafile=str(cloud.ca_path))
        out = []
        async with aiohttp.ClientSession() as session:
            for _, token in plan:
                async with session.get(
                    f"{cloud.graph_url}/v1.0/auditLogs/directoryAudits?$top=1",
                    headers={"Authorization": f"Bearer {token}"},
                    ssl=context,
                ) as resp:
                    await resp.read()
                    out.append((resp.status, resp.headers.get("Retry-After", "")))
        return out

    return asyncio.run(go())


def test_audit_reads_stop_at_122_per_app_across_tenants(tmp_path: Path) -> None:
    """25 tenants, 5 reads each at most (their own limit), the 123rd read of the app refused.

    time_scale 0.5: 20 s windows, far longer than the test's 125 reads take."""
    ids = [f"{n:08x}-0000-4000-8000-0000000000aa" for n in range(1, 26)]
    targeting = TargetingConfig(audit_reads=2, groups=False)
    specs = [
        CloudTenant(SimConfig(tenant_id=i, seed=n, devices=3, time_scale=0.5, targeting=targeting))
        for n, i in enumerate(ids)
    ]
    with SimCloud(specs, workdir=tmp_path) as cloud:
        tokens = _tokens(cloud, ids)
        plan = [(i, tokens[i]) for i in ids for _ in range(5)]  # 125 reads
        answers = _audit_reads(cloud, plan)
        assert [s for s, _ in answers[:122]] == [200] * 122
        assert [s for s, _ in answers[122:]] == [429] * 3
        assert all(int(wait) >= 1 for _, wait in answers[122:])
        last = cloud.tenant(ids[-1])
        assert last.count("audit_requests") == 2 and last.count("app_audit_throttled") == 3
        assert last.count("audit_throttled") == 0  # its own 5 / 10 s was never reached
        # The per-tenant limit still answers first: a 6th read in the first tenant.
        assert _audit_reads(cloud, [(ids[0], tokens[ids[0]])])[0][0] == 429
        assert cloud.tenant(ids[0]).count("audit_throttled") == 1
        assert cloud.tenant(ids[0]).count("app_audit_throttled") == 0


def test_sliding_limit_refuses_past_its_limit_and_counts_no_refusal() -> None:
    now = [0.0]
    limit = SlidingLimit(3, 10.0, clock=lambda: now[0])
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        assert limit.wait("app") is None
        limit.record("app")
    now[0] = 5.0
    assert limit.wait("app") == pytest.approx(5.0)  # the first one leaves at 10 s
    assert limit.wait("other") is None  # per key
    now[0] = 10.0
    assert limit.wait("app") is None  # refusals were not counted
    limit.record("app")
    assert limit.wait("app") == pytest.approx(1.0)


def test_the_cloud_refuses_tenants_that_share_devices_or_names(tmp_path: Path) -> None:
    same_seed = [
        CloudTenant(SimConfig(tenant_id=A, seed=7, devices=5)),
        CloudTenant(SimConfig(tenant_id=B, seed=7, devices=5)),
    ]
    with pytest.raises(ValueError, match="give each tenant its own seed"):
        SimCloud(same_seed, workdir=tmp_path / "a").start()
    with pytest.raises(ValueError, match="answer to"):
        SimCloud(
            [
                CloudTenant(SimConfig(tenant_id=A, seed=1, devices=5), domain="x.example"),
                CloudTenant(SimConfig(tenant_id=B, seed=2, devices=5), domain="X.example"),
            ],
            workdir=tmp_path / "b",
        )


def test_every_tenant_uses_the_first_specs_app(tmp_path: Path) -> None:
    specs = _specs()
    specs[1].config.client_id = "11111111-0000-4000-8000-000000000000"
    with SimCloud(specs, workdir=tmp_path) as cloud:
        assert cloud.env() == {
            "AZURE_CLIENT_ID": specs[0].config.client_id,
            "AZURE_CLIENT_SECRET": specs[0].config.client_secret,
        }
        assert cloud.tenant(B).config.client_id == specs[0].config.client_id
        assert cloud.tenant(B).env()["AZURE_TENANT_ID"] == B
        assert "access_token" in _msal(cloud, B)


def test_standalone_serves_n_tenants_and_prints_each_one(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "batch_rotate.sim", "--port", "0", "--devices", "5"),
            *("--tenants", "3", "--workdir", str(tmp_path / "sim")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    text = "".join(lines)
    try:
        host = re.search(r"authority host : (\S+)", text)
        assert host is not None, text
        domains = re.findall(r"^ +([0-9a-f-]{36})  (tenant\d\.example)  5$", text, re.MULTILINE)
        assert [d for _, d in domains] == ["tenant1.example", "tenant2.example", "tenant3.example"]
        assert len({i for i, _ in domains}) == 3

        class Remote:  # what `call` needs of a running server
            base_url, ca_path = host[1], tmp_path / "sim" / "ca.pem"

        for tenant_id, domain in domains:
            status, _, body = call(
                Remote, "GET", f"/{domain}/v2.0/.well-known/openid-configuration"
            )
            assert status == 200 and body["issuer"].endswith(f"/{tenant_id}/v2.0")
        status, _, body = call(Remote, "GET", "/_sim/metrics?tenant=tenant2.example")
        assert status == 200 and body["graph_requests"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err
