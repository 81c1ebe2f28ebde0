"""The simulated tenant's knobs: identity, fleet, Intune throttling, fault probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from batch_rotate.sim.escrow import EscrowConfig
from batch_rotate.sim.federation import FederatedCredential
from batch_rotate.sim.targeting import TargetingConfig

LOST_PREFIX = "lost_after_processing_"


@dataclass
class FaultConfig:
    """Per-request fault probabilities (seeded). Batch-level faults hit before any processing."""

    inner_500: float = 0.0
    inner_502: float = 0.0
    inner_503: float = 0.0
    inner_503_retry_after: float = 0.0
    inner_504: float = 0.0
    inner_429_no_retry_after: float = 0.0
    batch_429: float = 0.0
    batch_503: float = 0.0
    batch_504: float = 0.0
    connection_reset: float = 0.0
    timeout: float = 0.0
    truncated_body: float = 0.0
    non_json_body: float = 0.0
    omit_ids: float = 0.0
    # The batch is processed (its rotations accepted), then its answer is lost (issue 11 item 2).
    lost_after_processing_timeout: float = 0.0  # held for timeout_s, then 504
    lost_after_processing_reset: float = 0.0  # connection closed
    lost_after_processing_5xx: float = 0.0  # 502 or 503 (seeded coin)
    lost_after_processing_truncated: float = 0.0  # the real answer cut short
    lost_after_processing_omit_ids: float = 0.0  # every request processed, some ids unanswered
    timeout_s: float = 30.0
    # Lost answers hit only batches that write (rotations): reads, lookups and checks answer.
    lose_writes_only: bool = False

    @classmethod
    def mix(
        cls, rate: float = 0.02, timeout_s: float = 3.0, *, lost_after_processing: bool = False
    ) -> FaultConfig:
        """Every fault at `rate` (the "full fault mix"); lost answers only when asked for."""
        names = [
            f.name
            for f in fields(cls)
            if f.name not in ("timeout_s", "lose_writes_only")
            and (lost_after_processing or not f.name.startswith(LOST_PREFIX))
        ]
        config = cls(timeout_s=timeout_s)
        for name in names:
            setattr(config, name, rate)
        return config


def _default_roles() -> list[str]:
    # The least-privileged set, spelled as Entra puts them in tokens ("Bitlocker", lower-case l).
    return [
        "DeviceManagementManagedDevices.ReadWrite.All",
        "DeviceManagementManagedDevices.Read.All",
        "BitlockerKey.ReadBasic.All",
        # the `select` stage's reads (issue 13)
        "AuditLog.Read.All",
        "GroupMember.Read.All",
        "Device.Read.All",
    ]


def _default_scopes() -> list[str]:
    # The delegated reads of the admin's role check (graph/roles.py) come on top.
    return [
        *_default_roles(),
        "User.Read",
        "RoleManagement.Read.Directory",
        "DeviceManagementRBAC.Read.All",
    ]


def _default_identities() -> dict[str, list[str]]:
    return {"system": _default_roles()}


@dataclass
class SimConfig:
    """Fixed identity defaults so the demo and the committed sample are reproducible."""

    tenant_id: str = "00000000-0000-4000-8000-00000000a11c"
    client_id: str = "00000000-0000-4000-8000-0000000c11e7"
    client_secret: str = "sim-secret-Q7w9Zt3Lk2"
    certificates: list[bytes] = field(default_factory=list)  # PEM certs for client assertions
    roles: list[str] = field(default_factory=_default_roles)
    token_lifetime_s: float = 3599.0
    seed: int = 1
    devices: int = 500
    inventory_file: Path | None = None
    page_size: int = 1000
    time_scale: float = 1.0  # 10 => a 20 s window lasts 2 s; Retry-After values shrink alike
    app_write_limit: int = 200
    tenant_write_limit: int = 400
    app_any_limit: int = 2000
    tenant_any_limit: int = 4000
    window_s: float = 20.0
    window_mode: str = "fixed"  # "fixed" (aligned on the server's start) or "sliding"
    throttling: bool = True
    neighbour_write_share: float = 0.0  # another app's share of the tenant write budget
    faults: FaultConfig = field(default_factory=FaultConfig)
    latency_s: float = 0.0  # per inner request (scaled by time_scale)
    escrow: EscrowConfig = field(default_factory=EscrowConfig)  # what devices do after a rotate
    # Behaviours of a real tenant the tool must survive (issue 10); all off by default.
    listing_omit_share: float = 0.0  # broad managedDevices listings silently skip these devices
    or_filter_first_match_only: bool = True  # `a eq 'x' or a eq 'y'` answers one device only
    clock_offset_s: float = 0.0  # tenant clock minus real time (negative: the tenant is behind)
    stale_action_results_share: float = 0.0  # devices holding a months-old failed rotate result
    # An accepted rotation shows in the device's deviceActionResults (GET by id) only this long
    # (scaled by time_scale) after its 204: Intune's read side lags its writes (issue 19 item 3).
    action_visible_after_s: float = 0.0
    # Generated devices last synced within 20 days of the tenant clock; this share (seeded) has
    # not synced for 31 to 120 days (the plan's 30-day warning).
    unsynced_share: float = 0.0
    # Windows devices that can never rotate (issue 20 item 4), seeded shares: Windows 365 Cloud
    # PCs (deviceType cloudPC, model "Cloud PC ...") and Home editions (skuNumber 101).
    cloud_pc_share: float = 0.0
    home_edition_share: float = 0.0
    # Advanced queries (issue 20 item 2): a type-cast member list
    # (groups/{id}/transitiveMembers/microsoft.graph.device) without `ConsistencyLevel: eventual`
    # and `$count=true` is refused, as the docs say Graph does. Filtered managedDevices results
    # and member lists page at most this many items (None: the usual page sizes), so clients
    # must follow `@odata.nextLink`.
    require_advanced_query: bool = True
    filtered_page_size: int | None = None
    # The `select` stage and sign-in modes (issue 13).
    targeting: TargetingConfig | None = None  # key ages, key-read audit events, groups
    public_client: bool = True  # "Allow public client flows": device code sign-in
    # "Mobile and desktop applications" redirect URIs: interactive sign-in (sim/authcode.py)
    redirect_uris: list[str] = field(default_factory=lambda: ["http://localhost"])
    delegated_scopes: list[str] = field(default_factory=_default_scopes)  # a user's `scp`
    # Role names per UPN, Entra ("Intune Administrator") or Intune ("Help Desk Operator"); see
    # sim/roles.py. None: every signed-in user is an Intune Administrator.
    user_roles: dict[str, list[str]] | None = None
    managed_identities: dict[str, list[str]] = field(default_factory=_default_identities)
    identity_header: str = "sim-identity-header"  # App Service's IDENTITY_HEADER secret
    # Workload identity federation (issue 20): the app's federated credential; None: none set up.
    federated_credential: FederatedCredential | None = field(default_factory=FederatedCredential)
    # Keep every Graph request's method and URL as received, direct or inside a $batch (tests
    # that must show what was never sent; off by default: a bench sends millions).
    log_requests: bool = False
