"""Progress while a run resolves and rotates: a rich bar on a terminal, a plain line otherwise."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from batch_rotate.cli.console import err

if TYPE_CHECKING:
    from batch_rotate.graph.runner import RunnerStats


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
