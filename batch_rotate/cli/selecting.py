"""The `select` command: build a reviewable device list from the tenant, with every sign-in,
connection, pacing and output option the other commands take."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from batch_rotate.cli.exiting import exits
from batch_rotate.cli.groups import (
    CONNECTION,
    OUTPUT,
    PACING,
    SELECTION,
    SIGN_IN,
    TENANTS,
    Given,
    takes,
)
from batch_rotate.cli.running import context_of, criteria_of, mode_of, notify
from batch_rotate.commandline import command, relative
from batch_rotate.errors import InputError


@takes(SIGN_IN, CONNECTION, PACING, SELECTION, TENANTS, OUTPUT)
def select_command(
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            rich_help_panel="Output",
            help="CSV to write (default: <reports-dir>/selected-<time>.csv).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", rich_help_panel="Output", help="Overwrite an existing --out."),
    ] = False,
    *,
    given: Given,
) -> None:
    """Build a reviewable device list from the tenant: keys read since a date, keys older than an
    age, an Entra group, or every Windows device. Selectors combine (intersection)."""
    import asyncio

    from batch_rotate.cli.console import err
    from batch_rotate.cli.output import closed_stdout_ok, console_logging, print_json
    from batch_rotate.select.job import select_devices

    mode = mode_of("select", given)
    if given["tenants"] is not None:
        _select_tenants(mode, given, out_path, force)
    with console_logging(mode), exits("select", mode):
        criteria = criteria_of(given, True)
        context = context_of(given)
        notify(context.profile_note)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_file = out_path or context.settings.reports_dir / f"selected-{stamp}.csv"
        _check_out(out_file, force=force, exclude=criteria.exclude)
        selection = asyncio.run(
            select_devices(
                criteria,
                settings=context.settings,
                credentials=context.credentials,
                out=out_file,
                notify=notify,
            )
        )
    count = len(selection.devices)
    # the same sign-in and connection as this select: `plan` of the list does what it did
    next_command = command("plan", relative(out_file), *given.replay(SIGN_IN, CONNECTION, PACING))
    with closed_stdout_ok():
        if mode.json:
            print_json(
                {
                    "schema_version": 1,
                    "command": "select",
                    "selected": count,
                    "out": str(out_file),
                    "criteria": criteria.describe(),
                    "next_command": next_command,
                    "exit_code": 0,
                }
            )
        if not mode.quiet:
            mode.human.print(
                f"{count} device{'' if count == 1 else 's'} selected: {out_file}",
                highlight=False,
                markup=False,
            )
        # -q never hides the next step; it goes to stderr then, as with --json
        (err if mode.quiet else mode.human).print(
            f"review it, then: {next_command}", highlight=False, markup=False, soft_wrap=True
        )


def _check_out(out_file: Path, *, force: bool, exclude: Path | None) -> None:
    """Never overwrite a file silently (least of all the --exclude list being read)."""
    if exclude is not None and out_file.resolve() == exclude.resolve():
        raise InputError(f"--out {out_file} is the --exclude list; write the selection elsewhere")
    if out_file.exists() and not force:
        raise InputError(f"--out {out_file} exists; give another file, or add --force")


def _select_tenants(mode: Any, given: Given, out_path: Path | None, force: bool) -> NoReturn:
    """`select --tenants FILE`: the selectors in every tenant, one list with a Tenant ID column;
    the printed `plan --tenants FILE LIST` plans them all."""
    import asyncio

    from batch_rotate.campaign_runs import select_campaign
    from batch_rotate.cli.campaigning import _authority_host, _contexts
    from batch_rotate.cli.console import err
    from batch_rotate.cli.output import closed_stdout_ok, console_logging, print_json

    tenants = Path(given["tenants"])
    with console_logging(mode), exits("select", mode):
        criteria = criteria_of(given, True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_file = out_path or Path(given["reports_dir"]) / f"selected-{stamp}.csv"
        _check_out(out_file, force=force, exclude=criteria.exclude)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        counts, failed = asyncio.run(
            select_campaign(
                tenants,
                criteria,
                out_file,
                contexts=_contexts(given, dry_run=True),
                notify=notify,
                tenants_at_once=given["tenants_at_once"],
                authority_host=_authority_host(given),
            )
        )
    replay = given.replay(SIGN_IN, CONNECTION, PACING)
    next_command = command("plan", "--tenants", relative(tenants), relative(out_file), *replay)
    code = 1 if failed else 0
    with closed_stdout_ok():
        if mode.json:
            print_json(
                {
                    "schema_version": 1,
                    "command": "select",
                    "selected": sum(counts.values()),
                    "by_tenant": counts,
                    "failed": failed,
                    "out": str(out_file),
                    "criteria": criteria.describe(),
                    "next_command": next_command,
                    "exit_code": code,
                }
            )
        for tenant, why in failed.items():
            err.print(f"{tenant}: {why}", highlight=False, markup=False)
        if not mode.quiet:
            mode.human.print(
                f"{sum(counts.values())} devices selected in {len(counts)} tenants: {out_file}",
                highlight=False,
                markup=False,
            )
        (err if mode.quiet else mode.human).print(
            f"review it, then: {next_command}", highlight=False, markup=False, soft_wrap=True
        )
    raise typer.Exit(code)
