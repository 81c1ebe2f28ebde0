"""Report files swapped in atomically: a reader sees the old file or the new, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from batch_rotate.report.xlsx import Book


@contextmanager
def open_book(path: Path) -> Iterator[Book]:
    """A workbook that is abandoned (its zip closed, errors of that ignored) on any failure."""
    book = Book(path)
    try:
        yield book
    except BaseException:
        with suppress(Exception):
            book.abandon()  # the half-written temp file is then deleted with its name
        raise


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success rename it over `target`, else delete it."""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.replace(temp, target)  # atomic: a reader sees the old file or the new, never half
    finally:
        temp.unlink(missing_ok=True)
