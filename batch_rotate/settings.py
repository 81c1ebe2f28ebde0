"""Run settings: one typed object built by the CLI and read by the library.

Secrets live only in `Credentials`, never in `public()` (what journals and reports record).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batch_rotate.errors import InputError
from batch_rotate.graph.endpoints import CLOUD_HOSTS, Cloud, Credentials, Endpoints

__all__ = ["CLOUD_HOSTS", "WRITE_PERMISSIONS", "Cloud", "Credentials", "Endpoints", "Settings"]


WRITE_PERMISSIONS = (
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementManagedDevices.PrivilegedOperations.All",
)


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
