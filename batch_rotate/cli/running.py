"""The commands' shared edge: credentials from options, output modes, errors to exit codes, and
running a job with its progress, summary and --json document."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import typer

from batch_rotate.cli.console import ProgressView, confirm_prompt, err, print_summary
from batch_rotate.cli.output import (
    Mode,
    closed_stdout_ok,
    console_logging,
    document,
    error_document,
    print_json,
)
from batch_rotate.errors import BatchRotateError, InputError
from batch_rotate.models import IdKind
from batch_rotate.run import EXIT_INTERRUPTED, InputOptions, RunResult, run_job
from batch_rotate.settings import Credentials, Settings

log = logging.getLogger("batch_rotate.cli")


def sign_in_from(
    tenant_id: str, client_id: str, secret: str, cert: Path | None, cert_password: str
) -> Credentials:
    missing = [
        name
        for name, value in (
            ("AZURE_TENANT_ID (--tenant-id)", tenant_id),
            ("AZURE_CLIENT_ID (--client-id)", client_id),
        )
        if not value
    ]
    if not secret and cert is None:
        missing.append("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH")
    if missing:
        raise InputError(
            "sign-in is not configured: set "
            + ", ".join(missing)
            + " (see README: 'Running against a real tenant')"
        )
    # A certificate given is the credential used (and recorded); the secret is then ignored.
    return Credentials(
        tenant_id, client_id, None if cert else secret or None, cert, cert_password or None
    )


@contextlib.contextmanager
def exits(command: str = "", mode: Mode | None = None) -> Iterator[None]:
    """The one place where the project's errors become a line on stderr and an exit code."""
    try:
        yield
    except BatchRotateError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        if mode is not None and mode.json:
            print_json(error_document(command, exc.exit_code, str(exc)))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        if mode is not None and mode.json:
            print_json(error_document(command, EXIT_INTERRUPTED, "interrupted"))
        raise typer.Exit(EXIT_INTERRUPTED) from None


def mode_of(command: str, *, json_out: bool, quiet: bool, verbose: bool, debug: bool) -> Mode:
    mode = Mode(json=json_out, quiet=quiet, verbose=verbose, debug=debug)
    if quiet and (verbose or debug):
        with exits(command, mode):
            raise InputError("--quiet cannot be combined with --verbose or --debug; pick one")
    return mode


def execute(
    command: str, mode: Mode, coro_factory: Callable[[], Coroutine[Any, Any, RunResult]]
) -> None:
    with console_logging(mode):
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
    input_file: Path | None,
    resume: Path | None,
    assume_yes: bool,
    id_column: str | None,
    id_kind: IdKind | None,
    sheet: str | None,
    credentials: Credentials,
    settings: Settings,
    command: str,
    mode: Mode,
    retry_failed: bool = False,
) -> None:
    if (input_file is None) == (resume is None):
        with exits(command, mode):
            raise InputError("give either an INPUT file or --resume reports/<run-id>, not both")
    if retry_failed and resume is None:
        with exits(command, mode):
            raise InputError(
                "--retry-failed re-sends the failed devices of a run: add --resume RUN"
            )
    inputs = InputOptions(input_file, id_column, id_kind, sheet) if input_file else None
    confirm = confirm_prompt(assume_yes)

    async def job() -> RunResult:
        with ProgressView(enabled=not mode.quiet) as progress:
            return await run_job(
                settings=settings,
                credentials=credentials,
                inputs=inputs,
                resume_dir=resume,
                argv=sys.argv,
                confirm=confirm,
                on_progress=progress,
                notify=notify,
                retry_failed=retry_failed,
                on_resolving=progress.resolving,
            )

    execute(command, mode, job)
