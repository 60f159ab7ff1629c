"""Part records as a spreadsheet: the traceability export a quality engineer asks for.

"Which parts of lot 4711 were rejected, by which model, and what did the reviewer say?"
One row a part, in the plant's words: its verdict, score and thresholds, its defect
regions (how many, the largest), the model that judged it, the latest review with
its outcome (false reject, escape, confirmed defect...), and last the photo's size
(``image_width``, ``image_height``: where the camera was changed for one of another resolution),
then where an escape was found (``found_by``: the audit sample, the customer...).

Part ids, lots and notes come from outside (a PLC, a scanner, an operator); a cell that a
spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) is written with
a leading apostrophe so it is shown as text, never run (CSV injection).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, BinaryIO, Iterable, Iterator, Optional

from ..vision.result import DefectRegion
from . import xlsx
from .orm import Inspection
from .spreadsheet_cells import FORMULA_START as _FORMULA_START
from .spreadsheet_cells import spreadsheet_safe

COLUMNS = ["id", "created_at", "plant_time", "line", "station", "product", "lot", "serial", "part_id", "source", "verdict",
           "score", "ng_threshold", "review_threshold", "regions", "largest_region_px", "largest_region_box",
           "model_id", "model_version", "registry_version", "image_kept", "audit_sample", "reviewed",
           "review_label", "review_outcome", "defect_type", "reviewer", "reviewed_at", "review_note",
           "test_part", "test_expected", "photo_issues",
           # the photo's size as the camera took it: a camera replaced by one of another
           # resolution shows as the row where it changes (the night's parts after the change)
           "image_width", "image_height",
           # an escape's: where it was found (reviews.FOUND_BY: audit, customer...), the 8D's question
           "found_by"]     # new columns go last: a sheet's macros read by position

# the record's fields record_row reads: the export selects only these (not whole records
# with their timings and every other column: a year of parts read twice as fast)
RECORD_FIELDS = ("id", "created_at", "line", "station", "product", "lot", "serial", "part_id", "source", "verdict",
                 "score", "threshold", "review_threshold", "regions", "model_id", "model_version", "registry_version",
                 "image_key", "audit_sample", "reviewed", "review_label", "defect_type", "reviewer", "reviewed_at",
                 "review_note", "test_part", "test_expected", "photo_issues", "image_width", "image_height", "found_by")
RECORD_COLUMNS = tuple(getattr(Inspection, f) for f in RECORD_FIELDS)

# what a person's review says of the verdict (a REVIEW part was neither shipped nor
# scrapped by the model: a person decided)
_OUTCOMES = {("NG", "good"): "false reject", ("NG", "defect"): "confirmed defect",
             ("OK", "defect"): "escape", ("OK", "good"): "confirmed good",
             ("REVIEW", "good"): "good at review", ("REVIEW", "defect"): "defect at review"}
# Excel reads a file without it as the local code page: a reviewer named Müller would be garbled
BOM = "\ufeff"


def review_outcome(verdict: str, label: Optional[str]) -> Optional[str]:
    return _OUTCOMES.get((verdict, label)) if label else None


def _csv_cell(value: Any) -> Any:
    """``spreadsheet_safe(_time(value))`` in one step, text first (most cells): the same
    cell, a sixth of a year's export cheaper."""
    cls = value.__class__
    if cls is str:
        return "'" + value if value.startswith(_FORMULA_START) else value
    if value is None:
        return ""
    if cls is int or cls is float or cls is bool:
        return value
    if isinstance(value, dt.datetime):
        return spreadsheet_safe(_time(value))
    return spreadsheet_safe(value)


def _time(t: Any) -> Any:
    if isinstance(t, dt.datetime):
        if t.tzinfo is not None:        # plant time: with its offset, 2026-12-03T07:01:02.000+01:00
            return t.isoformat(timespec="milliseconds")
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"      # records hold UTC
    return t


def _area(region: dict) -> float:
    area = region.get("area_px")
    return float(area) if isinstance(area, (int, float)) else 0.0


def _plant_time(t: Optional[dt.datetime], zone: Optional[dt.tzinfo]) -> Optional[dt.datetime]:
    # the time on the plant's clocks, what a shift lead reads off the sheet
    return None if t is None or zone is None else t.replace(tzinfo=dt.timezone.utc).astimezone(zone)


def record_row(rec: Any, zone: Optional[dt.tzinfo] = None) -> list[Any]:
    """One part's cells: ``created_at`` in UTC, ``plant_time`` the same moment in the
    plant's time zone ``zone`` (aware; empty without a zone). ``rec``: a record, or a row
    of :data:`RECORD_COLUMNS` (what :func:`..station.each_part` yields)."""
    # entries that are not regions (a record edited by hand) are skipped, never a broken file
    regions = [r for r in (rec.regions if isinstance(rec.regions, list) else []) if isinstance(r, dict)]
    largest = max(regions, key=_area, default=None)
    box = DefectRegion.box_of(largest) if largest else None
    return [rec.id, rec.created_at, _plant_time(rec.created_at, zone), rec.line, rec.station, rec.product, rec.lot, rec.serial, rec.part_id,
            rec.source, rec.verdict, rec.score, rec.threshold, rec.review_threshold, len(regions),
            largest.get("area_px") if largest else None, " ".join(f"{v:g}" for v in box) if box else None,
            rec.model_id, rec.model_version,
            rec.registry_version, "yes" if rec.image_key else "no", "yes" if rec.audit_sample else "no",
            "yes" if rec.reviewed else "no", rec.review_label, review_outcome(rec.verdict, rec.review_label),
            rec.defect_type, rec.reviewer, rec.reviewed_at, rec.review_note, rec.test_part, rec.test_expected,
            "; ".join(rec.photo_issues) if isinstance(rec.photo_issues, list) and rec.photo_issues else None,
            rec.image_width, rec.image_height, rec.found_by]


def csv_lines(records: Iterable[Inspection], zone: Optional[dt.tzinfo] = None, bom: bool = True,
              chunk_bytes: int = 1 << 16) -> Iterator[str]:
    """The header, then the records' rows, in pieces of about ``chunk_bytes`` (streamed:
    an export of a year of parts never sits whole in memory; a piece a row cost a thread
    hop each in the web server, 1,800 rows/s)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write(BOM if bom else "")
    writer.writerow(COLUMNS)
    for rec in records:
        writer.writerow([_csv_cell(c) for c in record_row(rec, zone)])
        if buf.tell() >= chunk_bytes:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


# column widths of the .xlsx (characters): ids and times wide enough to read unclipped
# in the sheet's digit widths: a time that does not fit shows as ####, not spilled over;
# UTC times show 23 characters (to the millisecond), plant times 30 (with their offset)
_WIDTHS = {"created_at": 25, "plant_time": 32, "reviewed_at": 25, "part_id": 18, "lot": 12, "serial": 14, "model_id": 18,
           "review_note": 30, "largest_region_box": 16, "review_outcome": 16}


def write_workbook(records: Iterable[Inspection], out: BinaryIO, zone: Optional[dt.tzinfo] = None) -> int:
    """The records as an .xlsx workbook (every cell typed: part ids stay text, times
    are times: ``created_at`` UTC, ``plant_time`` the plant's clock with its UTC offset
    shown beside it, see :class:`.xlsx._Styles`); returns the parts written."""
    return xlsx.write_xlsx(out, COLUMNS, (record_row(rec, zone) for rec in records),
                           widths=[_WIDTHS.get(c, 10) for c in COLUMNS])
