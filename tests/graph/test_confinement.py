"""The token stays home: next links and redirects that leave Graph's origin are refused.

Three local servers on 127.0.0.1: "Graph" (https), a foreign https origin and a plain http one;
each records the Authorization headers it received.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from batch_rotate.graph.client import GraphClient
from batch_rotate.graph.endpoints import Endpoints
from batch_rotate.graph.errors import ServiceError
from batch_rotate.graph.lane import lane
from batch_rotate.graph.pacer import Budget, SystemClock
from batch_rotate.graph.pages import pages
from batch_rotate.sim.tls import make_server_tls

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Tokens:
    async def token(self, *, force_refresh: bool = False) -> str:
        return "secret-token"


@asynccontextmanager
async def _server(
    handler: Handler, tls: ssl.SSLContext | None, seen: list[str]
) -> AsyncIterator[str]:
    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _empty(_: web.Request) -> web.StreamResponse:
    return web.json_response({"value": []})


def _list_all(
    tmp_path: Path, graph_handler: Callable[[str, str], Handler]
) -> tuple[dict[str, list[str]], str]:
    """List from "Graph" (its handler built from the other origins); what each server saw,
    and the error that stopped the listing."""
    tls, ca = make_server_tls(tmp_path)
    seen: dict[str, list[str]] = {"graph": [], "foreign": [], "http": []}

    async def main() -> str:
        async with (
            _server(_empty, tls, seen["foreign"]) as foreign,
            _server(_empty, None, seen["http"]) as plain,
        ):
            handler = graph_handler(foreign, plain)
            async with _server(handler, tls, seen["graph"]) as graph_url:
                endpoints = Endpoints("https://login.invalid/t", graph_url, "scope", ca)
                reads = lane(Budget(1000, 1.0), clock=SystemClock(), seed=1)
                async with GraphClient(endpoints, _Tokens(), timeout_s=10) as graph:
                    try:
                        async for _ in pages(graph, reads, "deviceManagement/managedDevices"):
                            pass
                    except ServiceError as exc:
                        return str(exc)
        return "no error"

    return seen, asyncio.run(main())


def _linking_to(make_link: Callable[[str, str], str]) -> Callable[[str, str], Handler]:
    def build(foreign: str, plain: str) -> Handler:
        async def handler(_: web.Request) -> web.StreamResponse:
            link = make_link(foreign, plain)
            return web.json_response({"value": [{"id": "d1"}], "@odata.nextLink": link})

        return handler

    return build


@pytest.mark.parametrize(
    ("make_link", "origin"),
    [
        (lambda foreign, _plain: f"{foreign}/beta/deviceManagement/managedDevices?p=2", "https"),
        (lambda _foreign, plain: f"{plain}/beta/deviceManagement/managedDevices?p=2", "http"),
    ],
    ids=["foreign-origin", "plain-http"],
)
def test_a_next_link_elsewhere_stops_and_the_token_never_leaves(
    tmp_path: Path, make_link: Callable[[str, str], str], origin: str
) -> None:
    seen, error = _list_all(tmp_path, _linking_to(make_link))
    assert re.match(rf"refusing to send the access token to {origin}://127\.0\.0\.1:\d+", error)
    assert seen["graph"] == ["Bearer secret-token"]
    assert seen["foreign"] == seen["http"] == []


def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    def build(foreign: str, _plain: str) -> Handler:
        async def handler(_: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{foreign}/beta/stolen")

        return handler

    seen, error = _list_all(tmp_path, build)
    assert re.search(r"302 redirect to https://127\.0\.0\.1:\d+/beta/stolen", error), error
    assert seen["foreign"] == []


def test_a_next_link_that_repeats_stops_instead_of_looping(tmp_path: Path) -> None:
    def build(_foreign: str, _plain: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            again = str(request.url.with_query({"page": "2"}))
            return web.json_response({"value": [], "@odata.nextLink": again})

        return handler

    seen, error = _list_all(tmp_path, build)
    assert "repeats a page already fetched" in error
    assert len(seen["graph"]) == 2
