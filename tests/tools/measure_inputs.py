"""Measure reading a 13-column Intune "All devices" export of 1,000,000 rows (issue 14 item 4).

Writes the file in a temp dir, then reads it in a fresh subprocess (so the figure is the reader's
own): `read_device_list` plus iterating every ref. Prints peak RSS and time. A script, not a test.
Usage: .venv/bin/python tests/tools/measure_inputs.py [ROWS]
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HEADER = [
    "Device ID",
    "Device name",
    "Managed by",
    "Ownership",
    "Compliance",
    "OS",
    "OS version",
    "Last check-in",
    "Primary user UPN",
    "Serial number",
    "Microsoft Entra Device ID",
    "JoinType",
    "Encrypted",
]

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
    """A realistic export: 13 columns, GUIDs, names, UPNs, dates; a seeded UUID stream."""
    seed = uuid.UUID(int=0x1B4E28BA2FA141D2883F0016D3CCA427)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            device = uuid.UUID(int=(seed.int + 2 * i) % (1 << 128), version=4)
            entra = uuid.UUID(int=(seed.int + 2 * i + 1) % (1 << 128), version=4)
            writer.writerow(
                [
                    str(device),
                    f"LT-{i:07d}",
                    "Intune",
                    "Corporate",
                    "Compliant" if i % 7 else "Noncompliant",
                    "Windows",
                    "10.0.22631.4460",
                    f"2026-10-{1 + i % 28:02d} 10:{i % 60:02d}:00",
                    f"user{i:07d}@contoso.example",
                    f"SN{i:010d}",
                    str(entra),
                    "Microsoft Entra joined",
                    "Yes",
                ]
            )


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "intune-all-devices-1m.csv"
        started = time.perf_counter()
        write_export(path, rows)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {rows:,} rows, {size_mb:.0f} MB in {time.perf_counter() - started:.1f} s")
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
        )
        figures = json.loads(done.stdout)
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
