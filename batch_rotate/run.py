"""The job, stage by stage: read, sign in, resolve, plan, confirm, rotate, report.

Library entry points for the CLI; no Typer here. Every input row reaches the journal, and the
report is rendered from the journal whatever ends the run (success, guard, outage, Ctrl-C).
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import logging
import socket
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

from batch_rotate import __version__
from batch_rotate.eligibility import FlaggingEligibility
from batch_rotate.engine import rotate_pending
from batch_rotate.errors import BatchRotateError, GraphError, InputError, JournalError
from batch_rotate.events import EventWriter, run_log
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.pacer import Budget, SystemClock
from batch_rotate.graph.runner import RunnerStats, Transport
from batch_rotate.graph.session import Needs, graph_session
from batch_rotate.guards import SyncAges, flag_key_ceiling, guard_recent
from batch_rotate.inputs import read_device_list
from batch_rotate.journal import Journal, has_journal, utc_now
from batch_rotate.models import Status
from batch_rotate.probe import settle_kind
from batch_rotate.resolve import ResolveReport, Wanted, resolve
from batch_rotate.runkit import (
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_USAGE,
    ConfirmRequest,
    InputOptions,
    RunResult,
    exit_code_for,
    finish,
    graph_errors,
    interrupt_handler,
    rate,
    recorded_endpoints,
    shown_path,
)
from batch_rotate.runs import new_run_dir, redacted_argv, render, unfinished_runs
from batch_rotate.settings import WRITE_PERMISSIONS, Credentials, Settings
from batch_rotate.verify import verify_journal

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_MEANINGS",
    "ConfirmRequest",
    "InputOptions",
    "RunResult",
    "RunnerStats",
    "exit_code_for",
    "graph_errors",
    "interrupt_handler",
    "render",
    "run_job",
    "verify_run",
]

READ_PERMISSIONS = ("DeviceManagementManagedDevices.Read.All", *WRITE_PERMISSIONS)
TO_ROTATE = Needs(WRITE_PERMISSIONS, "rotate BitLocker keys")
TO_READ_RESULTS = Needs(READ_PERMISSIONS, "read device action results")
log = logging.getLogger("batch_rotate.run")


Progress = Callable[[RunnerStats, int], None]


def _lane(budget: Budget, settings: Settings) -> Lane:
    """The pacing lane for a budget (parsed and checked by settings)."""
    return lane(
        budget, clock=SystemClock(), retry_delay_s=settings.retry_delay_s, seed=settings.seed
    )


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
    run_dir: Path | None = None,
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
    # An ambiguous column (a lone DeviceId) is decided by a probe before any run folder exists.
    settled = await settle_kind(devices, credentials=credentials, settings=settings, notify=notify)
    devices = settled.devices
    notify(
        f"read {len(devices)} rows from {inputs.path.name} "
        f"(column {devices.column!r} as {devices.kind.value})"
    )
    rows = len(devices)
    for earlier in unfinished_runs(settings.reports_dir, devices.sha256):
        notify(
            f"note: {earlier} is an unfinished run of this file; resume it with --resume {earlier}"
        )
    run_dir = run_dir or new_run_dir(settings.reports_dir, inputs.path)
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
        **settled.meta,
        "state": "resolving",
    }
    # Every row reaches the journal before anything can fail; resolution happens in SQL, so
    # the rows need not stay in memory (a million rows would otherwise hold ~200 MB).
    journal = Journal.create(run_dir, meta)
    with closing(journal), run_log(run_dir):
        log.info("run %s: %s rows from %s", run_dir.name, rows, inputs.path)
        journal.add_refs(devices.refs)
        del devices  # the rows live on disk now; what resolution needs is read back below
        wanted = Wanted.of(journal.unresolved_keys())
        needs = TO_ROTATE if not settings.dry_run else Needs(READ_PERMISSIONS, TO_ROTATE.purpose)
        planned = False
        try:
            with graph_errors():
                async with graph_session(
                    credentials,
                    settings.endpoints,
                    needs=needs,
                    timeout_s=settings.timeout_s,
                    outage_s=settings.outage_s,
                ) as graph:
                    reads = _lane(settings.read_budget, settings)
                    flags = FlaggingEligibility()
                    ages = SyncAges(flags)
                    began = time.monotonic()
                    resolve_report = await resolve(
                        journal,
                        wanted,
                        graph,
                        reads,
                        eligibility=ages,
                        max_concurrency=settings.max_concurrency,
                        max_attempts=settings.max_attempts,
                    )
                    notify(f"resolution: {rate(rows, 'rows', time.monotonic() - began)}")
                    warnings = []
                    if flags:  # co-managed devices stay planned, with the flag as reason
                        flagged = flags.reasons(journal.pending_devices())
                        journal.set_reasons(flagged)
                        notify(
                            f"note: co-managed devices in the plan: {len(flagged)}; check their "
                            "Endpoint Protection workload is moved to Intune (Reason: comanaged)"
                        )
                    if settings.check_keys:
                        warnings += await flag_key_ceiling(journal, graph, reads, settings)
                    warnings += guard_recent(journal, run_dir, settings)
                    warnings += ages.warnings(journal)
                    for warning in warnings:
                        log.warning(warning, extra={"shown_later": True})
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
                        warnings,
                    )
        except BatchRotateError as exc:
            if not planned:
                reason = f"run stopped before any rotation: {exc}"
                journal.abandon_resolving(reason)
                journal.set_meta(state="failed", ended_at=utc_now(), stopped_because=reason)
                render(run_dir)
            raise


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
    warnings: list[str],
) -> RunResult:
    count = journal.counts().get(Status.PENDING.value, 0)
    result = RunResult(run_dir, {}, EXIT_OK, resolve_report=resolve_report, warnings=warnings)
    if settings.dry_run:
        journal.set_meta(state="plan", ended_at=utc_now())
        if count:
            result.next_command = f"batch-rotate rotate {journal.meta().get('input_file', 'INPUT')}"
        result = finish(result, journal, run_dir)
        unlooked = result.counts.get(Status.FAILED.value, 0)  # in a plan: lookups that failed
        if unlooked:
            result.exit_code = EXIT_AUTH
            result.messages.append(
                f"{unlooked} rows could not be looked up (see lookup_failed in the report); "
                "the plan is incomplete: run it again when Graph answers"
            )
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
            credentials.tenant_id, settings.endpoints.graph_url, count, examples, tuple(warnings)
        )
        try:
            confirmed = confirm(request)
        except BatchRotateError as exc:  # e.g. no terminal to confirm on
            journal.set_meta(state="refused", ended_at=utc_now(), stopped_because=str(exc))
            render(run_dir)
            raise
        if not confirmed:
            journal.set_meta(state="refused", ended_at=utc_now(), stopped_because="not confirmed")
            result.exit_code = EXIT_USAGE
            result.messages.append("not confirmed: nothing was sent")
            return finish(result, journal, run_dir)
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
    # devices in flight are checked (and maybe re-sent) too: the events need their ids as well
    targets = {target.row: target for target in journal.pending_devices(in_flight=True)}
    began = time.monotonic()
    try:
        with (
            interrupt_handler(stop, notify),
            graph_errors(),
            EventWriter(run_dir, targets) as events,
        ):
            stats = await rotate_pending(
                journal,
                graph,
                writes,
                _lane(settings.read_budget, settings),
                settings,
                stop=stop,
                on_progress=on_progress,
                on_outcome=events,
            )
    except BatchRotateError as exc:
        journal.set_meta(state="failed", ended_at=utc_now(), stopped_because=str(exc))
        render(run_dir)
        if isinstance(exc, GraphError):  # an outage: the devices not sent stay not_sent
            raise GraphError(
                f"{exc}; when Graph answers again, resume with: "
                f"batch-rotate rotate --resume {run_dir}"
            ) from None
        raise
    answered = stats.succeeded + stats.failed
    if answered:
        notify(f"rotation: {rate(answered, 'answered', time.monotonic() - began)}")
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
    finish(result, journal, run_dir)
    result.exit_code = exit_code_for(result.counts, result.interrupted)
    if result.interrupted:
        result.next_command = f"batch-rotate rotate --resume {shown_path(run_dir)}"
    elif result.counts.get(Status.QUEUED.value):
        result.next_command = f"batch-rotate verify {shown_path(run_dir)}"
    return result


async def verify_run(
    run_dir: Path,
    *,
    settings: Settings,
    credentials: Credentials,
    notify: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Check every queued device of a run for a newly escrowed key, polling as asked."""
    with closing(Journal.open(run_dir)) as journal, run_log(run_dir):
        meta = journal.meta()
        endpoints = recorded_endpoints(meta, settings)
        stop = asyncio.Event()
        with graph_errors():
            async with graph_session(
                credentials,
                endpoints,
                needs=TO_READ_RESULTS,
                timeout_s=settings.timeout_s,
                outage_s=settings.outage_s,
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
        result = finish(
            RunResult(run_dir, {}, EXIT_OK, interrupted=stop.is_set()), journal, run_dir
        )
    shown = ", ".join(f"{k} {v}" for k, v in sorted(result.verification_counts.items()))
    result.messages.append(f"verification: {shown or 'no queued devices'}")
    result.exit_code = EXIT_INTERRUPTED if result.interrupted else EXIT_OK
    if result.verification_counts.get("pending"):
        result.next_command = f"batch-rotate verify {shown_path(run_dir)} --wait 2h --every 10m"
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
    with closing(Journal.open(run_dir)) as journal, run_log(run_dir):
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
        endpoints = recorded_endpoints(meta, settings)
        settings = dataclasses.replace(settings, endpoints=endpoints)
        pending = len(journal.to_send()) + len(journal.in_flight())
        notify(f"resuming {run_dir.name}: {pending} devices still to send")
        journal.event("resume", f"{pending} to send")
        with graph_errors():
            async with graph_session(
                credentials,
                endpoints,
                needs=TO_ROTATE,
                timeout_s=settings.timeout_s,
                outage_s=settings.outage_s,
            ) as graph:
                result = RunResult(run_dir, {}, EXIT_OK)
                if pending and confirm is not None:
                    request = ConfirmRequest(
                        credentials.tenant_id, endpoints.graph_url, pending, []
                    )
                    if not confirm(request):
                        result.exit_code = EXIT_USAGE
                        result.messages.append("not confirmed: nothing was sent")
                        return finish(result, journal, run_dir)
                return await _rotate(journal, run_dir, graph, settings, on_progress, notify, result)
