"""The shift's stops and outages as the pages say them: an outage of hours in hours and
minutes ("2 h 0 min", not "7200 s"), and a process down since before the shift on the line
view (it listed only runs seen in the shift, so a station dead since the night before
showed nothing)."""
from __future__ import annotations

import datetime as dt

from .conftest import expect


def _runs(station, runs):
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import StationRun
    db = Database(StationConfig(data_dir=station.data_dir).database_url)
    try:
        with db.session() as s:
            s.add_all([StationRun(process=p, pid=i, started_at=a, seen_at=b) for i, (p, a, b) in enumerate(runs)])
    finally:
        db.dispose()


def test_the_shift_report_says_a_long_outage_in_hours(pages, station):
    day = dt.datetime(2026, 1, 10)
    # killed at 02:00, back at 04:00
    _runs(station, [("serve on hours-pc:/d", day + dt.timedelta(minutes=30), day + dt.timedelta(hours=2)),
                    ("serve on hours-pc:/d", day + dt.timedelta(hours=4), day + dt.timedelta(hours=5, minutes=30))])
    p = pages("operator")
    page = p.open("/app/report?at=2026-01-10T05:00:00Z", "#stops-and-starts")
    row = page.locator("#stops-table tr[data-kind='outage']", has_text="hours-pc")
    expect(row.locator("td").nth(2)).to_have_text("2 h 0 min")
    expect(row.locator("td").nth(3)).to_contain_text("no part judged for about 2 h 0 min")
    assert "2026-" not in row.locator("td").nth(3).inner_text()


def test_the_line_view_says_a_process_down_since_before_the_shift(pages, station):
    from lineguard.line.orm import utcnow
    now = utcnow()
    _runs(station, [("serve on dead-pc:/d", now - dt.timedelta(days=3), now - dt.timedelta(days=2))])
    p = pages("operator")
    page = p.open("/app/", "#stations")
    item = page.locator("#station-runs li[data-kind='down']", has_text="dead-pc")
    expect(item).to_contain_text("went silent before this shift began")
    expect(item).to_contain_text("no part judged by it all this shift")
