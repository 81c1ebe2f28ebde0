"""Focused Graph client tests with aioresponses: headers, 401 renewal, error mapping."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from batch_rotate.graph.batch import BatchItem
from batch_rotate.graph.client import GraphClient, TransportError
from batch_rotate.graph.endpoints import Endpoints

GRAPH = "https://graph.example.test"
ENDPOINTS = Endpoints("https://login.example.test/t", GRAPH, f"{GRAPH}/.default")
BATCH_URL = f"{GRAPH}/beta/$batch"


class FakeTokens:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def token(self, *, force_refresh: bool = False) -> str:
        self.calls.append(force_refresh)
        return "fresh-token" if force_refresh else "old-token"


def _items(n: int) -> list[BatchItem]:
    return [
        BatchItem(
            i, "POST", f"/deviceManagement/managedDevices/d{i}/rotateBitLockerKeys", f"crid-{i}"
        )
        for i in range(n)
    ]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_batch_sends_auth_client_request_id_and_user_agent() -> None:
    seen: dict[str, Any] = {}

    def callback(url: Any, **kwargs: Any) -> CallbackResult:
        seen.update(kwargs)
        return CallbackResult(
            status=200,
            payload={
                "responses": [
                    {"id": "2", "status": 204},
                    {
                        "id": "1",
                        "status": 404,
                        "body": {"error": {"code": "ResourceNotFound", "message": "no"}},
                    },
                ]
            },
            headers={"request-id": "outer-rid"},
        )

    async def go() -> Any:
        async with GraphClient(ENDPOINTS, FakeTokens()) as graph:
            return await graph.batch(_items(2))

    with aioresponses() as mocked:
        mocked.post(BATCH_URL, callback=callback)
        result = _run(go())
    assert seen["headers"]["Authorization"] == "Bearer old-token"
    assert re.fullmatch(r"[0-9a-f-]{36}", seen["headers"]["client-request-id"])
    assert [r["headers"]["client-request-id"] for r in seen["json"]["requests"]] == [
        "crid-0",
        "crid-1",
    ]
    assert result.outer.request_id == "outer-rid"
    assert result.responses[1].status == 204
    assert result.responses[0].status == 404
    assert result.missing == []


def test_401_renews_the_token_once_and_retries() -> None:
    tokens = FakeTokens()

    async def go() -> Any:
        async with GraphClient(ENDPOINTS, tokens) as graph:
            return await graph.request("GET", "deviceManagement/managedDevices")

    with aioresponses() as mocked:
        url = re.compile(rf"{re.escape(GRAPH)}/beta/deviceManagement/managedDevices.*")
        mocked.get(url, status=401, payload={"error": {"code": "InvalidAuthenticationToken"}})
        mocked.get(url, status=200, payload={"value": []})
        response = _run(go())
    assert response.status == 200
    assert tokens.calls == [False, True]


def test_extra_headers_go_with_a_request_and_never_replace_the_clients_own() -> None:
    seen: dict[str, Any] = {}

    def callback(url: Any, **kwargs: Any) -> CallbackResult:
        seen.update(kwargs["headers"])
        return CallbackResult(status=200, payload={"value": []})

    async def go() -> Any:
        async with GraphClient(ENDPOINTS, FakeTokens()) as graph:
            extra = {"ConsistencyLevel": "eventual", "Authorization": "Bearer stolen"}
            return await graph.request("GET", "groups", version="v1.0", headers=extra)

    with aioresponses() as mocked:
        mocked.get(re.compile(rf"{re.escape(GRAPH)}/v1.0/groups.*"), callback=callback)
        _run(go())
    assert seen["ConsistencyLevel"] == "eventual"
    assert seen["Authorization"] == "Bearer old-token"


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
    ],
)
def test_transport_failures_become_transport_error(exc: Exception) -> None:
    async def go() -> Any:
        async with GraphClient(ENDPOINTS, FakeTokens()) as graph:
            return await graph.batch(_items(1))

    with aioresponses() as mocked:
        mocked.post(BATCH_URL, exception=exc)
        with pytest.raises(TransportError):
            _run(go())


@pytest.mark.parametrize("body", ['{"responses": [{"id": "1", "sta', "<html>Bad gateway</html>"])
def test_truncated_or_non_json_batch_body_is_a_transport_error(body: str) -> None:
    async def go() -> Any:
        async with GraphClient(ENDPOINTS, FakeTokens()) as graph:
            return await graph.batch(_items(1))

    with aioresponses() as mocked:
        mocked.post(BATCH_URL, status=200, body=body)
        with pytest.raises(TransportError):
            _run(go())


def test_outer_throttle_is_returned_for_the_caller_with_every_item_missing() -> None:
    async def go() -> Any:
        async with GraphClient(ENDPOINTS, FakeTokens()) as graph:
            return await graph.batch(_items(3))

    with aioresponses() as mocked:
        mocked.post(BATCH_URL, status=429, headers={"Retry-After": "7"}, body="")
        result = _run(go())
    assert result.outer.status == 429
    assert result.outer.headers["retry-after"] == "7"
    assert len(result.missing) == 3
