"""Follow `@odata.nextLink` pages: each page read like any run read, no page fetched twice.

Where a link may point is the client's rule (only the Graph origin gets the token).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping

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
) -> AsyncIterator[GraphResponse]:
    """Every page from `path` (relative, or a next link); stops after a page that is not 200.
    `headers` go with every page (an advanced query needs `ConsistencyLevel` on each)."""
    fetched: set[str] = set()
    query = params
    while path:
        if path in fetched:
            raise ServiceError(
                f"GET {path}: this next link repeats a page already fetched; stopping the listing "
                "instead of looping (a Graph paging fault: run again later)"
            )
        fetched.add(path)
        response = await get_with_retry(
            transport,
            lane,
            path,
            params=query,
            version=version,
            max_attempts=max_attempts,
            passed=passed,
            permission=permission,
            headers=headers,
        )
        yield response
        body = response.body if isinstance(response.body, dict) else {}
        path, query = (
            (str(body.get("@odata.nextLink") or "") if response.status == 200 else ""),
            None,
        )
