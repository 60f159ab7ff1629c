"""The line view's counters (GET /api/v1/lines/summary) at a shift's scale.

The latency sample (each station's newest 500 parts since the shift's start) went along the
line's (line, created_at) index on SQLite: every part of the line since the start read and
sorted, for each station (117 ms of a 50,000-part shift's 274 ms; 827 ms at 200,000). It goes
newest first along the station's (line, station, id) index now, no further than the station's
records since the start. The plan, not the time, is checked here; and the answer, on parts
whose ids and times disagree, with test parts, a station with fewer parts than the sample.
"""
from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import event, insert

from lineguard.line.orm import Inspection, utcnow
from lineguard.server.routers.live import LATENCY_SAMPLE, line_summary

from .conftest import FakeInspector

STATIONS = [("L1", "S1"), ("L1", "S2"), ("L2", "S3"), ("L2", "S4")]


@pytest.fixture
def station(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load, trainer=FakeInspector.fit)
    yield st
    st.close()


def _fill(st, start: dt.datetime, now: dt.datetime) -> None:
    rnd = random.Random(5)
    rows = []
    counts = {("L1", "S1"): 1300, ("L1", "S2"): 700, ("L2", "S3"): 40, ("L2", "S4"): 0}
    for (line, station), n in counts.items():
        # before the shift (history) and in it; times shuffled against ids at the edges
        for i in range(n + 300):
            before = i >= n
            at = (start - dt.timedelta(seconds=rnd.uniform(1, 3600)) if before
                  else start + dt.timedelta(seconds=rnd.uniform(0, (now - start).total_seconds())))
            k = rnd.random()
            timings = ({"station_decode": rnd.uniform(1, 5), "station_model": rnd.uniform(20, 60)} if k < 0.7
                       else {"total": rnd.uniform(30, 90)} if k < 0.9 else {})
            tp = "red-rabbit" if rnd.random() < 0.03 else None
            rows.append(dict(part_id=f"P-{line}-{station}-{i}", line=line, station=station, product="cell",
                             verdict=rnd.choice(["OK", "OK", "OK", "NG", "REVIEW"]), score=0.3, threshold=0.5,
                             pixel_threshold=0.5, model_id="m", model_version="v", regions=[], timings_ms=timings,
                             image_sha256=f"{line}{station}{i:060d}", image_width=8, image_height=8,
                             created_at=at, test_part=tp, test_expected="NG" if tp else None))
    rnd.shuffle(rows)            # ids in no time order: two processes, a clock set back
    with st.db.engine.begin() as c:
        c.execute(insert(Inspection), rows)


def _expected(st, start: dt.datetime) -> dict:
    """Each station's counters and latency sample, computed the plain way (every row read)."""
    from lineguard.server.routers.live import _part_latency_ms, _percentile
    with st.db.session() as s:
        rows = s.query(Inspection).filter(Inspection.created_at >= start).all()
    out = {}
    for line, station in STATIONS:
        mine = [r for r in rows if (r.line, r.station) == (line, station)]
        parts = [r for r in mine if r.test_part is None]
        if not parts:
            continue
        newest = sorted(mine, key=lambda r: r.id, reverse=True)[:LATENCY_SAMPLE]
        lat = sorted(v for v in (_part_latency_ms(r.timings_ms or {}) for r in newest) if v is not None)
        out[(line, station)] = {"parts": len(parts), "ok": sum(r.verdict == "OK" for r in parts),
                                "ng": sum(r.verdict == "NG" for r in parts),
                                "review": sum(r.verdict == "REVIEW" for r in parts),
                                "p50": _percentile(lat, 0.5), "p95": _percentile(lat, 0.95)}
    return out


def test_the_summary_counts_and_latencies_are_every_parts(station):
    now = utcnow()
    start = now - dt.timedelta(hours=3)
    _fill(station, start, now)
    body = line_summary(station, since=start, now=now)
    got = {(r["line"], r["station"]): {"parts": r["parts"], "ok": r["ok"], "ng": r["ng"], "review": r["review"],
                                       "p50": r["latency_ms"]["p50"], "p95": r["latency_ms"]["p95"]}
           for r in body["lines"]}
    assert got == _expected(station, start)
    assert set(got) == {("L1", "S1"), ("L1", "S2"), ("L2", "S3")}


def test_the_latency_sample_reads_a_stations_newest_parts_along_its_own_index(station):
    now = utcnow()
    start = now - dt.timedelta(hours=3)
    _fill(station, start, now)
    seen = []

    def keep(conn, cursor, statement, params, context, many):
        if "timings_ms" in statement and "FROM inspections" in statement:
            seen.append((statement, params))
    event.listen(station.db.engine, "before_cursor_execute", keep)
    try:
        line_summary(station, since=start, now=now)
    finally:
        event.remove(station.db.engine, "before_cursor_execute", keep)
    assert len(seen) == 3
    raw = station.db.engine.raw_connection()
    try:
        for statement, params in seen:
            plan = " ".join(r[3] for r in raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, params))
            # newest first along (line, station, id): no sort of the line's parts since the start
            assert "ix_inspections_line_station_id" in plan and "TEMP B-TREE" not in plan, plan
            # and no further than the station's records since the start (not its whole history)
            assert params[-2] <= LATENCY_SAMPLE
    finally:
        raw.close()
    limits = sorted(p[-2] for _s, p in seen)
    assert limits[0] < LATENCY_SAMPLE, limits    # S3: 40 records since the start, the walk stops there
