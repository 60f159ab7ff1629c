"""The parts export's pages (station.each_part) with a line, product, test-part or time filter:
on SQLite each page walks the ids down from the last one, never the filter's index and a
sort of every matching part below the cursor (a walker's 300,000 parts: 0.46 s a page, an
export of one line three times slower than of every part, of the line's own parts seven
times). Asserted on the plan, not on a time; PostgreSQL's query is left as it was."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import event, insert

from lineguard.line.orm import Inspection
from lineguard.line.station import each_part

T0 = dt.datetime(2026, 11, 2, 6)
FILTERS = [dict(line="L2"), dict(product="cell"), dict(test_parts=False), dict(test_parts=True),
           dict(line="L2", test_parts=False), dict(line="L2", station="s1"),
           dict(since=T0 + dt.timedelta(minutes=10), until=T0 + dt.timedelta(minutes=40)),
           dict(line="L1", product="cell", since=T0 + dt.timedelta(minutes=5))]


def _fill(st, n: int = 2600) -> None:
    rows = [dict(part_id=f"p{i}", line=("L1", "L2", "L3")[i % 3], station="S1", product=("cell", "disc")[i % 2],
                 verdict=("OK", "NG")[i % 5 == 0], score=0.1, threshold=0.5, pixel_threshold=0.5, model_id="m1",
                 model_version="v", image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                 created_at=T0 + dt.timedelta(seconds=i), reviewed=False,
                 test_part="golden-ng" if i % 7 == 0 else None) for i in range(n)]
    with st.db.session() as s:
        s.execute(insert(Inspection), rows)


def _wanted(st, f: dict) -> list[int]:
    """The ids the filter matches, newest first, read in Python from every record."""
    with st.db.session() as s:
        recs = s.query(Inspection.id, Inspection.line, Inspection.station, Inspection.product,
                       Inspection.test_part, Inspection.created_at).all()
    out = [r.id for r in recs
           if ("line" not in f or r.line == f["line"]) and ("product" not in f or r.product == f["product"])
           and ("station" not in f or r.station.lower() == f["station"].lower())
           and ("test_parts" not in f or (r.test_part is not None) == f["test_parts"])
           and ("since" not in f or r.created_at >= f["since"]) and ("until" not in f or r.created_at < f["until"])]
    return sorted(out, reverse=True)


def _pages_read(st, f: dict) -> tuple[list[int], list[tuple[str, object]]]:
    """The ids each_part gives for ``f``, and the statements (with their parameters) it ran."""
    ran: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FROM inspections" in statement and "ORDER BY inspections.id DESC" in statement:
            ran.append((statement, parameters))
    event.listen(st.db.engine, "before_cursor_execute", seen)
    try:
        ids = [r.id for r in each_part(st.db, **f)]
    finally:
        event.remove(st.db.engine, "before_cursor_execute", seen)
    return ids, ran


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: ",".join(f))
def test_each_page_of_a_filtered_export_walks_the_ids(station_factory, f):
    st = station_factory()
    _fill(st)
    ids, ran = _pages_read(st, f)
    assert ids == _wanted(st, f)          # every part the filter matches, newest first, once
    assert len(ran) >= 1
    if station_factory.backend == "postgresql":
        # weighed by the planner's statistics there: the statement is the one it was
        assert all("(+ " not in sql for sql, _ in ran), ran
        return
    if "since" in f:
        # a window: the (line, created_at) index bounds each page's sort to the window's
        # parts, where the ids' walk would read every older part below it
        return
    with st.db.engine.connect() as conn:
        for sql, params in ran:
            plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            # the ids' order is the walk's own: no page sorts the parts below the cursor
            assert not any("TEMP B-TREE" in step for step in plan), (f, plan)


def test_a_limited_filtered_export_stops_at_its_limit(station_factory):
    st = station_factory()
    _fill(st)
    ids, _ = _pages_read(st, dict(test_parts=False))
    limited = [r.id for r in each_part(st.db, limit=1500, test_parts=False)]
    assert len(ids) > 1500 and limited == ids[:1500]


# -- a line, product or defect type the station holds nothing of ---------------------------

def _client(st):
    from fastapi.testclient import TestClient

    from lineguard.server.app import create_app
    return TestClient(create_app(station=st))


@pytest.mark.one_database
def test_the_export_of_a_line_product_or_defect_type_never_seen_is_a_404_naming_the_known(station_factory):
    st = station_factory(open_reads=True)
    _fill(st, 30)
    with st.db.session() as s:
        rec = s.get(Inspection, 5)
        rec.reviewed, rec.review_label, rec.defect_type = True, "defect", "burr"   # a type since taken off the list
    with _client(st) as c:
        r = c.get("/api/v1/inspections/export", params={"line": "L9"})
        assert r.status_code == 404, r.text
        said = r.json()["error"]["message"]
        assert "unknown line 'L9'" in said and "L1, L2, L3" in said, said
        r = c.get("/api/v1/inspections/export", params={"product": "cel", "format": "xlsx"})
        assert r.status_code == 404 and "did you mean 'cell'" in r.json()["error"]["message"], r.text
        r = c.get("/api/v1/inspections/export", params={"defect_type": "scrach", "product": "cell"})
        assert r.status_code == 404, r.text
        said = r.json()["error"]["message"]
        assert "defect type 'scrach'" in said and "did you mean 'scratch'" in said and "crack" in said, said
        # a known line in any case, a type on the list no part was reviewed as yet, and a type
        # taken off the list that parts were reviewed as: answered, not refused
        assert len(c.get("/api/v1/inspections/export", params={"line": "l2"}).text.splitlines()) == 11
        assert len(c.get("/api/v1/inspections/export", params={"defect_type": "crack"}).text.splitlines()) == 1
        assert len(c.get("/api/v1/inspections/export", params={"defect_type": "burr"}).text.splitlines()) == 2
        # the gallery's list still answers "no parts" (its page says so under the filters)
        listed = c.get("/api/v1/inspections", params={"line": "L9"})
        assert listed.status_code == 200 and listed.json()["items"] == []
