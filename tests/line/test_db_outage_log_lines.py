"""A short database outage in the station's log: one clear line per fault, not tracebacks.

A walk cut a PostgreSQL station's database away for 3 s behind a relay and sent one part:
the API answered well (503 storage_unavailable), but the log got some 130 lines in 4 s,
two 50-line SQLAlchemy/psycopg tracebacks under the alarm escalation look and the anomaly
map links, and stopping the station while the database was away added another (the
station's stop for the shift report). An operator reading the log saw a crash, not "the
database cannot be reached: Connection refused; tried again every 15 s".

Here the database goes away for real: the station's sessions are, while it is "down",
those of a PostgreSQL database at a port where nothing listens, so psycopg refuses the
connection as it did in the walk. A fault that is not the database refusing (a bug) must
still show its traceback: that is what whoever fixes it needs. One database each: the
station's own database only holds the run and the alarms, by the same SQL on both.
"""
from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

from lineguard.line import handover
from lineguard.line.alarms import AlarmWatch
from lineguard.line.db import Database
from lineguard.line.station import Part

from .conftest import FakeInspector, png_bytes


def _closed_port() -> int:
    """A local port where nothing listens (bound, then let go): a connection to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Outage:
    """The station's database behind a switch (the walk's relay): while ``down``, every
    session is one of a PostgreSQL database nobody answers for, so the refusal is psycopg's
    own, raised where the station's connection would be made."""

    def __init__(self, db):
        self.db, self.down = db, False
        self.away = Database(f"postgresql://postgres@127.0.0.1:{_closed_port()}/test", schema="lg_test_fix3_away")

    def session(self):
        return (self.away if self.down else self.db).session()

    def __getattr__(self, name):
        return getattr(self.db, name)


class _Looks:
    """The escalation thread's wait: ``n`` looks, each ``every_s`` later on the faults' clock,
    then the stop; the looks run at once, in the test's thread."""

    def __init__(self, clock: list, n: int, every_s: float):
        self.clock, self.left, self.every_s = clock, n, every_s

    def wait(self, _timeout):
        if self.left == 0:
            return True
        self.left -= 1
        self.clock[0] += self.every_s
        return False


def _said(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "lineguard.station" and r.levelno >= logging.WARNING]


def _lines(records) -> list[str]:
    return [r.getMessage() for r in records]


@pytest.fixture
def watch(station_factory):
    """The station's alarm watch as its own (not started), on the database behind the switch,
    its escalation look's faults on the test's clock."""
    st = station_factory()
    db = _Outage(st.db)
    w = AlarmWatch(db, st.alarms.rules)
    clock = [1000.0]
    faults = getattr(w, "_look_faults", None)     # none before the look said its faults so
    if faults is not None:
        faults.clock = lambda: clock[0]
    yield db, w, clock
    db.away.dispose()


def _look(w, clock, n: int) -> None:
    """``n`` escalation looks 15 s apart, as the station's thread makes them."""
    w._stop = _Looks(clock, n, 15.0)
    w._escalate_loop(15.0)


@pytest.mark.one_database
def test_an_outage_at_the_escalation_look_is_one_line_with_the_reason_then_once_a_minute_then_its_end(watch,
                                                                                                     caplog):
    db, w, clock = watch
    caplog.set_level(logging.INFO, logger="lineguard")
    db.down = True
    _look(w, clock, 5)          # a minute and a look: said when it begins, and once more a minute on
    said = _said(caplog)
    assert not [r for r in said if r.exc_info], "a database away logged a traceback:\n" + "\n".join(_lines(said))
    assert len(said) == 2, "5 looks in a minute's outage are said once, then once a minute, not at each look: " \
                           + repr(_lines(said))
    first, still = _lines(said)
    # what failed, the database's own reason, what happens next
    assert "line alarms could not be checked for escalation" in first, first
    assert "the database cannot be reached: Connection refused" in first, first
    assert "tried again every 15 s" in first, first
    assert "still cannot be checked for escalation after 60 s" in still and "Connection refused" in still, still
    db.down = False
    caplog.clear()
    _look(w, clock, 2)
    assert _lines(_said(caplog)) == ["line alarms are checked for escalation again (they could not be for 75 s)"]


@pytest.mark.one_database
def test_a_bug_at_the_escalation_look_still_shows_its_traceback_once_and_its_end(watch, caplog, monkeypatch):
    db, w, clock = watch
    caplog.set_level(logging.INFO, logger="lineguard")

    def broken(now=None):
        raise KeyError("escalate_again_min")      # the station's own mistake, not the database

    monkeypatch.setattr(w, "escalate_due", broken)
    _look(w, clock, 3)
    said = _said(caplog)
    traced = [r for r in said if r.exc_info]
    assert len(traced) == 1 and traced[0].exc_info[0] is KeyError, \
        "a bug must show its stack once a spell: " + repr(_lines(said))
    assert "KeyError" in said[0].getMessage(), "the line does not name what failed: " + said[0].getMessage()
    monkeypatch.undo()
    caplog.clear()
    _look(w, clock, 1)
    assert [m for m in _lines(_said(caplog)) if "checked for escalation again" in m], \
        "the look working again is not said"


@pytest.mark.one_database
def test_stopping_the_station_while_its_database_is_away_says_so_in_one_line(watch, caplog):
    db, w, _clock = watch
    w.run_id = handover.begin_run(db)         # the station's run, written while the database was there
    db.down = True
    caplog.set_level(logging.INFO, logger="lineguard")
    w.close()
    said = _said(caplog)
    assert len(said) == 1 and not said[0].exc_info, "the stop logged:\n" + "\n".join(_lines(said))
    line = said[0].getMessage()
    assert "the station's stop could not be recorded for the shift report" in line, line
    assert "the database cannot be reached: Connection refused" in line, line
    assert "last sign of life" in line, "the line does not say what the shift report shows instead: " + line


@pytest.mark.one_database
def test_a_bug_at_the_station_stop_still_shows_its_traceback(watch, caplog, monkeypatch):
    db, w, _clock = watch
    w.run_id = handover.begin_run(db)

    def broken(*_a):
        raise TypeError("end_run() got an unexpected keyword argument 'at'")

    monkeypatch.setattr(handover, "end_run", broken)
    caplog.set_level(logging.INFO, logger="lineguard")
    w.close()
    (said,) = _said(caplog)
    assert said.exc_info and said.exc_info[0] is TypeError, "a bug at the stop must show its stack"
    assert "TypeError" in said.getMessage(), "the line does not name what failed: " + said.getMessage()


@pytest.mark.one_database
def test_anomaly_maps_whose_database_is_away_are_said_in_one_line_with_the_reason_and_when_tried_again(
        station_factory, caplog):
    st = station_factory()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    rec = st.inspect(png_bytes(30, seed=31), Part("map-away", "L1", "S1", "cell")).record
    st.maps.flush()
    outage = _Outage(st.db)
    st.maps.db = outage
    caplog.set_level(logging.INFO, logger="lineguard")
    outage.down = True
    try:
        # the part's map, as the station sends it after its answer, meets the outage
        st.maps.submit(rec.id, "away-map.png", np.full((8, 8), 0.5, np.float32), 1.0)
        st.maps.wait(rec.id, timeout=30)
        said = [r for r in _said(caplog) if "anomaly map" in r.getMessage()]
        assert len(said) == 1 and not said[0].exc_info, "the link logged:\n" + "\n".join(_lines(said))
        line = said[0].getMessage()
        assert "could not link 1 anomaly maps" in line, line
        assert "the database cannot be reached: Connection refused" in line, line
        assert "trying again in 1 s, then at most every 30 s" in line, "the line does not say what happens next: " \
            + line
    finally:
        outage.down = False
        st.maps.db = st.db
        outage.away.dispose()
