"""Reading a listing ahead (issue 23): the next page is on its way while the caller works
through this one, every page is still read once and in order, and a stopped listing leaves
nothing running. A real local https server stands in for Graph."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from batch_rotate.graph.client import GraphClient
from batch_rotate.graph.endpoints import Endpoints
from batch_rotate.graph.errors import ServiceError
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.pacer import Budget, SystemClock
from batch_rotate.graph.pages import pages
from batch_rotate.sim.tls import make_server_tls

PATH = "deviceManagement/managedDevices"


class _Tokens:
    async def token(self, *, force_refresh: bool = False) -> str:
        return "token"


@asynccontextmanager
async def _graph(
    tmp_path: Path,
    last: int,
    requested: list[int],
    *,
    repeat_at: int = 0,
    slow_from: int = 0,
    asked: dict[int, asyncio.Event] | None = None,
) -> AsyncIterator[GraphClient]:
    """Pages 1..last, each linking to the next; `repeat_at` links back to itself instead;
    pages from `slow_from` on take a second to answer; `asked[n]` is set when page n is."""

    async def page(request: web.Request) -> web.StreamResponse:
        number = int(request.query.get("page", "1"))
        requested.append(number)
        if asked is not None:
            asked[number].set()
        if slow_from and number >= slow_from:
            await asyncio.sleep(1)
        body: dict[str, object] = {"value": [{"id": f"d{number}"}]}
        if number < last:
            follow = number if number == repeat_at else number + 1
            body["@odata.nextLink"] = str(request.url.with_query({"page": str(follow)}))
        return web.json_response(body)

    tls, ca = make_server_tls(tmp_path)
    app = web.Application()
    app.router.add_get(f"/beta/{PATH}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with GraphClient(
            Endpoints("https://login.invalid/t", url, "scope", ca), _Tokens(), timeout_s=10
        ) as graph:
            yield graph
    finally:
        await runner.cleanup()


def _reads() -> Lane:
    return lane(Budget(1000, 1.0), clock=SystemClock(), seed=1)


def _run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())


def test_the_next_page_is_requested_while_the_caller_works_on_this_one(tmp_path: Path) -> None:
    """The caller waits, at each page, until the server has been asked for the next one:
    without reading ahead that request would only come after the caller is done (a timeout)."""
    requested: list[int] = []
    seen: list[str] = []

    async def main() -> None:
        asked: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        async with _graph(tmp_path, 5, requested, asked=asked) as graph:
            async for response in pages(graph, _reads(), PATH, ahead=True):
                seen.append(response.body["value"][0]["id"])
                if len(seen) < 5:
                    await asyncio.wait_for(asked[len(seen) + 1].wait(), 5)

    _run(main)
    assert seen == ["d1", "d2", "d3", "d4", "d5"]
    assert requested == [1, 2, 3, 4, 5]  # each page once, in order


def test_without_reading_ahead_the_next_page_waits_for_the_caller(tmp_path: Path) -> None:
    requested: list[int] = []

    async def main() -> None:
        async with _graph(tmp_path, 3, requested) as graph:
            async for _ in pages(graph, _reads(), PATH):
                await asyncio.sleep(0.2)  # the caller's work: nothing else is asked meanwhile
                assert len(requested) == len(set(requested)) and requested[-1] == len(requested)
                assert max(requested) == len(requested)

    _run(main)
    assert requested == [1, 2, 3]


def test_a_repeated_link_fails_after_the_page_it_came_with(tmp_path: Path) -> None:
    requested: list[int] = []
    seen: list[str] = []

    async def main() -> None:
        async with _graph(tmp_path, 5, requested, repeat_at=2) as graph:
            with pytest.raises(ServiceError, match="repeats a page already fetched"):
                async for response in pages(graph, _reads(), PATH, ahead=True):
                    seen.append(response.body["value"][0]["id"])

    _run(main)
    assert seen == ["d1", "d2"] and requested == [1, 2]


def test_a_listing_stopped_early_cancels_the_page_on_its_way(tmp_path: Path) -> None:
    """The caller stops after the first page and closes the listing: the second page, slow to
    come, is cancelled (closing returns at once) and no third page is ever asked for."""
    requested: list[int] = []

    async def main() -> None:
        async with _graph(tmp_path, 5, requested, slow_from=2) as graph:
            listing = pages(graph, _reads(), PATH, ahead=True)
            async for _ in listing:
                break
            loop = asyncio.get_running_loop()
            started = loop.time()
            await listing.aclose()
            assert loop.time() - started < 0.5
            await asyncio.sleep(1.5)  # a page left running would have asked for page 3 by now

    _run(main)
    assert requested == [1, 2]
