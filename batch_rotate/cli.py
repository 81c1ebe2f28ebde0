"""Command line: options in, a `Settings` object to the library, outcomes out as exit codes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
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
from batch_rotate.graph.retry import RunnerStats
from batch_rotate.models import IdKind
from batch_rotate.run import (
    EXIT_INTERRUPTED,
    ConfirmRequest,
    InputOptions,
    RunResult,
    render,
    run_job,
    verify_run,
)
from batch_rotate.settings import Cloud, Credentials, Endpoints, Settings
from batch_rotate.verify import parse_duration

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
        "--ca-bundle", envvar="SSL_CERT_FILE", help="Extra trusted CA (PEM) for sign-in and Graph."
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Requests per $batch (1-20).")]
ConcOpt = Annotated[int, typer.Option("--max-concurrency", help="Batches in flight at once.")]
WriteOpt = Annotated[
    str, typer.Option("--write-budget", help="Write budget for this app, e.g. 200/20s.")
]
ReadOpt = Annotated[str, typer.Option("--read-budget", help="Read budget, e.g. 2000/20s.")]
AttemptsOpt = Annotated[
    int, typer.Option("--max-attempts", help="Tries per device on transient errors.")
]
RetryDelayOpt = Annotated[
    float,
    typer.Option("--retry-delay", help="Base seconds of the backoff between transient retries."),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds before one HTTP request times out.")
]
ReportsOpt = Annotated[Path, typer.Option("--reports-dir", help="Where run folders are written.")]
MaxDevOpt = Annotated[int, typer.Option("--max-devices", help="Refuse a plan larger than this.")]
IdColOpt = Annotated[str | None, typer.Option("--id-column", help="Column holding the identifier.")]
IdKindOpt = Annotated[IdKind | None, typer.Option("--id-kind", help="What the column holds.")]
KeysOpt = Annotated[
    str,
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


def _settings(
    *,
    tenant_id: str,
    cloud: Cloud,
    graph_url: str | None,
    authority_url: str | None,
    scope: str | None,
    ca_bundle: Path | None,
    **values: object,
) -> Settings:
    endpoints = Endpoints.for_cloud(
        cloud,
        tenant_id or "organizations",
        graph_url=graph_url,
        authority_url=authority_url,
        scope=scope,
        ca_bundle=ca_bundle,
    )
    return Settings(endpoints=endpoints, **values)  # type: ignore[arg-type]


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
    return Credentials(tenant_id, client_id, secret or None, cert, cert_password or None)


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


def _execute(coro_factory: Callable[[], Coroutine[Any, Any, RunResult]]) -> None:
    try:
        result = asyncio.run(coro_factory())
    except BatchRotateError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _print_summary(result)
    raise typer.Exit(result.exit_code)


def _job(
    *,
    input_file: Path | None,
    resume: Path | None,
    dry_run: bool,
    assume_yes: bool,
    tenant_id: str,
    client_id: str,
    client_secret: str,
    certificate_path: Path | None,
    certificate_password: str,
    cloud: Cloud,
    graph_url: str | None,
    authority_url: str | None,
    scope: str | None,
    ca_bundle: Path | None,
    batch_size: int,
    max_concurrency: int,
    write_budget: str,
    read_budget: str,
    max_attempts: int,
    retry_delay: float,
    timeout: float,
    reports_dir: Path,
    max_devices: int,
    id_column: str | None,
    id_kind: IdKind | None,
    sheet: str | None,
    verify_wait_s: float | None = None,
    verify_every_s: float | None = None,
    check_keys: bool = False,
) -> None:
    try:
        if (input_file is None) == (resume is None):
            raise InputError("give either an INPUT file or --resume reports/<run-id>, not both")
        credentials = _credentials(
            tenant_id, client_id, client_secret, certificate_path, certificate_password
        )
        settings = _settings(
            tenant_id=tenant_id,
            cloud=cloud,
            graph_url=graph_url,
            authority_url=authority_url,
            scope=scope,
            ca_bundle=ca_bundle,
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
            verify_wait_s=verify_wait_s,
            verify_every_s=verify_every_s or 300.0,
            check_keys=check_keys,
        )
    except BatchRotateError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None
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
                notify=lambda text: err.print(text, highlight=False, markup=False),
            )

    _execute(job)


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
    write_budget: WriteOpt = "200/20s",
    read_budget: ReadOpt = "2000/20s",
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
        str | None,
        typer.Option("--verify-wait", help="After rotating, verify for this long (e.g. 4h)."),
    ] = None,
    verify_every: Annotated[
        str, typer.Option("--verify-every", help="Time between verification checks.")
    ] = "5m",
) -> None:
    """Resolve the devices of INPUT and rotate their BitLocker recovery keys."""
    values = locals()
    values["verify_wait_s"] = _duration(values.pop("verify_wait"), "--verify-wait")
    values["verify_every_s"] = _duration(values.pop("verify_every"), "--verify-every")
    _job(**values)


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
    read_budget: ReadOpt = "2000/20s",
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
    _job(
        **locals(),
        resume=None,
        dry_run=True,
        assume_yes=True,
        write_budget="200/20s",
        max_devices=sys.maxsize,
    )


def _keys_choice(text: str) -> str:
    if text not in ("auto", "per-device", "listing"):
        raise InputError(f"--keys-strategy {text!r}: use auto, per-device or listing")
    return text


def _duration(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        err.print(f"error: {option}: {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None


@app.command()
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, reports/<run-id>.")],
    wait: Annotated[
        str | None, typer.Option("--wait", help="Keep checking for this long, e.g. 2h.")
    ] = None,
    every: Annotated[str, typer.Option("--every", help="Time between checks, e.g. 10m.")] = "5m",
    tenant_id: TenantOpt = "",
    client_id: ClientOpt = "",
    client_secret: SecretOpt = "",
    certificate_path: CertOpt = None,
    certificate_password: CertPwOpt = "",
    ca_bundle: CaOpt = None,
    read_budget: ReadOpt = "2000/20s",
    max_attempts: AttemptsOpt = 8,
    retry_delay: RetryDelayOpt = 1.0,
    timeout: TimeoutOpt = 60.0,
    keys_strategy: KeysOpt = "auto",
) -> None:
    """Check each queued device for its action result and a key escrowed after the request.

    Needs BitLockerKey.ReadBasic.All besides DeviceManagementManagedDevices.Read.All.
    """
    wait_s = _duration(wait, "--wait") or 0.0
    every_s = _duration(every, "--every") or 300.0
    try:
        credentials = _credentials(
            tenant_id, client_id, client_secret, certificate_path, certificate_password
        )
        settings = _settings(
            tenant_id=tenant_id,
            cloud=Cloud.GLOBAL,
            graph_url=None,
            authority_url=None,
            scope=None,
            ca_bundle=ca_bundle,
            read_budget=read_budget,
            max_attempts=max_attempts,
            retry_delay_s=retry_delay,
            timeout_s=timeout,
            verify_wait_s=wait_s,
            verify_every_s=every_s,
            keys_strategy=_keys_choice(keys_strategy),
        )
    except BatchRotateError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None

    async def job() -> RunResult:
        return await verify_run(
            run_dir,
            settings=settings,
            credentials=credentials,
            notify=lambda text: err.print(text, highlight=False, markup=False),
        )

    _execute(job)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, reports/<run-id>.")],
) -> None:
    """Re-render report.xlsx and report.csv from a run's journal (also while it runs)."""
    try:
        paths, counts = render(run_dir)
    except BatchRotateError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None
    out.print(f"report: {paths.xlsx}\n        {paths.csv}", highlight=False)
    out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


@app.command()
def simulate(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 8443,
    devices: Annotated[int, typer.Option(help="Size of the generated fleet.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed for the fleet and faults.")] = 1,
    time_scale: Annotated[
        float, typer.Option("--time-scale", help="10 makes a 20 s throttle window 2 s.")
    ] = 1.0,
    workdir: Annotated[Path, typer.Option(help="Where the CA certificate is written.")] = Path(
        ".sim"
    ),
    inventory: Annotated[
        Path | None, typer.Option(help="Load the fleet from a JSON or CSV file.")
    ] = None,
) -> None:
    """Run the simulated tenant (identity platform + Graph) to rehearse a run without a tenant."""
    from batch_rotate.sim import SimConfig  # the product path never imports the simulator
    from batch_rotate.sim.server import serve_forever

    config = SimConfig(devices=devices, seed=seed, time_scale=time_scale, inventory_file=inventory)
    serve_forever(config, host="127.0.0.1", port=port, workdir=workdir)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"batch-rotate {__version__}")


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()
