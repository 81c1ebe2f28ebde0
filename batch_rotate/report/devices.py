"""The Devices sheets: the report's columns, their widths, and the sheets they stream into.

Shared by the per-run report and the campaign roll-up (which adds its tenant columns in front):
`Devices`, `Devices (2)`, ... as Excel's row limit fills each, every one an Excel table.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from batch_rotate.models import ReportRow
from batch_rotate.report.cells import FILLS, FONTS, TONES, excel_date, text_cell
from batch_rotate.report.xlsx import Book, Serial, column_letter

EXCEL_MAX_ROWS = 1_048_576  # rows per sheet, the header included

COLUMNS: tuple[tuple[str, str], ...] = (  # (ReportRow field, header shown), in sheet order
    ("row", "Row"),
    ("input_value", "Input value"),
    ("id_kind", "Identifier kind"),
    ("intune_device_id", "Intune device ID"),
    ("device_name", "Device name"),
    ("serial_number", "Serial number"),
    ("entra_device_id", "Entra device ID"),
    ("os", "OS"),
    ("status", "Status"),
    ("reason", "Reason"),
    ("http_status", "HTTP status"),
    ("error_code", "Graph error code"),
    ("error_message", "Message"),
    ("request_id", "Request ID"),
    ("client_request_id", "Client request ID"),
    ("attempts", "Attempts"),
    ("requested_at", "Requested at (UTC)"),
    ("accepted_at", "Accepted at (tenant clock, UTC)"),
    # filled in by `verify`; empty until then
    ("verification", "Verification"),
    ("verification_detail", "Verification detail"),
    ("action_state", "Device action state"),
    ("action_error_code", "Device error code"),
    ("new_key_at", "New key escrowed at (UTC)"),
    ("last_check_in", "Last check-in (UTC)"),
    ("key_count", "Recovery keys in Entra"),
    ("verified_at", "Verified at (UTC)"),
)
# A row's report values in COLUMNS order, in one C call (a report reads millions of rows).
COLUMN_VALUES = itemgetter(*(ReportRow._fields.index(name) for name, _ in COLUMNS))
# Fixed widths (characters): write-only sheets cannot measure their content. A GUID needs 38,
# an ISO timestamp 26; a header needs its length plus ~3 for the filter button.
WIDTHS: dict[str, int] = {
    "row": 8,
    "input_value": 40,
    "id_kind": 18,
    "intune_device_id": 38,
    "device_name": 22,
    "serial_number": 18,
    "entra_device_id": 38,
    "os": 10,
    "status": 15,
    "reason": 60,
    "http_status": 14,
    "error_code": 22,
    "error_message": 60,
    "request_id": 38,
    "client_request_id": 38,
    "attempts": 11,
    "requested_at": 26,
    "accepted_at": 34,
    "verification": 16,
    "verification_detail": 60,
    "action_state": 22,
    "action_error_code": 20,
    "new_key_at": 28,
    "last_check_in": 26,
    "key_count": 25,
    "verified_at": 26,
}
_DATES = frozenset({"requested_at", "accepted_at", "new_key_at", "last_check_in", "verified_at"})
_COLOURED = frozenset({"status", "verification"})


class DeviceSheets:
    """`Devices`, then `Devices (2)`, ... as sheets fill; each a table with coloured statuses.

    `lead`: (header, width) of columns written before the report's own (the roll-up's tenant).
    """

    def __init__(
        self, book: Book, max_rows: int, *, lead: Sequence[tuple[str, float]] = ()
    ) -> None:
        self.book, self.max_rows = book, max_rows
        self.titles: list[str] = []
        self.total = 0
        self._in_sheet = 0
        shift = len(lead)
        self._headers = tuple(h for h, _ in lead) + tuple(header for _, header in COLUMNS)
        self._widths = [w for _, w in lead] + [WIDTHS[name] for name, _ in COLUMNS]
        self._last_column = column_letter(len(self._headers))
        self._dates = tuple(i + shift for i, (name, _) in enumerate(COLUMNS) if name in _DATES)
        self._coloured = tuple(
            column_letter(i + shift + 1) for i, (name, _) in enumerate(COLUMNS) if name in _COLOURED
        )
        self._open()

    def _open(self) -> None:
        number = len(self.titles) + 1
        title = "Devices" if number == 1 else f"Devices ({number})"
        self._sheet = self.book.sheet(title, widths=self._widths, freeze=True)
        self._sheet.append([text_cell(header, bold=True) for header in self._headers])
        self.titles.append(title)
        self._in_sheet = 0

    def append(self, values: list[int | str]) -> None:
        """One row of shown values (`cells.shown_row`), lead columns first."""
        if self._in_sheet == self.max_rows - 1:
            self._close()
            self._open()
        cells: list[object] = list(values)
        for index in self._dates:
            value = cells[index]
            if value and isinstance(value, str):
                serial = excel_date(value)
                if serial is not None:  # a date-time cell, shown as yyyy-mm-dd hh:mm:ss
                    cells[index] = Serial(serial)
        self._sheet.append(cells)
        self._in_sheet += 1
        self.total += 1

    def finish(self) -> None:
        self._close()

    def _close(self) -> None:
        """Give the full sheet its table and status colours."""
        last = max(self._in_sheet + 1, 2)  # a table needs a data row: an empty one, as Excel
        number = len(self.titles)
        name = "Devices" if number == 1 else f"Devices{number}"
        self._sheet.add_table(name, f"A1:{self._last_column}{last}", self._headers)
        for column in self._coloured:
            # One rule per tone, so Excel's rule manager stays readable.
            rules = [
                (
                    "OR(" + ",".join(f'${column}2="{s}"' for s in statuses) + ")",
                    f"{FILLS[tone]}:{FONTS[tone]}",
                )
                for tone, statuses in TONES.items()
            ]
            self._sheet.colour_rules(f"{column}2:{column}{last}", rules)
