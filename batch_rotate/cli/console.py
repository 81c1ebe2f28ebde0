"""What the operator sees: the confirmation prompt, the progress bar and the run summary."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from batch_rotate.errors import InputError
from batch_rotate.present import plural
from batch_rotate.run import EXIT_INTERRUPTED, ConfirmRequest, RunnerStats, RunResult
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


class ProgressView:
    """A rich bar on a terminal; a plain line every `every_s` seconds otherwise."""

    def __init__(self, every_s: float = 10.0, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = err.is_terminal
        self.every_s = every_s
        self.last = 0.0
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.resolve_bar: Progress | None = None
        self.resolve_task: TaskID | None = None
        self.last_resolving = -every_s  # the first line at once: resolution has started

    def __enter__(self) -> ProgressView:
        return self

    def _start_bar(self) -> Progress:
        # Started on the first answer, so the confirmation prompt has the terminal to itself.
        if self.bar is None:
            self.bar = Progress(
                TextColumn("[bold]rotating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f} answered/s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[state]}"),
                console=err,
                transient=True,
            )
            self.bar.__enter__()
        return self.bar

    def __exit__(self, *exc: object) -> None:
        self._end_resolving()
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def resolving(self, what: str, done: int, total: int | None) -> None:
        """Resolution's progress: pages listed or lookups answered (the plan has no bar yet)."""
        if not self.enabled:
            return
        if self.tty:
            if self.resolve_bar is None:
                self.resolve_bar = Progress(
                    TextColumn("[bold]resolving"),
                    BarColumn(),
                    MofNCompleteColumn() if total else TextColumn("{task.completed}"),
                    TextColumn("{task.description}"),
                    console=err,
                    transient=True,
                )
                self.resolve_bar.__enter__()
                self.resolve_task = self.resolve_bar.add_task(what, total=total)
            assert self.resolve_task is not None
            self.resolve_bar.update(
                self.resolve_task, completed=done, total=total, description=what
            )
            if total is not None and done >= total:
                self._end_resolving()
        elif time.monotonic() - self.last_resolving >= self.every_s or done == total:
            self.last_resolving = time.monotonic()
            shown = f"{done}/{total}" if total else str(done)
            err.print(f"resolving: {what}: {shown}", highlight=False)

    def _end_resolving(self) -> None:
        if self.resolve_bar is not None:
            self.resolve_bar.__exit__(None, None, None)
            self.resolve_bar, self.resolve_task = None, None

    def __call__(self, stats: RunnerStats, total: int) -> None:
        if not self.enabled:
            return
        self._end_resolving()
        done = stats.succeeded + stats.failed
        # The rotation phase only: the runner started its clock when sending began.
        elapsed = max(time.monotonic() - stats.started, 1.0)  # no first-batch burst rate
        rate = done / elapsed
        state = (
            f"pacing {stats.pacing_per_s:.1f}/s, 429s {stats.throttled + stats.outer_throttled}, "
            f"retries {stats.transient}"
        )
        if stats.paused_s > 0:
            state += f", paused {stats.paused_s:.0f} s (Retry-After)"
        if self.tty:
            bar = self._start_bar()
            if self.task is None:
                self.task = bar.add_task("rotate", total=total, rate=0.0, state="")
            bar.update(self.task, completed=done, rate=rate, state=state)
        elif time.monotonic() - self.last >= self.every_s or done == total:
            self.last = time.monotonic()
            err.print(
                f"progress: {done}/{total} answered, {rate:.1f} answered/s, {state}",
                highlight=False,
            )


def print_summary(result: RunResult, console: Console = out, *, quiet: bool = False) -> None:
    """The table, the reports, the warnings that matter and the next command to run."""
    if not quiet:
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
    if quiet or not result.next_command:
        return
    if result.exit_code == EXIT_INTERRUPTED:
        err.print(f"interrupted: resume with  {result.next_command}", highlight=False, markup=False)
    elif result.next_command.startswith("batch-rotate verify") and "--wait" not in (
        result.next_command
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
