"""The Models page after a camera change: each version's model file downloads as the
station names it (cell-v1.lgm: it took curl and an engineer's key), and a product's
reference photos are seen (thumbnails, size, line, who added them when, a page at a time),
so the old camera's can be found and removed; an operator sees them, removes nothing."""
from __future__ import annotations

from .conftest import api, expect
from server.conftest import fake_model_bytes, png_bytes

OLD, NEW = 32, 48      # the old camera's photos and the new one's, in pixels a side


def _add_photos(station) -> None:
    with api(station, "engineer") as c:
        for i in range(26):
            r = c.post("/api/v1/reference-photos", files={"photo": (f"old-{i:03d}.png", png_bytes(45, OLD, seed=i))},
                       data={"product": "cell"})
            assert r.status_code == 201, r.text
        r = c.post("/api/v1/reference-photos", files={"photo": ("new-000.png", png_bytes(45, NEW, seed=99))},
                   data={"product": "cell", "line": "L1"})
        assert r.status_code == 201, r.text


def _cards(page):
    return page.locator("#reference-photo-list [data-photo]")


def test_the_engineer_downloads_a_models_file_and_removes_the_old_cameras_photos(pages, station, tmp_path):
    _add_photos(station)
    p = pages(role="engineer")
    page = p.open("/app/models?product=cell", "#reference-photo-list [data-photo]")
    page.on("dialog", lambda d: d.accept())

    link = page.locator('#versions tr[data-version="1"] a[data-act="download"]')
    with page.expect_download() as got:
        link.click()
    assert got.value.suggested_filename == "cell-v1.lgm"
    saved = tmp_path / "cell-v1.lgm"
    got.value.save_as(saved)
    assert saved.read_bytes() == fake_model_bytes()

    sizes = page.locator("#reference-sizes")
    expect(sizes).to_contain_text(f"27 reference photo(s) of cell: 26 of {OLD} × {OLD}, 1 of {NEW} × {NEW}")
    expect(sizes).to_contain_text("more than one size")
    expect(_cards(page)).to_have_count(24)       # a page at a time, oldest first
    first = _cards(page).first
    expect(first).to_contain_text(f"{OLD} × {OLD}")
    expect(first).to_contain_text("every line")
    expect(first).to_contain_text("old-000.png")
    expect(first).to_contain_text("added ")
    img = first.locator("img")
    expect(img).to_have_attribute("src", f"/api/v1/reference-photos/{first.get_attribute('data-photo')}/image"
                                         "?max_side=320")
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 32", arg=img.element_handle())
    p.shot("models-reference-photos")

    page.locator("#reference-next").click()
    expect(page.locator("#reference-page")).to_have_text("photos 25–27 of 27")
    expect(_cards(page)).to_have_count(3)
    newest = _cards(page).last
    expect(newest).to_contain_text(f"{NEW} × {NEW}")
    expect(newest).to_contain_text("line L1")
    # the old camera's two on this page removed, one at a time: the new camera's stays
    remove = lambda: _cards(page).first.locator('button[data-act="remove-reference"]').click()  # noqa: E731
    remove()
    expect(page.locator("#reference-page")).to_have_text("photos 25–26 of 26")
    remove()
    expect(page.locator("#reference-page")).to_have_text("photos 25–25 of 25")
    expect(_cards(page)).to_have_count(1)
    expect(newest).to_contain_text("new-000.png")
    page.locator("#reference-prev").click()
    # the first page there before a tap: a tap on the page still shown removed the new camera's photo
    expect(page.locator("#reference-page")).to_have_text("photos 1–24 of 25")
    remove()
    expect(sizes).to_contain_text(f"24 reference photo(s) of cell: 23 of {OLD} × {OLD}, 1 of {NEW} × {NEW}")
    expect(page.locator("#reference-next")).to_be_hidden()         # one page now
    with api(station, "engineer") as c:
        left = c.get("/api/v1/reference-photos", params={"product": "cell"}).json()
    assert left["count"] == 24 and [x["filename"] for x in left["items"]][-1] == "new-000.png"
    assert {x["filename"] for x in left["items"]}.isdisjoint({"old-000.png", "old-024.png", "old-025.png"})


def test_an_operator_sees_the_reference_photos_but_removes_and_downloads_nothing(pages, station):
    with api(station, "engineer") as c:
        if not c.get("/api/v1/reference-photos", params={"product": "cell"}).json()["count"]:
            _add_photos(station)
    p = pages(role="operator")
    page = p.open("/app/models?product=cell", "#reference-photo-list [data-photo]")
    expect(page.locator("#reference-sizes")).to_contain_text("reference photo(s) of cell")
    expect(_cards(page).first.locator("img")).to_be_visible()
    expect(_cards(page).first.locator('button[data-act="remove-reference"]')).to_be_hidden()
    expect(page.locator('#versions a[data-act="download"]').first).to_be_hidden()


def test_reference_photos_added_on_the_page_of_another_size_are_warned_of(pages, station, tmp_path):
    """The station's warning (another size than those kept: another camera?) reached the API's
    answer but the page said only "added 1 reference photo(s)" (walk E)."""
    with api(station, "engineer") as c:
        for i in range(3):
            assert c.post("/api/v1/reference-photos", files={"photo": (f"wk-{i}.png", png_bytes(45, OLD, seed=300 + i))},
                          data={"product": "wcell"}).status_code == 201
    new = tmp_path / "new-camera.png"
    new.write_bytes(png_bytes(45, NEW, seed=399))
    p = pages(role="engineer")
    page = p.open("/app/models?product=wcell", "#reference-add")
    page.locator("#reference-files").set_input_files(str(new))
    page.click("#reference-add")
    expect(page.locator("#status")).to_contain_text("added 1 reference photo(s)")
    expect(page.locator("#status")).to_contain_text(f"{OLD} x {OLD}")
    expect(page.locator("#status")).to_contain_text("another camera?")
