"""Measure reading a 13-column Intune "All devices" export (issue 14 item 4; XLSX: issue 19).

Writes the file in a temp dir, then reads it in a fresh subprocess (so the figure is the reader's
own): `read_device_list` plus iterating every ref. Prints peak RSS and time. A script, not a test.
Usage: .venv/bin/python tests/tools/measure_inputs.py [ROWS] [csv|xlsx|xfd]  (default 1000000 csv)
xlsx: the same export as a workbook; xfd: a Device ID column and an empty cell at XFD on each row.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.xlsx_shapes import INTUNE_HEADER, intune_rows, write_xlsx  # noqa: E402

CHILD = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from batch_rotate.inputs import read_device_list
devices = read_device_list(Path(sys.argv[1]))
read_s = time.perf_counter() - started
count = errors = 0
for ref in devices.refs:
    count += 1
    errors += ref.error is not None
print(json.dumps({
    "rows": count, "errors": errors, "column": devices.column, "kind": devices.kind.value,
    "read_s": round(read_s, 2), "total_s": round(time.perf_counter() - started, 2),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
}))
"""


def write_export(path: Path, rows: int) -> None:
    """A realistic export as CSV (UTF-8 with BOM, as Intune writes it)."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INTUNE_HEADER)
        writer.writerows(intune_rows(rows))


def write(path: Path, rows: int, shape: str) -> None:
    if shape == "csv":
        write_export(path, rows)
    elif shape == "xlsx":
        write_xlsx(path, INTUNE_HEADER, intune_rows(rows))
    elif shape == "xfd":
        ids = ([row[0]] for row in intune_rows(rows))
        write_xlsx(path, ["Device ID"], ids, far_empty_cell=True)
    else:
        raise SystemExit(f"unknown shape {shape!r}: csv, xlsx or xfd")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    shape = sys.argv[2] if len(sys.argv) > 2 else "csv"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"intune-all-devices-{rows}.{'csv' if shape == 'csv' else 'xlsx'}"
        started = time.perf_counter()
        write(path, rows, shape)
        size_mb = path.stat().st_size / 1e6
        took_s = time.perf_counter() - started
        print(f"wrote {rows:,} rows ({shape}), {size_mb:.1f} MB in {took_s:.1f} s")
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout)
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
