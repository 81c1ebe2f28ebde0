"""Time report rendering and its peak memory for large runs: prints figures, asserts nothing.

Usage: python tests/tools/measure_report.py [ROWS ...]   (default: 100000 1000000)
Each size runs in a fresh process, so the peak RSS is that render's own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from batch_rotate.models import ReportRow, RunSummary
from batch_rotate.report import write_reports

_STATUSES = ("queued",) * 7 + ("failed", "not_found", "ineligible")
_VERIFICATION = ("verified", "verified", "pending", "failed", "")
_CODES = ("0x8031004A", "0x8000FFFF", "0x80310012", "0x8031002D", "0x80070057")


def _rows(total: int) -> Iterator[ReportRow]:
    """Realistic rows: GUIDs, ISO times, a tenth failing, verification filled in on most."""
    for n in range(total):
        status = _STATUSES[n % len(_STATUSES)]
        verification = _VERIFICATION[n % len(_VERIFICATION)] if status == "queued" else ""
        guid = f"{n:08x}-0000-4000-8000-{n:012x}"
        yield ReportRow(
            row=n + 2,
            input_value=guid,
            id_kind="intune_id",
            intune_device_id=guid,
            device_name=f"LT-{n:07d}",
            serial_number=f"SN{n:010d}",
            entra_device_id=f"{n:08x}-1111-4000-8000-{n:012x}",
            os="Windows",
            status=status,
            reason="rotation queued; the device rotates at its next check-in"
            if status == "queued"
            else "Graph answered 429 after 8 attempts",
            http_status=204 if status == "queued" else 429,
            error_code="" if status == "queued" else "TooManyRequests",
            error_message="",
            request_id=guid,
            client_request_id=guid,
            attempts=1,
            requested_at=f"2026-11-27T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.123Z",
            verification=verification,
            verification_detail="new recovery key escrowed" if verification else "",
            action_state="done" if verification == "verified" else "",
            action_error_code=_CODES[n % len(_CODES)] if verification == "failed" else "",
            new_key_at="2026-11-28T08:00:00Z" if verification == "verified" else "",
            last_check_in="2026-11-28T07:59:00Z" if verification else "",
            key_count=2 if verification else None,
            verified_at="2026-11-28T09:00:00Z" if verification else "",
        )


def _one(total: int) -> dict[str, float]:
    summary = RunSummary(
        run_id="measure",
        tenant_id="tenant",
        client_id="client",
        started_at="2026-11-27T00:00:00Z",
        ended_at="2026-11-27T06:00:00Z",
        input_file="devices.csv",
        input_sha256="0" * 64,
        counts={"queued": total * 7 // 10, "failed": total // 10, "not_found": total // 10},
        details={"graph_url": "https://graph.microsoft.com"},
        verification_counts={"verified": total * 3 // 10, "pending": total // 10},
    )
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        paths = write_reports(Path(folder), _rows(total), summary)
        seconds = time.perf_counter() - start
        size_mb = paths.xlsx.stat().st_size / 1e6
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "rows": total,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_kb / 1024),
        "xlsx_mb": round(size_mb, 1),
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(_one(int(argv[1]))))
        return
    for total in [int(a) for a in argv] or [100_000, 1_000_000]:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(total)],
            check=True,
            capture_output=True,
            text=True,
        )
        print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
