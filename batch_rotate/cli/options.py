"""The shared options, each parsed into a typed value (or checked) by Typer itself, in the help
panel of its group. Which command takes which group is `cli/groups.py`."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from batch_rotate.settings import (
    Budget,
    Cloud,
    check_ca_bundle,
    check_certificate,
    check_reports_dir,
    parse_budget,
    parse_duration,
    parse_proxy,
    parse_timeout,
)

SIGN_IN, CONNECTION, PACING, SAFETY, OUTPUT = "Sign-in", "Connection", "Pacing", "Safety", "Output"


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


def duration_option(name: str, help_text: str, panel: str | None = None) -> Any:
    return typer.Option(
        name,
        parser=typed(parse_duration),
        metavar="DURATION",
        help=help_text,
        rich_help_panel=panel,
    )


class AuthMode(StrEnum):
    APP = "app"
    DEVICE_CODE = "device-code"
    INTERACTIVE = "interactive"
    MANAGED_IDENTITY = "managed-identity"
    WORKLOAD_IDENTITY = "workload-identity"


# ---- Sign-in: who signs in (secrets are read, used, and never recorded) ----------------------
AuthOpt = Annotated[
    AuthMode,
    typer.Option(
        "--auth",
        envvar="BATCH_ROTATE_AUTH",
        metavar="MODE",
        show_envvar=False,
        rich_help_panel=SIGN_IN,
        help="app: the app's secret or certificate; device-code or interactive (browser "
        "sign-in): an admin, delegated; managed-identity: this Azure resource's identity; "
        "workload-identity: a pipeline's federated token (AZURE_FEDERATED_TOKEN_FILE).",
    ),
]


def _env_opt(name: str, env: str, help_text: str, **extra: Any) -> Any:
    """An option read from an environment variable (the Azure SDKs' names). The help lists the
    variables in its Environment section: an option's own column cuts such names at 80 columns."""
    return typer.Option(
        name,
        envvar=env,
        show_envvar=False,
        rich_help_panel=SIGN_IN,
        help=help_text,
        **extra,
    )


TenantOpt = Annotated[
    str, _env_opt("--tenant-id", "AZURE_TENANT_ID", "Entra tenant id.", metavar="ID")
]
ClientOpt = Annotated[
    str, _env_opt("--client-id", "AZURE_CLIENT_ID", "App (client) id.", metavar="ID")
]
SecretOpt = Annotated[
    str,
    _env_opt(
        "--client-secret",
        "AZURE_CLIENT_SECRET",
        "Client secret; prefer the variable (command lines are visible).",
        show_default=False,
        metavar="SECRET",
    ),
]
CertOpt = Annotated[
    Path | None,
    _env_opt(
        "--certificate-path",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "PEM (key + certificate) or PFX.",
        callback=checked_path(check_certificate),
        metavar="PATH",
    ),
]
CertPwOpt = Annotated[
    str,
    _env_opt(
        "--certificate-password",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "PFX password.",
        show_default=False,
        metavar="SECRET",
    ),
]
MiClientOpt = Annotated[
    str | None,
    _env_opt(
        "--managed-identity-client-id",
        "AZURE_MANAGED_IDENTITY_CLIENT_ID",
        "User-assigned managed identity (default: system-assigned).",
        metavar="ID",
    ),
]
TokenCacheOpt = Annotated[
    Path | None,
    _env_opt(
        "--token-cache",
        "BATCH_ROTATE_TOKEN_CACHE",
        "Device code, interactive: the admin's token cache file (default: per user).",
        metavar="PATH",
    ),
]
FederatedTokenOpt = Annotated[
    Path | None,
    _env_opt(
        "--federated-token-file",
        "AZURE_FEDERATED_TOKEN_FILE",
        "Workload identity: the federated token file, re-read on each sign-in.",
        metavar="PATH",
    ),
]

# ---- Connection: where requests go and what they trust ------------------------------------
CloudOpt = Annotated[
    Cloud,
    typer.Option(
        "--cloud",
        metavar="CLOUD",
        rich_help_panel=CONNECTION,
        help="National cloud (global, usgov, usgov-dod, china): the login and Graph hosts.",
    ),
]
GraphUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--graph-url",
        metavar="URL",
        rich_help_panel=CONNECTION,
        help="Graph base URL override (simulated tenant, reverse proxy).",
    ),
]
AuthorityOpt = Annotated[
    str | None,
    typer.Option(
        "--authority-url",
        metavar="URL",
        rich_help_panel=CONNECTION,
        help="Authority URL override: https://host/{tenant}.",
    ),
]
AuthorityHostOpt = Annotated[
    str | None,
    typer.Option(
        "--authority-host",
        envvar="AZURE_AUTHORITY_HOST",
        show_envvar=False,
        metavar="URL",
        rich_help_panel=CONNECTION,
        help="Login host without the tenant, as azure-identity reads it; --authority-url wins.",
    ),
]
ScopeOpt = Annotated[
    str | None,
    typer.Option(
        "--scope",
        metavar="SCOPE",
        rich_help_panel=CONNECTION,
        help="Token scope; default {graph-url}/.default.",
    ),
]
CaOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        envvar="SSL_CERT_FILE",
        show_envvar=False,
        metavar="PATH",
        callback=checked_path(check_ca_bundle),
        rich_help_panel=CONNECTION,
        help="Extra trusted CA (PEM) for sign-in and Graph.",
    ),
]
ProxyOpt = Annotated[
    str | None,
    typer.Option(
        "--proxy",
        parser=typed(parse_proxy),
        metavar="URL",
        rich_help_panel=CONNECTION,
        help="HTTP proxy, http://[user:password@]host:port; default HTTPS_PROXY/HTTP_PROXY "
        "with NO_PROXY. The password is never recorded.",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=typed(parse_timeout),
        metavar="SECONDS",
        rich_help_panel=CONNECTION,
        help="Seconds before one HTTP request times out (at most 3600).",
    ),
]
OutageOpt = Annotated[
    float,
    duration_option(
        "--outage-timeout",
        "Stop (exit 3, resumable) when Graph has not answered this long, e.g. 60s.",
        CONNECTION,
    ),
]

# ---- Pacing: how fast, how many at once, how often to retry ---------------------------------
BatchOpt = Annotated[
    int, typer.Option("--batch-size", rich_help_panel=PACING, help="Requests per $batch (1-20).")
]
ConcOpt = Annotated[
    int, typer.Option("--max-concurrency", rich_help_panel=PACING, help="Batches in flight.")
]
WriteOpt = Annotated[
    Budget,
    typer.Option(
        "--write-budget",
        parser=typed(parse_budget),
        metavar="N/WINDOW",
        rich_help_panel=PACING,
        help="Writes allowed per window for this app, e.g. 200/20s.",
    ),
]
ReadOpt = Annotated[
    Budget,
    typer.Option(
        "--read-budget",
        parser=typed(parse_budget),
        metavar="N/WINDOW",
        rich_help_panel=PACING,
        help="Reads allowed per window, e.g. 2000/20s.",
    ),
]
AttemptsOpt = Annotated[
    int,
    typer.Option("--max-attempts", rich_help_panel=PACING, help="Tries per transient error."),
]
RetryDelayOpt = Annotated[
    float,
    typer.Option(
        "--retry-delay", rich_help_panel=PACING, help="Base seconds of the retry backoff."
    ),
]

# ---- Output: global, before or after the command --------------------------------------------
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        rich_help_panel=OUTPUT,
        help="One JSON document on stdout (human lines go to stderr).",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        rich_help_panel=OUTPUT,
        help="Only warnings, errors, the run and the next command.",
    ),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", rich_help_panel=OUTPUT, help="Also each answer.")
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug", rich_help_panel=OUTPUT, help="Also every HTTP request (tokens never shown)."
    ),
]
ReportsOpt = Annotated[
    Path,
    typer.Option(
        "--reports-dir",
        callback=checked_path(check_reports_dir),
        metavar="DIR",
        rich_help_panel=OUTPUT,
        help="Where run folders are written.",
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        envvar="BATCH_ROTATE_PROFILE",
        show_envvar=False,
        metavar="NAME",
        rich_help_panel=OUTPUT,
        help="Defaults from the profile NAME of batch-rotate.toml; options, a run's record "
        "and the environment win over it.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="PATH",
        rich_help_panel=OUTPUT,
        help="Profiles file (default: batch-rotate.toml in the working folder).",
    ),
]


ENVIRONMENT_HELP = (
    "[bold]Environment[/] (an option typed wins; on a run, what it recorded wins over these)\n\n"
    "  AZURE_TENANT_ID  AZURE_CLIENT_ID  AZURE_CLIENT_SECRET\n"
    "  AZURE_CLIENT_CERTIFICATE_PATH  AZURE_CLIENT_CERTIFICATE_PASSWORD\n"
    "  AZURE_MANAGED_IDENTITY_CLIENT_ID  AZURE_FEDERATED_TOKEN_FILE\n"
    "  AZURE_AUTHORITY_HOST  BATCH_ROTATE_AUTH  BATCH_ROTATE_TOKEN_CACHE\n"
    "  BATCH_ROTATE_PROFILE  SSL_CERT_FILE (--ca-bundle)\n"
    "  HTTPS_PROXY  HTTP_PROXY  NO_PROXY"
)
