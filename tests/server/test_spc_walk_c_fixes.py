"""A walk of the SPC API, the period report and issued reports on a station: the counts
were right, what was said around them was not. A baseline of one part set the p-chart's
centre at 50 % and read a line at 17 % NG as "better than baseline"; a withdrawn report's
workbook sent the reader to a later revision withdrawn too, and the 409 of the next issue
said it replaced one that no longer stood; a report given since alone stopped at today's
00:00 without saying so; the p-chart CSV had no ng column, the workbook's estimated good
parts made read as a count, and the empty-baseline refusal said UTC instants, not the
plant's days. On SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import datetime as dt
import io

from lineguard.line import spc

from .test_issued_reports import _key
from .test_period_report import NOV, _book, made_month
from .test_spc_api import add_parts, client

NOV_CHART = {"by": "day", "since": "2026-11-01", "until": "2026-11-30", "line": "L1"}


def _november_at_17_percent(st):
    rows = []
    for d in range(1, 11):
        t = dt.datetime(2026, 11, d, 9)
        rows += [(t + dt.timedelta(minutes=j), "NG" if j < 17 else "OK", 0.9 if j < 17 else 0.2) for j in range(100)]
    add_parts(st, rows)


def test_a_baseline_too_small_to_set_a_centre_is_422_saying_how_many_parts_it_holds_and_needs(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    _november_at_17_percent(st)
    add_parts(st, [(dt.datetime(2026, 9, 10, 9), "OK", 0.2)])          # September: one OK part
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params={**NOV_CHART, "baseline_since": "2026-09-01",
                                                 "baseline_until": "2026-09-30"})
        assert r.status_code == 422, r.text      # it drew a centre of 50 % and "better than baseline"
        err = r.json()["error"]
        said = err["message"]
        assert "2026-09-01 to 2026-09-30" in said and "holds 1 part(s) judged" in said, said
        assert f"at least {spc.MIN_REFERENCE_PARTS}" in said and "choose a longer baseline window" in said, said
        assert (err["baseline_parts"], err["parts_needed"]) == (1, spc.MIN_REFERENCE_PARTS)
        # enough parts (none NG: half an NG part in them) set a centre, and no low-side rule
        # fires from it on a line worse than it
        add_parts(st, [(dt.datetime(2026, 10, 10, 9) + dt.timedelta(minutes=j), "OK", 0.2)
                       for j in range(spc.MIN_REFERENCE_PARTS)])
        r = c.get("/api/v1/spc/p-chart", params={**NOV_CHART, "baseline_since": "2026-10-01",
                                                 "baseline_until": "2026-10-31"})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["baseline"]["parts"] == spc.MIN_REFERENCE_PARTS
    assert all(p["z"] > 0 for p in body["points"]) and body["alarms"], body["alarms"]


def test_an_empty_baseline_is_said_in_the_plants_days_not_utc_instants(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    _november_at_17_percent(st)
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params={**NOV_CHART, "baseline_since": "2026-08-01",
                                                 "baseline_until": "2026-08-31"})
    assert r.status_code == 422, r.text
    said = r.json()["error"]["message"]
    assert "(2026-08-01 to 2026-08-31) holds no part judged" in said and "T22:00:00Z" not in said, said


def test_the_p_chart_csv_has_an_ng_column_beside_defects(spc_station):
    st = spc_station()
    _november_at_17_percent(st)
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params={**NOV_CHART, "format": "csv"})
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    head = rows[0]
    # defects stays where older sheets read it; ng at the end
    assert head[3] == "defects" and head[-1] == "ng", head
    assert [(int(x[head.index("ng")]), int(x[3])) for x in rows[1:]] == [(17, 17)] * 10


def _window(c, report_id) -> dict[str, str]:
    r = c.get(f"/api/v1/reports/issued/{report_id}", params={"format": "xlsx"})
    assert r.status_code == 200, r.text
    return {row[0][1]: row[1][1] for row in _book(r.content)["Window"][1:]}


def test_a_withdrawn_report_points_to_the_revision_that_stands_or_says_none_does(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    engineer = _key(st, "engineer")
    with client(st) as c:
        def issue() -> int:
            r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                       json={"note": "sent"})
            assert r.status_code == 201, r.text
            return r.json()["issued"]["id"]

        def withdraw(i: int) -> None:
            r = c.post(f"/api/v1/reports/issued/{i}/withdraw", headers=engineer, json={"reason": "wrong product"})
            assert r.status_code == 200, r.text
        first, second = issue(), issue()
        withdraw(first)
        withdraw(second)
        said = _window(c, first)["replaced by issued report"]
        # it said "#2 (a later revision: send that one)" of a #2 withdrawn too
        assert "send that one" not in said and "no revision of this window stands" in said, said
        assert "issue a new revision" in said
        assert c.get(f"/api/v1/reports/issued/{first}").json()["issued"]["standing"] is None

        third = issue()
        said = _window(c, first)["replaced by issued report"]
        assert said.startswith(f"#{second}") and f"#{third}: send that one" in said, said
        assert _window(c, second)["replaced by issued report"] == f"#{third} (a later revision: send that one)"


def issued_twice(c, engineer, withdrawn: tuple[int, ...]) -> list[int]:
    """November on L1 issued twice (revisions 1 and 2), those at the indices ``withdrawn``
    withdrawn: their ids."""
    ids = []
    for _ in range(2):
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                   json={"note": "sent"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["issued"]["id"])
    for i in withdrawn:
        assert c.post(f"/api/v1/reports/issued/{ids[i]}/withdraw", headers=engineer,
                      json={"reason": "sent for the wrong line"}).status_code == 200
    return ids


def test_issuing_after_every_revision_was_withdrawn_says_so_and_replaces_none(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    engineer = _key(st, "engineer")
    with client(st) as c:
        ids = issued_twice(c, engineer, withdrawn=(0, 1))
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                   json={"note": "again", "revision": 1})
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        said = err["message"]
        assert f"report #{ids[1]}" in said and "withdrawn (by" in said and "sent for the wrong line" in said, said
        assert "no report of" in said and "replaces none" in said and "replacing it" not in said, said
        assert (err["revision"], err["replaces"], err["withdrawn"], err["stands"]) == (3, ids[1], True, None)
        # a report that stands is still named as the one replaced
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                   json={"note": "again", "revision": 3})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                   json={"note": "twice", "revision": 3})
        assert r.status_code == 409 and r.json()["error"]["withdrawn"] is False, r.text
        assert "replacing it" in r.json()["error"]["message"]


def test_a_period_report_given_since_alone_says_it_stops_at_todays_start(spc_station):
    st = spc_station()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - dt.timedelta(days=1)
    add_parts(st, [(yesterday + dt.timedelta(hours=10, seconds=j), "OK", 0.1) for j in range(5)]
              + [(today + min(dt.timedelta(seconds=1), (now - today) / 2), "OK", 0.1)] * 3)
    with client(st) as c:
        body = c.get("/api/v1/reports/period", params={"since": yesterday.date().isoformat()}).json()
        book = _book(c.get("/api/v1/reports/period", params={"since": yesterday.date().isoformat(),
                                                              "format": "xlsx"}).content)
        whole = c.get("/api/v1/reports/period", params={"since": yesterday.date().isoformat(),
                                                        "until": yesterday.date().isoformat()}).json()
    w = body["window"]
    assert body["total"]["parts"] == 5 and w["still_running"] is None
    said = w["today_left_out"]
    assert said and "until today's 00:00" in said and "today's parts are not in it" in said, w
    assert f"until={today.date().isoformat()}" in said
    assert said in [row[1][1] for row in book["Window"][1:]]
    assert whole["window"]["today_left_out"] is None        # an until given: nothing left out unsaid
