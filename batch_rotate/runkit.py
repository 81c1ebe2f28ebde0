"""The run layer's shared parts: what a command returns, exit codes, and the edges every stage
shares (Graph errors to exit codes, Ctrl-C, the endpoints a later command reuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from batch_rotate.errors import AuthError, BatchRotateError, GraphError, InputError
from batch_rotate.graph import errors as graph_layer
from batch_rotate.graph.client import GraphClient
from batch_rotate.graph.lane import Lane, lane
from batch_rotate.graph.pacer import Budget, SystemClock
from batch_rotate.graph.proxy import is_redacted
from batch_rotate.graph.session import Needs, graph_session
from batch_rotate.journal import Journal
from batch_rotate.models import IdKind, Status
from batch_rotate.report import ReportPaths
from batch_rotate.resolve import ResolveReport
from batch_rotate.runs import discard_reports, render
from batch_rotate.settings import Credentials, Endpoints, Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CRASH = 70  # sysexits' EX_SOFTWARE: never a device's failure (1), always a bug to report
EXIT_MEANINGS = {
    EXIT_OK: "every targeted device succeeded",
    EXIT_FAILED: "some devices failed or were not sent; see the report",
    EXIT_USAGE: "bad input or usage, a guard, or no confirmation; nothing more was sent",
    EXIT_AUTH: "sign-in failed, a permission is missing, or Graph was unreachable",
    EXIT_INTERRUPTED: "interrupted; the journal is saved, resume the run",
    EXIT_CRASH: "unexpected internal error; the traceback is in crash.log, please report it",
}


@dataclass(frozen=True)
class InputOptions:
    path: Path
    id_column: str | None = None
    id_kind: IdKind | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class ConfirmRequest:
    """What the user is asked to approve before the first write."""

    tenant_id: str
    graph_url: str
    count: int
    examples: list[str]
    warnings: tuple[str, ...] = ()  # what the guards held back or flagged


@dataclass
class RunResult:
    run_dir: Path
    counts: dict[str, int]
    exit_code: int
    reports: ReportPaths | None = None
    resolve_report: ResolveReport | None = None
    interrupted: bool = False
    messages: list[str] = field(default_factory=list)
    tenant_id: str = ""
    state: str = ""  # the journal's run state: plan, finished, interrupted, refused, ...
    verification_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    next_command: str = ""  # what the operator should run next, as they would type it


def settings_lane(budget: Budget, settings: Settings) -> Lane:
    """The pacing lane for a budget (parsed and checked by settings)."""
    return lane(
        budget, clock=SystemClock(), retry_delay_s=settings.retry_delay_s, seed=settings.seed
    )


@contextlib.asynccontextmanager
async def signed_in(
    credentials: Credentials,
    settings: Settings,
    *,
    endpoints: Endpoints | None = None,
    needs: Needs | None = None,
    also: Sequence[Needs] = (),
) -> AsyncIterator[GraphClient]:
    """`graph_session` with the command's timeout and outage bound, so no stage forgets one."""
    async with graph_session(
        credentials,
        endpoints or settings.endpoints,
        needs=needs,
        timeout_s=settings.timeout_s,
        outage_s=settings.outage_s,
        also=also,
    ) as graph:
        yield graph


@contextlib.contextmanager
def graph_errors() -> Iterator[None]:
    """The one place the Graph layer's errors become the application's (and exit codes)."""
    try:
        yield
    except graph_layer.ConfigError as exc:
        raise InputError(str(exc)) from None
    except graph_layer.SignInError as exc:
        raise AuthError(str(exc)) from None
    except graph_layer.GraphLayerError as exc:  # ServiceError, TransportError
        raise GraphError(str(exc)) from None


def exit_code_for(counts: dict[str, int], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    bad = sum(counts.get(s, 0) for s in (Status.FAILED, Status.UNCERTAIN, Status.NOT_SENT))
    return EXIT_FAILED if bad else EXIT_OK


class Interrupted(BatchRotateError):
    """Ctrl-C while the report was written: the run stops at once (the journal is consistent)."""

    exit_code = EXIT_INTERRUPTED


T = TypeVar("T")


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

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._raising:
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
        if self._phase is not None and not self._phase.done():
            self._phase.cancel()

    def _leave(self) -> None:
        """The second signal: out now. Only async-signal-safe-ish work: no console locks."""
        removed = discard_reports(self.run_dir) if self.run_dir is not None else False
        lines = ["second interrupt: leaving now; the journal is consistent"]
        if removed:
            lines.append(
                f"the report no longer matched the journal and was removed; render it with "
                f"`batch-rotate report {shown_path(self.run_dir)}`"  # type: ignore[arg-type]
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
            where = shown_path(self.run_dir) if self.run_dir is not None else "RUN"
            text = (
                "interrupted while writing the report: it was removed rather than left "
                f"half-written or stale; the journal is consistent. Render it with "
                f"`batch-rotate report {where}`"
            )
            if self.hint:
                text += f"; resume with  {self.hint}"
            raise Interrupted(text) from None


@contextlib.contextmanager
def interrupt_handler(stop: asyncio.Event, notify: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C: stop sending and finish cleanly. Second: leave at once (journal is safe)."""
    with Interrupts(notify, stop):
        yield


def rate(count: int, unit: str, seconds: float) -> str:
    """A phase's own pace, so no phase's speed is averaged into another's."""
    return f"{count} {unit} in {seconds:.1f} s ({count / max(seconds, 1e-3):.1f}/s)"


def shown_path(run_dir: Path) -> str:
    """The run folder as the operator would type it: relative to here when it is below here."""
    with contextlib.suppress(ValueError):
        return str(run_dir.resolve().relative_to(Path.cwd().resolve()))
    return str(run_dir)


def finish(
    result: RunResult, journal: Journal, run_dir: Path, interrupts: Interrupts | None = None
) -> RunResult:
    """Render the reports and fill in what every command's summary (and --json) shows."""
    with interrupts.rendering() if interrupts is not None else contextlib.nullcontext():
        result.reports, result.counts = render(run_dir)
    meta = journal.meta()
    result.tenant_id = meta.get("tenant_id", "")
    result.state = meta.get("state", "")
    result.verification_counts = journal.verification_counts()
    return result


def recorded_endpoints(meta: dict[str, str], settings: Settings) -> Endpoints:
    """A later command on a run talks to the tenant, cloud, trust and proxy the run was made with.

    So `rotate --resume RUN` and `verify RUN` work exactly as printed; a CA bundle or proxy given
    on the later command overrides the recorded one.
    """
    ca_bundle = settings.endpoints.ca_bundle
    recorded = meta.get("ca_bundle", "")
    if ca_bundle is None and recorded:
        ca_bundle = Path(recorded)
        if not ca_bundle.is_file():
            raise InputError(
                f"the run was made trusting the CA bundle {recorded}, which no longer exists; "
                "give the CA again with --ca-bundle PATH"
            )
    proxy = settings.endpoints.proxy
    recorded_proxy = meta.get("proxy", "")
    if proxy is None and recorded_proxy:
        if is_redacted(recorded_proxy):
            raise InputError(
                f"the run was made through the proxy {recorded_proxy}, whose user and password "
                "are never recorded; give it again with --proxy URL"
            )
        proxy = recorded_proxy
    return Endpoints(
        meta.get("authority_url", settings.endpoints.authority_url),
        meta.get("graph_url", settings.endpoints.graph_url),
        meta.get("scope", settings.endpoints.scope),
        ca_bundle,
        proxy,
    )
