"""`python -m batch_rotate.sim.bench_report [ROWS ...]`: time the report alone (issue 23).

Synthetic journals (a finished run's: a tenth failing, verification on most; and a plan's; with
the matched inventory) of 100,000 and 1,000,000 rows, each rendered in a fresh child process per
figure (its own peak RSS): the journal read alone, CSV alone, XLSX alone, and both (what every
run, resume, verify and `report` does). Prints figures and the goals; never asserts.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, Literal

from batch_rotate.journal import Journal
from batch_rotate.journal_schema import JOURNAL_NAME
from batch_rotate.present import shown_rows
from batch_rotate.runs import render, summary_of
from batch_rotate.sim.bench_machine import cpu_model, reference_s

SIZES = (100_000, 1_000_000)
MODES = ("read", "csv", "xlsx", "both")
GOALS = "100,000-row workbook <= 5 s; report of a 1,000,000-row plan <= 30 s; peak <= 300 MB"
_STATUSES = ("queued",) * 7 + ("failed", "not_found", "ineligible")
_VERIFICATION = ("verified", "verified", "pending", "failed", "")
_CODES = ("0x8031004A", "0x8000FFFF", "0x80310012", "0x8031002D", "0x80070057")
_META = {
    "tenant_id": "00000000-0000-4000-8000-0000000000aa",
    "client_id": "00000000-0000-4000-8000-0000000000bb",
    "started_at": "2026-11-27T00:00:00.000Z",
    "ended_at": "2026-11-27T06:00:00.000Z",
    "input_file": "devices.csv",
    "input_sha256": "0" * 64,
    "state": "finished",
    "dry_run": "False",
    "graph_url": "https://graph.microsoft.com",
}


def _device_rows(total: int, *, plan: bool) -> Iterator[tuple[Any, ...]]:
    """Journal `devices` rows as a finished run (or a plan: nothing sent) leaves them."""
    for n in range(total):
        status = _STATUSES[n % len(_STATUSES)]
        if plan and status in ("queued", "failed"):
            status = "pending"
        guid = f"{n:08x}-0000-4000-8000-{n:012x}"
        sent = status in ("queued", "failed")
        clock = f"2026-11-27T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.123Z"
        yield (
            n + 2,
            guid,
            "intune_id",
            guid if status != "not_found" else "",
            f"LT-{n:07d}" if status != "not_found" else "",
            f"SN{n:010d}",
            f"{n:08x}-1111-4000-8000-{n:012x}",
            "Windows" if status != "ineligible" else "macOS",
            status,
            "Graph answered 429 after 8 attempts" if status == "failed" else "",
            {"queued": 204, "failed": 429}.get(status),
            "TooManyRequests" if status == "failed" else "",
            guid if sent else "",
            guid if sent else "",
            8 if status == "failed" else int(sent),
            clock if sent else "",
            clock if status == "queued" else "",
            clock,
            guid.lower(),
        )


def _inventory_rows(total: int) -> Iterator[tuple[Any, ...]]:
    """The devices the rows matched (the report joins them for the plan's flags)."""
    for n in range(total):
        if _STATUSES[n % len(_STATUSES)] == "not_found":
            continue
        guid, name, serial = f"{n:08x}-0000-4000-8000-{n:012x}", f"LT-{n:07d}", f"SN{n:010d}"
        entra = f"{n:08x}-1111-4000-8000-{n:012x}"
        os_name = "macOS" if _STATUSES[n % len(_STATUSES)] == "ineligible" else "Windows"
        ineligible = "not Windows" if os_name == "macOS" else ""
        last_sync = "2026-11-26T08:00:00Z"
        yield (
            guid,
            guid,
            entra,
            name.lower(),
            serial.lower(),
            name,
            serial,
            entra,
            os_name,
            ineligible,
            last_sync,
            "",
        )


def _verification_rows(total: int, *, plan: bool) -> Iterator[tuple[Any, ...]]:
    for n in range(total if not plan else 0):
        verdict = _VERIFICATION[n % len(_VERIFICATION)]
        if _STATUSES[n % len(_STATUSES)] != "queued" or not verdict:
            continue
        yield (
            n + 2,
            verdict,
            "new recovery key escrowed" if verdict == "verified" else "",
            "done" if verdict == "verified" else "",
            _CODES[n % len(_CODES)] if verdict == "failed" else "",
            "2026-11-28T08:00:00Z" if verdict == "verified" else "",
            "2026-11-28T07:59:00Z",
            2,
            "2026-11-28T09:00:00.000Z",
        )


def build_journal(run_dir: Path, total: int, *, plan: bool = False) -> None:
    """A finished run's (or a plan's) journal of `total` rows: `Journal.create`, then inserts."""
    Journal.create(
        run_dir, {**_META, "state": "plan", "dry_run": "True"} if plan else _META
    ).close()
    with closing(sqlite3.connect(run_dir / JOURNAL_NAME)) as db, db:
        db.executemany(
            "INSERT INTO devices(row, input_value, id_kind, intune_id, device_name, "
            "serial_number, entra_device_id, os, status, reason, http_status, error_code, "
            "request_id, client_request_id, attempts, requested_at, accepted_at, updated_at, "
            "ref_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _device_rows(total, plan=plan),
        )
        db.executemany(
            "INSERT INTO inventory(id, k_intune, k_entra, k_name, k_serial, name, serial, entra, "
            "os, ineligible, last_sync, flag) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            _inventory_rows(total),
        )
        db.executemany(
            "INSERT INTO verification(row, status, detail, action_state, error_code, new_key_at, "
            "last_check_in, key_count, checked_at) VALUES (?,?,?,?,?,?,?,?,?)",
            _verification_rows(total, plan=plan),
        )


def _child(mode: str, run_dir: Path) -> dict[str, Any]:
    """One figure, in this (fresh) process: seconds, CPU seconds, peak RSS, file sizes."""
    from batch_rotate.report import write_reports

    started, cpu = time.perf_counter(), time.process_time()
    if mode == "both":
        render(run_dir)  # exactly what a run, resume, verify or `report` does
    else:
        with closing(Journal.open(run_dir, write=False)) as journal:
            dry_run = journal.meta().get("dry_run") == "True"
            rows = shown_rows(journal.report_rows(), dry_run=dry_run)
            if mode == "read":
                for _ in rows:
                    pass
            else:
                only: Literal["csv", "xlsx"] = "csv" if mode == "csv" else "xlsx"
                write_reports(run_dir, rows, summary_of(journal, run_dir), only=only)
    figures: dict[str, Any] = {
        "seconds": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name in ("report.xlsx", "report.csv"):
        path = run_dir / name
        figures[f"{name}_mb"] = path.stat().st_size / 1e6 if path.exists() else 0.0
    return figures


def measure(total: int, tmp: Path, *, plan: bool = False) -> dict[str, dict[str, Any]]:
    """Every mode (a plan: both files only) on one journal of `total` rows, each in a child."""
    shape = "plan" if plan else "run"
    run_dir = tmp / f"{shape}-{total}"
    started = time.perf_counter()
    build_journal(run_dir, total, plan=plan)
    took = time.perf_counter() - started
    print(f"{shape} journal of {total:,} rows built in {took:.1f} s", flush=True)
    results = {}
    for mode in ("both",) if plan else MODES:
        for name in ("report.xlsx", "report.csv"):
            (run_dir / name).unlink(missing_ok=True)
        done = subprocess.run(  # noqa: S603 (this interpreter, this module, our arguments)
            [sys.executable, "-m", "batch_rotate.sim.bench_report", "--child", mode, str(run_dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(done.stdout)
        results[mode] = figures
        size = figures["report.xlsx_mb"] or figures["report.csv_mb"]
        print(
            f"report {shape:>4} {total:>9,} rows {mode:>4}: {figures['seconds']:6.1f} s "
            f"({total / figures['seconds']:>9,.0f} rows/s), cpu {figures['cpu_s']:.1f} s, "
            f"peak {figures['peak_rss_mb']:.0f} MB" + (f", {size:.1f} MB file" if size else ""),
            flush=True,
        )
    shutil.rmtree(run_dir)  # a million rows take ~1 GB of journal and reports
    return results


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(argv[1], Path(argv[2]))))
        return
    if any(not a.isdigit() for a in argv):  # --help, or anything that is not a row count
        print(__doc__.strip(), file=sys.stderr)
        raise SystemExit(0 if argv[:1] in (["--help"], ["-h"]) else 2)
    sizes = [int(a) for a in argv] or list(SIZES)
    print(
        f"report bench: {platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
        f"Python {platform.python_version()}; reference workload {reference_s():.2f} s",
        flush=True,
    )
    runs, plans = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for total in sizes:
            runs[total] = measure(total, Path(folder))
            plans[total] = measure(total, Path(folder), plan=True)
    print(f"goals (issue 23): {GOALS}")
    if 100_000 in runs:
        xlsx = runs[100_000]["xlsx"]
        print(f"  report_xlsx_100k_s {xlsx['seconds']:.1f}  (cpu {xlsx['cpu_s']:.1f} s)")
    if 1_000_000 in plans:
        both = plans[1_000_000]["both"]
        print(
            f"  report_1m_plan_s {both['seconds']:.1f}  (cpu {both['cpu_s']:.1f} s; xlsx and csv "
            f"from the journal; a finished run's: {runs[1_000_000]['both']['seconds']:.1f} s)"
        )
    figures = [r for shape in (runs, plans) for modes in shape.values() for r in modes.values()]
    print(f"  report_peak_mb {max(r['peak_rss_mb'] for r in figures):.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
