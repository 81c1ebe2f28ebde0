"""The job: read the device list into a new run's journal, or resume or verify an earlier run;
the stages from sign-in to report are in `stages.py`. Library entry points for the CLI; no Typer
here. Every row reaches the journal; the report is rendered from it whatever ends the run.
"""

from __future__ import annotations

import contextlib
import getpass
import inspect
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import closing
from pathlib import Path

from batch_rotate import __version__
from batch_rotate.apply import PlanToApply, check_same_input, load_plan
from batch_rotate.commandline import command, relative
from batch_rotate.errors import InputError, JournalError
from batch_rotate.events import run_log
from batch_rotate.graph.runner import RunnerStats
from batch_rotate.graph.session import GraphSession
from batch_rotate.inputs import read_device_list
from batch_rotate.journal import Journal, has_journal, journal_errors
from batch_rotate.journal_schema import utc_now
from batch_rotate.models import Status
from batch_rotate.present import plural
from batch_rotate.probe import settle_kind
from batch_rotate.runindex import register_run
from batch_rotate.runkit import (
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
    signed_in,
    verify_exit_code,
)
from batch_rotate.runlock import is_held
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
from batch_rotate.settings import Credentials, Settings
from batch_rotate.stages import (
    TO_READ_RESULTS,
    TO_ROTATE,
    Progress,
    Resolving,
    Stages,
    plan_and_rotate,
    rotate,
)
from batch_rotate.verify import verify_journal

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_MEANINGS",
    "ConfirmRequest",
    "InputOptions",
    "PlanToApply",
    "Progress",
    "RunResult",
    "RunnerStats",
    "exit_code_for",
    "graph_errors",
    "interrupt_handler",
    "render",
    "run_job",
    "verify_run",
]

log = logging.getLogger("batch_rotate.run")


async def run_job(
    *,
    settings: Settings,
    credentials: Credentials,
    inputs: InputOptions | None = None,
    resume_dir: Path | None = None,
    argv: Sequence[str] = (),
    confirm: Callable[[ConfirmRequest], bool | Awaitable[bool]] | None = None,
    on_progress: Progress | None = None,
    notify: Callable[[str], None] = lambda _: None,
    run_dir: Path | None = None,
    retry_failed: bool = False,
    on_resolving: Resolving | None = None,
    plan: PlanToApply | None = None,
    context_meta: Mapping[str, str] | None = None,
    replay: Sequence[str | Path] = (),
    interrupts: Interrupts | None = None,
    before_resolving: Callable[[GraphSession], Awaitable[None]] | None = None,
) -> RunResult:
    """Plan (dry run) or rotate a device list, apply a reviewed plan, or resume an earlier run.

    `context_meta`: the run context's record (`context.RunContext.meta`), kept in the journal so
    later commands on the run reuse the operator's choices.
    """
    with _own(interrupts, notify) as interrupts:
        stages = Stages(settings, credentials, confirm, on_progress, notify, interrupts)
        stages.on_resolving = on_resolving
        stages.context_meta = dict(context_meta or {})
        stages.replay = tuple(replay)
        stages.before_resolving = before_resolving
        if resume_dir is not None:
            return await _resume(resume_dir, stages, retry_failed)
        if plan is not None:
            stages.plan = load_plan(plan)
            inputs = InputOptions(
                stages.plan.input_file, stages.plan.id_column, stages.plan.id_kind
            )
        assert inputs is not None
        return await _new_run(inputs, stages, argv, run_dir)


async def _new_run(
    inputs: InputOptions, stages: Stages, argv: Sequence[str], run_dir: Path | None
) -> RunResult:
    started = utc_now()
    settings, credentials, notify = stages.settings, stages.credentials, stages.notify
    try:  # the read holds the event loop: a first Ctrl-C or SIGTERM must stop it at once
        with stages.interrupts.raising():
            devices = read_device_list(
                inputs.path, id_column=inputs.id_column, id_kind=inputs.id_kind, sheet=inputs.sheet
            )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted while reading {inputs.path.name}: nothing was sent and no run folder "
            "was made; run the command again"
        ) from None
    # An ambiguous column (a lone DeviceId) is decided by a probe before any run folder exists.
    settled = await settle_kind(devices, credentials=credentials, settings=settings, notify=notify)
    devices = settled.devices
    if stages.plan is not None:
        check_same_input(stages.plan, devices.sha256)
    notify(
        f"read {plural(len(devices), 'row')} from {inputs.path.name} "
        f"(column {devices.column!r} as {devices.kind.value})"
    )
    rows = len(devices)
    for earlier in unfinished_runs(
        settings.reports_dir, devices.sha256, tenant_id=credentials.tenant_id
    ):
        if is_held(earlier):  # its devices still to send are held back (in_another_run)
            notify(f"note: {earlier} is a run of this file that is running now")
        else:
            again = command("rotate", "--resume", relative(earlier))
            notify(f"note: {earlier} is an unfinished run of this file; resume it with {again}")
    run_dir = run_dir or new_run_dir(settings.reports_dir, inputs.path)
    meta = {
        **settings.public(),
        **stages.context_meta,
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
    register_run(run_dir, meta)  # found from any folder from now on (runindex.py)
    again = (
        command("plan", relative(inputs.path), *stages.replay)
        if settings.dry_run
        else command("rotate", "--resume", relative(run_dir))
    )
    stages.follow(run_dir, again)
    with journal_errors(run_dir), closing(journal), run_log(run_dir):
        log.info("run %s: %s from %s", run_dir.name, plural(rows, "row"), inputs.path)
        journal.add_refs(devices.refs)
        # all rows are on disk: from here an interrupted resolution resumes (`_resume`)
        journal.set_meta(rows_recorded=str(rows))
        # the rows live on disk now (`settled` held them too); resolution reads them back
        del devices, settled
        return await plan_and_rotate(journal, run_dir, stages, rows)


async def verify_run(
    run_dir: Path,
    *,
    settings: Settings,
    credentials: Credentials,
    notify: Callable[[str], None] = lambda _: None,
    interrupts: Interrupts | None = None,
) -> RunResult:
    """Check every queued device of a run for a newly escrowed key, polling as asked."""
    note_run_dir(run_dir)
    with (
        _own(interrupts, notify) as interrupts,
        journal_errors(run_dir),
        closing(Journal.open(run_dir)) as journal,
        run_log(run_dir),
    ):
        interrupts.run_dir, interrupts.hint = run_dir, command("verify", relative(run_dir))
        endpoints = settings.endpoints  # the run's recorded ones, unless given again (cli)
        with graph_errors():
            async with signed_in(
                credentials, settings, endpoints=endpoints, needs=TO_READ_RESULTS
            ) as session:
                journal.event("verify", f"wait {settings.verify_wait_s or 0} s")
                await verify_journal(
                    journal,
                    session,
                    wait_s=settings.verify_wait_s or 0.0,
                    every_s=settings.verify_every_s,
                    stop=interrupts.stop,
                    notify=notify,
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
    result.exit_code = verify_exit_code(result.verification_counts, result.interrupted)
    if result.interrupted:
        result.next_command = interrupts.hint
    elif result.verification_counts.get("pending"):
        result.next_command = command("verify", relative(run_dir), "--wait", "2h", "--every", "10m")
    return result


def _own(
    interrupts: Interrupts | None, notify: Callable[[str], None]
) -> contextlib.AbstractContextManager[Interrupts]:
    """The command's own signal handling, or a campaign's child (`Interrupts.child`)."""
    return contextlib.nullcontext(interrupts) if interrupts is not None else Interrupts(notify)


async def _resume(run_dir: Path, stages: Stages, retry_failed: bool) -> RunResult:
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
                f"run `{command('rotate', Path(meta.get('input_file', 'INPUT')))}` instead"
            )
        register_run(run_dir, meta)  # a run made before the index existed is indexed now
        endpoints = stages.settings.endpoints  # the run's recorded ones, unless given again
        stages.follow(run_dir, command("rotate", "--resume", relative(run_dir)))
        retry = _retryable(journal, notify) if retry_failed else []
        relook = _relookable(journal, notify) if retry_failed else []
        if "resolution" not in meta or relook:  # resolve what is left (or failed) first
            journal.reopen_failed(relook, RETRIED_EVENT, lookups=True)
            to_resolve += len(relook)
            notify(f"resuming {run_dir.name}: {plural(to_resolve, 'row')} still to resolve")
            journal.event("resume", f"{to_resolve} to resolve")
            journal.reopen_failed(retry, RETRIED_EVENT)
            return await plan_and_rotate(journal, run_dir, stages, to_resolve)
        pending = len(journal.to_send()) + len(journal.in_flight()) + len(retry)
        notify(f"resuming {run_dir.name}: {plural(pending, 'device')} still to send")
        journal.event("resume", f"{pending} to send")
        with graph_errors():
            async with signed_in(
                credentials, stages.settings, endpoints=endpoints, needs=TO_ROTATE
            ) as session:
                if stages.before_resolving is not None:  # a campaign's pre-flight, here too
                    await stages.before_resolving(session)
                result = RunResult(run_dir, {}, EXIT_OK)
                if pending and stages.confirm is not None:
                    request = ConfirmRequest(
                        credentials.tenant_id, endpoints.graph_url, pending, []
                    )
                    with stages.interrupts.raising():
                        answer = stages.confirm(request)
                    confirmed = await answer if inspect.isawaitable(answer) else answer
                    if not confirmed:
                        result.exit_code = EXIT_USAGE
                        result.messages.append("not confirmed: nothing was sent")
                        return finish(result, journal, run_dir, stages.interrupts)
                journal.reopen_failed(retry, RETRIED_EVENT)
                return await rotate(journal, run_dir, session, stages, result)


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
