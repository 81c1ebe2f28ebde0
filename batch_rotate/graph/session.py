"""One Graph session: sign in, check the token's tenant and permissions, and hand the stages one
front door (`GraphSession`) that owns the transport, the read and write lanes, the attempts and
the concurrency, so every `BatchRunner` is built here.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from batch_rotate.graph.auth import claims
from batch_rotate.graph.batch import MAX_BATCH
from batch_rotate.graph.breaker import Breaker
from batch_rotate.graph.client import GraphClient, GraphResponse
from batch_rotate.graph.endpoints import Credentials, Endpoints
from batch_rotate.graph.errors import SignInError
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.lane import app_wide as app_wide_pacer
from batch_rotate.graph.pacer import Budget, Clock, SystemClock
from batch_rotate.graph.pages import pages
from batch_rotate.graph.permissions import granted, granting, holds
from batch_rotate.graph.reads import get_with_retry
from batch_rotate.graph.roles import ROTATE_PERMISSIONS, check_rotate_role, is_delegated, user_of
from batch_rotate.graph.runner import READ_PERMISSION, BatchRunner, Transport
from batch_rotate.graph.signin import token_provider


@dataclass(frozen=True, slots=True)
class Needs:
    """Permissions of which the token must hold at least one (the first is the one to grant)."""

    permissions: tuple[str, ...]
    purpose: str  # what they are needed for, e.g. "rotate BitLocker keys"
    advisory: bool = False  # documented, but Graph may not insist: warn instead of stopping


@dataclass(frozen=True, slots=True)
class Pacing:
    """How a session paces and retries, in plain numbers (the run layer maps its settings here)."""

    read_budget: Budget
    write_budget: Budget
    max_attempts: int = 8
    max_concurrency: int = 4
    batch_size: int = MAX_BATCH  # writes per `$batch`; reads always fill a batch
    retry_delay_s: float = 1.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class GraphSession:
    """The stages' front door to Graph: one transport, one lane per budget, one clock, and the
    attempts and concurrency every runner and read gets, so no stage passes them by hand."""

    transport: Transport
    reads: Lane
    writes: Lane
    pacing: Pacing
    tenant_id: str = ""  # the signed-in token's `tid` (a domain authority resolves to it)
    app: str = ""  # the token's app id (`appid`/`azp`): per-app limits across tenants

    @classmethod
    def paced(cls, transport: Transport, pacing: Pacing, *, clock: Clock) -> GraphSession:
        """A session whose read and write lanes run on `clock` (virtual time in tests)."""
        return cls(
            transport,
            _lane(pacing.read_budget, pacing, clock),
            _lane(pacing.write_budget, pacing, clock),
            pacing,
        )

    @property
    def clock(self) -> Clock:
        return self.reads.clock

    @property
    def max_attempts(self) -> int:
        return self.pacing.max_attempts

    def lane(self, budget: Budget, *, app_wide: Budget | None = None) -> Lane:
        """A further lane on the session's clock, for a service with its own budget (audit);
        `app_wide`: that service's limit per app across tenants, shared with every other
        session of this app in the event loop (a campaign's tenants)."""
        own = _lane(budget, self.pacing, self.clock)
        if app_wide is None:
            return own
        shared = app_wide_pacer(self.app, app_wide, clock=self.clock)
        return dataclasses.replace(own, app_wide=shared)

    def through(self, transport: Transport) -> GraphSession:
        """The same lanes and limits through another transport (e.g. one that counts requests)."""
        return dataclasses.replace(self, transport=transport)

    def runner(
        self,
        *,
        writes: bool = False,
        lane: Lane | None = None,
        version: str = "beta",
        max_concurrency: int | None = None,
        hand_back_lost: bool = False,
    ) -> BatchRunner:
        """A `$batch` runner on the write lane (`batch_size` per batch) or a read lane."""
        return BatchRunner(
            self.transport,
            lane or (self.writes if writes else self.reads),
            batch_size=self.pacing.batch_size if writes else MAX_BATCH,
            max_concurrency=max_concurrency or self.pacing.max_concurrency,
            max_attempts=self.pacing.max_attempts,
            version=version,
            hand_back_lost=hand_back_lost,
        )

    async def get(
        self,
        path: str,
        *,
        lane: Lane | None = None,
        params: Mapping[str, str] | None = None,
        version: str = "beta",
        passed: Collection[int] = (404,),
        permission: str = READ_PERMISSION,
        headers: Mapping[str, str] | None = None,
    ) -> GraphResponse:
        """One read, paced on the read lane (or `lane`) and retried like any batch item."""
        return await get_with_retry(
            self.transport,
            lane or self.reads,
            path,
            params=params,
            max_attempts=self.pacing.max_attempts,
            version=version,
            passed=passed,
            permission=permission,
            headers=headers,
        )

    def pages(
        self,
        path: str,
        *,
        lane: Lane | None = None,
        params: Mapping[str, str] | None = None,
        version: str = "beta",
        passed: Collection[int] = (404,),
        permission: str = READ_PERMISSION,
        headers: Mapping[str, str] | None = None,
        ahead: bool = False,
    ) -> AsyncGenerator[GraphResponse, None]:
        """Every page of a listing, each read like `get`; `ahead` as in `pages.pages`."""
        return pages(
            self.transport,
            lane or self.reads,
            path,
            params=params,
            version=version,
            max_attempts=self.pacing.max_attempts,
            passed=passed,
            permission=permission,
            headers=headers,
            ahead=ahead,
        )

    async def rest_of(
        self, first: Any, *, version: str = "beta", permission: str = READ_PERMISSION
    ) -> list[dict[str, Any]]:
        """The items of every page after `first` (a listing's first page body, e.g. a `$batch`
        item's), following its `@odata.nextLink`; [] when it has none."""
        body = first if isinstance(first, dict) else {}
        link = str(body.get("@odata.nextLink") or "")
        items: list[dict[str, Any]] = []
        if not link:
            return items
        async for page in self.pages(link, version=version, passed=(), permission=permission):
            value = page.body.get("value") if isinstance(page.body, dict) else None
            items += [v for v in value or [] if isinstance(v, dict)]
        return items


def _lane(budget: Budget, pacing: Pacing, clock: Clock) -> Lane:
    return lane(budget, clock=clock, retry_delay_s=pacing.retry_delay_s, seed=pacing.seed)


@asynccontextmanager
async def graph_session(
    credentials: Credentials,
    endpoints: Endpoints,
    *,
    pacing: Pacing,
    needs: Needs | None = None,
    timeout_s: float = 60.0,
    outage_s: float = 60.0,
    also: Sequence[Needs] = (),
    clock: Clock | None = None,
) -> AsyncIterator[GraphSession]:
    """A signed-in session; stops before any request when the token plainly lacks `needs`
    (or any of `also`: the select stage needs one permission per selector). Its breaker stops
    every request once Graph has failed to answer for `outage_s` on `clock`."""
    clock = clock or SystemClock()
    tokens = token_provider(credentials, endpoints, timeout_s=timeout_s)
    breaker = Breaker(clock=clock, outage_s=outage_s)
    try:
        async with GraphClient(endpoints, tokens, timeout_s=timeout_s, breaker=breaker) as graph:
            token = await tokens.token()
            check_tenant(token, credentials.tenant_id, endpoints.authority_url)
            for need in (needs, *also):
                if need is not None:
                    check_permissions(token, need, credentials.tenant_id)
            if needs is not None and needs.permissions[0] in ROTATE_PERMISSIONS:
                await check_role(graph, token, credentials.tenant_id)
            session = GraphSession.paced(graph, pacing, clock=clock)
            said = claims(token)
            app = str(said.get("appid") or said.get("azp") or credentials.client_id)
            yield dataclasses.replace(session, tenant_id=str(said.get("tid", "")), app=app)
    finally:
        tokens.close()


log = logging.getLogger("batch_rotate.graph.roles")


async def check_role(graph: GraphClient, token: str, tenant_id: str) -> None:
    """For a delegated token about to write: raise `SignInError` when Graph shows the signed-in
    admin holds no role that may rotate; warn (and go on) when it could not be read."""
    token_claims = claims(token)
    if not is_delegated(token_claims):
        return  # app-only tokens: the app role is all Graph checks
    found = await check_rotate_role(graph, user_of(token_claims))
    if found.denied:
        raise SignInError(found.denial(tenant_id))
    if found.granted_by:
        log.info("the signed-in admin %s may rotate: %s", found.user, found.granted_by)
    else:
        log.warning(found.warning())


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
    """Raise `SignInError` naming the least-privileged permission and the fix when roles/scp
    hold none of `needs` nor a documented broader one (graph/permissions.py); any case."""
    token_claims = claims(token)
    if not token_claims:
        return  # opaque token: let Graph decide
    held = granted(token_claims)
    if any(holds(held, permission) for permission in needs.permissions):
        return
    first = granting(needs.permissions[0])[0]
    broader = [p for n in needs.permissions for p in granting(n) if p != first]
    also = f" (or a broader one: {', '.join(dict.fromkeys(broader))})" if broader else ""
    if needs.advisory:
        log.warning(
            "the token for tenant %s lacks %s, which Microsoft's docs list to %s; going on: "
            "Graph decides, and a 403 there means it is needed",
            tenant_id,
            first,
            needs.purpose,
        )
        return
    if token_claims.get("scp") and not token_claims.get("roles"):  # a user's token
        who = token_claims.get("upn") or token_claims.get("preferred_username") or "the user"
        raise SignInError(
            f"the signed-in user {who}'s token for tenant {tenant_id} lacks the delegated "
            f"permission {first}{also} (needed to {needs.purpose}); in Entra ID > App "
            f"registrations > API permissions add the Microsoft Graph delegated permission "
            f"{first} and grant consent, then sign in again"
        )
    raise SignInError(
        f"the app's token for tenant {tenant_id} lacks {first}{also} (needed to "
        f"{needs.purpose}); in Entra ID > App registrations > API permissions add the Microsoft "
        f"Graph application permission {first} and grant admin consent, then run again"
    )
