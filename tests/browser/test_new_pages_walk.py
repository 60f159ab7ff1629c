"""A walk of the day's new pages and messages as an operator and an engineer, on a plant in
Chicago: the drift alarm's own times on the plant's clock (it said 19:03 UTC beside the
alarm's "since 13:03:58"), a line due again after a model change says why under the table
(a phone squeezed it into the row's last cell, past the screen's edge), and an operator's
phone shows the reference photos without an engineer's command line, who added each one
whole, and the Plant page within the screen."""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from .conftest import api, expect, fake_model_bytes, png_bytes, post_part, start_fake_station
from .test_plant_time import PLANT, SERVE

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    # the fake-model station on the plant's clock (and its two shifts), as test_plant_time's
    srv = start_fake_station(tmp_path_factory.mktemp("new-pages-walk") / "data", python_args=["-c", SERVE])
    yield srv
    srv.stop()


def _plant_minute(utc_minute: str) -> str:
    """'2026-12-06 19:03' (UTC) as the plant's clock shows it, to the minute."""
    t = dt.datetime.strptime(utc_minute, "%Y-%m-%d %H:%M").replace(tzinfo=dt.timezone.utc)
    return t.astimezone(ZoneInfo(PLANT)).strftime("%Y-%m-%d %H:%M")


def test_the_drift_alarm_says_its_times_on_the_plants_clock(pages, station):
    # a line of its own, counted in groups of 20: the first 100 parts its baseline, then a lamp
    # brightening (the fake model's score is the photo's brightness; all still OK)
    with api(station, "operator") as op, api(station, "engineer") as eng:
        assert post_part(op, png_bytes(50, seed=0), "d-0", line="L5", station="S5").status_code == 201
        r = eng.put("/api/v1/alarms/rules", json={"line": "L5", "station": "S5", "drift_parts": 20})
        assert r.status_code == 200, r.text
        for i in range(1, 101):
            assert post_part(op, png_bytes(50, seed=i), f"d-{i}", line="L5", station="S5").status_code == 201
        for i in range(101, 150):
            assert post_part(op, png_bytes(80, seed=i), f"d-{i}", line="L5", station="S5").status_code == 201
        (alarm,) = [a for a in op.get("/api/v1/alarms", params={"kind": "drift"}).json()["items"] if a["line"] == "L5"]
    said = re.search(r"since about (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC at station S5", alarm["message"])
    assert said, alarm["message"]            # the station's own words stay UTC (PLC, MQTT, logs)
    local = _plant_minute(said.group(1))
    assert local != said.group(1)            # Chicago is never UTC: the test tells the two apart

    p = pages(role="operator")
    page = p.open("/app/", f'.alarm-item[data-id="{alarm["id"]}"]')
    message = page.locator(f'.alarm-item[data-id="{alarm["id"]}"] .alarm-message')
    expect(message).to_contain_text(f"since about {local} at station S5")
    expect(message).not_to_contain_text("UTC")
    p.shot("walk-drift-alarm-line-view")

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = p.open(f"/app/report?at={now}&line=L5", "#report-alarms")
    row = report.locator('#report-alarms tr[data-kind="drift"]')
    expect(row).to_contain_text(f"since about {local} at station S5")
    expect(row).not_to_contain_text("UTC")

    alarms = p.open("/app/alarms?line=L5", f'tr[data-id="{alarm["id"]}"]')
    cell = alarms.locator(f'tr[data-id="{alarm["id"]}"] td[title]').first
    assert f"since about {local} at station S5" in cell.get_attribute("title")
    assert "UTC" not in cell.get_attribute("title")


def test_a_line_due_again_after_a_model_change_says_why_within_a_phones_screen(pages, station):
    with api(station, "engineer") as eng, api(station, "operator") as op:
        r = eng.post("/api/v1/models", files={"file": ("due.lgm", fake_model_bytes())},
                     data={"product": "duecell", "activate": "true"})
        assert r.status_code == 201, r.text
        r = eng.post("/api/v1/products/duecell/test-parts", json={"name": "RR-7", "expect": "NG"})
        assert r.status_code == 200, r.text
        assert post_part(op, png_bytes(200, seed=700), "scan-7", product="duecell", line="L7",
                         serial="RR-7").status_code == 201
        r = eng.post("/api/v1/models", files={"file": ("due2.lgm", fake_model_bytes(version="fake-2"))},
                     data={"product": "duecell", "activate": "true"})
        assert r.status_code == 201, r.text
        (line,) = [v for v in op.get("/api/v1/verification").json()["lines"] if v["line"] == "L7"]
    assert line["state"] == "due" and "put the test parts through again" in line["reason"]

    p = pages(role="operator", viewport=PHONE)
    page = p.open("/app/", '#verification-panel tr[data-line="L7"]')
    reason = page.locator('#verification-panel .verification-reason').filter(has_text="model version 2")
    expect(reason).to_contain_text("put the test parts through again")
    box = reason.bounding_box()
    # read at the panel's width, within the screen: in the row's last cell it was a word a line,
    # its right part past the screen's edge
    assert box["x"] + box["width"] <= PHONE["width"], box
    assert box["width"] >= 0.6 * PHONE["width"], box
    expect(reason).to_contain_text("L7")         # which line it is, read apart from the table
    p.shot("walk-verification-due-phone")
    tp = p.open("/app/testparts?product=duecell", '#verification tr[data-line="L7"]')
    expect(tp.locator(".verification-reason").filter(has_text="model version 2")).to_be_visible()


def test_an_operators_phone_shows_reference_photos_and_the_plant_without_an_engineers_words(pages, station):
    with api(station, "engineer") as eng:
        for i, side in enumerate((32, 32, 48)):       # an old camera's photos and a new one's
            r = eng.post("/api/v1/reference-photos", files={"photo": (f"ref-{i}.png", png_bytes(45, side, seed=i))},
                         data={"product": "cell"})
            assert r.status_code == 201, r.text
    p = pages(role="operator", viewport=PHONE)
    page = p.open("/app/models?product=cell", "#reference-photo-list [data-photo]")
    sizes = page.locator("#reference-sizes")
    expect(sizes).to_contain_text("more than one size")
    expect(sizes).to_contain_text("ask an engineer")
    # a command an operator has no station PC or key for, and a Remove they do not get
    expect(sizes).not_to_contain_text("lineguard reference remove")
    expect(page.locator("#reference-photos")).to_contain_text("an engineer removes the old camera's")
    by = page.locator("#reference-photo-list [data-photo]").first.locator(".cap", has_text="by test-engineer (key 2)")
    expect(by).to_be_visible()
    # whole, not cut to "by test-…" by the caption's two lines (a phone shows no hover title)
    assert by.evaluate("(e) => e.scrollHeight <= e.clientHeight + 1")
    p.shot("walk-reference-photos-operator-phone")

    plant = p.open("/app/plant", "#plant tr[data-this-station='1']")
    expect(plant.locator("#plant-no-peers")).to_contain_text("Ask an engineer to add the plant's other stations")
    # the page within the phone's width (the engineer's how-to, LINEGUARD_PEERS=line2=http://…,
    # line3=…, has no space to break at: it went to 610 px on a 390 px phone)
    assert plant.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    p.shot("walk-plant-phone")
