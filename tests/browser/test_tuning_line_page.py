"""The Tuning page for a product whose models are a line's (walk C: after `serve --line L1` every
version is L1's). The page sent the version chosen without its line: with the line field empty it
showed "no active model for product 'cell' on line ''", and "v3 (active) · L1" with Load gave "no
model version 3 for product 'cell'". The version's line now goes with it."""
from __future__ import annotations

import pytest

from .conftest import api, expect, fake_model_bytes, post_part, png_bytes


@pytest.fixture(scope="module")
def line_models(station):
    """Product 'bolt': three versions of line LB's model (v2 active), as `serve --line LB` makes
    them, and parts of LB reviewed."""
    with api(station, "engineer") as c:
        for n, t in ((1, 0.5), (2, 0.55), (3, 0.6)):
            r = c.post("/api/v1/models", files={"file": (f"bolt{n}.lgm", fake_model_bytes(t, f"bolt-{n}"))},
                       data={"product": "bolt", "line": "LB", "activate": "true" if n == 2 else "false"})
            assert r.status_code == 201, r.text
    with api(station, "operator") as c:
        for i, value in enumerate((40, 90, 130, 200)):
            r = post_part(c, png_bytes(value, seed=700 + i), f"B-{i:04d}", product="bolt", line="LB")
            assert r.status_code in (200, 201), r.text
            r = c.post(f"/api/v1/inspections/{r.json()['id']}/review",
                       json={"label": "good" if value < 150 else "defect"})
            assert r.status_code == 200, r.text
    return station


def test_a_lines_versions_are_tuned_from_the_page_without_typing_the_line(pages, line_models):
    p = pages(role="engineer")
    # the active version: LB's v2, the line field left empty
    page = p.open("/app/tuning?product=bolt", "#rates")
    expect(page.locator("#tuning-scope")).to_contain_text("bolt v2 on LB")
    expect(page.locator("#threshold-value")).to_have_text("0.5500")
    # another version of LB's, chosen from the list and loaded
    page.select_option("select[name=version]", label="v3 · LB")
    page.get_by_role("button", name="Load").click()
    expect(page.locator("#tuning-scope")).to_contain_text("bolt v3 on LB")
    expect(page.locator("#threshold-value")).to_have_text("0.6000")
    expect(page.locator("input[name=line]")).to_have_value("LB")
    assert "version=3" in page.url and "line=LB" in page.url
    # the address read back chooses the same version of the same line
    page.reload()
    expect(page.locator("#tuning-scope")).to_contain_text("bolt v3 on LB")
    expect(page.locator("select[name=version]")).to_have_value("3|LB")
    p.shot("tuning-line-version")


def test_the_score_histogram_is_readable_on_a_phone(pages, line_models):
    """Scaled down from its 900 units the histogram's text was 4 px high at 390 px; it is drawn
    at its box's width now, as the SPC charts are, and again for each threshold moved."""
    from .test_app_small_screens import CHART_TEXT, PHONE, _readable
    p = pages(role="engineer", viewport=PHONE, has_touch=True)
    page = p.open("/app/tuning?product=bolt", "#histogram svg.chart")
    _readable(page.evaluate(CHART_TEXT, "#histogram svg.chart"), 1)
    page.locator("input[type=range]").first.fill("0.7")
    expect(page.locator("#threshold-value")).not_to_have_text("0.5500")      # drawn again
    _readable(page.evaluate(CHART_TEXT, "#histogram svg.chart"), 1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
