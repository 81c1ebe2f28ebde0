"""The shared options, each parsed into a typed value (or checked) by Typer itself, in the help
panel of its group: who signs in and where requests go here; pacing and output in `cli/pacing.py`,
the operator's guards, input and selectors in `cli/choices.py`. Which command takes which group is
`cli/groups.py`."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from batch_rotate.settings import (
    Cloud,
    check_ca_bundle,
    check_certificate,
    parse_duration,
    parse_proxy,
    parse_timeout,
)

SIGN_IN, CONNECTION, SAFETY = "Sign-in", "Connection", "Safety"


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
