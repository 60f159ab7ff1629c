"""A reference photo is served as a part's picture is: whole as given, or with max_side a
JPEG for a screen (the Models page shows a product's photos as thumbnails: ?max_side was
ignored and every photo sent whole), never sniffed as a page, to whoever may list them;
the list says which sizes the product's photos are (the old camera's after a change)."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from lineguard.line.reference import of_station

from .fake_inspector import png_bytes
from .test_reference_photos import _client, _upload, make_station  # noqa: F401  (the fixture)


def _jpeg_side(data: bytes) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as im:
        return im.format, im.size


@pytest.mark.one_database
def test_a_reference_photo_is_a_thumbnail_with_max_side_and_whole_without(make_station):
    st = make_station()
    whole = png_bytes(45, size=400, seed=7)
    with _client(st) as eng, _client(st, "operator") as op:
        added = _upload(eng, whole, "cam-old-001.png").json()
        pid = added["id"]
        # the operator looks at the list too (GET /api/v1/reference-photos is a reader's)
        r = op.get(f"/api/v1/reference-photos/{pid}/image", params={"max_side": 96})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/jpeg"
        assert _jpeg_side(r.content) == ("JPEG", (96, 96))
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"].startswith("private")
        r = op.get(f"/api/v1/reference-photos/{pid}/image")
        assert r.status_code == 200 and r.content == whole and r.headers["content-type"] == "image/png"
        assert r.headers["x-content-type-options"] == "nosniff"
        # a misspelt size was the whole photo, taken for a thumbnail: refused, naming it
        r = op.get(f"/api/v1/reference-photos/{pid}/image", params={"max_sdie": 96})
        assert r.status_code == 422 and "max_sdie" in r.json()["error"]["message"]
        assert op.get(f"/api/v1/reference-photos/{pid}/image", params={"max_side": 8}).status_code == 422
        assert op.get(f"/api/v1/reference-photos/{pid + 1}/image", params={"max_side": 96}).status_code == 404
        # its file gone from the data folder: 404 saying what to do, for a thumbnail too
        of_station(st).store.path(added["image_key"]).unlink()
        r = op.get(f"/api/v1/reference-photos/{pid}/image", params={"max_side": 96})
        assert r.status_code == 404 and "remove it and add the photo again" in r.json()["error"]["message"]


def test_the_list_says_how_many_of_a_products_photos_are_of_each_size(make_station):
    st = make_station()
    with _client(st) as eng:
        for i in range(3):
            assert _upload(eng, png_bytes(45, size=64, seed=10 + i), f"old-{i}.png").status_code == 201
        assert _upload(eng, png_bytes(45, size=96, seed=20), "new-0.png", line="L1").status_code == 201
        assert _upload(eng, png_bytes(45, size=96, seed=21), "other.png", product="tile").status_code == 201
        r = eng.get("/api/v1/reference-photos", params={"product": "cell", "limit": 1})
        assert r.status_code == 200, r.text
        got = r.json()
        # of every photo of the product, not of the page asked
        assert len(got["items"]) == 1 and got["count"] == 4
        assert got["sizes"] == [{"width": 64, "height": 64, "count": 3}, {"width": 96, "height": 96, "count": 1}]
        r = eng.get("/api/v1/reference-photos", params={"product": "cell", "line": "L1"})
        assert r.json()["sizes"] == [{"width": 96, "height": 96, "count": 1}]
