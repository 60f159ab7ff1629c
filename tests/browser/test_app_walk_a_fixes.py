"""What a walk of the operator app at tablet and phone size found: a tap on a hung station
showed nothing (no "saving", a second tap dropped unsaid) and the gallery went blank; on a
phone "may not have been saved" went above the screen; the gallery called an OK part
confirmed good a "false alarm" and an escape a plain "defect"; Back lost the queue's part and
note and the gallery's older pages and place; an audit sample with no part drawn read as one
reviewed; the part page asked a photo-doubted part about a "false alarm"; a record number no
part has left the page blank; an unknown verdict in the address was passed over."""
from __future__ import annotations

from .conftest import api, expect, png_bytes, post_part, seen
from .test_review_photo_issues import activate_dim_floor_model

TABLET = {"width": 768, "height": 1024}
PHONE = {"width": 390, "height": 844}
BRIGHT, DARK = 220, 40        # the fake model: bright parts NG, dark ones OK


def _parts(station, line: str, n: int, seed: int, level: int = BRIGHT) -> list[dict]:
    with api(station, "operator") as c:
        out = []
        for i in range(n):
            r = post_part(c, png_bytes(level, seed=seed + i), f"{line.lower()}-{i}", line=line)
            assert r.status_code in (200, 201), r.text
            out.append(r.json())
    return out


def _review(station, rec: dict, label: str, defect_type=None) -> None:
    with api(station, "operator") as c:
        r = c.post(f"/api/v1/inspections/{rec['id']}/review", json={"label": label, "defect_type": defect_type})
        assert r.status_code == 200, r.text


def test_a_review_on_a_hung_station_says_saving_and_a_second_tap_is_answered(pages, station):
    _parts(station, "LHung", 2, 99100)
    p = pages(role="operator", viewport=TABLET, has_touch=True)
    page = p.open("/app/review?queue=todo&line=LHung&poll=600", "#current h2")
    expect(page.locator("#current h2")).to_contain_text("lhung-1")
    seen(page)
    held = []       # the station hangs: the review request gets no answer until let go

    def hang(route):
        if route.request.method == "POST" and not held:
            held.append(route)
        else:
            route.continue_()
    page.route("**/api/v1/inspections/*/review", hang)
    page.keyboard.press("g")
    expect(page.locator("#status")).to_contain_text("Saving lhung-1")
    expect(page.locator("#btn-good")).to_contain_text("saving…")
    expect(page.locator("#btn-good")).to_have_class("good saving")
    # no answer for a few seconds: said beside the buttons, the part named
    expect(page.locator("#ask")).to_contain_text("The station has not answered for", timeout=15_000)
    expect(page.locator("#ask")).to_contain_text("the review of lhung-1 may not be saved yet")
    page.tap("#btn-good")               # the second tap, seconds after the first: answered, not dropped
    expect(page.locator("#ask")).to_contain_text("Still saving the last review (lhung-1)")
    expect(page.locator("#current h2")).to_contain_text("lhung-1")
    assert len(held) == 1               # one review on its way, not two
    held[0].continue_()
    expect(page.locator("#status")).to_contain_text("lhung-1: marked good")
    expect(page.locator("#current h2")).to_contain_text("lhung-0")
    expect(page.locator("#ask")).to_have_text("")
    expect(page.locator("#btn-good")).not_to_contain_text("saving")


def test_the_gallery_says_it_is_loading_and_that_a_hung_station_is_slow(pages, station):
    p = pages(role="operator", viewport=TABLET, has_touch=True)
    held, let_go = [], []

    def hang(route):
        if let_go:
            route.continue_()
        else:
            held.append(route)
    p.page.route(lambda url: "/api/v1/inspections?" in url, hang)
    p.page.goto("/app/gallery?verdict=any")
    count = p.page.locator("#gallery-count")
    expect(count).to_contain_text("loading…")
    expect(count).to_contain_text("The station is slow to answer (", timeout=15_000)
    let_go.append(True)
    for route in held:
        route.continue_()
    expect(count).not_to_contain_text("loading")       # answered: the count, or "No parts match"
    expect(count).to_contain_text("part")


def test_on_a_phone_scrolled_down_a_review_that_may_not_be_saved_is_said_on_screen(pages, station):
    _parts(station, "LLost", 1, 99200)
    p = pages(role="operator", viewport=PHONE, has_touch=True)
    page = p.open("/app/review?queue=todo&line=LLost&poll=600", "#current h2")
    seen(page)
    page.evaluate("window.scrollTo(0, 600)")
    page.wait_for_function("() => window.scrollY > 300")
    page.route("**/api/v1/inspections/*/review", lambda route: route.abort())     # the station stopped
    page.keyboard.press("g")
    ask = page.locator("#ask")
    expect(ask).to_contain_text("llost-0: “good” may not have been saved")
    expect(ask).to_be_in_viewport()
    assert page.evaluate("window.scrollY") > 300          # where the operator was, not sent to the top


def test_a_gallery_card_says_a_review_s_outcome_as_the_export_does(pages, station):
    ok_good, ok_escape = _parts(station, "LOutc", 2, 99300, level=DARK)
    ng_good, = _parts(station, "LOutd", 1, 99310)
    _review(station, ok_good, "good")
    _review(station, ok_escape, "defect", "scratch")
    _review(station, ng_good, "good")
    page = pages(role="operator").open("/app/gallery?verdict=any&line=LOutc", "#gallery a.thumb")
    card = lambda rec: page.locator(f'#gallery a.thumb[data-id="{rec["id"]}"]')     # noqa: E731
    expect(card(ok_good)).to_contain_text("confirmed good")
    expect(card(ok_good)).not_to_contain_text("false alarm")
    expect(card(ok_escape)).to_contain_text("escape (a missed defect): scratch")
    page = pages(role="operator").open("/app/gallery?verdict=any&line=LOutd", "#gallery a.thumb")
    expect(card(ng_good)).to_contain_text("false reject")


def test_back_from_a_part_comes_back_on_the_queue_s_part_with_its_note(pages, station):
    _parts(station, "LPlace", 8, 99400)
    p = pages(role="operator", viewport=TABLET, has_touch=True)
    page = p.open("/app/review?queue=todo&line=LPlace&poll=600", "#current h2")
    for k in range(5):
        expect(page.locator("#current h2")).to_contain_text(f"lplace-{7 - k}")
        page.click("#btn-next")
    h2 = page.locator("#current h2")
    expect(h2).to_contain_text("lplace-2")
    expect(page.locator("#position")).to_contain_text("6 of 8")
    page.fill("#note", "burr at the lower edge")
    page.click("#current h2 a")
    page.wait_for_selector("#verdict")
    page.go_back()
    expect(page.locator("#current h2")).to_contain_text("lplace-2")
    expect(page.locator("#position")).to_contain_text("6 of 8")
    expect(page.locator("#note")).to_have_value("burr at the lower edge")
    # a Load asked for starts at the queue's top
    page.get_by_role("button", name="Load").click()
    expect(page.locator("#current h2")).to_contain_text("lplace-7")


def test_back_from_a_part_keeps_the_gallery_s_older_pages_and_place(pages, station):
    _parts(station, "LPages", 60, 99500)
    p = pages(role="operator")
    page = p.open("/app/gallery?verdict=any&line=LPages", "#gallery a.thumb")
    thumbs = page.locator("#gallery a.thumb")
    expect(thumbs).to_have_count(48)
    page.get_by_role("button", name="Older parts").click()
    expect(thumbs).to_have_count(60)
    target = thumbs.nth(55)
    target.scroll_into_view_if_needed()
    page.wait_for_function("() => window.scrollY > 300")
    y = page.evaluate("window.scrollY")
    target_id = target.get_attribute("data-id")
    target.click()
    page.wait_for_selector("#verdict")
    page.go_back()
    expect(thumbs).to_have_count(60)
    page.wait_for_function(f"() => Math.abs(window.scrollY - {y}) < 5")
    expect(page.locator(f'#gallery a.thumb[data-id="{target_id}"]')).to_be_in_viewport()


def test_an_audit_queue_with_no_part_drawn_says_so(pages, station):
    page = pages(role="operator").open("/app/review?queue=AUDIT&line=LNoAudit&poll=600", "#queue-empty")
    expect(page.locator("#queue-empty")).to_contain_text("No part of the audit sample here yet on line LNoAudit")
    expect(page.locator("#queue-empty")).not_to_contain_text("every one is reviewed")


def test_the_part_page_asks_a_part_sent_to_review_for_its_photo_in_the_queue_s_words(pages, station):
    activate_dim_floor_model(station, "lampa")
    with api(station, "operator") as c:
        dim = post_part(c, png_bytes(8, seed=99601), "lampa-dim", product="lampa", line="LPhA").json()
        bright = post_part(c, png_bytes(220, seed=99602), "lampa-ng", product="lampa", line="LPhA").json()
    assert dim["verdict"] == "REVIEW" and dim["photo_issues"], dim
    page = pages(role="operator").open(f"/app/parts/{dim['id']}", "#part-defect")
    judge = page.locator("#part-defect").locator("xpath=..").get_by_role("button")
    expect(judge).to_have_text(["Part is good", "Part has a defect"])
    page = pages(role="operator").open(f"/app/parts/{bright['id']}", "#part-defect")     # NG: its words stay
    judge = page.locator("#part-defect").locator("xpath=..").get_by_role("button")
    expect(judge).to_have_text(["False alarm: good", "Confirm defect"])


def test_a_record_number_no_part_has_gets_a_page_that_says_so(pages, station):
    page = pages(role="operator").open("/app/parts/999999", "#main h1")
    expect(page.locator("#part-not-found")).to_have_text("No part with record number 999999")
    expect(page.locator("#main").get_by_role("link", name="Gallery")).to_be_visible()


def test_a_verdict_in_the_gallery_address_is_read_in_any_case_and_an_unknown_one_said(pages, station):
    page = pages(role="operator").open("/app/gallery?verdict=ng", "#gallery-count:not(:empty)")
    expect(page.locator("select[name=verdict]")).to_have_value("NG")
    page = pages(role="operator").open("/app/gallery?verdict=bogus", "#gallery-count:not(:empty)")
    expect(page.locator("#status")).to_contain_text("verdict 'bogus' is not OK, NG or REVIEW: showing every verdict")
    expect(page.locator("select[name=verdict]")).to_have_value("")


def test_the_region_boxes_checkbox_is_a_finger_s_tap_target(pages, station):
    rec, = _parts(station, "LBox", 1, 99700)
    page = pages(role="operator", viewport=TABLET, has_touch=True).open(f"/app/parts/{rec['id']}", "#viewer")
    label = page.locator("label", has_text="region boxes")
    check = label.locator("input[type=checkbox]")
    box, tick = label.bounding_box(), check.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44, box
    # 44 px around the box itself, its label 10 px beyond it on each side (the box was the
    # label's left edge: a finger landing just left of it hit nothing)
    assert tick["x"] - box["x"] >= 10 and tick["y"] - box["y"] >= 9, (box, tick)
    assert box["y"] + box["height"] - (tick["y"] + tick["height"]) >= 9, (box, tick)
    label.tap(position={"x": 3, "y": box["height"] / 2})         # the label's far left toggles it
    expect(check).not_to_be_checked()
