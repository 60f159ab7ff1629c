"""The test-part pages: an engineer registers a red rabbit, the line view raises the alarm
when it passes as OK (and links the parts in doubt), and clears once it is rejected; the
line's counters never count it."""
from __future__ import annotations

import re

from .conftest import api, expect, post_part, png_bytes


def test_a_red_rabbit_that_passes_raises_the_alarm_and_links_the_parts_in_doubt(pages, station):
    eng = pages(role="engineer")
    page = eng.open("/app/testparts?product=cell", "#add-test-part")
    # none registered yet: the form is below on this very page, not on "the Test parts page"
    expect(page.locator("#verification")).to_contain_text("(register them below)")
    form = page.locator("#add-test-part")
    form.locator('input[name="name"]').fill("RR-9")
    form.locator('select[name="expect"]').select_option("NG")
    form.locator('input[name="description"]').fill("crack 0.3 mm")
    form.locator('button[type="submit"]').click()
    expect(page.locator('#test-parts tr[data-test-part="RR-9"]')).to_contain_text("crack 0.3 mm")
    eng.shot("test-parts")
    # the same name again as "must be OK": the red rabbit would be made to pass; asked first
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    form.locator('input[name="name"]').fill("RR-9")
    form.locator('select[name="expect"]').select_option("OK")
    form.locator('button[type="submit"]').click()
    expect(page.locator('#test-parts tr[data-test-part="RR-9"] .badge')).to_have_text("NG")
    assert asked and "registered already and must be NG" in asked[0]
    with api(station, "engineer") as c:
        (rr,) = [t for t in c.get("/api/v1/products/cell/test-parts").json()["items"] if t["name"] == "RR-9"]
    assert rr["expect"] == "NG"

    with api(station, "operator") as c:
        assert post_part(c, png_bytes(60, seed=901), "own-1", line="L9").status_code == 201
    op = pages(role="operator")
    line = op.open("/app/", "#live.v-ok")
    row = line.locator('#verification-panel tr[data-line="L9"]')
    expect(row).to_have_attribute("data-state", "due")
    # the lamp died: the red rabbit (scanned serial RR-9) comes through dark, judged OK
    with api(station, "operator") as c:
        assert post_part(c, png_bytes(60, seed=902), "scan-77", line="L9", serial="RR-9").status_code == 201
    expect(row).to_have_attribute("data-state", "failed")
    expect(line.locator("#verification-panel")).to_have_class(re.compile(r"\balarm\b"))
    expect(row).to_contain_text("RR-9 got OK, must be NG")
    card = line.locator('section.station-card[data-line="L9"]')
    expect(card.locator('[data-counter="parts"]')).to_have_text("1")     # the test part is not a part made
    op.shot("line-view-test-part-failed")
    # the parts in doubt: the line's own OK parts since RR-9 was last right (never: all of them)
    row.get_by_role("link", name=re.compile("OK part.* in doubt")).click()
    expect(line.locator("#gallery a.thumb")).to_have_count(1)
    expect(line.locator("#gallery")).to_contain_text("own-1")

    with api(station, "operator") as c:
        assert post_part(c, png_bytes(200, seed=903), "scan-78", line="L9", serial="RR-9").status_code == 201
    line = op.open("/app/", "#live.v-ok")
    row = line.locator('#verification-panel tr[data-line="L9"]')
    expect(row).to_have_attribute("data-state", "passed")
    expect(row).to_contain_text("right again")        # the failure stays on the shift's record
    # the gallery shows test parts apart, marked
    gal = op.open("/app/gallery?verdict=&test_parts=true", "#gallery a.thumb")
    expect(gal.locator("#gallery a.thumb")).to_have_count(2)
    expect(gal.locator("#gallery")).to_contain_text("test part RR-9: must be NG")
    # an operator sees the test parts, not the form that registers them
    tp = op.open("/app/testparts?product=cell", '#test-parts tr[data-test-part="RR-9"]')
    expect(tp.locator("#add-test-part")).to_be_hidden()


def test_a_long_test_part_name_wraps_and_a_double_click_registers_once(pages, station):
    from .conftest import fake_model_bytes
    with api(station, "engineer") as c:      # a product of its own: the other tests' lines are not asked for it
        r = c.post("/api/v1/models", files={"file": ("w.lgm", fake_model_bytes(0.5))},
                   data={"product": "widecell", "activate": "true"})
        assert r.status_code == 201, r.text
    eng = pages(role="engineer", viewport={"width": 1280, "height": 800})
    page = eng.open("/app/testparts?product=widecell", "#add-test-part")
    name = "SN" + "7" * 198                      # a serial of 200 characters, no space to break at
    form = page.locator("#add-test-part")
    form.locator('input[name="name"]').fill(name)
    form.locator('button[type="submit"]').dblclick()
    expect(page.locator("#status")).to_contain_text("registered")
    expect(page.locator(f'#test-parts tr[data-test-part="{name}"]')).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280      # the page does not widen
    with api(station, "engineer") as c:
        log = c.get("/api/v1/change-log", params={"subject": f"widecell {name}"}).json()["items"]
    assert [e["action"] for e in log] == ["test_part.registered"]           # one, not two
