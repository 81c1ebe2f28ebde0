"""Large XLSX device lists written by hand (sheet XML straight into the zip), fast enough to make
thousands of rows in a test, in shapes openpyxl's own writer will not produce cheaply: one empty
(styled) cell in column XFD on every row, as formatting a whole row leaves behind (issue 19).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from openpyxl.utils import get_column_letter

from batch_rotate.sim.inventory import EXPORT_HEADERS

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Devices" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/>'
    '<Relationship Id="rId3" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)
# Two cell formats: 0 the default, 1 a fill, so an empty cell with s="1" is what Excel keeps.
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFFFFF00"/></patternFill></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="0" fillId="2" borderId="0" xfId="0" applyFill="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<dimension ref="A1:{corner}"/><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"
XFD = 16_384  # Excel's last column

# The Intune admin center's "All devices" export: 13 columns (the simulator's own header).
INTUNE_HEADER = EXPORT_HEADERS


def intune_rows(count: int) -> Iterator[list[str]]:
    """Realistic export rows: GUIDs, names, UPNs, dates; a seeded UUID stream."""
    seed = uuid.UUID(int=0x1B4E28BA2FA141D2883F0016D3CCA427).int
    for i in range(count):
        device = uuid.UUID(int=(seed + 2 * i) % (1 << 128), version=4)
        entra = uuid.UUID(int=(seed + 2 * i + 1) % (1 << 128), version=4)
        yield [
            str(device),
            f"LT-{i:07d}",
            "Intune",
            "Corporate",
            "Compliant" if i % 7 else "Noncompliant",
            "Windows",
            "10.0.22631.4460",
            f"2026-10-{1 + i % 28:02d} 10:{i % 60:02d}:00",
            f"user{i:07d}@contoso.example",
            f"SN{i:010d}",
            str(entra),
            "Microsoft Entra joined",
            "Yes",
        ]


class _Strings:
    """The shared string table, as Excel writes text cells (each cell holds an index)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        return self.index.setdefault(value, len(self.index))

    def xml(self) -> bytes:
        items = "".join(f"<si><t>{escape(text)}</t></si>" for text in self.index)
        count = len(self.index)
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            f'count="{count}" uniqueCount="{count}">{items}</sst>'
        ).encode()


def _row_xml(number: int, cells: Sequence[str], far_empty_cell: bool, strings: _Strings) -> str:
    parts = [f'<row r="{number}">']
    for column, value in enumerate(cells, start=1):
        if value:
            ref = f"{get_column_letter(column)}{number}"
            parts.append(f'<c r="{ref}" t="s"><v>{strings(value)}</v></c>')
    if far_empty_cell:
        parts.append(f'<c r="XFD{number}" s="1"/>')
    parts.append("</row>")
    return "".join(parts)


def write_xlsx(
    path: Path,
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    far_empty_cell: bool = False,
) -> Path:
    """A one-sheet workbook ('Devices') as Excel writes it (shared strings, a dimension);
    `far_empty_cell` adds an empty styled cell at XFD to every row."""
    strings = _Strings()
    with tempfile.TemporaryFile() as data:
        data.write(_row_xml(1, header, far_empty_cell, strings).encode())
        last, chunk = 1, []
        for last, cells in enumerate(rows, start=2):
            chunk.append(_row_xml(last, cells, far_empty_cell, strings))
            if len(chunk) >= 1000:
                data.write("".join(chunk).encode())
                chunk.clear()
        data.write("".join(chunk).encode())
        corner = "XFD" if far_empty_cell else get_column_letter(len(header))
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
            book.writestr("[Content_Types].xml", _CONTENT_TYPES)
            book.writestr("_rels/.rels", _ROOT_RELS)
            book.writestr("xl/workbook.xml", _WORKBOOK)
            book.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
            book.writestr("xl/styles.xml", _STYLES)
            with book.open("xl/worksheets/sheet1.xml", "w") as sheet:
                sheet.write(_SHEET_HEAD.format(corner=f"{corner}{last}").encode())
                data.seek(0)
                shutil.copyfileobj(data, sheet)
                sheet.write(_SHEET_TAIL.encode())
            book.writestr("xl/sharedStrings.xml", strings.xml())
    return path
