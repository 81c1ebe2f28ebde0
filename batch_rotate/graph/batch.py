"""Build JSON `$batch` payloads and match their responses back to items: pure, no I/O.

Responses come back in any order and a 204 has no body, so matching is by `id` and each inner
`status` is read on its own (GRAPH_NOTES.md "JSON batching").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from itertools import islice
from typing import Any

MAX_BATCH = 20


def _version() -> str:
    try:
        return metadata.version("batch-rotate")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


# Sent on every request, inner ones too: recovery-key reads mark User-Agent as required.
USER_AGENT = f"batch-rotate/{_version()}"


class BatchFormatError(ValueError):
    """The batch response body is not the documented shape (truncated, not JSON, no `responses`)."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One inner request; `key` is the caller's handle (journal row), `url` is version-relative."""

    key: int
    method: str
    url: str
    client_request_id: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InnerResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class GraphErrorInfo:
    code: str = ""
    message: str = ""
    request_id: str = ""


def chunks(items: Iterable[BatchItem], size: int = MAX_BATCH) -> Iterator[list[BatchItem]]:
    """Split items into lists of at most `size` (Graph refuses more than 20 in one batch)."""
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size must be 1..{MAX_BATCH}, got {size}")
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def build_payload(items: Sequence[BatchItem]) -> dict[str, Any]:
    """The `$batch` body; inner ids are positions ("1".."n"), unique by construction."""
    if not 1 <= len(items) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1..{MAX_BATCH} requests, got {len(items)}")
    requests = []
    for index, item in enumerate(items, start=1):
        request: dict[str, Any] = {
            "id": str(index),
            "method": item.method,
            "url": item.url,
            "headers": {"client-request-id": item.client_request_id, "User-Agent": USER_AGENT},
        }
        if item.method in ("POST", "PUT", "PATCH"):
            # A body needs an explicit Content-Type inside a batch; {} is fine for actions.
            request["headers"]["Content-Type"] = "application/json"
            request["body"] = item.body if item.body is not None else {}
        requests.append(request)
    return {"requests": requests}


def match_responses(
    items: Sequence[BatchItem], body: Any
) -> tuple[dict[int, InnerResponse], list[BatchItem]]:
    """Map each item's key to its inner response; also return the items the response left out."""
    if not isinstance(body, dict) or not isinstance(body.get("responses"), list):
        raise BatchFormatError("batch response has no 'responses' list")
    by_id = {str(index): item for index, item in enumerate(items, start=1)}
    matched: dict[int, InnerResponse] = {}
    for raw in body["responses"]:
        if not isinstance(raw, dict):
            continue
        item = by_id.get(str(raw.get("id")))
        status = raw.get("status")
        if item is None or item.key in matched or not isinstance(status, int):
            continue  # unknown id, a repeat, or no status: treat as not answered
        headers = raw.get("headers") if isinstance(raw.get("headers"), dict) else {}
        matched[item.key] = InnerResponse(
            status=status,
            headers={str(k).lower(): str(v) for k, v in (headers or {}).items()},
            body=raw.get("body"),
        )
    missing = [item for item in items if item.key not in matched]
    return matched, missing


def error_info(body: Any) -> GraphErrorInfo:
    """Code, message and request-id from a Graph error body; any other shape gives blanks."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return GraphErrorInfo(message=error)
    if not isinstance(error, dict):
        return GraphErrorInfo()
    inner = error.get("innerError") or error.get("innererror")
    request_id = ""
    if isinstance(inner, dict):
        request_id = _text(inner.get("request-id") or inner.get("requestId"))
    return GraphErrorInfo(
        code=_text(error.get("code")), message=_text(error.get("message")), request_id=request_id
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
