"""Run folders on disk: naming, the audit command line, earlier runs, and rendering a run's report.

Everything here reads or names a run; nothing talks to Graph.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from batch_rotate.errors import BatchRotateError
from batch_rotate.journal import Journal
from batch_rotate.models import RunSummary, Status
from batch_rotate.present import shown_counts, shown_rows
from batch_rotate.report import ReportPaths, write_reports


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


def unfinished_runs(reports_dir: Path, sha256: str) -> list[Path]:
    """Earlier runs of the same input file that sent writes and did not finish (resume hint).

    A plan, a refused guard or an unconfirmed prompt sent nothing: resuming it would only repeat
    the decision, so no hint offers it.
    """
    found = []
    for journal_path in sorted(reports_dir.glob("*/journal.sqlite")):
        run_dir = journal_path.parent
        with (
            contextlib.suppress(BatchRotateError),
            closing(Journal.open(run_dir, write=False)) as journal,
        ):
            meta = journal.meta()
            if meta.get("input_sha256") != sha256 or "resolution" not in meta:
                continue
            if meta.get("state") in ("finished", "plan", "refused"):
                continue
            counts = journal.counts()
            if any(counts.get(s.value) for s in _SENT):
                found.append(run_dir)
    return found


_SENT = (Status.QUEUED, Status.FAILED, Status.IN_FLIGHT)


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
    with closing(Journal.open(run_dir, write=False)) as journal:
        summary = summary_of(journal, run_dir)
        rows = shown_rows(journal.report_rows(), dry_run=journal.meta().get("dry_run") == "True")
        return write_reports(run_dir, rows, summary), summary.counts
