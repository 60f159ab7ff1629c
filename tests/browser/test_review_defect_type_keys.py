"""The review queue's "Which defect?" answered: once D asked for the defect's type, pressing a
type's number (or tapping its button) saves the defect with that type at once and goes on to
the next part, as G and D do. The number only highlighted the type before: the part stayed
unreviewed under the same question, a second press unchose it and the D after saved the defect
with no type, and moving on left the part unreviewed without a word."""
from __future__ import annotations

from .conftest import clock_on, clock_still, expect, api, png_bytes, post_part, seen


def _parts(station, line: str, n: int, seed: int) -> list[int]:
    """n NG parts (bright: the fake model fails them), the last posted first in the queue."""
    with api(station, "operator") as c:
        return [post_part(c, png_bytes(220, seed=seed + i), f"{line.lower()}-{i}", line=line).json()["id"]
                for i in range(n)]


def _types(station) -> list[str]:
    with api(station, "operator") as c:
        types = c.get("/api/v1/products/cell/defect-types").json()["defect_types"]
    assert len(types) >= 3, types
    return types


def _review(station, part: int) -> tuple[bool, str, str]:
    with api(station, "operator") as c:
        got = c.get(f"/api/v1/inspections/{part}").json()
    return got["review"]["reviewed"], got["review"]["label"], got["defect_type"]


def test_a_type_pressed_after_d_asked_saves_the_defect_with_it_and_goes_on(pages, station):
    ids = _parts(station, "LKeyType", 3, 97100)
    types = _types(station)
    p = pages(role="operator")
    page = p.open("/app/review?queue=todo&line=LKeyType&poll=600", "#current h2")
    expect(page.locator("#current h2")).to_contain_text("lkeytype-2")
    seen(page)
    page.keyboard.press("d")
    expect(page.locator("#ask")).to_contain_text("Which defect?")
    page.keyboard.press("2")              # the answer: saved as the second type, at once
    expect(page.locator("#current h2")).to_contain_text("lkeytype-1")
    expect(page.locator("#ask")).to_have_text("")
    expect(page.locator("#status")).to_contain_text(f"lkeytype-2: defect confirmed ({types[1]})")
    assert _review(station, ids[2]) == (True, "defect", types[1])
    # no type carried over to the next part
    expect(page.locator("#types button.on")).to_have_count(0)
    # a type chosen before D: D saves the defect with it, nothing asked
    seen(page)
    page.keyboard.press("3")
    expect(page.locator("#types button.on")).to_have_text(f"3 {types[2]}")
    page.keyboard.press("d")
    expect(page.locator("#current h2")).to_contain_text("lkeytype-0")
    assert _review(station, ids[1]) == (True, "defect", types[2])
    # the keys help says what a number does after D asked
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_contain_text("after D asked which defect: saves it as that type")


def test_a_type_tapped_after_defect_asked_saves_it_and_a_tap_in_the_moment_after_is_not_taken(pages, station):
    ids = _parts(station, "LTapType", 2, 97300)
    types = _types(station)
    p = pages(role="operator", viewport={"width": 1280, "height": 800}, has_touch=True)
    page = p.open("/app/review?queue=todo&line=LTapType&poll=600", "#current h2")
    seen(page)
    # the page's clock still: a tap right after the question came later than 600 ms on a loaded machine
    clock_still(page)
    page.click("#btn-defect")
    expect(page.locator("#ask")).to_contain_text("Which defect?")
    # the question brought the types under the finger: a tap straight after was aimed elsewhere
    page.locator("#types button").nth(1).click()
    expect(page.locator("#status")).to_contain_text("just changed")
    expect(page.locator("#current h2")).to_contain_text("ltaptype-1")
    assert _review(station, ids[1])[0] is False
    clock_on(page, 0.7)                        # looked: the type tapped on purpose
    page.locator("#types button").nth(1).click()
    expect(page.locator("#current h2")).to_contain_text("ltaptype-0")
    assert _review(station, ids[1]) == (True, "defect", types[1])


def test_moving_on_with_the_type_asked_says_the_part_was_not_saved_and_d_twice_saves_it_untyped(pages, station):
    ids = _parts(station, "LLeft", 2, 97400)
    p = pages(role="operator")
    page = p.open("/app/review?queue=todo&line=LLeft&poll=600", "#current h2")
    seen(page)
    page.keyboard.press("d")
    expect(page.locator("#ask")).to_contain_text("Which defect?")
    page.keyboard.press("j")                   # on to the next part, the question unanswered
    expect(page.locator("#current h2")).to_contain_text("lleft-0")
    expect(page.locator("#status")).to_contain_text("lleft-1: defect not saved (its type was asked for, none given)"
                                                    ": still not reviewed")
    assert _review(station, ids[1])[0] is False
    page.keyboard.press("k")                   # back: the question is asked again, not taken as answered
    expect(page.locator("#current h2")).to_contain_text("lleft-1")
    seen(page)
    page.keyboard.press("d")
    expect(page.locator("#ask")).to_contain_text("Which defect?")
    # the question says what the next key does: a type saves, D saves with no type
    expect(page.locator("#ask")).to_contain_text("Tap its type or press its key (1-")
    expect(page.locator("#ask")).to_contain_text("to save it as that type; Defect (D) again saves it with no type")
    assert _review(station, ids[1])[0] is False
    page.keyboard.press("d")                   # D again: saved with no type, as the question says
    expect(page.locator("#current h2")).to_contain_text("lleft-0")
    expect(page.locator("#ask")).to_have_text("")
    assert _review(station, ids[1]) == (True, "defect", None)
