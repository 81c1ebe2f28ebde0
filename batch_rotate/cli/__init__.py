"""Command line, thin: options are parsed into typed values and checked here, before the input is
read or anything goes on the network; the run layer does the work; one handler maps errors to exits.

Only Typer and the option modules load at start: `--help`, `--version` and completion stay fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from batch_rotate import __version__
from batch_rotate.cli import commands
from batch_rotate.cli.groups import OUTPUT
from batch_rotate.cli.helptext import (
    APP_EXAMPLES,
    PLAN_EXAMPLES,
    REPORT_EXAMPLES,
    ROTATE_EXAMPLES,
    SELECT_EXAMPLES,
    VERIFY_EXAMPLES,
    Command,
    Group,
)
from batch_rotate.cli.listing import RUNS_EXAMPLES, report_command, runs_command
from batch_rotate.cli.pacing import ENVIRONMENT_HELP
from batch_rotate.cli.selecting import select_command
from batch_rotate.cli.sweeping import SWEEP_EXAMPLES, sweep_command
from batch_rotate.exitcodes import EXIT_MEANINGS

EXIT_CODES_HELP = "Exit codes: " + "; ".join(
    f"{code} {text}" for code, text in EXIT_MEANINGS.items()
)

app = typer.Typer(
    cls=Group,
    help="Rotate BitLocker recovery keys of Intune-managed Windows devices through Microsoft "
    f"Graph $batch, with a per-device report. {EXIT_CODES_HELP}.",
    pretty_exceptions_show_locals=False,  # locals would hold secrets
    no_args_is_help=True,
    add_completion=True,
    epilog=APP_EXAMPLES,
)


def _print_version() -> None:
    import contextlib

    with contextlib.suppress(BrokenPipeError):  # `| head -c0` is not a failure
        print(f"batch-rotate {__version__}", flush=True)


def _version_flag(value: bool) -> None:
    if value:
        _print_version()
        raise typer.Exit(0)


def _main(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_flag, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    **global_options: object,
) -> None:
    """Rotate BitLocker recovery keys of Intune-managed Windows devices through Microsoft Graph."""
    # Kept for the command: a global option given before it counts as typed (`cli/groups.py`).
    ctx.ensure_object(dict)["globals"] = {
        name: (value, getattr(ctx.get_parameter_source(name), "name", ""))
        for name, value in global_options.items()
    }


def _with_globals() -> None:
    """The group callback takes the Output group too, so `batch-rotate -q rotate ...` works."""
    import inspect

    own = list(inspect.signature(_main, eval_str=True).parameters.values())[:2]
    params = [*own, *OUTPUT]
    _main.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    _main.__annotations__ = {p.name: p.annotation for p in params}


_with_globals()
app.callback()(_main)


def _register() -> None:
    for name, func, epilog in (
        ("rotate", commands.rotate, ROTATE_EXAMPLES),
        ("plan", commands.plan, PLAN_EXAMPLES),
        ("verify", commands.verify, VERIFY_EXAMPLES),
        ("report", report_command, REPORT_EXAMPLES),
        ("runs", runs_command, RUNS_EXAMPLES),
        ("select", select_command, SELECT_EXAMPLES),
        ("sweep", sweep_command, SWEEP_EXAMPLES),
    ):
        short = (func.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        if name in ("rotate", "plan", "verify", "select", "sweep"):  # they sign in
            epilog = f"{epilog}\n\n{ENVIRONMENT_HELP}"
        app.command(name=name, cls=Command, epilog=epilog, short_help=short)(func)


_register()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def simulate(ctx: typer.Context) -> None:
    """Run the simulated tenant: the same as `python -m batch_rotate.sim` (see its --help)."""
    # A pointer, not a second copy: the product never imports the simulator.
    os.execv(sys.executable, [sys.executable, "-m", "batch_rotate.sim", *ctx.args])  # noqa: S606


@app.command(cls=Command)
def version() -> None:
    """Print the version (the same as --version)."""
    _print_version()


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()
