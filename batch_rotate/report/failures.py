"""The Failures sheet: failed devices grouped by error code, with cause, fix and a few examples.

Groups are gathered while the rows stream past: a counter and at most `MAX_EXAMPLES` device
names per code, so a million failures cost no more memory than ten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batch_rotate.hresults import (
    describe_graph_error,
    describe_hresult,
    hresult_hex,
    parse_hresult,
)
from batch_rotate.models import ReportRow
from batch_rotate.report.cells import neutralise, text_cell
from batch_rotate.report.xlsx import Book, Cell, Style

MAX_EXAMPLES = 5
HEADERS = ("Stage", "Error code", "Devices", "Cause", "Fix", "Examples")
_WIDTHS = (22, 30, 10, 60, 70, 70)
STAGE_REQUEST = "Rotate request"
STAGE_DEVICE = "On the device (verify)"


@dataclass
class _Group:
    count: int = 0
    cause: str = ""
    fix: str = ""
    examples: list[str] = field(default_factory=list)


@dataclass
class FailureGroups:
    """Failed rows by (stage, error code), counted while streaming."""

    groups: dict[tuple[str, str], _Group] = field(default_factory=dict)

    def add(self, row: ReportRow) -> None:
        """Count `row` if its rotate request failed or the device reported failure."""
        if row.status == "failed":
            code = row.error_code or (f"HTTP {row.http_status}" if row.http_status else "")
            key = (STAGE_REQUEST, code or "no error code")
            if key not in self.groups:
                cause, fix = describe_graph_error(row.error_code, row.http_status)
                self.groups[key] = _Group(cause=cause, fix=fix)
        elif row.verification == "failed":
            number = parse_hresult(row.action_error_code)
            if number is None and row.action_error_code:
                key = (STAGE_DEVICE, row.action_error_code)
            else:
                key = (STAGE_DEVICE, hresult_hex(number or 0))
            if key not in self.groups:
                cause, fix = describe_hresult(number or 0)
                if number is None and row.action_error_code:
                    cause, fix = row.verification_detail or cause, fix
                self.groups[key] = _Group(cause=cause, fix=fix)
        else:
            return
        group = self.groups[key]
        group.count += 1
        if len(group.examples) < MAX_EXAMPLES:
            name = row.device_name or row.input_value
            ident = row.intune_device_id
            group.examples.append(f"{name} ({ident})" if name and ident else name or ident)

    def sorted(self) -> list[tuple[str, str, _Group]]:
        """Largest groups first, then by stage and code, for a stable sheet."""
        ordered = sorted(self.groups.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return [(stage, code, group) for (stage, code), group in ordered]


def failures_sheet(book: Book, failures: FailureGroups) -> None:
    """Write the Failures sheet; a table when there is at least one group."""
    groups = failures.sorted()
    sheet = book.sheet("Failures", widths=_WIDTHS, freeze=bool(groups))
    if not groups:
        sheet.append([text_cell("No failed devices.", bold=True)])
        return
    sheet.append([text_cell(header, bold=True) for header in HEADERS])
    for stage, code, group in groups:
        wrapped = (group.cause, group.fix, "; ".join(group.examples))
        sheet.append(
            [stage, neutralise(code), group.count]
            + [Cell(neutralise(text), Style.WRAP) for text in wrapped]
        )
    sheet.add_table("Failures", f"A1:F{len(groups) + 1}", HEADERS)
