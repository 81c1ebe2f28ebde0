"""XLSX sheets streamed with openpyxl's read-only reader: the declared size is ignored, so a sheet
that claims (or has one cell at) XFD1048576 costs what its cells cost, not a grid of that size.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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
        rows = _rows(path, worksheet)
        header: list[str] | None = None
        header_row = 0
        for row, cells, _ in rows:
            if any(cell.strip() for cell in cells):
                header, header_row = [cell.strip() for cell in cells], row
                break
        if header is None:
            raise InputError(f"{path.name}: sheet {chosen!r} is empty; choose another with --sheet")
    except BaseException:
        book.close()
        raise
    return Sheet(header, header_row, _records(book, rows), "", "sheet")


def _records(book: Any, rows: Iterator[tuple[int, list[str], list[bool]]]) -> Iterator[Record]:
    try:
        for row, cells, numeric in rows:
            yield row, cells, numeric, 0, 0
    finally:
        book.close()


def _rows(path: Path, worksheet: Any) -> Iterator[tuple[int, list[str], list[bool]]]:
    """Each row (gaps included, so positions are Excel's row numbers) as text and number flags."""
    row = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for values in worksheet.iter_rows(values_only=True):
                row += 1
                if not values:  # a row the sheet does not store: nothing to look at
                    continue
                if len(values) > MAX_COLUMNS:
                    _check_beyond(path, row, values)
                    values = values[:MAX_COLUMNS]
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


def _check_beyond(path: Path, row: int, values: tuple[object, ...]) -> None:
    """A filled cell past the column cap stops the read; empty or blank ones are ignored."""
    for index in range(MAX_COLUMNS, len(values)):
        value = values[index]
        if value is not None and (not isinstance(value, str) or value.strip()):
            raise InputError(
                f"{path.name}: cell {get_column_letter(index + 1)}{row} lies beyond column "
                f"{MAX_COLUMNS:,} ({get_column_letter(MAX_COLUMNS)}), more than a device list "
                "may have; delete what is beyond the device columns, or export the list again"
            )
