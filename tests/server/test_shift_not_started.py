"""A shift no one has worked yet has no report: a day ahead typed was answered as a running
shift ("(running)", 0 parts, "the station ran through the shift", today's alarms "still
active when the shift began", a note form whose save was refused), on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

from lineguard.line.auth import create_key

from .test_spc_api import client

STARTS = ("06:00", "14:00", "22:00")


def _utc(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_report_of_a_shift_that_has_not_started_is_refused_saying_when_it_starts(spc_station):
    st = spc_station(shift_starts=STARTS, timezone="Asia/Kolkata")
    with st.db.session() as s:
        op = {"X-API-Key": create_key(s, "operator", name="marta")[1]}
    now = dt.datetime.now(dt.timezone.utc)
    day_ahead = (now + dt.timedelta(days=2)).astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).date()
    with client(st) as c:
        r = c.get("/api/v1/reports/shift", params={"at": day_ahead.isoformat()})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        # the day's first shift, on the plant's clock: 06:00 in Kolkata is 00:30 UTC
        assert f"has not started: it starts at {day_ahead} 06:00 plant time" in err["message"], err
        assert "the running shift or an earlier one" in err["message"]
        assert err["not_started"] is True and err["shift_start"] == f"{day_ahead}T00:30:00Z"
        # nor can it be signed (it said "no part was judged": choose the shift the line ran in)
        r = c.post("/api/v1/reports/shift/sign", headers=op, json={"at": _utc(now + dt.timedelta(days=2))})
        assert r.status_code == 422 and "has not started" in r.text, r.text
        # the running shift and the last one that ended are reports as before
        running = c.get("/api/v1/reports/shift", params={"at": _utc(now)})
        assert running.status_code == 200 and running.json()["shift"]["ended"] is False, running.text
        last = c.get("/api/v1/reports/shift")
        assert last.status_code == 200 and last.json()["shift"]["ended"] is True, last.text
