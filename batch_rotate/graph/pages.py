"""Follow `@odata.nextLink` pages: each page read like any run read, no page fetched twice.

Where a link may point is the client's rule (only the Graph origin gets the token).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Collection, Mapping

from batch_rotate.graph.client import GraphResponse
from batch_rotate.graph.errors import ServiceError
from batch_rotate.graph.lane import Lane
from batch_rotate.graph.reads import get_with_retry
from batch_rotate.graph.runner import READ_PERMISSION, Transport


async def pages(
    transport: Transport,
    lane: Lane,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    version: str = "beta",
    max_attempts: int = 8,
    passed: Collection[int] = (404,),
    permission: str = READ_PERMISSION,
    headers: Mapping[str, str] | None = None,
    ahead: bool = False,
) -> AsyncGenerator[GraphResponse, None]:
    """Every page from `path` (relative, or a next link); stops after a page that is not 200.
    `headers` go with every page (an advanced query needs `ConsistencyLevel` on each).

    `ahead`: the next page is requested before this one is yielded, so Graph prepares it while
    the caller works through this one (a million-device listing's pages took as long to make
    as to read, one after the other, issue 23). For a caller that reads to the end: one stopped
    early has had one page more read, which is cancelled if still on its way."""
    fetched: set[str] = set()

    def fetch(link: str, query: Mapping[str, str] | None) -> Awaitable[GraphResponse]:
        if link in fetched:
            raise ServiceError(
                f"GET {link}: this next link repeats a page already fetched; stopping the listing "
                "instead of looping (a Graph paging fault: run again later)"
            )
        fetched.add(link)
        return get_with_retry(
            transport,
            lane,
            link,
            params=query,
            version=version,
            max_attempts=max_attempts,
            passed=passed,
            permission=permission,
            headers=headers,
        )

    coming: Awaitable[GraphResponse] | None = fetch(path, params) if path else None
    ahead_of: asyncio.Future[GraphResponse] | None = None
    try:
        while coming is not None:
            response = await coming
            coming = ahead_of = None
            body = response.body if isinstance(response.body, dict) else {}
            link = str(body.get("@odata.nextLink") or "") if response.status == 200 else ""
            if link and ahead and link not in fetched:
                coming = ahead_of = asyncio.ensure_future(fetch(link, None))
                await asyncio.sleep(0)  # let it send its request before the caller works
            yield response
            if link and coming is None:
                coming = fetch(link, None)  # a repeated link fails here, after its page
    finally:
        if ahead_of is not None:
            ahead_of.cancel()
