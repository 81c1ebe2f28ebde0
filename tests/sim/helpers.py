"""Plain HTTP against the simulated tenant: MSAL for tokens, aiohttp (in asyncio.run) for Graph."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import msal

from batch_rotate.sim import SimTenant


def token(sim: SimTenant) -> str:
    """A Graph token through the real MSAL code path, trusting only the sim's CA."""
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


def call(
    sim: SimTenant,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    data: Any = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, dict[str, str], Any]:
    """One request; the body is parsed JSON, the raw text when it is not JSON, or None."""

    async def go() -> tuple[int, dict[str, str], Any]:
        context = ssl.create_default_context(cafile=str(sim.ca_path))
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        url = path if path.startswith("https://") else f"{sim.base_url}{path}"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.request(method, url, json=json, data=data, headers=sent, ssl=context) as resp,
        ):
            text = await resp.text()
            body: Any = None
            if text:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = text
            return resp.status, dict(resp.headers), body

    return asyncio.run(go())


def rotate_requests(sim: SimTenant, n: int, *, windows_only: bool = True) -> list[dict[str, Any]]:
    """`n` well-formed inner rotate requests with ids "1".."n"."""
    ids = [d["id"] for d in sim.inventory if d["operatingSystem"] == "Windows" or not windows_only]
    return [
        {
            "id": str(i),
            "method": "POST",
            "url": f"/deviceManagement/managedDevices/{d}/rotateBitLockerKeys",
            "headers": {"Content-Type": "application/json"},
            "body": {},
        }
        for i, d in enumerate(ids[:n], start=1)
    ]


def batch(
    sim: SimTenant, tok: str, requests: list[dict[str, Any]], version: str = "beta"
) -> tuple[int, dict[str, str], Any]:
    return call(sim, "POST", f"/{version}/$batch", token=tok, json={"requests": requests})
