"""Command line, thin: options are parsed into typed values and checked here, before the input is
read or anything goes on the network; the run layer does the work; one handler maps errors to exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from batch_rotate import __version__
from batch_rotate.cli.console import ProgressView, confirm_prompt, err, out, print_summary
from batch_rotate.cli.options import (
    AttemptsOpt,
    AuthorityOpt,
    BatchOpt,
    CaOpt,
    CertOpt,
    CertPwOpt,
    CheckKeysOpt,
    ClientOpt,
    CloudOpt,
    ConcOpt,
    GraphUrlOpt,
    IdColOpt,
    IdKindOpt,
    KeysOpt,
    MaxDevOpt,
    ProxyOpt,
    ReadOpt,
    ReportsOpt,
    RetryDelayOpt,
    ScopeOpt,
    SecretOpt,
    SheetOpt,
    TenantOpt,
    TimeoutOpt,
    WriteOpt,
    duration_option,
)
from batch_rotate.errors import BatchRotateError, InputError
from batch_rotate.models import IdKind
from batch_rotate.run import EXIT_INTERRUPTED, InputOptions, RunResult, render, run_job, verify_run
from batch_rotate.settings import Cloud, Credentials, KeysStrategy, Settings, endpoints_for

EXIT_CODES_HELP = (
    "Exit codes: 0 every targeted device queued; 1 some devices failed (see the report); "
    "2 bad input or usage; 3 sign-in failed or Graph unreachable; 130 interrupted (resume it)."
)

app = typer.Typer(
    help="Rotate BitLocker recovery keys of Intune-managed Windows devices through Microsoft "
    f"Graph $batch, with a per-device report. {EXIT_CODES_HELP}",
    pretty_exceptions_show_locals=False,  # locals would hold secrets
    no_args_is_help=True,
    add_completion=False,
)


def _credentials(
    tenant_id: str, client_id: str, secret: str, cert: Path | None, cert_password: str
) -> Credentials:
    missing = [
        name
        for name, value in (
            ("AZURE_TENANT_ID (--tenant-id)", tenant_id),
            ("AZURE_CLIENT_ID (--client-id)", client_id),
        )
        if not value
    ]
    if not secret and cert is None:
        missing.append("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH")
    if missing:
        raise InputError(
            "sign-in is not configured: set "
            + ", ".join(missing)
            + " (see README: 'Running against a real tenant')"
        )
    # A certificate given is the credential used (and recorded); the secret is then ignored.
    return Credentials(
        tenant_id, client_id, None if cert else secret or None, cert, cert_password or None
    )


@contextlib.contextmanager
def _exits() -> Iterator[None]:
    """The one place where the project's errors become a line on stderr and an exit code."""
    try:
        yield
    except BatchRotateError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _execute(coro_factory: Callable[[], Coroutine[Any, Any, RunResult]]) -> None:
    with _exits():
        result = asyncio.run(coro_factory())
    print_summary(result)
    raise typer.Exit(result.exit_code)


def _notify(text: str) -> None:
    err.print(text, highlight=False, markup=False)


def _job(
    *,
    input_file: Path | None,
    resume: Path | None,
    assume_yes: bool,
    id_column: str | None,
    id_kind: IdKind | None,
    sheet: str | None,
    credentials: Credentials,
    settings: Settings,
) -> None:
    if (input_file is None) == (resume is None):
        with _exits():
            raise InputError("give either an INPUT file or --resume reports/<run-id>, not both")
    inputs = InputOptions(input_file, id_column, id_kind, sheet) if input_file else None
    confirm = confirm_prompt(assume_yes)

    async def job() -> RunResult:
        with ProgressView() as progress:
            return await run_job(
                settings=settings,
                credentials=credentials,
                inputs=inputs,
                resume_dir=resume,
                argv=sys.argv,
                confirm=confirm,
                on_progress=progress,
                notify=_notify,
            )

    _execute(job)


def _version_flag(value: bool) -> None:
    if value:
        out.print(f"batch-rotate {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_flag, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Rotate BitLocker recovery keys of Intune-managed Windows devices through Microsoft Graph."""


@app.command(help="Resolve the devices of INPUT and rotate their BitLocker recovery keys.")
def rotate(
    input_file: Annotated[
        Path | None, typer.Argument(help="CSV or XLSX device list.", show_default=False)
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in reports/<run-id>.")
    ] = None,
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
) -> None:
    """Long only by its option list: Typer reads the options from this signature."""
    with _exits():
        credentials = _credentials(
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
        )
    _job(
        input_file=input_file,
        resume=resume,
        assume_yes=assume_yes,
        id_column=id_column,
        id_kind=id_kind,
        sheet=sheet,
        credentials=credentials,
        settings=settings,
    )


@app.command(help="Dry run: resolve and check every row, write the plan report, send no write.")
def plan(
    input_file: Annotated[
        Path, typer.Argument(help="CSV or XLSX device list.", show_default=False)
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
) -> None:
    """Long only by its option list: Typer reads the options from this signature."""
    with _exits():
        credentials = _credentials(
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
        )
    _job(
        input_file=input_file,
        resume=None,
        assume_yes=True,
        id_column=id_column,
        id_kind=id_kind,
        sheet=sheet,
        credentials=credentials,
        settings=settings,
    )


@app.command()
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, reports/<run-id>.")],
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
) -> None:
    """Check each queued device for its action result and a key escrowed after the request.

    Needs BitLockerKey.ReadBasic.All besides DeviceManagementManagedDevices.Read.All.
    """
    with _exits():
        credentials = _credentials(
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
        )

    async def job() -> RunResult:
        return await verify_run(run_dir, settings=settings, credentials=credentials, notify=_notify)

    _execute(job)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, reports/<run-id>.")],
) -> None:
    """Re-render report.xlsx and report.csv from a run's journal (also while it runs)."""
    with _exits():
        paths, counts = render(run_dir)
    out.print(f"report: {paths.xlsx}\n        {paths.csv}", highlight=False)
    out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def simulate(ctx: typer.Context) -> None:
    """Run the simulated tenant: the same as `python -m batch_rotate.sim` (see its --help)."""
    # A pointer, not a second copy: the product never imports the simulator.
    os.execv(sys.executable, [sys.executable, "-m", "batch_rotate.sim", *ctx.args])  # noqa: S606


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"batch-rotate {__version__}")


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()
