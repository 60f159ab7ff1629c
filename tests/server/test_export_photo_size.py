"""The parts export carries each photo's size (image_width, image_height) in two columns
after those it had before (new columns go last: found_by came after them): after a camera was replaced at night, the quality engineer finds in the sheet the
first part of the new camera's resolution. A sheet's macros read the columns by position,
so the columns before them stay where they were."""
from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from xml.etree import ElementTree

import pytest
from cli_runner import run_in_process

from lineguard.line.orm import Inspection

from .test_spc_api import T0, client

# the export's columns before the photo's size, in the order a sheet's macros read them
COLUMNS_BEFORE = ["id", "created_at", "plant_time", "line", "station", "product", "lot", "serial", "part_id",
                  "source", "verdict", "score", "ng_threshold", "review_threshold", "regions", "largest_region_px",
                  "largest_region_box", "model_id", "model_version", "registry_version", "image_kept",
                  "audit_sample", "reviewed", "review_label", "review_outcome", "defect_type", "reviewer",
                  "reviewed_at", "review_note", "test_part", "test_expected", "photo_issues"]
HEADER = COLUMNS_BEFORE + ["image_width", "image_height", "found_by"]
W, H = HEADER.index("image_width"), HEADER.index("image_height")


def _night_of_the_camera_change(st) -> None:
    # the old camera's 256 x 256 photos, then the new one's 384 x 288 from 23:40
    with st.db.session() as s:
        for i, (w, h) in enumerate([(256, 256)] * 3 + [(384, 288)] * 2):
            s.add(Inspection(part_id=f"p{i}", line="L1", station="S1", product="cell", verdict="OK", score=0.2,
                             threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v",
                             registry_version=3, image_sha256=f"{i:064x}", image_width=w, image_height=h,
                             created_at=T0 + dt.timedelta(minutes=10 * i)))


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def _sizes(rows: list[list[str]]) -> dict[str, tuple[str, str]]:
    return {row[HEADER.index("part_id")]: (row[W], row[H]) for row in rows[1:]}


NIGHT = {"p0": ("256", "256"), "p1": ("256", "256"), "p2": ("256", "256"), "p3": ("384", "288"),
         "p4": ("384", "288")}


@pytest.mark.one_database
def test_the_csv_and_xlsx_exports_carry_the_photos_width_and_height(spc_station):
    st = spc_station()
    _night_of_the_camera_change(st)
    with client(st) as c:
        r = c.get("/api/v1/inspections/export")
        assert r.status_code == 200, r.text
        rows = _csv_rows(r.text)
        assert rows[0] == HEADER
        assert _sizes(rows) == NIGHT
        r = c.get("/api/v1/inspections/export", params={"format": "xlsx"})
        assert r.status_code == 200, r.text
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    book = []
    for row in sheet.iter(f"{{{ns['m']}}}row"):
        cells = []
        for cell in row.findall("m:c", ns):
            text = cell.find("m:is/m:t", ns) if cell.get("t") == "inlineStr" else cell.find("m:v", ns)
            cells.append((cell.get("t"), "" if text is None else text.text or ""))
        book.append(cells)
    assert [text for _kind, text in book[0]] == HEADER
    by_part = {row[HEADER.index("part_id")][1]: row for row in book[1:]}
    # numbers a sheet can filter by (>= 384), not text
    assert {p: (row[W][1], row[H][1]) for p, row in by_part.items()} == NIGHT
    assert all(row[W][0] != "inlineStr" and row[H][0] != "inlineStr" for row in by_part.values())


@pytest.mark.one_database
def test_lineguard_parts_writes_the_photos_size_after_the_columns_before(spc_station, tmp_path):
    st = spc_station()
    _night_of_the_camera_change(st)
    out = tmp_path / "night.csv"
    r = run_in_process("parts", "--data", st.config.data_dir, "--out", out, "--timezone", "UTC")
    assert r.returncode == 0, r.stderr
    rows = _csv_rows(out.read_text(encoding="utf-8"))
    assert rows[0] == HEADER
    assert _sizes(rows) == NIGHT
