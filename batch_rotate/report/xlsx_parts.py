"""The package parts of an XLSX file besides the sheets' rows: relationships, tables, drawings,
charts, styles and the theme, as the XML Excel expects (written once per workbook)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"


class Style(IntEnum):
    """The cell formats the report uses (cellXfs order in styles.xml)."""

    PLAIN = 0
    BOLD = 1
    DATE = 2
    WRAP = 3  # wrapped, top-aligned text (Failures' long columns)
    BOLD_DATE = 4


XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
CHART_EMU_PER_CM = 360_000


@dataclass(frozen=True, slots=True)
class Chart:
    """A horizontal bar chart of one counts table (header row then one row per category)."""

    title: str
    anchor: tuple[int, int]  # zero-based (column, row) of the top-left cell
    header_row: int
    last_row: int
    colours: dict[int, str]  # data point index -> RGB
    size_cm: tuple[float, float] = (16.0, 8.0)  # width, height


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a `StackedChart`: its column of the table, colour, and values (the cache)."""

    column: str  # the column letter holding the series' header and values
    name: str
    colour: str  # RGB
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class StackedChart:
    """Horizontal stacked bars, one per category (a table row), one segment per series.

    Cells are referenced, so Excel redraws from the sheet; the values are also cached in the
    chart, so a viewer that does not recalculate still draws it.
    """

    title: str
    anchor: tuple[int, int]  # zero-based (column, row) of the top-left cell
    header_row: int  # the table's header row; categories and values follow it
    category_column: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    size_cm: tuple[float, float] = (16.0, 8.0)  # width, height


def text_xml(value: str) -> str:
    """Escaped element text; CR, LF and tabs are written as they are (as openpyxl did)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def attr(value: str) -> str:
    return text_xml(value).replace('"', "&quot;")


DRAWING_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
CHART_NS = "http://schemas.openxmlformats.org/drawingml/2006/chart"


def rels_xml(targets: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<Relationship Id="rId{i}" Type="{REL_NS}/{kind}" Target="{target}"/>'
        for i, (kind, target) in enumerate(targets, start=1)
    )
    return f'{XML_HEAD}<Relationships xmlns="{PKG_REL_NS}">{items}</Relationships>'


def table_xml(number: int, name: str, ref: str, filter_ref: str, headers: tuple[str, ...]) -> str:
    columns = "".join(
        f'<tableColumn id="{i}" name="{attr(h)}"/>' for i, h in enumerate(headers, start=1)
    )
    return (
        f'{XML_HEAD}<table xmlns="{MAIN_NS}" id="{number}" name="{name}" displayName="{name}" '
        f'ref="{ref}" headerRowCount="1"><autoFilter ref="{filter_ref}"/>'
        f'<tableColumns count="{len(headers)}">{columns}</tableColumns>'
        '<tableStyleInfo name="TableStyleMedium2" showFirstColumn="0" showLastColumn="0" '
        'showRowStripes="1" showColumnStripes="0"/></table>'
    )


def anchor_xml(chart: Chart | StackedChart, index: int) -> str:
    col, row = chart.anchor
    width, height = (round(cm * CHART_EMU_PER_CM) for cm in chart.size_cm)
    return (
        f"<xdr:oneCellAnchor><xdr:from><xdr:col>{col}</xdr:col><xdr:colOff>0</xdr:colOff>"
        f"<xdr:row>{row}</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from>"
        f'<xdr:ext cx="{width}" cy="{height}"/><xdr:graphicFrame macro="">'
        f'<xdr:nvGraphicFramePr><xdr:cNvPr id="{index}" name="Chart {index}"/>'
        "<xdr:cNvGraphicFramePr/></xdr:nvGraphicFramePr>"
        '<xdr:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/></xdr:xfrm>'
        f'<a:graphic><a:graphicData uri="{CHART_NS}"><c:chart r:id="rId{index}"/>'
        "</a:graphicData></a:graphic></xdr:graphicFrame><xdr:clientData/></xdr:oneCellAnchor>"
    )


def chart_xml(chart: Chart, sheet_title: str) -> str:
    quoted = "'" + sheet_title.replace("'", "''") + "'"
    first, last = chart.header_row + 1, chart.last_row
    points = "".join(
        f'<c:dPt><c:idx val="{index}"/><c:spPr><a:solidFill><a:srgbClr val="{rgb}"/>'
        '</a:solidFill><a:ln><a:prstDash val="solid"/></a:ln></c:spPr></c:dPt>'
        for index, rgb in sorted(chart.colours.items())
    )
    return (
        f'{XML_HEAD}<c:chartSpace xmlns:c="{CHART_NS}" xmlns:a="{DRAWING_NS}" xmlns:r="{REL_NS}">'
        "<c:chart><c:title><c:tx><c:rich><a:bodyPr/><a:p><a:pPr><a:defRPr/></a:pPr>"
        f"<a:r><a:t>{text_xml(chart.title)}</a:t></a:r></a:p></c:rich></c:tx>"
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


def _cache(kind: str, values: tuple[str, ...] | tuple[float, ...]) -> str:
    points = "".join(
        f'<c:pt idx="{i}"><c:v>{text_xml(str(v)) if kind == "str" else f"{v:.16g}"}</c:v></c:pt>'
        for i, v in enumerate(values)
    )
    head = "" if kind == "str" else "<c:formatCode>General</c:formatCode>"
    return f'<c:{kind}Cache>{head}<c:ptCount val="{len(values)}"/>{points}</c:{kind}Cache>'


def stacked_chart_xml(chart: StackedChart, sheet_title: str) -> str:
    """A stacked bar chart's part: categories top to bottom in table order, legend below."""
    quoted = "'" + sheet_title.replace("'", "''") + "'"
    first, last = chart.header_row + 1, chart.header_row + max(len(chart.categories), 1)
    cat = chart.category_column
    categories = (
        f"<c:cat><c:strRef><c:f>{quoted}!${cat}${first}:${cat}${last}</c:f>"
        f"{_cache('str', chart.categories)}</c:strRef></c:cat>"
    )
    series = "".join(
        f'<c:ser><c:idx val="{i}"/><c:order val="{i}"/><c:tx><c:strRef>'
        f"<c:f>{quoted}!${s.column}${chart.header_row}</c:f>{_cache('str', (s.name,))}"
        f'</c:strRef></c:tx><c:spPr><a:solidFill><a:srgbClr val="{s.colour}"/></a:solidFill>'
        f'</c:spPr><c:invertIfNegative val="0"/>{categories}<c:val><c:numRef>'
        f"<c:f>{quoted}!${s.column}${first}:${s.column}${last}</c:f>"
        f"{_cache('num', s.values)}</c:numRef></c:val></c:ser>"
        for i, s in enumerate(chart.series)
    )
    return (
        f'{XML_HEAD}<c:chartSpace xmlns:c="{CHART_NS}" xmlns:a="{DRAWING_NS}" xmlns:r="{REL_NS}">'
        "<c:chart><c:title><c:tx><c:rich><a:bodyPr/><a:p><a:pPr><a:defRPr/></a:pPr>"
        f"<a:r><a:t>{text_xml(chart.title)}</a:t></a:r></a:p></c:rich></c:tx>"
        '<c:overlay val="0"/></c:title><c:autoTitleDeleted val="0"/><c:plotArea><c:barChart>'
        '<c:barDir val="bar"/><c:grouping val="stacked"/><c:varyColors val="0"/>'
        f'{series}<c:gapWidth val="60"/><c:overlap val="100"/>'
        '<c:axId val="10"/><c:axId val="100"/></c:barChart>'
        # maxMin: the first tenant on top, as in the table
        '<c:catAx><c:axId val="10"/><c:scaling><c:orientation val="maxMin"/></c:scaling>'
        '<c:delete val="0"/><c:axPos val="l"/><c:numFmt formatCode="General" sourceLinked="0"/>'
        '<c:majorTickMark val="none"/><c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/>'
        '<c:crossAx val="100"/><c:crosses val="autoZero"/><c:auto val="1"/>'
        '<c:lblAlgn val="ctr"/><c:lblOffset val="100"/><c:noMultiLvlLbl val="0"/></c:catAx>'
        '<c:valAx><c:axId val="100"/><c:scaling><c:orientation val="minMax"/></c:scaling>'
        '<c:delete val="0"/><c:axPos val="t"/><c:majorGridlines/>'
        '<c:numFmt formatCode="General" sourceLinked="1"/><c:majorTickMark val="none"/>'
        '<c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/><c:crossAx val="10"/>'
        '<c:crosses val="autoZero"/><c:crossBetween val="between"/></c:valAx></c:plotArea>'
        '<c:legend><c:legendPos val="b"/><c:overlay val="0"/></c:legend>'
        '<c:plotVisOnly val="1"/><c:dispBlanksAs val="gap"/></c:chart></c:chartSpace>'
    )


def styles_xml(dxfs: list[str]) -> str:
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
        f'{XML_HEAD}<styleSheet xmlns="{MAIN_NS}"><numFmts count="1">'
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


def theme_xml() -> str:
    """Office's default theme (the default font's colour refers to it), as openpyxl ships it."""
    from openpyxl.writer.theme import theme_xml  # a constant; openpyxl writes nothing here

    return str(theme_xml)
