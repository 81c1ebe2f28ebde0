"""Interactive sign-in (authorization code with PKCE on a loopback redirect): `/authorize`, where
the browser's user signs in, and the token endpoint's `authorization_code` grant.

As Entra: `http://localhost` matches a loopback redirect on any port; the code is single-use,
bound to its client, redirect URI and PKCE challenge; `form_post` answers with a self-posting
form, `query` with a redirect. Who is signed in to the browser is a test hook (`browser_user`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

if TYPE_CHECKING:
    from batch_rotate.sim.identity import Identity
    from batch_rotate.sim.tenant import Tenant

CODE_LIFETIME_S = 600.0  # Entra's codes live about ten minutes


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str
    method: str
    nonce: str | None
    upn: str
    expires_at: float


def _loopback_match(registered: str, given: str) -> bool:
    """Entra ignores the port of a loopback redirect URI (RFC 8252 section 7.3)."""
    reg, got = urlsplit(registered), urlsplit(given)
    if reg.hostname in ("localhost", "127.0.0.1") and reg.scheme == "http":
        return (got.scheme, got.hostname, got.path or "/") == (
            reg.scheme,
            reg.hostname,
            reg.path or "/",
        )
    return registered == given


def challenge_of(verifier: str, method: str) -> str:
    """RFC 7636: S256 is BASE64URL(SHA256(verifier)) without padding; plain is the verifier."""
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return verifier


class AuthCodes:
    """Codes issued at `/authorize` and redeemed once at the token endpoint."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant
        self.codes: dict[str, _Grant] = {}
        self.browser_user: str | None = None  # None: nobody signs in (the page just waits)
        self.decline = False  # the user cancels at the consent prompt

    def _page(self, status: int, code: int, text: str) -> web.Response:
        """An error shown in the browser: Entra never redirects to an unverified redirect URI."""
        body = f"<html><body><h1>Sign in</h1><p>AADSTS{code}: {html.escape(text)}</p></body></html>"
        return web.Response(status=status, text=body, content_type="text/html")

    async def authorize(self, request: web.Request) -> web.Response:
        t, cfg, q = self.t, self.t.config, request.query
        t.metrics.counts["authorize_requests"] += 1
        client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
        if not t.answers_to(request.match_info["tenant"]):
            return self._page(400, 90002, f"Tenant '{request.match_info['tenant']}' not found.")
        if client_id != cfg.client_id:
            return self._page(
                400,
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        if not any(_loopback_match(uri, redirect_uri) for uri in cfg.redirect_uris):
            return self._page(
                400,
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'. Make sure the "
                "redirect URI sent in the request matches one added to your application in the "
                "Azure portal.",
            )
        challenge, method = q.get("code_challenge", ""), q.get("code_challenge_method", "plain")
        if method not in ("S256", "plain"):
            return self._page(400, 50149, "Invalid Code_Challenge_method parameter.")
        params: dict[str, str] = {}
        if q.get("response_type") != "code":
            params = {"error": "unsupported_response_type", "error_description": "AADSTS700054"}
        elif self.decline and self.browser_user is not None:
            params = {
                "error": "access_denied",
                "error_description": "AADSTS65004: User declined to consent to access the app.",
            }
        elif self.browser_user is None:
            return web.Response(
                text="<html><body>Pick an account</body></html>", content_type="text/html"
            )
        else:
            code = secrets.token_urlsafe(48)
            self.codes[code] = _Grant(
                client_id,
                redirect_uri,
                q.get("scope", ""),
                challenge,
                method,
                q.get("nonce"),
                self.browser_user,
                time.time() + CODE_LIFETIME_S,
            )
            params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        return self._answer(redirect_uri, q.get("response_mode", "query"), params)

    @staticmethod
    def _answer(redirect_uri: str, mode: str, params: dict[str, str]) -> web.Response:
        if mode == "form_post":
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
                for k, v in params.items()
            )
            page = (
                f'<html><body onload="document.forms[0].submit()"><form method="POST" '
                f'action="{html.escape(redirect_uri)}">{fields}</form></body></html>'
            )
            return web.Response(text=page, content_type="text/html")
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(params)}")

    def grant(self, form: Any, identity: Identity) -> web.Response:
        """The token endpoint's authorization_code grant (a public client: no secret)."""
        code = str(form.get("code", ""))
        found = self.codes.pop(code, None)  # single use, whatever the outcome
        if found is None:
            return identity.error(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                "code or use an existing refresh token.",
            )
        if time.time() > found.expires_at:
            return identity.error(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        if str(form.get("client_id", "")) != found.client_id:
            return identity.error(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'code' parameter is not valid.",
            )
        if str(form.get("redirect_uri", "")) != found.redirect_uri:
            return identity.error(
                400,
                "invalid_grant",
                500112,
                f"The reply address '{form.get('redirect_uri', '')}' does not match the reply "
                f"address '{found.redirect_uri}' provided when requesting Authorization code.",
            )
        verifier = str(form.get("code_verifier", ""))
        if found.challenge and not verifier:
            return identity.error(
                400,
                "invalid_grant",
                50148,
                "The code_verifier does not match the code_challenge supplied in the "
                "authorization request for PKCE.",
            )
        if found.challenge and not secrets.compare_digest(
            challenge_of(verifier, found.method), found.challenge
        ):
            return identity.error(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the "
                "authorization request.",
            )
        self.t.metrics.counts["authcode_redeemed"] += 1
        scope = str(form.get("scope", "")) or found.scope
        return self.t.device_codes.user_tokens(found.upn, scope, nonce=found.nonce)
