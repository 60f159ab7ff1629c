"""Line alarms on SQLite and PostgreSQL: a run of rejected parts, a high NG rate or a run
of photos the model cannot judge at a station raises one latched alarm, sent through the outbox and shown on the line view,
until someone acknowledges it; a restart neither loses a run nor raises an alarm twice."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from lineguard.line.auth import create_key
from lineguard.line.config import StationConfig
from lineguard.line.orm import OutboxEvent
from lineguard.line.station import Part

from .conftest import png_bytes
from .fake_inspector import FakeInspector
from .test_spc_api import client

OK, NG, REVIEW = 60, 200, 115       # the fake model's score is brightness: 0.24, 0.78, 0.45
DARK = 10                           # 0.04: under the fake model's photo floor, a lamp gone out
_seq = iter(range(10**6))


def _station(spc_station, **kw):
    st = spc_station(**kw)
    st.add_model(FakeInspector(0.5, review_threshold=0.4, photo_floor=0.1).to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        st.operator_key = create_key(s, "operator", name="line-tablet")[1]
    return st


def _parts(st, *values, station="S1", serial=None):
    recs = []
    for v in values:
        n = next(_seq)
        recs.append(st.inspect(png_bytes(v, seed=n), Part(part_id=f"p{n}", line="L1", station=station,
                                                           product="cell", serial=serial)).record)
    return recs


def _alarm_messages(st):
    with st.db.session() as s:
        return [(r.payload["change"], r.payload["kind"], r.payload["id"])
                for r in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "alarm").order_by(OutboxEvent.id))]


@pytest.mark.one_database
def test_a_run_of_rejected_parts_raises_one_alarm_until_acknowledged(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    heard = []
    st.alarms.listeners.append(heard.append)
    _parts(st, NG, NG, NG, NG, OK)                    # four in a row, then a pass: no alarm
    assert st.alarms.active() == [] and heard == []
    st.test_parts.add("cell", "RR-01", "NG")
    _parts(st, NG, serial="RR-01")                   # a red rabbit is no part of the line's run
    run = _parts(st, NG, REVIEW, NG, REVIEW)
    _parts(st, NG, station="S2")                     # another station's part: its own count
    assert st.alarms.active() == []
    fifth = _parts(st, NG)[0]
    (alarm,) = st.alarms.active()
    assert (alarm["kind"], alarm["line"], alarm["station"], alarm["product"]) == ("ng_run", "L1", "S1", "cell")
    assert (alarm["parts"], alarm["rejected"]) == (5, 5)
    assert (alarm["first_inspection_id"], alarm["inspection_id"]) == (run[0].id, fifth.id)
    assert "5 parts in a row not passed" in alarm["message"] and "station S1" in alarm["message"]
    assert [a["change"] for a in heard] == ["raised"]
    _parts(st, NG, NG, NG, NG, NG, NG)               # latched: no second alarm while it is active
    assert len(st.alarms.history()) == 1
    assert _alarm_messages(st) == [("raised", "ng_run", alarm["id"])]
    assert st.metrics.alarms_active.labels("L1", "S1")._value.get() == 1

    with client(st) as c:
        summary = c.get("/api/v1/lines/summary").json()
        assert [a["id"] for a in summary["alarms"]] == [alarm["id"]]
        url = f"/api/v1/alarms/{alarm['id']}/acknowledge"
        assert c.post(url, json={"note": "x"}).status_code == 401             # reads are open here, writes not
        key = {"X-API-Key": st.operator_key}
        # a misspelt field is refused, naming it, and the alarm stays active: taken without its
        # cause, the cause could not be sent again (409, acknowledged already)
        typo = c.post(url, json={"couse": "process", "note": "x"}, headers=key)
        assert typo.status_code == 422 and "couse: not a field of this request" in typo.text, typo.text
        assert [a["id"] for a in c.get("/api/v1/lines/summary").json()["alarms"]] == [alarm["id"]]
        r = c.post(url, json={"note": " feeder jammed, cleared "}, headers=key)
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["active"] is False and done["ack_note"] == "feeder jammed, cleared"
        assert done["acked_by"].startswith("line-tablet (key ") and done["acked_at"]
        again = c.post(url, headers=key)                                     # no body: no note
        assert again.status_code == 409 and "acknowledged already, by line-tablet" in again.json()["error"]["message"]
        assert c.post("/api/v1/alarms/999999/acknowledge", json={}, headers=key).status_code == 404
        assert c.post(url, json={"note": "a\x00b"}, headers=key).status_code == 422
        assert c.post("/api/v1/alarms/0/acknowledge", json={}, headers=key).status_code == 422
        assert c.get("/api/v1/lines/summary").json()["alarms"] == []
        listed = c.get("/api/v1/alarms", params={"active": "false", "line": "L1"}).json()
        assert [a["id"] for a in listed["items"]] == [alarm["id"]]
        assert listed["rules"] == {"ng_run": 5, "ng_rate": 0.0, "window": 100, "rate_limit": None,
                                      "photo_run": 3, "no_verdict_run": 3, "escalate_min": 10.0,
                                      "escalate_again_min": 0.0, "drift_parts": 100, "drift_baseline_parts": 500}
        assert c.get("/api/v1/alarms", params={"active": "true"}).json()["items"] == []
    assert [a["change"] for a in heard] == ["raised", "acknowledged"]
    assert _alarm_messages(st)[-1] == ("acknowledged", "ng_run", alarm["id"])
    assert st.metrics.alarms_active.labels("L1", "S1")._value.get() == 0

    # the parts before the acknowledgement never raise it again: five new ones do
    _parts(st, NG, NG, NG, NG)
    assert st.alarms.active() == []
    _parts(st, NG)
    assert [a["kind"] for a in st.alarms.active()] == ["ng_run"]


@pytest.mark.one_database
def test_the_live_pages_hear_of_the_part_before_the_alarm_it_raised(spc_station):
    st = _station(spc_station, alarm_ng_run=2, alarm_ng_rate=0)
    heard = []
    st.add_listener(lambda event, payload: heard.append((event, payload["id"] if event == "inspection"
                                                         else payload["inspection_id"])))
    first, second = _parts(st, NG, NG)
    assert heard == [("inspection", first.id), ("inspection", second.id), ("alarm", second.id)]


@pytest.mark.one_database
def test_the_rate_alarm_counts_ng_parts_among_the_last_window(spc_station):
    st = _station(spc_station, alarm_ng_run=0, alarm_ng_rate=0.15, alarm_window=20)   # 3 NG in 20 parts
    assert st.alarms.rules.rate_limit == 3
    _parts(st, NG, *[OK] * 9, NG, *[OK] * 9)          # two NG in the last 20
    _parts(st, OK, REVIEW, REVIEW, REVIEW)            # the first NG leaves the window; REVIEW is no NG
    _parts(st, NG)                                    # two again: 11th and 25th of 25
    assert st.alarms.active() == []
    _parts(st, *[OK] * 4)
    last = _parts(st, NG)[0]                          # three NG inside the last 20 parts (11th, 25th, 30th)
    (alarm,) = st.alarms.active()
    assert alarm["kind"] == "ng_rate" and (alarm["parts"], alarm["rejected"]) == (20, 3)
    assert alarm["inspection_id"] == last.id and "3 of the last 20 parts NG" in alarm["message"]


def test_a_restart_reads_the_run_back_and_raises_no_alarm_twice(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, NG, NG, NG)
    st.close()
    st = spc_station(alarm_ng_rate=0)                 # the station restarted: the run goes on
    _parts(st, NG)
    assert st.alarms.active() == []
    _parts(st, NG)
    (alarm,) = st.alarms.active()
    assert alarm["parts"] == 5
    _parts(st, NG)                                    # still active
    st.close()
    st = spc_station(alarm_ng_rate=0)
    _parts(st, NG, NG, NG, NG, NG)                    # the active alarm is not raised again
    assert len(st.alarms.history()) == 1
    st.alarms.acknowledge(alarm["id"], "maria (user)")
    st.close()
    st = spc_station(alarm_ng_rate=0)                 # parts before the acknowledgement do not count
    _parts(st, NG, NG, NG, NG)
    assert st.alarms.active() == []
    _parts(st, NG)
    assert len(st.alarms.active()) == 1 and len(st.alarms.history()) == 2


def test_alarm_settings_are_checked_at_start(tmp_path):
    with pytest.raises(ValueError, match="2 to 10000 parts in a row"):
        StationConfig(data_dir=tmp_path, alarm_ng_run=1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        StationConfig(data_dir=tmp_path, alarm_ng_rate=10)
    with pytest.raises(ValueError, match="window must be 10 to 100000"):
        StationConfig(data_dir=tmp_path, alarm_window=5)
    with pytest.raises(ValueError, match="2 to 10000 doubted photos"):
        StationConfig(data_dir=tmp_path, alarm_photo_run=1)
    with pytest.raises(ValueError, match="escalated after 0.5 to 1440 minutes"):
        StationConfig(data_dir=tmp_path, alarm_escalate_min=0.1)
    with pytest.raises(ValueError, match="2 to 10000 PLC answers in a row without a verdict"):
        StationConfig(data_dir=tmp_path, alarm_no_verdict_run=1)
    with pytest.raises(ValueError, match="20 to 10000 parts"):
        StationConfig(data_dir=tmp_path, alarm_drift_parts=10)
    off = StationConfig(data_dir=tmp_path, alarm_ng_run=0, alarm_ng_rate=0, alarm_photo_run=0,
                        alarm_no_verdict_run=0, alarm_drift_parts=0).alarm_rules
    assert off.active_kinds == ()


@pytest.mark.one_database
def test_an_alarm_left_unacknowledged_is_escalated_once(spc_station):
    import datetime as dt
    from lineguard.line.alarms import AlarmWatch, AlarmRules
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2, alarm_escalate_min=10)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    heard = []
    st.alarms.listeners.append(heard.append)
    raised = dt.datetime.fromisoformat(alarm["raised_at"].replace("Z", "+00:00"))
    assert alarm["escalate_at"] == (raised + dt.timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    assert st.alarms.escalate_due(now=raised + dt.timedelta(minutes=9)) == []
    # another process whose own setting is "never" escalates it all the same: the raising
    # process's setting is stored on the alarm
    other = AlarmWatch(st.db, AlarmRules(escalate_min=0))
    (done,) = other.escalate_due(now=raised + dt.timedelta(minutes=10))
    assert st.alarms.escalate_due(now=raised + dt.timedelta(minutes=11)) == []      # once, whoever looks
    assert st.alarms._escalate(alarm["id"], "L1", 0) is None      # a look that raced the first: its update marks none
    assert done["change"] == "escalated" and done["id"] == alarm["id"]
    assert done["unacknowledged_min"] == 0.0      # by the clock: escalated a moment after it was raised
    assert done["escalated_at"] and done["station_active"][0]["escalated_at"] == done["escalated_at"]
    assert (done["level"], done["escalations"], done["escalate_at"]) == (1, 1, None)     # once: none due after
    assert done["station_state_as_of"] == done["escalated_at"]
    assert _alarm_messages(st)[-1] == ("escalated", "ng_run", alarm["id"])
    assert other.metrics is None and st.alarms.active()[0]["escalated_at"] == done["escalated_at"]
    st.alarms.acknowledge(alarm["id"], "maria (user)")
    _parts(st, NG, NG)                                   # a new alarm, acknowledged before its time
    (new,) = st.alarms.active()
    st.alarms.acknowledge(new["id"], "maria (user)")
    assert st.alarms.escalate_due(now=raised + dt.timedelta(days=1)) == []
    never = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2, alarm_escalate_min=0)
    _parts(never, NG, NG, station="S9")
    (quiet,) = never.alarms.active(station="S9")
    assert quiet["escalate_at"] is None and never.alarms.escalate_due(now=raised + dt.timedelta(days=1)) == []


@pytest.mark.one_database
def test_the_station_looks_for_alarms_to_escalate_on_its_own(spc_station):
    import datetime as dt
    import time
    from lineguard.line.orm import LineAlarm
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2, alarm_escalate_min=0.5)
    assert st.alarms._escalator is not None and st.alarms._escalator.is_alive()
    heard = []
    st.alarms.listeners.append(heard.append)
    _parts(st, NG, NG)
    with st.db.session() as s:                           # due a minute ago
        a = s.scalars(select(LineAlarm)).one()
        a.escalate_at -= dt.timedelta(minutes=1)
    st.alarms.close()                                    # look every 50 ms instead of every 15 s
    st.alarms._stop.clear()
    st.alarms._escalator = None
    st.alarms.start(every_s=0.05)
    deadline = time.monotonic() + 10
    # the listeners hear of it after its commit: wait for them, not for the database
    while not any(a["change"] == "escalated" for a in heard) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st.alarms.active()[0]["escalated_at"]
    assert [a["change"] for a in heard if a["change"] == "escalated"] == ["escalated"]
    assert st.metrics.alarms_escalated.labels("L1", "S1", "ng_run")._value.get() == 1


def test_alarms_go_to_their_own_mqtt_topic():
    from lineguard.line.sinks import MqttSink
    sink = MqttSink.__new__(MqttSink)
    sink.topic_prefix = "lineguard"
    assert sink.topic({"event": "alarm", "line": "L1", "station": "S1"}) == "lineguard/L1/S1/alarm"
    assert sink.topic({"event": "inspection", "line": "L1", "station": "S1"}) == "lineguard/L1/S1/result"


@pytest.mark.one_database
def test_the_shift_report_lists_the_shifts_alarms_and_who_saw_to_them(spc_station):
    import datetime as dt
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    st.alarms.acknowledge(alarm["id"], "maria (user)", "lamp 2 replaced", cause="camera")
    for cause in ("process", "process", None):        # two from upstream; the PLC acknowledges without a cause
        _parts(st, NG, NG)
        st.alarms.acknowledge(st.alarms.active()[0]["id"], "plc (modbus)" if cause is None else "ana (user)",
                              cause=cause)
    _parts(st, NG, NG)                                # still active: no cause yet
    # another line with a part of its own (a line no part was ever made on is a 404 now)
    st.inspect(png_bytes(60, seed=next(_seq)), Part(part_id="l2-1", line="L2", station="S1", product="cell"))
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    with client(st) as c:
        report = c.get("/api/v1/reports/shift", params={"at": now, "line": "L1"}).json()
        other = c.get("/api/v1/reports/shift", params={"at": now, "line": "L2"}).json()
    row = report["alarms"][0]
    assert (row["id"], row["acked_by"], row["ack_note"], row["ack_cause"]) == (
        alarm["id"], "maria (user)", "lamp 2 replaced", "camera")
    assert [(c["cause"], c["alarms"]) for c in report["alarm_causes"]] == [("process", 2), ("camera", 1),
                                                                         ("not given", 1)]
    assert report["alarm_causes"][1]["label"] == "camera, lens or lighting"
    assert other["alarms"] == [] and other["alarm_causes"] == []


def test_the_alarms_of_a_period_counted_and_filtered(spc_station):
    import datetime as dt
    from lineguard.line.orm import LineAlarm
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    ids = []
    for station, cause, minutes in (("S1", "process", 4), ("S1", "process", 10), ("S2", "camera", 1),
                                    ("S1", None, None)):
        _parts(st, NG, NG, station=station)
        (a,) = [x for x in st.alarms.active() if x["station"] == station]
        ids.append(a["id"])
        if minutes is not None:
            st.alarms.acknowledge(a["id"], "ana (user)", cause=cause)
            with st.db.session() as s:            # acknowledged that many minutes after it was raised
                row = s.get(LineAlarm, a["id"])
                row.acked_at = row.raised_at + dt.timedelta(minutes=minutes)
    st.alarms.escalate_due(now=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(hours=1))
    with client(st) as c:
        s = c.get("/api/v1/alarms/summary", params={"line": "L1"}).json()
        assert (s["alarms"], s["active"], s["escalated"]) == (4, 1, 1)
        assert s["minutes_to_acknowledge"] == {"median": 4.0, "mean": 5.0, "longest": 10.0}
        assert 0 <= s["oldest_active_waiting_min"] < 5          # the one still active, raised just now
        assert [(x["cause"], x["alarms"]) for x in s["by_cause"]] == [("process", 2), ("camera", 1)]
        assert s["by_station"][0] == {"line": "L1", "station": "S1", "alarms": 3}
        assert s["by_kind"] == [{"kind": "ng_run", "alarms": 4}]
        later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).isoformat()
        assert c.get("/api/v1/alarms/summary", params={"since": later}).json()["alarms"] == 0
        listed = c.get("/api/v1/alarms", params={"cause": "process"}).json()["items"]
        assert sorted(a["id"] for a in listed) == ids[:2]
        assert c.get("/api/v1/alarms", params={"kind": "photo"}).json()["items"] == []
        assert c.get("/api/v1/alarms", params={"cause": "gremlins"}).status_code == 422
        exported = c.get("/api/v1/alarms/export", params={"line": "L1", "station": "S1"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        import csv as csvlib
        rows = list(csvlib.DictReader(exported.text.lstrip("\ufeff").splitlines()))
        assert [int(r["id"]) for r in rows] == [ids[3], ids[1], ids[0]]          # S1's, newest first
        assert [r["minutes_to_acknowledge"] for r in rows] == ["", "10.0", "4.0"]
        assert [r["ack_cause"] for r in rows] == ["", "process", "process"] and rows[0]["escalated_at"]
        page = c.get("/app/alarms")
        assert page.status_code == 200 and "/app/static/alarms.js" in page.text


@pytest.mark.one_database
def test_an_alarms_cause_counts_in_the_shift_it_was_acknowledged_in(spc_station):
    import datetime as dt
    from lineguard.line.orm import LineAlarm
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    two_days_ago = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=2)
    with st.db.session() as s:                        # raised two days ago, acknowledged only now
        s.get(LineAlarm, alarm["id"]).raised_at = two_days_ago
    st.alarms.acknowledge(alarm["id"], "ana (user)", cause="handling")
    with client(st) as c:
        then = c.get("/api/v1/reports/shift", params={"at": two_days_ago.isoformat() + "Z"}).json()
        now = c.get("/api/v1/reports/shift", params={"at": dt.datetime.now(dt.timezone.utc).isoformat()}).json()
    assert [a["id"] for a in then["alarms"]] == [alarm["id"]] and then["alarm_causes"] == []
    assert [a["from_before"] for a in now["alarms"]] == [True]
    assert [(c["cause"], c["alarms"]) for c in now["alarm_causes"]] == [("handling", 1)]


@pytest.mark.one_database
def test_an_acknowledgement_says_what_the_alarm_turned_out_to_be(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, NG, NG, NG, NG, NG)
    (alarm,) = st.alarms.active()
    with client(st) as c:
        causes = c.get("/api/v1/alarms").json()["causes"]
        assert causes["model"].startswith("false alarm") and "camera" in causes
        url, key = f"/api/v1/alarms/{alarm['id']}/acknowledge", {"X-API-Key": st.operator_key}
        bad = c.post(url, json={"cause": "gremlins"}, headers=key)
        assert bad.status_code == 422 and "process, material, handling, camera, model, other" in bad.text
        assert st.alarms.active()[0]["id"] == alarm["id"]             # a refused cause acknowledges nothing
        done = c.post(url, json={"cause": "material", "note": "new coil from supplier B"}, headers=key).json()
    assert done["ack_cause"] == "material" and done["active"] is False
    assert st.alarms.history()[0]["ack_cause"] == "material"


def test_an_acknowledgement_in_another_process_is_honoured_before_raising_again(spc_station):
    """A hot folder's watcher counts the parts; the operator acknowledges in the server (another
    process on the database): the parts before that never raise the alarm again."""
    from lineguard.line.alarms import AlarmWatch
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, NG, NG, NG, NG, NG)
    (alarm,) = st.alarms.active()
    _parts(st, NG, NG, NG)                            # the line ran on meanwhile
    server = AlarmWatch(st.db, st.alarms.rules)       # the other process
    done = server.acknowledge(alarm["id"], "maria (user)")
    assert done["acked_after_id"] == max(a["id"] for a in [{"id": r.id} for r in st.query(limit=50)])
    _parts(st, NG, NG)                                # five in a row here, but three were before the acknowledgement
    assert st.alarms.active() == []
    with client(st) as c:                             # the gauge follows the database at each scrape
        assert 'lineguard_alarms_active{line="L1",station="S1"} 0.0' in c.get("/metrics").text
    _parts(st, NG, NG, NG)
    assert len(st.alarms.active()) == 1


def test_one_active_alarm_of_a_kind_per_station_whichever_process_raises_it(spc_station):
    import datetime as dt
    from sqlalchemy.exc import IntegrityError
    import lineguard.line.alarms as alarms
    from lineguard.line.orm import LineAlarm
    st = _station(spc_station, alarm_ng_rate=0)

    def row(**kw):
        return LineAlarm(line="L1", station="S1", product="cell", kind="ng_run", message="m",
                         raised_at=dt.datetime(2026, 12, 1), inspection_id=1, first_inspection_id=1, parts=5,
                         rejected=5, **kw)

    with st.db.session() as s:
        s.add(row())
    with pytest.raises(IntegrityError):
        with st.db.session() as s:
            s.add(row())
    with st.db.session() as s:                        # acknowledged ones may be many
        s.add(row(acked_at=dt.datetime(2026, 12, 1, 1)))
        s.add(row(acked_at=dt.datetime(2026, 12, 1, 2)))
    # a process that read "none active" a moment before another wrote one: the index refuses
    # the second, and the part is answered as usual
    real = alarms._last_alarm
    alarms._last_alarm = lambda *a, **k: None
    try:
        recs = _parts(st, NG, NG, NG, NG, NG)
    finally:
        alarms._last_alarm = real
    assert len(recs) == 5 and len(st.alarms.active()) == 1


def test_parts_are_counted_in_id_order_whatever_order_they_arrive_in():
    from lineguard.line.alarms import AlarmRules, _Counts
    c = _Counts(AlarmRules(ng_run=3, ng_rate=0.2, window=10, photo_run=2))
    for part_id, verdict in ((4, "NG"), (2, "NG"), (5, "NG"), (3, "OK"), (1, "NG")):   # two threads' commits
        c.add(part_id, verdict)
    assert c.run() == [4, 5] and c.due() == ["ng_rate"]       # 1,2 NG; 3 OK; 4,5 NG: a run of two
    c.add(6, "REVIEW")
    assert c.run() == [4, 5, 6] and c.due() == ["ng_run", "ng_rate"]
    c.raise_floor("ng_run", 6)
    assert c.run() == [] and c.due() == ["ng_rate"]
    c.add(8, "REVIEW", doubted=True)
    c.add(7, "NG", doubted=True)
    assert c.photo_run() == [7, 8] and c.due() == ["ng_rate", "photo"]
    assert c.run() == [] and len(c.window()) == 6        # doubted photos: the photo rule's alone


@pytest.mark.one_database
def test_photos_the_model_cannot_judge_raise_the_camera_alarm_not_the_reject_alarms(spc_station):
    from lineguard.line.alarms import alarm_code
    st = _station(spc_station, alarm_ng_rate=0.2, alarm_window=10)      # 2 NG in 10 parts: the rate alarm
    run = _parts(st, NG, *[OK] * 8, NG, NG, NG)       # the rate alarm is raised at the 11th; a run of three NG
    assert [a["kind"] for a in st.alarms.active()] == ["ng_rate"]
    dark = _parts(st, DARK, DARK)
    assert [r.verdict for r in dark] == ["REVIEW", "REVIEW"] and all(r.photo_issues for r in dark)
    assert [a["kind"] for a in st.alarms.active()] == ["ng_rate"]
    third = _parts(st, DARK)[0]
    camera = [a for a in st.alarms.active() if a["kind"] == "photo"]
    assert len(camera) == 1 and (camera[0]["parts"], camera[0]["rejected"]) == (3, 3)
    assert (camera[0]["first_inspection_id"], camera[0]["inspection_id"]) == (dark[0].id, third.id)
    assert "3 of the last 5 photos unlike the model's good photos" in camera[0]["message"]
    assert "too dark: brightness 0.0" in camera[0]["message"] and "check that the lamp is on" in camera[0]["message"]
    assert alarm_code(st.alarms.active()) == 0b110
    # the three doubted photos neither broke the run of NG parts (three) nor lengthened it
    _parts(st, DARK, DARK, DARK, NG)
    assert sorted(a["kind"] for a in st.alarms.active()) == ["ng_rate", "photo"]
    last = _parts(st, NG)[0]
    (reject_run,) = [a for a in st.alarms.active() if a["kind"] == "ng_run"]
    assert reject_run["parts"] == 5 and reject_run["first_inspection_id"] == run[-3].id
    assert reject_run["inspection_id"] == last.id and "the last part's photo" not in reject_run["message"]
    assert st.metrics.photos_doubted.labels("L1", "S1")._value.get() == 6

    with client(st) as c:
        doubted = c.get("/api/v1/inspections", params={"photo_doubted": "true"}).json()["items"]
        assert len(doubted) == 6 and all(it["photo_issues"] for it in doubted)
        judged = c.get("/api/v1/inspections", params={"photo_doubted": "false", "limit": 1000}).json()["items"]
        assert len(judged) == 14 and not any(it["photo_issues"] for it in judged)
        assert c.get("/api/v1/alarms").json()["rules"]["photo_run"] == 3
        import datetime as dt
        report = c.get("/api/v1/reports/shift", params={"at": dt.datetime.now(dt.timezone.utc).isoformat(),
                                                        "line": "L1"}).json()
        (row,) = report["stations"]                 # the camera's health in the shift report
        assert (row["parts"], row["photo_doubted"], report["totals"]["photo_doubted"]) == (20, 6, 6)


@pytest.mark.one_database
def test_with_the_photo_rule_off_doubted_photos_count_as_review_parts(spc_station):
    st = _station(spc_station, alarm_ng_rate=0, alarm_photo_run=0)
    _parts(st, DARK, DARK, DARK, DARK)
    assert st.alarms.active() == []
    _parts(st, DARK)
    (alarm,) = st.alarms.active()
    assert alarm["kind"] == "ng_run" and "the last part's photo is unlike the good photos: too dark" in alarm["message"]


def test_a_restart_reads_back_the_run_behind_more_doubted_photos_than_the_window(spc_station):
    st = _station(spc_station, alarm_ng_run=3, alarm_ng_rate=0.5, alarm_window=10)
    _parts(st, NG, NG, *[DARK] * 12)          # a lamp out for 12 parts, after two NG parts
    st.alarms.acknowledge(st.alarms.active()[0]["id"], "maria (user)")     # the camera alarm, seen to
    st.close()
    st = spc_station(alarm_ng_run=3, alarm_ng_rate=0.5, alarm_window=10)
    _parts(st, NG)                            # the third NG part in a row, the doubted photos apart
    assert [a["kind"] for a in st.alarms.active()] == ["ng_run"]


def test_a_restart_reads_doubted_photos_back(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, NG, NG, NG, DARK, DARK)
    st.close()
    st = spc_station(alarm_ng_rate=0)                 # restarted: two doubted photos, a run of three NG
    _parts(st, DARK)
    assert [a["kind"] for a in st.alarms.active()] == ["photo"]
    _parts(st, NG)
    assert [a["kind"] for a in st.alarms.active()] == ["photo"]
    _parts(st, NG)
    assert sorted(a["kind"] for a in st.alarms.active()) == ["ng_run", "photo"]


@pytest.mark.one_database
def test_the_shift_report_carries_an_alarm_still_active_from_an_earlier_shift(spc_station):
    import datetime as dt
    from sqlalchemy import update
    from lineguard.line.orm import LineAlarm
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, NG, NG, NG, NG, NG)
    (alarm,) = st.alarms.active()
    with st.db.session() as s:                        # raised two days ago, never acknowledged
        s.execute(update(LineAlarm).values(raised_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                                           - dt.timedelta(days=2)))
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    with client(st) as c:
        rows = c.get("/api/v1/reports/shift", params={"at": now}).json()["alarms"]
    assert [(r["id"], r.get("from_before")) for r in rows] == [(alarm["id"], True)]


def test_rejects_without_a_verdict_are_read_back_after_a_restart_and_an_acknowledgement_counts(spc_station):
    """The no_verdict rule over the PLC's answers (line_signals): a run cut by a restart goes
    on, an acknowledgement in another process ends what came before, one active alarm at a time."""
    from lineguard.line.alarms import AlarmWatch
    from lineguard.line.orm import LineSignal, utcnow
    st = _station(spc_station)
    seq = iter(range(1, 10**6))

    def answer(watch, verdict=False):
        with st.db.session() as s:
            row = LineSignal(protocol="modbus", line="L1", station="S1", trigger_seq=next(seq), part_tag=0,
                             recipe_id=1, product="cell", inspection_id=7 if verdict else None,
                             signal="OK" if verdict else "NG", result_code=1 if verdict else 10,
                             reason=None if verdict else "no verdict within 1000 ms", triggered_at=utcnow(),
                             answered_at=utcnow())
            s.add(row)
            s.flush()
            signal_id = row.id
        return watch.after_answer("L1", "S1", "cell", None if verdict else signal_id, verdict=verdict,
                                  reason=None if verdict else "no verdict within 1000 ms")

    assert answer(st.alarms) == [] and answer(st.alarms) == []
    later = AlarmWatch(st.db, st.alarms.rules)        # the station restarted: the run is read back
    (alarm,) = answer(later)
    assert (alarm["kind"], alarm["parts"], alarm["inspection_id"]) == ("no_verdict", 3, 0)
    assert "within 1000 ms" in alarm["message"]
    assert [answer(later) for _ in range(4)] == [[]] * 4           # latched
    st.alarms.acknowledge(alarm["id"], "maria (user)")            # in "another process"
    assert answer(later) == [] and answer(later) == []            # the answers before it do not count
    assert answer(later, verdict=True) == []                        # a verdict ends the run
    assert answer(later) == [] and answer(later) == []
    (again,) = answer(later)
    assert again["parts"] == 3 and again["id"] != alarm["id"]
    assert st.alarms.rules_for("L1", "S1").no_verdict_run == 3


@pytest.mark.one_database
def test_an_alarm_left_unacknowledged_is_escalated_again_at_its_stations_pace(spc_station):
    """--alarm-escalate-again-min: escalated again every so many minutes, each time once
    whichever process looks, with its level; a station down for an hour sends one, not six."""
    import datetime as dt
    from lineguard.line.alarms import AlarmRules, AlarmWatch
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2, alarm_escalate_min=10, alarm_escalate_again_min=5)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    assert alarm["escalate_again_min"] == 5
    raised = dt.datetime.fromisoformat(alarm["raised_at"].replace("Z", "+00:00"))
    at = lambda minutes: raised + dt.timedelta(minutes=minutes)      # noqa: E731
    other = AlarmWatch(st.db, AlarmRules(escalate_min=0))           # another process whose setting is "never"
    assert [a["level"] for a in st.alarms.escalate_due(now=at(10))] == [1]
    assert other.escalate_due(now=at(14)) == [] and st.alarms.escalate_due(now=at(14.9)) == []
    (second,) = other.escalate_due(now=at(15))
    assert (second["level"], second["escalations"], second["change"]) == (2, 2, "escalated")
    assert second["escalated_at"] == st.alarms.history()[0]["escalated_at"]          # the first time stays
    assert st.alarms.escalate_due(now=at(16)) == []                                   # each level once
    (late,) = st.alarms.escalate_due(now=at(80))          # nobody looked for an hour: one, the next after it
    assert late["level"] == 3
    nxt = dt.datetime.fromisoformat(late["escalate_at"].replace("Z", "+00:00"))
    assert at(80) < nxt <= at(85)
    assert [m[0] for m in _alarm_messages(st)].count("escalated") == 3
    st.alarms.acknowledge(alarm["id"], "maria (user)")
    assert st.alarms.escalate_due(now=at(200)) == []
    with pytest.raises(ValueError, match="every 1 to 1440 minutes"):
        AlarmRules(escalate_again_min=0.5)


def test_an_alarm_whose_due_time_was_written_in_another_form_is_escalated(spc_station):
    """SQLite keeps times as text: a due time written by hand or another tool as
    '08:10:00' (not the station's '08:10:00.000000') is still escalated, once."""
    import datetime as dt
    from sqlalchemy import text
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    if not st.db.is_sqlite:
        pytest.skip("PostgreSQL keeps timestamps, not text")
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    with st.db.session() as s:
        s.execute(text("UPDATE alarms SET escalate_at = '2026-12-01 08:10:00' WHERE id = :i"), {"i": alarm["id"]})
    (done,) = st.alarms.escalate_due(now=dt.datetime(2026, 12, 1, 9, 0))
    assert done["level"] == 1 and st.alarms.escalate_due(now=dt.datetime(2026, 12, 2)) == []


def test_the_alarm_states_written_again_after_a_connection_take_their_place_in_each_lines_order(spc_station):
    """After an MQTT (re)connection every station's state is written to the outbox again,
    as a row of its line: a change made after it (here or in another process) is a later
    row, so the broker is left with the newest state whichever process delivers."""
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    _parts(st, NG, NG, station="S2")
    (s2,) = st.alarms.active(station="S2")
    st.alarms.acknowledge(s2["id"], "maria (user)")
    assert st.alarms.record_states() == 2
    (alarm,) = st.alarms.active()
    st.alarms.acknowledge(alarm["id"], "maria (user)")        # after the rows written again
    with st.db.session() as s:
        rows = [(r.event, r.payload.get("station"), r.payload.get("change"), len(r.payload.get("station_active", [])))
                for r in s.scalars(select(OutboxEvent).where(OutboxEvent.event.in_(("alarm", "alarm_state")))
                                   .order_by(OutboxEvent.id))]
    assert rows[-3:] == [("alarm_state", "S1", "restored", 1), ("alarm_state", "S2", "restored", 0),
                         ("alarm", "S1", "acknowledged", 0)]


@pytest.mark.one_database
def test_what_an_alarm_turned_out_to_be_is_said_later_and_the_note_keeps_each_change(spc_station):
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    key = {"X-API-Key": st.operator_key}
    url = f"/api/v1/alarms/{alarm['id']}"
    with client(st) as c:
        early = c.patch(url, json={"cause": "material"}, headers=key)
        assert early.status_code == 409 and "acknowledge" in early.json()["error"]["message"]
        assert c.post(url + "/acknowledge", json={"note": "line stopped, parts set aside"}, headers=key).status_code == 200
        assert c.get("/api/v1/alarms/summary").json()["by_cause"][0]["cause"] == "none"
        # the next morning the supplier confirms a bad coil
        r = c.patch(url, json={"cause": "material", "note": "coil 4471 out of spec"}, headers=key)
        assert r.status_code == 200, r.text
        assert r.json()["ack_cause"] == "material" and r.json()["active"] is False
        assert [(x["cause"], x["alarms"]) for x in c.get("/api/v1/alarms/summary").json()["by_cause"]] == \
            [("material", 1)]
        assert c.patch(url, json={"cause": "process"}, headers=key).json()["ack_cause"] == "process"
        assert c.patch(url, json={"cause": "process"}, headers=key).status_code == 200    # the same: nothing added
        assert c.patch(url, json={}, headers=key).status_code == 422
        assert c.patch(url, json={"cause": "gremlins"}, headers=key).status_code == 422
        assert c.patch("/api/v1/alarms/999999", json={"cause": "process"}, headers=key).status_code == 404
        assert c.patch(url, json={"cause": "process"}).status_code == 401
        note = st.alarms.history()[0]["ack_note"].splitlines()
    assert note[0] == "line stopped, parts set aside"
    assert "cause not given -> material or supplier batch; coil 4471 out of spec" in note[1]
    assert "line-tablet (key" in note[1] and " UTC, " in note[1]
    assert "cause material or supplier batch -> defects made upstream (tool, process)" in note[2]
    assert len(note) == 3
    assert [m for m in _alarm_messages(st) if m[0] == "cause_set"] == [("cause_set", "ng_run", alarm["id"])] * 2


def test_notes_added_to_an_alarm_at_once_are_all_kept(spc_station):
    import threading
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    st.alarms.acknowledge(alarm["id"], "ana (user)")
    errors = []

    def add(who):
        try:
            for i in range(5):
                st.alarms.set_cause(alarm["id"], who, note=f"{who} note {i}")
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=add, args=(w,)) for w in ("ana", "ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    note = st.alarms.history()[0]["ack_note"]
    assert sorted(ln.split("] ")[1] for ln in note.splitlines()) == sorted(
        f"{w} note {i}" for w in ("ana", "ben") for i in range(5))


@pytest.mark.parametrize("theirs, mine, history", [
    ("material", "process", ["cause not given -> material or supplier batch",
                             "cause material or supplier batch -> defects made upstream (tool, process)"]),
    ("material", "material", ["cause not given -> material or supplier batch"]),
])
def test_a_cause_changed_by_someone_else_meanwhile_is_read_again(spc_station, monkeypatch, theirs, mine, history):
    """Someone else's change commits between this change's read and its write: the note's
    history must say what the cause really was, and the same cause is not said twice."""
    import threading
    from lineguard.line import alarms as alarms_module
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    st.alarms.acknowledge(alarm["id"], "ana (user)")
    real, fired = alarms_module.lock_line, []

    def between(s, line):        # after this change's read, before its write
        if not fired:
            fired.append(1)
            other = threading.Thread(target=st.alarms.set_cause, args=(alarm["id"], "ben (user)"),
                                     kwargs={"cause": theirs})
            other.start()
            other.join()
        return real(s, line)
    monkeypatch.setattr(alarms_module, "lock_line", between)
    st.alarms.set_cause(alarm["id"], "ana (user)", cause=mine)
    (done,) = st.alarms.history()
    assert done["ack_cause"] == mine
    assert [ln.split("] ", 1)[1] for ln in done["ack_note"].splitlines()] == history


@pytest.mark.one_database
def test_a_note_with_line_breaks_cannot_fake_a_line_of_the_history(spc_station):
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    st.alarms.acknowledge(alarm["id"], "ana (user)", note="checked\n[2026-12-01 06:00 UTC, boss (user)] all fine")
    st.alarms.set_cause(alarm["id"], "ana (user)", note="more\r\n[2026-12-01 06:00 UTC, boss (user)] cause x")
    lines = st.alarms.history()[0]["ack_note"].splitlines()
    assert lines[0] == "checked [2026-12-01 06:00 UTC, boss (user)] all fine" and len(lines) == 2
    assert lines[1].endswith("] more [2026-12-01 06:00 UTC, boss (user)] cause x")


@pytest.mark.one_database
def test_a_plants_own_alarm_cause_is_offered_counted_and_kept_when_retired(spc_station):
    """Beyond the six built in: "coil change" is what stops this line. It is offered with
    the next PLC number, counted by its name, and once retired no longer offered, while the
    alarms that had it keep it and its number goes to no other cause."""
    st = _station(spc_station, alarm_ng_rate=0)
    with st.db.session() as s:
        engineer = {"X-API-Key": create_key(s, "engineer", name="qe")[1]}
    op = {"X-API-Key": st.operator_key}
    with client(st) as c:
        assert c.post("/api/v1/alarm-causes", json={"label": "coil change"}, headers=op).status_code == 403
        r = c.post("/api/v1/alarm-causes", json={"label": "  Coil   change "}, headers=engineer)
        assert r.status_code == 201, r.text
        assert (r.json()["key"], r.json()["label"], r.json()["code"]) == ("coil_change", "Coil change", 7)
        for body in ({"label": "COIL CHANGE", "key": "coils"}, {"label": "x", "key": "camera"},
                     {"label": "Camera, lens or lighting", "key": "lens"}):
            assert c.post("/api/v1/alarm-causes", json=body, headers=engineer).status_code == 409, body
        for body in ({"label": ""}, {"label": "   "}, {"label": "die", "key": "Die Wear"}, {"label": "x" * 101}):
            assert c.post("/api/v1/alarm-causes", json=body, headers=engineer).status_code == 422, body
        offered = c.get("/api/v1/alarms", headers=op).json()["causes"]
        assert list(offered)[-2:] == ["coil_change", "other"]      # "other" stays the last resort
        _parts(st, NG, NG, NG, NG, NG)
        (alarm,) = st.alarms.active()
        done = c.post(f"/api/v1/alarms/{alarm['id']}/acknowledge", json={"cause": "coil_change"}, headers=op)
        assert done.status_code == 200 and done.json()["ack_cause"] == "coil_change", done.text
        by_cause = c.get("/api/v1/alarms/summary", headers=op).json()["by_cause"]
        assert by_cause == [{"cause": "coil_change", "label": "Coil change", "alarms": 1}]
        assert c.get("/api/v1/alarms", params={"cause": "coil_change"}, headers=op).json()["items"][0]["id"] == alarm["id"]
        assert c.get("/api/v1/alarms", params={"cause": "gremlins"}, headers=op).status_code == 422
        # retired: no longer offered, no longer taken, still the name of the alarm that had it
        assert c.delete("/api/v1/alarm-causes?key=coil_change", headers=op).status_code == 403
        assert c.delete("/api/v1/alarm-causes?key=camera", headers=engineer).status_code == 409
        assert c.delete("/api/v1/alarm-causes?key=coil_change", headers=engineer).status_code == 200
        assert c.delete("/api/v1/alarm-causes?key=coil_change", headers=engineer).status_code == 404
        listed = c.get("/api/v1/alarms", headers=op).json()
        assert "coil_change" not in listed["causes"] and listed["cause_labels"]["coil_change"] == "Coil change (retired)"
        _parts(st, NG, NG, NG, NG, NG)
        (again,) = st.alarms.active()
        refused = c.post(f"/api/v1/alarms/{again['id']}/acknowledge", json={"cause": "coil_change"}, headers=op)
        assert refused.status_code == 422 and "alarm-causes" in refused.text
        assert c.get("/api/v1/alarms/summary", headers=op).json()["by_cause"][0]["label"] == "Coil change (retired)"
        # its number is not handed on: the next cause is 8; the retired one comes back as 7
        assert c.post("/api/v1/alarm-causes", json={"label": "die wear"}, headers=engineer).json()["code"] == 8
        assert c.post("/api/v1/alarm-causes", json={"label": "coil change"}, headers=engineer).json()["code"] == 7
        items = c.get("/api/v1/alarm-causes", headers=op).json()["items"]
        assert [(x["code"], x["key"], x["built_in"]) for x in items][5:] == [
            (6, "other", True), (7, "coil_change", False), (8, "die_wear", False)]
        log = c.get("/api/v1/change-log", params={"subject": "alarm cause coil_change"}, headers=engineer).json()
        assert [e["action"] for e in reversed(log["items"])] == ["alarm_cause.added", "alarm_cause.retired",
                                                                  "alarm_cause.added"]
        import datetime as dt
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        report = c.get("/api/v1/reports/shift", params={"at": now, "line": "L1"}, headers=op).json()
    assert report["alarm_causes"] == [{"cause": "coil_change", "label": "coil change", "alarms": 1}]   # its label now


def test_alarm_causes_from_the_command_line(tmp_path):
    from click.testing import CliRunner
    from lineguard.cli import app
    from lineguard.line.db import Database
    data = tmp_path / "station"
    Database(f"sqlite:///{data / 'lineguard.db'}").upgrade()

    def run(*args):
        return CliRunner().invoke(app, ["alarm-causes", *args, "--data", str(data)])
    added = run("add", "die wear on press 4", "--key", "die_wear")
    assert added.exit_code == 0 and "die_wear: die wear on press 4 (PLC number 7)" in added.output, added.output
    assert run("add", "Die wear on press 4").exit_code == 2           # offered already: refused
    listed = run("list")
    assert "7\tdie_wear\tdie wear on press 4\tcli (" in listed.output and "1\tprocess" in listed.output
    assert run("retire", "die_wear").exit_code == 0
    assert run("retire", "process").exit_code == 2                     # built in: refused
    assert "-\tdie_wear" in run("list").output


def test_alarms_and_the_shift_report_find_a_line_typed_in_another_case(spc_station):
    """"l1" for line L1, "CELL" for product cell, " s1" for station S1: as the gallery and
    the SPC charts find them (they found nothing here)."""
    import datetime as dt
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, OK, OK, NG, NG, NG, NG, NG)
    (alarm,) = st.alarms.active()
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    op = {"X-API-Key": st.operator_key}
    with client(st) as c:
        found = c.get("/api/v1/alarms", params={"line": "l1", "station": " s1"}, headers=op).json()["items"]
        assert [a["id"] for a in found] == [alarm["id"]]
        assert c.get("/api/v1/alarms/summary", params={"line": "l1", "station": "s1"}, headers=op).json()["alarms"] == 1
        assert c.get("/api/v1/alarms/export", params={"line": "L1 "}, headers=op).text.count("\n") == 2
        report = c.get("/api/v1/reports/shift", params={"at": now, "line": "l1", "product": "CELL"}, headers=op).json()
        assert report["totals"]["parts"] == 7 and [a["id"] for a in report["alarms"]] == [alarm["id"]]
        assert c.get("/api/v1/alarms", params={"line": "L9"}, headers=op).json()["items"] == []


@pytest.mark.one_database
def test_a_period_from_after_until_is_refused_not_answered_as_a_quiet_one(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    op = {"X-API-Key": st.operator_key}
    backwards = {"since": "2026-12-01T10:00:00Z", "until": "2026-12-01T09:00:00Z"}
    with client(st) as c:
        for path in ("/api/v1/alarms", "/api/v1/alarms/summary", "/api/v1/alarms/export"):
            r = c.get(path, params=backwards, headers=op)
            assert r.status_code == 422 and "swap them" in r.json()["error"]["message"], (path, r.text)
        with st.db.session() as s:
            eng = {"X-API-Key": create_key(s, "engineer", name="qe")[1]}
        assert c.get("/api/v1/change-log", params=backwards, headers=eng).status_code == 422
        assert c.get("/api/v1/alarms", params={"until": backwards["until"]}, headers=op).status_code == 200


def test_a_cause_whose_made_up_key_is_taken_gets_its_own_and_never_a_retired_causes_number(spc_station):
    """Two labels alike in their first 20 letters made the same key: the second, added after
    the first was retired, took its PLC number and renamed the alarms that had it."""
    from lineguard.line import alarm_causes
    st = _station(spc_station)
    left = alarm_causes.add(st.db, "Coil change press 4 left side", by="qe")
    assert (left["key"], left["code"]) == ("coil_change_press_4", 7)
    right = alarm_causes.add(st.db, "Coil change press 4 right side", by="qe")     # in use: another key
    assert (right["key"], right["code"]) == ("cause_8", 8)
    alarm_causes.retire(st.db, "coil_change_press_4", by="qe")
    third = alarm_causes.add(st.db, "Coil change press 4 top side", by="qe")
    assert (third["key"], third["code"]) == ("cause_9", 9)
    assert alarm_causes.labels(st.db)["coil_change_press_4"] == "Coil change press 4 left side (retired)"
    # the same label comes back under its old number; a label with no letter a key takes gets one
    assert alarm_causes.add(st.db, "coil change press 4 LEFT side", by="qe")["code"] == 7
    alarm_causes.retire(st.db, "cause_8", by="qe")
    with pytest.raises(Exception, match="was the cause 'Coil change press 4 right side'"):
        alarm_causes.add(st.db, "die wear", by="qe", key="cause_8")        # its key, another cause
    ru = alarm_causes.add(st.db, "Смена рулона", by="qe")
    assert (ru["key"], ru["code"]) == ("cause_10", 10)
    # labels alike but for case are one cause, beyond ASCII too (SQLite's lower() folds ASCII only)
    with pytest.raises(Exception, match="offered already"):
        alarm_causes.add(st.db, "СМЕНА РУЛОНА", by="qe", key="ru2")


@pytest.mark.one_database
def test_a_plc_acknowledgement_takes_every_alarm_though_its_cause_was_retired_meanwhile(spc_station):
    from lineguard.line import alarm_causes
    st = _station(spc_station)
    alarm_causes.add(st.db, "coil change", by="qe")
    _parts(st, NG, NG, NG, NG, NG, DARK, DARK, DARK)          # the NG run and the camera's alarm
    assert len(st.alarms.active()) == 2
    alarm_causes.retire(st.db, "coil_change", by="qe")        # between the PLC's number read and the writes
    done = st.alarms.acknowledge_station("L1", "S1", by="plc (modbus)", cause="coil_change")
    assert [(a["active"], a["ack_cause"]) for a in done] == [(False, "coil_change")] * 2
    assert st.alarms.active() == []
