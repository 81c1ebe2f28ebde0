"""The run's stages once the rows are in the journal: sign in, resolve, plan-time guards,
confirm, rotate and verify, with the journal's bookkeeping for whatever stops them.

`run.py` starts a run or resumes one and comes here; every stage gets the one `GraphSession`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from batch_rotate.apply import ReviewedPlan, restrict_to_plan
from batch_rotate.commandline import command, relative
from batch_rotate.eligibility import comanaged_note, ineligibility
from batch_rotate.engine import rotate_pending
from batch_rotate.errors import BatchRotateError, GraphError, InputError
from batch_rotate.events import EventWriter
from batch_rotate.graph.runner import RunnerStats
from batch_rotate.graph.session import GraphSession, Needs
from batch_rotate.guards import (
    STALE_AFTER,
    flag_key_ceiling,
    guard_other_live_runs,
    guard_recent,
    stale_warnings,
)
from batch_rotate.journal import Journal
from batch_rotate.journal_schema import utc_now
from batch_rotate.models import Status
from batch_rotate.present import plural, plural_noun
from batch_rotate.recent_rotations import guard_recent_rotations
from batch_rotate.resolve import ResolveReport, Wanted, resolve
from batch_rotate.runkit import (
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ConfirmRequest,
    Interrupted,
    Interrupts,
    RunResult,
    exit_code_for,
    finish,
    graph_errors,
    rate,
    signed_in,
)
from batch_rotate.runs import note_run_dir, render
from batch_rotate.settings import WRITE_PERMISSIONS, Credentials, Settings
from batch_rotate.verify import verify_journal

READ_PERMISSIONS = ("DeviceManagementManagedDevices.Read.All", *WRITE_PERMISSIONS)
TO_ROTATE = Needs(WRITE_PERMISSIONS, "rotate BitLocker keys")
TO_READ_RESULTS = Needs(READ_PERMISSIONS, "read device action results")
log = logging.getLogger("batch_rotate.run")  # one logger for the whole run


Progress = Callable[[RunnerStats, int], None]
Resolving = Callable[[str, int, int | None], None]  # (what, done, total if known)


@dataclasses.dataclass
class Stages:
    """What every stage of one command shares: its settings, sign-in, callbacks and Ctrl-C."""

    settings: Settings
    credentials: Credentials
    confirm: Callable[[ConfirmRequest], bool | Awaitable[bool]] | None
    on_progress: Progress | None
    notify: Callable[[str], None]
    interrupts: Interrupts
    on_resolving: Resolving | None = None
    context_meta: dict[str, str] = dataclasses.field(default_factory=dict)  # the run's record
    plan: ReviewedPlan | None = None  # `rotate --plan RUN`: send only what it marked
    replay: tuple[str | Path, ...] = ()  # typed options a printed `plan INPUT` repeats
    # A campaign's pre-flight check on the run's own session, before resolution (campaign.py)
    before_resolving: Callable[[GraphSession], Awaitable[None]] | None = None

    def follow(self, run_dir: Path, next_command: str) -> None:
        """From now on, an unexpected error and a second Ctrl-C know the run and its next step."""
        note_run_dir(run_dir)
        self.interrupts.run_dir = run_dir
        self.interrupts.hint = next_command


async def plan_and_rotate(journal: Journal, run_dir: Path, stages: Stages, rows: int) -> RunResult:
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
            async with signed_in(credentials, settings, needs=needs) as session:
                if stages.before_resolving is not None:
                    await stages.before_resolving(session)
                stale_before = datetime.now(UTC) - STALE_AFTER
                began = time.monotonic()
                resolve_report = await stages.interrupts.cancellable(
                    resolve(
                        journal,
                        wanted,
                        session,
                        eligibility=ineligibility,
                        flag=comanaged_note,
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
                        flag_key_ceiling(journal, session, settings)
                    )
                    if checked is None:  # Ctrl-C: resume runs the plan-time checks again
                        return _interrupted_resolution(journal, run_dir, stages)
                    warnings += checked
                warnings += guard_other_live_runs(journal, run_dir, settings)
                warnings += guard_recent(journal, run_dir, settings)
                if settings.check_recent_rotations:
                    seen = await stages.interrupts.cancellable(
                        guard_recent_rotations(journal, session, settings)
                    )
                    if seen is None:  # Ctrl-C: resume runs the plan-time checks again
                        return _interrupted_resolution(journal, run_dir, stages)
                    warnings += seen
                if stages.plan is not None:
                    warnings += restrict_to_plan(journal, stages.plan)
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
                return await _after_plan(
                    journal, run_dir, session, stages, resolve_report, warnings
                )
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


def _interrupted_resolution(journal: Journal, run_dir: Path, stages: Stages) -> RunResult:
    journal.abandon_resolving(
        "interrupted before this row was resolved; resume the run: it resolves the rows left, "
        "then goes on"
    )
    journal.set_meta(state="interrupted", ended_at=utc_now())
    journal.event("interrupt", "during resolution")
    result = RunResult(run_dir, {}, EXIT_INTERRUPTED, interrupted=True)
    result.next_command = stages.interrupts.hint
    return finish(result, journal, run_dir, stages.interrupts)


def _nothing_to_rotate(
    journal: Journal, run_dir: Path, result: RunResult, interrupts: Interrupts
) -> RunResult:
    """No row is eligible (held back, not found, ineligible): say so, in the state too."""
    why = "nothing to rotate: no row is eligible; nothing was sent"
    journal.set_meta(state="nothing_to_rotate", ended_at=utc_now(), stopped_because=why)
    result = finish(result, journal, run_dir, interrupts)
    shown = ", ".join(f"{status} {n}" for status, n in sorted(result.counts.items()))
    result.messages.append(f"{why} ({shown}); each row's reason is in the report")
    result.exit_code = exit_code_for(result.counts, False)
    return result


async def _after_plan(
    journal: Journal,
    run_dir: Path,
    session: GraphSession,
    stages: Stages,
    resolve_report: ResolveReport | None,
    warnings: list[str],
) -> RunResult:
    settings, credentials, confirm = stages.settings, stages.credentials, stages.confirm
    interrupts = stages.interrupts
    count = journal.counts().get(Status.PENDING.value, 0)
    result = RunResult(run_dir, {}, EXIT_OK, resolve_report=resolve_report, warnings=warnings)
    if settings.dry_run:
        journal.set_meta(state="plan", ended_at=utc_now())
        if count:  # apply exactly this plan, with its choices
            result.next_command = command("rotate", "--plan", relative(run_dir))
        if count > settings.max_devices:
            result.warnings.append(
                f"{plural(count, 'device')} would be rotated, more than --max-devices "
                f"{settings.max_devices}: rotate would refuse; add --max-devices {count} to allow"
            )
        result = finish(result, journal, run_dir, interrupts)
        unlooked = result.counts.get(Status.FAILED.value, 0)  # in a plan: lookups that failed
        if unlooked:
            result.exit_code = EXIT_AUTH
            result.messages.append(
                f"{plural(unlooked, 'row')} could not be looked up (see lookup_failed in the "
                "report); the plan is incomplete: run it again when Graph answers"
            )
        return result
    if not count:
        return _nothing_to_rotate(journal, run_dir, result, interrupts)
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
                answer = confirm(request)
            # a campaign confirms every tenant at once: its answer comes when all have planned
            confirmed = await answer if inspect.isawaitable(answer) else answer
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
    return await rotate(journal, run_dir, session, stages, result)


async def rotate(
    journal: Journal, run_dir: Path, session: GraphSession, stages: Stages, result: RunResult
) -> RunResult:
    settings, notify, interrupts = stages.settings, stages.notify, stages.interrupts
    journal.set_meta(state="rotating")
    stop = interrupts.stop
    # devices in flight are checked (and maybe re-sent) too: the events need their ids as well
    targets = {target.row: target for target in journal.pending_devices(in_flight=True)}
    began = time.monotonic()
    try:
        tenant = session.tenant_id or stages.credentials.tenant_id  # the token's `tid`
        with graph_errors(), EventWriter(run_dir, targets, tenant) as events:
            stats = await rotate_pending(
                journal,
                session,
                stop=stop,
                on_progress=stages.on_progress,
                on_outcome=events,
                uncertain_grace_s=settings.uncertain_grace_s,
            )
    except BatchRotateError as exc:
        journal.set_meta(state="failed", ended_at=utc_now(), stopped_because=str(exc))
        with interrupts.rendering():
            render(run_dir)
        if isinstance(exc, GraphError):  # an outage: the devices not sent stay not_sent
            raise GraphError(
                f"{exc}; when Graph answers again, resume with: "
                + command("rotate", "--resume", relative(run_dir))
            ) from None
        raise
    answered = stats.succeeded + stats.failed
    if answered:
        notify(f"rotation: {rate(answered, 'answered', time.monotonic() - began)}")
    result.interrupted = stop.is_set()
    journal.set_meta(state="interrupted" if result.interrupted else "finished", ended_at=utc_now())
    verify_next = command("verify", relative(run_dir))
    if settings.verify_wait_s is not None and not result.interrupted:
        interrupts.hint = verify_next  # the rotation is done: what is left is verification
        with graph_errors():
            await verify_journal(
                journal,
                session,
                wait_s=settings.verify_wait_s,
                every_s=settings.verify_every_s,
                stop=stop,
                notify=notify,
                strategy=settings.keys_strategy,
            )
    verification_interrupted = stop.is_set() and not result.interrupted
    finish(result, journal, run_dir, interrupts)
    result.exit_code = exit_code_for(result.counts, result.interrupted or verification_interrupted)
    if result.interrupted or journal.in_flight():  # lost answers wait for their grace period
        result.next_command = command("rotate", "--resume", relative(run_dir))
    elif verification_interrupted or result.counts.get(Status.QUEUED.value):
        result.next_command = verify_next
    return result
