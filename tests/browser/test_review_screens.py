"""The review queue on the screens a plant has: a 1024x768 panel PC, a tablet held upright, a
phone. The part's photo and its Good / Defect are on screen together without scrolling, and
neither button judges a part whose photo has not arrived."""
from __future__ import annotations

import pytest

from .conftest import expect, api, png_bytes, post_part, seen, page_answered

SCREENS = [
    ("operator", 1024, 768),     # the commonest panel PC
    ("operator", 1024, 600),     # a short one
    ("operator", 800, 1100),     # a tablet held upright
    ("operator", 834, 1194),     # a larger one: the list beside the part left Good below the screen
    ("admin", 800, 1100),        # ... under an admin's longer menu
    ("admin", 390, 844),         # a phone
    ("operator", 844, 390),      # a phone on its side: the buttons at least
]


def _box_in_screen(page, selector: str, width: int, height: int) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (selector, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= height + 1, (selector, box)


@pytest.mark.parametrize("role,width,height", SCREENS)
def test_the_part_and_its_good_and_defect_are_on_screen_together(pages, station, role, width, height):
    with api(station, "operator") as c:
        for i in range(3):
            post_part(c, png_bytes(220, seed=940 + i), f"fit-{i}", line="LFit")
    p = pages(role=role, viewport={"width": width, "height": height}, has_touch=True)
    page = p.open("/app/review?queue=todo&line=LFit&poll=600", "#current h2")
    seen(page)
    page.keyboard.press("j")                   # the list follows the part; the page does not scroll
    expect(page.locator("#current h2")).to_contain_text("fit-1")
    seen(page)
    assert page.evaluate("window.scrollY") == 0
    for selector in ("#part-image", "#btn-good", "#btn-defect") if height > 400 else ("#btn-good", "#btn-defect"):
        _box_in_screen(page, selector, width, height)
    # the photo no higher than the buttons: not hidden under them
    photo, good = page.locator("#part-image").bounding_box(), page.locator("#btn-good").bounding_box()
    assert photo["y"] < good["y"] or photo["x"] + photo["width"] <= good["x"], (photo, good)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # the menu a row at most on a phone, the page the person is on in sight in it
    current = page.locator("#nav a.current")
    nav = page.locator("#nav").bounding_box()
    here = current.bounding_box()
    assert here["x"] >= nav["x"] - 1 and here["x"] + here["width"] <= nav["x"] + nav["width"] + 1
    if width < 600:
        assert page.locator("header#top").bounding_box()["height"] <= 110
    p.shot(f"review-{role}-{width}x{height}")


def test_good_and_defect_wait_for_the_part_photo(pages, station):
    with api(station, "operator") as c:
        ids = [post_part(c, png_bytes(221, seed=950 + i), f"unseen-{i}", line="LUnseen").json()["id"]
               for i in range(2)]
    p = pages(role="operator", viewport={"width": 1280, "height": 800}, has_touch=True)
    page = p.page
    held = []
    page.route(f"**/inspections/{ids[1]}/overlay*", lambda route: held.append(route))    # a slow network
    page.route(f"**/inspections/{ids[0]}/overlay*", lambda route: route.abort())         # a photo lost
    p.open("/app/review?queue=todo&line=LUnseen&poll=600", "#current h2")
    expect(page.locator("#current h2")).to_contain_text("unseen-1")
    expect(page.locator("#btn-good")).to_be_disabled()
    expect(page.locator("#btn-defect")).to_be_disabled()
    reviews = []                               # the reviews the page sent
    page.on("request", lambda r: reviews.append(r.url) if r.method == "POST" and r.url.endswith("/review") else None)
    page.keyboard.press("g")
    expect(page.locator("#ask")).to_contain_text("still loading")
    # a request the page makes after the G, answered: a review sent at the G went before it
    # (the station read 300 ms on missed one it took long to save)
    page_answered(page)
    assert reviews == [], reviews
    assert held, "the photo was asked for"
    held[0].continue_()
    seen(page)
    page.wait_for_timeout(700)                 # the photo arriving moved things: a look, then the tap
    page.click("#btn-good")
    expect(page.locator("#current h2")).to_contain_text("unseen-0")
    # a photo that cannot be loaded says so, and the part is judged from its score and facts
    expect(page.locator("#part-image")).to_contain_text("could not be loaded")
    seen(page)
    with api(station, "operator") as c:
        assert c.get(f"/api/v1/inspections/{ids[1]}").json()["review"]["label"] == "good"
        assert c.get(f"/api/v1/inspections/{ids[0]}").json()["review"]["reviewed"] is False
    assert len(reviews) == 1, reviews          # the Good's, once


def test_which_defect_on_a_phone_brings_the_types_into_sight(pages, station):
    # the question at the screen's foot asked for a type whose buttons were below it
    with api(station, "operator") as c:
        post_part(c, png_bytes(220, seed=960), "which-0", line="LWhich")
    p = pages(role="operator", viewport={"width": 390, "height": 844}, has_touch=True)
    page = p.open("/app/review?queue=todo&line=LWhich&poll=600", "#current h2")
    seen(page)
    page.wait_for_timeout(700)
    page.tap("#btn-defect")
    expect(page.locator("#ask")).to_contain_text("Which defect?")
    page.wait_for_timeout(300)
    types, bar = page.locator("#types").bounding_box(), page.locator(".judge-bar").bounding_box()
    assert types["y"] >= 0 and types["y"] + types["height"] <= bar["y"] + 1, (types, bar)
    assert page.locator("#btn-good").inner_text() == "False alarm: good"     # no keyboard hint on a touch panel


def test_the_audit_list_holds_the_random_sample_s_ok_parts_and_spc_reports_their_escapes(pages, station):
    # OK parts (dark: the fake model passes them), two of them drawn into the audit sample
    # (2% of photos, by their hash) and two not
    import hashlib
    from lineguard.line.station import in_audit_sample
    drawn, others = [], []
    for seed in range(5000):
        data = png_bytes(40, seed=96000 + seed)
        into = drawn if in_audit_sample(hashlib.sha256(data).hexdigest(), 0.02) else others
        if len(into) < 2:
            into.append(data)
        if len(drawn) == 2 and len(others) == 2:
            break
    with api(station, "operator") as c:
        ids = {name: post_part(c, data, name, line="LAudit").json()["id"]
               for name, data in [("sample-0", drawn[0]), ("picked-0", others[0]),
                                  ("sample-1", drawn[1]), ("picked-1", others[1])]}
        assert c.get(f"/api/v1/inspections/{ids['sample-0']}").json()["audit_sample"] is True
    p = pages(role="operator", viewport={"width": 1280, "height": 800})
    page = p.open("/app/review?queue=AUDIT&line=LAudit&poll=600", "#current h2")
    options = page.locator("#queue [role=option]")
    expect(options).to_have_count(2)
    expect(options.nth(0)).to_contain_text("sample-1")
    expect(options.nth(1)).to_contain_text("sample-0")
    seen(page)
    page.keyboard.press("d")          # a missed defect: an escape
    page.keyboard.press("d")          # no type asked for: saved untyped
    expect(page.locator("#current h2")).to_contain_text("sample-0")
    seen(page)
    page.keyboard.press("g")
    # saved before the page is left (leaving at once lost the review on a loaded machine)
    expect(page.locator("#status")).to_contain_text("sample-0: marked good")
    with api(station, "operator") as c:
        r = c.post(f"/api/v1/inspections/{ids['picked-0']}/review", json={"label": "defect"})
        assert r.status_code == 200, r.text
    spc = p.open("/app/spc?line=LAudit&by=day", "#review-rates")
    expect(spc.locator("[data-rate=escape_audit]")).to_contain_text("1 of 2 OK parts of the audit sample")
    expect(spc.locator("[data-rate=escape]")).to_contain_text("2 of 3 OK parts reviewed")
