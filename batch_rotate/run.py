"""The job, stage by stage: read, sign in, resolve, plan, confirm, rotate, report.

Library entry points for the CLI; no Typer here. Every input row reaches the journal, and the
report is rendered from the journal whatever ends the run (success, guard, outage, Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from batch_rotate import __version__
from batch_rotate.eligibility import FlaggingEligibility
from batch_rotate.engine import rotate_pending
from batch_rotate.errors import AuthError, BatchRotateError, GraphError, InputError, JournalError
from batch_rotate.graph import errors as graph_layer
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.pacer import Budget, SystemClock
from batch_rotate.graph.proxy import is_redacted
from batch_rotate.graph.runner import RunnerStats, Transport
from batch_rotate.graph.session import Needs, graph_session
from batch_rotate.inputs import read_device_list
from batch_rotate.journal import Journal, has_journal, utc_now
from batch_rotate.models import IdKind, Status
from batch_rotate.report import ReportPaths
from batch_rotate.resolve import ResolveReport, Wanted, resolve
from batch_rotate.runs import new_run_dir, redacted_argv, render, unfinished_runs
from batch_rotate.settings import WRITE_PERMISSIONS, Credentials, Endpoints, Settings
from batch_rotate.verify import KEY_CEILING_WARN, recovery_keys, verify_journal

__all__ = ["ConfirmRequest", "InputOptions", "RunResult", "RunnerStats", "render", "run_job"]

READ_PERMISSIONS = ("DeviceManagementManagedDevices.Read.All", *WRITE_PERMISSIONS)
TO_ROTATE = Needs(WRITE_PERMISSIONS, "rotate BitLocker keys")
TO_READ_RESULTS = Needs(READ_PERMISSIONS, "read device action results")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(frozen=True)
class InputOptions:
    path: Path
    id_column: str | None = None
    id_kind: IdKind | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class ConfirmRequest:
    """What the user is asked to approve before the first write."""

    tenant_id: str
    graph_url: str
    count: int
    examples: list[str]


@dataclass
class RunResult:
    run_dir: Path
    counts: dict[str, int]
    exit_code: int
    reports: ReportPaths | None = None
    resolve_report: ResolveReport | None = None
    interrupted: bool = False
    messages: list[str] = field(default_factory=list)


Progress = Callable[[RunnerStats, int], None]


@contextlib.contextmanager
def graph_errors() -> Iterator[None]:
    """The one place the Graph layer's errors become the application's (and exit codes)."""
    try:
        yield
    except graph_layer.ConfigError as exc:
        raise InputError(str(exc)) from None
    except graph_layer.SignInError as exc:
        raise AuthError(str(exc)) from None
    except graph_layer.GraphLayerError as exc:  # ServiceError, TransportError
        raise GraphError(str(exc)) from None


def _lane(budget: Budget, settings: Settings) -> Lane:
    """The pacing lane for a budget (parsed and checked by settings)."""
    return lane(
        budget, clock=SystemClock(), retry_delay_s=settings.retry_delay_s, seed=settings.seed
    )


def exit_code_for(counts: dict[str, int], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    bad = sum(counts.get(s, 0) for s in (Status.FAILED, Status.UNCERTAIN, Status.NOT_SENT))
    return EXIT_FAILED if bad else EXIT_OK


@contextlib.contextmanager
def interrupt_handler(stop: asyncio.Event, notify: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C: stop sending and finish cleanly. Second: leave at once (journal is safe)."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            notify("second interrupt: exiting now; the journal is consistent, resume later")
            os._exit(EXIT_INTERRUPTED)
        notify("interrupt: finishing the batches in flight, then writing the report ...")
        stop.set()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_job(
    *,
    settings: Settings,
    credentials: Credentials,
    inputs: InputOptions | None = None,
    resume_dir: Path | None = None,
    argv: Sequence[str] = (),
    confirm: Callable[[ConfirmRequest], bool] | None = None,
    on_progress: Progress | None = None,
    notify: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Plan (dry run) or rotate a device list, or resume an earlier run.

    Long because it is the stage sequence with the journal's failure bookkeeping around sign-in
    and resolution (every row must end with a reason, whatever stops the run).
    """
    started = utc_now()
    if resume_dir is not None:
        return await _resume(resume_dir, settings, credentials, confirm, on_progress, notify)
    assert inputs is not None
    devices = read_device_list(
        inputs.path, id_column=inputs.id_column, id_kind=inputs.id_kind, sheet=inputs.sheet
    )
    notify(
        f"read {len(devices)} rows from {inputs.path.name} "
        f"(column {devices.column!r} as {devices.kind.value})"
    )
    for earlier in unfinished_runs(settings.reports_dir, devices.sha256):
        notify(
            f"note: {earlier} is an unfinished run of this file; resume it with --resume {earlier}"
        )
    run_dir = new_run_dir(settings.reports_dir, inputs.path)
    meta = {
        **settings.public(),
        "tool_version": __version__,
        "tenant_id": credentials.tenant_id,
        "client_id": credentials.client_id,
        "credential": credentials.method,
        "machine_user": f"{getpass.getuser()}@{socket.gethostname()}",
        "command_line": redacted_argv(argv or sys.argv),
        "started_at": started,
        "input_file": str(inputs.path),
        "input_sha256": devices.sha256,
        "id_column": devices.column,
        "id_kind": devices.kind.value,
        "state": "resolving",
    }
    # Every row reaches the journal before anything can fail; resolution happens in SQL, so
    # the rows need not stay in memory (a million rows would otherwise hold ~200 MB).
    journal = Journal.create(run_dir, meta)
    with closing(journal):
        journal.add_refs(devices.refs)
        del devices  # the rows live on disk now; what resolution needs is read back below
        wanted = Wanted.of(journal.unresolved_keys())
        needs = TO_ROTATE if not settings.dry_run else Needs(READ_PERMISSIONS, TO_ROTATE.purpose)
        planned = False
        try:
            with graph_errors():
                async with graph_session(
                    credentials, settings.endpoints, needs=needs, timeout_s=settings.timeout_s
                ) as graph:
                    reads = _lane(settings.read_budget, settings)
                    eligibility = FlaggingEligibility()
                    resolve_report = await resolve(
                        journal,
                        wanted,
                        graph,
                        reads,
                        eligibility=eligibility,
                        max_concurrency=settings.max_concurrency,
                        max_attempts=settings.max_attempts,
                    )
                    if eligibility:  # co-managed devices stay planned, with the flag as reason
                        flagged = eligibility.reasons(journal.pending_devices())
                        journal.set_reasons(flagged)
                        notify(
                            f"note: co-managed devices in the plan: {len(flagged)}; check their "
                            "Endpoint Protection workload is moved to Intune (Reason: comanaged)"
                        )
                    if settings.check_keys:
                        await _flag_key_ceiling(journal, graph, reads, settings)
                    planned = True
                    journal.set_meta(resolution=resolve_report.describe(), state="planned")
                    if resolve_report.inventory_size:
                        journal.set_meta(inventory_size=str(resolve_report.inventory_size))
                    return await _after_plan(
                        journal,
                        run_dir,
                        graph,
                        settings,
                        credentials,
                        confirm,
                        on_progress,
                        notify,
                        resolve_report,
                    )
        except BatchRotateError as exc:
            if not planned:
                reason = f"run stopped before any rotation: {exc}"
                journal.abandon_resolving(reason)
                journal.set_meta(state="failed", ended_at=utc_now(), stopped_because=reason)
                render(run_dir)
            raise


async def _flag_key_ceiling(
    journal: Journal, graph: Transport, reads: Lane, settings: Settings
) -> None:
    """Count escrowed keys of every device to rotate; flag those near Entra's 200-key limit."""
    targets = journal.pending_devices()
    found = await recovery_keys(
        [target.entra_device_id for target in targets],
        graph,
        reads,
        strategy="per-device",
        max_attempts=settings.max_attempts,
    )
    flagged: dict[int, str] = {}
    for target in targets:
        keys = found.get(target.entra_device_id.lower())
        if isinstance(keys, str):
            flagged[target.row] = f"key count unknown ({keys})"
        elif keys is not None and len(keys) >= KEY_CEILING_WARN:
            flagged[target.row] = (
                f"key_ceiling: {len(keys)} keys escrowed, Entra keeps at most 200; delete old "
                "keys first or the new key will not be escrowed"
            )
    journal.set_reasons(flagged)


async def _after_plan(
    journal: Journal,
    run_dir: Path,
    graph: Transport,
    settings: Settings,
    credentials: Credentials,
    confirm: Callable[[ConfirmRequest], bool] | None,
    on_progress: Progress | None,
    notify: Callable[[str], None],
    resolve_report: ResolveReport,
) -> RunResult:
    count = journal.counts().get(Status.PENDING.value, 0)
    result = RunResult(run_dir, {}, EXIT_OK, resolve_report=resolve_report)
    if settings.dry_run:
        journal.set_meta(state="plan", ended_at=utc_now())
        result.reports, result.counts = render(run_dir)
        return result
    if count > settings.max_devices:
        journal.set_meta(
            state="refused",
            ended_at=utc_now(),
            stopped_because=f"guard: {count} devices > --max-devices {settings.max_devices}",
        )
        render(run_dir)
        raise InputError(
            f"{count} devices would be rotated, more than --max-devices "
            f"{settings.max_devices}; nothing was sent. Check the plan in {run_dir}, then "
            f"run again with --max-devices {count} to allow it"
        )
    if count and confirm is not None:
        examples = [
            f"row {t.row}: {t.name or t.device_id} ({t.device_id})"
            for t in journal.pending_devices(limit=5)
        ]
        request = ConfirmRequest(
            credentials.tenant_id, settings.endpoints.graph_url, count, examples
        )
        try:
            confirmed = confirm(request)
        except BatchRotateError as exc:  # e.g. no terminal to confirm on
            journal.set_meta(state="refused", ended_at=utc_now(), stopped_because=str(exc))
            render(run_dir)
            raise
        if not confirmed:
            journal.set_meta(state="refused", ended_at=utc_now(), stopped_because="not confirmed")
            result.reports, result.counts = render(run_dir)
            result.exit_code = EXIT_USAGE
            result.messages.append("not confirmed: nothing was sent")
            return result
    return await _rotate(journal, run_dir, graph, settings, on_progress, notify, result)


async def _rotate(
    journal: Journal,
    run_dir: Path,
    graph: Transport,
    settings: Settings,
    on_progress: Progress | None,
    notify: Callable[[str], None],
    result: RunResult,
) -> RunResult:
    journal.set_meta(state="rotating")
    stop = asyncio.Event()
    writes = _lane(settings.write_budget, settings)
    try:
        with interrupt_handler(stop, notify), graph_errors():
            await rotate_pending(
                journal, graph, writes, settings, stop=stop, on_progress=on_progress
            )
    except BatchRotateError as exc:
        journal.set_meta(state="failed", ended_at=utc_now(), stopped_because=str(exc))
        render(run_dir)
        raise
    result.interrupted = stop.is_set()
    journal.set_meta(state="interrupted" if result.interrupted else "finished", ended_at=utc_now())
    if settings.verify_wait_s is not None and not result.interrupted:
        with interrupt_handler(stop, notify), graph_errors():
            await verify_journal(
                journal,
                graph,
                _lane(settings.read_budget, settings),
                wait_s=settings.verify_wait_s,
                every_s=settings.verify_every_s,
                stop=stop,
                notify=notify,
                max_attempts=settings.max_attempts,
                strategy=settings.keys_strategy,
            )
    result.reports, result.counts = render(run_dir)
    result.exit_code = exit_code_for(result.counts, result.interrupted)
    return result


def _recorded_endpoints(meta: dict[str, str], settings: Settings) -> Endpoints:
    """A later command on a run talks to the tenant, cloud, trust and proxy the run was made with.

    So `rotate --resume RUN` and `verify RUN` work exactly as printed; a CA bundle or proxy given
    on the later command overrides the recorded one.
    """
    ca_bundle = settings.endpoints.ca_bundle
    recorded = meta.get("ca_bundle", "")
    if ca_bundle is None and recorded:
        ca_bundle = Path(recorded)
        if not ca_bundle.is_file():
            raise InputError(
                f"the run was made trusting the CA bundle {recorded}, which no longer exists; "
                "give the CA again with --ca-bundle PATH"
            )
    proxy = settings.endpoints.proxy
    recorded_proxy = meta.get("proxy", "")
    if proxy is None and recorded_proxy:
        if is_redacted(recorded_proxy):
            raise InputError(
                f"the run was made through the proxy {recorded_proxy}, whose user and password "
                "are never recorded; give it again with --proxy URL"
            )
        proxy = recorded_proxy
    return Endpoints(
        meta.get("authority_url", settings.endpoints.authority_url),
        meta.get("graph_url", settings.endpoints.graph_url),
        meta.get("scope", settings.endpoints.scope),
        ca_bundle,
        proxy,
    )


async def verify_run(
    run_dir: Path,
    *,
    settings: Settings,
    credentials: Credentials,
    notify: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Check every queued device of a run for a newly escrowed key, polling as asked."""
    with closing(Journal.open(run_dir)) as journal:
        meta = journal.meta()
        endpoints = _recorded_endpoints(meta, settings)
        stop = asyncio.Event()
        with graph_errors():
            async with graph_session(
                credentials, endpoints, needs=TO_READ_RESULTS, timeout_s=settings.timeout_s
            ) as graph:
                journal.event("verify", f"wait {settings.verify_wait_s or 0} s")
                with interrupt_handler(stop, notify):
                    await verify_journal(
                        journal,
                        graph,
                        _lane(settings.read_budget, settings),
                        wait_s=settings.verify_wait_s or 0.0,
                        every_s=settings.verify_every_s,
                        stop=stop,
                        notify=notify,
                        max_attempts=settings.max_attempts,
                        strategy=settings.keys_strategy,
                    )
        counts = journal.verification_counts()
    result = RunResult(run_dir, {}, EXIT_OK, interrupted=stop.is_set())
    result.reports, result.counts = render(run_dir)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    result.messages.append(f"verification: {shown or 'no queued devices'}")
    result.exit_code = EXIT_INTERRUPTED if result.interrupted else EXIT_OK
    return result


async def _resume(
    run_dir: Path,
    settings: Settings,
    credentials: Credentials,
    confirm: Callable[[ConfirmRequest], bool] | None,
    on_progress: Progress | None,
    notify: Callable[[str], None],
) -> RunResult:
    if not has_journal(run_dir):
        raise JournalError(
            f"{run_dir}: no run journal here; give a folder such as reports/<run-id>"
        )
    with closing(Journal.open(run_dir)) as journal:
        meta = journal.meta()
        if meta.get("tenant_id") and meta["tenant_id"] != credentials.tenant_id:
            raise InputError(
                f"{run_dir} was run against tenant {meta['tenant_id']}, but AZURE_TENANT_ID is "
                f"{credentials.tenant_id}; resume with the same tenant"
            )
        if meta.get("dry_run") == "True" or "resolution" not in meta:
            raise InputError(
                f"{run_dir} is a dry-run plan or stopped before planning; nothing to resume: "
                f"run `batch-rotate rotate {meta.get('input_file', 'INPUT')}` instead"
            )
        endpoints = _recorded_endpoints(meta, settings)
        settings = dataclasses.replace(settings, endpoints=endpoints)
        pending = len(journal.to_send())
        notify(f"resuming {run_dir.name}: {pending} devices still to send")
        journal.event("resume", f"{pending} to send")
        with graph_errors():
            async with graph_session(
                credentials, endpoints, needs=TO_ROTATE, timeout_s=settings.timeout_s
            ) as graph:
                result = RunResult(run_dir, {}, EXIT_OK)
                if pending and confirm is not None:
                    request = ConfirmRequest(
                        credentials.tenant_id, endpoints.graph_url, pending, []
                    )
                    if not confirm(request):
                        result.reports, result.counts = render(run_dir)
                        result.exit_code = EXIT_USAGE
                        result.messages.append("not confirmed: nothing was sent")
                        return result
                return await _rotate(journal, run_dir, graph, settings, on_progress, notify, result)
