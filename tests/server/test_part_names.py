"""Filters as a person types them: "l1" finds line L1's parts, "cell " product cell's, "s1"
station S1's, on SQLite and PostgreSQL; the lines and products are read along their
indexes for the gallery's suggestions."""
from __future__ import annotations

import datetime as dt
import uuid

from .test_spc_api import client


def _parts(st, *where):
    from lineguard.line.orm import Inspection
    t = dt.datetime(2026, 11, 30, 8, 0)
    with st.db.session() as s:
        for i, (line, station, product) in enumerate(where):
            s.add(Inspection(part_id=f"p{uuid.uuid4().hex[:12]}", line=line, station=station, product=product,
                             verdict="NG", score=0.7, threshold=0.5, pixel_threshold=0.5, model_id="m1",
                             model_version="v", image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                             created_at=t + dt.timedelta(minutes=i)))


def test_a_line_product_or_station_typed_in_another_case_finds_the_parts(spc_station):
    st = spc_station()
    _parts(st, ("Line-A", "S1", "cell"), ("Line-A", "S2", "cell"), ("Line-B", "S1", "Cover"),
           ("Line-B", "S1", "cell"))
    with client(st) as c:
        names = c.get("/api/v1/inspections/names").json()     # in the database's collation order
        assert names["lines"] == ["Line-A", "Line-B"] and sorted(names["products"]) == ["Cover", "cell"]

        def found(**params):
            items = c.get("/api/v1/inspections", params=params).json()["items"]
            return sorted((r["line"], r["station"], r["product"]) for r in items)
        assert found(line="line-a") == [("Line-A", "S1", "cell"), ("Line-A", "S2", "cell")]
        assert found(line=" LINE-B ", product="cover") == [("Line-B", "S1", "Cover")]
        assert found(line="Line-A", station="s2") == [("Line-A", "S2", "cell")]
        assert found(line="line-c") == []            # nothing stored like it: nothing found
        # the export and the count follow the same filters
        assert c.get("/api/v1/inspections", params={"line": "line-b", "count": "true"}).json()["total"] == 2
        csv = c.get("/api/v1/inspections/export", params={"product": "COVER"}).text
        assert len(csv.strip().splitlines()) == 2 and "Cover" in csv


def test_names_equal_but_for_case_are_not_merged_and_an_exact_name_wins(spc_station):
    from lineguard.line.part_names import as_stored, stored_names
    st = spc_station()
    _parts(st, ("L1", "S1", "cell"), ("l1", "S1", "cell"))
    assert sorted(stored_names(st.db, "line")) == ["L1", "l1"]
    assert as_stored("l1", ["L1", "l1"]) == "l1" and as_stored("L1", ["L1", "l1"]) == "L1"
    assert as_stored("  L1", ["L1", "l1"]) == "L1"          # exact but for the spaces
    assert as_stored("  L1", ["l1", "L1 x"]) == "l1"
    assert as_stored("LINE", ["Line", "line"]) == "LINE"       # two stored names fit: left as typed
    assert as_stored("x", []) == "x" and as_stored(None, ["L1"]) is None


def test_a_station_named_beyond_ascii_or_with_spaces_is_found_as_stored(spc_station):
    st = spc_station()
    _parts(st, ("L1", "PRÜF-1", "cell"), ("L1", "ST1 ", "cell"), ("L1", "st1", "cell"), ("L1", "S2", "cell"))
    with client(st) as c:
        def stations(**params):
            return sorted(r["station"] for r in c.get("/api/v1/inspections", params=params).json()["items"])
        assert stations(station="PRÜF-1") == ["PRÜF-1"]          # SQLite's lower() keeps Ü: the exact name still finds it
        assert stations(station="ST1 ") == ["ST1 ", "st1"]       # as stored, and "st1" in any case
        assert stations(station="s2") == ["S2"]


def test_as_stored_prefers_the_name_exact_but_for_spaces():
    from lineguard.line.part_names import as_stored
    assert as_stored("L1 ", ["L1", "l1"]) == "L1"


def test_a_caller_without_a_key_is_refused_before_the_filters_read_the_database(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient
    from lineguard.line import part_names
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    from .fake_inspector import FakeInspector

    def no_reads(*a, **kw):
        raise AssertionError("the filters read the database for a caller not let in")
    monkeypatch.setattr(part_names, "stored_names", no_reads)
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)
    try:
        with TestClient(create_app(station=st), raise_server_exceptions=False) as c:
            assert c.get("/api/v1/inspections", params={"line": "l1"}).status_code == 401
            assert c.get("/api/v1/inspections/export", params={"line": "l1"}).status_code == 401
    finally:
        st.close()


def test_spc_charts_find_a_line_product_or_station_typed_in_another_case(spc_station):
    st = spc_station()
    _parts(st, ("Line-A", "S1", "cell"), ("Line-A", "S1", "cell"), ("Line-B", "S2", "cell"))
    with client(st) as c:
        def parts(**params):
            pts = c.get("/api/v1/spc/p-chart", params={"by": "day", "since": "2026-11-30T00:00:00Z",
                                                       "until": "2026-12-01T00:00:00Z", **params}).json()["points"]
            return sum(p["n"] for p in pts)
        assert parts(product="CELL") == 3 and parts(line="line-a") == 2 and parts(station="s2") == 1
        assert parts(product="cell", line="LINE-B", station="S2") == 1
