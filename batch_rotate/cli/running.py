"""The commands' shared edge: the run context from the options, output modes, errors to exit
codes, and running a job with its progress, summary and --json document.

The run layer is imported inside the functions that call it, so `--help`, `--version` and shell
completion never load aiohttp, MSAL or openpyxl.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from batch_rotate.cli.exiting import exits
from batch_rotate.cli.groups import (
    CONNECTION,
    INPUT,
    PACING,
    SAFETY,
    SELECTION,
    SIGN_IN,
    Given,
)
from batch_rotate.context import RunContext, build
from batch_rotate.errors import InputError

if TYPE_CHECKING:
    from batch_rotate.cli.output import Mode
    from batch_rotate.run import RunResult
    from batch_rotate.select import Criteria

log = logging.getLogger("batch_rotate.cli")
SELECTION_NAMES = frozenset(p.name for p in SELECTION)


def mode_of(command: str, given: Given) -> Mode:
    from batch_rotate.cli.output import Mode

    mode = Mode(
        json=given["json_out"], quiet=given["quiet"], verbose=given["verbose"], debug=given["debug"]
    )
    if mode.quiet and (mode.verbose or mode.debug):
        with exits(command, mode):
            raise InputError("--quiet cannot be combined with --verbose or --debug; pick one")
    return mode


def with_run_record(given: Given, run_dir: Path | None) -> Given:
    """A command on an earlier run takes the choices that run recorded (see `Given.with_record`)."""
    if run_dir is None:
        return given
    from batch_rotate.context import recorded
    from batch_rotate.runs import run_meta

    return given.with_record(recorded(run_meta(run_dir)))


def criteria_of(given: Given, select_: bool) -> Criteria:
    from batch_rotate.select import Criteria

    criteria = Criteria(
        given["exposed_since"],
        given["read_by"],
        given["keys_older_than"],
        given["group"],
        given["all_windows"],
        given["exclude"],
    )
    if not select_:
        typed = sorted(given.explicit & SELECTION_NAMES)
        if typed:
            raise InputError(
                f"selector options need --select (or use the `select` command): {typed[0]}"
            )
        return criteria
    if not criteria.any():
        raise InputError(
            "--select needs a selector: --exposed-since, --keys-older-than, --group or "
            "--all-windows"
        )
    if criteria.read_by and criteria.exposed_since is None:
        raise InputError("--read-by narrows --exposed-since; give --exposed-since too")
    if criteria.exclude is not None and not criteria.exclude.is_file():
        raise InputError(f"--exclude {criteria.exclude}: no such file")
    return criteria


def context_of(
    given: Given,
    *,
    dry_run: bool = False,
    verify: tuple[float | None, float] | None = None,
    keys_strategy: Any = None,
) -> RunContext:
    """The one builder every command uses: options (with record, environment, profile) to the
    credentials, settings and the record the run keeps."""
    import dataclasses

    context = build(given.values, dry_run=dry_run, profile_note=given.profile_note)
    context = dataclasses.replace(
        context, replay=given.replay(SIGN_IN, CONNECTION, PACING, SAFETY, INPUT)
    )
    extra: dict[str, Any] = {}
    if verify is not None:
        extra.update(verify_wait_s=verify[0], verify_every_s=verify[1])
    if keys_strategy is not None:
        extra["keys_strategy"] = keys_strategy
    if extra:
        context = dataclasses.replace(
            context, settings=dataclasses.replace(context.settings, **extra)
        )
    return context


def execute(
    command: str,
    mode: Mode,
    coro_factory: Callable[[], Coroutine[Any, Any, RunResult]],
    *,
    note: str = "",
) -> None:
    import asyncio

    from batch_rotate.cli.console import print_summary
    from batch_rotate.cli.output import closed_stdout_ok, console_logging, document, print_json

    with console_logging(mode):
        if note:
            log.info("%s", note)
        with exits(command, mode):
            result = asyncio.run(coro_factory())
        with closed_stdout_ok():
            print_summary(result, mode.human, quiet=mode.quiet)
        if mode.json:
            print_json(document(command, result))
    raise typer.Exit(result.exit_code)


def notify(text: str) -> None:
    log.info(text)


def start_job(
    *,
    command: str,
    mode: Mode,
    context: RunContext,
    given: Given,
    input_file: Path | None = None,
    resume: Path | None = None,
    plan: tuple[Path, float] | None = None,
    criteria: Criteria | None = None,
    assume_yes: bool = False,
    retry_failed: bool = False,
) -> None:
    from batch_rotate.cli.console import confirm_prompt
    from batch_rotate.cli.progress import ProgressView
    from batch_rotate.run import InputOptions, PlanToApply, run_job
    from batch_rotate.select.job import select_then_run

    inputs = (
        InputOptions(input_file, given["id_column"], given["id_kind"], given["sheet"])
        if input_file is not None
        else None
    )
    confirm = confirm_prompt(assume_yes)

    async def job() -> RunResult:
        with ProgressView(enabled=not mode.quiet) as progress:
            if criteria is not None:
                return await select_then_run(
                    criteria,
                    settings=context.settings,
                    credentials=context.credentials,
                    context_meta=context.meta(),
                    argv=sys.argv,
                    confirm=confirm,
                    on_progress=progress,
                    notify=notify,
                )
            return await run_job(
                settings=context.settings,
                credentials=context.credentials,
                context_meta=context.meta(),
                inputs=inputs,
                resume_dir=resume,
                plan=PlanToApply(*plan) if plan is not None else None,
                argv=sys.argv,
                confirm=confirm,
                on_progress=progress,
                notify=notify,
                retry_failed=retry_failed,
                on_resolving=progress.resolving,
                replay=context.replay,
            )

    execute(command, mode, job, note=context.profile_note)
