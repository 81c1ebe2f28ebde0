"""How much the console says (--quiet, --verbose, --debug), and --json: one document on stdout.

With --json every human line goes to stderr, so `batch-rotate rotate … --json | jq` always reads
exactly one JSON document. The schema is batch_rotate/schemas/result.schema.json.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from batch_rotate.cli.console import err, out
from batch_rotate.events import EVENTS_NAME, LOG_NAME
from batch_rotate.run import EXIT_MEANINGS, RunResult
from batch_rotate.textsafe import safe_json

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Mode:
    """The output options of one command."""

    json: bool = False
    quiet: bool = False
    verbose: bool = False
    debug: bool = False

    @property
    def human(self) -> Console:
        """Where the summary goes: stdout, unless stdout is reserved for JSON."""
        return err if self.json else out


class _ConsoleHandler(logging.Handler):
    """Log records as plain lines on stderr; warnings the summary shows later are left to it."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "shown_later", False):
            return
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            text = f"error: {text}"
        elif record.levelno >= logging.WARNING:
            text = f"warning: {text}"
        elif record.levelno <= logging.DEBUG:
            text = f"debug: {text}"
        err.print(text, highlight=False, markup=False)


@contextlib.contextmanager
def console_logging(mode: Mode) -> Iterator[None]:
    """The package's log on stderr at the level the options ask for (run.log has its own)."""
    root, graph = logging.getLogger("batch_rotate"), logging.getLogger("batch_rotate.graph")
    saved = (root.level, graph.level, root.propagate)
    handler = _ConsoleHandler()
    handler.setLevel(
        logging.WARNING
        if mode.quiet
        else logging.DEBUG
        if mode.verbose or mode.debug
        else logging.INFO
    )
    root.setLevel(logging.DEBUG if mode.verbose or mode.debug else logging.INFO)
    graph.setLevel(logging.DEBUG if mode.debug else logging.INFO)  # HTTP lines only with --debug
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        graph.setLevel(saved[1])


@contextlib.contextmanager
def closed_stdout_ok() -> Iterator[None]:
    """A reader that stopped reading (`| head -1`) is not a failure of the run.

    As the Python docs advise for SIGPIPE: point stdout at devnull so the interpreter's final
    flush cannot fail either; the command's own exit code stands.
    """
    try:
        yield
    except OSError as exc:
        if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
            raise
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


def document(command: str, result: RunResult) -> dict[str, Any]:
    """The --json document of a finished command (result.schema.json)."""
    reports: dict[str, str | None] = {"xlsx": None, "csv": None}
    if result.reports is not None:
        reports = {"xlsx": str(result.reports.xlsx), "csv": str(result.reports.csv)}
    events, log = result.run_dir / EVENTS_NAME, result.run_dir / LOG_NAME
    reports["events"] = str(events) if events.is_file() else None
    reports["log"] = str(log) if log.is_file() else None
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "command": command,
        "run_id": result.run_dir.name,
        "run_dir": str(result.run_dir),
        "tenant_id": result.tenant_id,
        "state": result.state,
        "counts": dict(sorted(result.counts.items())),
        "total": sum(result.counts.values()),
        "verification": dict(sorted(result.verification_counts.items())),
        "reports": reports,
        "resolution": result.resolve_report.describe() if result.resolve_report else None,
        "warnings": list(result.warnings),
        "messages": list(result.messages),
        "next_command": result.next_command or None,
        "exit_code": result.exit_code,
        "exit_meaning": EXIT_MEANINGS.get(result.exit_code, ""),
        "error": None,
    }


def error_document(command: str, exit_code: int, message: str) -> dict[str, Any]:
    """The --json document when a command stops before it has a run result."""
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "command": command,
        "run_id": None,
        "run_dir": None,
        "tenant_id": None,
        "state": "error",
        "counts": {},
        "total": 0,
        "verification": {},
        "reports": {"xlsx": None, "csv": None, "events": None, "log": None},
        "resolution": None,
        "warnings": [],
        "messages": [],
        "next_command": None,
        "exit_code": exit_code,
        "exit_meaning": EXIT_MEANINGS.get(exit_code, ""),
        "error": message,
    }


def print_json(doc: dict[str, Any]) -> None:
    with closed_stdout_ok():
        sys.stdout.write(safe_json(doc, indent=2) + "\n")  # controls and bidi as \uXXXX
        sys.stdout.flush()
