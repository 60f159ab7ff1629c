"""The gallery finds one part by the id or serial a complaint gives: every inspection of it,
whatever the filters (an escape was judged OK; the gallery opens on NG), kept in the page's
address, said plainly when nothing has it, and usable at a phone's width. No page could find
a part by its id before."""
from __future__ import annotations

import re

from .conftest import api, expect, png_bytes, post_part

PHONE = {"width": 390, "height": 844}


def _send(station, part_id: str, value: int, seed: int, **extra) -> int:
    with api(station, "operator") as c:
        r = post_part(c, png_bytes(value, seed=seed), part_id, line="LFind", **extra)
        assert r.status_code == 201, r.text
        return r.json()["id"]


def test_a_part_id_from_a_complaint_finds_every_inspection_of_the_part(pages, station):
    first = _send(station, "complaint-0042", 220, 97100)       # NG
    second = _send(station, "complaint-0042", 30, 97101)       # reworked, passed: the escape complained of
    _send(station, "complaint-00421", 220, 97102)              # a longer id: not the same part
    _send(station, "other-part", 220, 97103)
    p = pages(role="operator")
    page = p.open("/app/gallery", "#gallery a.thumb")            # opens on the NG parts
    box = page.get_by_role("searchbox", name="part id or serial")
    box.fill(" complaint-0042 ")                                 # pasted from an e-mail, spaces and all
    box.press("Enter")                                           # the keyboard alone
    thumbs = page.locator("#gallery a.thumb")
    expect(thumbs).to_have_count(2)
    assert [int(x) for x in thumbs.evaluate_all("els => els.map(e => e.dataset.id)")] == [second, first]
    expect(page.locator("#gallery-count")).to_contain_text("2 inspection(s)")
    expect(page.locator("#gallery-count")).to_contain_text("complaint-0042")
    expect(page).to_have_url(re.compile(r"[?&]part=complaint-0042(&|$)"))
    p.shot("gallery-part-search")
    # the address keeps it: a reload (or the link sent to quality) shows the same part
    page.reload()
    expect(page.locator("#gallery a.thumb")).to_have_count(2)
    expect(page.get_by_role("searchbox", name="part id or serial")).to_have_value("complaint-0042")
    # an id nobody sent: said, not an empty page
    box = page.get_by_role("searchbox", name="part id or serial")
    box.fill("no-such-part-77")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#gallery-count")).to_contain_text("No part has the part id")
    expect(page.locator("#gallery-count")).to_contain_text("no-such-part-77")
    expect(page.locator("#gallery a.thumb")).to_have_count(0)
    # the box emptied: the filters again
    box.fill("")
    box.press("Enter")
    expect(page.locator("#gallery a.thumb").first).to_be_visible()
    expect(page).not_to_have_url(re.compile(r"[?&]part="))


def test_a_serial_finds_its_part_and_the_search_fits_a_phone(pages, station):
    found = _send(station, "find-by-serial-1", 30, 97200, serial="SN-88-7731")
    _send(station, "find-by-serial-2", 30, 97201, serial="SN-88-7732")
    p = pages(role="operator", viewport=PHONE, has_touch=True)
    page = p.open("/app/gallery?part=find-by-serial-1", "#gallery a.thumb")
    expect(page.locator("#gallery a.thumb")).to_have_count(1)
    # readable at a phone's width: the box on screen, the page not wider than the phone
    search = page.get_by_role("searchbox", name="part id or serial")
    expect(search).to_be_in_viewport(ratio=1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    p.shot("gallery-part-search-phone")
    search.fill("SN-88-7731")
    search.press("Enter")
    thumbs = page.locator("#gallery a.thumb")
    expect(thumbs).to_have_count(1)
    expect(thumbs).to_have_attribute("data-id", str(found))
    expect(thumbs).to_contain_text("find-by-serial-1")
