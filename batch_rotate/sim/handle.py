"""One tenant of a running simulated cloud, seen from a test: ground truth and sign-in hooks.

`SimTenant` is a cloud of one that is also its tenant's handle, so these methods are its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from batch_rotate.sim.config import SimConfig
from batch_rotate.sim.inventory import Fleet

if TYPE_CHECKING:
    from collections.abc import Callable

    from batch_rotate.sim.tenant import Tenant

T = TypeVar("T")


class Host(Protocol):
    """What a handle needs from the cloud that runs its tenant."""

    @property
    def base_url(self) -> str: ...

    def _world(self, tenant: str) -> Tenant: ...

    def _call(self, action: Callable[[], T]) -> T: ...


class TenantHandle:
    """A tenant's hooks; every call that touches state runs on the server's loop."""

    def __init__(self, host: Host, config: SimConfig) -> None:
        self._host = host
        self.config = config

    @property
    def _tenant(self) -> Tenant:
        return self._host._world(self.config.tenant_id)

    @property
    def authority_url(self) -> str:
        return f"{self._host.base_url}/{self.config.tenant_id}"

    @property
    def inventory(self) -> Fleet:
        """The fleet with current action results: a lazy sequence of device dicts (copies)."""
        return self._tenant.fleet

    def env(self) -> dict[str, str]:
        return {
            "AZURE_TENANT_ID": self.config.tenant_id,
            "AZURE_CLIENT_ID": self.config.client_id,
            "AZURE_CLIENT_SECRET": self.config.client_secret,
        }

    def _on_loop(self, action: Callable[[Tenant], Any]) -> Any:
        """Run `action` on the server's loop, so it never races a request handler."""
        tenant = self._tenant
        return self._host._call(lambda: action(tenant))

    def metrics(self) -> dict[str, Any]:
        """The same JSON as GET /_sim/metrics."""
        result: dict[str, Any] = self._on_loop(lambda t: t.metrics.snapshot())
        return result

    def requests(self) -> list[str]:
        """Every Graph request received since the last reset (SimConfig.log_requests)."""
        found: list[str] = self._on_loop(lambda t: list(t.metrics.requests))
        return found

    def initial_key_count(self, device_id: str) -> int:
        """How many keys Entra held for the device before any rotation (seeded, pure)."""
        return self._tenant.escrow.behaviour(device_id).initial_keys

    def verification_truth(self) -> dict[str, str]:
        """Ground truth per rotated device id: what `verify` must report now."""

        def truth(tenant: Tenant) -> dict[str, str]:
            out = {}
            for device_id in tenant.metrics.accepted_by_device:
                device = tenant.fleet.get(device_id)
                if device is not None:
                    out[device["id"]] = tenant.escrow.truth(device)
            return out

        found: dict[str, str] = self._on_loop(truth)
        return found

    def advance_days(self, days: float) -> None:
        """Move the tenant's clock forward: keys age, and every device not offline checks in
        (its lastSyncDateTime follows the clock; an offline one keeps its last check-in)."""

        def move(t: Tenant) -> None:
            t.clock.offset_s += days * 86400
            stamp = t.clock.iso(ms=True)
            for index in range(len(t.fleet)):
                device = t.fleet[index]
                if device["id"] not in t.escrow.offline:
                    t.fleet.set_property(device["id"], "lastSyncDateTime", stamp)

        self._on_loop(move)

    def set_offline(self, device_ids: set[str]) -> None:
        """These devices stop checking in (queued rotations wait) until taken out again."""
        self._on_loop(lambda t: setattr(t.escrow, "offline", set(device_ids)))

    def set_failing(self, device_ids: set[str]) -> None:
        """Rotations of these devices fail on the device (an HRESULT) until taken out again."""
        self._on_loop(lambda t: setattr(t.escrow, "failing", set(device_ids)))

    def reset_metrics(self) -> None:
        self._on_loop(lambda t: t.reset())

    # ---- the `select` stage's ground truth and sign-in hooks (issue 13) ----

    def tenant_now(self) -> datetime:
        """The tenant's clock now (key ages and audit times are on it)."""
        return self._tenant.clock.now()

    def select_truth(self, kind: str, *args: Any) -> set[str]:
        """Intune ids a selector must return: kind is exposed (since, read_by), keys_older
        (older_than), group (name or id) or all_windows; needs `SimConfig.targeting`."""

        def truth(t: Tenant) -> set[str]:
            assert t.targeting is not None, "start the sim with SimConfig(targeting=...)"
            if kind == "group":
                assert t.groups is not None
                return t.groups.truth(*args)
            result: set[str] = getattr(t.targeting, kind)(*args)
            return result

        found: set[str] = self._on_loop(truth)
        return found

    def count(self, name: str) -> int:
        """A counter outside the metrics snapshot (devicecode_requests, audit_requests, ...)."""
        found: int = self._on_loop(lambda t: t.metrics.counts.get(name, 0))
        return found

    def group_id(self, name: str) -> str:
        groups = self._tenant.groups
        assert groups is not None
        return groups.by_name(name)[0].id

    def approve_device_codes(self, upn: str | None) -> None:
        """Approve every device code as `upn` at its second poll (None: leave them pending)."""

        def set_upn(t: Tenant) -> None:
            t.device_codes.auto_approve = upn

        self._on_loop(set_upn)

    def sign_in_browser_as(self, upn: str | None, *, decline: bool = False) -> None:
        """The user signed in to the browser: `/authorize` issues codes for them (None: nobody,
        the sign-in page waits; `decline`: they cancel at the consent prompt)."""

        def set_upn(t: Tenant) -> None:
            t.auth_codes.browser_user = upn
            t.auth_codes.decline = decline

        self._on_loop(set_upn)

    def federated_token(self, **claims: Any) -> str:
        """A token of the outside issuer the app trusts (issuer, subject, audience, lifetime_s,
        issued_at override the federated credential's), as a pipeline writes it to a file."""
        token: str = self._on_loop(lambda t: t.federation.mint(**claims))
        return token

    def set_user_roles(self, upn: str, roles: list[str]) -> None:
        """Give `upn` these roles (names from sim/roles.py), replacing any it had."""
        self._on_loop(lambda t: t.admin_roles.set(upn, roles))
