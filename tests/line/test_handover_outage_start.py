"""A station killed between two beats of its run judged parts after its last sign of life:
the shift report and the line view said "no part judged for about 11 s" across the very
parts it judged (a run killed 9 s after its start, before its first beat). The time no part
was judged starts at the last part the run judged, never before it."""
from __future__ import annotations

import datetime as dt
import uuid

from lineguard.line import handover
from lineguard.line.orm import Inspection, StationRun

T0 = dt.datetime(2026, 12, 7, 20, 11, 22)
SINCE, UNTIL = dt.datetime(2026, 12, 7, 14), dt.datetime(2026, 12, 7, 22)
AFTER_SHIFT = dt.datetime(2026, 12, 8, 6)       # the report read the next morning


def _at(s):
    return T0 + dt.timedelta(seconds=s)


def _part(t, line="L1", station="S1"):
    return Inspection(part_id=f"p{uuid.uuid4().hex[:10]}", line=line, station=station, product="cell",
                      verdict="OK", score=0.2, threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v",
                      image_sha256=uuid.uuid4().hex, image_width=8, image_height=8, created_at=t)


def _add(st, *rows):
    with st.db.session() as s:
        s.add_all(rows)


def _events(st, now=AFTER_SHIFT):
    return handover.stops_and_starts(st.db, SINCE, UNTIL, now)


def test_an_outage_starts_at_the_last_part_the_killed_serve_judged(station_factory):
    st = station_factory()
    name = "serve on pc1:/data"
    _add(st,
         StationRun(process=name, pid=1, started_at=_at(-900), seen_at=_at(-600), stopped_at=_at(-600)),
         _part(_at(-595)),
         # killed 9 s after its start, before its first beat: its last sign of life is its start
         StationRun(process=name, pid=2, started_at=_at(0), seen_at=_at(0)),
         StationRun(process=name, pid=3, started_at=_at(10), seen_at=_at(10), stopped_at=_at(50)),
         _part(_at(4)), _part(_at(8.5)),
         # judged by the run started again at +10 s (within the killed one's beat): not the killed one's
         _part(_at(12)))
    events = _events(st)
    [outage] = [e for e in events if e["kind"] == "outage"]
    assert outage["stopped_at"] == "2026-12-07T20:11:30.500000Z", (
        f"the outage starts at {outage['stopped_at']}, before the part judged at 20:11:30.5 by the run that "
        "went silent: the report says no part was judged while parts were")
    assert outage["started_at"] == "2026-12-07T20:11:32Z" and outage["down_s"] == 1.5, outage
    # a run stopped cleanly ends at its stop: the parts after it are another process's
    [restart] = [e for e in events if e["kind"] == "restart"]
    assert restart["stopped_at"] == "2026-12-07T20:01:22Z" and restart["down_s"] == 600.0, restart


def test_a_watcher_that_went_silent_ends_at_its_own_station_s_last_part_not_another_s(station_factory):
    st = station_factory()
    # typed l1/s1 at its start, its parts stored as L1/S1: the same station
    name = "watch l1/s1 on pc1:/in"
    _add(st,
         StationRun(process=name, pid=1, started_at=_at(-30), seen_at=_at(0)),
         _part(_at(3)),
         # another station's part, judged by serve on the same database after the watcher died
         _part(_at(12), line="L2", station="S2"),
         # a beat and more after its last sign of life: the watcher would have beaten by then
         _part(_at(16)))
    [down] = [e for e in _events(st) if e["process"] == name and e["kind"] == "down"]
    assert down["clean"] is False, down
    assert down["stopped_at"] == "2026-12-07T20:11:25Z", (
        f"the watcher of L1/S1 went silent at {down['stopped_at']}: its own last part was judged at 20:11:25 "
        "(one of L2/S2 or after its next beat was due is not its)")

