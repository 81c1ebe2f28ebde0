"""The command edge of campaigns (issue 21): `plan`/`rotate --tenants FILE`, and `rotate --resume`,
`rotate --plan`, `verify` and `report` given a campaign folder. The work is `campaign.py`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from batch_rotate.cli.exiting import exits
from batch_rotate.cli.groups import Given
from batch_rotate.cli.running import log
from batch_rotate.errors import InputError

if TYPE_CHECKING:
    from batch_rotate.campaign import CampaignResult, TenantPlan
    from batch_rotate.campaign_model import TenantEntry, TenantOutcome
    from batch_rotate.cli.output import Mode
    from batch_rotate.context import RunContext
    from batch_rotate.select import Criteria


def _notify(text: str) -> None:
    log.info(text)


def _ask(assume_yes: bool) -> Callable[[list[TenantPlan], list[TenantOutcome]], bool]:
    def ask(plans: list[TenantPlan], failed: list[TenantOutcome]) -> bool:
        from rich.table import Table

        from batch_rotate.cli.console import err

        total = sum(p.request.count for p in plans)
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            raise InputError(
                f"about to rotate {total} devices in {len(plans)} tenants, but there is no "
                "terminal to confirm on; plan the campaign to review it, then add --yes"
            )
        table = Table("Tenant", "Tenant ID", "Devices to rotate", title="Campaign")
        for plan in plans:
            table.add_row(plan.entry.label, plan.request.tenant_id, str(plan.request.count))
        for outcome in failed:
            table.add_row(
                outcome.entry.label, outcome.entry.tenant, f"pre-flight: {outcome.preflight}"
            )
        err.print(table)
        try:
            return typer.confirm(
                f"Send the rotate requests to {total} devices in {len(plans)} tenants now?",
                default=False,
                err=True,
            )
        except typer.Abort:
            return False

    return ask


def _contexts(given: Given, dry_run: bool) -> Callable[[TenantEntry, Path | None], RunContext]:
    """Each tenant's context: the campaign's options with its tenant and credential overrides;
    a tenant's earlier run brings its record (what it was run with) as any `--resume` does."""
    from batch_rotate.campaign import tenant_context
    from batch_rotate.cli.running import with_run_record
    from batch_rotate.journal import has_journal

    def context_for(entry: TenantEntry, run_dir: Path | None) -> RunContext:
        here = with_run_record(given, run_dir) if run_dir and has_journal(run_dir) else given
        recorded = here.values.get("tenant_id") if run_dir and has_journal(run_dir) else ""
        return tenant_context(
            entry,
            here.values,
            os.environ,
            dry_run=dry_run,
            profile_note=given.profile_note,
            tenant_id=str(recorded or ""),
        )

    return context_for


def start_campaign(
    command_name: str,
    mode: Mode,
    given: Given,
    *,
    input_file: Path | None,
    criteria: Criteria | None,
    dry_run: bool,
    assume_yes: bool,
) -> NoReturn:
    from batch_rotate.campaign_runs import new_campaign

    tenants_file = Path(given["tenants"])
    with exits(command_name, mode):
        for name, flag in (("authority_url", "--authority-url"), ("tenant_id", "--tenant-id")):
            if name in given.explicit:
                raise InputError(
                    f"{flag} names one tenant; a campaign takes each tenant from --tenants "
                    "(give --authority-host or --cloud for where they sign in)"
                )

    async def job() -> CampaignResult:
        return await new_campaign(
            command_name,
            tenants_file,
            spanning=input_file,
            criteria=criteria,
            dry_run=dry_run,
            reports_dir=Path(given["reports_dir"]),
            contexts=_contexts(given, dry_run),
            input_options=(given["id_column"], given["id_kind"], given["sheet"]),
            ask=_ask(assume_yes),
            notify=_notify,
            tenants_at_once=given["tenants_at_once"],
            stop_on_failure=given["all_or_nothing"],
            authority_host=_authority_host(given),
        )

    _execute(command_name, mode, job)


def continue_campaign(
    command_name: str,
    mode: Mode,
    given: Given,
    folder: Path,
    *,
    how: str,
    assume_yes: bool = False,
    retry_failed: bool = False,
    plan_max_age: float = 86400.0,
    verify: tuple[float, float] | None = None,
) -> NoReturn:
    """`rotate --resume`, `rotate --plan`, `verify` or `report` on a whole campaign."""
    from batch_rotate.campaign_runs import (
        apply_campaign,
        report_campaign,
        resume_campaign,
        verify_campaign,
    )

    contexts = _contexts(given, dry_run=False)

    async def job() -> CampaignResult:
        common: dict[str, Any] = {
            "contexts": contexts,
            "notify": _notify,
            "tenants_at_once": given["tenants_at_once"]
            if "tenants_at_once" in given.values
            else 10,
            "authority_host": _authority_host(given),
        }
        if how == "resume":
            return await resume_campaign(
                folder, ask=_ask(assume_yes), retry_failed=retry_failed, **common
            )
        if how == "apply":
            return await apply_campaign(
                folder,
                reports_dir=Path(given["reports_dir"]),
                max_age_s=plan_max_age,
                ask=_ask(assume_yes),
                **common,
            )
        if how == "verify":
            assert verify is not None
            return await verify_campaign(folder, wait_s=verify[0], every_s=verify[1], **common)
        return await report_campaign(folder)

    _execute(command_name, mode, job)


def _authority_host(given: Given) -> str:
    host = given.values.get("authority_host") or ""
    if host:
        return str(host)
    from batch_rotate.settings import Cloud, endpoints_for

    cloud = Cloud(given.values.get("cloud") or Cloud.GLOBAL)
    authority = endpoints_for(cloud, "common").authority_url
    return authority.rsplit("/", 1)[0]


def _execute(
    command_name: str, mode: Mode, factory: Callable[[], Coroutine[Any, Any, CampaignResult]]
) -> NoReturn:
    import asyncio

    from batch_rotate.cli.output import closed_stdout_ok, console_logging, print_json

    with console_logging(mode):
        with exits(command_name, mode):
            result = asyncio.run(factory())
        with closed_stdout_ok():
            print_campaign(result, mode.human, quiet=mode.quiet)
        if mode.json:
            from batch_rotate.campaign_runs import campaign_document

            print_json(campaign_document(command_name, result))
    raise typer.Exit(result.exit_code)


def print_campaign(result: CampaignResult, console: Any, *, quiet: bool) -> None:
    """One line per tenant, then each failed tenant's reason and fix in full (never cut). Text
    from outside (tenant names, Graph messages) is `Text`, never markup."""
    from rich.table import Table
    from rich.text import Text

    from batch_rotate.cli.console import err
    from batch_rotate.commandline import relative
    from batch_rotate.exitcodes import EXIT_MEANINGS
    from batch_rotate.textsafe import safe_text

    def line(text: str) -> None:
        err.print(text, highlight=False, markup=False)

    campaign = result.campaign
    if not quiet:
        table = Table("Tenant", "Tenant ID", "Pre-flight", "Devices", "Exit")
        table.columns[1].overflow = "fold"  # an id is never cut
        for outcome in campaign.outcomes:
            run = result.results.get(outcome.entry.tenant)
            counts = ""
            if run is not None:
                counts = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items()) if v)
                if run.verification_counts:
                    counts += "; " + ", ".join(
                        f"{k} {v}" for k, v in sorted(run.verification_counts.items())
                    )
            table.add_row(
                *(
                    Text(safe_text(cell))
                    for cell in (
                        outcome.entry.label,
                        outcome.tenant_id or outcome.entry.tenant,
                        "ok" if outcome.preflight == "ok" else "failed",
                        counts,
                        str(outcome.exit_code),
                    )
                )
            )
        console.print(table)
        for outcome in campaign.outcomes:
            if outcome.preflight != "ok" or outcome.fix:
                line(f"{outcome.entry.label}: {outcome.preflight}")
                if outcome.fix:
                    line(f"  fix: {outcome.fix}")
    for message in result.messages:
        line(message)
    line(f"campaign {relative(campaign.folder)}")
    if result.next_command:
        if result.exit_code == 130:
            line(f"interrupted: resume with  {result.next_command}")
        line(f"next: {result.next_command}")
    meaning = EXIT_MEANINGS.get(result.exit_code, "")
    if meaning and not quiet:
        line(f"exit {result.exit_code}: {meaning}")
