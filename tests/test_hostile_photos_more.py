"""More hostile and damaged photos: 16-bit colour photos shot on their side, and JPEGs torn
in their middle.

A 16-bit colour PNG (read by OpenCV, which gives a PNG as stored) was judged on its side
whatever its eXIf orientation said, while the same photo in 8 bits was turned upright (and
its size, read from the header, said upright). A baseline JPEG whose middle bytes are
zeros (a copy torn on the network, a file whose middle is not written yet) decoded into a
part with a grey or garbage lower part and was judged as a normal part: libjpeg only warns,
and Pillow ignores its warnings. It is refused as a damaged PNG is ("corrupt or truncated";
the station's 422 corrupt_image, which the hot folder waits on).
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lineguard.vision.errors import ImageError
from lineguard.vision.imageio import load_image, load_photo, shown_hw
from lineguard.vision.synth import make_part

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector  # noqa: E402

cv2 = pytest.importorskip("cv2")


def _stored(h: int = 32, w: int = 48) -> np.ndarray:
    """A part photo as the camera stored it, its top-left corner marked white."""
    arr = np.random.default_rng(7).integers(40, 220, (h, w, 3), dtype=np.uint8)
    arr[:6, :6] = 255
    return arr


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(arr16: np.ndarray, orientation: int, exif_after_image_data: bool = False) -> bytes:
    """A 16-bit colour PNG (OpenCV writes it) with an eXIf chunk after its header or before its end."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr16[:, :, ::-1]))
    png = buf.tobytes()
    assert ok and png[24] == 16 and png[25] == 2            # bit depth 16, RGB
    exif = _exif(orientation)
    exif = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    at = len(png) - 12 if exif_after_image_data else 8 + 25  # before IEND, or after IHDR
    return png[:at] + _chunk(b"eXIf", exif) + png[at:]


def _tiff16(arr16: np.ndarray, orientation: int) -> bytes:
    """A baseline 16-bit RGB TIFF, one strip, with its Orientation tag."""
    h, w, _ = arr16.shape
    pixels = arr16.astype("<u2").tobytes()
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2), (273, 4, 1, None),
            (274, 3, 1, orientation), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1)]
    bits_at = 8 + 2 + 12 * len(tags) + 4
    pixels_at = bits_at + 6
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        value = {258: bits_at, 273: pixels_at}.get(tag, value)
        ifd += struct.pack("<HHIHH" if kind == 3 and count == 1 else "<HHII", tag, kind, count,
                           *((value, 0) if kind == 3 and count == 1 else (value,)))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + struct.pack("<3H", 16, 16, 16) + pixels


def _upright(stored8: np.ndarray, orientation: int) -> np.ndarray:
    """The photo as seen: Pillow's own turn of the 8-bit photo with that EXIF orientation."""
    buf = io.BytesIO()
    Image.fromarray(stored8).save(buf, format="PNG", exif=_exif(orientation))
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


@pytest.mark.parametrize("orientation", range(2, 9))
def test_a_16_bit_colour_photo_shot_on_its_side_is_turned_as_the_8_bit_one_is(orientation):
    stored8 = _stored()
    stored16 = stored8.astype(np.uint16) * 257                # the same photo, 16 bits a channel
    want = _upright(stored8, orientation)
    png8 = io.BytesIO()
    Image.fromarray(stored8).save(png8, format="PNG", exif=_exif(orientation))
    np.testing.assert_array_equal(load_image(png8.getvalue()), want)     # the 8-bit photo, as ever
    files = {"png": _png16(stored16, orientation), "png, eXIf after the image data": _png16(stored16, orientation, True),
             "tiff": _tiff16(stored16, orientation)}
    for kind, data in files.items():
        photo = load_photo(data, keep_depth=True)             # as a model loads a part
        assert photo.pixels.dtype == np.uint16, kind
        assert photo.size_hw == want.shape[:2], f"{kind}: size {photo.size_hw}, upright {want.shape[:2]}"
        np.testing.assert_array_equal(photo.pixels // 257, want, err_msg=f"{kind} not turned upright")
        np.testing.assert_array_equal(load_image(data), want, err_msg=kind)
        with Image.open(io.BytesIO(data)) as im:
            assert shown_hw(im) == want.shape[:2], kind       # the header read says the same
    # an 8-bit TIFF's size as shown, read from its header, is the one it loads at (Pillow
    # gives a TIFF on its side its shown size already: turned again, it was told on its side)
    tiff8 = io.BytesIO()
    Image.fromarray(stored8).save(tiff8, format="TIFF", tiffinfo={274: orientation})
    np.testing.assert_array_equal(load_image(tiff8.getvalue()), want)
    with Image.open(io.BytesIO(tiff8.getvalue())) as im:
        assert shown_hw(im) == want.shape[:2]


# -- JPEGs torn in their middle ----------------------------------------------------------------

def _jpeg(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _zeroed(data: bytes, at: float, count: int) -> bytes:
    """``count`` bytes zeroed ``at`` a fraction of the file: a torn copy, its size and both ends whole."""
    start = int(len(data) * at)
    return data[:start] + bytes(count) + data[start + count:]


_PART = make_part(3, (192, 256))[0]
_EXIF6 = _exif(6)
# baseline JPEGs as cameras and libraries write them: (whole file, where a block of its middle is zeroed)
WRITERS = {
    "pillow_q90": (lambda: _jpeg(_PART, quality=90), (0.5, 1024)),
    "pillow_q90_decoded_to_the_end_early": (lambda: _jpeg(_PART, quality=90), (0.7, 64)),
    "pillow_grey_optimized": (lambda: _jpeg(_PART[..., 1], quality=85, optimize=True), (0.5, 64)),
    "pillow_4_4_4": (lambda: _jpeg(_PART, quality=95, subsampling=0), (0.3, 1024)),
    "opencv_q92": (lambda: cv2.imencode(".jpg", _PART[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes(),
                   (0.5, 4096)),
    "shot_on_its_side": (lambda: _jpeg(_PART, quality=88, exif=_EXIF6), (0.5, 1024)),
}


def _as_pillow_decodes(data: bytes, scale: int = 1) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        if scale > 1:
            im.draft("RGB", (im.size[0] // scale, im.size[1] // scale))
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _whole_ones() -> dict[str, bytes]:
    """Whole JPEGs of every kind the torn-copy check sees (and some it leaves to the decoder)."""
    whole = _jpeg(_PART, quality=80)
    mpo = io.BytesIO()
    Image.fromarray(_PART).save(mpo, format="MPO", save_all=True, append_images=[Image.fromarray(_PART[::-1].copy())])
    return {
        **{name: make() for name, (make, _) in WRITERS.items()},
        # fill bytes before the end marker, and a phone's trailer after it
        "fill_and_trailer": whole[:-2] + b"\xff\xff\xff" + whole[-2:] + b"motion-photo" * 50,
        "restart_markers": _jpeg(_PART, quality=90, restart_marker_blocks=2),
        "opencv_optimized_restarts": cv2.imencode(".jpg", _PART, [cv2.IMWRITE_JPEG_OPTIMIZE, 1,
                                                                  cv2.IMWRITE_JPEG_RST_INTERVAL, 3])[1].tobytes(),
        "flat_grey_bottom": _jpeg(np.where(np.arange(192)[:, None, None] < 96, _PART, 128).astype(np.uint8)),
        "dark_optimized_grey": _jpeg((_PART[..., 0] // 16).astype(np.uint8), quality=95, optimize=True),
        "multi_picture": mpo.getvalue(),
        "progressive": _jpeg(_PART, quality=90, progressive=True),
    }


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_jpeg_torn_in_its_middle_is_refused_as_corrupt_while_whole_ones_load(writer):
    make, (at, count) = WRITERS[writer]
    torn = _zeroed(make(), at, count)
    for how in ("load_image", "load_photo_for_a_model", "station_style"):
        with pytest.raises(ImageError, match="corrupt or truncated.*middle") as info:
            if how == "load_image":
                load_image(torn)
            elif how == "load_photo_for_a_model":
                load_photo(torn, keep_depth=True, decode_scale=lambda h, w: 4)
            else:
                load_photo(torn, max_pixels=20_000, reduce_to_fit=True, keep_depth=True)
        assert "re-copy" in info.value.hint
    # and no whole JPEG is taken for a torn one: each loads as Pillow decodes it, whole and reduced
    for name, data in _whole_ones().items():
        np.testing.assert_array_equal(load_image(data), _as_pillow_decodes(data), err_msg=name)
        if name not in ("progressive", "multi_picture"):   # those two are decoded whole
            reduced = load_photo(data, decode_scale=lambda h, w: 4)
            np.testing.assert_array_equal(reduced.pixels, _as_pillow_decodes(data, 4), err_msg=name)


# -- through the station and the hot folder ------------------------------------------------------

@pytest.fixture
def station(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load, trainer=FakeInspector.fit)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    yield st
    st.close()


def test_the_station_answers_a_torn_jpeg_with_corrupt_image_and_keeps_nothing(station):
    from lineguard.line.errors import CorruptImage
    from lineguard.line.station import Part
    torn = _zeroed(_jpeg(_PART, quality=90), 0.5, 1024)
    with pytest.raises(CorruptImage) as info:
        station.inspect(torn, Part("p-torn", "L1", "S1", "cell"))
    assert info.value.code == "corrupt_image" and info.value.http_status == 422
    assert "corrupt or truncated" in str(info.value)
    assert station.query() == []


def test_the_hot_folder_waits_for_a_jpeg_whose_middle_is_not_written_yet(station, tmp_path):
    from test_damaged_photos import hot_folder_waits_for_the_whole_file
    whole = _jpeg(_PART, quality=90)
    hot_folder_waits_for_the_whole_file(station, tmp_path, "cell-8.jpg", whole, _zeroed(whole, 0.5, 1024))


@pytest.mark.parametrize("side", [8, 16])
def test_a_tiny_or_flat_jpeg_whose_image_data_is_shorter_than_the_slack_decodes(side):
    # a flat 16x16 photo's image data is a few bytes: the feed's last read fell inside its
    # header, and the photo was refused as truncated (review of 94677a8: 7,528 of 86,472)
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(buf, "JPEG", quality=75)
    assert load_photo(buf.getvalue()).pixels.shape[:2] == (side, side)


@pytest.mark.parametrize("pad", [16, 64, 4096])
def test_zero_padding_before_the_end_marker_is_no_torn_copy(pad):
    # an encoder may pad the image data before the end marker (libjpeg only warns): the blocks
    # all end before the padding, which is no torn middle
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    assert load_photo(data[:-2] + bytes(pad) + data[-2:]).pixels.shape[:2] == (96, 128)
