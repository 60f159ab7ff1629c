"""The plant's clock on the pages: a station in Chicago (shifts at 06:00 and 18:00) seen from
a browser set to Tokyo shows every time, and reads every typed time, in Chicago's zone,
daylight saving included; and the SPC page's review rates say what they count."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from .conftest import VIEWPORT, api, expect, fake_model_bytes, png_bytes, post_part
from server.conftest import ServerProc, make_keys

PLANT = "America/Chicago"
HERE = Path(__file__).resolve().parents[1]

# the fake-model station, given the plant's zone and shifts (its own script takes no such options)
SERVE = f"""
import dataclasses, sys
sys.path.insert(0, {str(HERE / 'server')!r})
try:
    import lineguard
except ImportError:
    sys.path.insert(0, {str(HERE.parent / 'src')!r})
import lineguard.server.app as app
serve = app.serve
app.serve = lambda cfg, **kw: serve(dataclasses.replace(cfg, timezone={PLANT!r}, shift_starts=("06:00", "18:00")),
                                    **kw)
import fake_inspector
fake_inspector.serve_main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    data = tmp_path_factory.mktemp("plant-time") / "data"
    keys = make_keys(data)
    srv = ServerProc(data, python_args=["-c", SERVE]).start()
    srv.keys = keys
    with srv.client(keys["engineer"]) as c:
        r = c.post("/api/v1/models", files={"file": ("cell.lgm", fake_model_bytes())},
                   data={"product": "cell", "activate": "true"})
        assert r.status_code == 201, r.text
    yield srv
    srv.stop()


@pytest.fixture
def tokyo(browser, station):
    """A signed-in page in a browser whose own clock is Tokyo's (UTC+9, no daylight saving)."""
    ctx = browser.new_context(viewport=VIEWPORT, base_url=station.url, timezone_id="Asia/Tokyo", locale="en-US")
    ctx.set_default_timeout(10_000)
    assert ctx.request.post("/api/v1/session", data={"api_key": station.keys["engineer"]}).status == 200
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    assert page.evaluate("new Date(Date.UTC(2026, 11, 4)).getTimezoneOffset()") == -540   # the browser is in Tokyo
    yield page
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def plant(iso: str, zone: str = PLANT) -> str:
    """A time as every page writes it, on a zone's clock: 2026-12-03 18:00:00."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return t.strftime("%Y-%m-%d %H:%M:%S")


def test_a_shifts_times_are_the_plants_on_a_browser_in_another_zone(tokyo, station):
    # 03:00 UTC on 4 December is 21:00 on the 3rd in Chicago: the evening shift from 18:00
    tokyo.goto("/app/report?at=2026-12-04T03:00:00Z")
    expect(tokyo.locator("#shift-label")).to_contain_text("2026-12-03 S2 (18:00)")
    with api(station) as c:
        shift = c.get("/api/v1/reports/shift", params={"at": "2026-12-04T03:00:00Z"}).json()["shift"]
    assert plant(shift["start"]) == "2026-12-03 18:00:00" and plant(shift["end"]) == "2026-12-04 06:00:00"
    # not Tokyo's 2026-12-04 09:00:00 to 21:00:00; and the zone said beside them
    expect(tokyo.locator("#report")).to_contain_text("2026-12-03 18:00:00 to 2026-12-04 06:00:00")
    expect(tokyo.locator("#report")).to_contain_text(f"({PLANT}; shifts start 06:00, 18:00)")


def test_gallery_times_typed_and_shown_are_the_plants(tokyo, station):
    with api(station, "operator") as c:
        r = post_part(c, png_bytes(200, seed=4101), "clock-part", line="LTZ")
        assert r.status_code == 201, r.text
        made = c.get(f"/api/v1/inspections/{r.json()['id']}").json()["created_at"]
    tokyo.goto("/app/gallery?line=LTZ")
    card = tokyo.locator("#gallery a.thumb")
    expect(card).to_have_count(1)
    expect(card).to_contain_text(plant(made))                     # the part's time on the plant's clock
    expect(tokyo.locator("#filters")).to_contain_text(f"times in {PLANT}")
    # typed as Chicago's wall clock: 08:00 in July is daylight time (UTC-5), in January standard (UTC-6)
    tokyo.fill("#filters input[name=since]", "2026-07-01T08:00")
    tokyo.fill("#filters input[name=until]", "2027-01-15T08:00")
    with tokyo.expect_request(lambda q: "/api/v1/inspections?" in q.url) as sent:
        tokyo.click("#filters button[type=submit]")
    assert "since=2026-07-01T13%3A00%3A00.000Z" in sent.value.url, sent.value.url
    assert "until=2027-01-15T14%3A00%3A00.000Z" in sent.value.url, sent.value.url
    expect(card).to_have_count(1)
    # opened from that address, the fields show the same wall times again
    tokyo.goto("/app/gallery?line=LTZ&since=2026-07-01T13:00:00.000Z&until=2027-01-15T14:00:00.000Z")
    expect(tokyo.locator("#filters input[name=since]")).to_have_value("2026-07-01T08:00")
    expect(tokyo.locator("#filters input[name=until]")).to_have_value("2027-01-15T08:00")


def test_spc_reads_typed_times_in_the_plants_zone_and_says_what_its_review_rates_count(tokyo, station):
    with api(station, "operator") as c:
        # 3 NG parts reviewed (1 good, 2 defects), 2 OK parts reviewed (1 defect, 1 good)
        ids = [post_part(c, png_bytes(b, seed=4200 + i), f"rate-{i}", line="LRATE").json()["id"]
               for i, b in enumerate((200, 205, 210, 60, 65))]
        for pid, label in zip(ids, ("good", "defect", "defect", "defect", "good")):
            body = {"label": label, **({"defect_type": "scratch"} if label == "defect" else {})}
            assert c.post(f"/api/v1/inspections/{pid}/review", json=body).status_code == 200
        got = [c.get(f"/api/v1/inspections/{pid}").json()["verdict"] for pid in ids]
    assert got == ["NG", "NG", "NG", "OK", "OK"], got
    tokyo.goto("/app/spc?line=LRATE")
    expect(tokyo.locator("#filters")).to_contain_text(f"times in {PLANT}")
    fr = tokyo.locator('#review-rates [data-rate="false_reject"]')
    es = tokyo.locator('#review-rates [data-rate="escape"]')
    expect(fr).to_contain_text("Rejected parts reviewed good")
    expect(fr).to_contain_text("1 of 3 NG parts reviewed were called good")
    expect(es).to_contain_text("Passed parts reviewed as defects")
    expect(es).to_contain_text("1 of 2 OK parts reviewed were called defects")
    # no longer read as a share of good parts scrapped
    expect(tokyo.locator("#review-rates")).not_to_contain_text("good parts judged")
    tokyo.fill("#filters input[name=since]", "2026-03-08T01:30")   # Chicago's clocks go forward at 02:00 that day
    tokyo.fill("#filters input[name=until]", "2026-12-05T18:00")
    with tokyo.expect_request(lambda q: "/api/v1/spc/p-chart?" in q.url) as sent:
        tokyo.click("#filters button[type=submit]")
    assert "since=2026-03-08T07%3A30%3A00.000Z" in sent.value.url, sent.value.url
    assert "until=2026-12-06T00%3A00%3A00.000Z" in sent.value.url, sent.value.url
