"""The line alarms' and shift report's walk (G), on SQLite and PostgreSQL: rules for a station
the PLC alone names, an acknowledgement after the shift said on the plant's clock, the
every-line report's notes and signatures of its lines, a cause's number sent as text, and the
escalation's wait said in seconds or tenths of a minute."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line import alarm_causes
from lineguard.line.errors import InvalidRequest
from lineguard.line.orm import LineAlarm, LineSignal

from .test_alarm_rules import _keys
from .test_alarms import NG, _parts, _station
from .test_shift_report import _plant
from .test_spc_api import client

STARTS = ("06:00", "14:00", "22:00")


def _signals(st, line, station, n=3, at=None):
    at = at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=5)
    with st.db.session() as s:
        s.add_all([LineSignal(protocol="modbus", line=line, station=station, trigger_seq=70 + i, part_tag=3000 + i,
                              recipe_id=1, product="cell", inspection_id=None, signal="NG", result_code=15,
                              reason="no verdict within the inspection window of 800 ms",
                              triggered_at=at, answered_at=at) for i in range(n)])


@pytest.mark.one_database
def test_a_station_known_only_from_the_plcs_answers_gets_alarm_rules(spc_station):
    """PLC1's parts all got no verdict (no part record): its no_verdict alarms were raised and
    the shift report listed it, while its rules were refused as 'no part was ever inspected'."""
    st = _station(spc_station)
    keys = _keys(st)
    _parts(st, NG)                     # line L1 has parts of S1
    _signals(st, "L1", "PLC1")
    _signals(st, "WG2", "PLC2")        # a line of the PLC's answers alone
    with client(st) as c:
        for line, typed, stored in (("L1", "PLC1", "PLC1"), ("L1", "plc1", "PLC1"), ("wg2", "PLC2", "PLC2")):
            r = c.put("/api/v1/alarms/rules", json={"line": line, "station": typed, "no_verdict_run": 5},
                      headers=keys["engineer"])
            assert r.status_code == 200, r.text
            assert (r.json()["line"], r.json()["station"], r.json()["own"]) == (line.upper(), stored,
                                                                                {"no_verdict_run": 5})
        # a station neither names is still refused, naming the line's stations of both kinds
        r = c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S9", "ng_run": 3},
                  headers=keys["engineer"])
        assert r.status_code == 404 and "no PLC answer names it" in r.json()["detail"], r.text
        assert r.json()["error"]["stations"] == ["PLC1", "S1"]


def test_an_acknowledgement_after_the_shift_is_said_on_the_plants_clock(spc_station):
    st = spc_station(shift_starts=STARTS, timezone="Asia/Kolkata")
    _plant(st)
    t = dt.datetime(2026, 11, 30, 8, 0)         # 13:30 in Kolkata: the 06:00-14:00 shift (00:30-08:30 UTC)
    with st.db.session() as s:
        s.add(LineAlarm(line="L1", station="S1", product="cell", kind="ng_run", message="5 parts in a row",
                        raised_at=t, inspection_id=1, first_inspection_id=1, parts=5, rejected=5, escalated_at=t + dt.timedelta(minutes=31), escalations=1,
                        acked_at=t + dt.timedelta(minutes=35, seconds=40, microseconds=501286), acked_by="ben"))
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T04:30:00Z"}).json()
    (a,) = rep["alarms"]
    assert a["later"] == ("acknowledged at 2026-11-30 14:05:40 plant time by ben; "
                          "escalated at 2026-11-30 14:01:00 plant time")


@pytest.mark.one_database
def test_the_every_line_report_lists_its_lines_notes_and_signatures(spc_station):
    """The every-line page said "no note yet" and "Not signed yet" beside the line's own, and
    an operator wrote a second, line-less copy."""
    st = _station(spc_station)
    keys = _keys(st)
    _parts(st, NG)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with client(st) as c:
        r = c.put("/api/v1/reports/shift/note", headers=keys["operator"],
                  json={"at": now, "line": "L1", "note": "belt 2 squeaks"})
        assert r.status_code == 200, r.text
        r = c.post("/api/v1/reports/shift/sign", headers=keys["operator"],
                   json={"at": now, "line": "L1", "note": "to B shift"})
        assert r.status_code == 201, r.text
        every = c.get("/api/v1/reports/shift", params={"at": now}).json()
        one = c.get("/api/v1/reports/shift", params={"at": now, "line": "L1"}).json()
    assert every["handover_note"]["note"] is None and every["signed"] == []     # the every-line report's own
    assert [(n["line"], n["note"]) for n in every["notes_of_lines"]] == [("L1", "belt 2 squeaks")]
    assert [(x["line"], x["note"]) for x in every["signed_for_lines"]] == [("L1", "to B shift")]
    assert one["notes_of_lines"] == [] and "signed_for_lines" not in one


def test_a_causes_number_sent_as_text_gets_the_answer_a_number_gets(spc_station):
    st = spc_station()
    with pytest.raises(InvalidRequest, match="not its number"):
        alarm_causes.check(st.db, "3")
    _plant(st)
    with st.db.session() as s:
        s.add(LineAlarm(line="L1", station="S1", product="cell", kind="ng_run", message="5 parts in a row",
                        raised_at=dt.datetime(2026, 11, 30, 8), inspection_id=1, first_inspection_id=1, parts=5,
                        rejected=5))
    keys = _keys(st)
    with client(st) as c:
        for cause in ("7", " 7", 7):
            r = c.post("/api/v1/alarms/1/acknowledge", headers=keys["operator"], json={"cause": cause})
            assert r.status_code == 422 and "give the cause's key" in r.text and "not its number" in r.text, r.text
        # no ASCII digit ("²".isdigit() is true, int("²") fails): refused as any unknown cause, not a 500
        r = c.post("/api/v1/alarms/1/acknowledge", headers=keys["operator"], json={"cause": "²"})
        assert r.status_code == 422 and "is not one of" in r.text, r.text
        # a key is still a key
        r = c.post("/api/v1/alarms/1/acknowledge", headers=keys["operator"], json={"cause": "Process"})
        assert r.status_code == 200 and r.json()["ack_cause"] == "process", r.text


def test_the_escalations_wait_is_said_in_seconds_or_tenths_of_a_minute():
    from lineguard.line.alarms import unacknowledged_for
    # --alarm-escalate-min 0.5 logged "unacknowledged for 0 min"
    assert [unacknowledged_for(m) for m in (0.7, 0.0, 2.5, 9.96, 35.2)] == ["42 s", "0 s", "2.5 min", "10.0 min",
                                                                          "35 min"]


@pytest.mark.one_database
def test_at_now_is_the_running_shift_by_the_stations_clock(spc_station):
    """at=now: the running shift on the station's clock, whatever the asking device's clock
    says (the report page's "Show the running shift" asks for it; a tablet behind asked for
    the shift before). The note and the signature take it too."""
    st = _station(spc_station)
    keys = _keys(st)
    _parts(st, NG)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with client(st) as c:
        by_time = c.get("/api/v1/reports/shift", params={"at": now}).json()
        by_word = c.get("/api/v1/reports/shift", params={"at": " NOW "})
        assert by_word.status_code == 200, by_word.text
        assert by_word.json()["shift"]["start"] == by_time["shift"]["start"] and not by_word.json()["shift"]["ended"]
        r = c.put("/api/v1/reports/shift/note", headers=keys["operator"],
                  json={"at": "now", "line": "L1", "note": "belt 2 squeaks"})
        assert r.status_code == 200, r.text
        assert c.get("/api/v1/reports/shift", params={"at": now, "line": "L1"}).json()["handover_note"]["note"] \
            == "belt 2 squeaks"
        assert "or now: the running shift" in c.get("/openapi.json").text
