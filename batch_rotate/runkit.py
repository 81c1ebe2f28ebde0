"""The run layer's shared parts: what a command returns and how it ends, and the endpoints a
later command reuses. Exit codes, Ctrl-C and Graph sign-in live in their own modules
(`exitcodes`, `interrupts`, `connect`) and are re-exported here for the stages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batch_rotate.connect import graph_errors, signed_in
from batch_rotate.exitcodes import (
    EXIT_AUTH,
    EXIT_CRASH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_USAGE,
)
from batch_rotate.interrupts import Interrupted, Interrupts, interrupt_handler
from batch_rotate.journal import Journal
from batch_rotate.models import IdKind, Status
from batch_rotate.report import ReportPaths
from batch_rotate.resolve import ResolveReport
from batch_rotate.runs import render, shown_path

__all__ = [  # the moved names stay importable from here
    "EXIT_AUTH",
    "EXIT_CRASH",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_MEANINGS",
    "EXIT_OK",
    "EXIT_PENDING",
    "EXIT_USAGE",
    "ConfirmRequest",
    "InputOptions",
    "Interrupted",
    "Interrupts",
    "RunResult",
    "exit_code_for",
    "finish",
    "graph_errors",
    "interrupt_handler",
    "rate",
    "shown_path",
    "signed_in",
]


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


def exit_code_for(counts: dict[str, int], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    bad = sum(counts.get(s, 0) for s in (Status.FAILED, Status.UNCERTAIN, Status.NOT_SENT))
    return EXIT_FAILED if bad else EXIT_OK


def verify_exit_code(verification: Mapping[str, int], interrupted: bool) -> int:
    """0 only when every device is verified; 1 when one needs a look (failed, no new key, keys
    unreadable); 75 when the rest are only pending, so a scheduler knows to retry later."""
    if interrupted:
        return EXIT_INTERRUPTED
    look = sum(n for state, n in verification.items() if state not in ("verified", "pending"))
    if look:
        return EXIT_FAILED
    return EXIT_PENDING if verification.get("pending") else EXIT_OK


def rate(count: int, unit: str, seconds: float) -> str:
    """A phase's own pace, so no phase's speed is averaged into another's."""
    return f"{count} {unit} in {seconds:.1f} s ({count / max(seconds, 1e-3):.1f}/s)"


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
