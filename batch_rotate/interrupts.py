"""Ctrl-C, SIGTERM and SIGHUP for a whole command: the first stops sending cleanly, a second
leaves at once with the journal consistent, and a signal while the report is written removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from batch_rotate.commandline import command, relative
from batch_rotate.errors import BatchRotateError
from batch_rotate.exitcodes import EXIT_INTERRUPTED
from batch_rotate.graph.signin import abandon_device_code_waits
from batch_rotate.runs import discard_reports


class Interrupted(BatchRotateError):
    """Ctrl-C while the report was written: the run stops at once (the journal is consistent)."""

    exit_code = EXIT_INTERRUPTED


T = TypeVar("T")
# A closed terminal or SSH session (SIGHUP) stops a run as SIGTERM does; Windows has no SIGHUP.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupts:
    """Ctrl-C and SIGTERM for a whole command, whatever phase it is in.

    First signal: `stop` is set (sending and verification stop after the batches in flight) and
    a phase that cannot stop itself (resolution) is cancelled; the run then ends normally, with
    its report. A second signal leaves at once; the journal is consistent, a report that no
    longer matches it is removed, and the resume command is printed. While the report is being
    written any signal stops the writing at once (see `rendering`).
    """

    def __init__(self, notify: Callable[[str], None], stop: asyncio.Event | None = None) -> None:
        self.notify = notify
        self.stop = stop or asyncio.Event()
        self.hint = ""  # the command that continues the run, printed when leaving at once
        self.run_dir: Path | None = None
        self._loop = asyncio.get_running_loop()
        self._phase: asyncio.Future[Any] | None = None
        self._raising = False
        self._signals = 0
        self._saved: dict[int, Any] = {}
        # A campaign (campaign.py): one parent takes the signals for every tenant's run.
        self._children: list[Interrupts] = []
        self._parent: Interrupts | None = None

    def child(self, notify: Callable[[str], None]) -> Interrupts:
        """The interrupts of one of many runs in this command (a campaign's tenants): they share
        the stop, the parent alone takes the signals, and a first signal cancels every run's
        phase. Use the child without entering it."""
        kid = Interrupts(notify, self.stop)
        kid._parent = self
        self._children.append(kid)
        return kid

    def __enter__(self) -> Interrupts:
        abandon_device_code_waits(False)  # a new command: a device code may be waited for
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._saved[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._raising or any(kid._raising for kid in self._children):
            raise KeyboardInterrupt  # see `raising`: synchronous code that must stop at once
        if self._signals == 1 and not self.stop.is_set():
            self._loop.call_soon_threadsafe(self._first)
            return
        self._leave()

    def _first(self) -> None:
        if self.stop.is_set():
            return
        self.notify("interrupt: finishing the batches in flight, then writing the report ...")
        self.stop.set()
        abandon_device_code_waits()  # a sign-in waiting for the operator stops too
        for each in (self, *self._children):
            if each._phase is not None and not each._phase.done():
                each._phase.cancel()

    def _leave(self) -> None:
        """The second signal: out now. Only async-signal-safe-ish work: no console locks."""
        removed = discard_reports(self.run_dir) if self.run_dir is not None else False
        for kid in self._children:
            if kid.run_dir is not None:
                discard_reports(kid.run_dir)
        lines = ["second interrupt: leaving now; the journal is consistent"]
        if removed:
            lines.append(
                f"the report no longer matched the journal and was removed; render it with "
                f"`{command('report', relative(self.run_dir))}`"  # type: ignore[arg-type]
            )
        if self.hint:
            lines.append(f"interrupted: resume with  {self.hint}")
        with contextlib.suppress(OSError):
            os.write(2, ("\n".join(lines) + "\n").encode())
        os._exit(EXIT_INTERRUPTED)

    async def cancellable(self, coro: Coroutine[Any, Any, T]) -> T | None:
        """Run a phase the first signal cancels; None when it was cancelled that way."""
        task = asyncio.ensure_future(coro)
        self._phase = task
        if self.stop.is_set():
            task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled() and self.stop.is_set():
                return None
            raise
        finally:
            self._phase = None

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """Synchronous work the loop cannot interrupt (a prompt): a signal raises at once."""
        saved, self._raising = self._raising, True
        try:
            yield
        finally:
            self._raising = saved

    @contextlib.contextmanager
    def rendering(self) -> Iterator[None]:
        """Writing the report: a signal stops it at once, the partial and stale files go, and
        the operator still gets the resume command (exit 130)."""
        try:
            with self.raising():
                yield
        except KeyboardInterrupt:
            if self.run_dir is not None:
                discard_reports(self.run_dir)
            where = (
                command("report", relative(self.run_dir))
                if self.run_dir is not None
                else "batch-rotate report RUN"
            )
            text = (
                "interrupted while writing the report: it was removed rather than left "
                f"half-written or stale; the journal is consistent. Render it with "
                f"`{where}`"
            )
            if self.hint:
                text += f"; resume with  {self.hint}"
            raise Interrupted(text) from None


@contextlib.contextmanager
def interrupt_handler(stop: asyncio.Event, notify: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C: stop sending and finish cleanly. Second: leave at once (journal is safe)."""
    with Interrupts(notify, stop):
        yield
