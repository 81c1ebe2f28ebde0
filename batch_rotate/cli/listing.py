"""`batch-rotate runs`: every run of this user (the run index, and ./reports or --reports-dir),
newest first, with its state and what to do next.

`--json` prints one document; its schema is batch_rotate/schemas/runs.schema.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from batch_rotate.cli.groups import OUTPUT, Given, takes
from batch_rotate.journal_schema import RUN_STATES

if TYPE_CHECKING:
    from batch_rotate.runs import RunInfo, RunListing

RUNS_SCHEMA_VERSION = 1
DEFAULT_REPORTS = Path("reports")
RUNS_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "  batch-rotate runs\n"
    "  batch-rotate runs --state interrupted --state failed --limit 0\n"
    "  batch-rotate runs --reports-dir /srv/batch-rotate/reports\n"
    "  batch-rotate runs --sweeps                  # the runs scheduled sweeps made\n"
    "  batch-rotate runs --json | jq '.runs[] | select(.next_command)'"
)


def _counts(info: RunInfo) -> str:
    shown = ", ".join(f"{k} {v}" for k, v in sorted(info.counts.items(), key=lambda kv: -kv[1]))
    if info.verification:
        verified = ", ".join(f"{k} {v}" for k, v in sorted(info.verification.items()))
        shown += f"; verification: {verified}"
    return shown


def _document(
    reports_dir: Path, only_under: bool, states: list[str], limit: int, listing: RunListing
) -> dict[str, Any]:
    from batch_rotate.runindex import index_path

    index = index_path()
    return {
        "schema_version": RUNS_SCHEMA_VERSION,
        "command": "runs",
        "reports_dir": str(reports_dir),
        "scope": "reports_dir" if only_under else "user",
        "index": str(index) if index is not None else None,
        "states": states,
        "limit": limit,
        "more": listing.more,
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
                "kind": "sweep" if info.sweep else "campaign" if info.campaign else "run",
                "sweep": info.sweep or None,
                "campaign": info.campaign or None,
            }
            for info in listing.runs
        ],
    }


def _checked_states(values: list[str] | None) -> list[str]:
    """The --state values, lower-case and sorted; a typo is a usage error naming the states."""
    states = sorted({v.strip().lower() for v in values or []})
    unknown = [s for s in states if s not in RUN_STATES]
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)} is not a run state; use one of {', '.join(RUN_STATES)}",
            param_hint="--state",
        )
    return states


@takes(OUTPUT)
def runs_command(
    states: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help=f"Only runs in this state (repeatable): {', '.join(RUN_STATES)}.",
            show_default=False,
            callback=_checked_states,  # while parsing: a usage error (exit 2), not a crash
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, metavar="N", help="Show at most this many runs (0: all)."),
    ] = 20,
    sweeps: Annotated[
        bool,
        typer.Option("--sweeps", help="Only the runs a sweep made (its sweep id is shown)."),
    ] = False,
    *,
    given: Given,
) -> None:
    """List your runs, newest first, wherever they were made: input, tenant, state, counts by
    status, when, and what to do next (the resume or verify command, or nothing).

    --reports-dir DIR lists only the runs under DIR.
    """
    from batch_rotate.cli.console import err, out
    from batch_rotate.cli.output import Mode, closed_stdout_ok, console_logging
    from batch_rotate.runs import list_runs, shown_path

    json_out = given["json_out"]
    wanted = states or []
    only_under = "reports_dir" in given.explicit
    folder = given["reports_dir"] if only_under else DEFAULT_REPORTS
    with console_logging(Mode(json=json_out)):  # an unusable run index is one warning line
        listing = list_runs(
            folder,
            shown_path,
            only_under=only_under,
            states=wanted,
            limit=limit,
            sweeps_only=sweeps,
        )
    if json_out:
        with closed_stdout_ok():
            doc = _document(folder, only_under, wanted, limit, listing)
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            sys.stdout.flush()
        return
    if not listing.runs:
        where = f"under {folder}" if only_under else f"in the run index or under {folder}"
        if wanted:
            where += f" in state {' or '.join(wanted)}"
        if sweeps:
            where += " made by a sweep"
        err.print(f"no runs {where}", highlight=False, markup=False)
        return
    lines: list[str] = []
    for info in listing.runs:  # blocks, not a table: the commands stay whole, ready to copy
        lines.append(f"{info.run_id}  {info.state}" + (f" ({info.detail})" if info.detail else ""))
        for label, value in (
            ("folder", shown_path(info.run_dir)),
            ("sweep", info.sweep),
            ("campaign", info.campaign),
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
    if listing.more:
        err.print(f"(the newest {limit} shown; --limit 0 shows all)", highlight=False, markup=False)


@takes(OUTPUT)
def report_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run folder, reports/<run-id>.")],
    *,
    given: Given,
) -> None:
    """Re-render report.xlsx and report.csv from a run's journal (also while it runs)."""
    from batch_rotate.cli.commands import campaign_folder
    from batch_rotate.cli.console import out
    from batch_rotate.cli.exiting import exits
    from batch_rotate.cli.output import closed_stdout_ok
    from batch_rotate.runs import render

    if campaign_folder(run_dir) is not None:
        from batch_rotate.cli.campaigning import continue_campaign
        from batch_rotate.cli.running import mode_of

        continue_campaign("report", mode_of("report", given), given, run_dir, how="report")
    with exits():
        paths, counts = render(run_dir)
    if given["quiet"]:
        return
    with closed_stdout_ok():
        out.print(f"report: {paths.xlsx}", f"        {paths.csv}", sep="\n", highlight=False)
        out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)
