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
from enum import IntEnum
from pathlib import Path
from typing import IO, Any, Final

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_TYPE = "application/vnd.openxmlformats-officedocument."
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
MAX_CELL_CHARS: Final = 32_767  # Excel's limit per cell
_EPOCH = datetime(1899, 12, 30)
_CHART_EMU_PER_CM = 360_000
_SPACE = frozenset(  # every character str.isspace() is true for (what str.strip() removes)
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003"
    "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_ROWS_PER_WRITE = 500  # rows joined before one write into the zip stream


class Style(IntEnum):
    """The cell formats the report uses (cellXfs order in styles.xml)."""

    PLAIN = 0
    BOLD = 1
    DATE = 2
    WRAP = 3  # wrapped, top-aligned text (Failures' long columns)
    BOLD_DATE = 4


_DATE = int(Style.DATE)
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"


class Serial(float):
    """An Excel date serial (days since 1899-12-30): a number shown as a date-time."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Cell:
    """A value with a style other than its type's default."""

    value: str | int | float | datetime
    style: Style


@dataclass(frozen=True, slots=True)
class Chart:
    """A horizontal bar chart of one counts table (header row then one row per category)."""

    title: str
    anchor: tuple[int, int]  # zero-based (column, row) of the top-left cell
    header_row: int
    last_row: int
    colours: dict[int, str]  # data point index -> RGB
    size_cm: tuple[float, float] = (16.0, 8.0)  # width, height


@dataclass
class _Parts:
    tables: list[tuple[str, str, str, tuple[str, ...]]] = field(default_factory=list)
    formats: list[tuple[str, list[tuple[str, int]]]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


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


def _text(value: str) -> str:
    """Escaped element text; CR, LF and tabs are written as they are (as openpyxl did)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;")


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.16g}"


def _string(ref: str, value: str, s: str) -> str:
    """An inline string cell, so a row needs no shared string table in memory."""
    value = value[:MAX_CELL_CHARS]
    if "&" in value or "<" in value or ">" in value:
        value = _text(value)
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
            f'{_HEAD}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
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
        number = self.rows
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
        return number

    def _flush(self) -> None:
        self._write("".join(self._pending))
        self._pending.clear()

    def add_table(self, name: str, ref: str, headers: tuple[str, ...]) -> None:
        """An Excel table over `ref` (filter buttons, banded rows); the header row is in `ref`."""
        self.parts.tables.append((name, ref, ref, headers))

    def colour_rules(self, ref: str, rules: list[tuple[str, str]]) -> None:
        """Conditional formats on `ref`: (formula, fill tone) pairs, first match wins."""
        self.parts.formats.append((ref, [(f, self.book.dxf(tone)) for f, tone in rules]))

    def add_chart(self, chart: Chart) -> None:
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
                    f'stopIfTrue="1"><formula>{_text(formula)}</formula></cfRule>'
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

    def sheet(self, title: str, *, widths: Sequence[float] = (), freeze: bool = False) -> Sheet:
        """Start the next sheet (the previous one is closed first)."""
        self._close_open()
        number = len(self._sheets) + 1
        # No forced ZIP64 (Excel is strict about it): a sheet's XML stays far below 2 GiB (a
        # full sheet of these rows is ~300 MB); beyond it zipfile refuses rather than corrupts.
        stream = self._zip.open(f"xl/worksheets/sheet{number}.xml", "w")
        sheet = Sheet(self, title, stream, widths, freeze)
        self._sheets.append(sheet)
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
                    self._put(f"xl/charts/chart{chart_id}.xml", _chart_xml(chart, sheet.title))
                    overrides.append((f"/xl/charts/chart{chart_id}.xml", "drawingml.chart+xml"))
                    chart_rels.append(("chart", f"/xl/charts/chart{chart_id}.xml"))
                    anchors.append(_anchor_xml(chart, index))
                self._put(
                    f"xl/drawings/drawing{drawing_id}.xml",
                    f'{_HEAD}<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/'
                    f'2006/spreadsheetDrawing" xmlns:a="{_DRAWING}" xmlns:c="{_CHART}" '
                    f'xmlns:r="{_REL}">{"".join(anchors)}</xdr:wsDr>',
                )
                self._put(f"xl/drawings/_rels/drawing{drawing_id}.xml.rels", _rels(chart_rels))
                overrides.append((f"/xl/drawings/drawing{drawing_id}.xml", "drawing+xml"))
                rels.append(("drawing", f"/xl/drawings/drawing{drawing_id}.xml"))
            for name, ref, filter_ref, headers in sheet.parts.tables:
                table_id += 1
                self._put(
                    f"xl/tables/table{table_id}.xml",
                    _table_xml(table_id, name, ref, filter_ref, headers),
                )
                overrides.append((f"/xl/tables/table{table_id}.xml", "spreadsheetml.table+xml"))
                rels.append(("table", f"/xl/tables/table{table_id}.xml"))
            if rels:
                self._put(f"xl/worksheets/_rels/sheet{number}.xml.rels", _rels(rels))
        self._put("xl/styles.xml", _styles_xml(self._dxfs))
        self._put("xl/theme/theme1.xml", _theme_xml())
        sheets = "".join(
            f'<sheet name="{_attr(s.title)}" sheetId="{n}" r:id="rId{n}"/>'
            for n, s in enumerate(self._sheets, start=1)
        )
        self._put(
            "xl/workbook.xml",
            f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><bookViews><workbookView '
            f'activeTab="0"/></bookViews><sheets>{sheets}</sheets></workbook>',
        )
        book_rels = [
            ("worksheet", f"/xl/worksheets/sheet{n}.xml") for n in range(1, len(self._sheets) + 1)
        ]
        book_rels += [("styles", "/xl/styles.xml"), ("theme", "/xl/theme/theme1.xml")]
        self._put("xl/_rels/workbook.xml.rels", _rels(book_rels))
        self._put(
            "_rels/.rels",
            f'{_HEAD}<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" '
            f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        types = "".join(
            f'<Override PartName="{part}" ContentType="{_TYPE}{kind}"/>' for part, kind in overrides
        )
        self._put(
            "[Content_Types].xml",
            f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            f'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f"{types}</Types>",
        )
        self._zip.close()

    def _put(self, name: str, text: str) -> None:
        self._zip.writestr(name, text.encode("utf-8", "replace"))


_DRAWING = "http://schemas.openxmlformats.org/drawingml/2006/main"
_CHART = "http://schemas.openxmlformats.org/drawingml/2006/chart"


def _rels(targets: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<Relationship Id="rId{i}" Type="{_REL}/{kind}" Target="{target}"/>'
        for i, (kind, target) in enumerate(targets, start=1)
    )
    return f'{_HEAD}<Relationships xmlns="{_PKG_REL}">{items}</Relationships>'


def _table_xml(number: int, name: str, ref: str, filter_ref: str, headers: tuple[str, ...]) -> str:
    columns = "".join(
        f'<tableColumn id="{i}" name="{_attr(h)}"/>' for i, h in enumerate(headers, start=1)
    )
    return (
        f'{_HEAD}<table xmlns="{_MAIN}" id="{number}" name="{name}" displayName="{name}" '
        f'ref="{ref}" headerRowCount="1"><autoFilter ref="{filter_ref}"/>'
        f'<tableColumns count="{len(headers)}">{columns}</tableColumns>'
        '<tableStyleInfo name="TableStyleMedium2" showFirstColumn="0" showLastColumn="0" '
        'showRowStripes="1" showColumnStripes="0"/></table>'
    )


def _anchor_xml(chart: Chart, index: int) -> str:
    col, row = chart.anchor
    width, height = (round(cm * _CHART_EMU_PER_CM) for cm in chart.size_cm)
    return (
        f"<xdr:oneCellAnchor><xdr:from><xdr:col>{col}</xdr:col><xdr:colOff>0</xdr:colOff>"
        f"<xdr:row>{row}</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from>"
        f'<xdr:ext cx="{width}" cy="{height}"/><xdr:graphicFrame macro="">'
        f'<xdr:nvGraphicFramePr><xdr:cNvPr id="{index}" name="Chart {index}"/>'
        "<xdr:cNvGraphicFramePr/></xdr:nvGraphicFramePr>"
        '<xdr:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/></xdr:xfrm>'
        f'<a:graphic><a:graphicData uri="{_CHART}"><c:chart r:id="rId{index}"/>'
        "</a:graphicData></a:graphic></xdr:graphicFrame><xdr:clientData/></xdr:oneCellAnchor>"
    )


def _chart_xml(chart: Chart, sheet_title: str) -> str:
    quoted = "'" + sheet_title.replace("'", "''") + "'"
    first, last = chart.header_row + 1, chart.last_row
    points = "".join(
        f'<c:dPt><c:idx val="{index}"/><c:spPr><a:solidFill><a:srgbClr val="{rgb}"/>'
        '</a:solidFill><a:ln><a:prstDash val="solid"/></a:ln></c:spPr></c:dPt>'
        for index, rgb in sorted(chart.colours.items())
    )
    return (
        f'{_HEAD}<c:chartSpace xmlns:c="{_CHART}" xmlns:a="{_DRAWING}" xmlns:r="{_REL}">'
        "<c:chart><c:title><c:tx><c:rich><a:bodyPr/><a:p><a:pPr><a:defRPr/></a:pPr>"
        f"<a:r><a:t>{_text(chart.title)}</a:t></a:r></a:p></c:rich></c:tx>"
        '<c:overlay val="0"/></c:title><c:autoTitleDeleted val="0"/><c:plotArea><c:barChart>'
        '<c:barDir val="bar"/><c:grouping val="clustered"/><c:varyColors val="0"/><c:ser>'
        '<c:idx val="0"/><c:order val="0"/>'
        f"<c:tx><c:strRef><c:f>{quoted}!B{chart.header_row}</c:f></c:strRef></c:tx>"
        '<c:spPr><a:ln><a:prstDash val="solid"/></a:ln></c:spPr>'
        f"{points}<c:cat><c:numRef><c:f>{quoted}!$A${first}:$A${last}</c:f></c:numRef></c:cat>"
        f"<c:val><c:numRef><c:f>{quoted}!$B${first}:$B${last}</c:f></c:numRef></c:val></c:ser>"
        '<c:gapWidth val="150"/><c:axId val="10"/><c:axId val="100"/></c:barChart>'
        '<c:catAx><c:axId val="10"/><c:scaling><c:orientation val="minMax"/></c:scaling>'
        '<c:delete val="0"/><c:axPos val="l"/><c:majorTickMark val="none"/>'
        '<c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/><c:crossAx val="100"/>'
        '<c:crosses val="autoZero"/><c:auto val="1"/><c:lblAlgn val="ctr"/>'
        '<c:lblOffset val="100"/><c:noMultiLvlLbl val="0"/></c:catAx>'
        '<c:valAx><c:axId val="100"/><c:scaling><c:orientation val="minMax"/></c:scaling>'
        '<c:delete val="0"/><c:axPos val="b"/><c:majorGridlines/>'
        '<c:numFmt formatCode="General" sourceLinked="1"/><c:majorTickMark val="none"/>'
        '<c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/><c:crossAx val="10"/>'
        '<c:crosses val="autoZero"/><c:crossBetween val="between"/></c:valAx></c:plotArea>'
        '<c:plotVisOnly val="1"/><c:dispBlanksAs val="gap"/></c:chart></c:chartSpace>'
    )


def _styles_xml(dxfs: list[str]) -> str:
    """Fonts (default, bold), the date format, five cell formats and the rule colours."""
    dxf = "".join(
        f'<dxf><font><color rgb="00{font}"/></font><fill><patternFill patternType="solid">'
        f'<fgColor rgb="00{fill}"/><bgColor rgb="00{fill}"/></patternFill></fill></dxf>'
        for fill, font in (tone.split(":") for tone in dxfs)
    )
    xf = '<xf numFmtId="{0}" fontId="{1}" fillId="0" borderId="0" xfId="0"{2}>{3}</xf>'
    cell_xfs = "".join(
        (
            xf.format(0, 0, "", ""),
            xf.format(0, 1, ' applyFont="1"', ""),
            xf.format(164, 0, ' applyNumberFormat="1"', ""),
            xf.format(0, 0, ' applyAlignment="1"', '<alignment vertical="top" wrapText="1"/>'),
            xf.format(164, 1, ' applyNumberFormat="1" applyFont="1"', ""),
        )
    )
    return (
        f'{_HEAD}<styleSheet xmlns="{_MAIN}"><numFmts count="1">'
        f'<numFmt numFmtId="164" formatCode="{DATE_FORMAT}"/></numFmts>'
        '<fonts count="2"><font><sz val="11"/><color theme="1"/><name val="Calibri"/>'
        '<family val="2"/><scheme val="minor"/></font><font><b val="1"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        f'</cellStyleXfs><cellXfs count="{len(Style)}">{cell_xfs}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        f'<dxfs count="{len(dxfs)}">{dxf}</dxfs><tableStyles count="0" '
        'defaultTableStyle="TableStyleMedium9" defaultPivotStyle="PivotStyleLight16"/>'
        "</styleSheet>"
    )


def _theme_xml() -> str:
    """Office's default theme (the default font's colour refers to it), as openpyxl ships it."""
    from openpyxl.writer.theme import theme_xml  # a constant; openpyxl writes nothing here

    return str(theme_xml)
