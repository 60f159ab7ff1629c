"""The Plant page: this station and its peers (serve --peer) on one screen, a station down
red and one needing a look amber with the reason in words, each name a link to that
station's own pages; without peers it says how to add them. The walk kept three tabs."""
from __future__ import annotations

import json

from .conftest import expect

ROWS = [
    {"name": "this station", "url": None, "page": "/app/", "this_station": True, "reachable": True, "status": "ok",
     "level": "ok", "reasons": [], "problem": None, "faults": {}, "alarms": {"active": 0, "by_kind": {},
     "past_escalation": 0, "oldest_waiting_min": None}, "version": "x", "last_answer_at": "2026-12-06T10:00:00Z",
     "unreachable_since": None},
    {"name": "lineB", "url": "http://10.0.0.12:8000", "page": "http://10.0.0.12:8000/app/", "this_station": False,
     "reachable": True, "status": "ok", "level": "warn",
     "reasons": ["2 alarm(s) waiting for acknowledgement (ng_run 1, ng_rate 1), the oldest for 12 min"],
     "problem": None, "faults": {}, "alarms": {"active": 2, "by_kind": {"ng_run": 1, "ng_rate": 1},
     "past_escalation": 0, "oldest_waiting_min": 12}, "version": "x", "last_answer_at": "2026-12-06T10:00:00Z",
     "unreachable_since": None},
    {"name": "lineC", "url": "http://10.0.0.13:8000", "page": "http://10.0.0.13:8000/app/", "this_station": False,
     "reachable": False, "status": "unreachable", "level": "down",
     "reasons": ["cannot connect (refused): station stopped, or its PC or network down"],
     "problem": "cannot connect", "faults": {}, "alarms": None, "version": None,
     "last_answer_at": "2026-12-06T09:00:00Z", "unreachable_since": "2026-12-06T09:00:10Z"},
]


def test_the_plant_page_lists_the_stations_and_without_peers_says_how_to_add_them(pages, station):
    # in an engineer's menu; an operator opens it by its address (the API asks an operator's key)
    eng = pages(role="engineer").open("/app/changes", "#nav a.current")
    eng.locator("#nav a", has_text="Plant").click()
    eng.wait_for_selector("#plant tr[data-this-station='1']")
    expect(eng.locator("#nav a.current")).to_have_text("Plant")
    p = pages(role="operator")
    page = p.open("/app/plant", "#plant tr[data-this-station='1']")
    expect(page.locator("#plant-no-peers")).to_be_visible()
    expect(page.locator("#plant-no-peers")).to_contain_text("--peer NAME=URL")
    expect(page.locator("#plant tr[data-this-station='1'] .v-ok")).to_have_text("OK")
    # named as the others are (by its line, else its PC's name), "(this station)" beneath
    expect(page.locator("#plant tr[data-this-station='1']")).not_to_have_attribute("data-name", "this station")
    expect(page.locator("#plant tr[data-this-station='1'] td").first).to_contain_text("(this station)")
    p.shot("plant-no-peers")

    # peers given (their answers as the API gives them): amber and red, the reason in words, links
    body = {"checked_at": "2026-12-06T10:00:00Z", "peers_configured": 2, "how_to_add": "x", "stations": ROWS}
    page.route("**/api/v1/plant", lambda route: route.fulfill(status=200, content_type="application/json",
                                                               body=json.dumps(body)))
    page.reload()
    page.wait_for_selector("#plant tr[data-name='lineC']")
    expect(page.locator("#plant-no-peers")).to_be_hidden()
    names = page.locator("#plant tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.name)")
    assert names == ["this station", "lineB", "lineC"]
    b, c = page.locator("#plant tr[data-name='lineB']"), page.locator("#plant tr[data-name='lineC']")
    expect(b.locator("b.v-review")).to_have_text("needs a look")
    expect(b).to_contain_text("2 alarm(s) waiting for acknowledgement (ng_run 1, ng_rate 1)")
    expect(c.locator("b.v-ng")).to_have_text("DOWN")
    expect(c).to_contain_text("cannot connect (refused)")
    expect(c).to_contain_text("not answering since")
    assert b.locator("a").first.get_attribute("href") == "http://10.0.0.12:8000/app/"
    p.shot("plant-peers")
