"""The simulated tenant: identity platform + Graph managed devices, rotate, `$batch`, throttling.

One aiohttp.web app over TLS. Direct calls and `$batch` inner requests go through the same
`_dispatch`, so both are authorised, counted and throttled alike. Never imported by product code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from batch_rotate.sim.budget import WRITE_METHODS, Budget
from batch_rotate.sim.config import FaultConfig, SimConfig
from batch_rotate.sim.escrow import Escrow
from batch_rotate.sim.faults import Faults
from batch_rotate.sim.inventory import Fleet
from batch_rotate.sim.tls import make_server_tls
from batch_rotate.sim.tokens import AssertionVerifier, TokenIssuer

__all__ = ["FaultConfig", "SimConfig", "SimTenant", "build_app", "serve_forever"]

ROTATE_ROLES = frozenset(
    {
        "DeviceManagementManagedDevices.ReadWrite.All",
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
    }
)
READ_ROLES = ROTATE_ROLES | {"DeviceManagementManagedDevices.Read.All"}
KEY_ROLES = frozenset({"BitLockerKey.ReadBasic.All", "BitLockerKey.Read.All"})
_FILTERABLE = ("operatingSystem", "deviceName", "serialNumber", "azureADDeviceId")
_ERROR_CODES = {
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
Answer = tuple[int, dict[str, str], Any]


class _Metrics:
    def __init__(self) -> None:
        self.reset(0)

    def reset(self, window: int) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.faults: dict[str, int] = defaultdict(int)
        self.accepted_by_device: dict[str, int] = defaultdict(int)
        self.write_windows: dict[int, int] = defaultdict(int)
        self.accepted_windows: dict[int, int] = defaultdict(int)
        self.first_window = window  # lists start at the window of the last reset
        self.in_flight = 0
        self.peak_concurrency = 0

    def snapshot(self) -> dict[str, Any]:
        accepted = dict(self.accepted_by_device)
        last = max([*self.write_windows, *self.accepted_windows], default=self.first_window - 1)
        span = range(self.first_window, last + 1)
        return {
            **{k: self.counts.get(k, 0) for k in _COUNTERS},
            "rotate_accepted": sum(accepted.values()),
            "devices_rotated": len(accepted),
            "duplicate_rotations": sum(max(0, n - 1) for n in accepted.values()),
            "accepted_by_device": accepted,
            "faults_injected": dict(self.faults),
            "peak_concurrency": self.peak_concurrency,
            "write_windows": [self.write_windows.get(i, 0) for i in span],
            "accepted_windows": [self.accepted_windows.get(i, 0) for i in span],
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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _graph_error(status: int, code: str, message: str, client_request_id: str) -> Answer:
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


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{offset}".encode()).decode().rstrip("=")


def _offset(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(text.removeprefix("sim:")) if text.startswith("sim:") else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class _Tenant:
    """State and request handling; runs on the server's event loop."""

    def __init__(self, config: SimConfig, base_url_ref: list[str]) -> None:
        self.config = config
        self._base = base_url_ref
        self.budget = Budget(config)
        self.metrics = _Metrics()
        self.faults = Faults(config.faults, config.seed)
        self.metrics.faults = self.faults.injected
        self.shuffle_rng = random.Random(config.seed + 1)
        self.tokens = TokenIssuer()
        self.assertions = AssertionVerifier(config.certificates, config.client_id)
        self.fleet = (
            Fleet.load(config.inventory_file)
            if config.inventory_file
            else Fleet.generated(config.devices, config.seed)
        )
        self.retry_deadline: dict[str, float] = {}  # device id -> when the last Retry-After ends
        self.escrow = Escrow(config.seed, config.time_scale, config.escrow)

    @property
    def base_url(self) -> str:
        return self._base[0]

    def reset(self) -> None:
        self.metrics.reset(self.budget.window()[0])
        self.metrics.faults = self.faults.injected = defaultdict(int)
        self.retry_deadline.clear()

    # --- identity platform ------------------------------------------------------------------
    async def openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant != self.config.tenant_id:
            return self._identity_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
            )
        root = f"{self.base_url}/{tenant}"
        return web.json_response(
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.base_url}/{self.config.tenant_id}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles"],
                "kerberos_endpoint": f"{root}/kerberos",
                "tenant_region_scope": "WW",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": urlsplit(self.base_url).netloc,
                "rbac_url": "https://pas.windows.net",
            }
        )

    def _identity_error(self, status: int, error: str, code: int, text: str) -> web.Response:
        trace, correlation, stamp = str(uuid.uuid4()), str(uuid.uuid4()), _now_iso()
        return web.json_response(
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}",
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"{self.base_url}/error?code={code}",
            },
            status=status,
        )

    async def token(self, request: web.Request) -> web.Response:
        self.metrics.counts["token_requests"] += 1
        tenant = request.match_info["tenant"]
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        secret = str(form["client_secret"]) if "client_secret" in form else None
        basic = request.headers.get("Authorization", "")
        if basic.lower().startswith("basic "):  # client_secret_basic
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
                client_id, secret = client_id or user, password
        if tenant != self.config.tenant_id:
            return self._identity_error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
            )
        if form.get("grant_type") != "client_credentials":
            return self._identity_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            )
        if client_id != self.config.client_id:
            return self._identity_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
            )
        endpoint = f"{self.base_url}/{tenant}/oauth2/v2.0/token"
        if secret is not None:
            if not secrets.compare_digest(secret, self.config.client_secret):
                return self._identity_error(
                    401,
                    "invalid_client",
                    7000215,
                    f"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                )
        elif "client_assertion" in form:
            if form.get("client_assertion_type") != (
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ):
                return self._identity_error(
                    400,
                    "invalid_request",
                    50027,
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                )
            problem = self.assertions.check(str(form["client_assertion"]), endpoint)
            if problem:
                return self._identity_error(401, "invalid_client", 700027, problem)
        else:
            return self._identity_error(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )
        scope = str(form.get("scope", "")).strip()
        if not scope.endswith("/.default") or " " in scope:
            return self._identity_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        lifetime = self.config.token_lifetime_s
        token = self.tokens.issue(
            audience=scope[: -len("/.default")],
            issuer=f"{self.base_url}/{self.config.tenant_id}/",
            tenant_id=self.config.tenant_id,
            client_id=client_id,
            roles=self.config.roles,
            lifetime_s=lifetime,
        )
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": int(lifetime),
                "ext_expires_in": int(lifetime),
                "access_token": token,
            }
        )

    # --- Graph ---------------------------------------------------------------------------------
    async def graph(self, request: web.Request) -> web.StreamResponse:
        self.metrics.counts["graph_requests"] += 1
        crid = request.headers.get("client-request-id") or str(uuid.uuid4())
        claims, problem = self.tokens.verify(request.headers.get("Authorization"), self.base_url)
        version, rest = request.match_info["version"], request.match_info["rest"]
        if claims is None:
            status, headers, body = _graph_error(401, "InvalidAuthenticationToken", problem, crid)
            headers["WWW-Authenticate"] = (
                f'Bearer realm="", authorization_uri="{self.base_url}/common/oauth2/authorize", '
                'client_id="00000003-0000-0000-c000-000000000000"'
            )
            return self._respond(status, headers, body, crid)
        if rest == "$batch":
            if request.method != "POST":
                return self._respond(
                    *_graph_error(405, "BadRequest", "Only POST is supported on $batch.", crid),
                    crid,
                )
            return await self._batch(request, version, claims, crid)
        raw = await request.read()
        try:
            json.loads(raw) if raw else None  # no body-taking route yet, but reject bad JSON
        except (ValueError, UnicodeDecodeError):
            return self._respond(
                *_graph_error(400, "BadRequest", "Unable to read JSON request payload.", crid),
                crid,
            )
        answer = await self._dispatch(
            request.method, version, rest, request.query_string, claims, crid
        )
        return self._respond(*answer, crid)

    def _respond(self, status: int, headers: dict[str, str], body: Any, crid: str) -> web.Response:
        out = {**headers, "request-id": str(uuid.uuid4()), "client-request-id": crid}
        if status == 204 or body is None:
            out.pop("Content-Type", None)
            return web.Response(status=status, headers=out)
        out["Content-Type"] = "application/json"
        return web.Response(status=status, text=json.dumps(body), headers=out)

    def _retry_after(self, wait_real_s: float) -> str:
        """Whole seconds (at least 1) as Intune sends; with time scaling, milliseconds."""
        if self.config.time_scale == 1.0:
            return str(max(1, math.ceil(wait_real_s)))
        return f"{max(wait_real_s, 0.001):.3f}"

    def _note_retry_after(self, device_id: str, wait_real_s: float) -> None:
        if device_id:
            self.retry_deadline[device_id] = time.monotonic() + wait_real_s

    async def _dispatch(
        self, method: str, version: str, path: str, query: str, claims: dict[str, Any], crid: str
    ) -> Answer:
        """One Graph request (direct or inside a batch): budget first, then routing."""
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
            self._note_retry_after(device_id, wait)
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
        return self._route(method, version, segments, parse_qs(query), claims, crid, window)

    def _route(
        self,
        method: str,
        version: str,
        segments: list[str],
        query: dict[str, list[str]],
        claims: dict[str, Any],
        crid: str,
        window: int,
    ) -> Answer:
        roles = set(claims.get("roles") or [])
        if segments == ["informationProtection", "bitlocker", "recoveryKeys"] and method == "GET":
            return self._recovery_keys(version, query, roles, crid)
        if segments[:2] != ["deviceManagement", "managedDevices"] or len(segments) > 4:
            bad = next(
                (
                    s
                    for s, want in zip(
                        segments, ("deviceManagement", "managedDevices"), strict=False
                    )
                    if s != want
                ),
                segments[-1] if segments else "",
            )
            return _graph_error(
                400, "BadRequest", f"Resource not found for the segment '{bad}'.", crid
            )
        if method == "GET" and len(segments) <= 3:
            if not roles & READ_ROLES:
                return _graph_error(
                    403,
                    "Authorization_RequestDenied",
                    "Application is not authorized to perform this operation. Application must have one of the following scopes: DeviceManagementManagedDevices.Read.All, DeviceManagementManagedDevices.ReadWrite.All",
                    crid,
                )
            if len(segments) == 2:
                return self._list(version, query, crid)
            device = self.fleet.get(segments[2])
            if device is None:
                return self._not_found(segments[2], crid)
            if self.escrow.advance(self.fleet, device):  # it checked in since the request
                device = self.fleet.get(segments[2]) or device
            return 200, {"Content-Type": "application/json"}, self._select(device, query, version)
        if len(segments) == 4 and segments[3] == "rotateBitLockerKeys":
            if method != "POST":
                return _graph_error(
                    405, "BadRequest", f"{method} is not supported on this action.", crid
                )
            return self._rotate(version, segments[2], roles, crid, window)
        if len(segments) == 4:
            return _graph_error(
                400, "BadRequest", f"Resource not found for the segment '{segments[3]}'.", crid
            )
        return _graph_error(405, "BadRequest", f"{method} is not supported on this resource.", crid)

    def _recovery_keys(
        self, version: str, query: dict[str, list[str]], roles: set[str], crid: str
    ) -> Answer:
        """Key metadata for one Entra device id; the devices' check-ins play out on the way."""
        if not roles & KEY_ROLES:
            return _graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation. Application must have one of the following permissions: BitLockerKey.ReadBasic.All, BitLockerKey.Read.All",
                crid,
            )
        if "key" in query.get("$select", [""])[0].split(","):
            # Never needed by batch-rotate: reading the key itself writes an audit entry.
            return _graph_error(
                400, "BadRequest", "The simulator does not serve key material.", crid
            )
        flt = query.get("$filter", [""])[0]
        match = re.fullmatch(r"deviceId eq '([0-9a-fA-F-]{36})'", flt)
        root = f"{self.base_url}/{version}/informationProtection/bitlocker/recoveryKeys"
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/{version}/$metadata#recoveryKeys"
        }
        start = int(query.get("$skiptoken", ["0"])[0] or 0)
        if match:
            keys: list[dict[str, Any]] = []
            for index in self.fleet.find("azureADDeviceId", match.group(1)):
                device = self.fleet[index]
                self.escrow.advance(self.fleet, device)
                keys = self.escrow.device_keys(device)
            body["value"] = keys[start : start + 100]
            if start + 100 < len(keys):
                body["@odata.nextLink"] = (
                    f"{root}?$filter={quote(flt, safe='')}&$skiptoken={start + 100}"
                )
            return 200, {"Content-Type": "application/json"}, body
        # No filter: every key in the tenant, a page per 200 devices (Graph documents no size).
        page: list[dict[str, Any]] = []
        end = min(start + 200, len(self.fleet))
        for index in range(start, end):
            device = self.fleet[index]
            if device.get("azureADDeviceId", "").strip("0-") == "":
                continue
            self.escrow.advance(self.fleet, device)
            page.extend(self.escrow.device_keys(device))
        body["value"] = page
        if end < len(self.fleet):
            body["@odata.nextLink"] = f"{root}?$skiptoken={end}"
        return 200, {"Content-Type": "application/json"}, body

    def _not_found(self, device_id: str, crid: str) -> Answer:
        return _graph_error(
            404,
            "ResourceNotFound",
            f'{{\r\n  "_version": 3,\r\n  "Message": "Resource not found: managedDevices(\'{device_id}\')"\r\n}}',
            crid,
        )

    def _rotate(
        self, version: str, device_id: str, roles: set[str], crid: str, window: int
    ) -> Answer:
        self.metrics.counts["rotate_calls"] += 1
        if version != "beta":
            # GRAPH_NOTES.md: the action exists in beta only.
            return _graph_error(
                400, "BadRequest", "Resource not found for the segment 'rotateBitLockerKeys'.", crid
            )
        if not roles & ROTATE_ROLES:
            return _graph_error(
                403,
                "Authorization_RequestDenied",
                "Application is not authorized to perform this operation. Application must have one of the following scopes: DeviceManagementManagedDevices.PrivilegedOperations.All, DeviceManagementManagedDevices.ReadWrite.All",
                crid,
            )
        device = self.fleet.get(device_id)
        if device is None:
            return self._not_found(device_id, crid)
        if device["operatingSystem"] != "Windows":
            # The sim's assumption (undocumented in Graph): Intune refuses other platforms with 400.
            return _graph_error(
                400, "BadRequest", "Rotate BitLocker keys is not supported on this platform.", crid
            )
        self.metrics.accepted_by_device[device["id"]] += 1
        self.metrics.accepted_windows[window] += 1
        previous = next(
            (a for a in device["deviceActionResults"] if a["actionName"] == "rotateBitLockerKeys"),
            None,
        )
        now = _now_iso()
        self.fleet.record_action(
            device["id"],
            {
                "@odata.type": "#microsoft.graph.rotateBitLockerKeysDeviceActionResult",
                "actionName": "rotateBitLockerKeys",
                "actionState": "pending",
                "startDateTime": previous["startDateTime"] if previous else now,
                "lastUpdatedDateTime": now,
                "errorCode": 0,
            },
        )
        self.escrow.requested(device)
        return 204, {}, None

    def _select(
        self, device: dict[str, Any], query: dict[str, list[str]], version: str
    ) -> dict[str, Any]:
        select = query.get("$select", [""])[0]
        if not select:
            return device
        wanted = {"id", *(s.strip().lower() for s in select.split(","))}
        return {k: v for k, v in device.items() if k.lower() in wanted}

    def _list(self, version: str, query: dict[str, list[str]], crid: str) -> Answer:
        indexes: range | list[int] = range(len(self.fleet))
        flt = query.get("$filter", [""])[0].strip()
        for prop in _FILTERABLE:
            prefix = f"{prop} eq '"
            if flt.lower().startswith(prefix.lower()) and flt.endswith("'"):
                indexes = self.fleet.find(prop, flt[len(prefix) : -1].replace("''", "'"))
                break  # anything else is silently ignored, as Intune does (GRAPH_NOTES.md)
        try:
            top = min(int(query.get("$top", [self.config.page_size])[0]), self.config.page_size)
        except ValueError:
            return _graph_error(400, "BadRequest", "Invalid $top value.", crid)
        if top < 1:
            return _graph_error(400, "BadRequest", "Invalid $top value.", crid)
        skip = 0
        if "$skiptoken" in query:
            offset = _offset(query["$skiptoken"][0])
            if offset is None:
                return _graph_error(400, "BadRequest", "Invalid skip token.", crid)
            skip = offset
        page = [self._select(self.fleet[i], query, version) for i in indexes[skip : skip + top]]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/{version}/$metadata#deviceManagement/managedDevices",
            "value": page,
        }
        if skip + top < len(indexes):
            params = [f"$top={top}"]
            for name in ("$select", "$filter"):
                if name in query:
                    params.append(f"{name}={quote(query[name][0], safe=',')}")
            params.append(f"$skiptoken={_skiptoken(skip + top)}")
            body["@odata.nextLink"] = (
                f"{self.base_url}/{version}/deviceManagement/managedDevices?{'&'.join(params)}"
            )
        return 200, {"Content-Type": "application/json"}, body

    async def _batch(
        self, request: web.Request, version: str, claims: dict[str, Any], crid: str
    ) -> web.StreamResponse:
        self.metrics.counts["batch_requests"] += 1
        raw = await request.read()
        try:
            payload: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            payload = None
        requests = payload.get("requests") if isinstance(payload, dict) else None
        # Every batch-level fault comes before any inner request is looked at: nothing accepted.
        fault = await self._batch_fault(request, requests, crid)
        if fault is not None:
            return fault
        problem = self._batch_problem(requests)
        if problem:
            return self._respond(*_graph_error(400, "BadRequest", problem, crid), crid)
        assert isinstance(requests, list)
        # Omitted ids are neither processed nor answered; the rest run concurrently, as in Graph.
        kept = [inner for inner in requests if not self.faults.roll("omit_ids")]
        responses = list(
            await asyncio.gather(*(self._inner(version, inner, claims) for inner in kept))
        )
        self.shuffle_rng.shuffle(responses)  # GRAPH_NOTES.md: answers come in any order
        return self._respond(200, {}, {"responses": responses}, crid)

    @staticmethod
    def _batch_problem(requests: Any) -> str | None:
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

    async def _batch_fault(
        self, request: web.Request, requests: Any, crid: str
    ) -> web.StreamResponse | None:
        device_ids = [
            segs[2].lower()
            for inner in (requests if isinstance(requests, list) else [])
            if isinstance(inner, dict)
            and len(segs := [s for s in str(inner.get("url", "")).split("?")[0].split("/") if s])
            >= 3
        ]
        roll = self.faults.roll
        if roll("connection_reset"):
            if request.transport is not None:
                request.transport.abort()  # RST-like: the client sees the connection drop
            raise asyncio.CancelledError
        if roll("timeout"):
            # Held past the client's timeout, then refused: nothing in it was processed.
            await asyncio.sleep(self.config.faults.timeout_s)
            return self._respond(
                *_graph_error(504, "GatewayTimeout", "The operation timed out.", crid), crid
            )
        for name, status in (("batch_429", 429), ("batch_503", 503), ("batch_504", 504)):
            if roll(name):
                code = "TooManyRequests" if status == 429 else _ERROR_CODES[status]
                s, h, b = _graph_error(status, code, "Injected batch fault.", crid)
                if status == 429:
                    self.metrics.counts["throttled_429_outer"] += 1
                if status in (429, 503):
                    wait = 1.0 / self.config.time_scale
                    h["Retry-After"] = self._retry_after(wait)
                    for device_id in device_ids:
                        self._note_retry_after(device_id, wait)
                return self._respond(s, h, b, crid)
        if roll("non_json_body"):
            status = 502 if self.faults.rng.random() < 0.5 else 200
            return web.Response(status=status, text=_HTML_GATEWAY_PAGE, content_type="text/html")
        if roll("truncated_body"):
            text = '{"responses": [{"id": "1", "status": 2'  # cut short; nothing processed
            return web.Response(
                status=200,
                text=text,
                headers={"Content-Type": "application/json", "client-request-id": crid},
            )
        return None

    async def _inner(
        self, version: str, inner: dict[str, Any], claims: dict[str, Any]
    ) -> dict[str, Any]:
        raw_headers = inner.get("headers") if isinstance(inner.get("headers"), dict) else {}
        headers = {str(k): str(v) for k, v in (raw_headers or {}).items()}
        lower = {k.lower(): v for k, v in headers.items()}
        crid = lower.get("client-request-id") or str(uuid.uuid4())
        url = urlsplit(str(inner["url"]))
        segments = [s for s in url.path.split("/") if s]
        device_id = segments[2].lower() if len(segments) >= 3 else ""
        answer: Answer
        roll = self.faults.roll
        if "body" in inner and "content-type" not in lower:
            answer = _graph_error(
                400,
                "BadRequest",
                "Content-Type header is required for requests with a body.",
                crid,
            )
        elif roll("inner_429_no_retry_after"):
            self.metrics.counts["throttled_429_inner"] += 1
            answer = _graph_error(429, "TooManyRequests", "Too many requests.", crid)
        elif roll("inner_503_retry_after"):
            wait = 1.0 / self.config.time_scale
            answer = _graph_error(503, "ServiceUnavailable", "Service is unavailable.", crid)
            answer[1]["Retry-After"] = self._retry_after(wait)
            self._note_retry_after(device_id, wait)
        else:
            failed = next(
                (code for code in (500, 502, 503, 504) if roll(f"inner_{code}")),
                None,
            )
            if failed is not None:
                answer = _graph_error(
                    failed, _ERROR_CODES[failed], "An internal server error occurred.", crid
                )
            else:
                answer = await self._dispatch(
                    str(inner["method"]).upper(), version, url.path, url.query, claims, crid
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

    async def metrics_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.metrics.snapshot())

    async def reset_view(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(tenant: _Tenant) -> web.Application:
    """The routes; a middleware tracks how many requests are handled at once."""

    @web.middleware
    async def concurrency(request: web.Request, handler: Handler) -> web.StreamResponse:
        metrics = tenant.metrics
        metrics.in_flight += 1
        metrics.peak_concurrency = max(metrics.peak_concurrency, metrics.in_flight)
        try:
            return await handler(request)
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
    def ca_path(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def inventory(self) -> Fleet:
        """The fleet with current action results: a lazy sequence of device dicts (copies)."""
        assert self._tenant is not None, "start the SimTenant first"
        return self._tenant.fleet

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
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_server())
            loop.close()

        self._thread = threading.Thread(target=run, name="sim-tenant", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    async def _start_server(self) -> None:
        context, _ = make_server_tls(self.workdir)
        self._tenant = _Tenant(self.config, self._base)
        self._runner = web.AppRunner(
            build_app(self._tenant), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._base[0] = f"https://{self.host}:{self.port}"

    async def _stop_server(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> SimTenant:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_loop(self, action: Callable[[_Tenant], Any]) -> Any:
        """Run `action` on the server's loop, so it never races a request handler."""
        assert self._tenant is not None and self._loop is not None, "start the SimTenant first"
        tenant = self._tenant

        async def call() -> Any:
            return action(tenant)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    def metrics(self) -> dict[str, Any]:
        """The same JSON as GET /_sim/metrics."""
        result: dict[str, Any] = self._on_loop(lambda t: t.metrics.snapshot())
        return result

    def initial_key_count(self, device_id: str) -> int:
        """How many keys Entra held for the device before any rotation (seeded, pure)."""
        assert self._tenant is not None
        return self._tenant.escrow.behaviour(device_id).initial_keys

    def verification_truth(self) -> dict[str, str]:
        """Ground truth per rotated device id: what `verify` must report now."""
        assert self._tenant is not None and self._loop is not None
        tenant = self._tenant

        async def truth() -> dict[str, str]:
            out = {}
            for device_id in tenant.metrics.accepted_by_device:
                device = tenant.fleet.get(device_id)
                if device is not None:
                    out[device["id"]] = tenant.escrow.truth(device)
            return out

        return asyncio.run_coroutine_threadsafe(truth(), self._loop).result(30)

    def reset_metrics(self) -> None:
        self._on_loop(lambda t: t.reset())


def serve_forever(config: SimConfig, *, host: str, port: int, workdir: Path) -> None:
    """Run standalone until Ctrl-C, printing what a client needs to use it."""
    sim = SimTenant(config, workdir=workdir, host=host, port=port).start()
    ca = sim.ca_path.resolve()
    print(
        f"simulated tenant running ({len(sim.inventory)} devices, time scale {config.time_scale})\n"
        f"  authority URL : {sim.authority_url}\n"
        f"  Graph URL     : {sim.graph_url}\n"
        f"  tenant id     : {config.tenant_id}\n"
        f"  client id     : {config.client_id}\n"
        f"  client secret : {config.client_secret}\n"
        f"  CA file       : {ca}\n\n"
        "In another shell:\n"
        f"  export AZURE_TENANT_ID={config.tenant_id} AZURE_CLIENT_ID={config.client_id} "
        f"AZURE_CLIENT_SECRET={config.client_secret}\n"
        f"  batch-rotate rotate inputs/sample-devices.csv --authority-url {sim.authority_url} "
        f"--graph-url {sim.graph_url} --ca-bundle {ca}\n\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        sim.stop()
