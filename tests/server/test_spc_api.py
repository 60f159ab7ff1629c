"""The SPC endpoints on SQLite and PostgreSQL: subgroups cut in the plant's time zone,
the hand-computed p-chart through the API, drift, reviewed rates, CSV, refusals."""
from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

T0 = dt.datetime(2026, 11, 30, 0, 0)


def add_parts(st, rows):
    """rows: (created_at, verdict, score[, line, lot, review_label, audit_sample]) -> stored records."""
    from sqlalchemy import insert

    from lineguard.line.orm import Inspection
    records = []
    for r in rows:
        t, verdict, score = r[:3]
        label = r[5] if len(r) > 5 else None
        records.append(dict(part_id=f"p{uuid.uuid4().hex[:12]}", line=r[3] if len(r) > 3 else "L1", station="S1",
                            product="cell", lot=r[4] if len(r) > 4 else None, verdict=verdict, score=float(score),
                            threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v",
                            image_sha256=uuid.uuid4().hex, image_width=8, image_height=8, created_at=t,
                            reviewed=label is not None, review_label=label,
                            audit_sample=bool(r[6]) if len(r) > 6 else False))
    if not records:
        return
    # one executemany, not an ORM object a part: thousands of parts a test, and on
    # PostgreSQL the ORM's batches of INSERT ... RETURNING cost five times the CPU
    with st.db.session() as s:
        s.execute(insert(Inspection), records)


def hand_example(t0=T0, line="L1"):
    """The 10-subgroup example of tests/line/test_spc.py, one subgroup an hour."""
    n = [100, 80, 120, 100, 50, 100, 150, 100, 100, 100]
    d = [2, 1, 3, 2, 6, 1, 2, 0, 3, 2]
    rows = []
    for h, (ni, di) in enumerate(zip(n, d)):
        for j in range(ni):
            t = t0 + dt.timedelta(hours=h, seconds=j * 20)   # at most 150 parts: 50 minutes
            rows.append((t, "NG" if j < di else "OK", 0.6 if j < di else 0.3, line))
    return rows


def _sheet(r) -> str:
    """A CSV answer's text, after the BOM every CSV of the station starts with (for Excel)."""
    assert r.status_code == 200 and r.text.startswith("\ufeff"), r.text[:200]
    return r.text[1:]


def client(st):
    from lineguard.server.app import create_app
    return TestClient(create_app(station=st))


def test_p_chart_through_the_api_matches_the_hand_computation(spc_station):
    st = spc_station()
    add_parts(st, hand_example() + hand_example(line="L2")[:300])     # another line: filtered out
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params={"line": "L1", "by": "hour", "since": "2026-11-30T00:00:00Z",
                                                 "until": "2026-11-30T10:00:00Z"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["by"] == "hour" and body["centre"] == pytest.approx(0.022)
        pts = body["points"]
        assert [p["n"] for p in pts] == [100, 80, 120, 100, 50, 100, 150, 100, 100, 100]
        assert [p["label"] for p in pts][:2] == ["2026-11-30 00:00", "2026-11-30 01:00"]
        assert pts[0]["start"] == "2026-11-30T00:00:00Z"
        assert pts[4]["ucl"] == pytest.approx(0.11) and pts[4]["rules"] == [1]     # beyond: 6 NG of 50
        assert [(a["index"], a["label"], a["rule"]) for a in body["alarms"]] == [(4, "2026-11-30 04:00", 1)]
        assert body["alarms"][0]["text"].startswith("2026-11-30 04:00: defect rate above the control limit")
        # every line: L2's 300 parts join in
        all_lines = c.get("/api/v1/spc/p-chart", params={"line": "", "by": "hour", "since": "2026-11-30T00:00:00Z",
                                                         "until": "2026-11-30T10:00:00Z"}).json()
        assert all_lines["parts"] == 1300
        # until is exclusive: the last hour drops out
        short = c.get("/api/v1/spc/p-chart", params={"line": "L1", "since": "2026-11-30T00:00:00Z",
                                                     "until": "2026-11-30T09:00:00Z"}).json()
        assert len(short["points"]) == 9


def test_subgroups_follow_the_plant_time_zone_and_shifts(spc_station):
    # India is UTC+5:30: its midnight is 18:30 UTC, inside a UTC hour
    st = spc_station(timezone="Asia/Kolkata", shift_starts=("06:00", "18:00"))
    add_parts(st, [(dt.datetime(2026, 11, 30, 18, 20), "OK", 0.1), (dt.datetime(2026, 11, 30, 18, 40), "NG", 0.9),
                   (dt.datetime(2026, 11, 30, 18, 50), "OK", 0.1)])
    with client(st) as c:
        q = {"since": "2026-11-30T00:00:00Z", "until": "2026-12-02T00:00:00Z"}
        days = c.get("/api/v1/spc/p-chart", params={**q, "by": "day"}).json()["points"]
        assert [(p["label"], p["n"], p["defects"]) for p in days] == [("2026-11-30", 1, 0), ("2026-12-01", 2, 1)]
        assert days[1]["start"] == "2026-11-30T18:30:00Z"
        hours = c.get("/api/v1/spc/p-chart", params={**q, "by": "hour"}).json()["points"]
        assert [(p["label"], p["n"]) for p in hours] == [("2026-11-30 23:00", 1), ("2026-12-01 00:00", 2)]
        # 18:20 UTC is 23:50 local: the night shift that began 18:00 local on the 30th
        shifts = c.get("/api/v1/spc/p-chart", params={**q, "by": "shift"}).json()["points"]
        assert [(p["label"], p["n"]) for p in shifts] == [("2026-11-30 S2 (18:00)", 3)]
        assert shifts[0]["start"] == "2026-11-30T12:30:00Z"


def test_p_chart_by_lot_and_csv(spc_station):
    st = spc_station()
    add_parts(st, [(T0 + dt.timedelta(minutes=i), "NG" if i % 10 == 0 else "OK", 0.2, "L1", f"LOT-{i // 20}")
                   for i in range(60)] + [(T0, "OK", 0.2, "L1", None)]
              + [(T0 + dt.timedelta(minutes=i), "OK", 0.2, "L1", "=1+2") for i in range(3)])    # a scanner's lot
    with client(st) as c:
        q = {"by": "lot", "since": "2026-11-29T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
        body = c.get("/api/v1/spc/p-chart", params=q).json()
        assert [(p["label"], p["n"], p["defects"]) for p in body["points"]] == \
            [("=1+2", 3, 0), ("LOT-0", 20, 2), ("LOT-1", 20, 2), ("LOT-2", 20, 2)]
        # the part sent with no lot is not on the chart, and the answer says so (it was silent)
        assert body["without_lot"] == 1
        assert c.get("/api/v1/spc/p-chart", params={**q, "by": "hour"}).json()["without_lot"] is None
        r = c.get("/api/v1/spc/p-chart", params={**q, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert 'filename="lineguard-p-chart-lot-20261129T0000Z-20261201T0000Z.csv"' in \
            r.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(_sheet(r))))
        assert rows[0] == ["label", "start", "n", "defects", "p", "ucl", "lcl", "centre", "z", "rules", "ng"]
        assert [row[0] for row in rows[1:]] == ["'=1+2", "LOT-0", "LOT-1", "LOT-2"]    # shown, never run
        assert float(rows[2][4]) == pytest.approx(0.1)


@pytest.mark.one_database
def test_scores_drift_alarm_through_the_api(spc_station):
    st = spc_station()
    rng = np.random.default_rng(0)
    rows = []
    for h in range(20):
        shift = 0.2 if h >= 12 else 0.0      # the camera was knocked at 12:00
        for j, s in enumerate(rng.normal(1.0, 0.2, 40) + shift):
            rows.append((T0 + dt.timedelta(hours=h, seconds=j * 60), "OK", s))
    add_parts(st, rows)
    with client(st) as c:
        q = {"by": "hour", "since": "2026-11-30T00:00:00Z", "until": "2026-11-30T20:00:00Z"}
        body = c.get("/api/v1/spc/scores", params=q).json()
        assert body["drift"]["alarm"] and body["drift"]["index"] == 12
        assert body["drift"]["label"] == "2026-11-30 12:00" and "higher" in body["drift"]["text"]
        assert body["baseline"]["subgroups"] == 5 and body["baseline"]["n"] == 200
        assert len(body["points"]) == 20 and body["points"][0]["n"] == 40
        first = np.array([r[2] for r in rows[:40]])
        assert body["points"][0]["median"] == pytest.approx(np.median(first))
        assert body["points"][0]["p95"] == pytest.approx(np.quantile(first, 0.95))
        stable = c.get("/api/v1/spc/scores", params={**q, "until": "2026-11-30T12:00:00Z"}).json()
        assert not stable["drift"]["alarm"]
        r = c.get("/api/v1/spc/scores", params={**q, "format": "csv"})
        rows_csv = list(csv.reader(io.StringIO(_sheet(r))))
        assert rows_csv[0] == ["label", "start", "n", "mean", "median", "p95", "shift", "z", "drift"]
        assert len(rows_csv) == 21 and rows_csv[13][-1] == "1"


def test_review_rates_through_the_api(spc_station):
    st = spc_station()
    t = T0
    add_parts(st, [(t, "NG", 0.9, "L1", None, "good")] * 3 + [(t, "NG", 0.9, "L1", None, "defect")] * 17
              + [(t, "OK", 0.1, "L1", None, "good")] * 50 + [(t, "OK", 0.1)] * 100
              + [(t, "REVIEW", 0.45, "L1", None, "good")] * 2)
    with client(st) as c:
        body = c.get("/api/v1/spc/review-rates", params={"since": "2026-11-29T00:00:00Z",
                                                         "until": "2026-12-01T00:00:00Z"}).json()
        assert body["false_reject"]["k"] == 3 and body["false_reject"]["n"] == 20
        assert body["false_reject"]["rate"] == pytest.approx(0.15)
        # no escape in 50 reviewed OK parts: the upper bound is 1 - 0.025^(1/50)
        assert body["escape"] == {"rate": 0.0, "lo": 0.0, "hi": pytest.approx(0.0711, abs=1e-4), "k": 0, "n": 50}
        assert body["confidence"] == 0.95 and body["review_band"] == {"good": 2, "defect": 0}
        r = c.get("/api/v1/spc/review-rates", params={"since": "2026-11-29T00:00:00Z", "format": "csv"})
        assert _sheet(r).splitlines()[0] == "measure,k,n,rate,lo,hi,upper_bound,target,needed,more_needed"


def test_the_escape_rate_of_the_random_audit_sample_is_apart_from_ok_parts_picked_by_hand(spc_station):
    # operators looked at 20 OK parts because they looked odd (10 were defects); of the
    # random audit sample's 100 OK parts 11 were reviewed (1 defect): the line's escape
    # rate is the sample's, not the hand-picked parts' 50%
    st = spc_station()
    t = T0
    add_parts(st, [(t, "OK", 0.1, "L1", None, "defect")] * 10 + [(t, "OK", 0.1, "L1", None, "good")] * 10
              + [(t, "OK", 0.1, "L1", None, "defect", True)] + [(t, "OK", 0.1, "L1", None, "good", True)] * 10
              + [(t, "OK", 0.1, "L1", None, None, True)] * 89 + [(t, "NG", 0.9, "L1", None, None, True)] * 3
              + [(t, "OK", 0.1)] * 500)
    with client(st) as c:
        q = {"since": "2026-11-29T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
        body = c.get("/api/v1/spc/review-rates", params=q).json()
        assert body["escape"]["k"] == 11 and body["escape"]["n"] == 31
        assert body["escape_audit"]["k"] == 1 and body["escape_audit"]["n"] == 11
        assert body["escape_audit"]["rate"] == pytest.approx(1 / 11)
        assert body["audit_sample"] == {"ok_parts": 100, "reviewed": 11}
        rows = _sheet(c.get("/api/v1/spc/review-rates", params={**q, "format": "csv"})).splitlines()
        assert rows[-1].startswith("escape_audit,1,11,")
        # the review queue's audit list: the sample's OK parts not reviewed yet, and no other
        page = c.get("/api/v1/inspections", params={"verdict": "OK", "reviewed": "false", "audit_sample": "true",
                                                    "limit": 1000}).json()
        assert len(page["items"]) == 89 and all(it["audit_sample"] for it in page["items"])
        others = c.get("/api/v1/inspections", params={"verdict": "OK", "audit_sample": "false", "limit": 1000,
                                                      "count": "true"}).json()
        assert others["total"] == 520


@pytest.mark.parametrize("params, says", [
    ({"by": "weekly"}, "by: Input should be 'hour', 'shift', 'day' or 'lot'"),
    ({"format": "xml"}, "format: Input should be 'json' or 'csv'"),
    ({"since": "2026-12-01T00:00:00Z", "until": "2026-11-30T00:00:00Z"}, "must be before until"),
    ({"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z", "by": "hour"}, "more than 2000 subgroups"),
    ({"since": "yesterday"}, "since: Input should be a valid datetime"),
])
@pytest.mark.one_database
def test_bad_parameters_are_422_with_a_clear_message(spc_station, params, says):
    st = spc_station()
    with client(st) as c:
        for path in ("/api/v1/spc/p-chart", "/api/v1/spc/scores"):
            r = c.get(path, params=params)
            assert r.status_code == 422, r.text
            assert says in r.json()["error"]["message"], r.json()


@pytest.mark.one_database
def test_reads_need_a_key_when_the_station_asks_for_one(spc_station):
    st = spc_station()
    st.config.open_reads = False
    with client(st) as c:
        for path in ("/api/v1/spc/p-chart", "/api/v1/spc/scores", "/api/v1/spc/review-rates"):
            assert c.get(path).status_code == 401


def test_the_database_groups_parts_into_whole_slots(spc_station):
    # the work of a p-chart stays in the database only if it returns one row per slot:
    # a slot number must be a whole number (15-minute slots since 1970, in UTC)
    from sqlalchemy import select

    from lineguard.line.spc_data import slot_expr
    st = spc_station()
    add_parts(st, [(dt.datetime(2026, 11, 30, 0, 7, 30), "OK", 0.1), (dt.datetime(2026, 11, 30, 0, 14, 59), "OK", 0.1)])
    expected = int((dt.datetime(2026, 11, 30) - dt.datetime(1970, 1, 1)).total_seconds()) // 900
    with st.db.session() as s:
        got = s.execute(select(slot_expr(st.db, 900)).distinct()).scalars().all()
    assert got == [expected] and isinstance(got[0], int)


def test_scores_against_a_reference_window(spc_station):
    st = spc_station()
    rng = np.random.default_rng(1)
    week_before = [(T0 - dt.timedelta(days=7, minutes=j), "OK", s) for j, s in enumerate(rng.normal(1.0, 0.2, 300))]
    today = [(T0 + dt.timedelta(hours=h, minutes=j), "OK", s)
             for h in range(4) for j, s in enumerate(rng.normal(1.2, 0.2, 40))]     # moved from the start
    add_parts(st, week_before + today)
    with client(st) as c:
        q = {"by": "hour", "since": "2026-11-30T00:00:00Z", "until": "2026-11-30T04:00:00Z"}
        # against its own first hours, a line that moved before the window looks steady
        assert not c.get("/api/v1/spc/scores", params={**q, "baseline_subgroups": 2}).json()["drift"]["alarm"]
        body = c.get("/api/v1/spc/scores", params={**q, "baseline_since": "2026-11-22T00:00:00Z",
                                                   "baseline_until": "2026-11-24T00:00:00Z"}).json()
        assert body["baseline"]["n"] == 300 and body["baseline"]["since"] == "2026-11-22T00:00:00Z"
        assert body["drift"]["alarm"] and body["drift"]["index"] == 0
        r = c.get("/api/v1/spc/scores", params={**q, "baseline_since": "2026-11-22T00:00:00Z"})
        assert r.status_code == 422 and "baseline_until" in r.json()["error"]["message"]


def test_pareto_of_reviewed_defect_types_through_the_api(spc_station):
    from lineguard.line.orm import Inspection
    st = spc_station()
    rows = ([("crack", "NG")] * 6 + [("crack", "OK")] * 3 + [("dent", "NG")] * 4 + [(None, "REVIEW")] * 2
            + [("=cmd", "NG")])                                   # a defect type typed by a person
    with st.db.session() as s:
        for i, (dtype, verdict) in enumerate(rows):
            s.add(Inspection(part_id=f"d{i}", line="L1", station="S1", product="cell", verdict=verdict, score=1.0,
                             threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v",
                             image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                             created_at=T0 + dt.timedelta(minutes=i), reviewed=True, review_label="defect",
                             defect_type=dtype))
    add_parts(st, [(T0, "NG", 0.9), (T0, "REVIEW", 0.4), (T0, "OK", 0.1), (T0, "NG", 0.9, "L1", None, "good"),
                   (T0, "NG", 0.9, "L2")])
    q = {"line": "L1", "since": "2026-11-29T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
    with client(st) as c:
        body = c.get("/api/v1/spc/pareto", params=q).json()
        assert body["defects"] == 16 and body["not_reviewed"] == 2          # the NG and the REVIEW part of L1
        assert [(b["defect_type"], b["parts"], b["caught"], b["escaped"]) for b in body["bars"]] == \
            [("crack", 9, 6, 3), ("dent", 4, 4, 0), ("(no type given)", 2, 0, 0), ("=cmd", 1, 1, 0)]
        assert body["bars"][0]["share"] == pytest.approx(9 / 16) and body["bars"][1]["cumulative"] == \
            pytest.approx(13 / 16)
        r = c.get("/api/v1/spc/pareto", params={**q, "format": "csv"})
        rows = list(csv.reader(io.StringIO(_sheet(r))))
        assert rows[0][:3] == ["defect_type", "parts", "caught"] and rows[-1][0] == "'=cmd"
        assert c.get("/api/v1/spc/pareto", params={"since": "2026-12-02T00:00:00Z",
                                                   "until": "2026-12-01T00:00:00Z"}).status_code == 422


def test_defect_map_says_where_on_the_part_defects_are(spc_station):
    from lineguard.line.orm import Inspection
    st = spc_station()

    from lineguard.vision.result import DefectRegion

    def box(cx, cy):        # as the station stores a region
        return DefectRegion(cx - 2, cy - 2, 4, 4, 16, 1.0, 0.5).to_dict()
    # a 100x50 part: three regions in the top-left corner, one bottom-right, one part reviewed as an escape
    parts = [("NG", [box(10, 10), box(15, 8)], None), ("NG", [box(12, 12)], None), ("NG", [box(90, 40)], None),
             ("NG", [{"area_px": None}, "not a region"], None), ("OK", [box(60, 10)], "defect"),
             ("OK", [box(60, 40)], None)]
    with st.db.session() as s:
        for i, (verdict, regions, label) in enumerate(parts):
            s.add(Inspection(part_id=f"m{i}", line="L1", station="S1", product="cell", verdict=verdict, score=1.0,
                             threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v", regions=regions,
                             image_sha256=uuid.uuid4().hex, image_width=100, image_height=50,
                             image_key=f"k{i}.png" if verdict == "OK" else None,
                             created_at=T0 + dt.timedelta(minutes=i), reviewed=label is not None, review_label=label))
    q = {"product": "cell", "since": "2026-11-29T00:00:00Z", "until": "2026-12-01T00:00:00Z", "columns": 4}
    with client(st) as c:
        body = c.get("/api/v1/spc/defect-map", params=q).json()
        assert (body["columns"], body["rows"], body["aspect"]) == (4, 2, 2.0)
        assert body["counts"] == [[3, 0, 0, 0], [0, 0, 0, 1]]
        assert (body["parts"], body["parts_with_regions"], body["regions"]) == (4, 3, 4)
        with st.db.session() as s:
            newest_ok = s.query(Inspection).filter_by(part_id="m5").one().id
        assert body["backdrop"] == newest_ok          # drawn on a clean picture of the part
        escapes = c.get("/api/v1/spc/defect-map", params={**q, "which": "defects"}).json()
        assert escapes["counts"] == [[0, 0, 1, 0], [0, 0, 0, 0]]
        r = c.get("/api/v1/spc/defect-map", params={**q, "format": "csv"})
        assert list(csv.reader(io.StringIO(_sheet(r)))) == [["row", "column", "regions"], ["0", "0", "3"],
                                                         ["1", "3", "1"]]
        assert c.get("/api/v1/spc/defect-map", params={**q, "columns": 1}).status_code == 422


def _judged_by(st, model_ids, hours=10, t0=T0):
    """An hour of 40 parts each, every hour judged by the next of ``model_ids`` in turn."""
    from lineguard.line.orm import Inspection
    rng = np.random.default_rng(7)
    with st.db.session() as s:
        for h in range(hours):
            for j in range(40):
                s.add(Inspection(part_id=f"p{uuid.uuid4().hex[:12]}", line="L1", station="S1", product="cell",
                                 verdict="OK", score=float(rng.uniform(0.1, 0.3)), threshold=0.5,
                                 pixel_threshold=0.5, model_id=model_ids[h % len(model_ids)], model_version="v",
                                 image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                                 created_at=t0 + dt.timedelta(hours=h, seconds=j * 30)))


def test_versions_with_tuned_thresholds_are_one_model_in_the_score_drift(spc_station):
    """v2 and v3 are v1's model with other thresholds (new model ids, the very same scores):
    the drift said "3 different models judged these parts; their scores are not comparable"."""
    from lineguard.line.tuning import save_thresholds

    from .conftest import FakeInspector
    st = spc_station()
    v1 = st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    v2 = save_thresholds(st, "cell", "", 1, 0.6, None)
    v3 = save_thresholds(st, "cell", "", 2, 0.7, 0.5)          # tuned from a tuned one: still v1's scores
    _judged_by(st, [v1.model_id, v2.model_id, v3.model_id])
    q = {"product": "cell", "by": "hour", "since": "2026-11-30T00:00:00Z", "until": "2026-11-30T10:00:00Z"}
    with client(st) as c:
        body = c.get("/api/v1/spc/scores", params=q).json()
        assert "different models" not in body["drift"]["text"], body["drift"]["text"]
        assert body["models"] == [v1.model_id]
        # a model trained anew scores otherwise: still said
        v4 = st.add_model(FakeInspector(0.5, "v-retrained").to_bytes(), "cell")
        _judged_by(st, [v4.model_id], hours=1, t0=T0 + dt.timedelta(hours=9, minutes=30))
        body = c.get("/api/v1/spc/scores", params=q).json()
        assert "2 different models judged these parts" in body["drift"]["text"]
        assert sorted(body["models"]) == sorted([v1.model_id, v4.model_id])


@pytest.mark.one_database
def test_a_misspelt_line_or_product_is_a_404_naming_the_close_one(spc_station):
    """line=NOSUCH answered 200 with 0 parts: read as a line that made nothing."""
    from lineguard.line.orm import LineSignal

    from .conftest import FakeInspector
    st = spc_station()
    add_parts(st, hand_example())
    add_parts(st, [(T0 - dt.timedelta(days=30), "OK", 0.2, "L3")])     # a line with no part in the window
    st.add_model(FakeInspector(0.5, "v-n").to_bytes(), "newcell", line="L9")    # before its first part
    with st.db.session() as s:     # a line whose only records are parts the PLC rejected without a verdict
        s.add(LineSignal(protocol="modbus", line="L7", station="S1", trigger_seq=1, part_tag=0, recipe_id=1,
                         product="cell", inspection_id=None, signal="NG", result_code=10, triggered_at=T0,
                         answered_at=T0))
    window = {"since": "2026-11-30T00:00:00Z", "until": "2026-11-30T10:00:00Z"}
    with client(st) as c:
        for path in ("/api/v1/spc/p-chart", "/api/v1/spc/scores", "/api/v1/spc/review-rates"):
            r = c.get(path, params={**window, "line": "NOSUCH"})
            assert r.status_code == 404, (path, r.text)
            err = r.json()["error"]
            assert err["message"].startswith("unknown line 'NOSUCH': no part was ever inspected on it")
            assert "L1, L3" in err["message"] and "did you mean" not in err["message"]
            assert err["unknown"] == "line" and err["did_you_mean"] == []
            near = c.get(path, params={**window, "line": "L1x"}).json()["error"]
            assert "did you mean 'L1'?" in near["message"] and near["did_you_mean"] == ["L1"]
            prod = c.get(path, params={**window, "product": "celll"})
            assert prod.status_code == 404 and "unknown product 'celll'" in prod.json()["error"]["message"]
            assert "did you mean 'cell' or 'newcell'?" in prod.json()["error"]["message"]
        # another case is the stored name, as before; a known name with nothing in the window is 0 parts
        assert c.get("/api/v1/spc/p-chart", params={**window, "line": "l1 ", "product": "CELL"}).json()["parts"] == 1000
        for known in ({"line": "L3"}, {"line": "L9"}, {"product": "newcell"}, {"line": "L7"}):
            r = c.get("/api/v1/spc/p-chart", params={**window, **known})
            assert r.status_code == 200 and r.json()["parts"] == 0, (known, r.text)
