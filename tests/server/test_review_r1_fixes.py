"""Review of the SPC and report walk: the shift report set its limits from any handful of
parts before the shift (one OK part: a centre of 50 % and a shift at 17 % NG "below the
control limit"), as the p-chart did before its 50-part baseline; the workbook renamed its
"good parts made (n)" heading, which sheets that look columns up by heading lost; after a
withdrawn revision the 409 and the SPC page said the next one replaced the report that
stands, where its header names the withdrawn one; a baseline before the records kept was
refused in UTC instants, and one of 1-49 parts left after the record keeper's deletion
said "choose a longer window", not that the records were deleted."""
from __future__ import annotations

import datetime as dt

from lineguard.line import spc

from .test_issued_reports import _key
from .test_period_report import NOV, _book, made_month
from .test_spc_api import add_parts, client
from .test_spc_walk_c_fixes import NOV_CHART, _november_at_17_percent, issued_twice


def _shift(label: str, start: dt.datetime):
    from lineguard.line.shifts import Shift
    return Shift(label, start, start + dt.timedelta(hours=8), start.date(), start.time())


def test_the_shift_report_sets_no_limits_from_fewer_parts_than_a_baseline_needs():
    from lineguard.line.shift_report import _control
    t = dt.datetime(2026, 11, 30, 6)
    this = _shift("2026-11-30 S1 (06:00)", t)
    earlier = spc.Subgroup("2026-11-29 S3 (22:00)", t - dt.timedelta(hours=8), 1, 0)     # one OK part
    ctl = _control([earlier, spc.Subgroup(this.label, t, 100, 17)], this, t - dt.timedelta(days=1))
    # it drew a centre of 50 % (half an NG part in one), an LCL of 34.5 % and an alarm
    # "below the control limit" on a shift at 17 % NG
    assert (ctl["centre"], ctl["lcl"], ctl["ucl"], ctl["alarms"]) == (None, None, None, []), ctl
    assert ctl["p"] == 0.17
    said = ctl["text"]
    assert said.startswith("no limits: ") and "judged 1 part (0 NG)" in said, said
    assert f"need at least {spc.MIN_REFERENCE_PARTS}" in said, said
    assert ctl["limits_from"]["parts"] == 1 and ctl["shifts_compared"] == 1
    # as many as a baseline needs: limits, from them alone
    enough = spc.Subgroup(earlier.label, earlier.start, spc.MIN_REFERENCE_PARTS, 1)
    ctl = _control([enough, spc.Subgroup(this.label, t, 100, 17)], this, t - dt.timedelta(days=1))
    assert ctl["centre"] == 1 / spc.MIN_REFERENCE_PARTS and ctl["ucl"] is not None and ctl["alarms"], ctl


def test_the_workbooks_good_parts_made_heading_is_as_it_was_and_the_window_sheet_says_estimated(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)       # L2: 2 of its 6 NG parts wait for review, an estimate; L1: exact
    with client(st) as c:
        book = _book(c.get("/api/v1/reports/period", params={**NOV, "format": "xlsx"}).content)
    head = [t for _, t in book["Summary"][0]]
    # looked up by heading (Power Query): renamed "good parts made (n; estimated where ...)"
    assert head[8:10] == ["good parts made (n)", "estimate"], head
    window = {row[0][1]: row[1][1] for row in book["Window"][1:]}
    said = window.get("good parts made", "")
    assert "estimated where the Summary's estimate is TRUE (L2)" in said and "review every NG part" in said, window
    with client(st) as c:
        exact = _book(c.get("/api/v1/reports/period", params={**NOV, "line": "L1", "format": "xlsx"}).content)
    assert "good parts made" not in {row[0][1] for row in exact["Window"][1:]}


def test_after_a_withdrawn_revision_the_409_says_the_new_one_follows_it_as_its_header_will(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    engineer = _key(st, "engineer")
    with client(st) as c:
        stands, withdrawn = issued_twice(c, engineer, withdrawn=(1,))
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                   json={"note": "again", "revision": 1})
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        said = err["message"]
        assert (err["revision"], err["replaces"], err["stands"]) == (3, withdrawn, stands)
        # it said "#1 still stands and this would replace it", where "replaces" is #2
        assert "would replace it" not in said, said
        assert f"it would follow withdrawn #{withdrawn}" in said, said
        assert f"report #{stands} (issued at" in said and "the one that stands now, would no longer be the newest" \
            in said, said
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                   json={"note": "again", "revision": 3})
        assert r.status_code == 201, r.text
        third = r.json()["issued"]
    # as said: it follows the withdrawn one, and it is the one that stands
    assert (third["replaces"], third["standing"]) == (withdrawn, third["id"])


def test_a_baseline_before_the_records_kept_is_refused_in_plant_time(spc_station):
    from lineguard.line.orm import RecordsKept
    st = spc_station(timezone="Europe/Berlin")
    _november_at_17_percent(st)
    add_parts(st, [(dt.datetime(2026, 10, 20, 9) + dt.timedelta(minutes=j), "OK", 0.2) for j in range(12)])
    with st.db.session() as s:      # deleted up to 20 Oct 00:00 in Berlin: 12 October parts kept
        s.add(RecordsKept(id=1, kept_since=dt.datetime(2026, 10, 19, 22), keep_days=30.0))
    with client(st) as c:
        empty = c.get("/api/v1/spc/p-chart", params={**NOV_CHART, "baseline_since": "2026-09-01",
                                                     "baseline_until": "2026-09-30"})
        few = c.get("/api/v1/spc/p-chart", params={**NOV_CHART, "baseline_since": "2026-10-01",
                                                   "baseline_until": "2026-10-31"})
    assert empty.status_code == 422, empty.text
    said = empty.json()["error"]["message"]
    # it said "(2026-08-31T22:00:00Z to 2026-09-30T22:00:00Z) ... (2026-10-19T22:00:00Z"
    assert "(2026-09-01 to 2026-09-30) starts before the oldest records kept (2026-10-20 00:00 Europe/Berlin" \
        in said, said
    assert "choose a baseline after 2026-10-20 00:00 Europe/Berlin" in said and ":00Z" not in said, said
    assert few.status_code == 422, few.text
    err = few.json()["error"]
    said = err["message"]
    # it said only "choose a longer baseline window": a longer one before the cut holds no more
    assert "holds 12 part(s) judged (0 NG)" in said, said
    assert "starts before the oldest records kept (2026-10-20 00:00 Europe/Berlin: the record keeper deleted" \
        in said, said
    assert "choose a baseline after 2026-10-20 00:00 Europe/Berlin that holds that many" in said, said
    assert "choose a longer baseline window" not in said and ":00Z" not in said, said
    assert (err["baseline_parts"], err["parts_needed"]) == (12, spc.MIN_REFERENCE_PARTS)
