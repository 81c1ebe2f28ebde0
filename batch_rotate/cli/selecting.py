"""The `select` command and `rotate --select`: build a device list from the tenant, and the
sign-in modes (app, device code, managed identity) that the commands accept."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from batch_rotate.cli.console import ProgressView, confirm_prompt, out
from batch_rotate.cli.options import (
    AllWindowsOpt,
    AttemptsOpt,
    AuthMode,
    AuthOpt,
    AuthorityOpt,
    CaOpt,
    CertOpt,
    CertPwOpt,
    ClientOpt,
    CloudOpt,
    ExcludeOpt,
    ExposedOpt,
    GraphUrlOpt,
    GroupOpt,
    KeysOlderOpt,
    MiClientOpt,
    ReadByOpt,
    ReadOpt,
    ScopeOpt,
    SecretOpt,
    TenantOpt,
    TimeoutOpt,
    TokenCacheOpt,
)
from batch_rotate.cli.output import Mode, console_logging
from batch_rotate.cli.running import execute, exits, notify, sign_in_from
from batch_rotate.errors import InputError
from batch_rotate.present import plural
from batch_rotate.run import RunResult
from batch_rotate.select import Criteria
from batch_rotate.select.job import select_devices, select_then_run
from batch_rotate.settings import Cloud, Credentials, Settings, endpoints_for


def signin(
    auth: AuthMode,
    tenant_id: str,
    client_id: str,
    secret: str,
    cert: Path | None,
    cert_password: str,
    managed_identity_client_id: str | None,
    token_cache: Path | None,
) -> Credentials:
    """Credentials for the sign-in mode; only what that mode needs is required."""
    if auth is AuthMode.APP:
        return sign_in_from(tenant_id, client_id, secret, cert, cert_password)
    if auth is AuthMode.DEVICE_CODE and not (tenant_id and client_id):
        raise InputError(
            "--auth device-code needs AZURE_TENANT_ID and AZURE_CLIENT_ID (an app registration "
            "with 'Allow public client flows'); no secret is used"
        )
    return Credentials(
        tenant_id or "managed-identity",
        client_id,
        auth=auth.value,
        managed_identity_client_id=managed_identity_client_id,
        token_cache=token_cache,
    )


def check_selection(
    criteria: Criteria, select_: bool, input_file: Path | None, resume: Path | None
) -> None:
    if select_ and (input_file is not None or resume is not None):
        raise InputError("give --select or an INPUT file (or --resume), not both")
    if select_ and not criteria.any():
        raise InputError(
            "--select needs a selector: --exposed-since, --keys-older-than, --group or "
            "--all-windows"
        )
    if not select_ and (criteria.any() or criteria.exclude or criteria.read_by):
        raise InputError("selector options need --select (or use the `select` command)")
    if criteria.read_by and criteria.exposed_since is None:
        raise InputError("--read-by narrows --exposed-since; give --exposed-since too")
    if criteria.exclude is not None and not criteria.exclude.is_file():
        raise InputError(f"--exclude {criteria.exclude}: no such file")


def select_job(
    criteria: Criteria,
    settings: Settings,
    credentials: Credentials,
    assume_yes: bool,
    mode: Mode,
) -> None:
    """`rotate --select`: the selection, written into the run folder, then a normal run."""
    confirm = confirm_prompt(assume_yes)

    async def job() -> RunResult:
        with ProgressView(enabled=not mode.quiet) as progress:
            return await select_then_run(
                criteria,
                settings=settings,
                credentials=credentials,
                argv=sys.argv,
                confirm=confirm,
                on_progress=progress,
                notify=notify,
            )

    execute("rotate", mode, job)


def select_command(
    exposed_since: ExposedOpt = None,
    read_by: ReadByOpt = None,
    keys_older_than: KeysOlderOpt = None,
    group: GroupOpt = None,
    all_windows: AllWindowsOpt = False,
    exclude: ExcludeOpt = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="CSV to write (default reports/selected-<stamp>.csv)."),
    ] = None,
    tenant_id: TenantOpt = "",
    client_id: ClientOpt = "",
    client_secret: SecretOpt = "",
    certificate_path: CertOpt = None,
    certificate_password: CertPwOpt = "",
    auth: AuthOpt = AuthMode.APP,
    managed_identity_client_id: MiClientOpt = None,
    token_cache: TokenCacheOpt = None,
    cloud: CloudOpt = Cloud.GLOBAL,
    graph_url: GraphUrlOpt = None,
    authority_url: AuthorityOpt = None,
    scope: ScopeOpt = None,
    ca_bundle: CaOpt = None,
    read_budget: ReadOpt = "2000/20s",  # type: ignore[assignment]
    max_attempts: AttemptsOpt = 8,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Long only by its option list: Typer reads the options from this signature."""
    criteria = Criteria(exposed_since, read_by, keys_older_than, group, all_windows, exclude)
    with console_logging(Mode()), exits("select"):
        check_selection(criteria, True, None, None)
        credentials = signin(
            auth,
            tenant_id,
            client_id,
            client_secret,
            certificate_path,
            certificate_password,
            managed_identity_client_id,
            token_cache,
        )
        settings = Settings(
            endpoints=endpoints_for(
                cloud,
                credentials.tenant_id,
                graph_url=graph_url,
                authority_url=authority_url,
                scope=scope,
                ca_bundle=ca_bundle,
            ),
            read_budget=read_budget,
            max_attempts=max_attempts,
            timeout_s=timeout,
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_file = out_path or Path("reports") / f"selected-{stamp}.csv"
        selection = asyncio.run(
            select_devices(
                criteria, settings=settings, credentials=credentials, out=out_file, notify=notify
            )
        )
    out.print(f"{plural(len(selection.devices), 'device')} selected: {out_file}", highlight=False)
    out.print(f"review it, then: batch-rotate rotate {out_file}", highlight=False)
