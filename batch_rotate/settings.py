"""Run settings: one typed, checked object built at the command-line edge and read by the library.

Every option is parsed and checked here, before the input is read or anything goes on the network.
Secrets live only in `Credentials`, never in `public()` (what journals and reports record).
"""

from __future__ import annotations

import math
import os
import re
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from batch_rotate.errors import InputError
from batch_rotate.graph.budget import Budget
from batch_rotate.graph.endpoints import CLOUD_HOSTS, Cloud, Credentials, Endpoints
from batch_rotate.graph.errors import ConfigError
from batch_rotate.graph.proxy import check_proxy, redact

__all__ = [
    "CLOUD_HOSTS",
    "WRITE_PERMISSIONS",
    "Budget",
    "Cloud",
    "Credentials",
    "Endpoints",
    "KeysStrategy",
    "Settings",
]

# Graph documents only ReadWrite.All for rotateBitLockerKeys (GRAPH_NOTES.md "The rotate action").
WRITE_PERMISSIONS = ("DeviceManagementManagedDevices.ReadWrite.All",)
MAX_TIMEOUT_S = 3600.0


class KeysStrategy(StrEnum):
    """How `verify` reads recovery keys."""

    AUTO = "auto"  # the cheaper of the two, from the inventory size
    PER_DEVICE = "per-device"
    LISTING = "listing"


def budget_text(budget: Budget) -> str:
    """A budget as the user writes it: "200/20s"."""
    return f"{budget.count}/{budget.window_s:g}s"


def parse_budget(text: str | Budget) -> Budget:
    """COUNT/WINDOW such as 200/20s; ValueError names the rule."""
    return text if isinstance(text, Budget) else Budget.parse(text)


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*")


def parse_duration(text: str | float) -> float:
    """Seconds from '90s', '10m', '2h', '1d' or a plain number of seconds (finite, >= 0)."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.fullmatch(text)
        if not match:
            raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 10m, 2h or 1d")
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]
        seconds = float(match.group(1)) * unit
    if not 0 <= seconds < math.inf:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 10m, 2h or 1d")
    return seconds


def parse_timeout(text: str | float) -> float:
    """Seconds for one HTTP request: above 0, finite, at most an hour (0 would mean "never")."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds; use e.g. 60") from None
    if not 0 < seconds <= MAX_TIMEOUT_S:
        raise ValueError(
            f"{text!r}: use a number of seconds above 0 and at most {MAX_TIMEOUT_S:g} "
            "(a request with no timeout could hang the run forever)"
        )
    return seconds


def check_ca_bundle(path: Path) -> Path:
    """A readable PEM file holding at least one CA certificate."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give a PEM file of CA certificates")
    try:
        text = path.read_bytes()[:10_000_000].decode("ascii", errors="replace")
    except OSError as exc:
        raise ValueError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(
            f"{path}: holds no PEM certificate (-----BEGIN CERTIFICATE-----); export the CA as "
            "Base-64 (PEM), not DER or a key"
        )
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable PEM CA bundle ({exc}); export it again") from None
    return path


def check_certificate(path: Path) -> Path:
    """An existing, readable certificate file (PEM with key, or PFX); never a silent fallback."""
    if not path.is_file():
        raise ValueError(
            f"{path}: no such file; give the PEM (key + certificate) or PFX the app registration "
            "trusts, or unset it to sign in with AZURE_CLIENT_SECRET"
        )
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path}: cannot be read; check its permissions")
    return path


def parse_proxy(text: str) -> str:
    """An http://host:port proxy URL (user:password allowed: used, never recorded)."""
    try:
        return check_proxy(text.strip())
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def check_reports_dir(path: Path) -> Path:
    """A folder that exists and is writable, or can be created in a writable parent."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(f"{probe} is not a folder; give a folder for the run reports")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{probe} is not writable; give a folder you can write to")
    return path


def check_url(name: str, url: str | None) -> str | None:
    """An https URL without user:password (credentials in a URL would be logged)."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{name} {url!r} must be an https:// URL (TLS is never switched off)")
    if parts.username or parts.password:
        raise ValueError(
            f"{name} must not hold a user name or password; sign-in uses AZURE_CLIENT_SECRET "
            "or a certificate"
        )
    return url


def endpoints_for(
    cloud: Cloud,
    tenant_id: str,
    *,
    graph_url: str | None = None,
    authority_url: str | None = None,
    authority_host: str | None = None,
    scope: str | None = None,
    ca_bundle: Path | None = None,
    proxy: str | None = None,
) -> Endpoints:
    """Endpoints for the cloud and overrides; a bad value is an InputError naming the option.

    `authority_host` (AZURE_AUTHORITY_HOST, as azure-identity reads it) is the login host without
    the tenant; an explicit `--authority-url` wins over it, and it over the cloud's host."""
    try:
        for name, url in (
            ("--graph-url", graph_url),
            ("--authority-url", authority_url),
            ("--authority-host (AZURE_AUTHORITY_HOST)", authority_host),
        ):
            check_url(name, url)
        if authority_url is None and authority_host:
            authority_url = f"{authority_host.rstrip('/')}/{tenant_id or 'organizations'}"
        return Endpoints.for_cloud(
            cloud,
            tenant_id or "organizations",
            graph_url=graph_url,
            authority_url=authority_url,
            scope=scope,
            ca_bundle=ca_bundle,
            proxy=proxy,
        )
    except (ConfigError, ValueError) as exc:
        raise InputError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, except the input file and the secrets; checked when built."""

    endpoints: Endpoints
    batch_size: int = 20
    max_concurrency: int = 4
    write_budget: Budget = field(default_factory=lambda: Budget(200, 20.0))
    read_budget: Budget = field(default_factory=lambda: Budget(2000, 20.0))
    max_attempts: int = 8
    retry_delay_s: float = 1.0  # base of the exponential backoff (full jitter, capped at 60 s)
    timeout_s: float = 60.0
    reports_dir: Path = Path("reports")
    dry_run: bool = False
    max_devices: int = 5000
    seed: int | None = None
    verify_wait_s: float | None = None  # after rotating, verify for this long (None: don't)
    verify_every_s: float = 300.0
    keys_strategy: KeysStrategy = KeysStrategy.AUTO
    check_keys: bool = False  # plan: count each device's escrowed keys (flags the 200 ceiling)
    outage_s: float = 60.0  # no answer from Graph for this long: stop, keep the run resumable
    allow_key_ceiling: bool = False  # with check_keys: rotate devices at the ceiling anyway
    recent_s: float = 86400.0  # skip devices another run queued this recently (0: no check)
    force_recent: bool = False  # rotate them anyway
    # A lost answer is not re-sent before this (engine.py: Intune may show it late).
    uncertain_grace_s: float = 600.0
    # plan: read each device's action results; hold back rotations anyone requested in recent_s
    check_recent_rotations: bool = False

    def __post_init__(self) -> None:
        problems = [
            (not 1 <= self.batch_size <= 20, f"--batch-size {self.batch_size}: use 1 to 20"),
            (
                not 1 <= self.max_concurrency <= 64,
                f"--max-concurrency {self.max_concurrency}: use 1 to 64",
            ),
            (not 1 <= self.max_attempts <= 100, f"--max-attempts {self.max_attempts}: use 1-100"),
            (
                not 0 < self.retry_delay_s <= 60,
                f"--retry-delay {self.retry_delay_s}: use more than 0 and at most 60",
            ),
            (
                not 0 < self.timeout_s <= MAX_TIMEOUT_S,
                f"--timeout {self.timeout_s}: use more than 0 and at most {MAX_TIMEOUT_S:g}",
            ),
            (self.max_devices < 0, f"--max-devices {self.max_devices}: use 0 or more"),
            (
                not 0 < self.outage_s <= 86400,
                f"--outage-timeout {self.outage_s}: use a duration above 0 and at most 1d",
            ),
            (
                not 0 <= self.uncertain_grace_s <= 86400,
                f"--uncertain-grace {self.uncertain_grace_s}: use a duration from 0 to 1d",
            ),
            (
                not 0 < self.verify_every_s < math.inf,
                f"--verify-every {self.verify_every_s}: use a duration above 0",
            ),
        ]
        for bad, text in problems:
            if bad:
                raise InputError(text)

    def public(self) -> dict[str, str]:
        """Settings safe to record in the journal and the report (no secrets here by design)."""
        return {
            "authority_url": self.endpoints.authority_url,
            "graph_url": self.endpoints.graph_url,
            "scope": self.endpoints.scope,
            "ca_bundle": str(self.endpoints.ca_bundle.resolve())
            if self.endpoints.ca_bundle
            else "",
            # user:password never recorded: a resume asks for --proxy again (run.py)
            "proxy": redact(self.endpoints.proxy) if self.endpoints.proxy else "",
            "batch_size": str(self.batch_size),
            "max_concurrency": str(self.max_concurrency),
            "write_budget": budget_text(self.write_budget),
            "read_budget": budget_text(self.read_budget),
            "max_attempts": str(self.max_attempts),
            "retry_delay_s": str(self.retry_delay_s),
            "timeout_s": str(self.timeout_s),
            "dry_run": str(self.dry_run),
            "max_devices": str(self.max_devices),
        }
