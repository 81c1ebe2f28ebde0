"""The records a multi-tenant campaign passes between its stages (issue 21).

A campaign folder (`reports/<campaign>/`) holds `campaign.json` (a `CampaignRecord`), one ordinary
run folder per tenant, and the roll-up (`rollup.xlsx`, `rollup.csv`). Pure data; no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CAMPAIGN_FILE = "campaign.json"


@dataclass(frozen=True)
class TenantEntry:
    """One line of the tenants file.

    `tenant`: the tenant id (GUID) or a verified domain, as the operator wrote it.
    `input`: this tenant's own device list, or None when one list spans every tenant (split by
    its `Tenant ID` column) or when devices are chosen by selectors.
    `env`: per-tenant credential overrides, option name -> the NAME of an environment variable
    (`client_id`, `client_secret`, `certificate_path`, `certificate_password`); never a secret.
    """

    tenant: str
    name: str
    line: int  # the line in the tenants file, for messages
    input: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.tenant


@dataclass
class TenantOutcome:
    """What happened to one tenant: one line of the roll-up's Summary sheet.

    `preflight`: "ok", or the reason it failed; `fix`: what the operator does about it.
    `run_dir`: the tenant's ordinary run folder (None when pre-flight failed before one existed);
    the devices and their statuses are read from its journal.
    """

    entry: TenantEntry
    tenant_id: str  # the `tid` the tenant signed in as ("" until known)
    sign_in: str  # the credential method: "client secret", "certificate", "device code", ...
    preflight: str = "ok"
    fix: str = ""
    run_dir: Path | None = None
    duration_s: float = 0.0
    budget_use: float | None = None  # share of the tenant's write budget used while sending
    exit_code: int = 0
