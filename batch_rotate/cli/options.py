"""The command-line options: each parsed into a typed value, or checked, by Typer itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from batch_rotate.models import IdKind
from batch_rotate.settings import (
    Budget,
    Cloud,
    KeysStrategy,
    check_ca_bundle,
    check_certificate,
    check_reports_dir,
    parse_budget,
    parse_duration,
    parse_proxy,
    parse_timeout,
)


def typed(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A Typer parser from a plain one: ValueError becomes a usage error naming the option."""

    def parser(value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parser


def checked_path(check: Callable[[Path], Path]) -> Callable[[Path | None], Path | None]:
    def callback(value: Path | None) -> Path | None:
        return None if value is None else typed(check)(value)

    return callback


TenantOpt = Annotated[
    str, typer.Option("--tenant-id", envvar="AZURE_TENANT_ID", help="Entra tenant id.")
]
ClientOpt = Annotated[
    str, typer.Option("--client-id", envvar="AZURE_CLIENT_ID", help="App (client) id.")
]
SecretOpt = Annotated[
    str,
    typer.Option(
        "--client-secret",
        envvar="AZURE_CLIENT_SECRET",
        show_default=False,
        help="Client secret (prefer the environment variable: command lines are visible).",
    ),
]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--certificate-path",
        envvar="AZURE_CLIENT_CERTIFICATE_PATH",
        callback=checked_path(check_certificate),
        help="PEM (key + certificate) or PFX.",
    ),
]
CertPwOpt = Annotated[
    str,
    typer.Option(
        "--certificate-password", envvar="AZURE_CLIENT_CERTIFICATE_PASSWORD", show_default=False
    ),
]
CloudOpt = Annotated[
    Cloud, typer.Option("--cloud", help="National cloud: picks the login and Graph hosts.")
]
GraphUrlOpt = Annotated[
    str | None,
    typer.Option("--graph-url", help="Graph base URL override (proxy, simulated tenant)."),
]
AuthorityOpt = Annotated[
    str | None,
    typer.Option("--authority-url", help="Authority URL override: https://host/{tenant}."),
]
ScopeOpt = Annotated[
    str | None, typer.Option("--scope", help="Token scope; default {graph-url}/.default.")
]
CaOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        envvar="SSL_CERT_FILE",
        callback=checked_path(check_ca_bundle),
        help="Extra trusted CA (PEM) for sign-in and Graph.",
    ),
]
ProxyOpt = Annotated[
    str | None,
    typer.Option(
        "--proxy",
        parser=typed(parse_proxy),
        metavar="URL",
        help="HTTP proxy for sign-in and Graph, http://[user:password@]host:port; default "
        "HTTPS_PROXY/HTTP_PROXY with NO_PROXY. The password is never recorded.",
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Requests per $batch (1-20).")]
ConcOpt = Annotated[int, typer.Option("--max-concurrency", help="Batches in flight at once.")]
WriteOpt = Annotated[
    Budget,
    typer.Option(
        "--write-budget",
        parser=typed(parse_budget),
        metavar="COUNT/WINDOW",
        help="Write budget for this app, e.g. 200/20s.",
    ),
]
ReadOpt = Annotated[
    Budget,
    typer.Option(
        "--read-budget",
        parser=typed(parse_budget),
        metavar="COUNT/WINDOW",
        help="Read budget, e.g. 2000/20s.",
    ),
]
AttemptsOpt = Annotated[
    int, typer.Option("--max-attempts", help="Tries per device on transient errors.")
]
RetryDelayOpt = Annotated[
    float,
    typer.Option("--retry-delay", help="Base seconds of the backoff between transient retries."),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=typed(parse_timeout),
        metavar="SECONDS",
        help="Seconds before one HTTP request times out (above 0, at most 3600).",
    ),
]
ReportsOpt = Annotated[
    Path,
    typer.Option(
        "--reports-dir",
        callback=checked_path(check_reports_dir),
        help="Where run folders are written.",
    ),
]
MaxDevOpt = Annotated[int, typer.Option("--max-devices", help="Refuse a plan larger than this.")]
IdColOpt = Annotated[str | None, typer.Option("--id-column", help="Column holding the identifier.")]
IdKindOpt = Annotated[IdKind | None, typer.Option("--id-kind", help="What the column holds.")]
KeysOpt = Annotated[
    KeysStrategy,
    typer.Option(
        "--keys-strategy",
        help="How verify reads recovery keys: auto (cheaper of the two), per-device, listing.",
    ),
]
CheckKeysOpt = Annotated[
    bool,
    typer.Option(
        "--check-keys",
        help="Count each device's escrowed keys and flag those near Entra's 200-key limit "
        "(needs BitLockerKey.ReadBasic.All; one read per device).",
    ),
]
SheetOpt = Annotated[str | None, typer.Option("--sheet", help="XLSX sheet (default: the first).")]


def duration_option(name: str, help_text: str) -> Any:
    return typer.Option(name, parser=typed(parse_duration), metavar="DURATION", help=help_text)


# ---- the select stage and sign-in modes (issue 13) ----


def parse_since(text: str | datetime | float) -> datetime | float:
    """A date or time (UTC unless it says otherwise), or a duration back from the tenant's now."""
    if isinstance(text, datetime | float | int):
        return text
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return parse_duration(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a date (2026-11-20, 2026-11-20T08:00Z) nor a duration "
                "(7d, 36h)"
            ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


class AuthMode(StrEnum):
    APP = "app"
    DEVICE_CODE = "device-code"
    MANAGED_IDENTITY = "managed-identity"


ExposedOpt = Annotated[
    Any,
    typer.Option(
        "--exposed-since",
        parser=typed(parse_since),
        metavar="DATE|DURATION",
        help="Devices whose recovery key was read since then ('Read BitLocker key' audit "
        "events; AuditLog.Read.All). The log keeps 30 days (7 on Entra ID Free).",
    ),
]
ReadByOpt = Annotated[
    str | None,
    typer.Option("--read-by", metavar="UPN", help="With --exposed-since: reads by this actor."),
]
KeysOlderOpt = Annotated[
    float | None,
    typer.Option(
        "--keys-older-than",
        parser=typed(parse_duration),
        metavar="DURATION",
        help="Devices whose newest escrowed key is older (or that have none), e.g. 90d "
        "(BitLockerKey.ReadBasic.All; metadata only).",
    ),
]
GroupOpt = Annotated[
    str | None,
    typer.Option(
        "--group",
        metavar="NAME|ID",
        help="Entra group, transitive: device members and user members' Windows devices "
        "(GroupMember.Read.All, Device.Read.All).",
    ),
]
AllWindowsOpt = Annotated[
    bool, typer.Option("--all-windows", help="Every eligible Windows device in Intune.")
]
ExcludeOpt = Annotated[
    Path | None,
    typer.Option("--exclude", metavar="FILE", help="Device list (CSV/XLSX) to leave out."),
]
AuthOpt = Annotated[
    AuthMode,
    typer.Option(
        "--auth",
        envvar="BATCH_ROTATE_AUTH",
        help="Sign in as the app (secret/certificate), as an admin by device code (delegated), "
        "or as this Azure resource's managed identity.",
    ),
]
MiClientOpt = Annotated[
    str | None,
    typer.Option(
        "--managed-identity-client-id",
        envvar="AZURE_MANAGED_IDENTITY_CLIENT_ID",
        help="User-assigned managed identity's client id (default: system-assigned).",
    ),
]
TokenCacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-cache",
        envvar="BATCH_ROTATE_TOKEN_CACHE",
        help="Device code: file for the user's token cache (default: per user, mode 0600).",
    ),
]


OutageOpt = Annotated[
    float,
    typer.Option(
        "--outage-timeout",
        parser=typed(parse_duration),
        metavar="DURATION",
        help="Stop (exit 3, resumable) when Graph has not answered for this long, e.g. 60s.",
    ),
]


# --- output and guards (issue 12) -------------------------------------------------------------
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout (human output goes to stderr)."),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only warnings and errors (no progress, no table).")
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also each device's answer, as it comes.")
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug", help="Also every HTTP request and answer (no headers; tokens never shown)."
    ),
]
AllowCeilingOpt = Annotated[
    bool,
    typer.Option(
        "--allow-key-ceiling",
        help="With --check-keys: rotate devices at or near the 200-key ceiling anyway.",
    ),
]
ForceRecentOpt = Annotated[
    bool,
    typer.Option("--force-recent", help="Rotate devices another run queued within --recent."),
]


def recent_option() -> Any:
    return duration_option(
        "--recent", "Skip devices another run queued this recently (0 turns the check off)."
    )
