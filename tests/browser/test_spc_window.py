"""The SPC page's window: an until picked at 23:59 takes in that whole minute (it left the
day's last minute of parts out), and the p-chart's baseline window is set on the page
(the API took baseline_since/baseline_until, the page had no field for them)."""
from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

from .conftest import api, expect, png_bytes, post_part


def test_spc_until_at_2359_takes_the_whole_minute_and_the_baseline_is_set_on_the_page(pages, station):
    from .test_spc_tuning import plant_hours
    with api(station, "operator") as c:
        assert post_part(c, png_bytes(60, seed=7100), "win-1", line="LWIN").status_code in (200, 201)
    # a baseline sets a centre from 50 parts up: 60 more in the last hour
    plant_hours(station.data_dir, "LWIN", [(60, 0)],
                dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0))
    p = pages("operator")
    page = p.open("/app/spc?line=LWIN", "#p-chart-window")
    today = dt.date.fromisoformat(page.evaluate("LG.isoToLocal(new Date().toISOString())")[:10])
    day = lambda k: (today + dt.timedelta(days=k)).isoformat()     # noqa: E731
    iso = lambda local: page.evaluate("(v) => LG.localToIso(v)", local)     # noqa: E731
    page.fill("#filters input[name=since]", f"{day(-1)}T00:00")
    page.fill("#filters input[name=until]", f"{day(1)}T23:59")
    page.fill("#filters input[name=baseline_since]", f"{day(-1)}T00:00")
    page.fill("#filters input[name=baseline_until]", f"{day(1)}T23:59")
    with page.expect_request(lambda q: "/api/v1/spc/p-chart?" in q.url) as sent:
        page.get_by_role("button", name="Show").click()
    asked = {k: v[0] for k, v in parse_qs(urlsplit(sent.value.url).query).items()}
    # 23:59 is through the end of that minute: the next day's 00:00, exclusive
    assert asked["until"] == iso(f"{day(2)}T00:00"), asked
    assert asked["baseline_since"] == iso(f"{day(-1)}T00:00") and asked["baseline_until"] == iso(f"{day(2)}T00:00")
    expect(page.locator("#p-chart-baseline")).to_contain_text("centre from the baseline")
    expect(page.locator("#p-chart-baseline")).to_contain_text("NG parts of 61")
    # the drift chart's lines say they are scores, and its dashed line is named
    legend = page.locator("#scores svg text")
    for name in ("mean score", "median score", "95th percentile score", "baseline mean (dashed)"):
        expect(legend.filter(has_text=name)).to_have_count(1)
    # the page's address keeps the time as typed: opened again, the fields say 23:59, not 00:00
    page.reload()
    expect(page.locator("#filters input[name=until]")).to_have_value(f"{day(1)}T23:59")
    expect(page.locator("#filters input[name=baseline_until]")).to_have_value(f"{day(1)}T23:59")
    expect(page.locator("#p-chart-baseline")).to_contain_text("centre from the baseline")
    p.shot("spc-window-baseline")


def test_a_day_alone_in_the_address_is_the_plant_s_day_and_an_unended_window_is_said(pages, station):
    """Walk: /app/spc?since=2026-11-01&until=2026-11-30 filled the fields with UTC midnight
    (01:00 in Berlin, each end), so the charts left out the 30th that the API's reading of
    the same address keeps; and Issue on a month not yet ended said nothing of the parts to
    come."""
    page = pages("engineer").open("/app/spc?line=LWIN&since=2026-11-01&until=2026-11-30", "#p-chart-window")
    expect(page.locator("#filters input[name=since]")).to_have_value("2026-11-01T00:00")
    expect(page.locator("#filters input[name=until]")).to_have_value("2026-12-01T00:00")   # exclusive: the 30th in
    expect(page.locator("#issue-window")).not_to_contain_text("has not ended")
    today = dt.date.fromisoformat(page.evaluate("LG.isoToLocal(new Date().toISOString())")[:10])
    ahead = (today + dt.timedelta(days=3)).isoformat()
    page = pages("engineer").open(f"/app/spc?line=LWIN&since={today.isoformat()}&until={ahead}", "#p-chart-window")
    expect(page.locator("#issue-window")).to_contain_text(
        "The window has not ended: a report issued now leaves out the parts still to come.")
