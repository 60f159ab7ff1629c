"""Operator wording from the night-shift walk, on SQLite and PostgreSQL: the shift report's
score line says what it means for the shift (it told an operator to "widen the time window or
give a baseline window", on a page that has no window), and the line summary carries the
shift's restarts and outages so the line view keeps them in sight after they are over."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line.orm import StationRun
from lineguard.line.shift_report import shift_report

from .test_shift_report import DAY, _part, _plant

STARTS = ("06:00", "14:00", "22:00")


def _drift_text(st, at):
    return shift_report(st.db, STARTS, "UTC", at=at, now=DAY + dt.timedelta(days=30))["drift"]["text"]


@pytest.mark.one_database
def test_the_shift_reports_score_line_speaks_of_the_shift_not_of_time_windows(spc_station):
    st = spc_station(shift_starts=STARTS)
    _plant(st)     # six shifts of 100 parts before the 30th's morning shift, one part at 14:05
    texts = {
        # no part at all (the walk's empty shift)
        "empty": _drift_text(st, DAY + dt.timedelta(days=20)),
        # the week's first shift with parts: the yardstick, not compared itself
        "first": _drift_text(st, DAY - dt.timedelta(hours=14)),
        # one part only
        "few": _drift_text(st, DAY + dt.timedelta(hours=15)),
        # compared with the week's first shifts
        "compared": _drift_text(st, DAY + dt.timedelta(hours=10)),
    }
    for name, text in texts.items():
        assert "window" not in text and "baseline" not in text, (name, text)
    assert "no part of this shift was scored" in texts["empty"]
    assert "one of the week's first shifts" in texts["first"]
    assert "only 1 part of this shift scored, 10 are needed" in texts["few"]
    assert "than in the week's first shifts" in texts["compared"] or "steady" in texts["compared"]


@pytest.mark.one_database
def test_too_few_parts_in_the_weeks_first_shifts_is_said_in_shift_words(spc_station):
    st = spc_station(shift_starts=STARTS)
    with st.db.session() as s:      # five shifts of one part each, then a shift of 20
        s.add_all([_part(DAY - dt.timedelta(hours=8 * k) + dt.timedelta(minutes=5), "OK") for k in range(1, 6)]
                  + [_part(DAY + dt.timedelta(hours=6, minutes=i), "OK") for i in range(20)])
    text = _drift_text(st, DAY + dt.timedelta(hours=7))
    assert text.startswith("not compared yet: the week's first shifts had 5 parts scored, 10 are needed"), text


@pytest.mark.one_database
def test_the_line_summary_lists_this_shifts_restarts_and_outages(spc_station):
    from lineguard.server.routers.live import line_summary
    st = spc_station(shift_starts=STARTS)

    def t(h, m=0, s=0):
        return DAY + dt.timedelta(hours=h, minutes=m, seconds=s)
    with st.db.session() as s:
        s.add_all([
            # the night shift's run, stopped cleanly before this shift: not this shift's
            StationRun(process="station on press-pc", pid=1, started_at=t(1), seen_at=t(5), stopped_at=t(5)),
            StationRun(process="station on press-pc", pid=2, started_at=t(5, 1), seen_at=t(10, 33), stopped_at=t(10, 33)),
            # a clean stop at 10:33:00, started again 35 s later
            StationRun(process="station on press-pc", pid=3, started_at=t(10, 33, 35), seen_at=t(11)),
            # killed at 11:00 (its last sign of life), back 40 s later, running since
            StationRun(process="station on press-pc", pid=4, started_at=t(11, 0, 40), seen_at=t(11, 59, 55))])
    body = line_summary(st, now=t(12))
    mine = [e for e in body["stops_and_starts"] if e["process"] == "station on press-pc"]
    assert [(e["kind"], e["stopped_at"], e["started_at"], e["down_s"]) for e in mine] == [
        ("restart", "2026-11-30T10:33:00Z", "2026-11-30T10:33:35Z", 35.0),
        ("outage", "2026-11-30T11:00:00Z", "2026-11-30T11:00:40Z", 40.0)]
    # the night shift's own: the first start at 01:00 and the restart at 05:01, not this shift's
    earlier = line_summary(st, now=t(4))
    assert [(e["kind"], e["started_at"]) for e in earlier["stops_and_starts"]
            if e["process"] == "station on press-pc"] == [("started", "2026-11-30T01:00:00Z")]
