"""The device code flow (delegated sign-in): `/devicecode`, the token endpoint's device_code and
refresh_token grants, and a test hook to approve a code as a user.

Delegated tokens carry `scp` (the user's consented scopes) and no `roles`.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from aiohttp import web

if TYPE_CHECKING:
    from batch_rotate.sim.identity import Identity
    from batch_rotate.sim.tenant import Tenant

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class _Code:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    polls: int = 0
    approved_by: str | None = None
    declined: bool = False


class DeviceCodes:
    """Codes issued, approvals, and refresh tokens (by opaque value)."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant
        self.codes: dict[str, _Code] = {}  # by device_code
        self.refresh: dict[str, tuple[str, str]] = {}  # refresh token -> (upn, scope)
        self.auto_approve: str | None = None  # approve every code as this user at its 2nd poll

    def approve(self, user_code: str, upn: str) -> bool:
        """What the user does in the browser: enter the code, sign in, consent."""
        for code in self.codes.values():
            if code.user_code == user_code:
                code.approved_by = upn
                return True
        return False

    async def devicecode(self, request: web.Request) -> web.Response:
        t = self.t
        t.metrics.counts["devicecode_requests"] += 1
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        if not t.answers_to(request.match_info["tenant"]) or client_id != t.config.client_id:
            return t.identity.error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        if not t.config.public_client:
            return t.identity.error(
                400,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'. (Enable 'Allow public client flows' on the app registration.)",
            )
        user_code = "".join(secrets.choice(string.ascii_uppercase) for _ in range(9))
        code = _Code(
            secrets.token_urlsafe(32),
            user_code,
            client_id,
            str(form.get("scope", "")),
            time.time() + 900,
        )
        self.codes[code.device_code] = code
        uri = f"{t.base_url}/devicelogin"
        return web.json_response(
            {
                "device_code": code.device_code,
                "user_code": user_code,
                "verification_uri": uri,
                "expires_in": 900,
                "interval": 1,
                "message": f"To sign in, use a web browser to open the page {uri} and enter the "
                f"code {user_code} to authenticate.",
            }
        )

    async def approve_view(self, request: web.Request) -> web.Response:
        data = await request.json()
        ok = self.approve(str(data.get("user_code", "")), str(data.get("upn", "")))
        return web.json_response({"ok": ok}, status=200 if ok else 404)

    def grant(self, form: Any, identity: Identity) -> web.Response:
        """The token endpoint for device_code and refresh_token grants."""
        if form.get("grant_type") == "refresh_token":
            found = self.refresh.pop(str(form.get("refresh_token", "")), None)
            if found is None:
                return identity.error(400, "invalid_grant", 70000, "The refresh token is invalid.")
            return self.user_tokens(*found)
        code = self.codes.get(str(form.get("device_code", "")))
        if code is None:
            return identity.error(400, "bad_verification_code", 70019, "Verification code unknown.")
        if time.time() > code.expires_at:
            return identity.error(400, "expired_token", 70020, "The device code expired.")
        code.polls += 1
        if code.approved_by is None and self.auto_approve and code.polls >= 2:
            code.approved_by = self.auto_approve
        if code.declined:
            return identity.error(400, "authorization_declined", 70000, "The user declined.")
        if code.approved_by is None:
            text = "The authorization is pending: the user has not yet entered the code."
            return identity.error(400, "authorization_pending", 70016, text)
        del self.codes[code.device_code]
        return self.user_tokens(code.approved_by, code.scope)

    def user_tokens(self, upn: str, scope: str, *, nonce: str | None = None) -> web.Response:
        """A signed-in user's tokens (also the interactive flow's, sim/authcode.py)."""
        t, cfg = self.t, self.t.config
        resource = next(
            (s[: -len("/.default")] for s in scope.split() if s.endswith(".default")), ""
        )
        oid = str(uuid.uuid5(uuid.NAMESPACE_DNS, upn.lower()))
        lifetime = cfg.token_lifetime_s
        access = t.tokens.issue(
            audience=resource,
            issuer=f"{t.base_url}/{cfg.tenant_id}/",
            tenant_id=cfg.tenant_id,
            client_id=cfg.client_id,
            roles=[],
            lifetime_s=lifetime,
            extra={"scp": " ".join(cfg.delegated_scopes), "upn": upn, "oid": oid, "idtyp": "user"},
        )
        now = int(time.time())
        id_token = jwt.encode(
            {
                "iss": f"{t.base_url}/{cfg.tenant_id}/v2.0",
                "sub": oid,
                "aud": cfg.client_id,
                "iat": now,
                "exp": now + 3600,
                "tid": cfg.tenant_id,
                "oid": oid,
                "preferred_username": upn,
                "name": upn.split("@")[0],
                **({"nonce": nonce} if nonce else {}),
            },
            "sim-id-token-key-not-secret-32-bytes!!",
            algorithm="HS256",
        )
        refresh = secrets.token_urlsafe(32)
        self.refresh[refresh] = (upn, scope)
        info = json.dumps({"uid": oid, "utid": cfg.tenant_id}).encode()
        return web.json_response(
            {
                "token_type": "Bearer",
                "scope": " ".join(cfg.delegated_scopes),
                "expires_in": int(lifetime),
                "ext_expires_in": int(lifetime),
                "access_token": access,
                "refresh_token": refresh,
                "id_token": id_token,
                "client_info": base64.urlsafe_b64encode(info).decode().rstrip("="),
            }
        )
