"""The Summary sheet: the run's facts with human labels, counts as small tables, and charts."""

from __future__ import annotations

import re
from collections.abc import Sequence

from batch_rotate.models import RunSummary
from batch_rotate.present import plural
from batch_rotate.report.cells import (
    BARS,
    neutralise,
    recorded_number,
    shown,
    summary_value,
    text_cell,
    tone,
)
from batch_rotate.report.xlsx import Book, Chart, Sheet

# Journal setting keys (raw `retry_delay_s` or run.py's generated `Retry delay s`) -> labels.
LABELS: dict[str, str] = {
    "authority_url": "Authority URL",
    "graph_url": "Graph URL",
    "scope": "Token scope",
    "ca_bundle": "CA bundle",
    "batch_size": "Batch size (requests per $batch)",
    "max_concurrency": "Concurrent batches",
    "write_budget": "Write budget",
    "read_budget": "Read budget",
    "max_attempts": "Attempts per device (max)",
    "retry_delay_s": "Retry delay (s)",
    "timeout_s": "Timeout (s)",
    "dry_run": "Dry run",
    "max_devices": "Device limit (--max-devices)",
    "tool_version": "Tool version",
    "credential": "Credential",
    "machine_user": "Run by (user@machine)",
    "command_line": "Command line",
    "id_column": "Identifier column",
    "id_kind": "Identifier kind",
    "state": "Run state",
    "resolution": "Resolution",
    "inventory_size": "Devices in the tenant's inventory",
    "stopped_because": "Stopped because",
    "options": "Recorded choices (reused by --resume, --plan and verify)",
    "profile": "Profile",
    "plan_run": "Applied plan (rotate --plan)",
}
_ACRONYMS = {"id": "ID", "url": "URL", "ca": "CA", "os": "OS", "http": "HTTP", "utc": "UTC"}
_UNITS = {"s": "(s)", "ms": "(ms)", "mb": "(MB)"}
_KEYLIKE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[_ ][A-Za-z0-9]+)*")


def label(key: str) -> str:
    """A human label for a detail key: the fixed table first, else a sentence-case fallback."""
    normal = key.lower().replace(" ", "_")
    if normal in LABELS:
        return LABELS[normal]
    if not _KEYLIKE.fullmatch(key):
        return key  # already free text (or hostile): shown as given, neutralised later
    words = normal.split("_")
    out = [_ACRONYMS.get(w, w) for w in words]
    if len(out) > 1 and words[-1] in _UNITS:
        out[-1] = _UNITS[words[-1]]
    first = out[0]
    out[0] = first if first in _ACRONYMS.values() else first[:1].upper() + first[1:]
    return " ".join(out)


class _Lines:
    """Appends label/value rows to the sheet and remembers the row number."""

    def __init__(self, sheet: Sheet) -> None:
        self.sheet = sheet

    def add(self, name: str, value: int | str = "", *, strong: bool = False) -> int:
        """A fact: a number (counts, and journal text that records one), a time, or text."""
        recorded = recorded_number(value) if isinstance(value, str) else None
        cell_value = shown(value) if recorded is None else recorded
        cell = summary_value(cell_value, bold=strong) if cell_value != "" else None
        return self.sheet.append([text_cell(neutralise(name), bold=strong), cell])

    def text(self, name: str, value: str, *, strong: bool = False) -> int:
        return self.sheet.append([text_cell(neutralise(name), bold=strong), neutralise(value)])

    def blank(self) -> None:
        self.sheet.append([])


def summary_sheet(
    book: Book,
    summary: RunSummary,
    *,
    device_sheets: Sequence[str],
    devices: int,
    per_sheet: int,
) -> None:
    """Write the Summary sheet: facts, where the devices are, counts, charts and details."""
    sheet = book.sheet("Summary", widths=(34, 60))
    lines = _Lines(sheet)
    lines.text("Run ID", summary.run_id, strong=True)
    lines.text("Tenant ID", summary.tenant_id)
    lines.text("Client ID", summary.client_id)
    lines.add("Started (UTC)", summary.started_at)
    lines.add("Ended (UTC)", summary.ended_at)
    lines.text("Input file", summary.input_file)
    lines.text("Input SHA-256", summary.input_sha256)
    if len(device_sheets) > 1:
        where = (
            f"{len(device_sheets)} sheets ({', '.join(device_sheets)}): Excel holds at most "
            f"{per_sheet:,} devices per sheet; report.csv holds all {devices:,} in one file"
        )
    else:
        rows = plural(devices, "row", sep=",")
        where = f"1 sheet ({device_sheets[0]}); report.csv holds the same {rows}"
    lines.text("Devices sheets", where)
    charts = 0
    for title, counts, table, chart_title in (
        ("Counts by status", summary.counts, "StatusCounts", "Outcomes"),
        (
            "Verification (new key escrowed)",
            summary.verification_counts,
            "VerificationCounts",
            "Verification by state",
        ),
    ):
        if table == "VerificationCounts" and not counts:
            continue
        lines.blank()
        header = lines.text(title, "Count", strong=True)
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for status, number in ordered:
            lines.add(status, number)
        lines.add("Total", sum(counts.values()), strong=True)
        if ordered:
            last = header + len(ordered)
            sheet.add_table(table, f"A{header}:B{last}", (title, "Count"))
            sheet.add_chart(_chart(chart_title, (3, 18 * charts), header, [s for s, _ in ordered]))
            charts += 1
    if summary.details:
        lines.blank()
        lines.add("Details", strong=True)
        for key, value in summary.details.items():
            lines.add(label(key), value)  # the journal records numbers as text: shown as numbers


def _chart(title: str, anchor: tuple[int, int], header: int, statuses: list[str]) -> Chart:
    """A bar per status, coloured like the status cells, read from the counts table."""
    colours = {}
    for index, status in enumerate(statuses):
        colour = tone(status)
        if colour is not None:
            colours[index] = BARS[colour]
    return Chart(title, anchor, header, header + len(statuses), colours)
