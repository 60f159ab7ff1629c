"""An operator's alarms on a 390x844 phone, from a browser walk: the Alarms page kept an
alarm's message in a hover tooltip (a phone cannot hover: it was never read), and its rules
said "score drift: 20 parts (after 100)" without saying what the numbers were; the Plant
page said "(ng_run 1)" and told an operator to restart the station with serve --peer."""
from __future__ import annotations

import pytest

from .conftest import api, expect, png_bytes, post_part

PHONE = {"width": 390, "height": 844}
LINE, STATION = "L-phone", "P1"


@pytest.fixture(scope="module")
def ng_run_alarm(station) -> dict:
    """Five NG parts in a row at L-phone/P1 (the default rule): one alarm, left waiting; and
    the station's own score-drift rule, groups of 20 parts."""
    with api(station, "engineer") as c:
        for i in range(5):                      # the fake model: bright parts are NG
            assert post_part(c, png_bytes(220, seed=88100 + i), f"phone-{i}", line=LINE,
                             station=STATION).status_code == 201
        r = c.put("/api/v1/alarms/rules", json={"line": LINE, "station": STATION, "drift_parts": 20})
        assert r.status_code == 200, r.text
        (alarm,) = c.get("/api/v1/alarms", params={"line": LINE}).json()["items"]
    assert alarm["kind"] == "ng_run" and alarm["message"]
    return alarm


def test_an_alarms_message_opens_on_a_phone_by_tap_and_keyboard_and_the_drift_rule_says_its_numbers(
        pages, station, ng_run_alarm):
    op = pages(role="operator", viewport=PHONE, has_touch=True)
    page = op.open(f"/app/alarms?line={LINE}", f"#alarm-list tr[data-id='{ng_run_alarm['id']}']")
    row = page.locator(f"#alarm-list tr[data-id='{ng_run_alarm['id']}']")
    message = row.get_by_text("5 parts in a row not passed")
    expect(message).to_be_hidden()                          # under the alarm's name until opened

    # the keyboard: from the filters' Show button, Tab reaches the alarm's name, Enter opens it
    page.get_by_role("button", name="Show").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.matches('#alarm-list tr[data-id] summary')"):
            break
    summary = row.locator("summary")
    expect(summary).to_be_focused()
    expect(summary).to_have_text("rejected parts in a row")
    page.keyboard.press("Enter")
    expect(message).to_be_visible()
    # read on the phone's screen (the table scrolls sideways to it), not a word a line
    message.scroll_into_view_if_needed()
    box = message.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] and box["width"] >= 200, box
    op.shot("alarms-message-on-a-phone")
    page.keyboard.press("Enter")
    expect(message).to_be_hidden()
    summary.tap()                                           # a finger opens it as well
    expect(message).to_be_visible()

    drift = page.locator(f"#alarm-rules tr[data-station='{STATION}'] td[data-setting=drift_parts]")
    expect(drift).to_have_text("groups of 20 parts, against the first 100")


def test_the_plant_page_tells_an_operator_whom_to_ask_and_says_the_alarm_in_words(pages, station, ng_run_alarm):
    op = pages(role="operator", viewport=PHONE, has_touch=True)
    page = op.open("/app/plant", "#plant tr[data-this-station='1']")
    how = page.locator("#plant-no-peers")
    expect(how).to_contain_text("Ask an engineer to add the plant's other stations (serve --peer")
    expect(how).not_to_contain_text("restart")              # not for an operator to do
    reasons = page.locator("#plant tr[data-this-station='1'] td.plant-reasons")
    expect(reasons).to_contain_text("1 alarm(s) waiting for acknowledgement (rejected parts in a row)")
    expect(reasons).not_to_contain_text("ng_run")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    op.shot("plant-operator-on-a-phone")
    # an engineer is given the command itself
    eng = pages(role="engineer", viewport=PHONE, has_touch=True)
    page = eng.open("/app/plant", "#plant tr[data-this-station='1']")
    expect(page.locator("#plant-no-peers")).to_contain_text("Start this station with serve --peer NAME=URL")
    expect(page.locator("#plant-no-peers")).to_contain_text("then restart it")
