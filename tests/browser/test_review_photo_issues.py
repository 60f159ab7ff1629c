"""A part the photo check sent to review (its score passed, its photo is unlike the good
photos the model learnt from): the review card says so before anything else, in the part
page's words, and asks about the part as the photo shows it, not about a false alarm."""
from __future__ import annotations

from .conftest import api, expect, png_bytes, post_part, seen
from server.conftest import fake_model_bytes


def activate_dim_floor_model(station, product: str) -> None:
    """An active model of ``product`` whose good photos were no darker than 0.1: a darker
    photo is REVIEW for the photo itself, whatever its score."""
    with api(station, "engineer") as c:
        r = c.post("/api/v1/models", files={"file": (f"{product}.lgm", fake_model_bytes(photo_floor=0.1))},
                   data={"product": product, "activate": "true"})
        assert r.status_code == 201, r.text


def _on_screen(page, selector: str, width: int, height: int) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert 0 <= box["x"] and box["x"] + box["width"] <= width + 1, (selector, box)
    assert 0 <= box["y"] and box["y"] + box["height"] <= height + 1, (selector, box)


def test_a_part_sent_to_review_for_its_photo_says_so_on_the_review_card(pages, station):
    activate_dim_floor_model(station, "lamp")
    with api(station, "operator") as c:
        bright = post_part(c, png_bytes(220, seed=3100), "lamp-ng", product="lamp", line="LPh")
        assert bright.json()["verdict"] == "NG" and not bright.json()["photo_issues"], bright.text
        dim = post_part(c, png_bytes(8, seed=3101), "lamp-dim", product="lamp", line="LPh")   # the lamp went out
        assert dim.json()["verdict"] == "REVIEW" and dim.json()["photo_issues"], dim.text
    width, height = 1024, 600                 # the short panel PC: the buttons still on screen
    p = pages(role="operator", viewport={"width": width, "height": height}, has_touch=True)
    page = p.open("/app/review?queue=todo&line=LPh&poll=600", "#current h2")
    expect(page.locator("#current h2")).to_contain_text("lamp-dim")
    seen(page)
    why = page.locator("#photo-issues")
    expect(why).to_be_visible()
    # what is off, as the part page says it
    expect(why).to_contain_text("Photo: unlike the good photos the model learnt from (not passed on its score): "
                                + dim.json()["photo_issues"][0])
    expect(why).to_contain_text("Judge the part itself as the photo shows it")
    expect(why).to_contain_text("have the camera and the lamp looked at")     # a run of them: not the parts
    # the part is judged as the photo shows it, not as a false alarm of the model
    expect(page.locator("#btn-good")).to_contain_text("Part is good")
    expect(page.locator("#btn-defect")).to_contain_text("Part has a defect")
    expect(page.locator(f'#queue li[data-id="{dim.json()["id"]}"] .photo-flag')).to_be_visible()
    for selector in ("#part-image", "#photo-issues", "#btn-good", "#btn-defect"):
        _on_screen(page, selector, width, height)
    p.shot("review-photo-issues")
    page.keyboard.press("j")                  # a part rejected on its score alone: asked as before
    expect(page.locator("#current h2")).to_contain_text("lamp-ng")
    seen(page)
    expect(page.locator("#photo-issues")).to_have_count(0)
    expect(page.locator("#btn-good")).to_contain_text("False alarm: good")
    expect(page.locator("#btn-defect")).to_contain_text("Confirm defect")
    page.keyboard.press("k")
    expect(page.locator("#current h2")).to_contain_text("lamp-dim")
    seen(page)
    page.wait_for_timeout(700)                # a person reads the card first (a tap at once is a double tap's)
    page.locator("#btn-good").click()
    expect(page.locator("#status")).to_contain_text("lamp-dim: marked good")
    with api(station, "operator") as c:
        assert c.get(f"/api/v1/inspections/{dim.json()['id']}").json()["review"]["label"] == "good"
