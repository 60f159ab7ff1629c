"""Counts on the pages are written as the pages' English writes its decimals: a browser set
to German showed "NG parts: 6 of 1.234" (the browser's thousands point) beside "0.49 %"."""
from __future__ import annotations

import datetime as dt

from .conftest import VIEWPORT, expect
from .test_spc_tuning import plant_hours


def test_a_german_browser_reads_counts_with_the_pages_separators(browser, station):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, "LDE", [(617, 3), (617, 3)], now)
    ctx = browser.new_context(viewport=VIEWPORT, base_url=station.url, locale="de-DE")
    try:
        assert ctx.request.post("/api/v1/session", data={"api_key": station.keys["operator"]}).status == 200
        page = ctx.new_page()
        assert page.evaluate("(1234).toLocaleString()") == "1.234"      # the browser's own way
        since = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        until = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        page.goto(f"/app/spc?line=LDE&by=hour&since={since}&until={until}")
        expect(page.locator("#p-chart-ng")).to_contain_text("NG parts: 6 of 1,234 parts judged")
    finally:
        ctx.close()
