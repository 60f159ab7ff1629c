"""A part's pictures cannot take the station's memory or its turns from the parts.

Six full-size overlays of 25 megapixel parts asked at once took a station to 10 GB for
over a minute, and six 320 px thumbnails to 2.6 GB: each decoded the whole photo. Now a
JPEG is decoded only as large as the picture needs, a full-size overlay is drawn within
a pixel budget, and pictures are drawn a few at a time (503 with Retry-After beyond).
"""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lineguard.line import render
from lineguard.server.routers import inspections
from lineguard.vision import imageio


def _client(st) -> TestClient:
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        key = create_key(s, "operator", name="t-operator")[1]
    return TestClient(create_app(station=st), headers={"X-API-Key": key})


def _photo(w: int, h: int) -> np.ndarray:
    """A bright part (the fake model judges it NG, so it is kept) with a darker patch."""
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([150 + 60 * np.sin(xx / 37.0), 170 + 50 * np.cos(yy / 23.0), 160 + 0 * xx], axis=2)
    arr[h // 4:h // 2, w // 3:w // 2] = 40
    return np.clip(arr, 0, 255).astype(np.uint8)


def _encoded(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _post(c: TestClient, data: bytes, part_id: str, name: str) -> int:
    r = c.post("/api/v1/inspections", files={"image": (name, data)},
               data={"part_id": part_id, "line": "L1", "station": "S1", "product": "cell"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _size(content: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(content)).size


def test_a_thumbnail_of_a_large_jpeg_comes_from_a_reduced_decode(sqlite_like_station, monkeypatch):
    decoded = []
    load_photo = imageio.load_photo

    def spy(src, *args, **kwargs):
        photo = load_photo(src, *args, **kwargs)
        if isinstance(src, bytes):      # a stored file decoded (not pixels passed on)
            decoded.append(photo.pixels.shape[:2])
        return photo

    arr = _photo(2400, 1800)
    with _client(sqlite_like_station()) as c:
        jpeg = _post(c, _encoded(arr, "JPEG"), "big-jpeg-1", "p.jpg")
        png = _post(c, _encoded(arr, "PNG"), "big-png-1", "p.png")
        monkeypatch.setattr(imageio, "load_photo", spy)
        r = c.get(f"/api/v1/inspections/{jpeg}/image", params={"max_side": 320})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert _size(r.content) == (320, 240)
        # decoded at 1/4 (600 px, the smallest reduction still 320 or more), not 2400
        assert decoded == [(450, 600)]
        shown = np.asarray(Image.open(io.BytesIO(r.content))).astype(int)
        want = np.asarray(Image.fromarray(arr).resize((320, 240), Image.BOX)).astype(int)
        assert np.abs(shown - want).mean() < 6            # the same picture, smaller
        # an overlay for a screen too; its boxes land where the whole photo's do
        decoded.clear()
        small = c.get(f"/api/v1/inspections/{jpeg}/overlay", params={"max_side": 400})
        assert small.status_code == 200 and _size(small.content) == (400, 300)
        assert decoded == [(450, 600)]
        whole = c.get(f"/api/v1/inspections/{png}/overlay", params={"max_side": 400})
        assert decoded[1:] == [(1800, 2400)]          # a PNG has no reduced decode
        a = np.asarray(Image.open(io.BytesIO(small.content))).astype(int)
        b = np.asarray(Image.open(io.BytesIO(whole.content))).astype(int)
        assert np.abs(a - b).mean() < 6
        # a browser never takes a picture for another type than sent (nosniff)
        for url in (f"/api/v1/inspections/{jpeg}/image", f"/api/v1/inspections/{png}/overlay"):
            assert c.get(url).headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_an_overlay_asked_at_full_size_is_drawn_within_the_pixel_budget(sqlite_like_station, monkeypatch):
    # the station's budget is 12 megapixels; a 1.9 MP photo against a 1 MP budget here
    monkeypatch.setattr(inspections, "OVERLAY_MAX_PIXELS", 1_000_000, raising=False)
    with _client(sqlite_like_station()) as c:
        big = _post(c, _encoded(_photo(1600, 1200), "JPEG"), "budget-1", "p.jpg")
        small = _post(c, _encoded(_photo(800, 600), "PNG"), "budget-2", "p.png")
        r = c.get(f"/api/v1/inspections/{big}/overlay")
        assert r.status_code == 200
        w, h = _size(r.content)
        assert w * h <= 1_000_000 and abs(w / h - 4 / 3) < 0.01
        assert _size(c.get(f"/api/v1/inspections/{small}/overlay").content) == (800, 600)   # within it: whole


def test_pictures_take_turns_and_a_busy_station_says_when_to_ask_again(sqlite_like_station, monkeypatch):
    monkeypatch.setattr(inspections, "PICTURE_SLOTS", 1, raising=False)
    monkeypatch.setattr(inspections, "PICTURE_QUEUE", 0, raising=False)
    entered, release = threading.Event(), threading.Event()
    overlay_png = render.overlay_png

    def held(*args, **kwargs):      # an overlay that takes as long as the test likes
        entered.set()
        release.wait(60)
        return overlay_png(*args, **kwargs)

    monkeypatch.setattr(render, "overlay_png", held)
    with _client(sqlite_like_station()) as c:
        ids = [_post(c, _encoded(_photo(320, 240), "PNG"), f"turns-{i}", "p.png") for i in range(2)]
        first: dict = {}
        drawing = threading.Thread(target=lambda: first.update(r=c.get(f"/api/v1/inspections/{ids[0]}/overlay")))
        drawing.start()
        try:
            assert entered.wait(30)
            # the one slot is taken and no one may wait: refused at once, told when to ask again
            r = c.get(f"/api/v1/inspections/{ids[1]}/image", params={"max_side": 100})
            assert r.status_code == 503 and r.json()["error"]["code"] == "busy"
            assert int(r.headers["retry-after"]) > 0
            # the photo as stored is decoded by no one: it needs no turn, nor does a part
            assert c.get(f"/api/v1/inspections/{ids[1]}/image").status_code == 200
            _post(c, _encoded(_photo(320, 240), "PNG"), "turns-during", "p.png")
        finally:
            release.set()
            drawing.join(60)
        assert first["r"].status_code == 200
        # the turn was given back
        assert c.get(f"/api/v1/inspections/{ids[1]}/image", params={"max_side": 100}).status_code == 200


def test_an_overlay_of_a_photo_judged_reduced_boxes_the_defect_where_it_is(tmp_path):
    """A model without a decode scale (a plant's own) and a JPEG over the pixel limit: the
    station judges it reduced to fit and tells the regions in that frame; the overlay drew
    them as if told in the whole photo, at half their place."""
    import io

    import numpy as np
    from PIL import Image

    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    from lineguard.server.routers import inspections as routes

    from .fake_inspector import FakeInspector
    st = Station(StationConfig(data_dir=tmp_path / "data", max_image_pixels=2_000_000, min_free_gb=0),
                 loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5, review_threshold=0.3).to_bytes(), "cell", activate=True)   # REVIEW: boxed
    w, h = 2400, 1800                     # 4.3 MP over a 2 MP limit: judged at 1200 x 900
    photo = np.full((h, w, 3), 100, np.uint8)
    photo[180:360, 1680:1920] = 255       # the defect: x 70-80 %, y 10-20 %
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=95)
    rec = st.inspect(buf.getvalue(), Part("p-big", "L1", "S1", "cell")).record
    assert rec.regions and (rec.image_width, rec.image_height) == (1200, 900)
    import time
    for _ in range(200):                  # the map is written by the map writer, after the answer
        if rec.heatmap_key is None or st.images.exists(rec.heatmap_key):
            break
        time.sleep(0.05)
    drawn = np.asarray(Image.open(io.BytesIO(routes._draw_overlay(st, rec, None).body)).convert("RGB")).astype(int)
    assert drawn.shape[:2] == (h, w)
    changed = np.abs(drawn - photo.astype(int)).max(axis=2) > 60
    changed[: int(0.085 * h)] = False     # the verdict banner, top left
    cols = np.flatnonzero(changed.any(axis=0))
    # every mark near the defect (x 70-80 %, a box line's width either side), none at half its place
    assert cols.size and cols.min() >= 0.65 * w and cols.max() <= 0.85 * w, (cols.min(), cols.max())
    st.close()
