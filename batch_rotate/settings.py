"""Run settings: one typed object built by the CLI and read by the library.

Secrets live only in `Credentials`, never in `public()` (what journals and reports record).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from batch_rotate.errors import InputError


class Cloud(StrEnum):
    GLOBAL = "global"
    USGOV = "usgov"
    USGOV_DOD = "usgov-dod"
    CHINA = "china"


# (login host, Graph host) per national cloud (GRAPH_NOTES.md "Identity platform and MSAL").
CLOUD_HOSTS: dict[Cloud, tuple[str, str]] = {
    Cloud.GLOBAL: ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    Cloud.USGOV: ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    Cloud.USGOV_DOD: ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    Cloud.CHINA: ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}

WRITE_PERMISSIONS = (
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementManagedDevices.PrivilegedOperations.All",
)


@dataclass(frozen=True, repr=False)
class Credentials:
    """App registration credentials; repr never shows the secret or certificate password."""

    tenant_id: str
    client_id: str
    client_secret: str | None = None
    certificate_path: Path | None = None
    certificate_password: str | None = None

    def __repr__(self) -> str:
        kind = (
            "secret" if self.client_secret else "certificate" if self.certificate_path else "none"
        )
        return f"Credentials(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, {kind})"

    @property
    def method(self) -> str:
        return "certificate" if self.certificate_path else "client_secret"


@dataclass(frozen=True)
class Endpoints:
    authority_url: str  # https://login.../{tenant}
    graph_url: str  # https://graph.microsoft.com (no version)
    scope: str  # {graph}/.default
    ca_bundle: Path | None = None

    @classmethod
    def for_cloud(
        cls,
        cloud: Cloud,
        tenant_id: str,
        *,
        graph_url: str | None = None,
        authority_url: str | None = None,
        scope: str | None = None,
        ca_bundle: Path | None = None,
    ) -> Endpoints:
        login, graph = CLOUD_HOSTS[cloud]
        graph = (graph_url or graph).rstrip("/")
        authority = (authority_url or f"{login}/{tenant_id}").rstrip("/")
        for name, url in (("--graph-url", graph), ("--authority-url", authority)):
            if not url.startswith("https://"):
                raise InputError(
                    f"{name} {url!r} must be an https:// URL (TLS is never switched off)"
                )
        if ca_bundle is not None and not ca_bundle.is_file():
            raise InputError(
                f"--ca-bundle {ca_bundle}: no such file; give a PEM file of CA certificates"
            )
        return cls(authority, graph, scope or f"{graph}/.default", ca_bundle)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, except the input file and the secrets."""

    endpoints: Endpoints
    batch_size: int = 20
    max_concurrency: int = 4
    write_budget: str = "200/20s"
    read_budget: str = "2000/20s"
    max_attempts: int = 8
    retry_delay_s: float = 1.0  # base of the exponential backoff (full jitter, capped at 60 s)
    timeout_s: float = 60.0
    reports_dir: Path = Path("reports")
    dry_run: bool = False
    max_devices: int = 5000
    seed: int | None = None
    verify_wait_s: float | None = None  # after rotating, verify for this long (None: don't)
    verify_every_s: float = 300.0
    keys_strategy: str = "auto"  # how verify reads recovery keys: auto, per-device, listing
    check_keys: bool = False  # plan: count each device's escrowed keys (flags the 200 ceiling)
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 20:
            raise InputError(f"--batch-size {self.batch_size}: Graph $batch takes 1 to 20 requests")
        if not 1 <= self.max_concurrency <= 64:
            raise InputError(f"--max-concurrency {self.max_concurrency}: use 1 to 64")
        if self.max_attempts < 1:
            raise InputError(f"--max-attempts {self.max_attempts}: use 1 or more")
        if not 0 < self.retry_delay_s <= 60:
            raise InputError(f"--retry-delay {self.retry_delay_s}: use more than 0 and at most 60")

    def public(self) -> dict[str, str]:
        """Settings safe to record in the journal and the report (no secrets here by design)."""
        return {
            "authority_url": self.endpoints.authority_url,
            "graph_url": self.endpoints.graph_url,
            "scope": self.endpoints.scope,
            "ca_bundle": str(self.endpoints.ca_bundle or ""),
            "batch_size": str(self.batch_size),
            "max_concurrency": str(self.max_concurrency),
            "write_budget": self.write_budget,
            "read_budget": self.read_budget,
            "max_attempts": str(self.max_attempts),
            "retry_delay_s": str(self.retry_delay_s),
            "timeout_s": str(self.timeout_s),
            "dry_run": str(self.dry_run),
            "max_devices": str(self.max_devices),
            **self.extra,
        }
