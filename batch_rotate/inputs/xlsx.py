"""XLSX sheets streamed with openpyxl's read-only reader, never wider than the header: the declared
size is ignored and rows are cut at the header's last named column (at most MAX_COLUMNS), so a cell
at XFD on every row (issue 19) costs what its XML costs, not 16,384 padded cells a row.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO

import openpyxl
from openpyxl.utils import get_column_letter

from batch_rotate.errors import InputError
from batch_rotate.inputs.sheet import MAX_COLUMNS, MAX_FIELD_CHARS, Record, Sheet


def _unreadable(path: Path, exc: BaseException, start: bytes = b"") -> InputError:
    hint = (
        "it is an old-style .xls or password-protected workbook; "
        if start.startswith(b"\xd0\xcf\x11\xe0")
        else ""
    )
    return InputError(
        f"{path.name}: not a readable Excel workbook ({hint}{type(exc).__name__}); open it in "
        "Excel and save it again as .xlsx without a password, or export the list as CSV"
    )


def _cell_text(cell: object) -> str:
    """A workbook cell as the text a user sees (integral floats without '.0')."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime | date | time):
        return cell.isoformat()
    return str(cell)


def _pick_sheet(path: Path, names: list[str], sheet: str | None) -> str:
    if not names:
        raise InputError(f"{path.name}: the workbook has no sheets; export the device list again")
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    folded = [name for name in names if name.strip().casefold() == sheet.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise InputError(
        f"{path.name}: no sheet {sheet!r}; the sheets are: {', '.join(names)}; "
        "give one of them with --sheet"
    )


def read_xlsx(path: Path, handle: BinaryIO, sheet: str | None, start: bytes) -> Sheet:
    """The chosen sheet's header row and a stream of the rows below it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # any failure inside a corrupt workbook: report it, no traceback
        raise _unreadable(path, exc, start) from None
    try:
        chosen = _pick_sheet(path, [str(name) for name in book.sheetnames], sheet)
        worksheet = book[chosen]
        if not hasattr(worksheet, "reset_dimensions"):
            raise InputError(
                f"{path.name}: sheet {chosen!r} is a chart, not cells; choose another with --sheet"
            )
        worksheet.reset_dimensions()  # never trust the declared size (issue 14)
        header, header_row = _header(path, chosen, worksheet)
        rows = _rows(path, worksheet, header_row + 1, len(header))
    except BaseException:
        book.close()
        raise
    return Sheet(header, header_row, _records(book, rows), "", "sheet")


def _header(path: Path, chosen: str, worksheet: Any) -> tuple[list[str], int]:
    """The first row with a value in the first MAX_COLUMNS columns, cut after its last value."""
    rows = _rows(path, worksheet, 1, MAX_COLUMNS)
    try:
        for row, cells, _ in rows:
            named = [index for index, cell in enumerate(cells) if cell.strip()]
            if named:
                return [cell.strip() for cell in cells[: named[-1] + 1]], row
    finally:
        rows.close()  # the data rows are read again from the sheet, as narrow as this header
    last = get_column_letter(MAX_COLUMNS)
    raise InputError(
        f"{path.name}: sheet {chosen!r} is empty (nothing in columns A to {last}, the "
        f"{MAX_COLUMNS:,} a device list may have); choose another with --sheet"
    )


def _records(book: Any, rows: Iterator[tuple[int, list[str], list[bool]]]) -> Iterator[Record]:
    try:
        for row, cells, numeric in rows:
            yield row, cells, numeric, 0, 0
    finally:
        book.close()


def _rows(
    path: Path, worksheet: Any, first: int, width: int
) -> Generator[tuple[int, list[str], list[bool]], None, None]:
    """Rows from `first` on, `width` cells each, as text and number flags; row numbers are
    Excel's. Bounded by `max_col`: openpyxl otherwise pads each row out to its last cell."""
    row = first - 1
    blank: tuple[object, ...] = ()  # openpyxl yields one shared tuple for every row not stored
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for values in worksheet.iter_rows(min_row=first, max_col=width, values_only=True):
                row += 1
                if values is blank or values.count(None) == len(values):  # nothing stored
                    blank = values
                    continue
                cells = [_cell_text(value) for value in values]
                numeric = [value is not None and not isinstance(value, str) for value in values]
                for index, cell in enumerate(cells):
                    if len(cell) > MAX_FIELD_CHARS:
                        raise InputError(
                            f"{path.name}: cell {get_column_letter(index + 1)}{row} (row {row}) "
                            f"holds {len(cell):,} characters, more than the {MAX_FIELD_CHARS:,} "
                            "an Excel cell can; shorten it or export the list again"
                        )
                yield row, cells, numeric
    except InputError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from None
