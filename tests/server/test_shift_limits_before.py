"""The shift report judges a shift's defect rate against the shifts before it, not a
centre and limits it helped set.

The walk's shift on L2 (10 NG of 17) was compared with a centre of 8.08 % "over 15
shifts", 16 NG of 198 parts counting its own 10, while the week before it alone was 6 of
181 (3.3 %); its upper limit came out at 38 %. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line import spc

from .test_spc_api import add_parts, client

AT = dt.datetime(2026, 11, 24, 6, 0)          # the judged shift: 06:00-14:00 UTC
STARTS = ("06:00", "14:00", "22:00")


def _week_before(shifts=14):
    """13 parts a shift in the 14 shifts before AT, 6 NG among the 182 (one every
    other shift, the first six of those)."""
    rows = []
    for k in range(1, shifts + 1):
        t0 = AT - dt.timedelta(hours=8 * k)
        rows += [(t0 + dt.timedelta(minutes=j), "NG" if (j == 0 and k % 2 == 0 and k <= 12) else "OK", 0.2)
                 for j in range(13)]
    return rows


def _the_shift(ng=10, parts=17):
    return [(AT + dt.timedelta(minutes=5 + j), "NG" if j < ng else "OK", 0.2) for j in range(parts)]


def _report(st, **params):
    with client(st) as c:
        r = c.get("/api/v1/reports/shift", params={"at": "2026-11-24T10:00:00Z", **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_centre_and_limits_come_from_the_shifts_before_only(spc_station):
    st = spc_station(shift_starts=STARTS)
    add_parts(st, _week_before() + _the_shift())
    ctl = _report(st)["control"]
    # 6 NG of 182 parts in the 14 shifts before: the shift's own 10 NG of 17 not among them
    assert ctl["centre"] == pytest.approx(6 / 182)
    assert ctl["shifts_compared"] == 14
    assert ctl["limits_from"] == {"shifts": 14, "parts": 182, "ng": 6, "since": "2026-11-17T06:00:00Z",
                                  "until": "2026-11-24T06:00:00Z"}
    limit = spc.p_chart([spc.Subgroup("s", None, 17, 10)], centre=6 / 182).points[0]
    assert ctl["ucl"] == pytest.approx(limit.ucl) and ctl["ucl"] < 0.3
    assert ctl["p"] == pytest.approx(10 / 17) and ctl["p"] > ctl["ucl"] and ctl["alarms"]
    # and the report says what the limits are from
    assert "14 shifts before this one" in ctl["text"] and "6 NG of 182 parts" in ctl["text"]
    assert "not in them" in ctl["text"]


@pytest.mark.one_database
def test_a_bad_shift_does_not_widen_its_own_limits(spc_station):
    # the same week before, a shift twice as bad: its limits are those of the same centre
    st = spc_station(shift_starts=STARTS)
    add_parts(st, _week_before() + _the_shift(ng=3))
    mild = _report(st)["control"]
    add_parts(st, _the_shift(ng=14)[:14])        # 14 more parts, all NG: 17 NG of 31
    worse = _report(st)["control"]
    assert mild["centre"] == worse["centre"] == pytest.approx(6 / 182)
    assert worse["ucl"] <= mild["ucl"]


@pytest.mark.one_database
def test_a_new_line_has_no_shift_before_it_so_no_limits_said(spc_station):
    st = spc_station(shift_starts=STARTS)
    add_parts(st, _the_shift() + [(AT - dt.timedelta(days=9), "NG", 0.9)])     # 9 days ago: outside the week
    rep = _report(st)
    ctl = rep["control"]
    assert ctl["p"] == pytest.approx(10 / 17)
    assert (ctl["centre"], ctl["ucl"], ctl["lcl"], ctl["shifts_compared"], ctl["alarms"]) == (None, None, None, 0, [])
    assert ctl["limits_from"]["shifts"] == 0 and ctl["limits_from"]["parts"] == 0
    assert ctl["text"].startswith("no limits") and "no shift before this one" in ctl["text"]
    # another line's week does not count for this one
    add_parts(st, [(AT - dt.timedelta(hours=3), "OK", 0.2, "L9")] * 5)
    assert _report(st, line="L1")["control"]["shifts_compared"] == 0
    assert _report(st)["control"]["shifts_compared"] == 1


@pytest.mark.one_database
def test_a_week_before_without_an_ng_part_does_not_alarm_on_the_shifts_first(spc_station):
    """A line at a few hundred ppm: 14 shifts of 100 parts, none NG. The centre was 0, so
    the shift's first NG part was infinitely far beyond the limit (an alarm on one part);
    now the centre is half an NG part in those 1,400 (0.036 %): one NG part of 100 is within
    the limits, two are beyond."""
    st = spc_station(shift_starts=STARTS)
    quiet = [(AT - dt.timedelta(hours=8 * k) + dt.timedelta(minutes=j * 0.2), "OK", 0.2)
             for k in range(1, 15) for j in range(100)]
    add_parts(st, quiet + _the_shift(ng=1, parts=100))
    ctl = _report(st)["control"]
    assert ctl["centre"] == pytest.approx(0.5 / 1400)
    assert ctl["alarms"] == [] and ctl["p"] < ctl["ucl"]
    assert "none of them had an NG part" in ctl["text"] and "half an NG part" in ctl["text"]
    add_parts(st, [(AT + dt.timedelta(minutes=200), "NG", 0.9)])       # a second NG part in the shift
    ctl = _report(st)["control"]
    assert ctl["alarms"] and ctl["p"] > ctl["ucl"]


def test_the_week_before_starts_with_the_same_shift_across_a_clock_change(spc_station):
    """Walk: Berlin's clocks went back on 25 Oct; the 10:30 shift's week was taken as 168 h,
    so it began at 09:30 UTC on the 18th, an hour into that day's 10:30 shift (08:30 UTC
    then): its NG part at 08:45 UTC was left out, and the limits said "0 NG of 1 part"."""
    st = spc_station(timezone="Europe/Berlin", shift_starts=("02:30", "10:30", "18:30"))
    add_parts(st, [(dt.datetime(2026, 10, 18, 8, 45), "NG", 0.9), (dt.datetime(2026, 10, 18, 10), "OK", 0.1),
                   (dt.datetime(2026, 10, 25, 10), "OK", 0.1)])
    limits = _report(st, at="2026-10-25T10:00:00Z")["control"]["limits_from"]
    assert (limits["shifts"], limits["parts"], limits["ng"], limits["since"]) == (1, 2, 1, "2026-10-18T08:30:00Z")
