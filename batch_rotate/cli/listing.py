"""`batch-rotate runs`: the run folders under --reports-dir, their state and what to do next.

`--json` prints one document; its schema is batch_rotate/schemas/runs.schema.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from batch_rotate.cli.groups import OUTPUT, Given, takes

if TYPE_CHECKING:
    from batch_rotate.runs import RunInfo

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


@takes(OUTPUT)
def runs_command(*, given: Given) -> None:
    """List the runs: input, tenant, state, counts by status, when, and what to do next (the
    resume or verify command, or nothing)."""
    from batch_rotate.cli.console import err, out
    from batch_rotate.cli.output import closed_stdout_ok
    from batch_rotate.runs import list_runs, shown_path

    reports_dir, json_out = given["reports_dir"], given["json_out"]
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
        out.print("\n".join(lines).rstrip(), highlight=False, markup=False, soft_wrap=True)


@takes(OUTPUT)
def report_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run folder, reports/<run-id>.")],
    *,
    given: Given,
) -> None:
    """Re-render report.xlsx and report.csv from a run's journal (also while it runs)."""
    from batch_rotate.cli.console import out
    from batch_rotate.cli.output import closed_stdout_ok
    from batch_rotate.cli.running import exits
    from batch_rotate.runs import render

    with exits():
        paths, counts = render(run_dir)
    if given["quiet"]:
        return
    with closed_stdout_ok():
        out.print(f"report: {paths.xlsx}\n        {paths.csv}", highlight=False, markup=False)
        out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)
