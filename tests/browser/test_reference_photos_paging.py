"""The Models page's reference photos while the next page loads: the page still shown is not
to be acted on (its Remove buttons and the pager wait for the next page), so a second tap on
"Later photos" does not skip a page and a Remove tapped meanwhile is not of a page left."""
from __future__ import annotations

from .conftest import api, expect
from server.conftest import png_bytes


def test_a_page_of_reference_photos_loading_takes_no_tap_meanwhile(pages, station):
    with api(station, "engineer") as c:
        for i in range(50):                  # three pages of 24
            r = c.post("/api/v1/reference-photos", files={"photo": (f"p-{i:03d}.png", png_bytes(45, 32, seed=i))},
                       data={"product": "cell"})
            assert r.status_code == 201, r.text
    p = pages(role="engineer")
    page = p.open("/app/models?product=cell", "#reference-photo-list [data-photo]")
    expect(page.locator("#reference-page")).to_have_text("photos 1–24 of 50")
    held = []                 # the next page slow to come (a busy station): answered when let go
    page.route("**/api/v1/reference-photos?*", lambda route: held.append(route))
    page.locator("#reference-next").click()
    grid, removes = page.locator("#reference-photo-list"), page.locator('#reference-photo-list button')
    expect(grid).to_have_attribute("aria-busy", "true")
    expect(removes.first).to_be_disabled()
    expect(page.locator("#reference-next")).to_be_disabled()
    page.locator("#reference-next").click(force=True)        # the second tap of a double tap: nothing
    expect(page.locator("#reference-page")).to_have_text("photos 1–24 of 50")     # still the page before
    asked = [route.request.url for route in held]
    for route in held:
        route.continue_()
    expect(page.locator("#reference-page")).to_have_text("photos 25–48 of 50")
    expect(grid).not_to_have_attribute("aria-busy", "true")
    expect(removes.first).to_be_enabled()
    expect(page.locator("#reference-next")).to_be_enabled()
    assert [u for u in asked if "offset=48" in u] == [], asked
