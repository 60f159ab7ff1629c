"""A day alone in since/until is the plant's day, on every list, export, chart and counter
that takes one (SQLite and PostgreSQL).

FastAPI read ``since=2026-12-01`` as 00:00 UTC: a plant in Chicago (UTC-6 in December)
asking for its Dec 1 got the parts of Nov 30 from 18:00 on, and ``until=2026-12-01`` ended
six hours before the plant's Dec 1 began. A day alone is now the plant's day, as its
shifts, SPC days and the exports' plant_time column count it: since from its 00:00, until
through its end (until is exclusive everywhere, so a day given as until holds all of it;
since and until the same day is that day). A time keeps its meaning: an offset or Z is that
instant, a time without one is UTC, as before."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from .test_change_log import _keys
from .test_spc_api import client

ZONE = "America/Chicago"
# the parts, by name: (when, in UTC) and the plant's day each falls on in Chicago
PARTS = {
    "nov30-eve": dt.datetime(2026, 11, 30, 23, 0),     # Nov 30 17:00 CST
    "nov30-late": dt.datetime(2026, 12, 1, 3, 0),      # Nov 30 21:00 CST: Dec 1 in UTC
    "dec1-early": dt.datetime(2026, 12, 1, 7, 0),      # Dec 1 01:00 CST
    "dec1-night": dt.datetime(2026, 12, 2, 3, 0),      # Dec 1 21:00 CST: Dec 2 in UTC
    "dec2-early": dt.datetime(2026, 12, 2, 7, 0),      # Dec 2 01:00 CST
}
DEC1 = ["dec1-early", "dec1-night"]


def _station(spc_station):
    from lineguard.line.orm import ChangeLogEntry, Inspection, LineAlarm
    st = spc_station(timezone=ZONE)
    with st.db.session() as s:
        for i, (name, t) in enumerate(PARTS.items()):
            s.add(Inspection(part_id=name, line="L1", station="S1", product="cell", verdict="NG" if i % 2 else "OK",
                             score=0.3 + i / 10, threshold=0.5, pixel_threshold=0.5, model_id="m1",
                             model_version="v", image_sha256=f"{i:064x}", image_width=8, image_height=8,
                             created_at=t))
            # acknowledged: one active alarm of a kind per station is all the database takes
            s.add(LineAlarm(line="L1", station="S1", product="cell", kind="ng_run", message=name, raised_at=t,
                            inspection_id=i + 1, first_inspection_id=i + 1, parts=5, rejected=5,
                            acked_at=t + dt.timedelta(minutes=5)))
            s.add(ChangeLogEntry(at=t, actor="test", action="model.activated", subject=name, details={}))
    return st


def _part_ids(c, **params):
    r = c.get("/api/v1/inspections", params=params)
    assert r.status_code == 200, r.text
    return sorted(i["part_id"] for i in r.json()["items"])


def test_a_day_alone_is_the_plants_day_in_the_parts_list_and_export(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        assert _part_ids(c, since="2026-12-01") == ["dec1-early", "dec1-night", "dec2-early"]
        # until a day: all of that day (until stays exclusive: the end of the day is the next one's start)
        assert _part_ids(c, until="2026-11-30") == ["nov30-eve", "nov30-late"]
        assert _part_ids(c, since="2026-12-01", until="2026-12-01") == DEC1
        assert _part_ids(c, since="2026-11-30", until="2026-12-01") == sorted(set(PARTS) - {"dec2-early"})
        r = c.get("/api/v1/inspections/export", params={"since": "2026-12-01", "until": "2026-12-01"})
        assert r.status_code == 200, r.text
        rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
        assert sorted(row["part_id"] for row in rows) == DEC1
        # times keep their meaning: an offset or Z is that instant, a time without one is UTC
        late_on = ["dec1-early", "dec1-night", "dec2-early", "nov30-late"]
        assert _part_ids(c, since="2026-12-01T03:00:00Z") == late_on
        assert _part_ids(c, since="2026-11-30T21:00-06:00") == late_on
        assert _part_ids(c, since="2026-12-01T03:00") == late_on
        assert _part_ids(c, since="2026-12-01t03:00z") == late_on                 # as some tools write it
        assert _part_ids(c, until="2026-12-01T03:00:00Z") == ["nov30-eve"]         # exclusive, as before
        assert _part_ids(c, since="", until="") == sorted(PARTS)                    # a blank field: no filter


def test_a_day_alone_is_the_plants_day_on_the_alarms_and_the_change_log(spc_station):
    st = _station(spc_station)
    keys = _keys(st)
    with client(st) as c:
        r = c.get("/api/v1/alarms", params={"since": "2026-12-01", "until": "2026-12-01"})
        assert r.status_code == 200, r.text
        assert sorted(a["message"] for a in r.json()["items"]) == DEC1
        r = c.get("/api/v1/alarms/export", params={"since": "2026-12-01", "until": "2026-12-01"})
        assert r.status_code == 200, r.text
        assert sorted(row["message"] for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")))) == DEC1
        r = c.get("/api/v1/alarms/summary", params={"since": "2026-12-01", "until": "2026-12-01"})
        assert r.status_code == 200, r.text
        assert r.json()["alarms"] == 2
        r = c.get("/api/v1/change-log", params={"since": "2026-12-01", "until": "2026-12-01", "actor": "test"},
                  headers={"X-API-Key": keys["engineer"]})
        assert r.status_code == 200, r.text
        assert sorted(e["subject"] for e in r.json()["items"]) == DEC1


def test_a_day_alone_is_the_plants_day_on_the_spc_charts_and_the_baseline(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params={"by": "day", "since": "2026-12-01", "until": "2026-12-01"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["since"] == "2026-12-01T06:00:00Z" and body["until"] == "2026-12-02T06:00:00Z"
        assert [(p["label"], p["n"]) for p in body["points"]] == [("2026-12-01", 2)]
        r = c.get("/api/v1/spc/review-rates", params={"since": "2026-11-30", "until": "2026-11-30"})
        assert r.status_code == 200, r.text
        assert (r.json()["since"], r.json()["until"]) == ("2026-11-30T06:00:00Z", "2026-12-01T06:00:00Z")
        r = c.get("/api/v1/spc/scores", params={"by": "day", "since": "2026-11-30", "until": "2026-12-02",
                                                "baseline_since": "2026-12-01", "baseline_until": "2026-12-01"})
        assert r.status_code == 200, r.text
        base = r.json()["baseline"]
        assert (base["since"], base["until"]) == ("2026-12-01T06:00:00Z", "2026-12-02T06:00:00Z")


def test_a_day_alone_is_the_plants_day_on_the_line_counters(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        r = c.get("/api/v1/lines/summary", params={"since": "2026-12-01"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["since"] == "2026-12-01T06:00:00Z"
        assert sum(row["parts"] for row in body["lines"]) == 3


@pytest.mark.parametrize("params, said", [
    ({"since": "2026-02-30"}, "is neither"),           # no such day
    ({"until": "yesterday"}, "2026-12-01 (the plant's day)"),
    ({"until": "9999-12-31"}, "out of range"),                      # its end is past the calendar's
])
@pytest.mark.one_database
def test_a_day_or_time_it_cannot_use_is_422_saying_what_to_write(spc_station, params, said):
    st = _station(spc_station)
    with client(st) as c:
        for path in ("/api/v1/inspections", "/api/v1/alarms", "/api/v1/spc/p-chart"):
            r = c.get(path, params={"by": "day", **params})
            assert r.status_code == 422, (path, r.text)
            assert said in r.json()["error"]["message"], (path, r.text)


@pytest.mark.one_database
def test_a_window_back_to_front_by_days_is_refused_where_times_are(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        for path in ("/api/v1/alarms", "/api/v1/alarms/summary", "/api/v1/spc/p-chart"):
            r = c.get(path, params={"since": "2026-12-02", "until": "2026-12-01"})
            # both read the 2nd's 00:00 (until's day is in): said so, not as two equal times
            # that "must be before" each other (the gallery walk)
            said = r.json()["error"]["message"]
            assert r.status_code == 422 and "since and until are the same instant" in said, (path, r.text)
            assert "a day alone as until holds all of that day" in said and "swap them" in said


@pytest.mark.slow
@pytest.mark.one_database
def test_the_first_day_of_the_calendar_in_a_zone_ahead_of_utc_is_422_not_500(spc_station):
    st = spc_station(timezone="Asia/Tokyo")       # ahead of UTC: its 0001-01-01 00:00 is before year 1 in UTC
    with client(st) as c:
        r = c.get("/api/v1/inspections", params={"since": "0001-01-01"})
        assert r.status_code == 422 and "out of range" in r.json()["error"]["message"], r.text


@pytest.mark.one_database
def test_the_api_description_says_a_day_is_the_plants(spc_station):
    st = spc_station(timezone=ZONE)
    with client(st) as c:
        spec = c.get("/openapi.json").json()
    for path in ("/api/v1/inspections", "/api/v1/alarms", "/api/v1/change-log", "/api/v1/spc/p-chart",
                 "/api/v1/lines/summary"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert "plant time" in params["since"]["description"], path
        if "until" in params:
            assert "all of that day" in params["until"]["description"], path


@pytest.mark.one_database
def test_a_parts_window_back_to_front_is_refused_as_elsewhere(spc_station):
    """The gallery's list and export answered a window whose since is after its until with
    0 parts and a header-only file (read as a quiet period); SPC, alarms and the change log
    said "swap them"."""
    st = spc_station(timezone=ZONE)
    with client(st) as c:
        for path in ("/api/v1/inspections", "/api/v1/inspections/export"):
            r = c.get(path, params={"since": "2026-12-06T00:00:00Z", "until": "2026-12-01T00:00:00Z"})
            assert r.status_code == 422, (path, r.status_code, r.text[:200])
            assert "swap them" in r.json()["error"]["message"]
        # the same day as since and until is that one day, not back to front
        assert c.get("/api/v1/inspections", params={"since": "2026-12-01", "until": "2026-12-01"}).status_code == 200


def test_an_offset_s_plus_sent_unescaped_is_said(spc_station):
    """Gallery walk: since=2026-12-07T16:27:00+01:00 in an address arrives with a space for
    the +; the refusal listed the very form typed and never said to write %2B."""
    st = _station(spc_station)
    with client(st) as c:
        r = c.get("/api/v1/inspections?since=2026-12-07T16:27:00+01:00")
        assert r.status_code == 422 and "write it %2B" in r.text, r.text
        assert c.get("/api/v1/inspections?since=2026-12-07T16:27:00%2B01:00").status_code == 200
