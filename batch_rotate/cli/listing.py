"""`batch-rotate runs`: the run folders under --reports-dir, their state and what to do next.

`--json` prints one document; its schema is batch_rotate/schemas/runs.schema.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from batch_rotate.cli.console import err, out
from batch_rotate.cli.output import closed_stdout_ok
from batch_rotate.runkit import shown_path
from batch_rotate.runs import RunInfo, list_runs

RUNS_SCHEMA_VERSION = 1
RUNS_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate runs\n"
    "  batch-rotate runs --reports-dir /srv/batch-rotate/reports\n"
    "  batch-rotate runs --json | jq '.runs[] | select(.next_command)'"
)


def _counts(info: RunInfo) -> str:
    shown = ", ".join(f"{k} {v}" for k, v in sorted(info.counts.items(), key=lambda kv: -kv[1]))
    if info.verification:
        verified = ", ".join(f"{k} {v}" for k, v in sorted(info.verification.items()))
        shown += f"; verification: {verified}"
    return shown


def _document(reports_dir: Path, runs: list[RunInfo]) -> dict[str, Any]:
    return {
        "schema_version": RUNS_SCHEMA_VERSION,
        "command": "runs",
        "reports_dir": str(reports_dir),
        "runs": [
            {
                "run_id": info.run_id,
                "run_dir": str(info.run_dir),
                "state": info.state,
                "input_file": info.input_file or None,
                "tenant_id": info.tenant_id or None,
                "started_at": info.started_at or None,
                "ended_at": info.ended_at or None,
                "counts": dict(sorted(info.counts.items())),
                "total": sum(info.counts.values()),
                "verification": dict(sorted(info.verification.items())),
                "next_command": info.next_command or None,
                "detail": info.detail or None,
            }
            for info in runs
        ],
    }


def runs_command(
    reports_dir: Annotated[
        Path, typer.Option("--reports-dir", help="Where the run folders are.")
    ] = Path("reports"),
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
) -> None:
    """List the runs under --reports-dir: input, tenant, state, counts and what to do next."""
    runs = list_runs(reports_dir, shown_path) if reports_dir.is_dir() else []
    if json_out:
        with closed_stdout_ok():
            sys.stdout.write(json.dumps(_document(reports_dir, runs), indent=2) + "\n")
            sys.stdout.flush()
        return
    if not runs:
        err.print(f"no runs under {reports_dir}", highlight=False, markup=False)
        return
    lines: list[str] = []
    for info in runs:  # blocks, not a table: the commands stay whole, ready to copy
        lines.append(f"{info.run_id}  {info.state}" + (f" ({info.detail})" if info.detail else ""))
        for label, value in (
            ("input", info.input_file),
            ("tenant", info.tenant_id),
            ("started", info.started_at),
            ("ended", info.ended_at),
            ("rows", _counts(info)),
        ):
            if value:
                lines.append(f"  {label:<8} {value}")
        if info.state != "unreadable":
            lines.append(f"  {'next':<8} {info.next_command or 'nothing'}")
        lines.append("")
    with closed_stdout_ok():
        out.print(*lines[:-1], sep="\n", highlight=False, markup=False, soft_wrap=True)
