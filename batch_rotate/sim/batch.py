"""`POST /{version}/$batch`: up to 20 inner requests, run concurrently, answered in any order.

Each inner request goes through the tenant's `dispatch`, like a direct call; faults wrap it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from batch_rotate.sim.clock import Answer
from batch_rotate.sim.faults import ERROR_CODES, BatchFaults
from batch_rotate.sim.throttling import WRITE_METHODS

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant


def batch_problem(requests: Any) -> str | None:
    """Why Graph would answer 400 to this payload, or None."""
    if not isinstance(requests, list) or not requests:
        return "Invalid batch payload format."
    if len(requests) > 20:
        return "The number of requests in the batch exceeds 20."
    if not all(isinstance(r, dict) for r in requests):
        return "Invalid batch payload format."
    ids = [r.get("id") for r in requests]
    if any(not isinstance(i, str) or not i for i in ids):
        return "Each request in a batch must have a non-empty string id."
    if len(set(ids)) != len(ids):
        return "Request Id's must be unique within a batch."
    for inner in requests:
        if not isinstance(inner.get("method"), str) or not isinstance(inner.get("url"), str):
            return f"Request {inner['id']} must have a method and a url."
        if str(inner["url"]).lower().startswith(("http://", "https://")):
            return f"Request {inner['id']}: the url must be relative."
    return None


class BatchEndpoint:
    """Parses, checks, runs and answers one `$batch`; faults come before or after processing."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant
        self.faults = BatchFaults(tenant)

    async def handle(
        self, request: web.Request, version: str, claims: dict[str, Any], crid: str
    ) -> web.StreamResponse:
        t = self.t
        t.metrics.counts["batch_requests"] += 1
        raw = await request.read()
        try:
            payload: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            payload = None
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if t.config.log_requests and isinstance(requests, list):
            t.metrics.requests += (
                f"{inner.get('method')} /{version}{inner.get('url')} (in $batch)"
                for inner in requests
                if isinstance(inner, dict)
            )
        fault = await self.faults.before(request, requests, crid)
        if fault is not None:
            return fault
        problem = batch_problem(requests)
        if problem:
            return t.respond(*t.error(400, "BadRequest", problem, crid), crid)
        assert isinstance(requests, list)
        loss = self.faults.pick_loss(
            any(isinstance(r, dict) and r.get("method") in WRITE_METHODS for r in requests)
        )
        # Omitted ids are neither processed nor answered; the rest run concurrently, as in Graph.
        kept = [inner for inner in requests if not t.faults.roll("omit_ids")]
        responses = list(
            await asyncio.gather(*(self.inner(version, inner, claims) for inner in kept))
        )
        t.shuffle_rng.shuffle(responses)  # GRAPH_NOTES.md: answers come in any order
        if loss is not None:
            return await self.faults.lose(loss, request, responses, crid)
        return t.respond(200, {}, {"responses": responses}, crid)

    def _inner_fault(self, device_id: str, crid: str) -> Answer | None:
        t, roll = self.t, self.t.faults.roll
        if roll("inner_429_no_retry_after"):
            t.metrics.counts["throttled_429_inner"] += 1
            return t.error(429, "TooManyRequests", "Too many requests.", crid)
        if roll("inner_503_retry_after"):
            wait = 1.0 / t.config.time_scale
            answer = t.error(503, "ServiceUnavailable", "Service is unavailable.", crid)
            answer[1]["Retry-After"] = t.retry.header(wait)
            t.retry.note(device_id, wait)
            return answer
        failed = next((code for code in (500, 502, 503, 504) if roll(f"inner_{code}")), None)
        if failed is not None:
            message = "An internal server error occurred."
            return t.error(failed, ERROR_CODES[failed], message, crid)
        return None

    async def inner(
        self, version: str, inner: dict[str, Any], claims: dict[str, Any]
    ) -> dict[str, Any]:
        """One inner request's answer: `id`, `status`, `headers` and (unless 204) `body`."""
        raw_headers = inner.get("headers") if isinstance(inner.get("headers"), dict) else {}
        lower = {str(k).lower(): str(v) for k, v in (raw_headers or {}).items()}
        crid = lower.get("client-request-id") or str(uuid.uuid4())
        url = urlsplit(str(inner["url"]))
        segments = [s for s in url.path.split("/") if s]
        device_id = segments[2].lower() if len(segments) >= 3 else ""
        answer: Answer | None
        if "body" in inner and "content-type" not in lower:
            message = "Content-Type header is required for requests with a body."
            answer = self.t.error(400, "BadRequest", message, crid)
        else:
            answer = self._inner_fault(device_id, crid)
        if answer is None:
            method = str(inner["method"]).upper()
            answer = await self.t.dispatch(
                method, version, url.path, url.query, claims, crid, lower
            )
        status, hdrs, body = answer
        out: dict[str, Any] = {
            "id": inner["id"],
            "status": status,
            "headers": {**hdrs, "client-request-id": crid},
        }
        if body is not None and status != 204:
            out["body"] = body
        return out
