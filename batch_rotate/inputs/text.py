"""CSV and other delimited text, streamed through the stdlib `csv` module: the only CSV parser.

A quoted cell may hold line breaks and is still one cell; row numbers count records (what a
spreadsheet shows), not lines. Nothing is re-read line by line.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batch_rotate.errors import InputError
from batch_rotate.inputs.sheet import (
    MAX_COLUMNS,
    MAX_FIELD_CHARS,
    MAX_LINE_CHARS,
    Record,
    Sheet,
)

_DELIMITERS = ("\t", ";", ",")  # preferred in this order when a header line splits equally
_SEP_LINE = re.compile(r'"?sep=(.)"?[,;\t]*')
# Windows PowerShell 5.1 Export-Csv writes "#TYPE <type name>" above the header.
_TYPE_LINE = re.compile(r'"?#TYPE [^\r\n]*')


class Hashing(io.RawIOBase):
    """A file whose bytes are hashed as they are read, so the file is read once."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._handle.readinto(buffer)
        if count:
            self.digest.update(buffer[:count])
        return count or 0


class _TooLong(Exception):
    """A physical line longer than MAX_LINE_CHARS; carries its line number and start."""

    def __init__(self, line: int, piece: str) -> None:
        self.line, self.piece = line, piece


def encoding_of(path: Path, start: bytes) -> tuple[str, ...]:
    """The encodings to try for a text file, from its first bytes."""
    if start.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{path.name}: is an Excel workbook (.xlsx) with a text-file name; rename it to .xlsx "
            "or save it from Excel as 'CSV UTF-8'"
        )
    if start.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{path.name}: is an old-style .xls or password-protected workbook, not text; save it "
            "from Excel as .xlsx (without a password) or as 'CSV UTF-8'"
        )
    if start.startswith(codecs.BOM_UTF8):
        return ("utf-8-sig",)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return ("utf-16",)  # Excel "Unicode text": the codec reads the BOM's byte order
    if b"\x00" in start:
        if start[1::2].count(0) > len(start) // 4:
            return ("utf-16-le",)
        if start[0::2].count(0) > len(start) // 4:
            return ("utf-16-be",)
        return ()
    return ("utf-8", "cp1252")


def not_text(path: Path, line: int) -> InputError:
    where = f" at line {line}" if line else ""
    return InputError(
        f"{path.name}: not readable as text{where} (tried UTF-8, UTF-16 and Windows-1252); "
        "open it in Excel and save it as 'CSV UTF-8', or export the device list again"
    )


def bad_line(path: Path, encoding: str) -> int:
    """The line of the first byte that `encoding` cannot decode (for the message), else 0."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return lines + chunk.count(b"\n", 0, max(exc.start, 0))
            lines += chunk.count(b"\n")
    return 0


def _physical_lines(text: io.TextIOWrapper, counter: list[int]) -> Iterator[str]:
    """The file's lines (with their line breaks), each at most MAX_LINE_CHARS long."""
    while line := text.readline(MAX_LINE_CHARS):
        counter[0] += 1
        if len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            raise _TooLong(counter[0], line)
        if "\x00" in line:
            raise UnicodeDecodeError("text", b"\x00", 0, 1, "NUL in text")
        yield line


def _sniff(line: str) -> tuple[str, list[str]]:
    """The delimiter that splits the header line into the most cells, and those cells."""
    best, cells = ",", [line.rstrip("\r\n")]
    for delimiter in _DELIMITERS:
        found = next(csv.reader([line], delimiter=delimiter), [])
        if len(found) > len(cells):
            best, cells = delimiter, found
    return best, cells


@contextmanager
def field_limit() -> Iterator[None]:
    """csv's field limit is process-wide: set it to Excel's cell limit for a read, then restore."""
    before = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _too_many_columns(path: Path, row: int, count: str) -> InputError:
    return InputError(
        f"{path.name}: row {row} has {count} cells, more than the {MAX_COLUMNS:,} a device list "
        "may have, so this is not a device list (or its delimiter is wrong); export the list "
        "again, or keep only the identifier column"
    )


def read_text(path: Path, raw: Hashing, encoding: str) -> Sheet:
    """The file's header, and its rows parsed as they are consumed (inside `field_limit`)."""
    text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding=encoding, newline="")
    counter = [0]  # physical lines read so far
    lines = _physical_lines(text, counter)
    row = 0
    forced: str | None = None
    header_line: str | None = None
    try:
        for line in lines:
            row += 1
            stripped = line.strip().strip("\ufeff").strip()
            if not stripped:
                continue
            if forced is None and (match := _SEP_LINE.fullmatch(stripped)):
                forced = match.group(1)  # Excel's "sep=;" line names the delimiter
                continue
            if _TYPE_LINE.fullmatch(stripped):
                continue
            header_line = line
            break
    except _TooLong as exc:
        count = max(exc.piece.count(d) for d in _DELIMITERS)
        shown = f"over {count:,}" if count >= MAX_COLUMNS else "too many"
        if count >= MAX_COLUMNS:
            raise _too_many_columns(path, row + 1, shown) from None
        raise InputError(
            f"{path.name}: line {exc.line} (row {row + 1}) is longer than {MAX_LINE_CHARS:,} "
            "characters, which no device list needs; this is not a device list export: export "
            "the list again"
        ) from None
    if header_line is None:
        raise InputError(f"{path.name}: the file is empty; export the device list again")
    delimiter = forced or _sniff(header_line)[0]

    def all_lines() -> Iterator[str]:
        assert header_line is not None
        yield header_line
        yield from lines

    reader = csv.reader(all_lines(), delimiter=delimiter, strict=False)
    header = _next(path, reader, row, counter[0], delimiter) or [""]
    if len(header) > MAX_COLUMNS:
        raise _too_many_columns(path, row, f"{len(header):,}")
    cells = [cell.strip().strip("\ufeff").strip() for cell in header]
    records = _records(path, reader, row, counter, delimiter, counter[0] + 1)
    return Sheet(cells, row, records, delimiter, "file")


def _next(
    path: Path, reader: Iterator[list[str]], row: int, start: int, delimiter: str
) -> list[str] | None:
    """The next record, with every way the csv module or the line reader can fail as InputError."""
    try:
        return next(reader, None)
    except _TooLong as exc:
        count = exc.piece.count(delimiter)
        if count >= MAX_COLUMNS:
            raise _too_many_columns(path, row, f"over {count:,}") from None
        raise InputError(
            f"{path.name}: row {row} (line {exc.line}) is longer than {MAX_LINE_CHARS:,} "
            "characters, which no device list needs; export the list again"
        ) from None
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise InputError(
                f"{path.name}: row {row} (starting at line {start}) has a cell longer than "
                f"{MAX_FIELD_CHARS:,} characters, the most a spreadsheet cell holds; usually a "
                f"double quote in row {row} opens a cell that is never closed: fix the quotes, "
                "or shorten the cell"
            ) from None
        raise InputError(
            f"{path.name}: row {row} cannot be read as CSV ({exc}); fix the row or export the "
            "list again"
        ) from None


def _records(
    path: Path,
    reader: Iterator[list[str]],
    header_row: int,
    counter: list[int],
    delimiter: str,
    first_line: int,
) -> Iterator[Record]:
    """The rows below the header, numbered as records (a quoted line break stays in its cell)."""
    row = header_row
    while True:
        row += 1
        cells = _next(path, reader, row, first_line, delimiter)
        if cells is None:
            return
        if len(cells) > MAX_COLUMNS:
            raise _too_many_columns(path, row, f"{len(cells):,}")
        last = counter[0]
        yield row, cells, None, first_line, last
        first_line = last + 1
