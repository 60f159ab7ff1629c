"""What a night-shift operator met on the pages: times in the browser's language ("12/6/2026,
10:32:35 PM", read in Berlin as 12 June) beside the shift's "2026-12-06 S3"; the sign-in page
led with the API key form; pages told an operator to retrain or register test parts (an
engineer's work) and offered the six general defect types without saying who sets a
product's own; a review sent with the station down named no part."""
from __future__ import annotations

import datetime as dt
import json
import re
from zoneinfo import ZoneInfo

from .conftest import api, expect, png_bytes, post_part, seen

PLANT_FORM = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _plant(zone: str, iso: str) -> dt.datetime:
    """``iso`` on the station's clock (the session's zone: an IANA name or a fixed offset)."""
    zone = zone or "UTC"
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", zone)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return t.astimezone(dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))))
    return t.astimezone(ZoneInfo(zone))


def test_times_are_year_month_day_on_a_24_hour_clock_whatever_the_browsers_language(browser, station):
    with api(station, "operator") as c:
        r = post_part(c, png_bytes(200, seed=55101), "night-clock", line="LNight")
        assert r.status_code == 201, r.text
        made = c.get(f"/api/v1/inspections/{r.json()['id']}").json()["created_at"]
    # an English (US) browser, as the walk's tablet was
    ctx = browser.new_context(base_url=station.url, locale="en-US", timezone_id="America/New_York")
    try:
        assert ctx.request.post("/api/v1/session", data={"api_key": station.keys["operator"]}).status == 200
        page = ctx.new_page()
        page.goto("/app/gallery?line=LNight")
        card = page.locator("#gallery a.thumb")
        expect(card).to_have_count(1)
        zone = page.evaluate("LG.me.timezone")
        for iso in ("2026-12-06T22:32:35Z", "2026-06-12T03:04:05.250Z", made):
            shown = page.evaluate("(t) => LG.when(t)", iso)
            want = _plant(zone, iso)
            assert PLANT_FORM.match(shown), shown
            assert shown == want.strftime("%Y-%m-%d %H:%M:%S"), (iso, shown, want)
            assert page.evaluate("(t) => LG.timeOnly(t)", iso) == want.strftime("%H:%M:%S")
        text = card.inner_text()
        assert _plant(zone, made).strftime("%Y-%m-%d %H:%M:%S") in text, text
        assert not re.search(r"\d/\d|\b[AP]M\b", text), text
        # the part page's "inspected" too
        page.goto(f"/app/parts/{r.json()['id']}")
        page.wait_for_selector("#main h1")
        expect(page.locator("#main")).to_contain_text(_plant(zone, made).strftime("%Y-%m-%d %H:%M:%S"))
        assert not re.search(r"\d{1,2}/\d{1,2}/\d{4}|\b[AP]M\b", page.locator("#main").inner_text())
    finally:
        ctx.close()


def test_a_typed_time_is_said_beside_its_field_as_the_pages_write_times(pages, station):
    """The browser draws <input type=datetime-local> in its language's form (mm/dd/yyyy, AM/PM)."""
    p = pages(role="operator")
    for path, ready in (("/app/spc?line=LNight&since=2026-12-06T21:00:00Z", "#filters"),
                        ("/app/gallery?line=LNight&since=2026-12-06T21:00:00Z", "#filters"),
                        ("/app/alarms?since=2026-12-06T21:00:00Z", "#alarm-list")):
        page = p.open(path, ready)
        since = page.locator("input[name=since]")
        echo = page.locator("#time-echo-since")
        want = page.evaluate("(t) => LG.when(t)", "2026-12-06T21:00:00Z")[:16]
        expect(echo).to_have_text(want)
        expect(since).to_have_attribute("aria-describedby", "time-echo-since")
        page.fill("input[name=until]", "2026-12-07T06:30")
        expect(page.locator("#time-echo-until")).to_have_text("2026-12-07 06:30")
        page.fill("input[name=until]", "")
        expect(page.locator("#time-echo-until")).to_have_text("")


def test_sign_in_leads_with_the_user_name_and_the_browser_fills_only_that(browser, station):
    ctx = browser.new_context(base_url=station.url)
    try:
        page = ctx.new_page()
        page.goto("/app/signin")
        user, key = page.locator("#user-form"), page.locator("#key-form")
        expect(user).to_be_visible()
        # first in the page (read first, and first on a phone where the forms stand one under the other)
        assert page.evaluate("""() => document.getElementById('user-form')
          .compareDocumentPosition(document.getElementById('key-form')) & Node.DOCUMENT_POSITION_FOLLOWING""")
        ub, kb = user.bounding_box(), key.bounding_box()
        assert ub["y"] < kb["y"] or (abs(ub["y"] - kb["y"]) < 2 and ub["x"] < kb["x"]), (ub, kb)
        expect(page.locator("#user-form input[name=username]")).to_be_focused()
        expect(page.locator("#user-form input[name=username]")).to_have_attribute("autocomplete", "username")
        expect(page.locator("#user-form input[name=password]")).to_have_attribute("autocomplete", "current-password")
        expect(page.locator("#key-form input[name=api_key]")).to_have_attribute("autocomplete", "off")
        # the key still signs in from its form below
        page.fill("#key-form input[name=api_key]", station.keys["operator"])
        page.click("#key-form button")
        page.wait_for_url(re.compile(r"/app/$"))
    finally:
        ctx.close()


def test_test_parts_say_to_an_operator_that_an_engineer_registers_them(pages, station):
    op = pages(role="operator").open("/app/testparts", "#test-parts")
    expect(op.locator("#who-registers")).to_contain_text("registered by an engineer")
    expect(op.locator("#add-test-part")).to_be_hidden()
    verification = op.locator("#verification")
    expect(verification).to_contain_text("an engineer registers them on this page")
    expect(verification).not_to_contain_text("(register them")
    eng = pages(role="engineer").open("/app/testparts", "#test-parts")
    expect(eng.locator("#add-test-part")).to_be_visible()
    expect(eng.locator("#who-registers")).to_have_count(0)
    expect(eng.locator("#verification")).to_contain_text("(register them below)")


def _above_promise(route):
    """The tuning answer as the station gives it, with recent parts above the training's promise."""
    r = route.fetch()
    t = r.json()
    rate = {"rate": 0.2, "n": 40, "lo": 0.1, "hi": 0.35, "promised": 0.01, "above_promise": True}
    t["promise"] = {"confidence": 0.95, "reviewed_defects_left_out": 0, "ng": rate, "not_ok": None}
    route.fulfill(response=r, body=json.dumps(t), headers={**r.headers, "content-type": "application/json"})


def test_tuning_above_the_promise_tells_an_operator_to_tell_an_engineer(pages, station):
    with api(station, "operator") as c:
        for i in range(3):
            assert post_part(c, png_bytes(90 + 60 * i, seed=55200 + i), f"tune-{i}", line="LTune").status_code == 201
    said = {}
    for role in ("operator", "engineer"):
        p = pages(role=role)
        p.page.route("**/api/v1/models/*/tuning*", _above_promise)
        page = p.open("/app/tuning?product=cell", "#promise")
        said[role] = page.locator("#promise").inner_text()
    assert "Above the promise" in said["operator"], said
    assert "tell an engineer" in said["operator"] and "retrain with them" not in said["operator"], said
    assert "retrain with them." in said["engineer"], said


def test_the_general_defect_types_say_who_sets_a_products_own(pages, station):
    with api(station, "operator") as c:
        assert post_part(c, png_bytes(225, seed=55300), "types-general", line="LTypes").status_code == 201
    with api(station, "engineer") as c:
        assert c.get("/api/v1/products/cell/defect-types").json()["defect_types"] == [
            "scratch", "crack", "dent", "stain", "contamination", "other"]
    op = pages(role="operator").open("/app/review?queue=NG&line=LTypes&poll=600", "#types button")
    note = op.locator("#types-generic")
    expect(note).to_contain_text("general defect types")
    expect(note).to_contain_text("Ask an engineer")
    expect(note.locator("a")).to_have_attribute("href", "/app/models?product=cell#defect-types")
    eng = pages(role="engineer").open("/app/review?queue=NG&line=LTypes&poll=600", "#types button")
    expect(eng.locator("#types-generic")).to_contain_text("Set its own on the Models page, under Defect types")
    expect(eng.locator("#types-generic")).not_to_contain_text("Ask an engineer")


def test_a_review_the_station_did_not_answer_names_the_part_and_stays_marked(pages, station):
    with api(station, "operator") as c:
        ids = [post_part(c, png_bytes(230, seed=55400 + i), f"lost-answer-{i}", line="LLost").json()["id"]
               for i in range(2)]
    p = pages(role="operator")
    page = p.open("/app/review?queue=NG&line=LLost&poll=1", "#btn-good")
    seen(page)
    first = page.locator("#part-heading a").inner_text()
    first_id = ids[[f"lost-answer-{i}" for i in range(2)].index(first)]
    # the station down: the review never arrives, nor any other request (a page's poll that got
    # through took the message away, or was told it was not saved, before the test read it)
    page.route("**/api/v1/**", lambda route: route.abort())
    page.wait_for_timeout(700)          # past the moment a tap is taken for the part before (LG.settling)
    page.click("#btn-good")
    status = page.locator("#status")
    expect(status).to_contain_text(f"{first}: “good” may not have been saved")
    row = page.locator(f".queue li[data-id='{first_id}']")
    expect(row.locator(".unsure")).to_have_text(" not saved?")
    # back: the station says it was not saved; the mark stays until the part is judged again
    page.unroute("**/api/v1/**")
    expect(status).to_contain_text(f"{first} was not saved: judge it again")
    expect(row.locator(".unsure")).to_have_count(1)
    row.click()
    seen(page)
    page.wait_for_timeout(700)
    page.click("#btn-good")
    expect(status).to_contain_text(f"{first}: marked good")
    expect(row.locator(".unsure")).to_have_count(0)

    # the review reached the station, only its answer was lost (Wi-Fi dropping)
    second = [i for i in ids if i != first_id][0]
    page.locator(f".queue li[data-id='{second}']").click()
    seen(page)

    def lost_answer(route):
        route.fetch()
        route.abort()
    page.route("**/api/v1/**", lambda route: route.abort())       # as above, but for ...
    page.route("**/review", lost_answer)                            # ... the review, which arrives
    page.wait_for_timeout(700)          # past the moment a tap is taken for the part before (LG.settling)
    page.click("#btn-defect")
    expect(page.locator("#ask")).to_contain_text("Which defect?")
    page.wait_for_timeout(700)          # the types scrolled into sight: a moment to look (LG.settling)
    page.click("#btn-defect")
    expect(status).to_contain_text("may not have been saved")
    part = page.locator(f".queue li[data-id='{second}']")
    # (its mark may already be gone: the station's live event of the review can come first)
    page.unroute("**/review")
    page.unroute("**/api/v1/**")
    expect(status).to_contain_text("its review reached the station after all (defect by")
    expect(part.locator(".unsure")).to_have_count(0)
    expect(part).to_have_class(re.compile(r"\bdone\b"))
    with api(station, "operator") as c:
        assert c.get(f"/api/v1/inspections/{second}").json()["review"]["label"] == "defect"
