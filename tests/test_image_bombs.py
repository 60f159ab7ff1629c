"""Image bombs that cost more than their header says (hostile-input walk): a progressive
JPEG is decoded at its full size whatever reduction is asked, and a TIFF can list
millions of strips in a few MB."""
from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import pytest
from PIL import Image

from lineguard.line.errors import CorruptImage, ImageTooLarge
from lineguard.line.station import Part, declared_pixels
from lineguard.vision.errors import ImageError, ImageTooLarge as HeaderTooLarge
from lineguard.vision.imageio import MAX_TIFF_ENTRIES, load_photo

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector  # noqa: E402


def declared_jpeg(width: int, height: int, progressive: bool, mode: str = "RGB") -> bytes:
    """A small JPEG whose frame header declares ``width`` x ``height``: the decoder makes up
    the missing data, so it costs what the header says, not what the file holds."""
    b = io.BytesIO()
    Image.new(mode, (64, 64), 128 if mode == "L" else (128, 128, 128)).save(b, "JPEG", progressive=progressive)
    d = bytearray(b.getvalue())
    i = 2
    while i < len(d):
        marker, length = d[i + 1], struct.unpack(">H", d[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            d[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(d)
        i += 2 + length
    raise AssertionError("no frame header")


def scans_apart(data: bytes) -> bytes:
    """The baseline JPEG ``data`` with its first scan holding one colour of three, as a
    sequential JPEG of one scan a colour starts (libjpeg then holds it whole too)."""
    d = bytearray(data)
    at = d.index(b"\xff\xda")
    assert d[at + 4] == 3
    d[at + 4] = 1
    return bytes(d)


def test_a_progressive_jpeg_over_the_pixel_limit_is_refused_not_decoded_reduced():
    bomb = declared_jpeg(2400, 2400, progressive=True)
    with pytest.raises(HeaderTooLarge) as info:
        # before: decoded at 1/4 (600x600) and taken, while the decoder held all 5.8 MP
        load_photo(bomb, max_pixels=1_000_000, reduce_to_fit=True)
    assert "2400x2400" in info.value.problem and "progressive" in info.value.problem
    assert "baseline" in info.value.hint


def test_a_baseline_jpeg_of_that_size_is_still_reduced_to_fit():
    photo = load_photo(declared_jpeg(2400, 2400, progressive=False), max_pixels=1_000_000, reduce_to_fit=True)
    assert photo.pixels.shape[:2] == (600, 600)


def test_a_progressive_jpeg_within_the_limit_is_counted_at_its_full_size():
    reduce_8 = lambda h, w: 8   # noqa: E731 - a model whose input allows a 1/8 decode
    baseline = declared_pixels(declared_jpeg(2400, 2400, progressive=False), 26_000_000, reduce_8)
    progressive = declared_pixels(declared_jpeg(2400, 2400, progressive=True), 26_000_000, reduce_8)
    assert baseline == 300 * 300
    # before: 300x300 as well, while libjpeg held 2400x2400's coefficients (26 MB)
    assert progressive >= 2400 * 2400
    assert declared_pixels(declared_jpeg(2400, 2400, True, mode="L"), 26_000_000, reduce_8) >= 2400 * 2400 * 2 // 3


def test_a_jpeg_whose_colours_come_in_separate_scans_is_counted_whole():
    reduce_8 = lambda h, w: 8   # noqa: E731
    apart = scans_apart(declared_jpeg(2400, 2400, progressive=False))
    assert declared_pixels(apart, 26_000_000, reduce_8) >= 2400 * 2400


@pytest.fixture
def station(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data", max_image_pixels=1_000_000),
                 loader=FakeInspector.load, trainer=FakeInspector.fit)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    yield st
    st.close()


def test_the_station_refuses_a_progressive_jpeg_bomb_with_413_and_stores_nothing(station):
    with pytest.raises(ImageTooLarge) as info:
        station.inspect(declared_jpeg(2400, 2400, progressive=True), Part("bomb-1", "L1", "S1", "cell"))
    assert info.value.http_status == 413
    assert "progressive" in info.value.message and "--max-megapixels" in info.value.message
    assert station.query() == []
    # a baseline JPEG of the same size is still taken, decoded reduced
    out = station.inspect(declared_jpeg(2400, 2400, progressive=False), Part("base-1", "L1", "S1", "cell"))
    assert out.created


def test_a_stored_progressive_bomb_is_not_drawn_as_a_thumbnail():
    from lineguard.server.routers.inspections import _photo
    with pytest.raises(ImageTooLarge) as info:   # a 413, not a 500 (nor 900 MB a picture)
        _photo(declared_jpeg(9000, 9000, progressive=True, mode="L"), lambda h, w: 256)
    assert "progressive" in info.value.message and "without max_side" in info.value.message
    # a baseline one of that size is drawn at 1/8
    assert _photo(declared_jpeg(9000, 9000, progressive=False, mode="L"), lambda h, w: 256).pixels.shape[0] < 2000


def strip_table_tiff(pages: int, count: int) -> bytes:
    """A little-endian TIFF of ``pages`` directories, each listing ``count`` strips (four
    tables of ``count`` LONGs) that all point at one block of zeros."""
    block = 8
    ifd = block + 4 * count
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd)) + bytes(4 * count)
    for p in range(pages):
        at = ifd + p * (2 + 4 * 12 + 4)
        nxt = at + 2 + 4 * 12 + 4 if p + 1 < pages else 0
        out += struct.pack("<H", 4)
        for tag in (273, 279, 324, 325):
            out += struct.pack("<HHII", tag, 4, count, block)
        out += struct.pack("<I", nxt)
    return bytes(out)


def test_a_tiff_listing_millions_of_strips_is_refused_saying_so():
    bomb = strip_table_tiff(pages=3, count=MAX_TIFF_ENTRIES // 8)   # 3 pages: 1.5 times the limit
    with pytest.raises(ImageError) as info:
        load_photo(bomb)
    # before: "is not an image lineguard can read (use one of .png, .jpg, ... .tif ...)"
    assert "strip or tile" in info.value.problem and "3 page" in info.value.problem
    assert ".png" not in str(info.value)


def test_the_station_names_the_strip_tables_when_it_refuses_such_a_tiff(station):
    with pytest.raises(CorruptImage) as info:
        station.inspect(strip_table_tiff(pages=12, count=200_000), Part("tbomb", "L1", "S1", "cell"))
    assert info.value.message.startswith("the TIF image lists 2,400,000 strip or tile offsets")
    assert "use one of" not in info.value.message
