"""The aiohttp Graph client: headers, TLS trust, proxy, token renewal on 401, error mapping.

Every request carries a fresh `client-request-id`; transport trouble becomes `TransportError`
so callers treat it as retryable data instead of crashing the run. The proxy is the one sign-in
uses (`graph/proxy.py`); TLS to Graph is verified end to end through the CONNECT tunnel.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from batch_rotate.graph.auth import TokenProvider, error_text
from batch_rotate.graph.batch import (
    USER_AGENT,
    BatchFormatError,
    BatchItem,
    InnerResponse,
    build_payload,
    match_responses,
)
from batch_rotate.graph.breaker import Breaker
from batch_rotate.graph.endpoints import Endpoints
from batch_rotate.graph.errors import ServiceError, TransportError
from batch_rotate.graph.proxy import check_proxy, proxy_for, redact, without_credentials

__all__ = ["BatchResult", "GraphClient", "GraphResponse", "TransportError", "ssl_context"]
# --debug: one line per HTTP exchange. Never headers (the token), never the query (filters name
# devices and users).
http_log = logging.getLogger("batch_rotate.graph")


@dataclass(frozen=True, slots=True)
class GraphResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: Any
    request_id: str
    client_request_id: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A `$batch` POST answered 200: inner responses by item key, and the items left out."""

    outer: GraphResponse
    responses: dict[int, InnerResponse] = field(default_factory=dict)
    missing: list[BatchItem] = field(default_factory=list)


def ssl_context(endpoints: Endpoints) -> ssl.SSLContext:
    """System trust plus the optional extra CA; verification always on."""
    context = ssl.create_default_context()
    if endpoints.ca_bundle is not None:
        context.load_verify_locations(cafile=str(endpoints.ca_bundle))
    return context


class GraphClient:
    """One aiohttp session to Graph; use as `async with GraphClient(...) as graph:`."""

    def __init__(
        self,
        endpoints: Endpoints,
        tokens: TokenProvider,
        *,
        timeout_s: float = 60.0,
        max_connections: int = 16,
        breaker: Breaker | None = None,
    ) -> None:
        self.endpoints = endpoints
        self._breaker = breaker
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, tuple[str | None, aiohttp.BasicAuth | None]] = {}

    async def __aenter__(self) -> GraphClient:
        connector = aiohttp.TCPConnector(
            ssl=ssl_context(self.endpoints), limit=self._max_connections
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            # the proxy is chosen per request by `_proxy`; trust_env would also read ~/.netrc
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _proxy(self, url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
        """The proxy for this URL's origin (decided once per origin) and its credentials."""
        origin = _origin(url)
        if origin not in self._proxies:
            chosen = proxy_for(url, self.endpoints.proxy)
            if chosen is None:
                self._proxies[origin] = (None, None)
            else:
                source = "--proxy" if self.endpoints.proxy else "HTTPS_PROXY/HTTP_PROXY/ALL_PROXY"
                bare, user, password = without_credentials(check_proxy(chosen, source=source))
                auth = aiohttp.BasicAuth(user, password or "") if user is not None else None
                self._proxies[origin] = (bare, auth)
        return self._proxies[origin]

    def url(self, path: str, version: str = "beta") -> str:
        """The URL for a relative path, or an absolute link checked to stay on Graph's origin."""
        if "://" not in path:
            return f"{self.endpoints.graph_url}/{version}/{path.lstrip('/')}"
        home = _origin(self.endpoints.graph_url)
        if _origin(path) != home:  # the request would carry the bearer token there
            raise ServiceError(
                f"refusing to send the access token to {_origin(path)}: Graph returned a link "
                f"outside its own origin {home}; nothing was sent there"
            )
        return path

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str = "beta",
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        """One Graph call; renews the token and retries once if Graph answers 401. `headers`
        add to the client's own (e.g. `ConsistencyLevel`); they never replace them."""
        url = self.url(path, version)
        response = await self._send(method, url, json_body, params, False, headers)
        if response.status == 401:
            response = await self._send(method, url, json_body, params, True, headers)
        return response

    async def _send(
        self,
        method: str,
        url: str,
        json_body: Any,
        params: Mapping[str, str] | None,
        force_refresh: bool,
        extra: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        assert self._session is not None, "use GraphClient as an async context manager"
        if self._breaker is not None:
            self._breaker.check()  # an outage: send nothing more
        token = await self._tokens.token(force_refresh=force_refresh)
        client_request_id = str(uuid.uuid4())
        headers = {
            **(extra or {}),
            "Authorization": f"Bearer {token}",
            "client-request-id": client_request_id,
            "return-client-request-id": "true",
        }
        proxy, proxy_auth = self._proxy(url)
        try:
            async with self._session.request(
                method,
                url,
                json=json_body,
                params=params,
                headers=headers,
                allow_redirects=False,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as resp:
                raw = await resp.read()
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            # No connection (refused, DNS, TLS handshake): the request never left. Anything
            # later (reset, timeout, a cut body) may have been processed by Graph.
            never_sent = isinstance(exc, aiohttp.ClientConnectorError | ssl.SSLError)
            text = _describe_transport(exc, url, proxy)
            http_log.debug("%s %s -> %s", method, url.split("?", 1)[0], type(exc).__name__)
            if self._breaker is not None:
                refused = isinstance(exc, aiohttp.ClientConnectorError)
                self._breaker.failed(text, refused=refused)
            raise TransportError(text, maybe_sent=not never_sent) from None
        http_log.debug(
            "%s %s -> %s (request-id %s, client-request-id %s)",
            method,
            url.split("?", 1)[0],
            status,
            resp_headers.get("request-id", ""),
            client_request_id,
        )
        if self._breaker is not None:
            if status >= 500:
                self._breaker.failed(f"{method} {url}: HTTP {status}", refused=False)
            else:
                self._breaker.succeeded()
        if 300 <= status < 400:  # a redirect could lead the token elsewhere: never follow it
            location = resp_headers.get("location", "nowhere")
            raise ServiceError(
                f"{method} {url}: Graph answered {status} redirect to {location}; redirects are "
                f"not followed so the token stays on {_origin(url)}"
            )
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                if status < 300:
                    raise TransportError(
                        f"{method} {url}: answer {status} is not JSON "
                        f"({len(raw)} bytes, {resp_headers.get('content-type', 'no type')})"
                    ) from None
                body = None  # an HTML error page from a gateway: the status says enough
        return GraphResponse(
            status=status,
            headers=resp_headers,
            body=body,
            request_id=resp_headers.get("request-id", ""),
            client_request_id=client_request_id,
        )

    async def batch(self, items: Sequence[BatchItem], *, version: str = "beta") -> BatchResult:
        """POST one `$batch`. A non-200 outer answer is returned as is for the caller to handle."""
        payload = build_payload(items)
        outer = await self.request("POST", "$batch", version=version, json_body=payload)
        if outer.status != 200:
            return BatchResult(outer=outer, missing=list(items))
        try:
            responses, missing = match_responses(items, outer.body)
        except BatchFormatError as exc:
            raise TransportError(f"$batch answer unusable: {exc}") from None
        return BatchResult(outer=outer, responses=responses, missing=missing)


def _origin(url: str) -> str:
    """scheme://host:port, lower-cased, with the default port spelled out."""
    try:
        parsed = URL(url)
    except ValueError:
        return url.split("/", 3)[2] if url.count("/") >= 2 else url
    return f"{(parsed.scheme or '').lower()}://{(parsed.host or '').lower()}:{parsed.port}"


def _describe_transport(exc: BaseException, url: str, proxy: str | None = None) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out waiting for {url}" + (
            f" through the proxy {redact(proxy)}" if proxy else ""
        )
    if proxy and isinstance(exc, aiohttp.ClientHttpProxyError):
        return (
            f"the proxy {redact(proxy)} answered {exc.status} {exc.message} to the CONNECT for "
            f"{url}; check --proxy (and its user:password) or HTTPS_PROXY"
        )
    if proxy and isinstance(exc, aiohttp.ClientProxyConnectionError):
        return (
            f"cannot connect to the proxy {redact(proxy)} for {url}; check --proxy or "
            "HTTPS_PROXY, or NO_PROXY to reach Graph directly"
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (
            f"TLS certificate of {url} is not trusted ({exc.certificate_error}); "
            "add the issuing CA with --ca-bundle"
        )
    text = error_text(str(exc))
    return f"{type(exc).__name__} talking to {url}: {text}".rstrip(": ")
