"""The commands that run a job: rotate, plan, verify. Each declares only its own options; the
shared groups come from `@takes`, and `cli/running.py` turns them into one run context."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batch_rotate.cli.exiting import exits
from batch_rotate.cli.groups import (
    CAMPAIGN,
    CONNECTION,
    INPUT,
    OUTPUT,
    PACING,
    SAFETY,
    SELECTION,
    SIGN_IN,
    Given,
    takes,
)
from batch_rotate.cli.options import duration_option
from batch_rotate.cli.running import (
    context_of,
    criteria_of,
    execute,
    mode_of,
    notify,
    start_job,
    with_run_record,
)
from batch_rotate.settings import KeysStrategy

RUN = "Run"
SelectFlag = Annotated[
    bool,
    typer.Option(
        "--select",
        rich_help_panel="Selection",
        help="Build the device list from the tenant with the selectors instead of INPUT.",
    ),
]
InputArg = Annotated[
    Path | None,
    typer.Argument(metavar="INPUT", help="CSV or XLSX device list.", show_default=False),
]


@takes(SIGN_IN, CONNECTION, PACING, SAFETY, INPUT, SELECTION, CAMPAIGN, OUTPUT)
def rotate(
    input_file: InputArg = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN",
            rich_help_panel=RUN,
            help="Continue the run in RUN with the choices it recorded.",
        ),
    ] = None,
    plan_run: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            metavar="RUN",
            rich_help_panel=RUN,
            help="Rotate exactly the devices the reviewed plan RUN marked would_rotate, with "
            "its choices; refused when it is too old or its INPUT changed.",
        ),
    ] = None,
    plan_max_age: Annotated[
        float, duration_option("--plan-max-age", "Oldest plan --plan accepts.", RUN)
    ] = "24h",  # type: ignore[assignment]
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            rich_help_panel=RUN,
            help="With --resume: send again the devices that failed for a transient reason "
            "(5xx, timeouts, resets, 429s; not a device's 400/403/404).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", rich_help_panel=RUN, help="Plan only: send no write.")
    ] = False,
    assume_yes: Annotated[
        bool, typer.Option("--yes", "-y", rich_help_panel=RUN, help="Do not ask to confirm.")
    ] = False,
    select_: SelectFlag = False,
    verify_wait: Annotated[
        float | None,
        duration_option("--verify-wait", "After rotating, verify for this long (e.g. 4h).", RUN),
    ] = None,
    verify_every: Annotated[
        float, duration_option("--verify-every", "Time between verification checks.", RUN)
    ] = "5m",  # type: ignore[assignment]
    *,
    given: Given,
) -> None:
    """Resolve the devices of INPUT and rotate their BitLocker recovery keys."""
    mode = mode_of("rotate", given)
    folder = campaign_folder(resume or plan_run)
    if given["tenants"] is not None or folder is not None:
        from batch_rotate.cli.campaigning import continue_campaign, start_campaign

        if folder is None:
            with exits("rotate", mode):
                if resume or plan_run:
                    raise_usage("--tenants starts a campaign: drop --resume/--plan")
                criteria = criteria_of(given, select_)
            start_campaign(
                "rotate",
                mode,
                given,
                input_file=input_file,
                criteria=criteria if select_ else None,
                dry_run=dry_run,
                assume_yes=assume_yes,
            )
        with exits("rotate", mode):
            if input_file is not None or select_ or given["tenants"] is not None:
                raise_usage(f"{folder} is a campaign: give it alone with --resume or --plan")
        continue_campaign(
            "rotate",
            mode,
            given,
            folder,
            how="resume" if resume else "apply",
            assume_yes=assume_yes,
            retry_failed=retry_failed,
            plan_max_age=plan_max_age,
        )
    with exits("rotate", mode):
        choices = (("INPUT", input_file), ("--resume", resume), ("--plan", plan_run))
        sources = [name for name, value in (*choices, ("--select", select_ or None)) if value]
        if len(sources) != 1:
            raise_usage("give one of INPUT, --resume RUN, --plan RUN or --select", sources)
        if retry_failed and resume is None:
            raise_usage("--retry-failed re-sends the failed devices of a run: add --resume RUN")
        given = with_run_record(given, resume or plan_run)
        criteria = criteria_of(given, select_)
        context = context_of(given, dry_run=dry_run, verify=(verify_wait, verify_every))
    start_job(
        command="rotate",
        mode=mode,
        context=context,
        given=given,
        input_file=input_file,
        resume=resume,
        plan=(plan_run, plan_max_age) if plan_run else None,
        criteria=criteria if select_ else None,
        assume_yes=assume_yes,
        retry_failed=retry_failed,
    )


@takes(SIGN_IN, CONNECTION, PACING, SAFETY, INPUT, SELECTION, CAMPAIGN, OUTPUT)
def plan(
    input_file: InputArg = None,
    select_: SelectFlag = False,
    *,
    given: Given,
) -> None:
    """Dry run: resolve and check every row, write the plan report, send no write."""
    mode = mode_of("plan", given)
    if given["tenants"] is not None:
        from batch_rotate.cli.campaigning import start_campaign

        with exits("plan", mode):
            if input_file is not None and select_:
                raise_usage("give a spanning INPUT or --select, not both")
            criteria = criteria_of(given, select_)
        start_campaign(
            "plan",
            mode,
            given,
            input_file=input_file,
            criteria=criteria if select_ else None,
            dry_run=True,
            assume_yes=True,
        )
    with exits("plan", mode):
        if (input_file is None) == (not select_):
            raise_usage("give INPUT or --select (with a selector), not both")
        criteria = criteria_of(given, select_)
        context = context_of(given, dry_run=True)
    start_job(
        command="plan",
        mode=mode,
        context=context,
        given=given,
        input_file=input_file,
        criteria=criteria if select_ else None,
        assume_yes=True,
    )


@takes(SIGN_IN, CONNECTION, PACING, OUTPUT)
def verify(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run folder, reports/<run-id>.")],
    wait: Annotated[
        float | None, duration_option("--wait", "Keep checking for this long, e.g. 2h.", RUN)
    ] = None,
    every: Annotated[
        float, duration_option("--every", "Time between checks, e.g. 10m.", RUN)
    ] = "5m",  # type: ignore[assignment]
    keys_strategy: Annotated[
        KeysStrategy,
        typer.Option(
            "--keys-strategy",
            rich_help_panel=RUN,
            help="How keys are read: auto (the cheaper), per-device, listing.",
        ),
    ] = KeysStrategy.AUTO,
    *,
    given: Given,
) -> None:
    """Check each queued device for its action result and a key escrowed after the request.

    Needs BitlockerKey.ReadBasic.All besides DeviceManagementManagedDevices.Read.All.
    """
    from batch_rotate.run import RunResult, verify_run

    mode = mode_of("verify", given)
    if campaign_folder(run_dir) is not None:
        from batch_rotate.cli.campaigning import continue_campaign

        continue_campaign("verify", mode, given, run_dir, how="verify", verify=(wait or 0.0, every))
    with exits("verify", mode):
        given = with_run_record(given, run_dir)
        context = context_of(given, verify=(wait or 0.0, every), keys_strategy=keys_strategy)

    async def job() -> RunResult:
        return await verify_run(
            run_dir, settings=context.settings, credentials=context.credentials, notify=notify
        )

    execute("verify", mode, job, note=context.profile_note)


def campaign_folder(path: Path | None) -> Path | None:
    """`path` when it is a campaign folder (it holds campaign.json), else None."""
    from batch_rotate.campaign_model import CAMPAIGN_FILE

    return path if path is not None and (path / CAMPAIGN_FILE).is_file() else None


def raise_usage(text: str, given: list[str] | None = None) -> None:
    from batch_rotate.errors import InputError

    raise InputError(text + (f" (given: {', '.join(given)})" if given else ""))
