"""Run folders on disk: naming, the audit command line, earlier runs, and rendering a run's report.

Everything here reads or names a run; nothing talks to Graph.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sqlite3
import traceback
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from batch_rotate.campaign_model import CAMPAIGN_FILE
from batch_rotate.commandline import command, relative
from batch_rotate.errors import BatchRotateError, JournalError
from batch_rotate.journal import Journal, has_journal, journal_errors
from batch_rotate.models import ReportRow, RunSummary, Status
from batch_rotate.present import shown_counts, shown_rows
from batch_rotate.report import ReportPaths, write_reports
from batch_rotate.runindex import known_runs, same_tenant
from batch_rotate.runlock import HOLDER_NAME, RunLock

CRASH_NAME = "crash.log"


def new_run_dir(reports_dir: Path, input_path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in input_path.stem)[:40]
    return reports_dir / f"{stamp}-{stem}-{secrets.token_hex(2)}"


_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redacted_argv(argv: Sequence[str]) -> str:
    """The command line with secret option values replaced (for the audit trail)."""
    secret_flags = {"--client-secret", "--certificate-password"}
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg in secret_flags:
            out.append(arg)
            hide_next = True
        elif any(arg.startswith(flag + "=") for flag in secret_flags):
            out.append(arg.split("=", 1)[0] + "=***")
        else:  # a URL's user:password (a --proxy) is a secret too
            out.append(_URL_CREDENTIALS.sub(r"\1***@", arg))
    return " ".join(out)


def unfinished_runs(reports_dir: Path, sha256: str, *, tenant_id: str = "") -> list[Path]:
    """Earlier runs of the same input file (and tenant) that sent writes and did not finish.

    Every run of this user counts (the run index), and those under `reports_dir`. A plan, a
    refused guard or an unconfirmed prompt sent nothing: resuming it would only repeat the
    decision, so no hint offers it. Paths below the working folder are shown relative to it.
    """
    found = []
    for entry in reversed(known_runs(reports_dir)):  # oldest first, as the notes read
        if entry.input_sha256 is not None and entry.input_sha256 != sha256:
            continue  # the index says: another file (no journal opened)
        if entry.tenant_id is not None and not same_tenant(entry.tenant_id, tenant_id):
            continue
        run_dir = entry.run_dir
        with (
            contextlib.suppress(BatchRotateError),
            journal_errors(run_dir),
            closing(Journal.open(run_dir, write=False)) as journal,
        ):
            meta = journal.meta()
            if meta.get("input_sha256") != sha256 or "resolution" not in meta:
                continue
            if not same_tenant(meta.get("tenant_id"), tenant_id):
                continue
            if meta.get("state") in ("finished", "plan", "refused"):
                continue
            counts = journal.counts()
            if any(counts.get(s.value) for s in _SENT):
                found.append(_from_here(run_dir))
    return found


def _from_here(run_dir: Path) -> Path:
    """The run folder relative to the working folder when below it (as the operator typed it)."""
    with contextlib.suppress(ValueError, OSError):
        return run_dir.relative_to(Path.cwd().resolve())
    return run_dir


_SENT = (Status.QUEUED, Status.FAILED, Status.IN_FLIGHT)


def run_meta(run_dir: Path) -> dict[str, str]:
    """A run's meta, read without its lock (a later command reads what the run recorded)."""
    if not has_journal(run_dir):
        raise JournalError(
            f"{run_dir}: no run journal here; give a folder such as reports/<run-id>"
        )
    with journal_errors(run_dir), closing(Journal.open(run_dir, write=False)) as journal:
        return journal.meta()


def summary_of(journal: Journal, run_dir: Path) -> RunSummary:
    meta = journal.meta()
    details = {
        key: value  # raw keys: the report gives each its human label
        for key, value in meta.items()
        if key
        not in {
            "tenant_id",
            "client_id",
            "started_at",
            "ended_at",
            "input_file",
            "input_sha256",
            "schema_version",
            "listed",  # resolve.py's bookkeeping for a resumed resolution, no fact of the run
        }
    }
    return RunSummary(
        run_id=run_dir.name,
        tenant_id=meta.get("tenant_id", ""),
        client_id=meta.get("client_id", ""),
        started_at=meta.get("started_at", ""),
        ended_at=meta.get("ended_at", ""),
        input_file=meta.get("input_file", ""),
        input_sha256=meta.get("input_sha256", ""),
        counts=shown_counts(journal.counts(), dry_run=meta.get("dry_run") == "True"),
        details=details,
        verification_counts=journal.verification_counts(),
    )


def render(run_dir: Path) -> tuple[ReportPaths, dict[str, int]]:
    """(Re-)render report.xlsx and report.csv from the journal; safe while a run is going."""
    note_run_dir(run_dir)
    with journal_errors(run_dir), closing(Journal.open(run_dir, write=False)) as journal:
        summary = summary_of(journal, run_dir)
        return write_reports(run_dir, report_rows(journal), summary), summary.counts


def report_rows(journal: Journal) -> Iterator[ReportRow]:
    """The journal's rows as every report shows them (a run's, a campaign roll-up's), streamed."""
    rows = shown_rows(journal.report_rows(), dry_run=journal.meta().get("dry_run") == "True")
    retried = journal.rows_with_event(RETRIED_EVENT)
    if not retried:
        return rows
    return (
        r._replace(reason=f"{RETRIED_PREFIX} {r.reason}") if r.row in retried else r for r in rows
    )


def discard_reports(run_dir: Path) -> bool:
    """Remove the reports (and any half-written temp file): they no longer match the journal."""
    removed = False
    for pattern in ("report.xlsx", "report.csv", ".report-*.xlsx", ".report-*.csv"):
        for path in run_dir.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()
                removed = True
    return removed


# --- re-sending devices that failed for a transient reason (`--retry-failed`) -------------------
RETRIED_EVENT = "retried_after_failure"
RETRIED_PREFIX = "retried_after_failure:"
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_REASONS = ("gave up after", "still throttled after")


LOOKUP_FAILED = "lookup_failed: "


def transient_failure(http_status: int | None, reason: str) -> bool:
    """A failure that gave up on the service (5xx, 429, timeouts, resets), not the device's 4xx."""
    if http_status is not None and 400 <= http_status < 500 and http_status != 429:
        return False
    if reason.startswith("lookup_failed"):
        return False  # never resolved: there is no device to send to (see transient_lookup)
    return http_status in _TRANSIENT_STATUSES or reason.startswith(_TRANSIENT_REASONS)


def transient_lookup(reason: str) -> bool:
    """A lookup that gave up on the service: `--retry-failed` resolves the row again."""
    return reason.startswith(LOOKUP_FAILED) and transient_failure(
        None, reason.removeprefix(LOOKUP_FAILED)
    )


# --- the last-resort handler's destination ------------------------------------------------------
_current_run: list[Path] = []


def shown_path(run_dir: Path) -> str:
    """The run folder as the operator would type it: relative to here when it is below here."""
    return str(relative(run_dir))


def note_run_dir(run_dir: Path | None) -> None:
    """The run folder this command works on: an unexpected error's traceback goes there."""
    _current_run[:] = [run_dir] if run_dir is not None else []


def noted_run_dir() -> Path | None:
    return _current_run[0] if _current_run else None


def write_crash_log(exc: BaseException, folders: Sequence[Path | None]) -> Path | None:
    """Append the traceback to crash.log (0600) in the first folder that exists and takes it."""
    text = "".join(traceback.format_exception(exc))
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    for folder in folders:
        if folder is None or not folder.is_dir():
            continue
        path = folder / CRASH_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"--- {stamp}\n{text}")
            path.chmod(0o600)
        except OSError:
            continue
        return path
    return None


# --- `batch-rotate runs` ------------------------------------------------------------------------
@dataclass
class RunInfo:
    """One run folder as `runs` lists it."""

    run_id: str
    run_dir: Path
    state: str  # the journal's, or `running` (locked by a process) or `unreadable`
    input_file: str = ""
    tenant_id: str = ""
    started_at: str = ""
    ended_at: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    verification: dict[str, int] = field(default_factory=dict)
    next_command: str = ""
    detail: str = ""  # why unreadable, or who runs it
    sweep: str = ""  # the sweep that made the run (`sweep`), or ""
    campaign: str = ""  # the campaign folder it is one tenant's run of, or ""


@dataclass
class RunListing:
    """What `runs` shows: the runs, newest first, and whether --limit left matching ones out."""

    runs: list[RunInfo]
    more: bool = False


def list_runs(
    reports_dir: Path,
    shown: Callable[[Path], str] = str,
    *,
    only_under: bool = False,
    states: Collection[str] = (),
    limit: int = 0,
    sweeps_only: bool = False,
) -> RunListing:
    """Every run of this user (run index and `reports_dir`), newest first; or, `only_under`,
    those below `reports_dir`. One bad run never stops the listing: it is shown unreadable."""
    entries = known_runs(reports_dir)
    if only_under:
        root = reports_dir.resolve()
        entries = [e for e in entries if e.run_dir.is_relative_to(root)]
    listing = RunListing([])
    for entry in entries:
        info: RunInfo | None
        try:
            info = _run_info(entry.run_dir, shown(entry.run_dir), states)
        except (BatchRotateError, OSError, sqlite3.Error) as exc:
            info = RunInfo(entry.run_id, entry.run_dir, "unreadable", detail=str(exc))
            info.started_at = entry.started_at
        if info is None or (states and info.state not in states):
            continue
        if sweeps_only and not info.sweep:
            continue
        if limit and len(listing.runs) >= limit:
            listing.more = True  # one more run matches: say so, and stop opening journals
            break
        listing.runs.append(info)
    return listing


def _run_info(run_dir: Path, shown: str, states: Collection[str] = ()) -> RunInfo | None:
    """The run as `runs` shows it, or None when its state is not among `states` (if any)."""
    holder = _in_use(run_dir)
    with journal_errors(run_dir), closing(Journal.open(run_dir, write=False)) as journal:
        meta = journal.meta()
        if states and ("running" if holder else meta.get("state", "")) not in states:
            return None  # decided before the counts: a long history lists quickly
        stored = journal.counts()
        dry_run = meta.get("dry_run") == "True"
        info = RunInfo(
            run_dir.name,
            run_dir,
            meta.get("state", ""),
            input_file=meta.get("input_file", ""),
            tenant_id=meta.get("tenant_id", ""),
            started_at=meta.get("started_at", ""),
            ended_at=meta.get("ended_at", ""),
            counts=shown_counts(stored, dry_run=dry_run),
            verification=journal.verification_counts(),
            sweep=meta.get("sweep_id", ""),
            campaign=run_dir.parent.name if (run_dir.parent / CAMPAIGN_FILE).is_file() else "",
        )
        unverified = bool(journal.verification_targets())
        retryable = any(transient_failure(s, r) for _, s, r in journal.failed_rows()) or any(
            transient_lookup(r) for _, r in journal.lookup_failures()
        )
    if holder:
        info.state, info.detail = "running", holder
        return info
    left = sum(stored.get(s.value, 0) for s in (Status.PENDING, Status.IN_FLIGHT, Status.RESOLVING))
    sent = any(stored.get(s.value) for s in _SENT)
    # killed while resolving, with every row recorded: resume resolves the rest
    resumable = info.state == "resolving" and "rows_recorded" in meta
    if dry_run:
        if info.state == "plan" and stored.get(Status.PENDING.value):
            info.next_command = command("rotate", "--plan", Path(shown))
    elif (
        info.state not in ("finished", "refused")
        and left
        and (sent or info.state == "interrupted" or resumable)
    ):
        info.next_command = command("rotate", "--resume", Path(shown))
    elif retryable and info.state != "refused":
        info.next_command = command("rotate", "--resume", Path(shown), "--retry-failed")
    elif unverified:
        info.next_command = command("verify", Path(shown))
    return info


def _in_use(run_dir: Path) -> str:
    """Who holds the run (a process writing it), or ''; only probed when a holder is recorded."""
    if not (run_dir / HOLDER_NAME).is_file():
        return ""
    try:
        RunLock(run_dir).acquire().release()
    except JournalError as exc:
        text = str(exc)
        return text[text.find("(") + 1 : text.find(")")] if "(" in text else "in use"
    return ""
