"""A small streaming XLSX writer (stdlib zip and strings): the report's only workbook writer.

Rows go straight into the zip as sheet XML, a few string operations per cell; openpyxl's
write-only path spent ~240 µs per row in a pure-Python XML serializer (issue 23). It writes just
what the report uses: inline strings, numbers, dates, five cell styles, tables, conditional
fills, frozen headers, column widths and bar charts.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

from batch_rotate.report.xlsx_parts import (
    CHART_NS,
    DATE_FORMAT,
    DRAWING_NS,
    MAIN_NS,
    PKG_REL_NS,
    REL_NS,
    XML_HEAD,
    Chart,
    Series,
    StackedChart,
    Style,
    anchor_xml,
    attr,
    chart_xml,
    rels_xml,
    stacked_chart_xml,
    styles_xml,
    table_xml,
    text_xml,
    theme_xml,
)

_TYPE = "application/vnd.openxmlformats-officedocument."
MAX_CELL_CHARS: Final = 32_767  # Excel's limit per cell
_EPOCH = datetime(1899, 12, 30)
_SPACE = frozenset(  # every character str.isspace() is true for (what str.strip() removes)
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003"
    "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_ROWS_PER_WRITE = 500  # rows joined before one write into the zip stream


_DATE = int(Style.DATE)


class Serial(float):
    """An Excel date serial (days since 1899-12-30): a number shown as a date-time."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Cell:
    """A value with a style other than its type's default."""

    value: str | int | float | datetime
    style: Style


@dataclass
class _Parts:
    tables: list[tuple[str, str, str, tuple[str, ...]]] = field(default_factory=list)
    formats: list[tuple[str, list[tuple[str, int]]]] = field(default_factory=list)
    charts: list[Chart | StackedChart] = field(default_factory=list)


def column_letter(index: int) -> str:
    """`1` -> `A`, `27` -> `AA`."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def excel_serial(when: datetime) -> float:
    """Days since Excel's 1899-12-30 epoch, as openpyxl computes them (same stored digits)."""
    days = (when - _EPOCH).days
    if 0 < days <= 60:
        days -= 1  # Excel's phantom 1900-02-29
    seconds = when.hour * 3600 + when.minute * 60 + when.second + when.microsecond / 10**6
    return days + seconds / 86400


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.16g}"


def _string(ref: str, value: str, s: str) -> str:
    """An inline string cell, so a row needs no shared string table in memory."""
    value = value[:MAX_CELL_CHARS]
    if "&" in value or "<" in value or ">" in value:
        value = text_xml(value)
    # as openpyxl: keep leading and trailing spaces of text that is not only spaces
    edge = value[:1].isspace() or value[-1:].isspace()
    space = ' xml:space="preserve"' if edge and not value.isspace() else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{value}</t></is></c>'


def _cell(ref: str, value: object, style: int) -> str:
    """One `<c>` element of any type the report writes."""
    s = f' s="{style}"' if style else ""
    if isinstance(value, str):
        return _string(ref, value, s)
    if isinstance(value, datetime | Serial):
        if not style:
            s = f' s="{Style.DATE}"'
        serial = value if isinstance(value, Serial) else excel_serial(value)
        return f'<c r="{ref}"{s} t="n"><v>{_number(serial)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"{s} t="n"><v>{_number(value)}</v></c>'
    raise TypeError(f"a report cell holds text, a number or a date, not {type(value).__name__}")


class Sheet:
    """One worksheet, streamed into the open zip entry row by row."""

    def __init__(
        self, book: Book, title: str, stream: IO[bytes], widths: Sequence[float], freeze: bool
    ) -> None:
        self.book, self.title, self._stream = book, title, stream
        self.rows = 0
        self.parts = _Parts()
        self._letters: list[str] = []  # column letters, A, B, ... as far as rows reach
        self._pending: list[str] = []
        pane = (
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A1" sqref="A1"/>'
            if freeze
            else '<selection activeCell="A1" sqref="A1"/>'
        )
        cols = "".join(
            f'<col min="{i}" max="{i}" width="{w:g}" customWidth="1"/>'
            for i, w in enumerate(widths, start=1)
        )
        self._write(
            f'{XML_HEAD}<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">'
            f'<sheetViews><sheetView workbookViewId="0">{pane}</sheetView></sheetViews>'
            f'<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/>'
            f"{f'<cols>{cols}</cols>' if cols else ''}<sheetData>"
        )

    def _write(self, text: str) -> None:
        self._stream.write(text.encode("utf-8", "replace"))

    def append(self, cells: Sequence[Any]) -> int:
        """Add a row: None or "" is no cell; text, numbers, dates, or a `Cell` with its style.

        The common cases (text, int) are inlined: this loop runs once per cell of the report.
        """
        self.rows += 1
        number = str(self.rows)  # formatted once, not once per cell
        letters = self._letters
        while len(letters) < len(cells):
            letters.append(column_letter(len(letters) + 1))
        parts = [f'<row r="{number}">']
        add = parts.append
        for letter, value in zip(letters, cells, strict=False):
            cls = value.__class__
            if cls is str:
                if not value:
                    continue
                if (  # the few texts that need escaping, spaces kept or a cut: the long way
                    "&" in value
                    or "<" in value
                    or ">" in value
                    or value[0] in _SPACE
                    or value[-1] in _SPACE
                    or len(value) > MAX_CELL_CHARS
                ):
                    add(_string(f"{letter}{number}", value, ""))
                else:
                    add(f'<c r="{letter}{number}" t="inlineStr"><is><t>{value}</t></is></c>')
            elif cls is int:
                add(f'<c r="{letter}{number}" t="n"><v>{value}</v></c>')
            elif cls is Serial:
                add(f'<c r="{letter}{number}" s="{_DATE}" t="n"><v>{value:.16g}</v></c>')
            elif cls is Cell:
                add(_cell(f"{letter}{number}", value.value, value.style))
            elif value is not None:
                add(_cell(f"{letter}{number}", value, 0))
        add("</row>")
        self._pending.append("".join(parts))
        if len(self._pending) >= _ROWS_PER_WRITE:
            self._flush()
        return self.rows

    def _flush(self) -> None:
        self._write("".join(self._pending))
        self._pending.clear()

    def add_table(self, name: str, ref: str, headers: tuple[str, ...]) -> None:
        """An Excel table over `ref` (filter buttons, banded rows); the header row is in `ref`."""
        self.parts.tables.append((name, ref, ref, headers))

    def colour_rules(self, ref: str, rules: list[tuple[str, str]]) -> None:
        """Conditional formats on `ref`: (formula, fill tone) pairs, first match wins."""
        self.parts.formats.append((ref, [(f, self.book.dxf(tone)) for f, tone in rules]))

    def add_chart(self, chart: Chart | StackedChart) -> None:
        self.parts.charts.append(chart)

    def close(self) -> None:
        """End the sheet's XML (formats, tables and drawing refer to later parts by id)."""
        self._flush()
        tail = ["</sheetData>"]
        priority = 0
        for ref, rules in self.parts.formats:
            tail.append(f'<conditionalFormatting sqref="{ref}">')
            for formula, dxf in rules:
                priority += 1
                tail.append(
                    f'<cfRule type="expression" dxfId="{dxf}" priority="{priority}" '
                    f'stopIfTrue="1"><formula>{text_xml(formula)}</formula></cfRule>'
                )
            tail.append("</conditionalFormatting>")
        tail.append(
            '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/>'
        )
        rel = 0
        if self.parts.charts:
            rel += 1
            tail.append(f'<drawing r:id="rId{rel}"/>')
        if self.parts.tables:
            tail.append(f'<tableParts count="{len(self.parts.tables)}">')
            for _ in self.parts.tables:
                rel += 1
                tail.append(f'<tablePart r:id="rId{rel}"/>')
            tail.append("</tableParts>")
        tail.append("</worksheet>")
        self._write("".join(tail))
        self._stream.close()


class Book:
    """A workbook written into `path` as it goes; `close` adds the parts that index the sheets."""

    def __init__(self, path: Path) -> None:
        # Level 1: the sheet XML is repetitive, so it still shrinks ~10x, at a fraction of the
        # CPU of the default level.
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self._sheets: list[Sheet] = []
        self._open: Sheet | None = None
        self._dxfs: list[str] = []
        self._tabs: list[int] = []  # sheet numbers in tab order
        self._front = 0  # sheets started with `first=True`, shown before the others

    def sheet(
        self, title: str, *, widths: Sequence[float] = (), freeze: bool = False, first: bool = False
    ) -> Sheet:
        """Start the next sheet (the previous one is closed first).

        `first`: its tab comes before the sheets written earlier (a summary gathered while
        the devices streamed is still the tab the workbook opens on).
        """
        self._close_open()
        number = len(self._sheets) + 1
        # No forced ZIP64 (Excel is strict about it): a sheet's XML stays far below 2 GiB (a
        # full sheet of these rows is ~300 MB); beyond it zipfile refuses rather than corrupts.
        stream = self._zip.open(f"xl/worksheets/sheet{number}.xml", "w")
        sheet = Sheet(self, title, stream, widths, freeze)
        self._sheets.append(sheet)
        self._tabs.insert(self._front if first else len(self._tabs), number)
        self._front += first
        self._open = sheet
        return sheet

    def dxf(self, tone: str) -> int:
        """The differential format id for a `fill:font` colour pair (shared by all sheets)."""
        if tone not in self._dxfs:
            self._dxfs.append(tone)
        return self._dxfs.index(tone)

    def _close_open(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    def abandon(self) -> None:
        """Close the zip after a failure; the caller deletes the half-written file."""
        try:
            self._close_open()
        finally:
            self._zip.close()

    def close(self) -> None:
        """Write tables, charts, styles, the workbook and the package index; close the file."""
        self._close_open()
        overrides = [("/xl/workbook.xml", "spreadsheetml.sheet.main+xml")]
        overrides.append(("/xl/styles.xml", "spreadsheetml.styles+xml"))
        overrides.append(("/xl/theme/theme1.xml", "theme+xml"))
        table_id = drawing_id = chart_id = 0
        for number, sheet in enumerate(self._sheets, start=1):
            overrides.append((f"/xl/worksheets/sheet{number}.xml", "spreadsheetml.worksheet+xml"))
            rels: list[tuple[str, str]] = []
            if sheet.parts.charts:
                drawing_id += 1
                anchors, chart_rels = [], []
                for index, chart in enumerate(sheet.parts.charts, start=1):
                    chart_id += 1
                    part = (
                        stacked_chart_xml(chart, sheet.title)
                        if isinstance(chart, StackedChart)
                        else chart_xml(chart, sheet.title)
                    )
                    self._put(f"xl/charts/chart{chart_id}.xml", part)
                    overrides.append((f"/xl/charts/chart{chart_id}.xml", "drawingml.chart+xml"))
                    chart_rels.append(("chart", f"/xl/charts/chart{chart_id}.xml"))
                    anchors.append(anchor_xml(chart, index))
                self._put(
                    f"xl/drawings/drawing{drawing_id}.xml",
                    f'{XML_HEAD}<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/'
                    f'2006/spreadsheetDrawing" xmlns:a="{DRAWING_NS}" xmlns:c="{CHART_NS}" '
                    f'xmlns:r="{REL_NS}">{"".join(anchors)}</xdr:wsDr>',
                )
                self._put(f"xl/drawings/_rels/drawing{drawing_id}.xml.rels", rels_xml(chart_rels))
                overrides.append((f"/xl/drawings/drawing{drawing_id}.xml", "drawing+xml"))
                rels.append(("drawing", f"/xl/drawings/drawing{drawing_id}.xml"))
            for name, ref, filter_ref, headers in sheet.parts.tables:
                table_id += 1
                self._put(
                    f"xl/tables/table{table_id}.xml",
                    table_xml(table_id, name, ref, filter_ref, headers),
                )
                overrides.append((f"/xl/tables/table{table_id}.xml", "spreadsheetml.table+xml"))
                rels.append(("table", f"/xl/tables/table{table_id}.xml"))
            if rels:
                self._put(f"xl/worksheets/_rels/sheet{number}.xml.rels", rels_xml(rels))
        self._put("xl/styles.xml", styles_xml(self._dxfs))
        self._put("xl/theme/theme1.xml", theme_xml())
        sheets = "".join(
            f'<sheet name="{attr(self._sheets[n - 1].title)}" sheetId="{n}" r:id="rId{n}"/>'
            for n in self._tabs
        )
        self._put(
            "xl/workbook.xml",
            f'{XML_HEAD}<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><bookViews><workbookView '
            f'activeTab="0"/></bookViews><sheets>{sheets}</sheets></workbook>',
        )
        book_rels = [
            ("worksheet", f"/xl/worksheets/sheet{n}.xml") for n in range(1, len(self._sheets) + 1)
        ]
        book_rels += [("styles", "/xl/styles.xml"), ("theme", "/xl/theme/theme1.xml")]
        self._put("xl/_rels/workbook.xml.rels", rels_xml(book_rels))
        self._put(
            "_rels/.rels",
            f'{XML_HEAD}<Relationships xmlns="{PKG_REL_NS}"><Relationship Id="rId1" '
            f'Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        types = "".join(
            f'<Override PartName="{part}" ContentType="{_TYPE}{kind}"/>' for part, kind in overrides
        )
        self._put(
            "[Content_Types].xml",
            f'{XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            f'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f"{types}</Types>",
        )
        self._zip.close()

    def _put(self, name: str, text: str) -> None:
        self._zip.writestr(name, text.encode("utf-8", "replace"))


__all__ = [
    "DATE_FORMAT",
    "Book",
    "Cell",
    "Chart",
    "Serial",
    "Series",
    "Sheet",
    "StackedChart",
    "Style",
    "column_letter",
    "excel_serial",
]
