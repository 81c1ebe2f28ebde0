"""A campaign's commands: start one (`plan`/`rotate --tenants`), resume, apply its plan, verify,
render its reports. Each tenant's work is an ordinary run (`run.py`) in the campaign folder; the
lanes, the gate and the record are `campaign.py`.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from batch_rotate.campaign import (
    Campaign,
    CampaignResult,
    CampaignRun,
    LaneHooks,
    TenantPlan,
    classify,
    exit_code_of,
    folder_name,
    is_campaign,
    next_command,
    run_folder,
    run_lanes,
)
from batch_rotate.campaign_model import TenantEntry, TenantOutcome
from batch_rotate.commandline import command, relative
from batch_rotate.context import RunContext
from batch_rotate.errors import BatchRotateError, InputError
from batch_rotate.exitcodes import EXIT_OK
from batch_rotate.inputs.split import split_by_tenant
from batch_rotate.interrupts import Interrupts
from batch_rotate.journal import has_journal
from batch_rotate.runkit import InputOptions, RunResult, verify_exit_code
from batch_rotate.tenants import check_inputs, is_tenant_id, read_tenants, tenant_key

Contexts = Callable[[TenantEntry, Path | None], RunContext]
Ask = Callable[[list[TenantPlan], list[TenantOutcome]], bool]
Notify = Callable[[str], None]


def _context_or_error(contexts: Contexts, entry: TenantEntry, run_dir: Path | None) -> Any:
    try:
        return contexts(entry, run_dir)
    except BatchRotateError as exc:  # e.g. a credential variable the file names is not set
        return exc


async def _lanes(
    campaign: Campaign,
    work: Sequence[tuple[TenantEntry, Path, Any]],
    lane: Lane,
    *,
    notify: Notify,
    ask: Ask,
    tenants_at_once: int,
    stop_on_failure: bool,
    authority_host: str,
    hint: str,
) -> tuple[dict[str, RunResult], bool]:
    spec = CampaignRun(
        lane=lane,
        notify=notify,
        tenants_at_once=tenants_at_once,
        stop_on_failure=stop_on_failure,
        ask=ask,
    )
    with Interrupts(notify) as interrupts:
        interrupts.hint = hint
        results = await run_lanes(
            campaign, work, spec, interrupts=interrupts, authority_host=authority_host
        )
        interrupted = interrupts.stop.is_set()
    campaign.state = "interrupted" if interrupted else "done"
    campaign.save()
    return results, interrupted


def _result(
    campaign: Campaign, results: dict[str, RunResult], interrupted: bool, *, verifying: bool
) -> CampaignResult:
    from batch_rotate.report.rollup import write_rollup

    write_rollup(campaign.folder, campaign.outcomes)
    by_tenant = {
        o.entry.tenant: results[tenant_key(o.entry.tenant)]
        for o in campaign.outcomes
        if tenant_key(o.entry.tenant) in results
    }
    code = exit_code_of(campaign, results, interrupted)
    result = CampaignResult(campaign, code, results=by_tenant)
    if interrupted:
        result.next_command = command("rotate", "--resume", relative(campaign.folder))
        result.messages.append("interrupted: every tenant's run stopped cleanly")
    else:
        result.next_command = next_command(campaign, verifying=verifying)
    failed = [o for o in campaign.outcomes if o.preflight != "ok"]
    if failed:
        result.messages.append(
            f"{len(failed)} of {len(campaign.outcomes)} tenants failed pre-flight (nothing was "
            "sent to them); fix them, then resume the campaign: "
            + command("rotate", "--resume", relative(campaign.folder))
        )
    result.messages.append(f"roll-up: {relative(campaign.folder / 'rollup.xlsx')}")
    return result


Lane = Callable[[TenantEntry, RunContext, Path, LaneHooks], Awaitable[RunResult]]


def _as_lane(context: RunContext, hooks: LaneHooks) -> dict[str, Any]:
    """What every tenant's run takes from its context and its lane, whatever the command."""
    return {
        "settings": context.settings,
        "credentials": context.credentials,
        "context_meta": context.meta(),
        "argv": sys.argv,
        "confirm": hooks.confirm,
        "on_progress": hooks.on_progress,
        "notify": hooks.notify,
        "interrupts": hooks.interrupts,
        "before_resolving": hooks.before_resolving,
    }


def _run_lane(criteria: Any, input_options: tuple[Any, Any, Any]) -> Lane:
    async def lane(
        entry: TenantEntry, context: RunContext, run_dir: Path, hooks: LaneHooks
    ) -> RunResult:
        from batch_rotate.run import run_job

        if criteria is not None:
            from batch_rotate.select.job import NothingSelected, select_then_run

            os.makedirs(run_dir, mode=0o700, exist_ok=True)
            try:
                return await select_then_run(criteria, run_dir=run_dir, **_as_lane(context, hooks))
            except NothingSelected as exc:
                hooks.notify(str(exc))
                return RunResult(run_dir, {}, EXIT_OK, messages=[str(exc)])
        assert entry.input is not None
        return await run_job(
            inputs=InputOptions(entry.input, *input_options),
            run_dir=run_dir,
            **_as_lane(context, hooks),
        )

    return lane


async def new_campaign(
    command_name: str,
    tenants_file: Path,
    *,
    spanning: Path | None,
    criteria: Any,
    dry_run: bool,
    reports_dir: Path,
    contexts: Contexts,
    input_options: tuple[Any, Any, Any],
    ask: Ask,
    notify: Notify,
    tenants_at_once: int,
    stop_on_failure: bool,
    authority_host: str,
) -> CampaignResult:
    entries = read_tenants(tenants_file)
    check_inputs(entries, spanning=spanning is not None, select=criteria is not None)
    campaign = Campaign.new(reports_dir, tenants_file, command_name)
    if spanning is not None:
        try:
            entries = _split(spanning, entries, campaign, input_options[2])
        except BaseException:
            shutil.rmtree(campaign.folder, ignore_errors=True)  # nothing was made or sent
            raise
    campaign.outcomes = [
        TenantOutcome(e, e.tenant if is_tenant_id(e.tenant) else "", "") for e in entries
    ]
    campaign.save()
    work = [
        (e, run_folder(campaign.folder, e), _context_or_error(contexts, e, None))
        for e in entries
        if e.input is not None or criteria is not None
    ]
    unlisted = [e.label for e in entries if e.input is None and criteria is None]
    if unlisted:  # the spanning list had no row for them: they are not part of this campaign
        campaign.outcomes = [o for o in campaign.outcomes if o.entry.input is not None]
        campaign.save()
        notify(f"no rows in {spanning.name if spanning else 'the list'} for: {', '.join(unlisted)}")
    notify(f"campaign {relative(campaign.folder)}: {len(entries)} tenants")
    hint = (
        command("plan", "--tenants", relative(tenants_file))
        if dry_run
        else command("rotate", "--resume", relative(campaign.folder))
    )
    ran = await _lanes(
        campaign,
        work,
        _run_lane(criteria, input_options),
        notify=notify,
        ask=ask,
        tenants_at_once=tenants_at_once,
        stop_on_failure=stop_on_failure,
        authority_host=authority_host,
        hint=hint,
    )
    return _done(campaign, ran)


def _done(
    campaign: Campaign, ran: tuple[dict[str, RunResult], bool], *, verifying: bool = False
) -> CampaignResult:
    return _result(campaign, ran[0], ran[1], verifying=verifying)


def _split(
    spanning: Path, entries: list[TenantEntry], campaign: Campaign, sheet: Any
) -> list[TenantEntry]:
    campaign.spanning_input = str(spanning.resolve())
    files = {tenant_key(e.tenant): folder_name(e) for e in entries}
    split = split_by_tenant(
        spanning,
        campaign.folder / "inputs",
        lambda value: files.get(tenant_key(value)),
        sheet=sheet,
    )
    return [replace(e, input=split.files.get(files[tenant_key(e.tenant)])) for e in entries]


def _load(folder: Path) -> Campaign:
    if not is_campaign(folder):
        raise InputError(f"{folder}: not a campaign folder (no campaign.json)")
    return Campaign.load(folder)


async def resume_campaign(
    folder: Path,
    *,
    contexts: Contexts,
    ask: Ask,
    notify: Notify,
    tenants_at_once: int,
    authority_host: str,
    retry_failed: bool = False,
) -> CampaignResult:
    """Go on with every tenant: an unfinished run resumes; a tenant that failed pre-flight
    before its run began (consent given since, say) starts its run now."""
    from batch_rotate.run import run_job

    campaign = _load(folder)
    if campaign.command == "plan":
        raise InputError(
            f"{folder} is a campaign plan: apply it with "
            + command("rotate", "--plan", relative(folder))
        )
    work = []
    for outcome in campaign.outcomes:
        entry = outcome.entry
        run_dir = outcome.run_dir or run_folder(folder, entry)
        begun = has_journal(run_dir)
        if not begun and entry.input is None:
            continue
        outcome.preflight, outcome.fix = "ok", ""
        work.append(
            (entry, run_dir, _context_or_error(contexts, entry, run_dir if begun else None))
        )
    fresh = _run_lane(None, (None, None, None))

    async def lane(
        entry: TenantEntry, context: RunContext, run_dir: Path, hooks: LaneHooks
    ) -> RunResult:
        if not has_journal(run_dir):
            return await fresh(entry, context, run_dir, hooks)
        return await run_job(
            resume_dir=run_dir, retry_failed=retry_failed, **_as_lane(context, hooks)
        )

    ran = await _lanes(
        campaign,
        work,
        lane,
        notify=notify,
        ask=ask,
        tenants_at_once=tenants_at_once,
        stop_on_failure=False,
        authority_host=authority_host,
        hint=command("rotate", "--resume", relative(folder)),
    )
    return _done(campaign, ran)


async def apply_campaign(
    folder: Path,
    *,
    reports_dir: Path,
    max_age_s: float,
    contexts: Contexts,
    ask: Ask,
    notify: Notify,
    tenants_at_once: int,
    authority_host: str,
) -> CampaignResult:
    """`rotate --plan CAMPAIGN`: each tenant's reviewed plan applied, in a new campaign."""
    from batch_rotate.run import PlanToApply, run_job

    planned = _load(folder)
    if planned.command != "plan":
        raise InputError(f"{folder} is not a campaign plan (it was made by {planned.command})")
    campaign = Campaign.new(reports_dir, Path(planned.tenants_file), "rotate")
    campaign.spanning_input = planned.spanning_input
    campaign.outcomes = [
        replace(o, exit_code=0, duration_s=0.0, run_dir=None, budget_use=None)
        for o in planned.outcomes
    ]
    plans = {tenant_key(o.entry.tenant): o.run_dir for o in planned.outcomes}
    campaign.save()
    work = []
    for outcome in campaign.outcomes:
        plan_dir = plans.get(tenant_key(outcome.entry.tenant))
        if plan_dir is None or not has_journal(plan_dir) or outcome.preflight != "ok":
            continue
        work.append(
            (
                outcome.entry,
                run_folder(campaign.folder, outcome.entry),
                _context_or_error(contexts, outcome.entry, plan_dir),
            )
        )

    async def lane(
        entry: TenantEntry, context: RunContext, run_dir: Path, hooks: LaneHooks
    ) -> RunResult:
        plan_dir = plans[tenant_key(entry.tenant)]
        assert plan_dir is not None
        return await run_job(
            plan=PlanToApply(plan_dir, max_age_s), run_dir=run_dir, **_as_lane(context, hooks)
        )

    ran = await _lanes(
        campaign,
        work,
        lane,
        notify=notify,
        ask=ask,
        tenants_at_once=tenants_at_once,
        stop_on_failure=False,
        authority_host=authority_host,
        hint=command("rotate", "--resume", relative(campaign.folder)),
    )
    return _done(campaign, ran)


async def verify_campaign(
    folder: Path,
    *,
    wait_s: float,
    every_s: float,
    contexts: Contexts,
    notify: Notify,
    tenants_at_once: int,
    authority_host: str,
) -> CampaignResult:
    """Every tenant's run verified at once; exit 0 all verified, 75 only pending, 1 a look."""
    from batch_rotate.run import verify_run

    campaign = _load(folder)
    work = [
        (o.entry, o.run_dir, _context_or_error(contexts, o.entry, o.run_dir))
        for o in campaign.outcomes
        if o.run_dir is not None and has_journal(o.run_dir) and o.preflight == "ok"
    ]

    async def lane(
        entry: TenantEntry, context: RunContext, run_dir: Path, hooks: LaneHooks
    ) -> RunResult:
        settings = replace(context.settings, verify_wait_s=wait_s, verify_every_s=every_s)
        result = await verify_run(
            run_dir,
            settings=settings,
            credentials=context.credentials,
            notify=hooks.notify,
            interrupts=hooks.interrupts,
        )
        result.exit_code = verify_exit_code(result.verification_counts, result.interrupted)
        return result

    ran = await _lanes(
        campaign,
        work,
        lane,
        notify=notify,
        ask=lambda _p, _f: True,
        tenants_at_once=tenants_at_once,
        stop_on_failure=False,
        authority_host=authority_host,
        hint=command("verify", relative(folder)),
    )
    return _done(campaign, ran, verifying=True)


async def report_campaign(folder: Path) -> CampaignResult:
    """Every tenant's report rendered again from its journal, and the roll-up."""
    from batch_rotate.runs import render

    campaign = _load(folder)
    for outcome in campaign.outcomes:
        if outcome.run_dir is not None and has_journal(outcome.run_dir):
            render(outcome.run_dir)
    result = _result(campaign, {}, False, verifying=False)
    result.exit_code = EXIT_OK
    result.next_command = ""
    return result


def campaign_document(command_name: str, result: CampaignResult) -> dict[str, Any]:
    """The --json document of a campaign command: the roll-up's, with the exit code."""
    from batch_rotate.report.rollup import rollup_document

    doc: dict[str, Any] = dict(rollup_document(result.campaign.outcomes))
    doc.update(
        command=command_name,
        campaign=str(result.campaign.folder),
        exit_code=result.exit_code,
        next_command=result.next_command,
    )
    return doc


async def select_campaign(
    tenants_file: Path,
    criteria: Any,
    out: Path,
    *,
    contexts: Contexts,
    notify: Notify,
    tenants_at_once: int,
    authority_host: str,
) -> tuple[dict[str, int], dict[str, str]]:
    """`select --tenants`: the selectors in every tenant at once, one list with a `Tenant ID`
    column (as the tenants file spells each tenant) that `plan --tenants FILE LIST` splits again.
    Returns the count per tenant and, for a tenant that could not select, why."""
    import asyncio
    import tempfile

    from batch_rotate.select.job import select_devices

    entries = read_tenants(tenants_file)
    places = asyncio.Semaphore(max(1, tenants_at_once))
    counts: dict[str, int] = {}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="select-", dir=out.parent) as scratch:
        parts = {e.tenant: Path(scratch) / f"{folder_name(e)}.csv" for e in entries}

        async def one(entry: TenantEntry) -> None:
            def tell(text: str) -> None:
                notify(f"[{entry.label}] {text}")

            client_id = ""
            async with places:
                try:
                    context = contexts(entry, None)
                    client_id = context.credentials.client_id
                    selection = await select_devices(
                        criteria,
                        settings=context.settings,
                        credentials=context.credentials,
                        out=parts[entry.tenant],
                        notify=tell,
                    )
                    counts[entry.tenant] = len(selection.devices)
                except BatchRotateError as exc:
                    reason, fix = classify(exc, entry, authority_host, client_id)
                    failed[entry.tenant] = f"{reason}; fix: {fix}"
                    tell(f"failed: {failed[entry.tenant]}")

        await asyncio.gather(*(one(e) for e in entries))
        _merge(out, [(e.tenant, parts[e.tenant]) for e in entries if e.tenant in counts])
    return counts, failed


def _merge(out: Path, parts: Sequence[tuple[str, Path]]) -> None:
    """One list: `Tenant ID` first, then each tenant's selected columns, written atomically."""
    header: list[str] = []
    rows: list[list[str]] = []
    for tenant, part in parts:
        with part.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            first: list[str] = next(reader, [])
            header = header or first
            rows.extend([tenant, *row] for row in reader if row)
    temp = out.with_name(out.name + ".tmp")
    with temp.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Tenant ID", *(header or ["Device ID"])])
        writer.writerows(rows)
    os.replace(temp, out)
