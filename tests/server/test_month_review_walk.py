"""A quality manager's month-end review of two lines (Berlin, October 2026: the clocks go
back on the 25th), read from the period report: escapes however found, the defect rate
per line and calendar week, and the month's alarms with what they turned out to be; each
in the JSON and in the workbook she sends the customer."""
from __future__ import annotations

import datetime as dt

import pytest

from .test_period_report import _book
from .test_spc_api import add_parts, client

OCT = {"since": "2026-10-01", "until": "2026-10-31"}   # Berlin: 2026-09-30T22:00Z to 2026-10-31T23:00Z


def made_october(st):
    """L1 (cell) and L2 (cap) every day of October at 08:00 on the plant's clock: 20 OK parts
    each, L1 one NG reviewed good and one reviewed defect a day, L2 one NG left unreviewed;
    L1's passed parts found defective: one by the audit sample, two downstream (the customer);
    the month's edges on the plant's clock, one part inside and one outside each."""
    from lineguard.line.orm import Inspection
    rows = []
    for d in range(1, 32):
        t = dt.datetime(2026, 10, d, 6 if d < 25 else 7)     # 08:00 CEST, then CET
        for i in range(20):
            rows += [(t + dt.timedelta(minutes=i), "OK", 0.1, "L1"), (t + dt.timedelta(minutes=i), "OK", 0.1, "L2")]
        rows += [(t, "NG", 0.9, "L1", None, "good"), (t, "NG", 0.9, "L1", None, "defect"), (t, "NG", 0.9, "L2")]
    rows += [(dt.datetime(2026, 10, 10, 6), "OK", 0.2, "L1", None, "defect")] * 2          # the customer's
    rows += [(dt.datetime(2026, 10, 11, 6), "OK", 0.2, "L1", None, "defect", True),        # the audit's
             (dt.datetime(2026, 10, 11, 6), "OK", 0.2, "L1", None, "good", True)]
    rows += [(dt.datetime(2026, 9, 30, 22, 30), "NG", 0.9, "L1"),     # 1 Oct 00:30 CEST: in (week 40)
             (dt.datetime(2026, 9, 30, 21, 30), "NG", 0.9, "L1"),     # 30 Sep 23:30 CEST: out
             (dt.datetime(2026, 10, 31, 22, 30), "NG", 0.9, "L1"),    # 31 Oct 23:30 CET: in (week 44)
             (dt.datetime(2026, 10, 31, 23, 30), "NG", 0.9, "L1")]    # 1 Nov 00:30 CET: out
    add_parts(st, rows)
    with st.db.session() as s:
        for p in s.query(Inspection).filter_by(line="L2"):
            p.product = "cap"


def add_alarms(st):
    """Four alarms raised in October on the plant's clock (one still active) and one each
    side of it."""
    from lineguard.line.orm import LineAlarm
    raised = [(dt.datetime(2026, 9, 30, 21, 30), "L1", "camera", None),          # 30 Sep 23:30 CEST: out
              (dt.datetime(2026, 9, 30, 22, 30), "L1", "camera", "lamp 2 flickered, replaced"),
              (dt.datetime(2026, 10, 12, 7), "L1", "process", None),
              (dt.datetime(2026, 10, 20, 7), "L2", "model", "glare on the cap, parts were good"),
              (dt.datetime(2026, 10, 31, 22, 30), "L2", None, None),                # 23:30 CET, still active
              (dt.datetime(2026, 10, 31, 23, 30), "L2", "process", None)]           # 1 Nov 00:30 CET: out
    with st.db.session() as s:
        for i, (t, line, cause, note) in enumerate(raised):
            s.add(LineAlarm(line=line, station="S1", product="cell" if line == "L1" else "cap",
                            kind="ng_run", message="5 parts in a row not passed", raised_at=t, inspection_id=i + 1,
                            first_inspection_id=i + 1, parts=5, rejected=5,
                            acked_at=t + dt.timedelta(minutes=12) if cause else None,
                            acked_by="q.manager" if cause else None, ack_cause=cause, ack_note=note))


@pytest.fixture
def october(spc_station):
    st = spc_station(timezone="Europe/Berlin", shift_starts="06:00,14:00,22:00")
    made_october(st)
    add_alarms(st)
    return st


def test_escapes_a_customer_found_are_in_the_month_report(october):
    """The report gave only the audit sample's escapes (1 of 2): a month whose customer sent
    back two defective parts read as if only the audit had found one."""
    with client(october) as c:
        body = c.get("/api/v1/reports/period", params=OCT).json()
        lines = {ln["line"]: ln for ln in body["lines"]}
        assert lines["L1"]["escapes"] == {
            "parts": 3, "audit": 1, "found_otherwise": 2,
            # reviews stored without saying where (as before migration 0035)
            "found_otherwise_by": {"station review": 0, "next process": 0, "customer": 0, "other": 0, "not said": 2},
            "text": "3 passed parts reviewed as defects: 1 found by the audit sample, 2 found otherwise "
                    "(2 where not said)"}
        assert (lines["L2"]["escapes"]["parts"], body["total"]["escapes"]["found_otherwise"]) == (0, 2)
        # the same parts as the review-rates' escapes over the same window
        rr = c.get("/api/v1/spc/review-rates", params={**OCT, "line": "L1"}).json()
        assert (rr["escape"]["k"], rr["escape_audit"]["k"]) == (3, 1)
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    head = [t for _, t in book["Summary"][0]]
    rows = {row[0][1]: dict(zip(head, row)) for row in book["Summary"][1:]}
    assert rows["L1"]["passed parts found defective"] == ("n", "3")
    assert rows["L1"]["found otherwise (downstream, customer)"] == ("n", "2")
    assert rows["all lines"]["found by the audit sample"] == ("n", "1")


def test_the_defect_rate_per_line_and_calendar_week(october):
    """By day only, and for every line together: the customer's chart of each line's defect
    rate by week had to be summed by hand from 31 days a line."""
    with client(october) as c:
        body = c.get("/api/v1/reports/period", params=OCT).json()
        weeks = {w["line"]: w for w in body["by_week"]}
        assert list(weeks) == ["L1", "L2", "all lines"]
        l1 = weeks["L1"]
        # Thursday 1 Oct to Sunday 4th; the 31st a Saturday: both weeks cut by the month
        assert [(p["week"], p["first_day"], p["last_day"], p["partial"]) for p in l1["points"]] == [
            ("2026-W40", "2026-10-01", "2026-10-04", True), ("2026-W41", "2026-10-05", "2026-10-11", False),
            ("2026-W42", "2026-10-12", "2026-10-18", False), ("2026-W43", "2026-10-19", "2026-10-25", False),
            ("2026-W44", "2026-10-26", "2026-10-31", True)]
        # 22 parts a day, 2 NG; the escapes' 4 parts in W41; the first and last half hours in
        assert [(p["n"], p["ng"]) for p in l1["points"]] == [(89, 9), (158, 14), (154, 14), (154, 14), (133, 13)]
        assert [(p["n"], p["ng"]) for p in weeks["L2"]["points"]] == [(84, 4), (147, 7), (147, 7), (147, 7),
                                                                     (126, 6)]
        assert l1["centre"] == pytest.approx(64 / 688) and l1["parts"] == 688
        # the same parts as the line's p-chart by day, and as the report's line totals
        day = c.get("/api/v1/spc/p-chart", params={**OCT, "by": "day", "line": "L1"}).json()
        assert (day["parts"], day["ng"]) == (l1["parts"], l1["ng"]) == (
            {ln["line"]: ln for ln in body["lines"]}["L1"]["parts"], 64)
        assert weeks["all lines"]["parts"] == body["total"]["parts"] == 688 + 651
        # one line asked for: its weeks alone
        one = c.get("/api/v1/reports/period", params={**OCT, "line": "L2"}).json()
        assert [w["line"] for w in one["by_week"]] == ["L2"]
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    assert list(book)[:5] == ["Window", "Summary", "By day", "Defect types", "Models"]
    head = [t for _, t in book["By week"][0]]
    rows = [dict(zip(head, r)) for r in book["By week"][1:]]
    assert [(r["line"][1], r["week"][1], r["parts judged"], r["NG"]) for r in rows[:2]] == [
        ("L1", "2026-W40", ("n", "89"), ("n", "9")), ("L1", "2026-W41", ("n", "158"), ("n", "14"))]
    assert rows[0]["partial week"] == ("b", "1") and float(rows[0]["NG share (0-1)"][1]) == pytest.approx(9 / 89)
    assert len(rows) == 15


@pytest.mark.one_database
def test_the_month_alarms_and_what_they_turned_out_to_be(october):
    """Not a word of the month's alarms was in the report: the line stops, their causes and
    notes had to be taken from the alarms page, whose window is not the report's."""
    with client(october) as c:
        body = c.get("/api/v1/reports/period", params=OCT).json()
        al = body["alarms"]
        assert (al["alarms"], al["active"]) == (4, 1)
        assert {b["cause"]: b["alarms"] for b in al["by_cause"]} == {"camera": 1, "process": 1, "model": 1}
        items = al["items"]
        assert [(a["raised_at"], a["line"], a["cause_label"]) for a in items] == [
            ("2026-09-30T22:30:00Z", "L1", "camera, lens or lighting"),
            ("2026-10-12T07:00:00Z", "L1", "defects made upstream (tool, process)"),
            ("2026-10-20T07:00:00Z", "L2", "false alarm: the parts were good"),
            ("2026-10-31T22:30:00Z", "L2", "still active")]
        assert items[0]["note"] == "lamp 2 flickered, replaced" and items[0]["acked_by"] == "q.manager"
        one = c.get("/api/v1/reports/period", params={**OCT, "line": "L2"}).json()["alarms"]
        assert one["alarms"] == 2 and {a["line"] for a in one["items"]} == {"L2"}
        # a station typed in another case is the one the alarms carry, counted as listed
        s1 = c.get("/api/v1/reports/period", params={**OCT, "station": "s1"}).json()["alarms"]
        assert (s1["alarms"], len(s1["items"])) == (4, 4)
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    head = [t for _, t in book["Alarms"][0]]
    rows = [dict(zip(head, r)) for r in book["Alarms"][1:]]
    assert len(rows) == 4 and rows[0]["raised"][0] == "t" and rows[0]["acknowledged"][0] == "t"
    assert rows[0]["turned out to be"] == ("s", "camera, lens or lighting")
    assert rows[0]["note"] == ("s", "lamp 2 flickered, replaced")
    assert rows[3]["turned out to be"] == ("s", "still active")


def test_a_week_names_the_days_the_window_holds_not_the_days_with_parts(spc_station):
    """Walk: December's W49 (Monday 30 Nov to Sunday 6 Dec: Dec 1-6 in the month) with parts
    on Dec 2-4 only read "2026-12-02 to 2026-12-04", and a whole week with parts on its
    Monday alone read as that one day: a quiet week looked like a short one."""
    st = spc_station(timezone="UTC")
    add_parts(st, [(dt.datetime(2026, 12, d, 9), "OK", 0.1) for d in (2, 3, 4, 7)])
    with client(st) as c:
        body = c.get("/api/v1/reports/period", params={"since": "2026-12-01", "until": "2026-12-31"}).json()
    points = {w["line"]: w for w in body["by_week"]}["L1"]["points"]
    assert [(p["week"], p["first_day"], p["last_day"], p["partial"], p["n"]) for p in points] == [
        ("2026-W49", "2026-12-01", "2026-12-06", True, 3), ("2026-W50", "2026-12-07", "2026-12-13", False, 1)]


def test_a_window_not_ended_is_said_and_a_one_line_workbook_has_one_row(spc_station):
    """Walk: December issued on the 7th read as the whole month (the workbook said nothing
    of the 24 days to come); a report of line L2 alone had two identical Summary rows
    "L2" (a column's sum doubled); a since in the future without an until was told to
    "swap them" with an until no one gave."""
    st = spc_station(timezone="UTC")
    now = dt.datetime.utcnow()
    add_parts(st, [(now - dt.timedelta(hours=1), "OK", 0.1, "L2"), (now - dt.timedelta(hours=1), "NG", 0.9, "L2")])
    ahead = (now + dt.timedelta(days=3)).date().isoformat()
    after = (now + dt.timedelta(days=4)).date().isoformat()     # until's day is in: the window ends after it
    with client(st) as c:
        body = c.get("/api/v1/reports/period", params={"since": now.date().isoformat(), "until": ahead,
                                                       "line": "L2"}).json()
        book = _book(c.get("/api/v1/reports/period", params={"since": now.date().isoformat(), "until": ahead,
                                                             "line": "L2", "format": "xlsx"}).content)
        future = c.get("/api/v1/reports/period", params={"since": ahead})
        ended = c.get("/api/v1/reports/period", params={"since": "2026-01-01", "until": "2026-01-31"}).json()
    assert body["window"]["still_running"].endswith("this report leaves out the parts still to come"), body["window"]
    assert body["window"]["still_running"].startswith(f"the window runs until {after} 00:00: made at ")
    window = {row[0][1]: row[1][1] for row in book["Window"]}
    assert window["window"].startswith("the window runs until") and "still to come" in window["window"]
    assert [row[0][1] for row in book["Summary"][1:]] == ["L2"]
    assert future.status_code == 422 and "swap" not in future.text and "give a since in the past" in future.text
    assert ended["window"]["still_running"] is None
