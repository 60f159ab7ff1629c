"""Damaged PNGs are refused, never judged half decoded.

A PNG with bytes zeroed in its image data (bit rot, or a copy that set the file's size
before filling its middle) decoded to a part with black rows: reading its orientation
decoded it first and the decode error was lost, and the station judged a "too dark"
part, stored it and raised alarms. Each is refused as a truncated PNG is (ImageError,
"corrupt or truncated"; the station's 422 corrupt_image, which the hot folder waits on).
A PNG of millions of tiny chunks, which Pillow walks in Python, is refused in bounded time.
"""
from __future__ import annotations

import io
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lineguard.vision.errors import ImageError, ImageTooLarge
from lineguard.vision.imageio import load_image, load_photo, shown_hw

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector  # noqa: E402


def _part(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A bright textured part: no row of it is black."""
    rng = np.random.default_rng(seed)
    return rng.integers(60, 256, (h, w, 3), dtype=np.uint8)


def _png(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        out.append((kind, png[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def _assemble(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(_chunk(k, d) for k, d in chunks)


def _idat_span(png: bytes) -> tuple[int, int]:
    """(start, end) of the first IDAT chunk's data in the file."""
    pos = 8
    while True:
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            return pos + 8, pos + 8 + length
        pos += 12 + length


def _zeroed(png: bytes) -> bytes:
    """64 bytes zeroed inside the image data, checksum left as written: bit rot, or an
    out-of-order copy that has not filled the middle of the file yet."""
    start, end = _idat_span(png)
    mid = (start + end) // 2
    return png[:mid] + bytes(64) + png[mid + 64:]


def _rotten_resealed(png: bytes) -> bytes:
    """The image data damaged and its checksum made to match: only the decoder can tell."""
    chunks = _chunks(png)
    out = []
    for kind, data in chunks:
        if kind == b"IDAT":
            mid = len(data) // 2
            data = data[:mid] + bytes(64) + data[mid + 64:]
        out.append((kind, data))
    return _assemble(out)


def _junk_after_header(png: bytes) -> bytes:
    """A valid header, then image data and a tail of random bytes (a file overwritten
    with garbage past its first bytes)."""
    rng = np.random.default_rng(3)
    ihdr = _chunks(png)[0]
    return _assemble([ihdr, (b"IDAT", rng.bytes(20_000))]) + rng.bytes(200_000)


def _deep_grey_png() -> bytes:
    arr = (np.random.default_rng(4).integers(500, 4000, (96, 128))).astype(np.uint16)
    return _png(arr)


DAMAGED = {
    "zeroed_in_image_data": lambda: _zeroed(_png(_part())),
    "damaged_with_matching_checksum": lambda: _rotten_resealed(_png(_part())),
    "junk_after_a_valid_header": lambda: _junk_after_header(_png(_part())),
    "zeroed_16_bit_grey": lambda: _zeroed(_deep_grey_png()),
    "resealed_16_bit_grey": lambda: _rotten_resealed(_deep_grey_png()),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
@pytest.mark.parametrize("how", ["load_image", "load_photo_for_a_model", "opened_by_pillow"])
def test_a_damaged_png_is_refused_as_corrupt_never_judged_half_decoded(kind, how):
    data = DAMAGED[kind]()
    with pytest.raises(ImageError, match="corrupt or truncated") as info:
        if how == "load_image":
            load_image(data)
        elif how == "load_photo_for_a_model":   # as the station loads a part
            load_photo(data, reduce_to_fit=True, keep_depth=True, decode_scale=lambda h, w: 4)
        else:
            load_image(Image.open(io.BytesIO(data)))
    assert not isinstance(info.value, ImageTooLarge)


def test_a_damaged_png_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "cell-0042.png"
    path.write_bytes(_zeroed(_png(_part())))
    with pytest.raises(ImageError, match="corrupt or truncated") as info:
        load_image(path)
    assert info.value.source == str(path)


def _many_chunks(before_image_data: bool, count: int = 60_000) -> bytes:
    """A 128 px part with tens of thousands of empty private chunks: Pillow walks each
    in Python (the walk's 30 MB file took 15-27 s a part)."""
    chunks = _chunks(_png(_part(64, 128)))
    flood = [(b"abCd", b"")] * count
    at = 1 if before_image_data else next(i for i, (k, _) in enumerate(chunks) if k == b"IEND")
    return _assemble(chunks[:at] + flood + chunks[at:])


@pytest.mark.parametrize("before_image_data", [False, True], ids=["after_image_data", "before_image_data"])
def test_a_png_of_absurdly_many_chunks_is_refused_without_walking_them(before_image_data):
    data = _many_chunks(before_image_data)
    started = time.perf_counter()
    with pytest.raises(ImageError, match="chunks"):
        load_photo(data, reduce_to_fit=True, keep_depth=True)
    print(f"refused {len(data) / 1e6:.2f} MB of chunks in {time.perf_counter() - started:.3f} s")
    # while a PNG with a few hundred notes and private chunks, far more than any
    # camera writes, still loads
    arr = _part(64, 128)
    chunks = _chunks(_png(arr))
    notes = [(b"tEXt", b"Station\x00S%d" % i) for i in range(200)] + [(b"abCd", b"x" * 10)] * 200
    at = 1 if before_image_data else len(chunks) - 1
    np.testing.assert_array_equal(load_image(_assemble(chunks[:at] + notes + chunks[at:])), arr)


def _turned_png(exif_after_image_data: bool) -> tuple[bytes, np.ndarray]:
    """A 32 x 64 photo stored on its side (EXIF orientation 6), its eXIf chunk before the
    image data (as Pillow writes it) or after (as libpng does when it is set late)."""
    stored = _part(32, 64)
    stored[:8, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    png = _png(stored, exif=exif.tobytes())
    if exif_after_image_data:
        chunks = _chunks(png)
        exif_chunk = next(c for c in chunks if c[0] == b"eXIf")
        rest = [c for c in chunks if c[0] != b"eXIf"]
        png = _assemble(rest[:-1] + [exif_chunk] + rest[-1:])
        assert [k for k, _ in _chunks(png)][-2:] == [b"eXIf", b"IEND"]
    return png, stored


def test_a_png_stored_on_its_side_is_turned_and_its_orientation_read_without_decoding():
    for exif_after_image_data in (False, True):
        png, stored = _turned_png(exif_after_image_data)
        turned = load_image(png)
        np.testing.assert_array_equal(turned, np.rot90(stored, -1))   # 6: a clockwise quarter turn
        assert load_photo(png, decode_scale=lambda h, w: 4).size_hw == (64, 32)
        with Image.open(io.BytesIO(png)) as im:
            assert shown_hw(im) == (64, 32)
            # the header read leaves the photo undecoded: a decode error met there was
            # lost, and the station's header read of each part decoded every PNG twice
            assert im.tile, f"reading the orientation decoded the photo (eXIf after: {exif_after_image_data})"


def test_reading_a_plain_pngs_size_does_not_decode_it():
    with Image.open(io.BytesIO(_png(_part()))) as im:
        assert shown_hw(im) == (96, 128) and im.tile


# -- through the station: 422 corrupt_image, nothing stored --------------------------

@pytest.fixture
def station(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load, trainer=FakeInspector.fit)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    yield st
    st.close()


@pytest.mark.parametrize("kind", list(DAMAGED)[:3])
def test_the_station_answers_a_damaged_png_with_corrupt_image_and_keeps_nothing(station, kind):
    from lineguard.line.errors import CorruptImage
    from lineguard.line.station import Part
    with pytest.raises(CorruptImage) as info:
        station.inspect(DAMAGED[kind](), Part(f"p-{kind}", "L1", "S1", "cell"))
    assert info.value.code == "corrupt_image" and info.value.http_status == 422
    assert "corrupt or truncated" in str(info.value)
    assert station.query() == []


def hot_folder_waits_for_the_whole_file(station, tmp_path, name: str, whole: bytes, unwritten: bytes) -> None:
    """A photo in the hot folder with its size and both ends written, its middle not yet
    (``unwritten``): nothing recorded, the file left where it is; written whole, it is
    recorded under its name and moved to done/."""
    from lineguard.line.sources import local_submitter
    from lineguard.line.sources.folder import FolderWatcher
    inbox = tmp_path / "in"
    inbox.mkdir()
    path = inbox / name
    path.write_bytes(unwritten)
    w = FolderWatcher(inbox, local_submitter(station, "L1", "S1", "cell", "folder"), settle_s=0.05,
                      incomplete_after_s=60)
    for _ in range(4):
        w.poll_once()
        time.sleep(0.07)
    assert station.query() == [] and path.exists() and not (inbox / "done").exists()
    path.write_bytes(whole)            # the writer fills it
    for _ in range(4):
        w.poll_once()
        time.sleep(0.07)
    assert [r.part_id for r in station.query()] == [Path(name).stem]
    assert (inbox / "done" / name).exists()


def test_the_hot_folder_waits_for_a_png_whose_middle_is_not_written_yet(station, tmp_path):
    whole = _png(_part(seed=9))
    hot_folder_waits_for_the_whole_file(station, tmp_path, "cell-7.png", whole, _zeroed(whole))


def test_the_camera_depth_read_refuses_a_png_of_absurdly_many_chunks():
    # training reads each good photo's depth first (deep_max): a flood is skipped there
    # (None: "unreadable, load_image says why") rather than walked
    from lineguard.vision.imageio import deep_max
    chunks = _chunks(_deep_grey_png())
    flood = _assemble(chunks[:-1] + [(b"abCd", b"")] * 60_000 + chunks[-1:])
    assert deep_max(_assemble(chunks)) is not None
    assert deep_max(flood) is None


def test_the_stations_pixel_budget_read_refuses_a_chunk_flood_before_pillow_walks_it():
    # the station reads every upload's header for its pixel budget before load_photo:
    # Pillow walks the chunks before the image data in Python to open it (12 s a 30 MB flood)
    from lineguard.line.station import declared_pixels
    assert declared_pixels(_png(_part()), 10**8) == 96 * 128
    assert declared_pixels(_many_chunks(before_image_data=True), 10**8) == 0   # refused later, by load_photo
