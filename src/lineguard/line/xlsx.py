"""A spreadsheet file (Office Open XML, .xlsx) written row by row, without a spreadsheet library.

Why not only CSV: a spreadsheet opening a CSV guesses each cell's type, and part ids like
``000123`` or a 20-digit barcode become numbers (the zeros and digits are gone once the
file is saved). In an .xlsx file every cell carries its type: text stays text, numbers
stay numbers, times are times the sheet can filter by. Text is never a formula here, so
no cell can run anything.

The format is a zip of a few XML parts (ECMA-376 part 1, SpreadsheetML); the rows go
straight into the zip's sheet part as they come, so a year of parts is never held in
memory. Only what a table needs is written: one sheet, a frozen header row with a
filter, column types by value.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from typing import IO, Any, Iterable, Optional, Sequence
from xml.sax.saxutils import escape

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# characters XML 1.0 cannot hold at all (a hostile part id must not make the file unreadable)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_MAX_TEXT = 32767                      # the most characters a cell holds
MAX_ROWS = 1_048_576                   # the most rows a sheet holds, its header included


class TooManyRows(ValueError):
    """More rows than a sheet holds: a workbook past it is one a spreadsheet refuses or cuts."""

    def __init__(self) -> None:
        super().__init__(f"more than {MAX_ROWS - 1:,} rows match, and a spreadsheet holds no more: narrow them "
                         "(a shorter time, one line) or take CSV, which has no limit")


def check_fits(rows: int) -> None:
    """Refuse (:class:`TooManyRows`) before writing a workbook of this many rows (a count
    made first: the writer's own check comes only after a million rows written)."""
    if rows + 1 > MAX_ROWS:
        raise TooManyRows()


_EPOCH = dt.datetime(1899, 12, 30)     # day 0 of a sheet's dates (1900 date system)

_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_ROOT_RELS = _HEAD + (
    f'<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" Type="{_REL}/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>')


def _package(z: zipfile.ZipFile, sheets: Sequence[str]) -> None:
    """The parts every workbook holds besides its sheets and styles, for ``sheets`` (their
    names, in order: sheet1.xml, sheet2.xml, ...)."""
    n = len(sheets)
    z.writestr("[Content_Types].xml", _HEAD + (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        + "".join(f'<Override PartName="/xl/worksheets/sheet{i + 1}.xml" ContentType="{_SHEET_TYPE}"/>'
                  for i in range(n))
        + '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'))
    z.writestr("_rels/.rels", _ROOT_RELS)
    z.writestr("xl/_rels/workbook.xml.rels", _HEAD + (
        f'<Relationships xmlns="{_PKG_REL}">'
        + "".join(f'<Relationship Id="rId{i + 1}" Type="{_REL}/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
                  for i in range(n))
        + f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/></Relationships>'))
    # a sheet's name: at most 31 characters, none XML cannot hold
    z.writestr("xl/workbook.xml", _HEAD + (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
        + "".join(f'<sheet name="{escape(_NOT_XML.sub("", name)[:31])}" sheetId="{i + 1}" r:id="rId{i + 1}"/>'
                  for i, name in enumerate(sheets))
        + "</sheets></workbook>"))


def _sheet_start(header: Sequence[str], widths: Sequence[float] = ()) -> str:
    """A sheet up to its first data row: the header row bold and frozen, column widths."""
    cols = "".join(f'<col min="{i + 1}" max="{i + 1}" width="{w:g}" customWidth="1"/>' for i, w in enumerate(widths))
    return (_HEAD + f'<worksheet xmlns="{_MAIN}"><sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '</sheetView></sheetViews>' + (f"<cols>{cols}</cols>" if cols else "") + '<sheetData>'
            '<row r="1">' + "".join(_text(h, style=2) for h in header) + "</row>")


def _sheet_end(header: Sequence[str], rows: int) -> str:
    """After the last data row: a filter over the header and ``rows`` rows."""
    return f'</sheetData><autoFilter ref="A1:{column_name(max(len(header), 1) - 1)}{rows + 1}"/></worksheet>'


# style 0: plain; 1: date and time (yyyy-mm-dd hh:mm:ss.000); 2: bold (the header); 3 on: a
# time on a plant's clock, its UTC offset shown beside it (one style per offset met)
_TIME_FORMAT = "yyyy\\-mm\\-dd\\ hh:mm:ss.000"


class _Styles:
    """The workbook's cell styles, as its rows come to need them: a plant's times carry
    their UTC offset (2026-10-25 02:30 happens at +02:00 and again at +01:00 where the
    clocks go back), and a sheet's time has no zone, so the offset is written in the
    cell's number format: shown beside the time, while the cell stays a time to sort and
    filter by."""

    def __init__(self) -> None:
        self.offsets: dict[dt.timedelta, int] = {}

    def of_time(self, t: dt.datetime) -> int:
        off = t.utcoffset()
        if off is None:
            return 1
        return self.offsets.setdefault(off, 3 + len(self.offsets))

    def xml(self) -> str:
        formats = [(164, _TIME_FORMAT)] + [(165 + i, f'{_TIME_FORMAT}\\ "{_offset_text(off)}"')
                                           for i, off in enumerate(self.offsets)]
        num_fmts = "".join(f'<numFmt numFmtId="{i}" formatCode="{escape(code, {chr(34): "&quot;"})}"/>'
                           for i, code in formats)
        time_xfs = "".join(f'<xf numFmtId="{i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
                           for i, _code in formats[1:])
        return _HEAD + (
            f'<styleSheet xmlns="{_MAIN}">'
            f'<numFmts count="{len(formats)}">{num_fmts}</numFmts>'
            '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
            '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{3 + len(self.offsets)}"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
            '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
            '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
            f'{time_xfs}</cellXfs></styleSheet>')


def _offset_text(off: dt.timedelta) -> str:
    """+02:00, -05:00, +05:30 (as ISO 8601 and the CSV write it)."""
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def column_name(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name


def _text(value: str, style: int = 0) -> str:
    value = _NOT_XML.sub("\ufffd", value)[:_MAX_TEXT]
    space = ' xml:space="preserve"' if value != value.strip() else ""
    s = f' s="{style}"' if style else ""
    return f'<c t="inlineStr"{s}><is><t{space}>{escape(value)}</t></is></c>'


def cell(value: Any, styles: Optional[_Styles] = None) -> str:
    """One cell, typed by its value: None empty, bool and numbers numbers, datetimes
    times (as their clock shows them, an aware one with its UTC offset beside it where
    ``styles`` gathers the workbook's styles), everything else text."""
    if value is None or value == "":
        return "<c/>"
    if isinstance(value, bool):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"<c><v>{value!r}</v></c>"
    if isinstance(value, dt.datetime):
        # a sheet's times have no zone: an aware time is written as its own clock shows it.
        # Floored to the millisecond the format shows: a sheet rounds at display, and a
        # part at 05:59:59.9996 shown as 06:00:00.000 reads as the next shift's
        t = value.replace(tzinfo=None)
        t -= dt.timedelta(microseconds=t.microsecond % 1000)
        days = (t - _EPOCH) / dt.timedelta(days=1)
        style = styles.of_time(value) if styles is not None else 1
        return f'<c s="{style}"><v>{days:.10f}</v></c>'
    return _text(str(value))


def write_xlsx(out: IO[bytes], header: Sequence[str], rows: Iterable[Sequence[Any]], sheet: str = "parts",
               widths: Sequence[float] = ()) -> int:
    """Write a one-sheet workbook to ``out`` (a binary file), its rows streamed (a parts
    export of up to MAX_ROWS rows); returns the rows written."""
    n = 0
    styles = _Styles()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        _package(z, [sheet])
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            f.write(_sheet_start(header, widths).encode())
            buf: list[str] = []
            for row in rows:
                if n + 1 >= MAX_ROWS:
                    raise TooManyRows()    # more came than were counted (parts recorded meanwhile)
                n += 1
                buf.append(f'<row r="{n + 1}">' + "".join(cell(v, styles) for v in row) + "</row>")
                if len(buf) >= 500:
                    f.write("".join(buf).encode())
                    buf.clear()
            f.write("".join(buf).encode())
            f.write(_sheet_end(header, n).encode())
        # last: only the rows tell which UTC offsets the plant's times need a style for
        z.writestr("xl/styles.xml", styles.xml())
    return n


def write_workbook(out: IO[bytes], sheets: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> None:
    """A workbook of several sheets (name, header, rows), each a table as write_xlsx writes
    one, their cells sharing one style sheet: for reports of a few thousand rows at most
    (each sheet is built whole in memory)."""
    styles = _Styles()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        _package(z, [name for name, _h, _r in sheets])
        for i, (_name, header, rows) in enumerate(sheets):
            if len(rows) + 1 >= MAX_ROWS:
                raise TooManyRows()
            body = "".join(f'<row r="{j + 2}">' + "".join(cell(v, styles) for v in row) + "</row>"
                           for j, row in enumerate(rows))
            z.writestr(f"xl/worksheets/sheet{i + 1}.xml", _sheet_start(header) + body + _sheet_end(header, len(rows)))
        z.writestr("xl/styles.xml", styles.xml())     # last: the rows told which UTC offsets need a style
