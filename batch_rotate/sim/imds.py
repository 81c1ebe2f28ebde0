"""Managed identity token endpoints: App Service style (`IDENTITY_ENDPOINT` + `X-IDENTITY-HEADER`,
api-version 2019-08-01) and VM IMDS style (`/metadata/identity/oauth2/token`, `Metadata: true`).

Tests point MSAL here through the environment; nothing ever goes to 169.254.169.254.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

SYSTEM = "system"


class ManagedIdentities:
    """Identities by client id ("system" for the system-assigned one) with their app roles."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant

    def _answer(self, resource: str, client_id: str) -> web.Response:
        t, cfg = self.t, self.t.config
        t.metrics.counts["managed_identity_requests"] += 1
        wanted = client_id or SYSTEM
        roles = cfg.managed_identities.get(wanted)
        if roles is None:
            return web.json_response(
                {
                    "statusCode": 400,
                    "message": "No User Assigned or Delegated Managed Identity found for "
                    "specified ClientId/ResourceId/PrincipalId.",
                    "correlationId": str(uuid.uuid4()),
                },
                status=400,
            )
        if not resource.startswith("https://"):
            return web.json_response(
                {"error": "invalid_resource", "error_description": f"bad resource {resource}"},
                status=400,
            )
        mi_client = wanted if wanted != SYSTEM else str(uuid.uuid5(uuid.NAMESPACE_URL, "mi"))
        lifetime = int(cfg.token_lifetime_s)
        token = t.tokens.issue(
            audience=resource.rstrip("/"),
            issuer=f"{t.base_url}/{cfg.tenant_id}/",
            tenant_id=cfg.tenant_id,
            client_id=mi_client,
            roles=roles,
            lifetime_s=lifetime,
            extra={"xms_mirid": f"/subscriptions/sim/{wanted}"},
        )
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": mi_client,
            }
        )

    async def app_service(self, request: web.Request) -> web.Response:
        header = request.headers.get("X-IDENTITY-HEADER", "")
        if not secrets.compare_digest(header, self.t.config.identity_header):
            return web.json_response(
                {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."},
                status=401,
            )
        if request.query.get("api-version") != "2019-08-01":
            return web.json_response({"message": "unsupported api-version"}, status=400)
        return self._answer(request.query.get("resource", ""), request.query.get("client_id", ""))

    async def vm(self, request: web.Request) -> web.Response:
        if request.headers.get("Metadata", "").lower() != "true":
            return web.json_response(
                {
                    "error": "invalid_request",
                    "error_description": "Required metadata header not specified",
                },
                status=400,
            )
        return self._answer(request.query.get("resource", ""), request.query.get("client_id", ""))
