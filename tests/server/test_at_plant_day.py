"""`at` given as a day alone is the plant's day, in the shift report and the verification alike.

since/until read a day alone as the plant's day; `at` (a time in the shift) was a datetime
FastAPI read as that day's 00:00 UTC. In Berlin that is 01:00, inside the night shift that
started at 22:00 the evening before: at=2026-12-01 showed "2026-11-30 S3". In Chicago it
is 18:00 the evening before. A day alone now names that plant day's first shift, the one
labelled with the day whatever the shift starts; a time keeps its meaning."""
from __future__ import annotations

import pytest

from .test_spc_api import client

PATHS = ("/api/v1/reports/shift", "/api/v1/verification")


def _shift(c, path, at):
    r = c.get(path, params={"at": at})
    assert r.status_code == 200, (path, at, r.text)
    return r.json()["shift"]


@pytest.mark.parametrize("timezone, starts, first, start_utc", [
    ("Europe/Berlin", ("06:00", "14:00", "22:00"), "2026-12-01 S1 (06:00)", "2026-12-01T05:00:00"),
    ("America/Chicago", ("06:00", "18:00"), "2026-12-01 S1 (06:00)", "2026-12-01T12:00:00"),
    # the day's first shift starts after noon: the plant's noon is the night shift before it
    ("Europe/Berlin", ("13:00", "23:00"), "2026-12-01 S1 (13:00)", "2026-12-01T12:00:00"),
    ("Asia/Tokyo", ("00:00", "08:00", "16:00"), "2026-12-01 S1 (00:00)", "2026-11-30T15:00:00"),
])
def test_a_day_alone_is_the_plant_days_first_shift_in_both_answers(spc_station, timezone, starts, first, start_utc):
    st = spc_station(timezone=timezone, shift_starts=starts)
    with client(st) as c:
        for path in PATHS:
            shift = _shift(c, path, "2026-12-01")
            assert shift["label"] == first, (path, shift)
            assert shift["start"].startswith(start_utc), (path, shift)


def test_a_time_keeps_its_meaning_and_a_day_reads_as_the_page_walks_on(spc_station):
    st = spc_station(timezone="Europe/Berlin", shift_starts=("06:00", "14:00", "22:00"))
    with client(st) as c:
        for path in PATHS:
            # without an offset a time is UTC, as the API writes times: 00:30 UTC is 01:30 in Berlin
            assert _shift(c, path, "2026-12-01T00:30:00")["label"] == "2026-11-30 S3 (22:00)", path
            assert _shift(c, path, "2026-12-01T00:30:00+01:00")["label"] == "2026-11-30 S3 (22:00)", path
            assert _shift(c, path, "2026-12-01T13:59:59Z")["label"] == "2026-12-01 S2 (14:00)", path
            assert _shift(c, path, "2026-12-01")["label"] == "2026-12-01 S1 (06:00)", path
        # the page's "previous shift" from the day's first shift is the night shift before it
        rep = c.get(PATHS[0], params={"at": "2026-12-01"}).json()
        assert _shift(c, PATHS[0], rep["shift"]["previous_at"])["label"] == "2026-11-30 S3 (22:00)"


@pytest.mark.one_database
def test_an_at_that_is_no_time_says_what_to_write(spc_station):
    st = spc_station(timezone="Asia/Tokyo")
    with client(st) as c:
        for path in PATHS:
            r = c.get(path, params={"at": "1st of December"})
            assert r.status_code == 422, (path, r.text)
            message = r.json()["error"]["message"]
            assert message.startswith("at: ") and "2026-12-01 (the plant's day)" in message, (path, message)
            # the calendar's first day, in a zone ahead of UTC: before year 1 once in UTC
            r = c.get(path, params={"at": "0001-01-01"})
            assert r.status_code == 422 and "out of range" in r.json()["error"]["message"], (path, r.text)
