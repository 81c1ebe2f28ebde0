"""The run folder's two followable streams: `events.jsonl` (one JSON line per rotate answer, for
SIEMs and scripts) and `run.log` (the human story of the run). Both owner-only (0600), appended.

The event schema is `batch_rotate/schemas/event.schema.json`; bump EVENT_SCHEMA_VERSION on change.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from batch_rotate.journal_schema import utc_now
from batch_rotate.models import Outcome, Status, Target
from batch_rotate.textsafe import SafeFormatter, safe_json

EVENTS_NAME = "events.jsonl"
LOG_NAME = "run.log"
EVENT_SCHEMA_VERSION = 1
log = logging.getLogger("batch_rotate")
_current_run: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "batch_rotate_run", default=None
)


def _open_private(path: Path) -> IO[str]:
    """Append to `path`, creating it 0600 (it names devices and the tenant's request ids)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if os.name != "nt":  # Windows: no fchmod before Python 3.13; the folder's ACL applies
        os.fchmod(fd, 0o600)  # an older file, or a umask that widened it
    return os.fdopen(fd, "a", encoding="utf-8", newline="\n")


def reason_code(outcome: Outcome) -> str:
    """A short, stable code a script can switch on (the words stay in `reason`)."""
    if outcome.status is Status.QUEUED:
        return "accepted"
    if outcome.status is Status.PENDING:
        return "retry"
    if outcome.error_code:
        return outcome.error_code
    return f"http_{outcome.http_status}" if outcome.http_status else "no_answer"


def event_record(
    run_id: str, outcome: Outcome, target: Target | None, tenant_id: str = ""
) -> dict[str, Any]:
    """One line of events.jsonl (see event.schema.json); the tenant is on every record, so a
    SIEM that takes a campaign's many runs tells them apart."""
    return {
        "schema_version": EVENT_SCHEMA_VERSION,
        "event": "rotate",
        "run_id": run_id,
        "tenant_id": tenant_id,
        "row": outcome.row,
        "intune_device_id": target.device_id if target else "",
        "entra_device_id": target.entra_device_id if target else "",
        "device_name": target.name if target else "",
        "status": outcome.status.value,
        "final": outcome.status is not Status.PENDING,
        "reason_code": reason_code(outcome),
        "reason": outcome.reason,
        "http_status": outcome.http_status,
        "error_code": outcome.error_code,
        "request_id": outcome.request_id,
        "client_request_id": outcome.client_request_id,
        "local_time": utc_now(),
        "tenant_time": outcome.answered_at or None,
    }


class EventWriter:
    """Appends one line per outcome; flushed per batch so `tail -f` sees each answer."""

    def __init__(self, run_dir: Path, targets: Mapping[int, Target], tenant_id: str = "") -> None:
        self.run_id = run_dir.name
        self.targets = targets
        self.tenant_id = tenant_id
        self._file = _open_private(run_dir / EVENTS_NAME)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __call__(self, outcomes: Sequence[Outcome]) -> None:
        lines = []
        for outcome in outcomes:
            record = event_record(
                self.run_id, outcome, self.targets.get(outcome.row), self.tenant_id
            )
            lines.append(safe_json(record, separators=(",", ":")) + "\n")  # no raw bidi/C1
            log.debug(
                "row %s %s: %s %s (request-id %s)",
                outcome.row,
                record["device_name"] or record["intune_device_id"],
                outcome.status.value,
                outcome.http_status,
                outcome.request_id,
            )
        self._file.write("".join(lines))
        self._file.flush()


def claim_run_log(run_dir: Path) -> None:
    """This task works on `run_dir` from now on, before its run.log is open: a campaign's lane
    (its own task) claims its tenant's run so no other tenant's run.log takes its lines."""
    _current_run.set(run_dir)


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    """Copy the package's log lines to `run.log` while a command works on this run.

    INFO by default; DEBUG (with the redacted HTTP lines) when the CLI enabled it.
    """
    level = logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.INFO
    previous = log.level
    if not log.isEnabledFor(logging.INFO):  # used as a library: the file still gets INFO
        log.setLevel(logging.INFO)
    handler = logging.StreamHandler(_open_private(run_dir / LOG_NAME))
    handler.setLevel(level)
    formatter = SafeFormatter(  # a device name's ESC, newline or U+202E: escaped, visible
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    # A campaign runs many tenants' runs in one loop: each run's file takes only the lines of the
    # task working on it (a task's context is its own; logging calls run in the caller's task).
    mine = _current_run.set(run_dir)
    handler.addFilter(lambda _record: _current_run.get() in (run_dir, None))
    log.addHandler(handler)
    try:
        yield
    except Exception as exc:
        # For run.log only: the command line prints the error itself, once.
        log.error("%s", exc, extra={"shown_later": True})
        raise
    finally:
        _current_run.reset(mine)
        log.removeHandler(handler)
        log.setLevel(previous)
        handler.stream.close()
