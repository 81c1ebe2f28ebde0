"""What the CSV and XLSX readers hand on: a header and a stream of rows, with hard size limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Excel's own limits: a cell holds at most 32,767 characters. No device list needs more than a
# thousand columns; the caps keep a hostile file from taking the machine (issue 14).
MAX_FIELD_CHARS = 32_767
MAX_COLUMNS = 1_000
# Longest physical CSV line read at once: a thousand ordinary cells fit many times over.
MAX_LINE_CHARS = 1 << 20

# One row below the header: its row number, its cells as text, which cells Excel stored as
# numbers (XLSX only) and, for CSV, the first and last line of the file it spans.
Record = tuple[int, list[str], list[bool] | None, int, int]


@dataclass(frozen=True, slots=True)
class Sheet:
    """A file's header row and the rows below it, read as they are consumed."""

    header: list[str]  # as written, ends stripped; "" for an unnamed column
    header_row: int  # the row number a spreadsheet shows for it (1-based)
    records: Iterator[Record]
    delimiter: str  # CSV: the delimiter; XLSX: ""
    where: str  # "file" or "sheet", for messages
