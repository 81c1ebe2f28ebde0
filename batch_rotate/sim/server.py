"""The simulated tenant: identity platform + Graph managed devices, rotate, `$batch`, throttling.

One aiohttp.web app over TLS. Direct calls and `$batch` inner requests go through the same
`_dispatch`, so both are authorised, counted and throttled alike. Never imported by product code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import secrets
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from batch_rotate.sim.inventory import generate, load
from batch_rotate.sim.tls import make_server_tls

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROTATE_ROLES = frozenset(
    {
        "DeviceManagementManagedDevices.ReadWrite.All",
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
    }
)
READ_ROLES = ROTATE_ROLES | {"DeviceManagementManagedDevices.Read.All"}


@dataclass
class FaultConfig:
    """Per-request fault probabilities (seeded). Batch-level faults hit before any processing."""

    inner_500: float = 0.0
    inner_502: float = 0.0
    inner_503: float = 0.0
    inner_503_retry_after: float = 0.0
    inner_504: float = 0.0
    inner_429_no_retry_after: float = 0.0
    batch_429: float = 0.0
    batch_503: float = 0.0
    batch_504: float = 0.0
    connection_reset: float = 0.0
    timeout: float = 0.0
    truncated_body: float = 0.0
    non_json_body: float = 0.0
    omit_ids: float = 0.0
    timeout_s: float = 30.0

    @classmethod
    def mix(cls, rate: float = 0.02, timeout_s: float = 3.0) -> FaultConfig:
        """Every fault at `rate` (the benchmark's and tests' "full fault mix")."""
        names = [f for f in cls.__dataclass_fields__ if f != "timeout_s"]
        return cls(**{name: rate for name in names}, timeout_s=timeout_s)


@dataclass
class SimConfig:
    tenant_id: str = "00000000-0000-4000-8000-00000000a11c"
    client_id: str = "00000000-0000-4000-8000-0000000c11e7"
    client_secret: str = "sim-secret-Q7w9Zt3Lk2"
    certificates: list[bytes] = field(default_factory=list)
    roles: list[str] = field(
        default_factory=lambda: [
            "DeviceManagementManagedDevices.ReadWrite.All",
            "DeviceManagementManagedDevices.Read.All",
            "BitLockerKey.ReadBasic.All",
        ]
    )
    token_lifetime_s: float = 3599.0
    seed: int = 1
    devices: int = 500
    inventory_file: Path | None = None
    page_size: int = 1000
    time_scale: float = 1.0
    app_write_limit: int = 200
    tenant_write_limit: int = 400
    app_any_limit: int = 2000
    tenant_any_limit: int = 4000
    window_s: float = 20.0
    throttling: bool = True
    neighbour_write_share: float = 0.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    latency_s: float = 0.0


class _Metrics:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.faults: dict[str, int] = defaultdict(int)
        self.accepted_by_device: dict[str, int] = defaultdict(int)
        self.write_windows: dict[int, int] = defaultdict(int)
        self.accepted_windows: dict[int, int] = defaultdict(int)
        self.in_flight = 0
        self.peak_concurrency = 0

    def snapshot(self) -> dict[str, Any]:
        accepted = dict(self.accepted_by_device)
        last = max(self.write_windows, default=-1)
        return {
            **{k: self.counts.get(k, 0) for k in _COUNTERS},
            "rotate_accepted": sum(accepted.values()),
            "devices_rotated": len(accepted),
            "duplicate_rotations": sum(max(0, n - 1) for n in accepted.values()),
            "accepted_by_device": accepted,
            "faults_injected": dict(self.faults),
            "peak_concurrency": self.peak_concurrency,
            "write_windows": [self.write_windows.get(i, 0) for i in range(last + 1)],
            "accepted_windows": [self.accepted_windows.get(i, 0) for i in range(last + 1)],
        }


_COUNTERS = (
    "token_requests",
    "graph_requests",
    "inner_requests",
    "batch_requests",
    "rotate_calls",
    "throttled_429_inner",
    "throttled_429_outer",
    "early_retries",
    "reads",
    "writes",
)


class _Budget:
    """Fixed windows aligned on the server's start; every request counts, throttled or not."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.start = time.monotonic()
        self.used: dict[tuple[int, str, str], int] = defaultdict(int)

    @property
    def window_real_s(self) -> float:
        return self.config.window_s / self.config.time_scale

    def window(self) -> tuple[int, float]:
        elapsed = time.monotonic() - self.start
        index = int(elapsed // self.window_real_s)
        return index, (index + 1) * self.window_real_s - elapsed

    def take(self, app: str, write: bool) -> tuple[int, float | None]:
        """Count one request; return (window, seconds to wait) where the wait is None if allowed."""
        cfg = self.config
        index, remaining = self.window()
        kinds = ("write", "any") if write else ("any",)
        for kind in kinds:
            self.used[(index, app, kind)] += 1
            self.used[(index, "*", kind)] += 1
        if not cfg.throttling:
            return index, None
        # The neighbour takes its share as each window opens: what is left is exact.
        neighbour = cfg.neighbour_write_share * cfg.tenant_write_limit
        over = (
            self.used[(index, app, "any")] > cfg.app_any_limit
            or self.used[(index, "*", "any")] + neighbour > cfg.tenant_any_limit
        )
        if write:
            over = over or self.used[(index, app, "write")] > cfg.app_write_limit
            over = over or self.used[(index, "*", "write")] + neighbour > cfg.tenant_write_limit
        return index, (remaining if over else None)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _graph_error(
    status: int, code: str, message: str, client_request_id: str
) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "request-id": str(uuid.uuid4()),
                "date": _now_iso(),
                "client-request-id": client_request_id,
            },
        }
    }
    return status, {"Content-Type": "application/json"}, body


class _Tenant:
    """State and request handling; runs on the server's event loop."""

    def __init__(self, config: SimConfig, base_url_ref: list[str]) -> None:
        self.config = config
        self._base = base_url_ref
        self.metrics = _Metrics()
        self.budget = _Budget(config)
        self.rng = random.Random(config.seed)
        self.signing_key = secrets.token_bytes(32)
        fleet = (
            load(config.inventory_file)
            if config.inventory_file
            else generate(config.devices, config.seed)
        )
        self.devices: dict[str, dict[str, Any]] = {d["id"].lower(): d for d in fleet}
        self.order = list(self.devices)
        self.retry_deadline: dict[str, float] = {}
        self.certs = {}
        for pem in config.certificates:
            cert = x509.load_pem_x509_certificate(pem)
            self.certs[_b64(cert.fingerprint(hashes.SHA1()))] = cert  # noqa: S303 - x5t is SHA-1
            self.certs[_b64(cert.fingerprint(hashes.SHA256()))] = cert

    @property
    def base_url(self) -> str:
        return self._base[0]

    # --- identity platform ------------------------------------------------------------------
    async def openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant not in (self.config.tenant_id, "organizations", "common"):
            return web.json_response(
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
                status=400,
            )
        root = f"{self.base_url}/{tenant}"
        return web.json_response(
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "issuer": f"{self.base_url}/{self.config.tenant_id}/v2.0",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "tenant_region_scope": "WW",
            }
        )

    def _identity_error(self, status: int, error: str, code: int, text: str) -> web.Response:
        return web.json_response(
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {uuid.uuid4()} Correlation ID: {uuid.uuid4()} Timestamp: {_now_iso()}",
                "error_codes": [code],
                "timestamp": _now_iso(),
                "trace_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()),
            },
            status=status,
        )

    async def token(self, request: web.Request) -> web.Response:
        self.metrics.counts["token_requests"] += 1
        tenant = request.match_info["tenant"]
        form = await request.post()
        if tenant != self.config.tenant_id:
            return self._identity_error(
                400, "invalid_request", 90002, f"Tenant '{tenant}' not found."
            )
        if form.get("grant_type") != "client_credentials":
            return self._identity_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = str(form.get("client_id", ""))
        if client_id != self.config.client_id:
            return self._identity_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        endpoint = f"{self.base_url}/{tenant}/oauth2/v2.0/token"
        if "client_secret" in form:
            if not secrets.compare_digest(str(form["client_secret"]), self.config.client_secret):
                return self._identity_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                )
        elif "client_assertion" in form:
            problem = self._check_assertion(str(form["client_assertion"]), endpoint)
            if problem:
                return self._identity_error(401, "invalid_client", 700027, problem)
        else:
            return self._identity_error(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )
        scope = str(form.get("scope", ""))
        if not scope.endswith("/.default"):
            return self._identity_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
            )
        now = int(time.time())
        lifetime = self.config.token_lifetime_s
        claims = {
            "aud": scope[: -len("/.default")],
            "iss": f"{self.base_url}/{self.config.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": self.config.tenant_id,
            "appid": client_id,
            "oid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "idtyp": "app",
            "roles": list(self.config.roles),
            "jti": secrets.token_hex(8),
        }
        token = jwt.encode(claims, self.signing_key, algorithm="HS256")
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": int(lifetime),
                "ext_expires_in": int(lifetime),
                "access_token": token,
            }
        )

    def _check_assertion(self, assertion: str, endpoint: str) -> str | None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return "Client assertion is not a valid JWT."
        thumbprint = str(header.get("x5t#S256") or header.get("x5t") or "")
        cert = self.certs.get(thumbprint.replace("+", "-").replace("/", "_").rstrip("="))
        if cert is None:
            return f"Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{header.get('x5t#S256') or header.get('x5t')}']"
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256", "ES256"],
                audience=endpoint,
            )
        except jwt.PyJWTError as exc:
            return f"Client assertion failed validation: {type(exc).__name__}."
        if claims.get("iss") != self.config.client_id or claims.get("sub") != self.config.client_id:
            return "Client assertion iss/sub must be the client id."
        return None

    # --- Graph ---------------------------------------------------------------------------------
    def _auth(self, authorization: str | None) -> tuple[dict[str, Any] | None, str]:
        if not authorization or not authorization.startswith("Bearer "):
            return None, "Access token is empty."
        try:
            claims = jwt.decode(
                authorization[len("Bearer ") :],
                self.signing_key,
                algorithms=["HS256"],
                audience=self.base_url,
            )
        except jwt.ExpiredSignatureError:
            return None, "Lifetime validation failed, the token is expired."
        except jwt.InvalidAudienceError:
            return None, "Invalid audience."
        except jwt.PyJWTError:
            return None, "IDX14100: JWT is not well formed."
        return claims, ""

    async def graph(self, request: web.Request) -> web.StreamResponse:
        self.metrics.counts["graph_requests"] += 1
        crid = request.headers.get("client-request-id", str(uuid.uuid4()))
        found, problem = self._auth(request.headers.get("Authorization"))
        version, rest = request.match_info["version"], request.match_info["rest"]
        if found is None:
            status, headers, body = _graph_error(401, "InvalidAuthenticationToken", problem, crid)
            headers["WWW-Authenticate"] = (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'
            )
            return self._respond(status, headers, body, crid)
        claims = found
        if rest == "$batch" and request.method == "POST":
            return await self._batch(request, version, claims, crid)
        raw = await request.read()
        payload_in: Any = json.loads(raw) if raw else None
        status, headers, payload = await self._dispatch(
            request.method,
            version,
            rest,
            request.query_string,
            dict(request.headers),
            payload_in,
            claims,
            crid,
        )
        return self._respond(status, headers, payload, crid)

    def _respond(self, status: int, headers: dict[str, str], body: Any, crid: str) -> web.Response:
        out = {**headers, "request-id": str(uuid.uuid4()), "client-request-id": crid}
        if status == 204 or body is None:
            out.pop("Content-Type", None)
            return web.Response(status=status, headers=out)
        return web.Response(
            status=status,
            text=json.dumps(body),
            headers={**out, "Content-Type": "application/json"},
        )

    async def _dispatch(
        self,
        method: str,
        version: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: Any,
        claims: dict[str, Any],
        crid: str,
    ) -> tuple[int, dict[str, str], Any]:
        """One Graph request (direct or inside a batch): budget, then routing."""
        self.metrics.counts["inner_requests"] += 1
        write = method in WRITE_METHODS
        self.metrics.counts["writes" if write else "reads"] += 1
        segments = [s for s in path.strip("/").split("/") if s]
        device_id = segments[2].lower() if len(segments) >= 3 else ""
        window, wait = self.budget.take(str(claims.get("appid")), write)
        if write:
            self.metrics.write_windows[window] += 1
            if device_id and time.monotonic() < self.retry_deadline.get(device_id, 0.0):
                self.metrics.counts["early_retries"] += 1
        if wait is not None:
            self.metrics.counts["throttled_429_inner"] += 1
            if device_id:
                self.retry_deadline[device_id] = time.monotonic() + wait
            status, hdrs, err = _graph_error(
                429,
                "TooManyRequests",
                "Too many requests. Please retry after the time in the Retry-After header.",
                crid,
            )
            hdrs["Retry-After"] = self._retry_after(wait)
            return status, hdrs, err
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s / self.config.time_scale)
        roles = set(claims.get("roles") or [])
        if segments[:2] != ["deviceManagement", "managedDevices"]:
            return _graph_error(
                400,
                "BadRequest",
                f"Resource not found for the segment '{segments[0] if segments else ''}'.",
                crid,
            )
        if method == "GET" and len(segments) == 2:
            if not roles & READ_ROLES:
                return _graph_error(
                    403,
                    "Forbidden",
                    "Application is not authorized to perform this operation. Application must have one of the following scopes: DeviceManagementManagedDevices.Read.All, DeviceManagementManagedDevices.ReadWrite.All",
                    crid,
                )
            return self._list(version, parse_qs(query))
        device = self.devices.get(device_id)
        if method == "GET" and len(segments) == 3:
            if not roles & READ_ROLES:
                return _graph_error(
                    403,
                    "Forbidden",
                    "Application is not authorized to perform this operation.",
                    crid,
                )
            if device is None:
                return _graph_error(
                    404,
                    "ResourceNotFound",
                    f"Resource not found: managedDevices('{segments[2]}')",
                    crid,
                )
            return 200, {"Content-Type": "application/json"}, self._select(device, parse_qs(query))
        if method == "POST" and len(segments) == 4 and segments[3] == "rotateBitLockerKeys":
            self.metrics.counts["rotate_calls"] += 1
            if version != "beta":
                return _graph_error(
                    400,
                    "BadRequest",
                    "Resource not found for the segment 'rotateBitLockerKeys'.",
                    crid,
                )
            if not roles & ROTATE_ROLES:
                return _graph_error(
                    403,
                    "Forbidden",
                    "Application is not authorized to perform this operation. Application must have one of the following scopes: DeviceManagementManagedDevices.PrivilegedOperations.All, DeviceManagementManagedDevices.ReadWrite.All",
                    crid,
                )
            if device is None:
                return _graph_error(
                    404,
                    "ResourceNotFound",
                    f"Resource not found: managedDevices('{segments[2]}')",
                    crid,
                )
            if device["operatingSystem"] != "Windows":
                # The sim's assumption: Intune refuses the action for other platforms with 400.
                return _graph_error(
                    400,
                    "BadRequest",
                    "Rotate BitLocker keys is not supported on this platform.",
                    crid,
                )
            self.metrics.accepted_by_device[device["id"]] += 1
            self.metrics.accepted_windows[window] += 1
            now = _now_iso()
            device["deviceActionResults"] = [
                a for a in device["deviceActionResults"] if a["actionName"] != "rotateBitLockerKeys"
            ] + [
                {
                    "actionName": "rotateBitLockerKeys",
                    "actionState": "pending",
                    "startDateTime": now,
                    "lastUpdatedDateTime": now,
                }
            ]
            return 204, {}, None
        return _graph_error(405, "BadRequest", f"{method} is not supported on this resource.", crid)

    def _retry_after(self, wait: float) -> str:
        if self.config.time_scale == 1.0:
            return str(max(1, math.ceil(wait)))
        return f"{max(wait, 0.001):.3f}"

    def _select(self, device: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        select = query.get("$select", [""])[0]
        if not select:
            return dict(device)
        fields = {"id", *select.split(",")}
        return {k: v for k, v in device.items() if k in fields}

    def _list(self, version: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        ids = self.order
        flt = query.get("$filter", [""])[0]
        for prop in ("operatingSystem", "deviceName", "serialNumber", "azureADDeviceId"):
            prefix = f"{prop} eq '"
            if flt.startswith(prefix) and flt.endswith("'"):
                wanted = flt[len(prefix) : -1].lower()
                ids = [i for i in ids if str(self.devices[i].get(prop, "")).lower() == wanted]
        top = min(int(query.get("$top", [self.config.page_size])[0]), self.config.page_size)
        skip = int(query.get("$skiptoken", ["0"])[0] or 0)
        page = [self._select(self.devices[i], query) for i in ids[skip : skip + top]]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/{version}/$metadata#deviceManagement/managedDevices",
            "value": page,
        }
        if skip + top < len(ids):
            params = [f"$skiptoken={skip + top}", f"$top={top}"]
            for name in ("$select", "$filter"):
                if name in query:
                    params.append(f"{name}={quote(query[name][0], safe=',')}")
            body["@odata.nextLink"] = (
                f"{self.base_url}/{version}/deviceManagement/managedDevices?{'&'.join(params)}"
            )
        return 200, {"Content-Type": "application/json"}, body

    async def _batch(
        self, request: web.Request, version: str, claims: dict[str, Any], crid: str
    ) -> web.StreamResponse:
        self.metrics.counts["batch_requests"] += 1
        faults = self.config.faults
        roll = self._fault_roll
        if roll("connection_reset", faults.connection_reset):
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if roll("timeout", faults.timeout):
            # Held past the client's timeout, then refused: nothing in it was processed.
            await asyncio.sleep(faults.timeout_s)
            return self._respond(
                *_graph_error(504, "GatewayTimeout", "Injected timeout.", crid), crid
            )
        for name, status in (("batch_429", 429), ("batch_503", 503), ("batch_504", 504)):
            if roll(name, getattr(faults, name)):
                if status == 429:
                    self.metrics.counts["throttled_429_outer"] += 1
                s, h, b = _graph_error(
                    status,
                    {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"}[
                        status
                    ],
                    "Injected batch fault.",
                    crid,
                )
                if status in (429, 503):
                    h["Retry-After"] = self._retry_after(
                        1.0 / self.config.time_scale if self.config.time_scale != 1 else 1.0
                    )
                return self._respond(s, h, b, crid)
        if roll("non_json_body", faults.non_json_body):
            return web.Response(
                status=502,
                text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                content_type="text/html",
            )
        if roll("truncated_body", faults.truncated_body):
            # A body cut short before any inner request was processed.
            text = '{"responses": [{"id": "1", "status": 2'
            return web.Response(status=200, text=text, headers={"Content-Type": "application/json"})
        try:
            payload = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._respond(
                *_graph_error(400, "BadRequest", "Invalid batch payload format.", crid), crid
            )
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests:
            return self._respond(
                *_graph_error(400, "BadRequest", "Invalid batch payload format.", crid), crid
            )
        if len(requests) > 20:
            return self._respond(
                *_graph_error(
                    400, "BadRequest", "The number of requests in the batch exceeds 20.", crid
                ),
                crid,
            )
        ids = [r.get("id") if isinstance(r, dict) else None for r in requests]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            return self._respond(
                *_graph_error(
                    400, "BadRequest", "Batch request ids must be unique non-empty strings.", crid
                ),
                crid,
            )
        if any(not inner.get("method") or not inner.get("url") for inner in requests):
            return self._respond(
                *_graph_error(400, "BadRequest", "Batch request must have method and url.", crid),
                crid,
            )
        # Omitted ids are neither processed nor answered; the rest run concurrently, as in Graph.
        kept = [inner for inner in requests if not roll("omit_ids", faults.omit_ids)]
        responses = list(
            await asyncio.gather(*(self._inner(version, inner, claims) for inner in kept))
        )
        self.rng.shuffle(responses)
        text = json.dumps({"responses": responses})
        return web.Response(
            status=200,
            text=text,
            headers={
                "Content-Type": "application/json",
                "request-id": str(uuid.uuid4()),
                "client-request-id": crid,
            },
        )

    async def _inner(
        self, version: str, inner: dict[str, Any], claims: dict[str, Any]
    ) -> dict[str, Any]:
        headers = {str(k): str(v) for k, v in (inner.get("headers") or {}).items()}
        crid = headers.get("client-request-id", str(uuid.uuid4()))
        faults = self.config.faults
        roll = self._fault_roll
        status: int
        hdrs: dict[str, str]
        body: Any
        if "body" in inner and not any(k.lower() == "content-type" for k in headers):
            status, hdrs, body = _graph_error(
                400, "BadRequest", "Content-Type header is required for requests with a body.", crid
            )
        elif roll("inner_429_no_retry_after", faults.inner_429_no_retry_after):
            self.metrics.counts["throttled_429_inner"] += 1
            status, hdrs, body = _graph_error(429, "TooManyRequests", "Too many requests.", crid)
        elif roll("inner_503_retry_after", faults.inner_503_retry_after):
            status, hdrs, body = _graph_error(503, "ServiceUnavailable", "Injected fault.", crid)
            hdrs["Retry-After"] = self._retry_after(
                1.0 / self.config.time_scale if self.config.time_scale != 1 else 1.0
            )
        else:
            for name, code in (
                ("inner_500", 500),
                ("inner_502", 502),
                ("inner_503", 503),
                ("inner_504", 504),
            ):
                if roll(name, getattr(faults, name)):
                    status, hdrs, body = _graph_error(
                        code,
                        {
                            500: "InternalServerError",
                            502: "BadGateway",
                            503: "ServiceUnavailable",
                            504: "GatewayTimeout",
                        }[code],
                        "Injected fault.",
                        crid,
                    )
                    break
            else:
                url = urlsplit(str(inner["url"]))
                status, hdrs, body = await self._dispatch(
                    str(inner["method"]).upper(),
                    version,
                    url.path,
                    url.query,
                    headers,
                    inner.get("body"),
                    claims,
                    crid,
                )
        answer: dict[str, Any] = {
            "id": inner["id"],
            "status": status,
            "headers": {k: v for k, v in hdrs.items()},
        }
        if body is not None and status != 204:
            answer["body"] = body
        return answer

    def _fault_roll(self, name: str, probability: float) -> bool:
        if probability and self.rng.random() < probability:
            self.metrics.faults[name] += 1
            return True
        return False

    async def metrics_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.metrics.snapshot())

    async def reset_view(self, request: web.Request) -> web.Response:
        self.metrics.reset()
        return web.json_response({"ok": True})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def build_app(tenant: _Tenant) -> web.Application:
    @web.middleware
    async def concurrency(request: web.Request, handler: Any) -> web.StreamResponse:
        tenant.metrics.in_flight += 1
        tenant.metrics.peak_concurrency = max(
            tenant.metrics.peak_concurrency, tenant.metrics.in_flight
        )
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            tenant.metrics.in_flight -= 1

    app = web.Application(middlewares=[concurrency], client_max_size=8 * 1024 * 1024)
    app.router.add_get("/_sim/metrics", tenant.metrics_view)
    app.router.add_post("/_sim/reset", tenant.reset_view)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", tenant.openid)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", tenant.token)
    app.router.add_route("*", r"/{version:(beta|v1\.0)}/{rest:.*}", tenant.graph)
    return app


class SimTenant:
    """The simulated tenant in a background thread with its own event loop; a context manager."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or SimConfig()
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self._base = [""]
        self._tenant: _Tenant | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.ca_path = self.workdir / "ca.pem"

    @property
    def base_url(self) -> str:
        return self._base[0]

    @property
    def authority_url(self) -> str:
        return f"{self.base_url}/{self.config.tenant_id}"

    @property
    def graph_url(self) -> str:
        return self.base_url

    @property
    def inventory(self) -> list[dict[str, Any]]:
        assert self._tenant is not None
        return list(self._tenant.devices.values())

    def env(self) -> dict[str, str]:
        return {
            "AZURE_TENANT_ID": self.config.tenant_id,
            "AZURE_CLIENT_ID": self.config.client_id,
            "AZURE_CLIENT_SECRET": self.config.client_secret,
        }

    def start(self) -> SimTenant:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_server())
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_server())
            loop.close()

        self._thread = threading.Thread(target=run, name="sim-tenant", daemon=True)
        self._thread.start()
        ready.wait(60)
        if errors:
            raise errors[0]
        return self

    async def _start_server(self) -> None:
        context, self.ca_path = make_server_tls(self.workdir)
        self._tenant = _Tenant(self.config, self._base)
        self._runner = web.AppRunner(build_app(self._tenant), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._base[0] = f"https://{self.host}:{self.port}"

    async def _stop_server(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> SimTenant:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def metrics(self) -> dict[str, Any]:
        assert self._tenant is not None and self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
        return future.result(30)

    async def _snapshot(self) -> dict[str, Any]:
        assert self._tenant is not None
        return self._tenant.metrics.snapshot()

    def reset_metrics(self) -> None:
        assert self._tenant is not None and self._loop is not None
        self._loop.call_soon_threadsafe(self._tenant.metrics.reset)


def serve_forever(config: SimConfig, *, host: str, port: int, workdir: Path) -> None:
    """Run standalone until Ctrl-C, printing what a client needs to use it."""
    sim = SimTenant(config, workdir=workdir, host=host, port=port).start()
    print(
        f"simulated tenant running ({len(sim.inventory)} devices, time scale {config.time_scale})\n"
        f"  authority URL : {sim.authority_url}\n"
        f"  Graph URL     : {sim.graph_url}\n"
        f"  tenant id     : {config.tenant_id}\n"
        f"  client id     : {config.client_id}\n"
        f"  client secret : {config.client_secret}\n"
        f"  CA file       : {sim.ca_path.resolve()}\n\n"
        "In another shell:\n"
        f"  export AZURE_TENANT_ID={config.tenant_id} AZURE_CLIENT_ID={config.client_id} "
        f"AZURE_CLIENT_SECRET={config.client_secret}\n"
        f"  batch-rotate rotate inputs/sample-devices.csv --authority-url {sim.authority_url} "
        f"--graph-url {sim.graph_url} --ca-bundle {sim.ca_path.resolve()}\n\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped")
    finally:
        sim.stop()
