"""The shift handover on SQLite and PostgreSQL: the station's stops, starts and outages in
the shift, the handover note with its history, the parts the PLC rejected without a
verdict listed with one sentence for the operator, and alarms as they stood at the end."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line.auth import create_key
from lineguard.line.orm import LineAlarm, LineSignal

from .conftest import downgrade
from .test_shift_report import DAY, _plant
from .test_spc_api import client

AT = {"at": "2026-11-30T10:00:00Z"}
STARTS = ("06:00", "14:00", "22:00")


def _t(h, m=0, s=0):
    return DAY + dt.timedelta(hours=h, minutes=m, seconds=s)


@pytest.mark.one_database
def test_a_restart_and_an_outage_are_listed_with_the_time_no_part_was_judged(spc_station):
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add_all([StationRun(process="station on pc1", pid=1, started_at=_t(5), seen_at=_t(7), stopped_at=_t(7)),
                   # killed: its last sign of life at 08:00, started again 40 s later
                   StationRun(process="station on pc1", pid=2, started_at=_t(7, 0, 35), seen_at=_t(8)),
                   StationRun(process="station on pc1", pid=3, started_at=_t(8, 0, 40), seen_at=_t(13, 59, 50),
                              stopped_at=_t(13, 59, 50))])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    events = rep["stops_and_starts"]
    assert [(e["kind"], e["stopped_at"], e["started_at"], e["down_s"]) for e in events] == [
        ("restart", "2026-11-30T07:00:00Z", "2026-11-30T07:00:35Z", 35.0),
        ("outage", "2026-11-30T08:00:00Z", "2026-11-30T08:00:40Z", 40.0),
        # stopped 10 s before the shift's end and not started again within it
        ("down", "2026-11-30T13:59:50Z", None, 10.0)]
    assert "no part judged for 35 s" in events[0]["text"] and "no clean stop" in events[1]["text"]


def test_the_station_records_its_start_and_its_clean_stop(spc_station):
    from sqlalchemy import select

    from lineguard.line.orm import StationRun
    st = spc_station()
    st.record_start("serve")       # the run is written once the start is accepted, under its name
    with st.db.session() as s:
        runs = list(s.scalars(select(StationRun)))
    assert len(runs) == 1 and runs[0].stopped_at is None and runs[0].process.startswith("serve on ")
    st.alarms.close()
    with st.db.session() as s:
        assert s.scalar(select(StationRun.stopped_at)) is not None


def test_the_handover_note_is_kept_with_who_and_when_and_its_history(spc_station):
    st = spc_station(shift_starts=STARTS)
    _plant(st)
    with st.db.session() as s:
        op = {"X-API-Key": create_key(s, "operator", name="marta")[1]}
    with client(st) as c:
        assert c.put("/api/v1/reports/shift/note", json={**AT, "note": "x"}).status_code == 401
        r = c.put("/api/v1/reports/shift/note", headers=op, json={"at": "2026-11-30T07:00:00Z", "line": "l1",
                                                                  "note": "camera 2 lens cleaned at 09:10"})
        assert r.status_code == 200, r.text
        r = c.put("/api/v1/reports/shift/note", headers=op, json={**AT, "line": "L1",
                                                                  "note": "camera 2 lens cleaned at 09:15"})
        assert r.status_code == 200, r.text
        too_long = c.put("/api/v1/reports/shift/note", headers=op, json={**AT, "line": "L1", "note": "a" * 4100})
        assert too_long.status_code == 422 and "shorten it" in too_long.text
        rep = c.get("/api/v1/reports/shift", params={**AT, "line": "L1"}).json()
        other_line = c.get("/api/v1/reports/shift", params={**AT, "line": "L2"}).json()
        next_shift = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T15:00:00Z", "line": "L1"}).json()
    note = rep["handover_note"]
    assert note["note"] == "camera 2 lens cleaned at 09:15" and note["written_by"].startswith("marta")
    assert [h["note"] for h in note["history"]] == ["camera 2 lens cleaned at 09:15", "camera 2 lens cleaned at 09:10"]
    assert other_line["handover_note"]["note"] is None and next_shift["handover_note"]["note"] is None


def test_a_note_for_a_shift_that_has_not_started_is_refused(spc_station):
    """A note for a mistyped day ahead was kept on a shift no one had worked yet, unseen,
    while the shift it was meant for handed over without it."""
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        op = {"X-API-Key": create_key(s, "operator", name="marta")[1]}
    ahead = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with client(st) as c:
        r = c.put("/api/v1/reports/shift/note", headers=op, json={"at": ahead, "note": "belt 2 squeaks"})
        assert r.status_code == 422 and "has not started" in r.text and "within the running shift" in r.text, r.text
        r = c.put("/api/v1/reports/shift/note", headers=op, json={"at": now, "note": "belt 2 squeaks"})
        assert r.status_code == 200 and r.json()["note"] == "belt 2 squeaks", r.text
        # nor is its report shown as if it ran (it read "running", with a note box the note then refused)
        assert c.get("/api/v1/reports/shift", params={"at": ahead}).status_code == 422


@pytest.mark.one_database
def test_parts_rejected_without_a_verdict_are_listed_with_a_sentence_for_the_operator(spc_station):
    st = spc_station(shift_starts=STARTS)
    _plant(st)
    with st.db.session() as s:
        s.add_all([LineSignal(protocol="modbus", line="L1", station="plc", trigger_seq=40 + i, part_tag=1000 + i,
                              recipe_id=1, product="cell", inspection_id=None, signal="NG", result_code=15,
                              reason="image p.png refused: the upload is not an image lineguard can read",
                              triggered_at=_t(7, i), answered_at=_t(7, i)) for i in range(3)])
        s.add(LineSignal(protocol="modbus", line="L1", station="plc", trigger_seq=50, part_tag=2000, recipe_id=1,
                         product="cell", inspection_id=None, signal="NG", result_code=10, reason="x",
                         triggered_at=_t(15), answered_at=_t(15)))             # the next shift's
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    assert [(p["part_tag"], p["station"], p["triggered_at"]) for p in rep["no_verdict_parts"]] == [
        (1000, "plc", "2026-11-30T07:00:00Z"), (1001, "plc", "2026-11-30T07:01:00Z"),
        (1002, "plc", "2026-11-30T07:02:00Z")]
    assert rep["no_verdict_text"].startswith("The camera sent no usable photo for 3 parts: the PLC rejected them; "
                                             "call maintenance")


def test_the_no_verdict_alarm_says_first_what_an_operator_does():
    from lineguard.line.alarms import no_verdict_plain
    assert no_verdict_plain(3, "image x.png refused: not an image").startswith("The camera sent no usable photo")
    assert no_verdict_plain(2, "no verdict within the inspection window of 800 ms").startswith(
        "The station did not judge 2 parts in time")


@pytest.mark.one_database
def test_an_alarm_is_shown_as_it_stood_at_the_shifts_end(spc_station):
    st = spc_station(shift_starts=STARTS)
    _plant(st)
    with st.db.session() as s:
        s.add(LineAlarm(line="L1", station="S1", product="cell", kind="ng_run", message="5 parts in a row",
                        raised_at=_t(13, 50), inspection_id=1, first_inspection_id=1, parts=5, rejected=5,
                        escalated_at=_t(14, 0, 46), escalations=1, acked_at=_t(14, 5), acked_by="ben (user)"))
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    a = [x for x in rep["alarms"] if x["message"] == "5 parts in a row"][0]
    assert a["at_end"] == {"acknowledged": False, "escalated": False}
    assert a["later"] == ("acknowledged at 2026-11-30 14:05:00 plant time by ben (user); escalated at 2026-11-30 "
                          "14:00:46 plant time")


def test_migration_0033_adds_the_notes_and_runs_tables_and_takes_them_back(spc_station):
    from sqlalchemy import inspect as sa_inspect

    st = spc_station()

    def tables():
        return set(sa_inspect(st.db.engine).get_table_names(schema=st.db.schema))
    assert {"shift_notes", "station_runs"} <= tables()
    downgrade(st.db, "0032")
    assert not {"shift_notes", "station_runs"} & tables()
    st.db.upgrade()
    assert {"shift_notes", "station_runs"} <= tables()


def test_a_second_process_on_the_same_pc_is_no_outage(spc_station):
    """serve and a local watcher on one PC under the PC's name: the watcher's start while
    serve runs is not a restart of serve with '0 s' without parts."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add_all([StationRun(process="station on pc1", pid=1, started_at=_t(5), seen_at=_t(13, 59, 55)),
                   StationRun(process="station on pc1", pid=2, started_at=_t(7), seen_at=_t(13, 59, 55))])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    assert rep["stops_and_starts"] == []


def test_starts_refused_while_the_station_runs_are_no_restart_and_no_outage(spc_station):
    """Second starts on the same data folder, refused within seconds while the station ran on
    (a wrong --recipe, a port taken), were read one after the other: the second as a restart
    of the first ("no part judged for 24 s") and the last as the station down to the shift's
    end, while it judged parts all along (a README walk's shift report)."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    name = "serve on pc1:/srv/station"
    with st.db.session() as s:
        s.add_all([StationRun(process=name, pid=1, started_at=_t(6, 30), seen_at=_t(13, 59, 55))] + [
            StationRun(process=name, pid=10 + k, started_at=_t(9, k), seen_at=_t(9, k, 8), stopped_at=_t(9, k, 8))
            for k in range(3)] + [StationRun(process=name, pid=20, started_at=_t(9, 5), seen_at=_t(9, 5, 3))])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    assert [e["kind"] for e in rep["stops_and_starts"]] == ["started"], rep["stops_and_starts"]
    # and once the station itself stops, it is down from then, not from a refused start's end
    with st.db.session() as s:
        run = s.query(StationRun).filter_by(pid=1).one()
        run.seen_at = run.stopped_at = _t(12)
    with client(st) as c:
        events = c.get("/api/v1/reports/shift", params=AT).json()["stops_and_starts"]
    assert [(e["kind"], e["stopped_at"]) for e in events] == [("started", None), ("down", "2026-11-30T12:00:00Z")]


@pytest.mark.one_database
def test_a_station_down_since_the_shift_before_is_down_all_of_this_one(spc_station):
    """Gone silent in the shift before and no start since: the report said "The station ran
    through the shift" (only runs seen in the shift were looked at)."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add(StationRun(process="serve on pc1:/data", pid=1, started_at=_t(-6), seen_at=_t(4)))   # 04:00
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    events = rep["stops_and_starts"]
    assert [(e["kind"], e["stopped_at"], e["started_at"], e["before_window"], e["down_in_window_s"], e["down_s"])
            for e in events] == [("down", "2026-11-30T04:00:00Z", None, True, 8 * 3600.0, 10 * 3600.0)]
    assert "before this shift began" in events[0]["text"] and "down all of this shift" in events[0]["text"]
    assert "8 h 0 min" in events[0]["text"]


@pytest.mark.one_database
def test_a_station_down_since_the_shift_before_and_started_in_this_one(spc_station):
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add_all([StationRun(process="serve on pc1:/data", pid=1, started_at=_t(-6), seen_at=_t(4)),
                   StationRun(process="serve on pc1:/data", pid=2, started_at=_t(8), seen_at=_t(13, 59, 55))])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    [e] = rep["stops_and_starts"]
    assert (e["kind"], e["stopped_at"], e["started_at"], e["before_window"], e["down_in_window_s"]) == (
        "outage", "2026-11-30T04:00:00Z", "2026-11-30T08:00:00Z", True, 2 * 3600.0)
    assert "before this shift began and started again in it" in e["text"] and "2 h 0 min of them" in e["text"]


def test_a_station_gone_silent_just_before_the_shift_is_down(spc_station):
    """Its last sign of life 20 s before the shift began (within the beats the window looks
    back for a run still running): not listed at all before."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add(StationRun(process="serve on pc1:/data", pid=1, started_at=_t(-6), seen_at=_t(5, 59, 40)))
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    assert [(e["kind"], e["before_window"]) for e in rep["stops_and_starts"]] == [("down", True)]


@pytest.mark.one_database
def test_a_process_not_heard_of_for_over_a_week_is_not_down_in_every_shift(spc_station):
    """A station moved to another PC leaves its old name behind: retired, not down."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add_all([StationRun(process="serve on old-pc:/data", pid=1, started_at=_t(-24 * 9),
                              seen_at=_t(-24 * 8)),
                   StationRun(process="serve on pc1:/data", pid=2, started_at=_t(5), seen_at=_t(13, 59, 55))])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    assert rep["stops_and_starts"] == []


@pytest.mark.one_database
def test_the_line_view_says_a_process_down_since_the_shift_before(spc_station):
    from lineguard.line.orm import StationRun, utcnow
    st = spc_station(shift_starts=STARTS)
    now = utcnow()
    with st.db.session() as s:
        s.add(StationRun(process="serve on pc9:/data", pid=1, started_at=now - dt.timedelta(days=2),
                         seen_at=now - dt.timedelta(hours=9)))
    with client(st) as c:
        r = c.get("/api/v1/lines/summary")
        assert r.status_code == 200, r.text
    [e] = [x for x in r.json()["stops_and_starts"] if x["process"] == "serve on pc9:/data"]
    assert e["kind"] == "down" and e["before_window"] and e["stopped_at"] < r.json()["since"]


@pytest.mark.one_database
def test_the_sentences_carry_no_utc_times_and_long_outages_in_hours(spc_station):
    """The sentences gave raw UTC ("went silent after 2026-12-06T10:45:15.814701Z") beside
    columns in plant time, and two hours as "7200 s"."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add_all([StationRun(process="station on pc1", pid=1, started_at=_t(5), seen_at=_t(7), stopped_at=_t(7)),
                   StationRun(process="station on pc1", pid=2, started_at=_t(7, 12, 5), seen_at=_t(8)),
                   StationRun(process="station on pc1", pid=3, started_at=_t(10), seen_at=_t(12))])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    texts = [e["text"] for e in rep["stops_and_starts"]]
    assert len(texts) == 3 and not [t for t in texts if "2026-" in t or "Z " in t], texts
    assert "no part judged for 12 min 5 s" in texts[0]
    assert "no part judged for about 2 h 0 min" in texts[1]
    assert "no part judged for 2 h 0 min or more" in texts[2]


@pytest.mark.one_database
def test_the_no_verdict_sentence_speaks_for_most_of_the_parts_not_the_last(spc_station):
    """411 window timeouts and one unknown recipe last: the report told the shift "a product
    the station does not know for 412 parts"."""
    st = spc_station(shift_starts=STARTS)
    _plant(st)
    reasons = ["no verdict within the inspection window of 800 ms"] * 4 + ["recipe 7 is not in the recipe table"]
    with st.db.session() as s:
        s.add_all([LineSignal(protocol="modbus", line="L1", station="plc", trigger_seq=60 + i, part_tag=3000 + i,
                              recipe_id=1, product="cell", inspection_id=None, signal="NG", result_code=15,
                              reason=why, triggered_at=_t(8, i), answered_at=_t(8, i))
                   for i, why in enumerate(reasons)])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
    assert rep["no_verdict_text"] == (
        "The PLC rejected 5 parts without a verdict (4 of them: not judged in time; 1 of them: a product the "
        "station does not know); call maintenance if it goes on.")


def test_the_no_verdict_sentence_for_one_part_is_singular():
    from lineguard.line.alarms import no_verdict_plain
    assert no_verdict_plain(1, "no verdict within the inspection window of 800 ms") == (
        "The station did not judge 1 part in time: the PLC rejected it; call maintenance if it goes on.")
    # more parts in the shift than listed: the mix is said of those listed
    assert no_verdict_plain(600, ["image x.png refused"] * 3 + [None]) == (
        "The PLC rejected 600 parts without a verdict (3 of them: no usable photo; 1 of them: other faults, among "
        "the last 4 listed); call maintenance.")


@pytest.mark.one_database
def test_serve_ray_started_again_with_fewer_replicas_leaves_no_replica_down(spc_station):
    """serve-ray's two replicas killed at 08:00, started again at 08:01 with one: replica 1
    was listed as down in every shift for a week, though the station ran. It is said once,
    as retired, in the shift it stopped in; replica 0's outage is the time no part was judged."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    r0, r1 = "serve-ray replica 0 on pc1:/data", "serve-ray replica 1 on pc1:/data"
    with st.db.session() as s:
        s.add_all([StationRun(process=r0, pid=1, started_at=_t(5), seen_at=_t(8)),
                   StationRun(process=r1, pid=2, started_at=_t(5), seen_at=_t(8)),
                   StationRun(process=r0, pid=3, started_at=_t(8, 1), seen_at=_t(18), stopped_at=_t(18)),
                   # restarted again in the next shift: replica 1 was still retired at 08:01
                   StationRun(process=r0, pid=6, started_at=_t(18, 1), seen_at=_t(21, 59, 55)),
                   # another serve-ray deployment on the PC, and a replica of this one on
                   # another PC: neither is a sibling of replica 1 on pc1
                   StationRun(process="serve-ray other replica 1 on pc1:/data", pid=4, started_at=_t(5),
                              seen_at=_t(7)),
                   StationRun(process="serve-ray replica 1 on pc2:/data", pid=5, started_at=_t(5), seen_at=_t(7))])
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=AT).json()
        later = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T18:00:00Z"}).json()
    events = {(e["process"], e["kind"]) for e in rep["stops_and_starts"]}
    assert events == {(r0, "outage"), (r1, "retired"), ("serve-ray other replica 1 on pc1:/data", "down"),
                      ("serve-ray replica 1 on pc2:/data", "down")}, rep["stops_and_starts"]
    [retired] = [e for e in rep["stops_and_starts"] if e["kind"] == "retired"]
    assert retired["stopped_at"] == "2026-11-30T08:00:00Z" and "fewer replicas" in retired["text"]
    assert r0 in retired["text"] and retired["down_s"] is None
    # the next shift: replica 1 is no news (the other two are still down, since before it)
    assert {(e["process"], e["kind"]) for e in later["stops_and_starts"]} == {
        (r0, "restart"), ("serve-ray other replica 1 on pc1:/data", "down"), ("serve-ray replica 1 on pc2:/data", "down")}


def test_a_shift_before_the_first_run_on_record_does_not_read_as_run_through(spc_station):
    """Walk: the report of the shift before a new station's first start said "The station
    ran through the shift (no stop or start recorded)"."""
    from lineguard.line.orm import StationRun
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:
        s.add(StationRun(process="station on pc1", pid=1, started_at=_t(15), seen_at=_t(16)))
    with client(st) as c:
        before = c.get("/api/v1/reports/shift", params=AT).json()
        after = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T23:00:00Z"}).json()
    assert before["stops_and_starts"] == [] and before["runs_recorded_from"] == "2026-11-30T15:00:00Z"
    assert after["runs_recorded_from"] is None
