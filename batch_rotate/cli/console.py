"""What the operator sees: the consoles (every line escaped), the confirmation prompt and the run
summary. The progress bar is `cli/progress.py`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batch_rotate.errors import InputError
from batch_rotate.exitcodes import EXIT_INTERRUPTED
from batch_rotate.present import plural

if TYPE_CHECKING:
    from batch_rotate.runkit import ConfirmRequest, RunResult
from batch_rotate.textsafe import safe_text


class _Console(Console):
    def print(self, *objects: Any, **kwargs: Any) -> None:
        """The edge every line passes: no control or bidi character of a device name, file name
        or Graph message reaches the terminal (issue 19). One object is one line: a line break
        of our own is `sep`; `:name:` is never turned into an emoji."""
        kwargs.setdefault("emoji", False)
        super().print(*(safe_text(o) if isinstance(o, str) else o for o in objects), **kwargs)

    def on_broken_pipe(self) -> None:
        """A reader that went away (`| head -1`) is not a failure: rich would exit 1 here.

        Later output is dropped, and stdout points at devnull so the interpreter's final flush
        cannot fail either (the Python docs' advice on SIGPIPE); the exit code stays the run's.
        """
        self.quiet = True
        if not self.stderr:
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())


err = _Console(stderr=True, soft_wrap=True)
out = _Console()


def confirm_prompt(assume_yes: bool) -> Callable[[ConfirmRequest], bool]:
    def confirm(request: ConfirmRequest) -> bool:
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            raise InputError(
                f"about to rotate {plural(request.count, 'device')} in tenant {request.tenant_id}, "
                "but there is no terminal to confirm on; run `batch-rotate plan` to review, then "
                "add --yes"
            )
        for line in prompt_lines(request):
            err.print(line, highlight=False)
        try:
            return typer.confirm("Send the rotate requests now?", default=False, err=True)
        except typer.Abort:  # Ctrl-C (or end of input) at the prompt: a no
            err.print("")
            return False

    return confirm


def prompt_lines(request: ConfirmRequest) -> list[Text]:
    """The lines above the question. Styled `Text`, never markup: text from outside can neither
    open a tag nor carry a control or bidi character (`safe_text`)."""

    def shown(text: object, style: str = "") -> tuple[str, str]:
        return safe_text(str(text)), style

    lines = [
        Text(),
        Text.assemble(
            ("Tenant", "bold"),
            " ",
            shown(request.tenant_id),
            "  (",
            shown(request.graph_url, "dim"),
            ")",
        ),
        Text.assemble(("Devices to rotate:", "bold"), f" {request.count}"),
        *(Text.assemble("  • ", shown(example)) for example in request.examples),
    ]
    if request.count > len(request.examples) and request.examples:
        lines.append(Text(f"  … and {request.count - len(request.examples)} more"))
    lines += (
        Text.assemble(("warning:", "bold yellow"), " ", shown(warning))
        for warning in request.warnings
    )
    return lines


def print_summary(result: RunResult, console: Console = out, *, quiet: bool = False) -> None:
    """The table, the reports, the warnings that matter and the next command to run.

    Quiet hides the table and the report paths, never the run, the next command or an error."""
    if quiet:
        err.print(f"run {result.run_dir.name}", highlight=False, markup=False)
    else:
        console.print(f"run {result.run_dir.name}", highlight=False, markup=False)
        table = Table(show_edge=False)
        table.add_column("status")
        table.add_column("rows", justify="right")
        for status, count in sorted(result.counts.items(), key=lambda kv: -kv[1]):
            table.add_row(status, str(count))
        table.add_row("[bold]total", f"[bold]{sum(result.counts.values())}")
        console.print(table)
        if result.resolve_report is not None:
            console.print(
                f"resolution: {result.resolve_report.describe()}", highlight=False, markup=False
            )
        if result.reports is not None:
            console.print(
                f"report: {result.reports.xlsx}",
                f"        {result.reports.csv}",
                sep="\n",
                highlight=False,
                markup=False,
            )
    for warning in result.warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False)
    for message in result.messages:
        err.print(message, highlight=False, markup=False)
    if not result.next_command:
        return
    if result.exit_code == EXIT_INTERRUPTED:
        err.print(f"interrupted: resume with  {result.next_command}", highlight=False, markup=False)
    elif (
        result.next_command.startswith("batch-rotate verify")
        and "--wait" not in result.next_command
        and not quiet
    ):
        err.print(
            f"next: {result.next_command}",
            "      in a few hours, once devices have checked in (most do within 8 h); add "
            "--wait 4h --every 10m to keep checking",
            sep="\n",
            highlight=False,
            markup=False,
        )
    else:
        err.print(f"next: {result.next_command}", highlight=False, markup=False)
