"""The no_verdict alarm through a database outage.

A walk cut the database away for 30 s behind a proxy: the PLC station answered 303 parts
in a row NG with a storage fault, and no no_verdict alarm was raised, neither during the
outage nor after it: each try to write it failed, and the first part after the database
came back had a verdict, which ended the run. Each try also logged a traceback (301 in
30 s). Now the run is counted in memory and its alarm written once the database takes
writes again, with the run's count and the time it came due, and the refusal is logged
once when it begins and once when it ends.
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging

from sqlalchemy.exc import OperationalError

from lineguard.line.alarms import AlarmWatch, alarm_code
from lineguard.line.orm import LineSignal, utcnow

STORAGE_FAULT = "storage fault: the record could not be written"
_seq = itertools.count(1)


class _Switch:
    """The station's database behind a switch (the walk's proxy): every session refused while off."""

    def __init__(self, db):
        self.db, self.down = db, False

    def session(self):
        if self.down:
            raise OperationalError("INSERT INTO line_alarms", {}, ConnectionRefusedError("connection refused"))
        return self.db.session()

    def __getattr__(self, name):
        return getattr(self.db, name)


def _watch(st):
    """An AlarmWatch on the station's database through a switch, as the station's own (not started)."""
    db = _Switch(st.db)
    watch = AlarmWatch(db, st.alarms.rules)
    watch.rules_for("L1", "S1")          # the stations' own rules read while the database is there
    told = []
    watch.listeners.append(told.append)  # the PLC link's AlarmCode listens so
    return db, watch, told


def _signal(st, verdict):
    with st.db.session() as s:
        row = LineSignal(protocol="modbus", line="L1", station="S1", trigger_seq=next(_seq), part_tag=0, recipe_id=1,
                         product="cell", inspection_id=7 if verdict else None, signal="OK" if verdict else "NG",
                         result_code=1 if verdict else 13, reason=None if verdict else STORAGE_FAULT,
                         triggered_at=utcnow(), answered_at=utcnow())
        s.add(row)
        s.flush()
        return row.id


def _at(iso):
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(tzinfo=None)


def test_a_run_without_a_verdict_during_an_outage_raises_its_alarm_once_the_database_is_back(station_factory,
                                                                                              caplog):
    st = station_factory()
    db, watch, told = _watch(st)
    assert watch.after_answer("L1", "S1", "cell", None, verdict=True) == []
    db.down = True
    before_due = utcnow()
    with caplog.at_level(logging.WARNING, logger="lineguard.station"):
        # the answers' rows are spooled (no signal id): the database takes nothing
        out = [watch.after_answer("L1", "S1", "cell", None, verdict=False, reason=STORAGE_FAULT) for _ in range(12)]
        assert out == [[]] * 12
        refused = [r for r in caplog.records if r.name == "lineguard.station"]
        assert len(refused) == 1, f"the refusal logged {len(refused)} times in 12 answers, not once"
        assert "connection refused" in refused[0].getMessage(), "the refusal does not say why"
        back_at = utcnow()
        db.down = False
        caplog.clear()
        # the first part after the outage has a verdict: the run is over, and it happened
        (alarm,) = watch.after_answer("L1", "S1", "cell", None, verdict=True)
        again = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
        assert len(again) == 1, "the end of the refusal is not logged once"
    assert (alarm["kind"], alarm["parts"], alarm["rejected"], alarm["inspection_id"]) == ("no_verdict", 12, 12, 0)
    assert STORAGE_FAULT in alarm["message"]
    assert before_due <= _at(alarm["raised_at"]) <= back_at, "raised as of when it was written, not when it came due"
    assert [a["id"] for a in told if a["change"] == "raised"] == [alarm["id"]], "the listeners (the PLC) not told"
    assert alarm_code(st.alarms.active(line="L1", station="S1")) == alarm_code([{"kind": "no_verdict"}])
    # written once: later answers neither raise it again nor count the run again
    assert watch.after_answer("L1", "S1", "cell", None, verdict=True) == []
    assert [a["kind"] for a in st.alarms.history()] == ["no_verdict"]


def test_an_owed_alarm_is_written_at_the_next_look_though_no_answer_comes(station_factory):
    st = station_factory()
    db, watch, told = _watch(st)
    db.down = True
    for _ in range(3):
        assert watch.after_answer("L1", "S1", "cell", None, verdict=False, reason=STORAGE_FAULT) == []
    assert watch.raise_owed() == []          # still away: kept
    db.down = False
    (alarm,) = watch.raise_owed()            # the line stopped: the escalation look writes it
    assert (alarm["kind"], alarm["parts"]) == ("no_verdict", 3)
    assert watch.raise_owed() == [] and len(st.alarms.active()) == 1


def test_an_alarm_raised_by_another_process_meanwhile_latches_the_owed_one(station_factory):
    """Two processes on one database: the other one raised the station's no_verdict alarm
    while this one's database was away: one active alarm, not two."""
    st = station_factory()
    db, watch, told = _watch(st)
    other = AlarmWatch(st.db, st.alarms.rules)
    db.down = True
    for _ in range(4):
        assert watch.after_answer("L1", "S1", "cell", None, verdict=False, reason=STORAGE_FAULT) == []
    raised = [other.after_answer("L1", "S1", "cell", _signal(st, False), verdict=False, reason=STORAGE_FAULT)
              for _ in range(3)]
    assert [len(r) for r in raised] == [0, 0, 1]
    db.down = False
    assert watch.after_answer("L1", "S1", "cell", None, verdict=True) == []
    assert [a["kind"] for a in st.alarms.active()] == ["no_verdict"]
    assert told == []


def test_a_parts_alarm_reads_refused_are_said_once_a_spell_not_once_a_part(station_factory, caplog):
    # the alarms' own reads refused while the parts are recorded (the alarms table locked, a
    # database gone right after the part's commit): a traceback a part before
    from lineguard.line.station import Part
    from .conftest import FakeInspector, png_bytes
    st = station_factory()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    recs = [st.inspect(png_bytes(60, seed=7700 + i), Part(f"SP-{i}", "L1", "S1", "cell")).record for i in range(8)]
    db, watch, _told = _watch(st)
    caplog.set_level(logging.WARNING, logger="lineguard")
    db.down = True
    for rec in recs[:5]:
        assert watch.after_part(rec) == []
    said = [r for r in caplog.records if "could not be read or written" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info, [r.getMessage() for r in caplog.records]
    db.down = False
    for rec in recs[5:]:
        watch.after_part(rec)
    back = [r for r in caplog.records if "read and written again" in r.getMessage()]
    assert len(back) == 1


def test_an_owed_alarm_over_answers_an_acknowledgement_covers_is_not_raised_after_it(station_factory):
    # the station's no_verdict alarm active, the database away for five more answers without a
    # verdict (owed: the active alarm would have latched them), then acknowledged before the
    # next look: the owed run came back as a second alarm, raised "before" the acknowledgement
    st = station_factory()
    db, watch, _told = _watch(st)
    for _ in range(3):
        raised = watch.after_answer("L1", "S1", "cell", _signal(st, False), verdict=False, reason=STORAGE_FAULT)
    (alarm,) = raised
    db.down = True
    for _ in range(5):
        assert watch.after_answer("L1", "S1", "cell", None, verdict=False, reason=STORAGE_FAULT) == []
    db.down = False
    watch.acknowledge(alarm["id"], "op")
    assert watch.raise_owed() == []
    assert watch.after_answer("L1", "S1", "cell", _signal(st, True), verdict=True) == []
    assert [a["kind"] for a in st.alarms.active()] == []
