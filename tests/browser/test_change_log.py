"""The change log page: an engineer sees who changed what, filters it, and takes the CSV;
an operator has no such page in the navigation."""
from __future__ import annotations

from .conftest import api, expect


def test_the_change_log_lists_filters_and_exports(pages, station):
    with api(station, "engineer") as c:
        assert c.put("/api/v1/products/cell/defect-types", json={"defect_types": ["crack", "dent"]}).status_code == 200
        assert c.post("/api/v1/products/cell/test-parts", json={"name": "RR-5", "expect": "NG"}).status_code == 200
    eng = pages(role="engineer")
    page = eng.open("/app/changes", "#changes table")
    rows = page.locator("#changes tbody tr")
    expect(rows.first).to_have_attribute("data-action", "test_part.registered")     # newest first
    expect(rows.first).to_contain_text("cell RR-5")
    expect(rows.first).to_contain_text("test-engineer")
    expect(page.locator('#changes tr[data-action="product.defect_types"]')).to_contain_text('["crack","dent"]')
    expect(page.locator('#changes tr[data-action="model.activated"]')).to_contain_text("cell/* v1")
    # the station's start, with every setting it ran with folded away
    start = page.locator('#changes tr[data-action="station.settings"]')
    expect(start).to_contain_text("serve on ")
    expect(start.locator("details.settings")).not_to_have_attribute("open", "")
    expect(start.get_by_text("backup_to:")).to_be_hidden()
    start.locator("details.settings summary").click()
    expect(start.get_by_text("backup_to:")).to_be_visible()
    page.locator('select[name="action"]').select_option("test_part")
    page.locator('#filters button[type="submit"]').click()
    expect(rows).to_have_count(1)
    assert "action=test_part" in page.locator("#changes-csv").get_attribute("href")
    eng.shot("change-log")
    op = pages(role="operator")
    line = op.open("/app/", "#live.v-ok")
    expect(line.locator('#nav a[href="/app/changes"]')).to_have_count(0)
    # opened by its address (walk: a blank page, the API's refusal alone in the status line)
    blocked = op.open("/app/changes", "#changes-role")
    expect(blocked.locator("#changes-role")).to_contain_text("sign in as an engineer or admin")
    expect(blocked.locator("#filters")).to_have_count(0)


def test_the_change_log_fits_a_phone(pages, station):
    # its "what" list of long options took the page to 825 px on a 390 px screen
    p = pages(role="engineer", viewport={"width": 390, "height": 844}, has_touch=True)
    page = p.open("/app/changes", "#filters")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
