"""The part page of a part id sent again with another photo (rework, or a repeated id): it says
how many times the part was inspected, links the others, and tells the operator on an old
record that a newer verdict stands (the page showed one inspection, with no hint of the others)."""
from __future__ import annotations

from .conftest import api, expect, png_bytes, post_part


def _send(station, part_id: str, value: int, seed: int) -> int:
    with api(station, "operator") as c:
        r = post_part(c, png_bytes(value, seed=seed), part_id, line="LReinsp")
        assert r.status_code == 201, r.text
        return r.json()["id"]


def test_an_old_inspection_of_a_reworked_part_says_a_newer_one_stands_and_links_it(pages, station):
    first = _send(station, "rework-page-1", 220, 98800)      # NG
    second = _send(station, "rework-page-1", 30, 98801)      # reworked: OK
    p = pages(role="operator")
    page = p.open(f"/app/parts/{first}", "#part-defect")
    expect(page.locator("#not-latest")).to_contain_text(f"inspection {second} is newer")
    expect(page.locator("#inspected-times")).to_contain_text("Inspected 2 times on line LReinsp")
    p.shot("part-reinspected-old")
    page.locator("#inspected-times a").click()
    expect(page).to_have_url(f"{station.url}/app/parts/{second}")
    expect(page.locator("#inspected-times")).to_contain_text(f"#{first} NG at S1")
    expect(page.locator("#not-latest")).to_have_count(0)         # the latest: no warning
    # a part inspected once, as nearly every part is: nothing more on its page
    once = _send(station, "one-off-page-1", 30, 98810)
    page = p.open(f"/app/parts/{once}", "#part-defect")
    expect(page.locator("#verdict")).to_have_text("OK")
    expect(page.locator("#part-history")).to_have_count(0)

