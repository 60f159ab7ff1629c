"""Issuing a period report that was just issued (a second tap on Issue) is refused unless a
new revision is meant; a window's refusal says the days as typed, not the UTC instants."""
from __future__ import annotations

import pytest

from .test_station_filter import DAY, _engineer, _parts
from .test_spc_api import client


def test_a_second_tap_on_issue_does_not_replace_the_report_sent_with_its_note(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    _parts(st)
    engineer = _engineer(st)
    with client(st) as c:
        first = c.post("/api/v1/reports/period/issue", params=DAY, headers=engineer,
                       json={"note": "sent to ACME with 8D 114", "revision": 1})
        assert first.status_code == 201, first.text
        sent = first.json()["issued"]
        # the second tap sends the same request, the note field emptied by the first's answer
        again = c.post("/api/v1/reports/period/issue", params=DAY, headers=engineer, json={"note": "", "revision": 1})
        assert again.status_code == 409, again.text
        said = again.json()["error"]
        assert (said["replaces"], said["revision"]) == (sent["id"], 2)
        assert f"#{sent['id']}" in said["message"] and "sent to ACME with 8D 114" in said["message"]
        # nothing issued: the one sent with the note stands, not replaced
        listed = c.get("/api/v1/reports/issued").json()["issued"]
        assert [(i["id"], i["replaced_by"]) for i in listed] == [(sent["id"], None)]
        # a corrected report, meant as such, is the next revision
        meant = c.post("/api/v1/reports/period/issue", params=DAY, headers=engineer,
                       json={"note": "corrected", "revision": 2})
        assert meant.status_code == 201 and meant.json()["issued"]["replaces"] == sent["id"], meant.text


@pytest.mark.parametrize("params, typed, utc", [
    ({"since": "2026-12-08", "until": "2026-12-01"}, ("(2026-12-08)", "(2026-12-01)"), "2026-12-07T23:00:00Z"),
    ({"since": "2020-01-01", "until": "2026-12-07", "by": "hour"}, ("2020-01-01 to 2026-12-07",), "2019-12-31"),
])
def test_a_window_refused_is_said_in_the_days_typed(spc_station, params, typed, utc):
    st = spc_station(timezone="Europe/Berlin")
    with client(st) as c:
        r = c.get("/api/v1/spc/p-chart", params=params)
    assert r.status_code == 422, r.text
    said = r.json()["error"]["message"]
    # the plant's days as typed, not the instants they became in UTC (a day earlier, 23:00)
    assert all(t in said for t in typed) and utc not in said, said


def test_the_period_report_and_the_parts_list_say_the_days_typed_too(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    with client(st) as c:
        month = c.get("/api/v1/reports/period", params={"since": "2026-12-08", "until": "2026-12-01"})
        parts = c.get("/api/v1/inspections", params={"since": "2026-12-08", "until": "2026-12-01"})
    for r in (month, parts):
        assert r.status_code == 422, r.text
        said = r.json()["error"]["message"]
        assert "(2026-12-08)" in said and "(2026-12-01)" in said and "T23:00:00Z" not in said, said


def test_a_window_edge_as_typed_binds_as_a_datetime_in_a_raw_query():
    # the edge that remembers what was typed is a datetime subclass; sqlite3 adapts by exact
    # type and refused it in a raw text() or literal() bind ("type 'Typed' is not supported")
    import datetime as dt

    from sqlalchemy import create_engine, literal, select, text

    from lineguard.line.spc_data import as_typed
    edge = as_typed(dt.datetime(2026, 12, 7, 23, 0), "2026-12-08")
    with create_engine("sqlite://").connect() as c:
        assert c.execute(text("select :x"), {"x": edge}).scalar() == "2026-12-07 23:00:00"
        assert c.execute(select(literal(edge))).scalar() in ("2026-12-07 23:00:00", dt.datetime(2026, 12, 7, 23, 0))
