"""Large pictures are compressed in pieces on several cores: the same pixels read back."""
from __future__ import annotations

import io

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from lineguard.line import png  # noqa: E402


def _picture(kind: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    h, w = 731, 853            # odd sizes: pieces of unequal rows; over a megabyte of pixels each
    smooth = np.add.outer(np.arange(h), np.arange(w)) % 251
    grey = np.clip(smooth + rng.normal(0, 3, (h, w)), 0, 255).astype(np.uint8)
    return {"grey": np.tile(grey, (2, 1)),
            "bgr": np.dstack([grey, 255 - grey, rng.integers(0, 256, (h, w), dtype=np.uint8)]),
            "bgra": np.dstack([grey, 255 - grey, grey // 2, rng.integers(0, 256, (h, w), dtype=np.uint8)]),
            "grey16": (grey.astype(np.uint16) * 16 + 7),
            "bgr16": np.dstack([grey, grey // 3, 255 - grey]).astype(np.uint16) * 257}[kind]


@pytest.mark.parametrize("kind", ["grey", "bgr", "bgra", "grey16", "bgr16"])
def test_a_large_picture_is_written_in_pieces_and_reads_back_the_same(kind, monkeypatch):
    from PIL import Image
    pieces = []
    real = png._encode_in_pieces
    monkeypatch.setattr(png, "_cores", lambda: 3)
    monkeypatch.setattr(png, "_encode_in_pieces", lambda arr, n: pieces.append(n) or real(arr, n))
    arr = _picture(kind)
    data = png.encode_png(arr)
    assert pieces == [3]
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)   # OpenCV's order again
    np.testing.assert_array_equal(back, arr)
    with Image.open(io.BytesIO(data)) as im:                # a second reader agrees
        im.load()
        assert im.size == (arr.shape[1], arr.shape[0])
        if kind == "bgr":
            np.testing.assert_array_equal(np.asarray(im), arr[:, :, ::-1])
    # as small as one stream from OpenCV with the same settings, within a few hundred bytes
    ok, one = cv2.imencode(".png", arr, png.png_params())
    assert ok and len(data) < len(one) * 1.01 + 512


def test_a_small_picture_is_written_by_opencv(monkeypatch):
    monkeypatch.setattr(png, "_encode_in_pieces", lambda arr, n: pytest.fail("a small picture is one piece"))
    arr = np.zeros((64, 64, 3), np.uint8)
    back = cv2.imdecode(np.frombuffer(png.encode_png(arr), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("shape", [(64, 64, 3), (731, 853, 3), (731, 853, 4)])
def test_an_rgb_picture_keeps_its_colours_small_or_in_pieces(shape):
    from PIL import Image
    arr = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    with Image.open(io.BytesIO(png.encode_png(arr, rgb=True))) as im:
        np.testing.assert_array_equal(np.asarray(im), arr)
