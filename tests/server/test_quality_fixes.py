"""A quality manager's month-end walk of the SPC numbers, on SQLite and PostgreSQL.

- The share of good parts scrapped counted a part the PLC had rejected without a verdict
  in time, then judged OK (the verdict came after the window), among the good parts passed:
  it was scrapped. Those are good parts scrapped now; the rejects never judged (no record)
  are said apart, not counted.
- The 30-day default window ran back 30 x 24 hours from now (or from until): it began at
  this hour 30 days ago, and a chart by day started with part of a day. It is 30 whole
  plant days ending with until's day (today, through now).
"""
from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from test_spc_api import T0, client

Q = {"line": "L1", "since": "2026-11-29T00:00:00Z", "until": "2026-12-01T00:00:00Z"}


def _part(verdict, label=None, line="L1", t=T0):
    from lineguard.line.orm import Inspection
    return Inspection(part_id=f"p{uuid.uuid4().hex[:12]}", line=line, station="S1", product="cell", verdict=verdict,
                      score=0.9 if verdict == "NG" else 0.1, threshold=0.5, pixel_threshold=0.5, model_id="m1",
                      model_version="v", image_sha256=uuid.uuid4().hex, image_width=8, image_height=8, created_at=t,
                      reviewed=label is not None, review_label=label)


def _reject(late=None, line="L1", t=T0):
    """A PLC answer NG without a verdict (window missed); ``late``: the record judged after it."""
    from lineguard.line.orm import LineSignal
    return LineSignal(protocol="modbus", line=line, station="S1", trigger_seq=1, part_tag=0, recipe_id=1,
                      product="cell", inspection_id=None, late_inspection_id=late, signal="NG", result_code=10,
                      reason="no verdict within the inspection window of 200 ms", triggered_at=t, answered_at=t)


def _plant_late_rejects(st):
    """L1: 10 NG parts, all reviewed (2 good); 90 OK parts of which 3 were judged after the
    PLC had rejected them (one of those reviewed a defect) and 1 other reviewed a defect; 1
    NG part judged late (a reject either way); 2 rejects never judged. L2: 1 never judged."""
    t = T0 + dt.timedelta(minutes=1)
    with st.db.session() as s:
        ng = [_part("NG", "good") for _ in range(2)] + [_part("NG", "defect") for _ in range(8)]
        late_ok = [_part("OK"), _part("OK", "good"), _part("OK", "defect")]
        ok = [_part("OK", "defect")] + [_part("OK") for _ in range(86)]
        s.add_all(ng + late_ok + ok)
        s.flush()
        s.add_all([_reject(late=p.id, t=t) for p in late_ok] + [_reject(late=ng[5].id, t=t)]
                  + [_reject(t=t), _reject(t=t), _reject(line="L2", t=t)])


def test_parts_the_plc_rejected_before_their_ok_verdict_are_good_parts_scrapped(spc_station):
    st = spc_station()
    _plant_late_rejects(st)
    with client(st) as c:
        gs = c.get("/api/v1/spc/review-rates", params=Q).json()["good_scrapped"]
        # good parts made: 100 less the 8 NG and 2 OK confirmed defects = 90; scrapped: the 2
        # NG parts reviewed good and the 2 late OK parts not found defects (it counted 2 of 90)
        assert (gs["k"], gs["n"], gs["estimate"]) == (4, 90, False)
        assert gs["rate"] == pytest.approx(4 / 90) and gs["lo"] < 4 / 90 < gs["hi"]
        assert gs["rejected_late_good"] == 2 and gs["good_parts_passed"] == 86
        # the rejects never judged have no record: in neither k nor n, said with their count
        assert gs["rejected_never_judged"] == 2
        assert gs["rate_if_never_judged_good"] == pytest.approx(6 / 92)
        assert "2 part(s) judged OK or REVIEW after their inspection window" in gs["text"]
        assert "2 part(s) the PLC rejected without a verdict were never judged" in gs["text"]
        assert "rejected_never_judged" in c.get("/api/v1/spc/review-rates", params=Q).json()[
            "definitions"]["good_scrapped"]
        # every line: L2's reject never judged joins in
        every = c.get("/api/v1/spc/review-rates", params={**Q, "line": ""}).json()["good_scrapped"]
        assert every["rejected_never_judged"] == 3 and every["k"] == 4
        # the period report counts the same (its numbers are the SPC page's)
        rep = c.get("/api/v1/reports/period", params=Q).json()
        assert (rep["total"]["good_scrapped"]["k"], rep["total"]["good_scrapped"]["n"]) == (4, 90)
        assert rep["total"]["good_scrapped"]["rejected_never_judged"] == 2


def test_late_rejects_join_the_estimate_while_ng_parts_wait_for_review(spc_station):
    st = spc_station()
    t = T0 + dt.timedelta(minutes=1)
    with st.db.session() as s:
        # 20 NG parts, 10 reviewed (1 good): about 2 good rejected as NG, and 1 late OK part
        late = _part("OK")
        s.add_all([_part("NG", "good")] + [_part("NG", "defect") for _ in range(9)] + [_part("NG") for _ in range(10)]
                  + [late] + [_part("OK") for _ in range(79)])
        s.flush()
        s.add(_reject(late=late.id, t=t))
    with client(st) as c:
        gs = c.get("/api/v1/spc/review-rates", params=Q).json()["good_scrapped"]
        assert gs["estimate"] is True and gs["rejected_late_good"] == 1 and gs["rejected_never_judged"] == 0
        assert gs["k"] == pytest.approx(3.0) and gs["n"] == pytest.approx(3.0 + 79)
        assert gs["rate_if_never_judged_good"] is None and "never judged" not in gs["text"]


@pytest.mark.parametrize("until, since", [
    # a time in the day: from that day's plant day 29 days before, at its 00:00 in Berlin
    ("2026-12-01T12:00:00Z", "2026-11-01T23:00:00Z"),
    # a day typed as until holds all of it; the 30 days cross the change to summer time
    ("2026-04-15", "2026-03-16T23:00:00Z"),
])
@pytest.mark.one_database
def test_the_default_window_is_30_whole_plant_days(spc_station, until, since):
    st = spc_station(timezone="Europe/Berlin")
    with client(st) as c:
        for path, extra in (("/api/v1/spc/review-rates", {}), ("/api/v1/spc/pareto", {}),
                            ("/api/v1/spc/p-chart", {"by": "day"})):
            body = c.get(path, params={"until": until, **extra}).json()
            assert body["since"] == since, (path, body)
        # by hour: its own default, 48 hours back
        hours = c.get("/api/v1/spc/p-chart", params={"until": "2026-12-01T12:00:00Z", "by": "hour"}).json()
        assert hours["since"] == "2026-11-29T12:00:00Z"


@pytest.mark.one_database
def test_the_default_window_ends_with_today_through_now(spc_station):
    from lineguard.line.orm import utcnow
    st = spc_station(timezone="America/Chicago")
    zone = ZoneInfo("America/Chicago")

    def start_of_30_days(now):
        day = now.replace(tzinfo=dt.timezone.utc).astimezone(zone).date() - dt.timedelta(days=29)
        return dt.datetime.combine(day, dt.time(0), zone).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with client(st) as c:
        before = utcnow()
        body = c.get("/api/v1/spc/review-rates").json()
        after = utcnow()
    # (a run across the plant's midnight sees either day)
    assert body["since"] in {start_of_30_days(before), start_of_30_days(after)}
    assert before.strftime("%Y-%m-%dT%H:%M") <= body["until"][:16] <= after.strftime("%Y-%m-%dT%H:%M")
