"""Seeded fault injection: batch faults before processing, and answers lost after processing.

One RNG, one roll per fault kind per request, every hit counted, so a seed replays a run.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from batch_rotate.sim.config import LOST_PREFIX, FaultConfig

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

ERROR_CODES = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_HTML_GATEWAY_PAGE = (
    "<!DOCTYPE html><html><head><title>502 - Web server received an invalid response</title>"
    "</head><body><h1>Server Error</h1><h2>502 - Web server received an invalid response while "
    "acting as a gateway or proxy server.</h2></body></html>"
)
_TIMED_OUT = "The operation timed out."
LOST_KINDS = ("timeout", "reset", "5xx", "truncated", "omit_ids")


class Faults:
    """Rolls faults in a fixed order so a seed replays the same run against the same client."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.injected: dict[str, int] = defaultdict(int)

    def roll(self, name: str) -> bool:
        """True (and counted) when fault `name` hits this request."""
        probability = float(getattr(self.config, name))
        if probability and self.rng.random() < probability:
            self.injected[name] += 1
            return True
        return False


def _device_ids(requests: Any) -> list[str]:
    out = []
    for inner in requests if isinstance(requests, list) else []:
        if isinstance(inner, dict):
            segments = [s for s in str(inner.get("url", "")).split("?")[0].split("/") if s]
            if len(segments) >= 3:
                out.append(segments[2].lower())
    return out


def _abort(request: web.Request) -> None:
    """RST-like: the client sees the connection drop."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


class BatchFaults:
    """What can go wrong with a whole `$batch`, before or after its requests are processed."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant

    async def before(
        self, request: web.Request, requests: Any, crid: str
    ) -> web.StreamResponse | None:
        """Faults decided before any inner request is looked at: nothing in the batch accepted."""
        t, roll = self.t, self.t.faults.roll
        if roll("connection_reset"):
            _abort(request)
        if roll("timeout"):
            # Held past the client's timeout, then refused: nothing in it was processed.
            await asyncio.sleep(t.config.faults.timeout_s)
            return t.respond(*t.error(504, "GatewayTimeout", _TIMED_OUT, crid), crid)
        for name, status in (("batch_429", 429), ("batch_503", 503), ("batch_504", 504)):
            if roll(name):
                code = "TooManyRequests" if status == 429 else ERROR_CODES[status]
                s, h, b = t.error(status, code, "Injected batch fault.", crid)
                if status == 429:
                    t.metrics.counts["throttled_429_outer"] += 1
                if status in (429, 503):
                    wait = 1.0 / t.config.time_scale
                    h["Retry-After"] = t.retry.header(wait)
                    for device_id in _device_ids(requests):
                        t.retry.note(device_id, wait)
                return t.respond(s, h, b, crid)
        if roll("non_json_body"):
            status = 502 if t.faults.rng.random() < 0.5 else 200
            return web.Response(status=status, text=_HTML_GATEWAY_PAGE, content_type="text/html")
        if roll("truncated_body"):
            text = '{"responses": [{"id": "1", "status": 2'  # cut short; nothing processed
            headers = {"Content-Type": "application/json", "client-request-id": crid}
            return web.Response(status=200, text=text, headers=headers)
        return None

    def pick_loss(self, writes: bool = True) -> str | None:
        """Which way (if any) this batch's answer will be lost once it has been processed."""
        if not writes and self.t.config.faults.lose_writes_only:
            return None
        return next((k for k in LOST_KINDS if self.t.faults.roll(LOST_PREFIX + k)), None)

    async def lose(
        self, kind: str, request: web.Request, responses: list[dict[str, Any]], crid: str
    ) -> web.StreamResponse:
        """The batch was processed (rotations accepted); now its answer goes missing."""
        t = self.t
        lost = responses
        if kind == "omit_ids":
            lost = [r for r in responses if t.faults.rng.random() < 0.5] or responses[:1]
        t.metrics.counts["answers_lost_after_processing"] += 1
        t.metrics.counts["rotations_answer_lost"] += sum(r["status"] == 204 for r in lost)
        if kind == "reset":
            _abort(request)
        if kind == "timeout":
            await asyncio.sleep(t.config.faults.timeout_s)
            return t.respond(*t.error(504, "GatewayTimeout", _TIMED_OUT, crid), crid)
        if kind == "5xx":
            status = 502 if t.faults.rng.random() < 0.5 else 503
            answer = t.error(status, ERROR_CODES[status], "The gateway lost the answer.", crid)
            return t.respond(*answer, crid)
        if kind == "truncated":
            text = json.dumps({"responses": responses})
            headers = {"Content-Type": "application/json", "client-request-id": crid}
            return web.Response(status=200, text=text[: len(text) // 2], headers=headers)
        kept = [r for r in responses if not any(r is x for x in lost)]
        return t.respond(200, {}, {"responses": kept}, crid)
