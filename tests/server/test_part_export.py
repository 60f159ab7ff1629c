"""The parts export: every matching record once, in the plant's words, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest

from lineguard.line.orm import Inspection
from lineguard.line.part_records import COLUMNS
from lineguard.vision.result import DefectRegion

from .test_spc_api import T0, client


def _add(st, n: int) -> None:
    with st.db.session() as s:
        for i in range(n):
            verdict = ("NG", "OK", "REVIEW", "OK")[i % 4]
            label = {0: "good", 1: "defect", 2: "defect"}.get(i % 7)
            regions = [DefectRegion(3, 4, 5, 6, 20, 2.0, 1.0).to_dict(),      # as the station stores them
                       DefectRegion(1, 1, 2, 2, 3, 2.5, 1.0).to_dict()] if verdict == "NG" else []
            if i == 4:
                regions = [{"area_px": None}, "not a region"]          # edited by hand: skipped, not a 500
            s.add(Inspection(part_id=f"p{i}", line="L1", station="S1", product="cell",
                             lot="LOT-A" if i % 2 else "LOT-B", verdict=verdict, score=0.1 + i / 1000,
                             threshold=0.5, review_threshold=0.4, pixel_threshold=0.5, model_id="m1",
                             model_version="v", registry_version=3, regions=regions, image_sha256=f"{i:064x}",
                             image_width=8, image_height=8, image_key=f"k{i}.png" if i % 3 else None,
                             created_at=T0 + dt.timedelta(seconds=i), reviewed=label is not None,
                             review_label=label, reviewer="Müller" if label else None,
                             reviewed_at=T0 + dt.timedelta(hours=1) if label else None))
        # from a scanner on the line: a spreadsheet must show it, not run it
        s.add(Inspection(part_id='=HYPERLINK("http://evil","open")', line="L1", station="S1", product="cell",
                         lot="-2+3", verdict="OK", score=0.1, threshold=0.5, pixel_threshold=0.5, model_id="m1",
                         model_version="v", image_sha256="f" * 64, image_width=8, image_height=8,
                         created_at=T0 + dt.timedelta(days=1), review_note="@SUM(A1)"))


def _rows(r):
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and r.text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(r.text[1:])))
    assert rows[0] == COLUMNS
    return [dict(zip(COLUMNS, row)) for row in rows[1:]]


def test_the_export_holds_every_matching_part_once_past_many_pages(spc_station):
    st = spc_station()
    _add(st, 2300)       # three pages of the station's reads
    with client(st) as c:
        rows = _rows(c.get("/api/v1/inspections/export"))
        assert len(rows) == 2301 and len({r["id"] for r in rows}) == 2301
        assert [int(r["id"]) for r in rows] == sorted((int(r["id"]) for r in rows), reverse=True)
        lot_b_ng = _rows(c.get("/api/v1/inspections/export", params={"lot": "LOT-B", "verdict": "NG"}))
        with st.db.session() as s:
            expected = s.query(Inspection).filter_by(lot="LOT-B", verdict="NG").count()
        assert len(lot_b_ng) == expected > 0 and {(r["lot"], r["verdict"]) for r in lot_b_ng} == {("LOT-B", "NG")}
        assert len(_rows(c.get("/api/v1/inspections/export", params={"limit": 1500}))) == 1500
        r = c.get("/api/v1/inspections/export", params={"lot": "LOT-B", "verdict": "NG"})
        assert 'filename="lineguard-parts-LOT-B-NG-' in r.headers["content-disposition"]
        assert c.get("/api/v1/inspections/export", params={"verdict": "BAD"}).status_code == 422
        # a filter left blank is no filter, in the list as in the export (the pages send blank fields)
        assert len(c.get("/api/v1/inspections", params={"line": "", "lot": ""}).json()["items"]) == 50
        assert c.get("/api/v1/inspections/export", params={"limit": 0}).status_code == 422


@pytest.mark.one_database
def test_each_row_says_the_verdict_the_review_and_its_outcome_in_plant_words(spc_station):
    st = spc_station()
    _add(st, 28)
    with client(st) as c:
        by_part = {r["part_id"]: r for r in _rows(c.get("/api/v1/inspections/export"))}
    p0, p1, p2, p4, p8, p21 = (by_part[f"p{i}"] for i in (0, 1, 2, 4, 8, 21))
    assert (p0["verdict"], p0["review_label"], p0["review_outcome"]) == ("NG", "good", "false reject")
    assert (p1["verdict"], p1["review_outcome"]) == ("OK", "escape")
    assert (p2["verdict"], p2["review_outcome"]) == ("REVIEW", "defect at review")
    assert (p4["verdict"], p4["review_outcome"], p4["reviewed"]) == ("NG", "", "no")
    assert (p4["regions"], p4["largest_region_px"], p4["largest_region_box"]) == ("1", "", "")
    assert (p8["verdict"], p8["review_outcome"]) == ("NG", "confirmed defect")
    assert (p21["verdict"], p21["review_outcome"]) == ("OK", "confirmed good")
    assert (p0["regions"], p0["largest_region_px"], p0["largest_region_box"]) == ("2", "20", "3 4 5 6")
    assert (p1["regions"], p1["largest_region_px"]) == ("0", "")
    assert p0["reviewer"] == "Müller" and p0["reviewed_at"] == "2026-11-30T01:00:00.000Z"
    assert p0["created_at"] == "2026-11-30T00:00:00.000Z" and p0["image_kept"] == "no" and p1["image_kept"] == "yes"
    assert (float(p0["score"]), float(p0["ng_threshold"]), float(p0["review_threshold"])) == (0.1, 0.5, 0.4)
    assert (p0["model_id"], p0["registry_version"]) == ("m1", "3")
    hostile = by_part["'=HYPERLINK(\"http://evil\",\"open\")"]
    assert hostile["lot"] == "'-2+3" and hostile["review_note"] == "'@SUM(A1)"


@pytest.mark.one_database
def test_a_part_the_station_judged_has_its_region_in_the_export_and_on_the_defect_map(spc_station):
    # the regions as the station itself stores them, not as a test writes them
    from lineguard.line.station import Part

    from .conftest import FakeInspector, png_bytes
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    rec = st.inspect(png_bytes(220, seed=3), Part("judged", "L1", "S1", "cell")).record
    assert rec.verdict == "NG" and rec.regions
    with client(st) as c:
        (row,) = _rows(c.get("/api/v1/inspections/export"))
        dm = c.get("/api/v1/spc/defect-map", params={"since": "2020-01-01T00:00:00Z"}).json()
    x, y, w, h = rec.regions[0]["box"]
    assert row["largest_region_box"] == f"{x} {y} {w} {h}" and row["regions"] == str(len(rec.regions))
    assert dm["regions"] == len(rec.regions) and dm["parts_with_regions"] == 1


def _sheet_rows(data: bytes) -> list[list[tuple[str, str]]]:
    """The cells of an .xlsx's sheet as (type, text): the file must be a whole, well-formed workbook."""
    import xml.etree.ElementTree as ET
    import zipfile
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/styles.xml"} <= set(z.namelist())
        root = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    assert root.find("m:autoFilter", ns) is not None
    out = []
    for row in root.iter(f"{{{ns['m']}}}row"):
        cells = []
        for c in row.findall("m:c", ns):
            assert c.find("m:f", ns) is None                  # no cell is ever a formula
            kind = c.get("t") or ("time" if c.get("s") not in (None, "0", "2") else "n")   # 1, 3 on: times
            text = c.find("m:is/m:t", ns) if kind == "inlineStr" else c.find("m:v", ns)
            cells.append((kind, "" if text is None else text.text or ""))
        out.append(cells)
    return out


@pytest.mark.one_database
def test_the_xlsx_export_keeps_ids_as_text_and_times_as_times(spc_station):
    st = spc_station()
    with st.db.session() as s:
        for pid, lot in (("000123", "0042"), ("12345678901234567890", "1E5"), ('=HYPERLINK("x")\x01', "-7")):
            s.add(Inspection(part_id=pid, line="L1", station="S1", product="cell", lot=lot, verdict="NG", score=0.75,
                             threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v",
                             image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                             created_at=T0 + dt.timedelta(hours=1, minutes=len(pid))))
    with client(st) as c:
        r = c.get("/api/v1/inspections/export", params={"format": "xlsx"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert r.headers["content-disposition"].endswith('.xlsx"')
    rows = _sheet_rows(r.content)
    assert [text for _k, text in rows[0]] == COLUMNS
    by_part = {row[COLUMNS.index("part_id")][1]: dict(zip(COLUMNS, row)) for row in rows[1:]}
    assert set(by_part) == {"000123", "12345678901234567890", '=HYPERLINK("x")\ufffd'}
    first = by_part["000123"]
    assert first["part_id"] == ("inlineStr", "000123") and first["lot"] == ("inlineStr", "0042")
    assert by_part["12345678901234567890"]["lot"] == ("inlineStr", "1E5")
    assert first["score"] == ("n", "0.75") and first["id"][0] == "n"
    kind, days = first["created_at"]
    when = dt.datetime(1899, 12, 30) + dt.timedelta(days=float(days))          # the sheet's day count
    assert kind == "time" and abs(when - (T0 + dt.timedelta(hours=1, minutes=6))) < dt.timedelta(milliseconds=1)
    # a time wider than its column shows as ####: the plant's clock is 30 characters with its
    # UTC offset (2026-10-25 02:30:00.000 +02:00), UTC times 23, in digit widths
    import re
    import zipfile
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    widths = {int(i): float(w) for i, w in re.findall(r'<col min="(\d+)" max="\d+" width="([\d.]+)"', sheet)}
    for column, shown in (("plant_time", 30), ("created_at", 23), ("reviewed_at", 23)):
        assert widths[COLUMNS.index(column) + 1] >= shown + 1, (column, widths)


@pytest.mark.one_database
def test_each_row_has_the_plant_clock_beside_utc(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    with st.db.session() as s:       # 2026-11-30 23:30 UTC: already the 1st of December in Berlin
        s.add(Inspection(part_id="late", line="L1", station="S1", product="cell", verdict="OK", score=0.1,
                         threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v",
                         image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                         created_at=dt.datetime(2026, 11, 30, 23, 30)))
    with client(st) as c:
        (row,) = _rows(c.get("/api/v1/inspections/export"))
        book = _sheet_rows(c.get("/api/v1/inspections/export", params={"format": "xlsx"}).content)
    assert (row["created_at"], row["plant_time"]) == ("2026-11-30T23:30:00.000Z", "2026-12-01T00:30:00.000+01:00")
    kind, days = dict(zip(COLUMNS, book[1]))["plant_time"]
    assert kind == "time" and abs(dt.datetime(1899, 12, 30) + dt.timedelta(days=float(days))
                                  - dt.datetime(2026, 12, 1, 0, 30)) < dt.timedelta(milliseconds=1)


@pytest.mark.one_database
def test_a_time_out_of_range_is_refused_before_the_export_streams(spc_station):
    # valid ISO, but before year 1 once in UTC: refused whole (422), not a download cut short
    st = spc_station()
    with client(st) as c:
        for fmt in ("csv", "xlsx"):
            r = c.get("/api/v1/inspections/export", params={"since": "0001-01-01T00:00:00+14:00", "format": fmt})
            assert r.status_code == 422 and "out of range" in r.json()["error"]["message"]


@pytest.mark.one_database
def test_a_workbook_past_a_sheets_rows_is_refused_not_cut_short(spc_station, tmp_path, monkeypatch):
    """A spreadsheet holds 1,048,576 rows: more parts than that give a 422 (API) or exit 1
    (CLI) saying to narrow them or take CSV, never a workbook Excel refuses or cuts."""
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line import xlsx
    st = spc_station()
    _add(st, 5)                                            # 6 parts with the scanner's
    monkeypatch.setattr(xlsx, "MAX_ROWS", 7)               # header and 6 rows fit
    with client(st) as c:
        assert c.get("/api/v1/inspections/export", params={"format": "xlsx"}).status_code == 200
        monkeypatch.setattr(xlsx, "MAX_ROWS", 6)
        r = c.get("/api/v1/inspections/export", params={"format": "xlsx"})
        assert r.status_code == 422 and "more than 5 rows match" in r.json()["error"]["message"]
        assert len(_rows(c.get("/api/v1/inspections/export"))) == 6          # CSV has no limit
        assert c.get("/api/v1/inspections/export", params={"format": "xlsx", "limit": 5}).status_code == 200
        # counted first: refused before a row is read (a million rows written, then refused, before)
        read = []
        monkeypatch.setattr(st, "each", lambda **kw: read.append(kw) or iter(()))
        r = c.get("/api/v1/inspections/export", params={"format": "xlsx"})
        assert r.status_code == 422 and read == []
    if st.config.db_url:
        return                                             # the CLI's own --db for PostgreSQL is tested elsewhere
    out = tmp_path / "out" / "parts.xlsx"
    out.parent.mkdir()
    r = CliRunner().invoke(app, ["parts", "--data", str(st.config.data_dir), "--out", str(out)])
    assert r.exit_code == 1 and "more than 5 rows match" in r.output, r.output
    assert not out.parent.exists() or list(out.parent.iterdir()) == []      # nothing half-written left


def test_an_export_the_database_breaks_off_says_plainly_that_the_download_is_incomplete(spc_station, caplog):
    import sqlite3

    import pytest
    from sqlalchemy.exc import OperationalError
    st = spc_station()
    _add(st, 1200)          # more than one page of the station's reads
    real_each = st.each

    def each_then_refused(**kw):
        for i, rec in enumerate(real_each(**kw)):
            if i == 1100:      # the second page's read: the database went away
                locked = sqlite3.OperationalError("database is locked")
                locked.sqlite_errorcode = 5              # SQLITE_BUSY, as SQLite sets it
                raise OperationalError("SELECT", {}, locked)
            yield rec
    st.each = each_then_refused
    from lineguard.server.routers.inspections import ExportCutShort
    with client(st) as c, pytest.raises(ExportCutShort, match="was cut short: database is locked"):
        c.get("/api/v1/inspections/export")
    said = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(said) == 1 and "lineguard-parts-" in said[0] and "the download is incomplete" in said[0]
    assert "database is locked" in said[0]
    assert not [r for r in caplog.records if "response already started" in r.getMessage()]


def test_an_export_cut_short_by_an_error_with_no_message_is_said_too():
    import pytest
    from lineguard.server.routers.inspections import ExportCutShort, _cut_short_said

    def pieces():
        yield "a,b\r\n"
        raise TimeoutError()
    with pytest.raises(ExportCutShort, match="cut short: TimeoutError"):
        list(_cut_short_said(pieces(), "lineguard-parts-x"))


def test_the_command_takes_the_times_a_plant_copies_from_an_export_or_the_api(spc_station, tmp_path):
    """`parts --since 2026-11-30T00:00:03Z` (a time as the API and exports write it) and
    `--since "2026-11-30 00:00"` (no seconds) were refused by click's DateTime; an offset is
    the time it names (UTC stored)."""
    from click.testing import CliRunner

    from lineguard.cli import app
    st = spc_station()
    if st.config.db_url:
        return                                             # the period is read alike on PostgreSQL (the API's tests)
    _add(st, 8)                                            # p0..p7 at T0 + 0..7 s

    def ids(*period):
        out = tmp_path / f"parts-{len(list(tmp_path.iterdir()))}.csv"
        r = CliRunner().invoke(app, ["parts", "--data", str(st.config.data_dir), "--out", str(out), *period])
        assert r.exit_code == 0, r.output
        rows = csv.DictReader(io.StringIO(out.read_text("utf-8-sig")))
        return sorted(row["part_id"] for row in rows if not row["part_id"].startswith("'="))   # the next day's

    assert ids("--since", "2026-11-30T00:00:05Z", "--until", "2026-11-30T01:00Z") == ["p5", "p6", "p7"]
    assert ids("--since", "2026-11-30 00:00", "--until", "2026-11-30T01:00:03+01:00") == ["p0", "p1", "p2"]
    r = CliRunner().invoke(app, ["parts", "--data", str(st.config.data_dir), "--out", str(tmp_path / "x.csv"),
                                 "--since", "yesterday"])
    assert r.exit_code == 2 and "2026-12-01T06:00:00Z" in r.output, r.output
