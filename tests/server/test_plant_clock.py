"""The plant's clock in the session answer: the pages show and read every time in the
plant's zone (not the browser's), so the answer says which zone and when shifts start,
and that zone is the one the station counts its shifts by."""
from __future__ import annotations

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from .fake_inspector import FakeInspector


@pytest.fixture
def plant(tmp_path):
    """A station in-process with the plant time of the test's choosing and an admin key:
    (TestClient, key)."""
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    made = []

    def make(**kw):
        st = Station(StationConfig(data_dir=tmp_path / f"data{len(made)}", **kw), loader=FakeInspector.load)
        made.append(st)
        with st.db.session() as s:
            key = create_key(s, "admin", name="clock-admin")[1]
        return TestClient(create_app(station=st)), key

    yield make
    for st in made:
        st.close()


def _wall(iso: str, zone: dt.tzinfo) -> str:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zone).strftime("%H:%M")


def test_the_session_answer_gives_the_plant_zone_and_shift_starts(plant):
    client, key = plant(timezone="America/Chicago", shift_starts=("18:00", "06:00"))
    with client as c:
        r = c.post("/api/v1/session", json={"api_key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["timezone"] == "America/Chicago"
        assert body["shift_starts"] == ["06:00", "18:00"]          # earliest first, as the station orders them
        assert c.get("/api/v1/session").json() == body               # a reloaded page gets them again
        # the zone is the one the station counts shifts by: the shift holding 03:00 UTC on
        # 4 December (21:00 the evening before in Chicago) starts and ends at shift starts there
        rep = c.get("/api/v1/reports/shift", params={"at": "2026-12-04T03:00:00Z"}).json()
        assert rep["shift"]["label"] == "2026-12-03 S2 (18:00)"
        zone = ZoneInfo(body["timezone"])
        assert _wall(rep["shift"]["start"], zone) == "18:00" and _wall(rep["shift"]["end"], zone) == "06:00"
        schema = c.get("/openapi.json").json()["components"]["schemas"]["SessionOut"]
        assert {"timezone", "shift_starts"} <= set(schema["properties"]) <= set(schema["required"]) | {"kind"}


def test_with_no_zone_set_the_answer_gives_the_station_pcs_zone(plant, monkeypatch):
    # the station PC's clock on India's time (+05:30 all year): the station counts by it,
    # and names it (a zone with daylight saving shown as its offset now read an hour off
    # across the change on the pages)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        client, key = plant()
        with client as c:
            body = c.post("/api/v1/session", json={"api_key": key}).json()
            assert body["timezone"] == "Asia/Kolkata"
            assert body["shift_starts"] == ["06:00", "14:00", "22:00"]
            rep = c.get("/api/v1/reports/shift", params={"at": "2026-12-04T03:00:00Z"}).json()
            offset = dt.timezone(dt.timedelta(hours=5, minutes=30))
            assert _wall(rep["shift"]["start"], offset) == "06:00" and _wall(rep["shift"]["end"], offset) == "14:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_pc_whose_zone_has_no_name_gives_its_offset_now(plant, monkeypatch):
    # a POSIX rule in TZ names no IANA zone: the station counts by the offset now (and says so)
    monkeypatch.setenv("TZ", "XYZ-3")
    time.tzset()
    try:
        client, key = plant()
        with client as c:
            body = c.post("/api/v1/session", json={"api_key": key}).json()
            assert body["timezone"] == "+03:00"
    finally:
        monkeypatch.undo()
        time.tzset()
