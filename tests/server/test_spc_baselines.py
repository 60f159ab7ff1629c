"""The p-chart's centre line from a reference window (baseline_since/baseline_until), as the
score drift takes one, and the NG count named for what it is.

A month with a two-day excursion had its own excursion in its centre line (5.54 % with
it, 3.0 % without), which widened the limits the excursion was judged by; and the chart's
"defects" counted NG verdicts, false rejects included, beside the Pareto's "defects",
reviewed ones. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line import spc

from .test_spc_api import add_parts, client

DAY0 = dt.datetime(2026, 11, 2)


def _month():
    """20 steady days of 100 parts, 3 NG each, then a 2-day excursion of 30 NG a day."""
    rows = []
    for d in range(22):
        ng = 30 if d >= 20 else 3
        t = DAY0 + dt.timedelta(days=d, hours=8)
        rows += [(t + dt.timedelta(minutes=j), "NG" if j < ng else "OK", 0.9 if j < ng else 0.2) for j in range(100)]
    return rows


MONTH = {"by": "day", "since": "2026-11-02T00:00:00Z", "until": "2026-11-24T00:00:00Z"}
STEADY = {"baseline_since": "2026-11-02T00:00:00Z", "baseline_until": "2026-11-22T00:00:00Z"}


def test_the_centre_line_comes_from_the_baseline_window_given(spc_station):
    st = spc_station()
    add_parts(st, _month())
    with client(st) as c:
        own = c.get("/api/v1/spc/p-chart", params=MONTH)
        assert own.status_code == 200, own.text
        own = own.json()
        # by default the window drawn is its own baseline, excursion and all, and it says so
        assert own["centre"] == pytest.approx(120 / 2200)
        assert own["baseline"] == {"from": "window", "since": "2026-11-02T00:00:00Z", "until": "2026-11-24T00:00:00Z",
                                   "parts": 2200, "ng": 120}
        r = c.get("/api/v1/spc/p-chart", params={**MONTH, **STEADY})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["centre"] == pytest.approx(0.03)
    assert body["baseline"] == {"from": "baseline_since/until", "since": "2026-11-02T00:00:00Z",
                                "until": "2026-11-22T00:00:00Z", "parts": 2000, "ng": 60}
    # the points are still the whole window's, each with limits set from the baseline's 3 %
    assert [p["n"] for p in body["points"]] == [100] * 22 and body["parts"] == 2200
    fixed = spc.p_chart([spc.Subgroup("x", None, 100, 3)], centre=0.03).points[0]
    assert body["points"][0]["ucl"] == pytest.approx(fixed.ucl) and body["points"][0]["ucl"] < own["points"][0]["ucl"]
    assert [a["label"] for a in body["alarms"] if a["rule"] == 1] == ["2026-11-22", "2026-11-23"]
    # the CSV draws the same chart: its centre column is the baseline's
    with client(st) as c:
        rows = c.get("/api/v1/spc/p-chart", params={**MONTH, **STEADY, "format": "csv"}).text.splitlines()
    assert float(rows[1].split(",")[7]) == pytest.approx(0.03)


def test_a_baseline_day_alone_is_the_plants_day(spc_station):
    # Berlin: 2026-11-02 starts at 2026-11-01 23:00 UTC, as the chart's own since does
    st = spc_station(timezone="Europe/Berlin")
    add_parts(st, _month())
    with client(st) as c:
        body = c.get("/api/v1/spc/p-chart", params={**MONTH, "baseline_since": "2026-11-02",
                                                    "baseline_until": "2026-11-21"}).json()
    assert body["baseline"]["since"] == "2026-11-01T23:00:00Z" and body["baseline"]["until"] == "2026-11-21T23:00:00Z"
    assert (body["baseline"]["parts"], body["baseline"]["ng"]) == (2000, 60)


@pytest.mark.parametrize("params, says", [
    ({"baseline_since": "2026-11-02T00:00:00Z"}, "baseline_until"),
    ({"baseline_until": "2026-11-22T00:00:00Z"}, "baseline_since"),
    ({"baseline_since": "2026-11-22T00:00:00Z", "baseline_until": "2026-11-02T00:00:00Z"}, "must be before"),
    ({"baseline_since": "yesterday", "baseline_until": "2026-11-02T00:00:00Z"}, "baseline_since: Input should be"),
    # a window when the line made nothing sets no centre: said, not a chart centred on 0
    ({"baseline_since": "2026-10-01T00:00:00Z", "baseline_until": "2026-10-02T00:00:00Z"}, "no part judged"),
])
@pytest.mark.one_database
def test_a_baseline_that_cannot_be_used_is_422_saying_why(spc_station, params, says):
    st = spc_station()
    add_parts(st, _month())
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params={**MONTH, **params})
    assert r.status_code == 422, r.text
    assert says in r.json()["error"]["message"]


def test_a_baseline_whose_records_are_no_longer_kept_says_so_not_that_the_line_made_nothing(spc_station):
    from lineguard.line.orm import RecordsKept
    st = spc_station()
    add_parts(st, _month())
    with st.db.session() as s:
        s.add(RecordsKept(id=1, kept_since=dt.datetime(2026, 11, 23), keep_days=30.0))
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params={**MONTH, **STEADY})
    assert r.status_code == 422, r.text
    said = r.json()["error"]["message"]
    assert "before the oldest records kept (2026-11-23 00:00 UTC" in said and "after 2026-11-23" in said, said
    assert "holds no part judged" in said and "when the line ran" not in said


def test_ng_is_named_beside_defects_which_count_ng_verdicts(spc_station):
    st = spc_station()
    # 2 NG parts reviewed good (false rejects) and 1 NG unreviewed: 3 NG verdicts, 0 reviewed defects
    add_parts(st, [(DAY0, "NG", 0.9, "L1", None, "good")] * 2 + [(DAY0, "NG", 0.9)] + [(DAY0, "OK", 0.2)] * 7)
    with client(st) as c:
        body = c.get("/api/v1/spc/p-chart", params={"by": "day", "since": "2026-11-02T00:00:00Z",
                                                    "until": "2026-11-03T00:00:00Z"}).json()
        spec = c.get("/openapi.json").json()
    assert (body["ng"], body["defects"], body["parts"]) == (3, 3, 10)
    assert [(p["ng"], p["defects"]) for p in body["points"]] == [(3, 3)]
    schemas = spec["components"]["schemas"]
    for name in ("PChartOut", "ChartPointOut"):
        props = schemas[name]["properties"]
        assert "NG verdicts" in props["ng"]["description"] and "NG verdicts" in props["defects"]["description"]
    params = {p["name"]: p for p in spec["paths"]["/api/v1/spc/p-chart"]["get"]["parameters"]}
    assert "reference window" in params["baseline_since"]["description"]
    assert "exclusive" in params["baseline_until"]["description"]
