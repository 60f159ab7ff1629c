"""A start refused (an unknown --product, "Did you mean --product cell?") left a run named
by its PC alone, "station on vm", and the line view read it as a station that started and
went down while parts were judged the whole time. A station's run is written once its start
is accepted; and while the shift goes on a station stopped "has not started again yet",
not "had not started again by the shift's end"."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from lineguard.line import handover
from lineguard.line.orm import StationRun

SINCE, UNTIL = dt.datetime(2026, 12, 7, 14), dt.datetime(2026, 12, 7, 22)
STOPPED = dt.datetime(2026, 12, 7, 20, 11, 40)


def _runs(st):
    with st.db.session() as s:
        return [(r.process, r.stopped_at is not None) for r in s.scalars(select(StationRun).order_by(StationRun.id))]


def test_a_station_closed_before_its_start_was_accepted_leaves_no_run(station_factory):
    st = station_factory()
    # what a watcher's refused start does: the station opened, the product refused, closed
    st.close()
    assert _runs(st) == [], ("a start refused before it was accepted left a run: the line view lists it as a "
                             "station that started and went down")
    assert handover.stops_and_starts(st.db, handover.utcnow() - dt.timedelta(hours=1),
                                     handover.utcnow() + dt.timedelta(hours=1)) == []
    # the start accepted (as watch and serve say once the product is checked): a run named as
    # its process, which a clean stop ends as stopped
    again = station_factory()
    again.record_start("watch L1/S1")
    [(name, stopped)] = _runs(again)
    assert name.startswith("watch L1/S1 on ") and not stopped, name
    again.alarms.close()
    assert [stopped for _, stopped in _runs(again)] == [True], "a clean stop must end the run as stopped"


def test_a_refused_watch_start_leaves_no_run(station_factory, tmp_path):
    """The walk's start: `lineguard watch ./in3 --line L1 --product Cell --data ./station`
    (exit 2, the station's product is cell)."""
    from lineguard.cli.station import _submitter
    from fake_inspector import FakeInspector
    st = station_factory()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.close()
    with pytest.raises(SystemExit) as refused:
        _submitter("folder", "L1", "S1", "Cell", None, None, tmp_path / "data", None)
    assert refused.value.code == 2
    assert _runs(st) == [], "the refused start left a run the line view reads as a station gone down"


@pytest.mark.one_database
@pytest.mark.parametrize("clean", [True, False])
def test_a_station_down_while_the_shift_goes_on_has_not_started_again_yet(station_factory, clean):
    st = station_factory()
    with st.db.session() as s:
        s.add(StationRun(process="watch L1/S1 on vm:/tmp/walkA/station", pid=1, started_at=STOPPED
                         - dt.timedelta(seconds=25), seen_at=STOPPED, stopped_at=STOPPED if clean else None))
    now = STOPPED + dt.timedelta(seconds=50)
    # the shift report of the shift on (it ends at 22:00) and the line view (up to now)
    for until in (UNTIL, now):
        [e] = [e for e in handover.stops_and_starts(st.db, SINCE, until, now) if e["kind"] == "down"]
        assert "has not started again yet" in e["text"] and "by the shift's end" not in e["text"], (
            f"at 20:12 of a shift that ends at 22:00 the report said: {e['text']}")
        assert e["down_s"] == 50.0
    # read after the shift: by its end
    [e] = [e for e in handover.stops_and_starts(st.db, SINCE, UNTIL, UNTIL + dt.timedelta(hours=1))
           if e["kind"] == "down"]
    assert "had not started again by the shift's end" in e["text"], e["text"]


@pytest.mark.one_database
def test_a_station_down_since_before_the_shift_on_is_down_so_far(station_factory):
    st = station_factory()
    with st.db.session() as s:
        s.add(StationRun(process="serve on vm:/data", pid=1, started_at=SINCE - dt.timedelta(hours=3),
                         seen_at=SINCE - dt.timedelta(hours=1), stopped_at=SINCE - dt.timedelta(hours=1)))
    [e] = handover.stops_and_starts(st.db, SINCE, UNTIL, SINCE + dt.timedelta(hours=2))
    assert e["before_window"] and "has not started again yet: down all of this shift so far" in e["text"], e["text"]
