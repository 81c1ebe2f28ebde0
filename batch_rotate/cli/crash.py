"""The last resort: an unexpected error never prints a traceback. The traceback goes to
crash.log (0600) in the run folder (or the reports folder when there is none yet), and the
console gets one line pointing at it; the exit code is EXIT_CRASH."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from batch_rotate.cli.console import err
from batch_rotate.cli.output import error_document, print_json
from batch_rotate.runkit import EXIT_CRASH
from batch_rotate.runs import note_run_dir, noted_run_dir, write_crash_log


def guarded(ctx: typer.Context, invoke: Callable[[], Any]) -> Any:
    """Run a command; anything unexpected becomes crash.log and one line (exit EXIT_CRASH)."""
    note_run_dir(None)  # a command in-process after another (tests) starts with no run folder
    try:
        return invoke()
    except Exception as exc:
        if isinstance(exc, typer.Exit | typer.Abort) or type(exc).__module__.startswith("click"):
            raise  # exits and usage errors: Typer's own, already one line

        params = ctx.params
        folders = [
            noted_run_dir(),
            *(params.get(name) for name in ("run_dir", "resume", "reports_dir")),
            Path("reports"),
        ]
        path = write_crash_log(exc, [f if isinstance(f, Path) else None for f in folders])
        what = " ".join(f"{type(exc).__name__}: {exc}".split())
        where = f"the traceback is in {path}" if path else "no folder could take crash.log"
        line = (
            f"error: unexpected {what}; {where}. The journal, if any, is consistent; "
            "please report this (with crash.log) to the maintainers"
        )
        err.print(line, highlight=False, markup=False, soft_wrap=True)
        if params.get("json_out") and ctx.info_name in ("rotate", "plan", "verify"):
            print_json(error_document(ctx.info_name or "", EXIT_CRASH, line))
        raise typer.Exit(EXIT_CRASH) from None
