"""Command line, thin: options are parsed into typed values and checked here, before the input is
read or anything goes on the network; the run layer does the work; one handler maps errors to exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from batch_rotate import __version__
from batch_rotate.errors import BatchRotateError, InputError
from batch_rotate.models import IdKind
from batch_rotate.run import (
    EXIT_INTERRUPTED,
    ConfirmRequest,
    InputOptions,
    RunnerStats,
    RunResult,
    render,
    run_job,
    verify_run,
)
from batch_rotate.settings import (
    Budget,
    Cloud,
    Credentials,
    KeysStrategy,
    Settings,
    check_ca_bundle,
    check_certificate,
    check_reports_dir,
    endpoints_for,
    parse_budget,
    parse_duration,
    parse_timeout,
)

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
err = Console(stderr=True, soft_wrap=True)
out = Console()


def _typed(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A Typer parser from a plain one: ValueError becomes a usage error naming the option."""

    def parser(value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parser


def _checked_path(check: Callable[[Path], Path]) -> Callable[[Path | None], Path | None]:
    def callback(value: Path | None) -> Path | None:
        return None if value is None else _typed(check)(value)

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
        callback=_checked_path(check_certificate),
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
        callback=_checked_path(check_ca_bundle),
        help="Extra trusted CA (PEM) for sign-in and Graph.",
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Requests per $batch (1-20).")]
ConcOpt = Annotated[int, typer.Option("--max-concurrency", help="Batches in flight at once.")]
WriteOpt = Annotated[
    Budget,
    typer.Option(
        "--write-budget",
        parser=_typed(parse_budget),
        metavar="COUNT/WINDOW",
        help="Write budget for this app, e.g. 200/20s.",
    ),
]
ReadOpt = Annotated[
    Budget,
    typer.Option(
        "--read-budget",
        parser=_typed(parse_budget),
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
        parser=_typed(parse_timeout),
        metavar="SECONDS",
        help="Seconds before one HTTP request times out (above 0, at most 3600).",
    ),
]
ReportsOpt = Annotated[
    Path,
    typer.Option(
        "--reports-dir",
        callback=_checked_path(check_reports_dir),
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


def _duration_option(name: str, help_text: str) -> Any:
    return typer.Option(name, parser=_typed(parse_duration), metavar="DURATION", help=help_text)


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


def _confirm_prompt(assume_yes: bool) -> Callable[[ConfirmRequest], bool]:
    def confirm(request: ConfirmRequest) -> bool:
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            raise InputError(
                f"about to rotate {request.count} devices in tenant {request.tenant_id}, but there "
                "is no terminal to confirm on; run `batch-rotate plan` to review, then add --yes"
            )
        err.print(f"\n[bold]Tenant[/] {request.tenant_id}  ([dim]{request.graph_url}[/])")
        err.print(f"[bold]Devices to rotate:[/] {request.count}")
        for example in request.examples:
            err.print(f"  • {example}")
        if request.count > len(request.examples) and request.examples:
            err.print(f"  … and {request.count - len(request.examples)} more")
        return typer.confirm("Send the rotate requests now?", default=False, err=True)

    return confirm


class _ProgressView:
    """A rich bar on a terminal; a plain line every `every_s` seconds otherwise."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.tty = err.is_terminal
        self.every_s = every_s
        self.last = 0.0
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> _ProgressView:
        return self

    def _start_bar(self) -> Progress:
        # Started on the first answer, so the confirmation prompt has the terminal to itself.
        if self.bar is None:
            self.bar = Progress(
                TextColumn("[bold]rotating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f}/s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[state]}"),
                console=err,
                transient=True,
            )
            self.bar.__enter__()
        return self.bar

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def __call__(self, stats: RunnerStats, total: int) -> None:
        done = stats.succeeded + stats.failed
        elapsed = max(time.monotonic() - stats.started, 1e-6)
        rate = stats.succeeded / elapsed
        state = (
            f"pacing {stats.pacing_per_s:.1f}/s, 429s {stats.throttled + stats.outer_throttled}, "
            f"retries {stats.transient}"
        )
        if stats.paused_s > 0:
            state += f", paused {stats.paused_s:.0f} s (Retry-After)"
        if self.tty:
            bar = self._start_bar()
            if self.task is None:
                self.task = bar.add_task("rotate", total=total, rate=0.0, state="")
            bar.update(self.task, completed=done, rate=rate, state=state)
        elif time.monotonic() - self.last >= self.every_s or done == total:
            self.last = time.monotonic()
            err.print(
                f"progress: {done}/{total} answered, {rate:.1f} queued/s, {state}", highlight=False
            )


def _print_summary(result: RunResult) -> None:
    out.print(f"run {result.run_dir.name}", highlight=False)
    table = Table(show_edge=False)
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, count in sorted(result.counts.items(), key=lambda kv: -kv[1]):
        table.add_row(status, str(count))
    table.add_row("[bold]total", f"[bold]{sum(result.counts.values())}")
    out.print(table)
    if result.resolve_report is not None:
        out.print(f"resolution: {result.resolve_report.describe()}", highlight=False)
    if result.reports is not None:
        out.print(f"report: {result.reports.xlsx}\n        {result.reports.csv}", highlight=False)
    for message in result.messages:
        err.print(message, highlight=False)
    if result.exit_code == EXIT_INTERRUPTED:
        err.print(
            f"interrupted: resume with  batch-rotate rotate --resume {result.run_dir}",
            highlight=False,
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
    _print_summary(result)
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
    confirm = _confirm_prompt(assume_yes)

    async def job() -> RunResult:
        with _ProgressView() as progress:
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


@app.command()
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
        _duration_option("--verify-wait", "After rotating, verify for this long (e.g. 4h)."),
    ] = None,
    verify_every: Annotated[
        float | None, _duration_option("--verify-every", "Time between verification checks.")
    ] = "5m",  # type: ignore[assignment]
) -> None:
    """Resolve the devices of INPUT and rotate their BitLocker recovery keys."""
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


@app.command()
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
    """Dry run: resolve and check every row, write the plan report, send no write."""
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
        float | None, _duration_option("--wait", "Keep checking for this long, e.g. 2h.")
    ] = None,
    every: Annotated[
        float | None, _duration_option("--every", "Time between checks, e.g. 10m.")
    ] = "5m",  # type: ignore[assignment]
    tenant_id: TenantOpt = "",
    client_id: ClientOpt = "",
    client_secret: SecretOpt = "",
    certificate_path: CertOpt = None,
    certificate_password: CertPwOpt = "",
    ca_bundle: CaOpt = None,
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
            endpoints=endpoints_for(Cloud.GLOBAL, tenant_id, ca_bundle=ca_bundle),
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
