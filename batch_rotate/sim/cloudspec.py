"""One tenant of the simulated cloud (`CloudTenant`) and what all its tenants share (`Shared`).

A lone `SimTenant` is a cloud of one, so `Tenant` always has both (GRAPH_NOTES.md "Many tenants").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from batch_rotate.sim.config import SimConfig
from batch_rotate.sim.throttling import SlidingLimit
from batch_rotate.sim.tokens import TokenIssuer

# Entra's per-app limit on audit log and report reads across every tenant (learn
# `graph/throttling-limits`): 122 requests per 10 s, besides the 5 per 10 s per tenant.
APP_AUDIT_LIMIT = 122
AUDIT_WINDOW_S = 10.0
Consent = Literal["AADSTS7000229", "AADSTS700016"]
CONSENT_CODES: tuple[Consent, ...] = ("AADSTS7000229", "AADSTS700016")


@dataclass
class CloudTenant:
    """A tenant's world (`config`) and how the multi-tenant app stands in it.

    `consent`: None (the app is consented), "AADSTS7000229" (no service principal) or
    "AADSTS700016" (app not found in the directory); `intune=False`: no Intune service."""

    config: SimConfig = field(default_factory=SimConfig)
    name: str | None = None
    domain: str | None = None
    consent: Consent | None = None
    intune: bool = True

    @property
    def label(self) -> str:
        """How identity errors name the directory: its name, else its id."""
        return self.name or self.config.tenant_id


@dataclass
class Shared:
    """What every tenant of one cloud shares: the token key, per-app limits across tenants and
    the check for ids of another tenant (None in a cloud of one)."""

    tokens: TokenIssuer
    app_audits: SlidingLimit
    # (the token's tenant id, the request's path and query) -> it names another tenant's id
    foreign: Callable[[str, str, str], bool] | None = None

    @classmethod
    def alone(cls, time_scale: float, app_audit_limit: int = APP_AUDIT_LIMIT) -> Shared:
        return cls(TokenIssuer(), SlidingLimit(app_audit_limit, AUDIT_WINDOW_S / time_scale))
