"""From photo to model input and back: resize policies, region of interest, orientation.

The geometry tests push a photo through ``apply``, treat the model input's brightness as
an anomaly map, and map it back: whatever the policy, it must land where it came from.
"""
from __future__ import annotations

import numpy as np
import pytest

from PIL import Image

from lineguard.vision import preprocess as preprocess_module
from lineguard.vision.preprocess import Preprocess, resize_map


def _photo(h: int, w: int) -> np.ndarray:
    """Dark photo with bright blocks at known places (asymmetric, so a wrong turn shows)."""
    p = np.full((h, w, 3), 10, np.uint8)
    p[h // 8: h // 8 + h // 5, w // 10: w // 10 + w // 6] = 250
    p[h // 2: h // 2 + h // 6, w // 2: w // 2 + w // 4] = 160
    p[-h // 8:, -w // 10:] = 90
    return p


def _round_trip(pre: Preprocess, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, geo = pre.apply(photo)
    assert x.shape == pre.input_hw + (3,) and x.dtype == np.uint8
    back = pre.map_back(x[:, :, 0].astype(np.float32), geo)
    assert back.shape == geo.map_hw and back.dtype == np.float32
    return back, x


def _agrees(back: np.ndarray, photo: np.ndarray, window: tuple[int, int, int, int]) -> None:
    x, y, w, h = window
    got = back[y:y + h, x:x + w].ravel()
    want = photo[y:y + h, x:x + w, 0].astype(np.float32).ravel()
    assert np.corrcoef(got, want)[0, 1] > 0.95
    assert np.median(np.abs(got - want)) < 5


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("kw", [dict(image_size=100), dict(image_size=32), dict(image_size=(128, 100)),
                                dict(image_size=0), dict(resize="crop"), dict(orient="portrait"),
                                dict(roi=(0, 0, 0, 10)), dict(roi=(0, 0, 10)), dict(roi=(-1, 0, 5, 5)),
                                dict(roi=(0, 0, 10, -5))])
def test_bad_settings_raise(kw):
    with pytest.raises(ValueError):
        Preprocess(**kw)


@pytest.mark.parametrize("pre", [Preprocess(), Preprocess(image_size=(64, 128), resize="pad", roi=(1, 2, 30, 40),
                                                          orient="landscape")])
def test_settings_round_trip_through_dict(pre):
    import json
    assert Preprocess.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("hw", [(100, 200), (200, 100), (128, 128), (37, 251)])
def test_stretch_geometry(hw):
    pre = Preprocess(image_size=128)
    photo = _photo(*hw)
    x, geo = pre.apply(photo)
    assert geo.window == (0, 0, hw[1], hw[0]) and geo.content == (0, 0, 128, 128)
    assert geo.photo_hw == hw and not geo.turned
    back, _ = _round_trip(pre, photo)
    _agrees(back, photo, geo.window)


def test_non_square_input_size():
    pre = Preprocess(image_size=(64, 128))
    assert pre.input_hw == (64, 128)
    back, x = _round_trip(pre, _photo(90, 200))
    assert x.shape == (64, 128, 3)
    _agrees(back, _photo(90, 200), (0, 0, 200, 90))


def test_pad_keeps_aspect_and_pads_with_edge_pixels():
    pre = Preprocess(image_size=128, resize="pad")
    photo = _photo(100, 200)
    x, geo = pre.apply(photo)
    assert geo.content == (0, 32, 128, 64)          # 200x100 -> 128x64, centred vertically
    np.testing.assert_array_equal(x[:32], np.repeat(x[32:33], 32, axis=0))     # edge replicated
    np.testing.assert_array_equal(x[96:], np.repeat(x[95:96], 32, axis=0))
    back, _ = _round_trip(pre, photo)
    _agrees(back, photo, (0, 0, 200, 100))


def test_pad_on_a_portrait_photo_pads_left_and_right():
    pre = Preprocess(image_size=128, resize="pad")
    photo = _photo(200, 100)
    _, geo = pre.apply(photo)
    assert geo.content == (32, 0, 64, 128)
    back, _ = _round_trip(pre, photo)
    _agrees(back, photo, (0, 0, 100, 200))


@pytest.mark.parametrize("resize", ["stretch", "pad"])
def test_roi_is_the_only_part_inspected_and_zero_outside(resize):
    pre = Preprocess(image_size=64, resize=resize, roi=(30, 20, 120, 60))
    photo = _photo(100, 200)
    x, geo = pre.apply(photo)
    assert geo.window == (30, 20, 120, 60)
    # the model input comes from the window only
    other = photo.copy()
    other[:20] = other[80:] = 0
    other[:, :30] = other[:, 150:] = 0
    np.testing.assert_array_equal(pre.apply(other)[0], x)
    back, _ = _round_trip(pre, photo)
    outside = np.ones(back.shape, bool)
    outside[20:80, 30:150] = False
    assert (back[outside] == 0).all()
    _agrees(back, photo, geo.window)


def test_roi_past_the_photo_edge_is_clipped():
    pre = Preprocess(image_size=64, roi=(150, 60, 500, 500))
    photo = _photo(100, 200)
    _, geo = pre.apply(photo)
    assert geo.window == (150, 60, 50, 40)
    back, _ = _round_trip(pre, photo)
    assert (back[:60] == 0).all() and (back[:, :150] == 0).all()


def test_roi_entirely_outside_the_photo_is_refused():
    pre = Preprocess(image_size=64, roi=(500, 500, 50, 50))
    with pytest.raises(ValueError):
        pre.apply(_photo(100, 200))


@pytest.mark.parametrize("resize", ["stretch", "pad"])
def test_landscape_orientation_turns_portrait_windows_and_maps_back(resize):
    pre = Preprocess(image_size=(64, 128), resize=resize, orient="landscape")
    portrait = _photo(200, 100)
    x, geo = pre.apply(portrait)
    assert geo.turned
    # the turned input equals the input made from the photo turned by hand
    x_turned, geo2 = Preprocess(image_size=(64, 128), resize=resize).apply(np.ascontiguousarray(np.rot90(portrait)))
    np.testing.assert_array_equal(x, x_turned)
    back, _ = _round_trip(pre, portrait)
    _agrees(back, portrait, (0, 0, 100, 200))
    # landscape photos are not turned
    assert not pre.apply(_photo(100, 200))[1].turned


def test_landscape_orientation_with_roi():
    pre = Preprocess(image_size=64, orient="landscape", roi=(10, 5, 40, 90))
    photo = _photo(100, 60)
    _, geo = pre.apply(photo)
    assert geo.turned and geo.window == (10, 5, 40, 90)
    back, _ = _round_trip(pre, photo)
    assert (back[:5] == 0).all() and (back[:, :10] == 0).all() and (back[:, 50:] == 0).all()
    _agrees(back, photo, geo.window)


# --------------------------------------------------------------------------- large photos


def _shrunk(photo: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(photo).resize((hw[1], hw[0]), Image.BILINEAR))


@pytest.mark.parametrize("kw, hw", [
    (dict(image_size=64), (600, 1000)),
    (dict(image_size=(64, 128), resize="pad"), (900, 700)),
    (dict(image_size=64, orient="landscape"), (1000, 420)),
    (dict(image_size=64, roi=(100, 50, 700, 500)), (600, 1000)),
])
def test_a_photo_far_larger_than_the_input_gets_a_proportionally_smaller_map(kw, hw):
    # A line camera's photo is 10-50x the model input; the map keeps 4 map pixels per
    # input pixel (no detail is lost: the map is no finer than the input) instead of one
    # per photo pixel, and still lands where the input came from.
    pre = Preprocess(**kw)
    photo = _photo(*hw)
    x, geo = pre.apply(photo)
    assert 0 < geo.map_scale < 1
    mh, mw = geo.map_hw
    assert (mh, mw) == (round(hw[0] * geo.map_scale), round(hw[1] * geo.map_scale))
    cx, cy, cw, ch = geo.content
    ww, wh = geo.window[2:]
    per_input = [geo.map_scale * ww / (ch if geo.turned else cw), geo.map_scale * wh / (cw if geo.turned else ch)]
    assert min(per_input) == pytest.approx(preprocess_module.MAP_PX_PER_INPUT_PX, rel=1e-6)
    back, _ = _round_trip(pre, photo)
    x0, y0, w0, h0 = (round(v * geo.map_scale) for v in geo.window)
    outside = np.ones(back.shape, bool)
    outside[y0:y0 + h0, x0:x0 + w0] = False
    assert (back[outside] == 0).all()
    _agrees(back, _shrunk(photo, (mh, mw)), (x0 + 2, y0 + 2, w0 - 4, h0 - 4))


def test_photos_up_to_four_times_the_input_keep_their_own_size():
    pre = Preprocess(image_size=(64, 128))
    for hw in [(256, 512), (200, 300), (40, 60)]:
        _, geo = pre.apply(_photo(*hw))
        assert geo.map_scale == 1.0 and geo.map_hw == hw
    # smaller only once both sides are more than 4x the input's
    assert pre.apply(_photo(256, 600))[1].map_scale == 1.0
    assert pre.apply(_photo(257, 513))[1].map_scale < 1


def test_map_resize_enlarges_with_opencv_as_pillow_does_and_shrinks_with_pillow(monkeypatch):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    m = rng.random((28, 40)).astype(np.float32) * 7
    pil = np.asarray(Image.fromarray(m, mode="F").resize((333, 251), Image.BILINEAR))
    np.testing.assert_allclose(resize_map(m, 333, 251), pil, rtol=0, atol=1e-5)
    np.testing.assert_allclose(cv2.resize(m, (333, 251), interpolation=cv2.INTER_LINEAR), pil, atol=1e-5)
    # shrinking: Pillow's filter widens with the shrink (OpenCV's bilinear would skip values)
    small = np.asarray(Image.fromarray(m, mode="F").resize((10, 7), Image.BILINEAR))
    np.testing.assert_array_equal(resize_map(m, 10, 7), small)
    # without OpenCV (the edge install): Pillow's own
    monkeypatch.setattr(preprocess_module, "_cv2", lambda: None)
    np.testing.assert_array_equal(resize_map(m, 333, 251), pil)


def test_large_photos_are_box_averaged_first_and_smaller_shrinks_are_unchanged():
    # a photo-like surface: shading, the test photo's blocks and sensor noise
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:1300, 0:1500]
    shading = (0.05 * xx + 0.04 * yy)[..., None]
    photo = np.clip(0.6 * _photo(1300, 1500) + shading + rng.normal(0, 6, (1300, 1500, 3)), 0, 255).astype(np.uint8)
    exact = lambda img, w, h: np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR, reducing_gap=None))  # noqa: E731
    # under 6x: the same pixels as before the box average was used
    for w, h in [(256, 224), (1500 // 5, 1300 // 5)]:
        np.testing.assert_array_equal(preprocess_module._resize_rgb(photo, w, h), exact(photo, w, h))
    # 10x: within two grey levels of the exact shrink (at sharp edges), a fifth of one on average
    diff = np.abs(preprocess_module._resize_rgb(photo, 150, 130).astype(int) - exact(photo, 150, 130).astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.3


# --------------------------------------------------------------------------- large JPEGs


@pytest.mark.parametrize("kw, hw, scale", [
    (dict(image_size=64), (300, 380), 1),               # shrunk under 6x: decoded whole
    (dict(image_size=64), (400, 500), 2),               # 400 / 2 still holds 3 x 64
    (dict(image_size=64), (1600, 2000), 8),
    (dict(image_size=(64, 128)), (800, 1600), 4),       # each axis against its own input side
    (dict(image_size=(64, 128)), (1600, 800), 2),       # a portrait photo into a wide input
    (dict(image_size=(64, 128), orient="landscape"), (1600, 800), 4),   # ... turned first
    (dict(image_size=64, roi=(100, 50, 400, 300)), (1600, 2000), 1),    # only the window counts
    (dict(image_size=64, roi=(5000, 0, 10, 10)), (1600, 2000), 1),      # outside: apply() says so
])
def test_decode_scale_keeps_three_times_the_input_in_the_window(kw, hw, scale):
    assert Preprocess(**kw).decode_scale(*hw) == scale


def _photo_like(h: int, w: int, seed: int = 1) -> np.ndarray:
    """The test photo with shading and sensor noise, as a camera's photo has."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    shading = (0.02 * xx + 0.03 * yy)[..., None]
    return np.clip(0.6 * _photo(h, w) + shading + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kw, hw", [
    (dict(image_size=64), (1600, 2000)),
    (dict(image_size=(64, 128), resize="pad"), (1800, 1400)),
    (dict(image_size=64, orient="landscape"), (2000, 840)),
    (dict(image_size=64, roi=(200, 100, 1400, 1000)), (1200, 2000)),
])
def test_a_large_jpeg_decoded_at_reduced_scale_gives_the_input_of_a_full_decode(kw, hw):
    # A camera's JPEG 20-30x the model input: decoded at 1/2-1/8 scale (what the input
    # allows), the model gets its input within a few grey levels of the full decode's,
    # and the same geometry: the map and regions land in the photo's own pixels.
    import io

    from lineguard.vision.imageio import load_image, load_photo
    pre = Preprocess(**kw)
    buf = io.BytesIO()
    Image.fromarray(_photo_like(*hw)).save(buf, format="JPEG", quality=95)
    photo = load_photo(buf.getvalue(), decode_scale=pre.decode_scale)
    scale = pre.decode_scale(*hw)
    assert scale > 1 and photo.reduced and photo.size_hw == hw
    assert photo.pixels.shape[:2] == (-(-hw[0] // scale), -(-hw[1] // scale))
    x, geo = pre.load(buf.getvalue())
    x_full, geo_full = pre.apply(load_image(buf.getvalue()))
    assert geo == geo_full
    diff = np.abs(x.astype(int) - x_full.astype(int))
    assert diff.max() <= 4 and diff.mean() < 0.4
    back = pre.map_back(x[:, :, 0].astype(np.float32), geo)
    np.testing.assert_allclose(back, pre.map_back(x_full[:, :, 0].astype(np.float32), geo_full), atol=4)
