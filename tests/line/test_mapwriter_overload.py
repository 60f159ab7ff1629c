"""The map writer under an overloaded station: said as a warning once a minute with a count,
the maps linked after, a real failure of the link an ERROR with its traceback once, maps
given up said with their count.

Every database connection in use (the pool's 8 + 16, other requests) and the map writer's
link waiting the pool's whole wait in vain was said as an ERROR, again at each new run of
failures, for a condition the station's log already says once a minute as a warning (the
requests answered 503 busy). Here the test holds every connection of the station's pool
itself (its wait shortened) and sends maps meanwhile; the fault's clock is the test's.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
from sqlalchemy.exc import ProgrammingError

from lineguard.line.orm import Inspection
from lineguard.line.station import Part

from .conftest import png_bytes, until
from .test_sources_overload import PoolHeld


def _parts(st, n: int) -> list[int]:
    """``n`` parts inspected and stored (their images kept): their inspection ids."""
    ids = []
    for i in range(n):
        out = st.inspect(png_bytes(30, seed=i), Part(f"map-{i}", "L1", "S1", "cell"))
        assert out.record.image_key is not None
        ids.append(out.record.id)
    # the parts' own maps linked before the test takes the pool: only its maps wait then
    st.maps.flush()
    assert st.maps.unlinked() == 0
    return ids


def _send_map(st, inspection_id: int) -> None:
    """One anomaly map to the writer, as the station sends it after a part's answer; back once
    the writer has stored it and tried its link."""
    st.maps.submit(inspection_id, f"test-map-{inspection_id}.png", np.full((8, 8), 0.5, np.float32), 1.0)
    st.maps.wait(inspection_id, timeout=30)


def _linked(st, ids: list[int]) -> list[bool]:
    """Whether each part's record points at the map the test sent."""
    with st.db.session() as s:
        return [s.get(Inspection, i).heatmap_key == f"test-map-{i}.png" for i in ids]


def _station_said(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "lineguard.station" and r.levelno >= logging.WARNING
            and "anomaly map" in r.getMessage()]


@pytest.fixture
def clock(station):
    now = [1000.0]
    faults = getattr(station.maps, "_faults", None)     # none before the writer said faults so
    if faults is not None:
        faults.clock = lambda: now[0]
    return now


def test_maps_that_find_every_connection_taken_are_said_once_a_minute_and_linked_after(station, clock,
                                                                                        caplog):
    caplog.set_level(logging.INFO, logger="lineguard")
    ids = _parts(station, 4)
    pool = PoolHeld(station, 0.05)
    try:
        _send_map(station, ids[0])
        _send_map(station, ids[1])
        clock[0] += 61
        _send_map(station, ids[2])
        assert station.maps.unlinked() == 3
    finally:
        pool.free()
    said = _station_said(caplog)
    # overload is no error of the station: warnings, never a traceback
    assert [r.levelno for r in said] == [logging.WARNING, logging.WARNING], [r.getMessage() for r in said]
    assert not [r for r in said if r.exc_info], "a traceback for an overload"
    first, still = (r.getMessage() for r in said)
    assert "no database connection came in the pool's whole wait" in first and "overloaded" in first, first
    assert "1 maps are stored and linked once a connection is free" in first, first
    assert "3 maps stored and not linked yet" in still and "after 61 s" in still, still
    assert "2 tries in the last 61 s" in still, still
    # not lost: the next map's link takes those waiting with it, and that is said
    _send_map(station, ids[3])
    until(lambda: station.maps.unlinked() == 0, "the maps linked once the pool is free")
    assert _linked(station, ids) == [True] * 4
    over = _station_said(caplog)[len(said):]
    assert [r.getMessage() for r in over] == ["linked 4 anomaly maps the database had refused (for 61 s)"]


@pytest.mark.one_database
def test_a_link_that_fails_on_a_bug_is_an_error_with_its_traceback_once(station, clock, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="lineguard")
    ids = _parts(station, 3)

    class Broken:
        def __enter__(self):
            raise ProgrammingError("UPDATE inspections SET heatmap_key=?", {}, Exception("no such column"))

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(station.db, "session", lambda: Broken())
    for i in ids:
        _send_map(station, i)
    said = [r for r in caplog.records if r.name == "lineguard.station" and r.levelno >= logging.WARNING]
    errors = [r for r in said if r.levelno == logging.ERROR]
    assert errors and all(r.levelno == logging.ERROR for r in said), [r.getMessage() for r in said]
    # the station's own mistake: its traceback once for whoever fixes it, not one per try
    assert len([r for r in errors if r.exc_info]) == 1, [r.getMessage() for r in errors]
    assert len([r for r in errors if "could not link" in r.getMessage()]) == 1, [r.getMessage() for r in errors]
    assert "no such column" in errors[0].getMessage(), errors[0].getMessage()


@pytest.mark.one_database
def test_maps_given_up_are_said_with_their_count_not_one_line_each(station, clock, caplog):
    caplog.set_level(logging.INFO, logger="lineguard")
    ids = _parts(station, 7)
    station.maps.UNLINKED_MAX = 2
    pool = PoolHeld(station, 0.05)
    try:
        for i in ids[:5]:
            _send_map(station, i)
        clock[0] += 61
        _send_map(station, ids[5])
    finally:
        pool.free()
    given_up = [r for r in _station_said(caplog) if "gave up" in r.getMessage()]
    assert [r.levelno for r in given_up] == [logging.ERROR, logging.ERROR], [r.getMessage() for r in given_up]
    assert f"inspection {ids[0]}" in given_up[0].getMessage() and "more than 2 maps" in given_up[0].getMessage()
    assert given_up[1].getMessage() == (f"gave up linking 4 anomaly maps so far (from inspection {ids[0]} to "
                                        f"{ids[3]}): their links still fail (see the lines before: the database "
                                        "refusing, or every connection in use)"), given_up[1].getMessage()
    # the two kept are linked once the pool is free (and the one sent then); those given up
    # keep what they had (here the map the part's own inspection linked)
    station.maps.UNLINKED_MAX = 10       # room for the next map beside the two waiting
    _send_map(station, ids[6])
    until(lambda: station.maps.unlinked() == 0, "the maps kept linked once the pool is free")
    assert _linked(station, ids) == [False] * 4 + [True] * 3
