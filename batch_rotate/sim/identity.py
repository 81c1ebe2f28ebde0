"""The identity platform's side: OpenID configuration and the token endpoint.

Secrets (post or basic), certificate assertions and federated ones (workload identity); delegated
grants go to devicecode.py and authcode.py. Errors carry AADSTS codes and texts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from multidict import MultiDictProxy

from batch_rotate.sim.devicecode import DEVICE_CODE_GRANT
from batch_rotate.sim.federation import Federation

if TYPE_CHECKING:
    from batch_rotate.sim.tenant import Tenant

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_Form = MultiDictProxy[str | bytes | web.FileField]
Problem = tuple[int, str, int, str]  # status, error, AADSTS code, text


def _app_not_found(client_id: str, directory: str) -> Problem:
    return (
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{directory}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant.",
    )


def _no_tenant(tenant: str, error: str) -> Problem:
    return (
        400,
        error,
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud.",
    )


class Identity:
    """Serves MSAL what it asks for and issues the sim's access tokens."""

    def __init__(self, tenant: Tenant) -> None:
        self.t = tenant

    async def openid(self, request: web.Request) -> web.Response:
        tenant, base = request.match_info["tenant"], self.t.base_url
        if not self.t.answers_to(tenant):
            return self.error(*_no_tenant(tenant, "invalid_tenant"))
        root = f"{base}/{self.t.config.tenant_id}"  # a domain's document names the GUID, as Entra's
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
                "issuer": f"{base}/{self.t.config.tenant_id}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/oidc/userinfo",
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
                "msgraph_host": urlsplit(base).netloc,
                "rbac_url": "https://pas.windows.net",
            }
        )

    def error(self, status: int, error: str, code: int, text: str) -> web.Response:
        """An identity-platform error body, stamped on the tenant's clock."""
        trace, correlation, stamp = str(uuid.uuid4()), str(uuid.uuid4()), self.t.clock.iso()
        return web.json_response(
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {trace} "
                f"Correlation ID: {correlation} Timestamp: {stamp}",
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"{self.t.base_url}/error?code={code}",
            },
            status=status,
        )

    def _credential_problem(
        self, form: _Form, client_id: str, secret: str | None
    ) -> Problem | None:
        """Why the client's secret or assertion is refused, or None when it is good."""
        if secret is not None:
            if secrets.compare_digest(secret, self.t.config.client_secret):
                return None
            return (
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        if "client_assertion" not in form:
            return (
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the "
                "'client_credentials' grant type.",
            )
        if form.get("client_assertion_type") != _ASSERTION_TYPE:
            return (
                400,
                "invalid_request",
                50027,
                f"client_assertion_type must be {_ASSERTION_TYPE}.",
            )
        assertion = str(form["client_assertion"])
        if Federation.is_federated(assertion, client_id):  # workload identity federation
            return self._federated_problem(assertion)
        endpoint = f"{self.t.base_url}/{self.t.config.tenant_id}/oauth2/v2.0/token"
        problem = self.t.assertions.check(assertion, endpoint)
        return (401, "invalid_client", 700027, problem) if problem else None

    def _federated_problem(self, assertion: str) -> Problem | None:
        if self.t.config.federated_credential is None:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            text = (
                f"No matching federated identity record found for presented assertion issuer "
                f"'{issuer}'. Please note that the matching is done using a case-sensitive "
                "comparison. Check your federated identity credential Subject, Audience and "
                "Issuer against the presented assertion."
            )
            return 401, "invalid_client", 700211, text
        found = self.t.federation.check(assertion)
        return None if found is None else (401, "invalid_client", *found)

    def _consent_problem(self, client_id: str) -> Problem | None:
        """The multi-tenant app is not consented here (a switch of the cloud's tenant)."""
        consent, tenant_id = self.t.spec.consent, self.t.config.tenant_id
        if consent == "AADSTS7000229":
            text = (
                f"The client application {client_id} is missing service principal in the tenant "
                f"{tenant_id}. See instructions here: "
                "https://go.microsoft.com/fwlink/?linkid=2225119"
            )
            return 401, "invalid_client", 7000229, text
        if consent == "AADSTS700016":
            return _app_not_found(client_id, self.t.spec.label)
        return None

    def _request_problem(self, tenant: str, form: _Form, client_id: str) -> Problem | None:
        if not self.t.answers_to(tenant):
            return _no_tenant(tenant, "invalid_request")
        if form.get("grant_type") != "client_credentials":
            text = "The app requested an unsupported grant type."
            return 400, "unsupported_grant_type", 70003, text
        if client_id == self.t.config.client_id and self.t.spec.consent:
            return self._consent_problem(client_id)
        if client_id != self.t.config.client_id:
            return _app_not_found(client_id, tenant)
        return None

    async def token(self, request: web.Request) -> web.Response:
        self.t.metrics.counts["token_requests"] += 1
        tenant = request.match_info["tenant"]
        form = await request.post()
        if form.get("grant_type") in (DEVICE_CODE_GRANT, "refresh_token"):
            return self.t.device_codes.grant(form, self)  # delegated sign-in (devicecode.py)
        if form.get("grant_type") == "authorization_code":
            return self.t.auth_codes.grant(form, self)  # interactive sign-in (authcode.py)
        self.t.metrics.counts["app_token_requests"] += 1  # the app's own credential
        client_id = str(form.get("client_id", ""))
        secret = str(form["client_secret"]) if "client_secret" in form else None
        basic = request.headers.get("Authorization", "")
        if basic.lower().startswith("basic "):  # client_secret_basic
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
                client_id, secret = client_id or user, password
        problem = self._request_problem(tenant, form, client_id) or self._credential_problem(
            form, client_id, secret
        )
        if problem:
            return self.error(*problem)
        scope = str(form.get("scope", "")).strip()
        if not scope.endswith("/.default") or " " in scope:
            return self.error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        lifetime = self.t.config.token_lifetime_s
        token = self.t.tokens.issue(
            audience=scope[: -len("/.default")],
            issuer=f"{self.t.base_url}/{self.t.config.tenant_id}/",
            tenant_id=self.t.config.tenant_id,
            client_id=client_id,
            roles=self.t.config.roles,
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
