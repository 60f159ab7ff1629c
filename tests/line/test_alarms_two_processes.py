"""Line alarms when one station's parts are recorded by two processes on one database.

A plant runs `serve` and a hot folder's `watch --data` side by side (or two `serve`
processes behind one address): each counts a station by its rules. Before, each read the
station's records once and then counted only the parts it recorded itself, so parts sent
alternately through two processes made two half-lines: NG/OK/NG/OK raised "5 parts in a
row not passed" over OK parts, and 8 NG parts in a row raised it only at the 8th (each
process saw 4). Here both processes are Station objects on one SQLite file or one
PostgreSQL schema, as two processes are.
"""
from __future__ import annotations

import itertools

from sqlalchemy import select

from lineguard.line.orm import LineAlarm, OutboxEvent
from lineguard.line.station import Part

from .conftest import FakeInspector, png_bytes

OK, NG = 60, 200          # the fake model's score is brightness: 0.24 and 0.78 against 0.5
_seq = itertools.count()


def _two_processes(station_factory, **rules):
    first = station_factory(**rules)
    first.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    second = station_factory(**rules)      # the other process on the same database and folder
    return first, second


def _alternately(processes, *values, station="S8"):
    """Parts of line L1 at ``station``, sent through the processes in turn; their records."""
    recs = []
    for proc, v in zip(itertools.cycle(processes), values):
        n = next(_seq)
        out = proc.inspect(png_bytes(v, seed=7000 + n), Part(f"ALT-{n}", "L1", station, "cell"))
        recs.append(out.record)
    return recs


def _alarms(st):
    with st.db.session() as s:
        return [(a.kind, a.parts, a.rejected, a.first_inspection_id, a.inspection_id)
                for a in s.scalars(select(LineAlarm).order_by(LineAlarm.id))]


def _raised_messages(st):
    with st.db.session() as s:
        return [r.payload["kind"] for r in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "alarm")
                                                     .order_by(OutboxEvent.id)) if r.payload["change"] == "raised"]


def test_alternate_ng_and_ok_parts_through_two_processes_raise_no_run_alarm(station_factory):
    a, b = _two_processes(station_factory, alarm_ng_rate=0)
    recs = _alternately((a, b), *[NG, OK] * 8)
    assert [r.verdict for r in recs] == ["NG", "OK"] * 8
    # every other part passed: no run at all, whichever process counts
    assert _alarms(a) == [], "a run alarm over parts that passed: a process counted only its own parts"


def test_a_run_sent_alternately_through_two_processes_raises_one_alarm_at_its_fifth_part(station_factory):
    a, b = _two_processes(station_factory, alarm_ng_rate=0)
    _alternately((a, b), OK, OK)                    # both processes have read the station once
    run = _alternately((a, b), NG, NG, NG, NG)
    assert _alarms(a) == [], "four in a row raised the five-in-a-row alarm"
    fifth = _alternately((a,), NG)[0]
    assert _alarms(a) == [("ng_run", 5, 5, run[0].id, fifth.id)], \
        "the fifth part in a row did not raise the alarm (each process counted only its own parts)"
    _alternately((b, a, b), NG, NG, NG)             # the run goes on: latched, in both processes
    assert len(_alarms(b)) == 1 and _raised_messages(b) == ["ng_run"]
    assert len(a.alarms.active()) == 1 and a.alarms.active() == b.alarms.active()


def test_the_ng_rate_counts_every_part_of_the_station_whichever_process_recorded_it(station_factory):
    # 3 NG in the last 10 raise it; each process alone sees at most 2 NG of its 5
    a, b = _two_processes(station_factory, alarm_ng_run=0, alarm_ng_rate=0.3, alarm_window=10)
    _alternately((a, b), OK, OK)
    _alternately((a, b), OK, NG, OK, OK, NG, OK, OK)
    assert _alarms(a) == []
    last = _alternately((a, b), OK, NG)[-1]        # recorded by b; a recorded both other NG parts
    ((kind, parts, rejected, _, raised_by),) = _alarms(a)
    assert (kind, parts, rejected, raised_by) == ("ng_rate", 10, 3, last.id)


def test_an_acknowledgement_in_one_process_ends_the_run_in_the_other(station_factory):
    a, b = _two_processes(station_factory, alarm_ng_rate=0)
    _alternately((a, b), NG, NG, NG, NG, NG)
    (alarm,) = b.alarms.active()
    a.alarms.acknowledge(alarm["id"], "maria (user)")
    _alternately((b, a, b, a), NG, NG, NG, NG)       # four after the acknowledgement: no new alarm
    assert len(_alarms(a)) == 1
    _alternately((b,), NG)
    assert [k for k, *_ in _alarms(a)] == ["ng_run", "ng_run"] and len(a.alarms.active()) == 1


def test_a_part_that_committed_late_still_breaks_the_run_before_the_alarm_is_written(station_factory):
    """PostgreSQL numbers a record before its transaction takes the line's lock, so another
    process's OK part may commit just after a later part this process has read up to. The
    parts an alarm would name are read again under that lock: the OK part ends the run."""
    a, b = _two_processes(station_factory, alarm_ng_rate=0)
    _alternately((a,), NG, NG, NG, NG)
    late_ok = _alternately((b,), OK)[0]
    # as if a had read the station up to past that part while its transaction was still open
    a.alarms._counts[("L1", "S8")].read_to = late_ok.id
    _alternately((a,), NG)
    assert _alarms(a) == [], "a run alarm over a part that passed (committed after a later part was read)"


def test_a_process_idle_while_the_other_ran_the_line_counts_the_latest_parts(station_factory):
    """More parts missed than the rules look back at: counted afresh from the latest records."""
    a, b = _two_processes(station_factory, alarm_ng_rate=0, alarm_window=10)
    _alternately((a,), NG, NG, NG, NG)               # a run a has counted, then a stood by
    _alternately((b,), *[OK] * 20)
    run = _alternately((b,), NG, NG, NG)
    assert _alarms(a) == []
    last = _alternately((a,), NG)[0]                 # four in a row: the OK parts between end a's old run
    assert _alarms(a) == []
    fifth = _alternately((a,), NG)[0]
    assert _alarms(a) == [("ng_run", 5, 5, run[0].id, fifth.id)] and last.id < fifth.id
