"""One Graph session: sign in, open the client, check the token's tenant and permissions, close."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from batch_rotate.graph.auth import MsalTokenProvider, claims
from batch_rotate.graph.client import GraphClient
from batch_rotate.graph.endpoints import Credentials, Endpoints
from batch_rotate.graph.errors import SignInError


@dataclass(frozen=True, slots=True)
class Needs:
    """Permissions of which the token must hold at least one (the first is the one to grant)."""

    permissions: tuple[str, ...]
    purpose: str  # what they are needed for, e.g. "rotate BitLocker keys"


@asynccontextmanager
async def graph_session(
    credentials: Credentials,
    endpoints: Endpoints,
    *,
    needs: Needs | None = None,
    timeout_s: float = 60.0,
) -> AsyncIterator[GraphClient]:
    """A signed-in client; stops before any request when the token plainly lacks `needs`."""
    tokens = MsalTokenProvider(credentials, endpoints, timeout_s=timeout_s)
    try:
        async with GraphClient(endpoints, tokens, timeout_s=timeout_s) as graph:
            token = await tokens.token()
            check_tenant(token, credentials.tenant_id, endpoints.authority_url)
            if needs is not None:
                check_permissions(token, needs, credentials.tenant_id)
            yield graph
    finally:
        tokens.close()


_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def check_tenant(token: str, tenant_id: str, authority_url: str) -> None:
    """Raise `SignInError` when the token's `tid` is not the configured tenant.

    Otherwise an authority URL naming another tenant would send the writes there while the prompt
    and the journal name this one. Only a GUID can be compared: a domain name (contoso.com) is
    not the `tid`, so then the check is skipped, as it is for an opaque token.
    """
    if not _GUID.match(tenant_id.strip()):
        return
    tid = str(claims(token).get("tid", ""))
    if tid and tid.strip().lower() != tenant_id.strip().lower():
        raise SignInError(
            f"the token is for tenant {tid}, but AZURE_TENANT_ID is {tenant_id}: the authority "
            f"{authority_url} signed in to another tenant; nothing was sent. Give the authority "
            "of the configured tenant (--authority-url, --cloud) or the right AZURE_TENANT_ID"
        )


def check_permissions(token: str, needs: Needs, tenant_id: str) -> None:
    """Raise `SignInError` naming the permission and the fix when roles/scp hold none of `needs`."""
    token_claims = claims(token)
    if not token_claims:
        return  # opaque token: let Graph decide
    granted = set(token_claims.get("roles") or []) | set(str(token_claims.get("scp", "")).split())
    if not granted & set(needs.permissions):
        first = needs.permissions[0]
        raise SignInError(
            f"the app's token for tenant {tenant_id} lacks {first} (needed to {needs.purpose}); "
            "in Entra ID > App registrations > API permissions add the Microsoft Graph "
            f"application permission {first} and grant admin consent, then run again"
        )
