"""The parts export reads only the columns it writes (a lean select, not whole records):
its bytes must stay those the whole-record export wrote, for every kind of value."""
from __future__ import annotations

import datetime as dt
import hashlib
import io

from sqlalchemy import select

from lineguard.line import part_records
from lineguard.line.orm import Inspection
from lineguard.line.shifts import plant_zone
from lineguard.line.station import each_part
from lineguard.vision.result import DefectRegion

from .test_spc_api import client

T0 = dt.datetime(2026, 3, 29, 0, 30, 0, 123456)       # the night Berlin's clocks go forward


def _add_every_kind(st) -> None:
    big = DefectRegion(3, 4, 5, 6, 20, 2.0, 1.0).to_dict()
    small = DefectRegion(1, 1, 2, 2, 3, 2.5, 1.0).to_dict()
    odd_box = {"box": [1.5, 2.25, 10, 0.125], "area_px": 12.5, "peak_score": 0.9}
    kinds = [
        dict(part_id="plain", verdict="OK", score=0.1),
        dict(part_id="ng-two-regions", verdict="NG", score=0.93, regions=[small, big], image_key="a/b.png"),
        dict(part_id="ng-float-box", verdict="NG", score=0.7, regions=[odd_box]),
        dict(part_id="edited-by-hand", verdict="NG", score=0.8, regions=[{"area_px": None}, "not a region", 5]),
        dict(part_id="regions-not-a-list", verdict="NG", score=0.8, regions={"box": [1, 2, 3, 4]}),
        dict(part_id="false-reject", verdict="NG", score=0.66, reviewed=True, review_label="good",
             reviewer="Müller", review_note="Kratzer, nur Staub; \"ok\"\nzweite Zeile",
             reviewed_at=T0 + dt.timedelta(hours=1, microseconds=999)),
        dict(part_id="escape", verdict="OK", score=0.2, reviewed=True, review_label="defect",
             defect_type="scratch", reviewer="李", reviewed_at=T0 + dt.timedelta(days=2), audit_sample=True,
             found_by="customer"),
        dict(part_id="review-defect", verdict="REVIEW", score=0.55, review_threshold=None, reviewed=True,
             review_label="defect", defect_type="crack", reviewer="=cmd|' /C calc'!A0",
             reviewed_at=T0 + dt.timedelta(minutes=5)),
        dict(part_id="red-rabbit", verdict="NG", score=0.99, test_part="rabbit-1", test_expected="NG",
             regions=[big]),
        dict(part_id="doubted-photo", verdict="REVIEW", score=0.5, photo_issues=["too dark", "blurred"]),
        dict(part_id="empty-issues", verdict="OK", score=0.3, photo_issues=[]),
        dict(part_id='=HYPERLINK("http://evil","open")', verdict="OK", score=0.1, lot="-2+3", serial="+49 170",
             review_note="@SUM(A1)", source="camera"),
        dict(part_id="\ttabbed", verdict="OK", score=1e-9, lot="\rreturn", serial="Ünïcødé ✓ 𝔘"),
        dict(part_id="000123", verdict="OK", score=0.123456789012345, lot="LOT,with,commas", serial="007",
             registry_version=None, threshold=0.3333333333333333),
        dict(part_id="late-summer", verdict="NG", score=0.75, created=dt.datetime(2026, 10, 25, 0, 59, 59, 999999)),
    ]
    with st.db.session() as s:
        for i, k in enumerate(kinds):
            created = k.pop("created", T0 + dt.timedelta(seconds=i, microseconds=i * 1001))
            row = dict(line="L1", station="S1", product="cell", lot="LOT-Ä" if i % 2 else None,
                       serial=f"SN{i}" if i % 3 else None, source="api", threshold=0.6, review_threshold=0.45,
                       pixel_threshold=0.5, model_id="cell-m1", model_version="v1.2", registry_version=i,
                       regions=[], timings_ms={"station_model": 12.5}, image_sha256=f"{i:064x}", image_width=64,
                       image_height=48, created_at=created, reviewed=False)
            row.update(k)
            s.add(Inspection(**row))


def _orm_csv(st, zone) -> str:
    # the whole-record path (what the export read before): record_row over ORM objects
    with st.db.session() as s:
        recs = list(s.scalars(select(Inspection).order_by(Inspection.id.desc())))
        return "".join(part_records.csv_lines(recs, zone))


def test_the_export_bytes_are_those_of_the_whole_record_export_for_every_kind_of_value(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    _add_every_kind(st)
    zone = plant_zone("Europe/Berlin")
    expected = _orm_csv(st, zone)
    assert hashlib.sha256(expected.encode()).hexdigest() == GOLDEN_SHA256, expected
    lean = "".join(part_records.csv_lines(each_part(st.db), zone))
    assert lean == expected
    # small pages: the page seams change nothing
    with st.db.session() as s:
        first7 = "".join(part_records.csv_lines(
            list(s.scalars(select(Inspection).order_by(Inspection.id.desc()).limit(7))), zone))
    assert "".join(part_records.csv_lines(each_part(st.db, limit=7), zone)) == first7
    with client(st) as c:
        r = c.get("/api/v1/inspections/export")
        assert r.status_code == 200 and r.content == expected.encode("utf-8")
        book = c.get("/api/v1/inspections/export", params={"format": "xlsx"})
        assert book.status_code == 200
    with st.db.session() as s:
        recs = list(s.scalars(select(Inspection).order_by(Inspection.id.desc())))
        want = [part_records.record_row(r, zone) for r in recs]
    assert [part_records.record_row(r, zone) for r in each_part(st.db)] == want
    out = io.BytesIO()
    assert part_records.write_workbook(each_part(st.db), out, zone) == len(want)


# the bytes before image_width, image_height were added: 42c8bd0487fd5a1d8ee5e2dbcd7ebe5847af0ccd2fea7f4a03b5cb04e8cb3427
# (those plus ",64,48" at the end of each row and the two names at the end of the header)
# the bytes before found_by was added: dd86320b91fcda99d064bee7f84c1b8d35e8b5a5e5f2758c5aad270ebd60ef87
# (those plus "," at the end of each row, ",customer" on the escape's, and the name at the end of the header)
GOLDEN_SHA256 = "bf29a9bd857f016d9fe1293062e2f602e9dc5be75f9e34e79792f2fbcea38d8a"
