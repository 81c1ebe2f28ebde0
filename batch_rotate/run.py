"""The job, stage by stage: read, sign in, resolve, plan, confirm, rotate, report.

Library entry points for the CLI; no Typer here. Every input row reaches the journal, and the
report is rendered from the journal whatever ends the run (success, guard, outage, Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import socket
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from batch_rotate import __version__
from batch_rotate.eligibility import comanaged_note, ineligibility
from batch_rotate.engine import rotate_pending
from batch_rotate.errors import BatchRotateError, GraphError, InputError, JournalError
from batch_rotate.events import EventWriter, run_log
from batch_rotate.graph.runner import RunnerStats, Transport
from batch_rotate.graph.session import Needs
from batch_rotate.guards import STALE_AFTER, flag_key_ceiling, guard_recent, stale_warnings
from batch_rotate.inputs import read_device_list
from batch_rotate.journal import Journal, has_journal, journal_errors
from batch_rotate.journal_schema import utc_now
from batch_rotate.models import Status
from batch_rotate.present import plural, plural_noun
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
    Interrupted,
    Interrupts,
    RunResult,
    exit_code_for,
    finish,
    graph_errors,
    interrupt_handler,
    rate,
    recorded_endpoints,
    settings_lane,
    shown_path,
    signed_in,
)
from batch_rotate.runs import (
    RETRIED_EVENT,
    new_run_dir,
    note_run_dir,
    redacted_argv,
    render,
    transient_failure,
    transient_lookup,
    unfinished_runs,
)
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
Resolving = Callable[[str, int, int | None], None]  # (what, done, total if known)


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
    retry_failed: bool = False,
    on_resolving: Resolving | None = None,
) -> RunResult:
    """Plan (dry run) or rotate a device list, or resume an earlier run."""
    with Interrupts(notify) as interrupts:
        stages = _Stages(settings, credentials, confirm, on_progress, notify, interrupts)
        stages.on_resolving = on_resolving
        if resume_dir is not None:
            return await _resume(resume_dir, stages, retry_failed)
        assert inputs is not None
        return await _new_run(inputs, stages, argv, run_dir)


@dataclasses.dataclass
class _Stages:
    """What every stage of one command shares: its settings, sign-in, callbacks and Ctrl-C."""

    settings: Settings
    credentials: Credentials
    confirm: Callable[[ConfirmRequest], bool] | None
    on_progress: Progress | None
    notify: Callable[[str], None]
    interrupts: Interrupts
    on_resolving: Resolving | None = None

    def follow(self, run_dir: Path, next_command: str) -> None:
        """From now on, an unexpected error and a second Ctrl-C know the run and its next step."""
        note_run_dir(run_dir)
        self.interrupts.run_dir = run_dir
        self.interrupts.hint = next_command


async def _new_run(
    inputs: InputOptions, stages: _Stages, argv: Sequence[str], run_dir: Path | None
) -> RunResult:
    started = utc_now()
    settings, credentials, notify = stages.settings, stages.credentials, stages.notify
    devices = read_device_list(
        inputs.path, id_column=inputs.id_column, id_kind=inputs.id_kind, sheet=inputs.sheet
    )
    # An ambiguous column (a lone DeviceId) is decided by a probe before any run folder exists.
    settled = await settle_kind(devices, credentials=credentials, settings=settings, notify=notify)
    devices = settled.devices
    notify(
        f"read {plural(len(devices), 'row')} from {inputs.path.name} "
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
    again = (
        f"batch-rotate plan {inputs.path}"
        if settings.dry_run
        else f"batch-rotate rotate --resume {shown_path(run_dir)}"
    )
    stages.follow(run_dir, again)
    with closing(journal), run_log(run_dir):
        log.info("run %s: %s from %s", run_dir.name, plural(rows, "row"), inputs.path)
        journal.add_refs(devices.refs)
        # all rows are on disk: from here an interrupted resolution resumes (`_resume`)
        journal.set_meta(rows_recorded=str(rows))
        # the rows live on disk now (`settled` held them too); resolution reads them back
        del devices, settled
        return await _plan_and_rotate(journal, run_dir, stages, rows)


async def _plan_and_rotate(
    journal: Journal, run_dir: Path, stages: _Stages, rows: int
) -> RunResult:
    """Resolve the rows still to resolve, plan, confirm and rotate.

    Long because it is the stage sequence with the journal's failure bookkeeping around sign-in
    and resolution (every row must end with a reason, whatever stops the run).
    """
    settings, credentials, notify = stages.settings, stages.credentials, stages.notify
    wanted = Wanted.of(journal.unresolved_keys())
    needs = TO_ROTATE if not settings.dry_run else Needs(READ_PERMISSIONS, TO_ROTATE.purpose)
    planned = False
    try:
        with graph_errors():
            async with signed_in(credentials, settings, needs=needs) as graph:
                reads = settings_lane(settings.read_budget, settings)
                stale_before = datetime.now(UTC) - STALE_AFTER
                began = time.monotonic()
                resolve_report = await stages.interrupts.cancellable(
                    resolve(
                        journal,
                        wanted,
                        graph,
                        reads,
                        eligibility=ineligibility,
                        flag=comanaged_note,
                        max_concurrency=settings.max_concurrency,
                        max_attempts=settings.max_attempts,
                        on_progress=stages.on_resolving,
                    )
                )
                if resolve_report is None:  # Ctrl-C: the rows not yet resolved stay to resolve
                    return _interrupted_resolution(journal, run_dir, stages)
                notify(
                    f"resolution: {rate(rows, plural_noun(rows, 'row'), time.monotonic() - began)}"
                )
                warnings = []
                # co-managed devices stay planned, flag as reason; noted only when some are
                if journal.any_flagged() and (flagged := journal.flag_planned()):
                    notify(
                        f"note: co-managed devices in the plan: {flagged}; check their "
                        "Endpoint Protection workload is moved to Intune (Reason: comanaged)"
                    )
                if settings.check_keys:
                    checked = await stages.interrupts.cancellable(
                        flag_key_ceiling(journal, graph, reads, settings)
                    )
                    if checked is None:  # Ctrl-C: resume runs the plan-time checks again
                        return _interrupted_resolution(journal, run_dir, stages)
                    warnings += checked
                warnings += guard_recent(journal, run_dir, settings)
                warnings += stale_warnings(journal, stale_before)
                for warning in warnings:
                    log.warning(warning, extra={"shown_later": True})
                planned = True
                described = resolve_report.describe()
                if earlier := journal.meta().get("resolution"):  # --retry-failed looked up again
                    described = f"{earlier}; then for --retry-failed: {described}"
                journal.set_meta(resolution=described, state="planned")
                if resolve_report.inventory_size:
                    journal.set_meta(inventory_size=str(resolve_report.inventory_size))
                return await _after_plan(journal, run_dir, graph, stages, resolve_report, warnings)
    except Interrupted:
        raise
    except BatchRotateError as exc:
        if not planned:
            reason = f"run stopped before any rotation: {exc}"
            journal.abandon_resolving(reason)
            journal.set_meta(state="failed", ended_at=utc_now(), stopped_because=reason)
            with stages.interrupts.rendering():
                render(run_dir)
        raise


def _interrupted_resolution(journal: Journal, run_dir: Path, stages: _Stages) -> RunResult:
    journal.abandon_resolving(
        "interrupted before this row was resolved; resume the run: it resolves the rows left, "
        "then goes on"
    )
    journal.set_meta(state="interrupted", ended_at=utc_now())
    journal.event("interrupt", "during resolution")
    result = RunResult(run_dir, {}, EXIT_INTERRUPTED, interrupted=True)
    result.next_command = stages.interrupts.hint
    return finish(result, journal, run_dir, stages.interrupts)


async def _after_plan(
    journal: Journal,
    run_dir: Path,
    graph: Transport,
    stages: _Stages,
    resolve_report: ResolveReport | None,
    warnings: list[str],
) -> RunResult:
    settings, credentials, confirm = stages.settings, stages.credentials, stages.confirm
    interrupts = stages.interrupts
    count = journal.counts().get(Status.PENDING.value, 0)
    result = RunResult(run_dir, {}, EXIT_OK, resolve_report=resolve_report, warnings=warnings)
    if settings.dry_run:
        journal.set_meta(state="plan", ended_at=utc_now())
        if count:
            result.next_command = f"batch-rotate rotate {journal.meta().get('input_file', 'INPUT')}"
        result = finish(result, journal, run_dir, interrupts)
        unlooked = result.counts.get(Status.FAILED.value, 0)  # in a plan: lookups that failed
        if unlooked:
            result.exit_code = EXIT_AUTH
            result.messages.append(
                f"{plural(unlooked, 'row')} could not be looked up (see lookup_failed in the "
                "report); the plan is incomplete: run it again when Graph answers"
            )
        return result
    if count > settings.max_devices:
        journal.set_meta(
            state="refused",
            ended_at=utc_now(),
            stopped_because=f"guard: {plural(count, 'device')} > --max-devices "
            f"{settings.max_devices}",
        )
        with interrupts.rendering():
            render(run_dir)
        raise InputError(
            f"{plural(count, 'device')} would be rotated, more than --max-devices "
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
            with interrupts.raising():  # Ctrl-C at the prompt is a no (see confirm_prompt)
                confirmed = confirm(request)
        except BatchRotateError as exc:  # e.g. no terminal to confirm on
            journal.set_meta(state="refused", ended_at=utc_now(), stopped_because=str(exc))
            with interrupts.rendering():
                render(run_dir)
            raise
        if not confirmed:
            journal.set_meta(state="refused", ended_at=utc_now(), stopped_because="not confirmed")
            result.exit_code = EXIT_USAGE
            result.messages.append("not confirmed: nothing was sent")
            return finish(result, journal, run_dir, interrupts)
    return await _rotate(journal, run_dir, graph, stages, result)


async def _rotate(
    journal: Journal, run_dir: Path, graph: Transport, stages: _Stages, result: RunResult
) -> RunResult:
    settings, notify, interrupts = stages.settings, stages.notify, stages.interrupts
    journal.set_meta(state="rotating")
    stop = interrupts.stop
    writes = settings_lane(settings.write_budget, settings)
    # devices in flight are checked (and maybe re-sent) too: the events need their ids as well
    targets = {target.row: target for target in journal.pending_devices(in_flight=True)}
    began = time.monotonic()
    try:
        with graph_errors(), EventWriter(run_dir, targets) as events:
            stats = await rotate_pending(
                journal,
                graph,
                writes,
                settings_lane(settings.read_budget, settings),
                settings,
                stop=stop,
                on_progress=stages.on_progress,
                on_outcome=events,
            )
    except BatchRotateError as exc:
        journal.set_meta(state="failed", ended_at=utc_now(), stopped_because=str(exc))
        with interrupts.rendering():
            render(run_dir)
        if isinstance(exc, GraphError):  # an outage: the devices not sent stay not_sent
            raise GraphError(
                f"{exc}; when Graph answers again, resume with: "
                f"batch-rotate rotate --resume {shown_path(run_dir)}"
            ) from None
        raise
    answered = stats.succeeded + stats.failed
    if answered:
        notify(f"rotation: {rate(answered, 'answered', time.monotonic() - began)}")
    result.interrupted = stop.is_set()
    journal.set_meta(state="interrupted" if result.interrupted else "finished", ended_at=utc_now())
    verify_next = f"batch-rotate verify {shown_path(run_dir)}"
    if settings.verify_wait_s is not None and not result.interrupted:
        interrupts.hint = verify_next  # the rotation is done: what is left is verification
        with graph_errors():
            await verify_journal(
                journal,
                graph,
                settings_lane(settings.read_budget, settings),
                wait_s=settings.verify_wait_s,
                every_s=settings.verify_every_s,
                stop=stop,
                notify=notify,
                max_attempts=settings.max_attempts,
                strategy=settings.keys_strategy,
            )
    verification_interrupted = stop.is_set() and not result.interrupted
    finish(result, journal, run_dir, interrupts)
    result.exit_code = exit_code_for(result.counts, result.interrupted or verification_interrupted)
    if result.interrupted:
        result.next_command = f"batch-rotate rotate --resume {shown_path(run_dir)}"
    elif verification_interrupted or result.counts.get(Status.QUEUED.value):
        result.next_command = verify_next
    return result


async def verify_run(
    run_dir: Path,
    *,
    settings: Settings,
    credentials: Credentials,
    notify: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Check every queued device of a run for a newly escrowed key, polling as asked."""
    note_run_dir(run_dir)
    with (
        Interrupts(notify) as interrupts,
        journal_errors(run_dir),
        closing(Journal.open(run_dir)) as journal,
        run_log(run_dir),
    ):
        interrupts.run_dir, interrupts.hint = run_dir, f"batch-rotate verify {shown_path(run_dir)}"
        meta = journal.meta()
        endpoints = recorded_endpoints(meta, settings)
        with graph_errors():
            async with signed_in(
                credentials, settings, endpoints=endpoints, needs=TO_READ_RESULTS
            ) as graph:
                journal.event("verify", f"wait {settings.verify_wait_s or 0} s")
                await verify_journal(
                    journal,
                    graph,
                    settings_lane(settings.read_budget, settings),
                    wait_s=settings.verify_wait_s or 0.0,
                    every_s=settings.verify_every_s,
                    stop=interrupts.stop,
                    notify=notify,
                    max_attempts=settings.max_attempts,
                    strategy=settings.keys_strategy,
                )
        result = finish(
            RunResult(run_dir, {}, EXIT_OK, interrupted=interrupts.stop.is_set()),
            journal,
            run_dir,
            interrupts,
        )
    shown = ", ".join(f"{k} {v}" for k, v in sorted(result.verification_counts.items()))
    result.messages.append(f"verification: {shown or 'no queued devices'}")
    result.exit_code = EXIT_INTERRUPTED if result.interrupted else EXIT_OK
    if result.interrupted:
        result.next_command = interrupts.hint
    elif result.verification_counts.get("pending"):
        result.next_command = f"batch-rotate verify {shown_path(run_dir)} --wait 2h --every 10m"
    return result


async def _resume(run_dir: Path, stages: _Stages, retry_failed: bool) -> RunResult:
    """Go on with a run: resolve what is left to resolve (an interrupted resolution), then
    send what is left to send; with `retry_failed`, devices that failed for a transient reason
    go again."""
    if not has_journal(run_dir):
        raise JournalError(
            f"{run_dir}: no run journal here; give a folder such as reports/<run-id>"
        )
    note_run_dir(run_dir)
    credentials, notify = stages.credentials, stages.notify
    with (
        journal_errors(run_dir),
        closing(Journal.open(run_dir)) as journal,
        run_log(run_dir),
    ):
        journal.check()  # a damaged journal must not decide what is sent again
        meta = journal.meta()
        if meta.get("tenant_id") and meta["tenant_id"] != credentials.tenant_id:
            raise InputError(
                f"{run_dir} was run against tenant {meta['tenant_id']}, but AZURE_TENANT_ID is "
                f"{credentials.tenant_id}; resume with the same tenant"
            )
        to_resolve = journal.counts().get(Status.RESOLVING.value, 0)
        # every row recorded, the plan not: resolve what is left (maybe nothing), then plan
        resolvable = "rows_recorded" in meta
        if meta.get("dry_run") == "True" or ("resolution" not in meta and not resolvable):
            raise InputError(
                f"{run_dir} is a dry-run plan or stopped before planning; nothing to resume: "
                f"run `batch-rotate rotate {meta.get('input_file', 'INPUT')}` instead"
            )
        endpoints = recorded_endpoints(meta, stages.settings)
        stages.settings = dataclasses.replace(stages.settings, endpoints=endpoints)
        stages.follow(run_dir, f"batch-rotate rotate --resume {shown_path(run_dir)}")
        retry = _retryable(journal, notify) if retry_failed else []
        relook = _relookable(journal, notify) if retry_failed else []
        if "resolution" not in meta or relook:  # resolve what is left (or failed) first
            journal.reopen_failed(relook, RETRIED_EVENT, lookups=True)
            to_resolve += len(relook)
            notify(f"resuming {run_dir.name}: {plural(to_resolve, 'row')} still to resolve")
            journal.event("resume", f"{to_resolve} to resolve")
            journal.reopen_failed(retry, RETRIED_EVENT)
            return await _plan_and_rotate(journal, run_dir, stages, to_resolve)
        pending = len(journal.to_send()) + len(journal.in_flight()) + len(retry)
        notify(f"resuming {run_dir.name}: {plural(pending, 'device')} still to send")
        journal.event("resume", f"{pending} to send")
        with graph_errors():
            async with signed_in(
                credentials, stages.settings, endpoints=endpoints, needs=TO_ROTATE
            ) as graph:
                result = RunResult(run_dir, {}, EXIT_OK)
                if pending and stages.confirm is not None:
                    request = ConfirmRequest(
                        credentials.tenant_id, endpoints.graph_url, pending, []
                    )
                    with stages.interrupts.raising():
                        confirmed = stages.confirm(request)
                    if not confirmed:
                        result.exit_code = EXIT_USAGE
                        result.messages.append("not confirmed: nothing was sent")
                        return finish(result, journal, run_dir, stages.interrupts)
                journal.reopen_failed(retry, RETRIED_EVENT)
                return await _rotate(journal, run_dir, graph, stages, result)


def _relookable(journal: Journal, notify: Callable[[str], None]) -> list[int]:
    """Rows whose lookup gave up on the service: resolved again, then sent if eligible."""
    failed = journal.lookup_failures()
    rows = [row for row, reason in failed if transient_lookup(reason)]
    if failed:
        notify(
            f"--retry-failed: {len(rows)} of {plural(len(failed), 'failed lookup')} failed for a "
            f"transient reason and {'is' if len(rows) == 1 else 'are'} looked up again"
        )
    return rows


def _retryable(journal: Journal, notify: Callable[[str], None]) -> list[int]:
    """Rows that failed for a transient reason (given up on 5xx, timeouts, resets, 429s)."""
    failed = journal.failed_rows()
    rows = [row for row, status, reason in failed if transient_failure(status, reason)]
    notify(
        f"--retry-failed: {len(rows)} of {plural(len(failed), 'failed device')} failed for a "
        f"transient reason and {'goes' if len(rows) == 1 else 'go'} again (a device's own error, "
        "such as 400, 403 or 404, does not)"
    )
    return rows
