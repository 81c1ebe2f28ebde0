"""The tenant's state and Graph front door: authorise, count and throttle, then route.

Direct calls and `$batch` inner requests go through the same `dispatch`, so both are treated alike.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from batch_rotate.sim.audit import DirectoryAudits
from batch_rotate.sim.authcode import AuthCodes
from batch_rotate.sim.batch import BatchEndpoint
from batch_rotate.sim.clock import Answer, TenantClock, graph_error
from batch_rotate.sim.cloudspec import CloudTenant, Shared
from batch_rotate.sim.config import SimConfig
from batch_rotate.sim.devicecode import DeviceCodes
from batch_rotate.sim.devices import READ_ROLES, Devices
from batch_rotate.sim.escrow import Escrow
from batch_rotate.sim.faults import Faults
from batch_rotate.sim.federation import FederatedCredential, Federation
from batch_rotate.sim.groups import Groups
from batch_rotate.sim.identity import Identity
from batch_rotate.sim.imds import ManagedIdentities
from batch_rotate.sim.inventory import ZERO_GUID, Fleet
from batch_rotate.sim.keys import RecoveryKeys
from batch_rotate.sim.metrics import Metrics
from batch_rotate.sim.roles import AdminRoles
from batch_rotate.sim.targeting import Targeting
from batch_rotate.sim.throttling import WRITE_METHODS, Budget, RetryAfter
from batch_rotate.sim.tokens import AssertionVerifier

_READ_DENIED = (
    "Application is not authorized to perform this operation. Application must have one of the "
    "following scopes: DeviceManagementManagedDevices.Read.All, "
    "DeviceManagementManagedDevices.ReadWrite.All"
)
# Graph documents no answer for a tenant without Intune: the sim's guess, kept generic (a client
# must go by the status, never by this wording). See README.md "Many tenants".
_NO_INTUNE = "Forbidden: the tenant has no Intune service this application can use."


class Tenant:
    """State and request handling; runs on the server's event loop."""

    def __init__(
        self,
        config: SimConfig,
        base_url_ref: list[str],
        *,
        spec: CloudTenant | None = None,
        shared: Shared | None = None,
    ) -> None:
        self.config = config
        self._base = base_url_ref
        self.spec = spec or CloudTenant(config)
        self.shared = shared or Shared.alone(config.time_scale)
        self.names = {config.tenant_id.lower()} | (
            {self.spec.domain.lower()} if self.spec.domain else set()
        )
        self.down = False  # SimCloud.set_down: Graph answers 503 to everything
        self.clock = TenantClock(config.clock_offset_s)
        self.budget = Budget(config)
        self.retry = RetryAfter(config.time_scale)
        self.metrics = Metrics(self.budget.window_real_s)
        self.faults = Faults(config.faults, config.seed)
        self.metrics.faults = self.faults.injected
        self.shuffle_rng = random.Random(config.seed + 1)
        self.tokens = self.shared.tokens  # one key for the cloud: `tid` routes a token
        self.assertions = AssertionVerifier(config.certificates, config.client_id)
        # The outside issuer's key lives on even with no federated credential set up, so a test
        # can present a well-signed token the app does not trust.
        self.federation = Federation(config.federated_credential or FederatedCredential())
        self.fleet = (
            Fleet.load(config.inventory_file)
            if config.inventory_file
            else Fleet.generated(config.devices, config.seed, now=self.clock.now())
        )
        self.escrow = Escrow(config.seed, config.time_scale, config.escrow, clock=self.clock)
        self.identity = Identity(self)
        self.devices = Devices(self)
        self.keys = RecoveryKeys(self)
        self.batch = BatchEndpoint(self)
        self.device_codes = DeviceCodes(self)
        self.auth_codes = AuthCodes(self)
        self.managed_identities = ManagedIdentities(self)
        self.audits = DirectoryAudits(self)
        self.admin_roles = AdminRoles(self)
        self.targeting = Targeting(self, config.targeting) if config.targeting else None
        self.groups = Groups(self) if config.targeting and config.targeting.groups else None

    @property
    def base_url(self) -> str:
        return self._base[0]

    def answers_to(self, name: str) -> bool:
        """True when `name` (a path's tenant segment) is this tenant's id or verified domain."""
        return name.lower() in self.names

    def owns(self, object_id: str) -> bool:
        """True when a managed device or Entra device id (lower case) is this tenant's."""
        if object_id == ZERO_GUID:
            return False
        return self.fleet.index_of(object_id) is not None or bool(
            self.fleet.find("azureADDeviceId", object_id)
        )

    def owns_key(self, key_id: str) -> bool:
        """True when a recovery key id (lower case) the tenant has shown is this tenant's."""
        if self.targeting is not None and key_id in self.targeting.key_device:
            return True
        return any(k["id"] == key_id for keys in self.escrow.keys.values() for k in keys)

    def reset(self) -> None:
        self.metrics.reset(self.budget.window()[0])
        self.metrics.faults = self.faults.injected = defaultdict(int)
        self.retry.deadline.clear()

    def error(self, status: int, code: str, message: str, crid: str) -> Answer:
        return graph_error(self.clock, status, code, message, crid)

    def respond(self, status: int, headers: dict[str, str], body: Any, crid: str) -> web.Response:
        out = {**headers, "request-id": str(uuid.uuid4()), "client-request-id": crid}
        if status == 204 or body is None:
            out.pop("Content-Type", None)
            return web.Response(status=status, headers=out)
        out["Content-Type"] = "application/json"
        return web.Response(status=status, text=json.dumps(body), headers=out)

    async def graph(
        self, request: web.Request, verified: tuple[dict[str, Any] | None, str] | None = None
    ) -> web.StreamResponse:
        """A Graph request; `verified`: its token already checked by the cloud's front door."""
        self.metrics.counts["graph_requests"] += 1
        crid = request.headers.get("client-request-id") or str(uuid.uuid4())
        claims, problem = verified or self.tokens.verify(
            request.headers.get("Authorization"), self.base_url
        )
        version, rest = request.match_info["version"], request.match_info["rest"]
        if self.config.log_requests:
            query = f"?{request.query_string}" if request.query_string else ""
            self.metrics.requests.append(f"{request.method} /{version}/{rest}{query}")
        if self.down:  # the whole service is out: nothing is looked at, not even the token
            self.metrics.counts["down_503"] += 1
            message = "The service is temporarily unavailable."
            status, headers, body = self.error(503, "ServiceUnavailable", message, crid)
            headers["Retry-After"] = self.retry.header(1.0 / self.config.time_scale)
            return self.respond(status, headers, body, crid)
        if claims is None:
            status, headers, body = self.error(401, "InvalidAuthenticationToken", problem, crid)
            headers["WWW-Authenticate"] = (
                f'Bearer realm="", authorization_uri="{self.base_url}/common/oauth2/authorize", '
                'client_id="00000003-0000-0000-c000-000000000000"'
            )
            return self.respond(status, headers, body, crid)
        if rest == "$batch":
            if request.method != "POST":
                message = "Only POST is supported on $batch."
                return self.respond(*self.error(405, "BadRequest", message, crid), crid)
            return await self.batch.handle(request, version, claims, crid)
        raw = await request.read()
        try:
            json.loads(raw) if raw else None  # no body-taking route yet, but reject bad JSON
        except (ValueError, UnicodeDecodeError):
            message = "Unable to read JSON request payload."
            return self.respond(*self.error(400, "BadRequest", message, crid), crid)
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = await self.dispatch(
            request.method, version, rest, request.query_string, claims, crid, headers
        )
        return self.respond(*answer, crid)

    async def dispatch(
        self,
        method: str,
        version: str,
        path: str,
        query: str,
        claims: dict[str, Any],
        crid: str,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One Graph request (direct or inside a batch): budget first, then routing."""
        self.metrics.counts["inner_requests"] += 1
        foreign = self.shared.foreign
        if foreign is not None and foreign(self.config.tenant_id, path, query):
            self.metrics.counts["cross_tenant_requests"] += 1  # answered as this tenant would
        write = method in WRITE_METHODS
        self.metrics.counts["writes" if write else "reads"] += 1
        segments = [s for s in path.strip("/").split("/") if s]
        device_id = segments[2].lower() if len(segments) >= 3 else ""
        window, wait, at = self.budget.take(str(claims.get("appid")), write)
        if write:
            self.metrics.write(window, at, admitted=wait is None)
            if self.retry.is_early(device_id):
                self.metrics.counts["early_retries"] += 1
        if wait is not None:
            self.metrics.counts["throttled_429_inner"] += 1
            self.retry.note(device_id, wait)
            message = "Too many requests. Please retry after the time in the Retry-After header."
            status, hdrs, err = self.error(429, "TooManyRequests", message, crid)
            hdrs["Retry-After"] = self.retry.header(wait)
            return status, hdrs, err
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s / self.config.time_scale)
        return self.route(
            method, version, segments, parse_qs(query), claims, crid, window, headers or {}
        )

    def route(
        self,
        method: str,
        version: str,
        segments: list[str],
        query: dict[str, list[str]],
        claims: dict[str, Any],
        crid: str,
        window: int,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if segments[:1] == ["deviceManagement"] and not self.spec.intune:
            return self.error(403, "Forbidden", _NO_INTUNE, crid)
        # Application permissions (`roles`) or delegated ones (`scp`) alike.
        roles = set(claims.get("roles") or []) | set(str(claims.get("scp") or "").split())
        if segments == ["informationProtection", "bitlocker", "recoveryKeys"] and method == "GET":
            return self.keys.list(version, query, roles, crid)
        if (
            segments[:3] == ["informationProtection", "bitlocker", "recoveryKeys"]
            and method == "GET"
        ):
            return self.keys.get(segments[3] if len(segments) == 4 else "", query, roles, crid)
        if segments == ["auditLogs", "directoryAudits"] and method == "GET":
            return self.audits.list(version, query, claims, crid)
        if (
            segments[:1] == ["me"]
            and len(segments) in (2, 3)
            and segments[1] in ("transitiveMemberOf", "memberOf")
            and segments[2:] in ([], ["microsoft.graph.directoryRole"])
            and method == "GET"
        ):
            return self.admin_roles.member_of(version, claims, crid)
        if (
            len(segments) == 2
            and segments[0] == "deviceManagement"
            and segments[1].startswith("getEffectivePermissions")
            and method == "GET"
        ):
            return self.admin_roles.effective_permissions(claims, crid)
        if segments[:1] == ["groups"] and method == "GET" and self.groups is not None:
            eventual = (headers or {}).get("consistencylevel", "").lower() == "eventual"
            return self.groups.route(segments, query, roles, crid, eventual=eventual)
        if segments[:2] != ["deviceManagement", "managedDevices"] or len(segments) > 4:
            expected = ("deviceManagement", "managedDevices")
            bad = next(
                (s for s, want in zip(segments, expected, strict=False) if s != want),
                segments[-1] if segments else "",
            )
            message = f"Resource not found for the segment '{bad}'."
            return self.error(400, "BadRequest", message, crid)
        if method == "GET" and len(segments) <= 3:
            if not roles & READ_ROLES:
                return self.error(403, "Authorization_RequestDenied", _READ_DENIED, crid)
            if len(segments) == 2:
                return self.devices.list(version, query, crid)
            return self.devices.get(segments[2], query, crid)
        if len(segments) == 4 and segments[3] == "rotateBitLockerKeys":
            if method != "POST":
                message = f"{method} is not supported on this action."
                return self.error(405, "BadRequest", message, crid)
            return self.devices.rotate(version, segments[2], roles, crid, window, claims=claims)
        if len(segments) == 4:
            message = f"Resource not found for the segment '{segments[3]}'."
            return self.error(400, "BadRequest", message, crid)
        return self.error(405, "BadRequest", f"{method} is not supported on this resource.", crid)

    async def metrics_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.metrics.snapshot())

    async def reset_view(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})
