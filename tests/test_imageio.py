"""Image loading as plants have it: every pixel format into RGB uint8, and every bad file
refused with an ImageError that names it."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lineguard.vision.errors import DatasetError, ImageError, PhotoTooDeep
from lineguard.vision.imageio import (Photo, check_sensor_bits, deep_max, list_images, load_image, load_images,
                                     load_photo, save_png_atomic, sensor_bits_for)

# PIL warns before lineguard refuses; the refusal is what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def _save(im: Image.Image, path: Path, **kw) -> Path:
    im.save(path, **kw)
    return path


def _noise(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (1-bit gray) but holds almost no data.

    A few hundred bytes stand for a picture of any size: the shape of a decompression
    bomb, and of a 100-megapixel image, without allocating either.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


# --------------------------------------------------------------------------- formats


def test_rgb_png_round_trips_exactly(tmp_path):
    arr = _noise()
    out = load_image(_save(Image.fromarray(arr), tmp_path / "rgb.png"))
    assert out.dtype == np.uint8 and out.shape == arr.shape
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, arr)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = _noise()[:, :, 0]
    out = load_image(_save(Image.fromarray(gray, mode="L"), tmp_path / "gray.png"))
    assert out.shape == gray.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (200, 100, 50, 255)     # opaque: kept as is
    rgba[:, 8:] = (200, 100, 50, 0)       # transparent: black background
    out = load_image(_save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png"))
    assert out.shape == (16, 16, 3)
    assert (out[:, :8] == (200, 100, 50)).all()
    assert (out[:, 8:] == 0).all()


def test_la_is_composited_on_black(tmp_path):
    la = Image.new("LA", (16, 16), (180, 255))
    la.paste((180, 0), (0, 0, 16, 8))
    out = load_image(_save(la, tmp_path / "la.png"))
    assert (out[:8] == 0).all() and (out[8:] == 180).all()


def _palette_image() -> Image.Image:
    im = Image.new("P", (16, 16), 1)
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    im.paste(0, (0, 0, 8, 16))            # left half index 0 (red), right half index 1 (green)
    return im


def test_palette_without_transparency_gives_palette_colours(tmp_path):
    out = load_image(_save(_palette_image(), tmp_path / "pal.png"))
    assert (out[:, :8] == (255, 0, 0)).all()
    assert (out[:, 8:] == (0, 255, 0)).all()


def test_palette_with_transparency_composites_transparent_index_on_black(tmp_path):
    path = _save(_palette_image(), tmp_path / "pal_t.png", transparency=0)
    with Image.open(path) as im:
        assert im.mode == "P" and "transparency" in im.info   # the file really has tRNS
    out = load_image(path)
    assert (out[:, :8] == 0).all()                            # red index is transparent
    assert (out[:, 8:] == (0, 255, 0)).all()


def test_16bit_png_uses_the_full_range_not_the_low_byte(tmp_path):
    arr = np.array([[0, 257, 32896, 65535] * 4] * 16, dtype=np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / "deep.png")
    with Image.open(path) as im:
        assert im.mode.startswith("I")                        # a real 16-bit file
    out = load_image(path)
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[0, :4, 0], [0, 1, 128, 255])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()


def test_12bit_camera_data_in_a_16bit_file_is_scaled_by_the_cameras_depth(tmp_path):
    # A Mono12 camera's PNG / TIFF: values 0..4095 in 16-bit pixels. Scaled by the 16-bit
    # range (the default, as models trained before the setting read it) it is nearly black.
    arr = np.array([[0, 1024, 2048, 4095] * 4] * 16, dtype=np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / "mono12.png")
    np.testing.assert_array_equal(load_image(path)[0, :4, 0], [0, 4, 8, 16])
    np.testing.assert_array_equal(load_image(path, sensor_bits=12)[0, :4, 0], [0, 64, 128, 255])
    np.testing.assert_array_equal(load_image(arr, sensor_bits=12)[0, :4, 0], [0, 64, 128, 255])
    # a brighter value than a model's depth holds (another camera) is refused, not judged white
    for src in (arr, path):
        with pytest.raises(PhotoTooDeep, match="values up to 4095, past the 10-bit camera depth"):
            load_image(src, sensor_bits=10)
        with pytest.raises(PhotoTooDeep):
            load_image(src, sensor_bits=8, keep_depth=True)
    # "auto": the photo's own depth (for showing a photo)
    np.testing.assert_array_equal(load_image(arr, sensor_bits="auto")[0, :4, 0], [0, 64, 128, 255])
    np.testing.assert_array_equal(load_image(arr // 4, sensor_bits="auto")[0, :4, 0], [0, 64, 128, 255])
    # kept as it is, for a model to scale by its own setting
    kept = load_image(path, keep_depth=True)
    assert kept.dtype == np.uint16 and kept.shape == (16, 16)
    np.testing.assert_array_equal(kept, arr)
    assert load_image(path.read_bytes(), keep_depth=True).dtype == np.uint16
    assert load_image(arr, keep_depth=True).dtype == np.uint16
    np.testing.assert_array_equal(load_image(kept, sensor_bits=12), load_image(path, sensor_bits=12))
    # 8-bit photos are what they were, whatever the setting
    eight = (np.arange(256, dtype=np.uint8)[None, :].repeat(16, axis=0))
    for bits in (None, 12, "auto"):
        np.testing.assert_array_equal(load_image(eight, sensor_bits=bits, keep_depth=True)[..., 0], eight)


def test_the_depth_of_deep_photos_is_read_and_8_bit_photos_have_none(tmp_path):
    arr = np.array([[0, 3000] * 8] * 16, dtype=np.uint16)
    deep = _save(Image.fromarray(arr), tmp_path / "deep.png")
    flat = _save(Image.fromarray(np.full((16, 16), 200, np.uint8)), tmp_path / "flat.png")
    assert deep_max(deep) == deep_max(deep.read_bytes()) == deep_max(arr) == 3000
    assert deep_max(flat) is None and deep_max(np.zeros((16, 16), np.uint8)) is None
    assert deep_max(tmp_path / "missing.png") is None
    assert [sensor_bits_for(v) for v in (200, 255, 256, 1023, 3000, 4095, 4096, 16383, 60000)] == \
        [8, 8, 10, 10, 12, 12, 14, 14, 16]


@pytest.mark.parametrize("bits", [7, 13, 0, "12", True, 12.0])
def test_bad_sensor_bits_are_refused(bits):
    with pytest.raises(ValueError, match="bit depth"):
        check_sensor_bits(bits)


def _exif_jpeg(orientation: int) -> bytes:
    # 64 wide x 32 high as stored; a bright block in the stored top-left corner.
    arr = np.full((32, 64, 3), 20, np.uint8)
    arr[:8, :8] = 240
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rot.jpg"
    path.write_bytes(_exif_jpeg(6))   # 6: the camera was turned; display rotated 90 deg clockwise
    out = load_image(path)
    assert out.shape == (64, 32, 3)
    # clockwise turn: the stored top-left corner is shown top-right
    assert out[:8, -8:].mean() > 200
    assert out[:8, :8].mean() < 60
    np.testing.assert_array_equal(load_image(path.read_bytes()), out)


def test_exif_orientation_1_keeps_shape(tmp_path):
    assert load_image(_exif_jpeg(1)).shape == (32, 64, 3)


def test_a_jpeg_decodes_at_the_scale_asked_for_its_shown_size_and_keeps_that_size():
    # The reduction is asked for the photo as shown (EXIF applied: 64 high, 32 wide), the
    # pixels come turned like a full decode's, and the photo's own size is kept.
    asked = []

    def quarter(h: int, w: int) -> int:
        asked.append((h, w))
        return 4

    photo = load_photo(_exif_jpeg(6), decode_scale=quarter)
    assert asked == [(64, 32)] and photo.size_hw == (64, 32) and photo.reduced
    assert photo.pixels.shape == (16, 8, 3)
    assert photo.pixels[:2, -2:].mean() > 200 and photo.pixels[:2, :2].mean() < 60   # turned as shown
    # without a rule, or at scale 1, the photo is decoded whole (as load_image does)
    for whole in (load_photo(_exif_jpeg(6)), load_photo(_exif_jpeg(6), decode_scale=lambda h, w: 1)):
        assert not whole.reduced and whole.size_hw == (64, 32)
        np.testing.assert_array_equal(whole.pixels, load_image(_exif_jpeg(6)))


def test_a_png_stored_on_its_side_keeps_its_shown_size_when_decoded_for_a_model():
    stored = _noise(32, 64)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="PNG", exif=exif.tobytes())
    photo = load_photo(buf.getvalue(), decode_scale=lambda h, w: 4)   # PNGs are decoded whole
    assert photo.pixels.shape == (64, 32, 3) and photo.size_hw == (64, 32) and not photo.reduced


def test_only_jpegs_decode_at_reduced_scale_and_a_photo_loads_as_its_pixels():
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 96)).save(buf, format="PNG")
    png = load_photo(buf.getvalue(), decode_scale=lambda h, w: 8)
    assert not png.reduced and png.pixels.shape == (64, 96, 3)
    small = load_photo(_exif_jpeg(1), decode_scale=lambda h, w: 2)
    np.testing.assert_array_equal(load_image(small), small.pixels)   # what a stand-in inspector is given
    again = load_photo(small)
    assert again.size_hw == (32, 64) and again.pixels.shape == (16, 32, 3)
    grey = load_photo(np.zeros((20, 30), np.uint8), decode_scale=lambda h, w: 8)   # arrays: as they are
    assert isinstance(grey, Photo) and grey.size_hw == (20, 30) and grey.pixels.shape == (20, 30, 3)


def test_bytes_path_str_and_pil_inputs_agree(tmp_path):
    arr = _noise()
    path = _save(Image.fromarray(arr), tmp_path / "a.png")
    ref = load_image(path)
    np.testing.assert_array_equal(load_image(str(path)), ref)
    np.testing.assert_array_equal(load_image(path.read_bytes()), ref)
    with Image.open(path) as im:
        np.testing.assert_array_equal(load_image(im), ref)


@pytest.mark.parametrize("shape", [(20, 24), (20, 24, 1)])
def test_uint8_gray_arrays(shape):
    arr = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    out = load_image(arr)
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 1], arr.reshape(20, 24))


def test_uint8_rgb_array_passes_through_and_becomes_contiguous():
    arr = _noise()
    view = arr[:, ::-1]                     # a negative-stride view, as from a flipped camera
    out = load_image(view)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, view)


def test_uint16_array_scales_to_8_bits():
    arr = np.array([[0, 257, 32896, 65535] * 2] * 8, dtype=np.uint16)
    out = load_image(arr)
    np.testing.assert_array_equal(out[0, :4, 0], [0, 1, 128, 255])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_arrays_in_unit_range_are_scaled_and_clipped(dtype):
    # rounding's overshoot of [0, 1] is clipped; more is refused (test_float_array_outside_0_1_is_refused)
    arr = np.array([[-0.001, 0.0, 0.5, 1.0, 1.001] * 2] * 8, dtype=dtype)
    out = load_image(arr)
    np.testing.assert_array_equal(out[0, :5, 0], [0, 0, 128, 255, 255])


def test_rgba_array_drops_alpha_channel_to_rgb():
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[..., :3] = 90
    arr[..., 3] = 255
    out = load_image(arr)
    assert out.shape == (8, 8, 3) and (out == 90).all()


def test_rgba_array_and_rgba_file_load_the_same(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, 8:, 3] = 255                   # left half transparent
    path = _save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(rgba), load_image(path))


@pytest.mark.parametrize("arr", [np.zeros((8, 8), np.int32), np.zeros((8, 8, 3), np.int64),
                                 np.zeros((8, 8), bool)], ids=["int32", "int64", "bool"])
def test_unsupported_array_dtypes_are_refused(arr):
    with pytest.raises(ImageError, match="dtype"):
        load_image(arr)


@pytest.mark.parametrize("shape", [(8, 8, 2), (8, 8, 5), (8,), (2, 8, 8, 3)])
def test_unsupported_array_shapes_are_refused(shape):
    with pytest.raises(ImageError, match="array"):
        load_image(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(0, 0, 3), (2, 2, 3)], ids=["empty", "2x2"])
def test_empty_or_tiny_arrays_are_refused(shape):
    with pytest.raises(ImageError):
        load_image(np.zeros(shape, np.uint8))


# --------------------------------------------------------------------------- bad files


def _good_png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, format="PNG")
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_FILES = {
    "corrupt": lambda d: _write(d / "corrupt.png", np.random.default_rng(1).bytes(3000)),
    "truncated_png": lambda d: _write(d / "truncated.png", _good_png_bytes()[:3000]),
    "empty": lambda d: _write(d / "empty.png", b""),
    "text": lambda d: _write(d / "notes.png", b"part 17: looks fine to me\n" * 20),
    "missing": lambda d: d / "never_written.png",
    "folder": lambda d: (d / "folder.png").mkdir() or d / "folder.png",
    "bomb": lambda d: _write(d / "bomb.png", _png_declaring(100_000, 100_000)),
    "100_megapixels": lambda d: _write(d / "huge.png", _png_declaring(10_000, 10_000)),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_raises_image_error_naming_the_file(tmp_path, kind):
    path = BAD_FILES[kind](tmp_path)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)
    assert info.value.problem


def test_truncated_png_message_says_corrupt_or_truncated(tmp_path):
    path = BAD_FILES["truncated_png"](tmp_path)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(path)


def test_truncated_jpeg_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, format="JPEG")
    path = _write(tmp_path / "cut.jpg", buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=str(path)):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = BAD_FILES["bomb"](tmp_path)
    with pytest.raises(ImageError, match="decompression bomb|megapixels"):
        load_image(path)


def test_100_megapixel_image_is_over_the_default_limit(tmp_path):
    path = BAD_FILES["100_megapixels"](tmp_path)
    with pytest.raises(ImageError, match="100 megapixels"):
        load_image(path)


def test_image_over_max_pixels_is_refused_and_limit_restored(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = _save(Image.fromarray(_noise(100, 100)), tmp_path / "big.png")
    with pytest.raises(ImageError, match="over the limit"):
        load_image(path, max_pixels=6_000)          # 10 000 px: over the limit, under PIL's 2x bomb line
    with pytest.raises(ImageError, match=str(path)):
        load_image(path, max_pixels=1_000)          # far over: PIL's own bomb check
    assert load_image(path, max_pixels=10_000).shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == before


def test_too_small_image_is_refused(tmp_path):
    path = _save(Image.fromarray(_noise(4, 4)), tmp_path / "speck.png")
    with pytest.raises(ImageError, match="too small"):
        load_image(path)


def test_bad_bytes_are_named_by_length():
    with pytest.raises(ImageError, match="<5 bytes>"):
        load_image(b"hello")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


# --------------------------------------------------------------------------- folders


def test_list_images_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list_images(tmp_path / "nope")


def test_list_images_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(DatasetError, match="no images"):
        list_images(tmp_path)


def test_list_images_on_a_file(tmp_path):
    f = _write(tmp_path / "a.png", _good_png_bytes())
    with pytest.raises(DatasetError, match=str(f)):
        list_images(f)


def test_list_images_sorted_filtered_and_recursive(tmp_path):
    data = _good_png_bytes()
    for name in ("b.png", "a.PNG", "c.jpg", ".hidden.png", "notes.txt", "sub/d.png"):
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.png", "c.jpg"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.PNG", "b.png", "c.jpg", "d.png"]


def test_load_images_keeps_good_and_reports_bad(tmp_path):
    good = _write(tmp_path / "good.png", _good_png_bytes())
    bad = _write(tmp_path / "bad.png", b"not a picture at all")
    images, ok, errors = load_images([good, bad, good])
    assert len(images) == 2 and ok == [good, good]
    assert len(errors) == 1 and str(bad) in str(errors[0])


def test_save_png_atomic_leaves_no_temp_files(tmp_path):
    arr = _noise()
    out = save_png_atomic(arr, tmp_path / "sub" / "o.png")
    np.testing.assert_array_equal(load_image(out), arr)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["o.png"]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_photos_are_read_whole_not_from_their_top_byte(tmp_path, suffix):
    # Pillow reads a 48-bit PNG / TIFF as 8-bit RGB from each value's top byte: a 12-bit
    # colour camera's photo came out in values 0-15
    cv2 = pytest.importorskip("cv2")
    rgb = np.zeros((16, 24, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 4095, 2048, 64           # red, green, blue
    path = tmp_path / f"rgb12{suffix}"
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])                   # OpenCV writes BGR
    np.testing.assert_array_equal(load_image(path, sensor_bits=12)[0, 0], [255, 128, 4])
    kept = load_image(path.read_bytes(), keep_depth=True)
    assert kept.dtype == np.uint16 and kept.shape == (16, 24, 3)
    np.testing.assert_array_equal(kept, rgb)
    assert deep_max(path) == deep_max(path.read_bytes()) == 4095
    with pytest.raises(PhotoTooDeep):
        load_image(path, sensor_bits=10)


def test_16bit_colour_without_opencv_is_refused_with_what_to_do(tmp_path, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    import builtins
    path = tmp_path / "rgb12.png"
    cv2.imwrite(str(path), np.full((16, 16, 3), 4000, np.uint16))
    real_import = builtins.__import__

    def no_cv2(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("no OpenCV here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    with pytest.raises(ImageError, match="16-bit colour photo.*opencv-python-headless"):
        load_image(path)


def test_a_file_named_as_an_image_that_is_none_is_said_damaged_or_misnamed(tmp_path):
    # "use one of .png, .jpg, ..." told the owner of cell-7.png to use a .png
    f = tmp_path / "cell-7.png"
    f.write_bytes(b"not an image at all, but named as one")
    with pytest.raises(ImageError, match="damaged or misnamed"):
        load_image(f)
    with pytest.raises(ImageError, match="use one of"):
        load_image(b"not an image at all")                    # bytes: no name to go by


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "jpeg"])
def test_a_tiff_with_an_exif_orientation_is_turned_once(compression):
    """Pillow's TIFF reader turns the photo as it loads it; turned again after, orientations
    2-8 came back as stored or upside down (2026-12-05, the PNG orientation rework)."""
    import io
    from PIL import Image, ImageOps
    from lineguard.vision.imageio import load_photo
    a = np.zeros((40, 60, 3), np.uint8)
    a[:10, :20] = 255                       # a mark in one corner shows every turn and flip
    for orientation in range(2, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "TIFF", exif=exif, **({"compression": compression} if compression else {}))
        data = buf.getvalue()
        want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB")))
        photo = load_photo(data)
        assert photo.pixels.shape == want.shape, orientation
        assert np.abs(photo.pixels.astype(int) - want).max() < 40, orientation
        assert tuple(photo.size_hw) == want.shape[:2], orientation
        assert load_image(data).shape == want.shape, orientation
