"""Command line, thin: options are parsed into typed values and checked here, before the input is
read or anything goes on the network; the run layer does the work; one handler maps errors to exits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from batch_rotate import __version__
from batch_rotate.cli.console import out
from batch_rotate.cli.helptext import (
    APP_EXAMPLES,
    PLAN_EXAMPLES,
    REPORT_EXAMPLES,
    ROTATE_EXAMPLES,
    VERIFY_EXAMPLES,
    Command,
    Group,
)
from batch_rotate.cli.listing import RUNS_EXAMPLES, runs_command
from batch_rotate.cli.options import (
    AllowCeilingOpt,
    AllWindowsOpt,
    AttemptsOpt,
    AuthMode,
    AuthOpt,
    AuthorityOpt,
    BatchOpt,
    CaOpt,
    CertOpt,
    CertPwOpt,
    CheckKeysOpt,
    ClientOpt,
    CloudOpt,
    ConcOpt,
    DebugOpt,
    ExcludeOpt,
    ExposedOpt,
    ForceRecentOpt,
    GraphUrlOpt,
    GroupOpt,
    IdColOpt,
    IdKindOpt,
    JsonOpt,
    KeysOlderOpt,
    KeysOpt,
    MaxDevOpt,
    MiClientOpt,
    OutageOpt,
    ProxyOpt,
    QuietOpt,
    ReadByOpt,
    ReadOpt,
    ReportsOpt,
    RetryDelayOpt,
    ScopeOpt,
    SecretOpt,
    SheetOpt,
    TenantOpt,
    TimeoutOpt,
    TokenCacheOpt,
    VerboseOpt,
    WriteOpt,
    duration_option,
    recent_option,
)
from batch_rotate.cli.output import closed_stdout_ok
from batch_rotate.cli.running import execute, exits, mode_of, notify, sign_in_from, start_job
from batch_rotate.cli.selecting import check_selection, select_command, select_job, signin
from batch_rotate.profiles import CONFIG_NAME, default_map, find_config, load_profile
from batch_rotate.run import RunResult, render, verify_run
from batch_rotate.select import Criteria
from batch_rotate.settings import Cloud, KeysStrategy, Settings, endpoints_for

EXIT_CODES_HELP = (
    "Exit codes: 0 every targeted device queued; 1 some devices failed (see the report); "
    "2 bad input or usage; 3 sign-in failed or Graph unreachable; 70 unexpected error (see "
    "crash.log); 130 interrupted (resume it)."
)

app = typer.Typer(
    cls=Group,
    help="Rotate BitLocker recovery keys of Intune-managed Windows devices through Microsoft "
    f"Graph $batch, with a per-device report. {EXIT_CODES_HELP}",
    pretty_exceptions_show_locals=False,  # locals would hold secrets
    no_args_is_help=True,
    add_completion=True,
    epilog=APP_EXAMPLES,
)


def _version_flag(value: bool) -> None:
    if value:
        with closed_stdout_ok():
            out.print(f"batch-rotate {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_flag, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="PATH",
            help=f"Profiles file (default: {CONFIG_NAME} in the working folder).",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="BATCH_ROTATE_PROFILE",
            metavar="NAME",
            help="Use the profile NAME of the profiles file; the environment and options "
            "override it.",
        ),
    ] = None,
) -> None:
    """Rotate BitLocker recovery keys of Intune-managed Windows devices through Microsoft Graph."""
    with exits():
        chosen = load_profile(find_config(config, Path.cwd()), profile)
    if chosen is not None and isinstance(ctx.command, TyperGroup):
        commands = {
            name: {param.name for param in command.params if param.name}
            for name, command in ctx.command.commands.items()
        }
        ctx.default_map = default_map(chosen, commands)


@app.command(
    cls=Command,
    help="Resolve the devices of INPUT and rotate their BitLocker recovery keys.",
    epilog=ROTATE_EXAMPLES,
)
def rotate(
    input_file: Annotated[
        Path | None,
        typer.Argument(metavar="INPUT", help="CSV or XLSX device list.", show_default=False),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in reports/<run-id>.")
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="With --resume: send again the devices that failed for a transient reason "
            "(retries given up on 5xx, timeouts, resets or 429s; not a device's 400/403/404).",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only: send no write.")] = False,
    assume_yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
    ] = False,
    tenant_id: TenantOpt = "",
    client_id: ClientOpt = "",
    client_secret: SecretOpt = "",
    certificate_path: CertOpt = None,
    certificate_password: CertPwOpt = "",
    cloud: CloudOpt = Cloud.GLOBAL,
    graph_url: GraphUrlOpt = None,
    authority_url: AuthorityOpt = None,
    scope: ScopeOpt = None,
    ca_bundle: CaOpt = None,
    proxy: ProxyOpt = None,
    batch_size: BatchOpt = 20,
    max_concurrency: ConcOpt = 4,
    write_budget: WriteOpt = "200/20s",  # type: ignore[assignment]  # parsed by Typer
    read_budget: ReadOpt = "2000/20s",  # type: ignore[assignment]
    max_attempts: AttemptsOpt = 8,
    retry_delay: RetryDelayOpt = 1.0,
    timeout: TimeoutOpt = 60.0,
    reports_dir: ReportsOpt = Path("reports"),
    max_devices: MaxDevOpt = 5000,
    id_column: IdColOpt = None,
    id_kind: IdKindOpt = None,
    sheet: SheetOpt = None,
    check_keys: CheckKeysOpt = False,
    verify_wait: Annotated[
        float | None,
        duration_option("--verify-wait", "After rotating, verify for this long (e.g. 4h)."),
    ] = None,
    verify_every: Annotated[
        float | None, duration_option("--verify-every", "Time between verification checks.")
    ] = "5m",  # type: ignore[assignment]
    allow_key_ceiling: AllowCeilingOpt = False,
    recent: Annotated[float, recent_option()] = "24h",  # type: ignore[assignment]
    force_recent: ForceRecentOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    outage_timeout: OutageOpt = 60.0,
    select_: Annotated[
        bool,
        typer.Option(
            "--select",
            help="Build the device list from the tenant with the selector options (see "
            "`select --help`) instead of INPUT; it is written into the run folder.",
        ),
    ] = False,
    exposed_since: ExposedOpt = None,
    read_by: ReadByOpt = None,
    keys_older_than: KeysOlderOpt = None,
    group: GroupOpt = None,
    all_windows: AllWindowsOpt = False,
    exclude: ExcludeOpt = None,
    auth: AuthOpt = AuthMode.APP,
    managed_identity_client_id: MiClientOpt = None,
    token_cache: TokenCacheOpt = None,
) -> None:
    """Long only by its option list: Typer reads the options from this signature."""
    criteria = Criteria(exposed_since, read_by, keys_older_than, group, all_windows, exclude)
    mode = mode_of("rotate", json_out=json_out, quiet=quiet, verbose=verbose, debug=debug)
    with exits("rotate", mode):
        check_selection(criteria, select_, input_file, resume)
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
                tenant_id,
                graph_url=graph_url,
                authority_url=authority_url,
                scope=scope,
                ca_bundle=ca_bundle,
                proxy=proxy,
            ),
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            write_budget=write_budget,
            read_budget=read_budget,
            max_attempts=max_attempts,
            retry_delay_s=retry_delay,
            timeout_s=timeout,
            reports_dir=reports_dir,
            dry_run=dry_run,
            max_devices=max_devices,
            verify_wait_s=verify_wait,
            verify_every_s=verify_every if verify_every is not None else 300.0,
            check_keys=check_keys,
            allow_key_ceiling=allow_key_ceiling,
            recent_s=recent,
            force_recent=force_recent,
            outage_s=outage_timeout,
        )
    if select_:
        select_job(criteria, settings, credentials, assume_yes, mode)
    start_job(
        input_file=input_file,
        resume=resume,
        assume_yes=assume_yes,
        id_column=id_column,
        id_kind=id_kind,
        sheet=sheet,
        credentials=credentials,
        settings=settings,
        command="rotate",
        mode=mode,
        retry_failed=retry_failed,
    )


@app.command(
    cls=Command,
    help="Dry run: resolve and check every row, write the plan report, send no write.",
    epilog=PLAN_EXAMPLES,
)
def plan(
    input_file: Annotated[
        Path,
        typer.Argument(metavar="INPUT", help="CSV or XLSX device list.", show_default=False),
    ],
    tenant_id: TenantOpt = "",
    client_id: ClientOpt = "",
    client_secret: SecretOpt = "",
    certificate_path: CertOpt = None,
    certificate_password: CertPwOpt = "",
    cloud: CloudOpt = Cloud.GLOBAL,
    graph_url: GraphUrlOpt = None,
    authority_url: AuthorityOpt = None,
    scope: ScopeOpt = None,
    ca_bundle: CaOpt = None,
    proxy: ProxyOpt = None,
    batch_size: BatchOpt = 20,
    max_concurrency: ConcOpt = 4,
    read_budget: ReadOpt = "2000/20s",  # type: ignore[assignment]
    max_attempts: AttemptsOpt = 8,
    retry_delay: RetryDelayOpt = 1.0,
    timeout: TimeoutOpt = 60.0,
    reports_dir: ReportsOpt = Path("reports"),
    id_column: IdColOpt = None,
    id_kind: IdKindOpt = None,
    sheet: SheetOpt = None,
    check_keys: CheckKeysOpt = False,
    allow_key_ceiling: AllowCeilingOpt = False,
    recent: Annotated[float, recent_option()] = "24h",  # type: ignore[assignment]
    force_recent: ForceRecentOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    outage_timeout: OutageOpt = 60.0,
) -> None:
    """Long only by its option list: Typer reads the options from this signature."""
    mode = mode_of("plan", json_out=json_out, quiet=quiet, verbose=verbose, debug=debug)
    with exits("plan", mode):
        credentials = sign_in_from(
            tenant_id, client_id, client_secret, certificate_path, certificate_password
        )
        settings = Settings(
            endpoints=endpoints_for(
                cloud,
                tenant_id,
                graph_url=graph_url,
                authority_url=authority_url,
                scope=scope,
                ca_bundle=ca_bundle,
                proxy=proxy,
            ),
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            read_budget=read_budget,
            max_attempts=max_attempts,
            retry_delay_s=retry_delay,
            timeout_s=timeout,
            reports_dir=reports_dir,
            dry_run=True,
            max_devices=sys.maxsize,
            check_keys=check_keys,
            allow_key_ceiling=allow_key_ceiling,
            recent_s=recent,
            force_recent=force_recent,
            outage_s=outage_timeout,
        )
    start_job(
        input_file=input_file,
        resume=None,
        assume_yes=True,
        id_column=id_column,
        id_kind=id_kind,
        sheet=sheet,
        credentials=credentials,
        settings=settings,
        command="plan",
        mode=mode,
    )


@app.command(cls=Command, epilog=VERIFY_EXAMPLES)
def verify(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run folder, reports/<run-id>.")
    ],
    wait: Annotated[
        float | None, duration_option("--wait", "Keep checking for this long, e.g. 2h.")
    ] = None,
    every: Annotated[
        float | None, duration_option("--every", "Time between checks, e.g. 10m.")
    ] = "5m",  # type: ignore[assignment]
    tenant_id: TenantOpt = "",
    client_id: ClientOpt = "",
    client_secret: SecretOpt = "",
    certificate_path: CertOpt = None,
    certificate_password: CertPwOpt = "",
    ca_bundle: CaOpt = None,
    proxy: ProxyOpt = None,
    read_budget: ReadOpt = "2000/20s",  # type: ignore[assignment]
    max_attempts: AttemptsOpt = 8,
    retry_delay: RetryDelayOpt = 1.0,
    timeout: TimeoutOpt = 60.0,
    keys_strategy: KeysOpt = KeysStrategy.AUTO,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    outage_timeout: OutageOpt = 60.0,
) -> None:
    """Check each queued device for its action result and a key escrowed after the request.

    Needs BitLockerKey.ReadBasic.All besides DeviceManagementManagedDevices.Read.All.
    """
    mode = mode_of("verify", json_out=json_out, quiet=quiet, verbose=verbose, debug=debug)
    with exits("verify", mode):
        credentials = sign_in_from(
            tenant_id, client_id, client_secret, certificate_path, certificate_password
        )
        settings = Settings(
            endpoints=endpoints_for(Cloud.GLOBAL, tenant_id, ca_bundle=ca_bundle, proxy=proxy),
            read_budget=read_budget,
            max_attempts=max_attempts,
            retry_delay_s=retry_delay,
            timeout_s=timeout,
            verify_wait_s=wait or 0.0,
            verify_every_s=every if every is not None else 300.0,
            keys_strategy=keys_strategy,
            outage_s=outage_timeout,
        )

    async def job() -> RunResult:
        return await verify_run(run_dir, settings=settings, credentials=credentials, notify=notify)

    execute("verify", mode, job)


@app.command(cls=Command, epilog=REPORT_EXAMPLES)
def report(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run folder, reports/<run-id>.")
    ],
) -> None:
    """Re-render report.xlsx and report.csv from a run's journal (also while it runs)."""
    with exits():
        paths, counts = render(run_dir)
    with closed_stdout_ok():
        out.print(f"report: {paths.xlsx}", f"        {paths.csv}", sep="\n", highlight=False)
        out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def simulate(ctx: typer.Context) -> None:
    """Run the simulated tenant: the same as `python -m batch_rotate.sim` (see its --help)."""
    # A pointer, not a second copy: the product never imports the simulator.
    os.execv(sys.executable, [sys.executable, "-m", "batch_rotate.sim", *ctx.args])  # noqa: S606


@app.command(cls=Command)
def version() -> None:
    """Print the version (the same as --version)."""
    with closed_stdout_ok():
        out.print(f"batch-rotate {__version__}")


app.command(
    name="runs",
    cls=Command,
    help="List the runs under --reports-dir: input, tenant, state, counts by status, when, and "
    "what to do next (the resume or verify command, or nothing).",
    epilog=RUNS_EXAMPLES,
)(runs_command)

app.command(
    name="select",
    cls=Command,
    help="Build a reviewable device list from the tenant: keys read since a date, keys older "
    "than an age, an Entra group, or every Windows device. Selectors combine (intersection).",
)(select_command)


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()
