"""Read part images the way plants have them, into one canonical form.

Canonical form: a C-contiguous ``uint8`` array of shape (H, W, 3), RGB, with EXIF
orientation applied. Grayscale, RGBA, palette and 16-bit images are converted here so
that nothing downstream has to care. Size limits guard against decompression bombs.

16-bit photos usually hold a 10-, 12- or 14-bit sensor's values (a Mono12 camera's PNG or
TIFF has values up to 4095): scaled by the 16-bit range they would come out nearly black
(a 12-bit photo in 16 grey levels). ``sensor_bits`` is the depth whose full scale is
white: a model learns it from its good parts (``Inspector.fit``; 8 when they are 8-bit)
and loads every photo with it, so brightness stays comparable from part to part, and a
photo past it (another camera) is refused rather than judged white; ``"auto"`` takes each
photo's own (for showing a photo, never for judging one); None, the 16-bit range (models
trained before the setting existed).
"""
from __future__ import annotations

import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import DatasetError, ImageError, ImageTooLarge, PhotoTooDeep

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS) is one process-wide setting: it is
# left at Pillow's default, and load_image checks its own limit from the header. It was
# set and reset around each call before, which races when parts decode on several threads.

# 64 MP covers every industrial camera we know of (a 150 MP line-scan strip is split
# upstream). Above it a file is refused before decoding so a hostile or broken file
# cannot take the station's memory.
DEFAULT_MAX_PIXELS = 64_000_000

ImageLike = Union[str, os.PathLike, bytes, np.ndarray, Image.Image, "Photo"]

# Depths line cameras deliver; the deeper ones arrive in 16-bit files with the top bits unused.
SENSOR_BITS = (8, 10, 12, 14, 16)
SensorBits = Union[None, int, str]   # None (the 16-bit range), one of SENSOR_BITS, or "auto"
# Pillow's modes for more than 8 bits a pixel: 16-bit greyscale, and 32-bit integers
# (how older Pillow opens 16-bit PNGs)
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A camera's PNG holds a handful of chunks besides its image data, which writers cut in
# pieces of 8-64 KB. Pillow walks every chunk in Python: 30 MB of empty chunks after the
# image data took 15-27 s of CPU a part (four such parts starved a line). Past this many
# chunks, plus one for every 2 KB of file, a PNG is refused before Pillow opens it.
MAX_PNG_CHUNKS = 4096
_PNG_BYTES_PER_CHUNK = 2048

# libjpeg decodes a progressive JPEG, or one whose colours come in separate scans, by
# holding the coefficients of every 8x8 block of the whole photo (2 bytes each) until
# its last scan, whatever reduction it is decoded at: 563 bytes declaring 12000x12000
# took a station 950 MB and 4 s, counted as the 2.25 megapixels of its 1/8 decode. A
# baseline JPEG (all colours in one scan) is decoded a row of blocks at a time. Its
# header is walked for at most this many segments (a camera writes a dozen or two).
MAX_JPEG_SEGMENTS = 4096
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}   # SOFn; C4/C8/CC are tables
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})

# A TIFF lists where each strip (or tile) of a page lies and how long it is. A photo of
# the largest size the station takes, one row a strip, needs some tens of thousands;
# tables of a million entries on each of a dozen pages, all pointing at one 4 MB block,
# hung the hot-folder watcher for minutes. Past this many entries over the pages walked
# (at most MAX_TIFF_PAGES) a TIFF is refused before Pillow opens it.
MAX_TIFF_ENTRIES = 2_000_000
MAX_TIFF_PAGES = 64
TIFF_TABLE_TAGS = (273, 279, 324, 325)   # StripOffsets, StripByteCounts, TileOffsets, TileByteCounts


def check_sensor_bits(bits: SensorBits) -> SensorBits:
    """``bits`` if it is a sensor depth setting, else a ValueError that says what is."""
    if bits is None or bits == "auto":
        return bits
    if isinstance(bits, int) and not isinstance(bits, bool) and bits in SENSOR_BITS:
        return bits
    raise ValueError(f"sensor_bits must be 'auto' or one of {', '.join(map(str, SENSOR_BITS))} "
                     f"(the camera's bit depth); got {bits!r}")


def sensor_bits_of(model: object) -> SensorBits:
    """The camera depth a model loads photos with (None for models without one, and for
    stand-ins that have no preprocessing)."""
    return getattr(getattr(model, "preprocess", None), "sensor_bits", None)


def decode_scale_of(model: object) -> Optional["DecodeScale"]:
    """The JPEG decode reduction a model's input allows (``Preprocess.decode_scale``; None
    for stand-ins without preprocessing, whose photos are decoded whole)."""
    return getattr(getattr(model, "preprocess", None), "decode_scale", None)


def load_photo_for(model: object, src: ImageLike, max_pixels: Optional[int] = None) -> "Photo":
    """A part's photo loaded for ``model`` to judge (``Inspector.inspect_batch`` takes it):
    a large JPEG at the reduction its input allows, 16-bit pixels kept as they are for the
    model to scale by its camera depth (and refused past it, with the reason). With a
    station's ``max_pixels``, a JPEG over it is decoded reduced as the station does;
    without, anything over DEFAULT_MAX_PIXELS is refused (a caller may then reload the
    file whole, e.g. to draw an overlay)."""
    return load_photo(src, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                      reduce_to_fit=max_pixels is not None, keep_depth=True, sensor_bits=sensor_bits_of(model),
                      decode_scale=decode_scale_of(model))


def sensor_bits_for(largest: float) -> int:
    """The smallest sensor depth whose full scale holds ``largest``."""
    return next((b for b in SENSOR_BITS if largest <= 2 ** b - 1), SENSOR_BITS[-1])


def check_depth(arr: np.ndarray, sensor_bits: SensorBits, name: str) -> None:
    """A model's camera depth (an int) must hold the photo's values: brighter ones mean a
    deeper camera or another output format, and would judge a white part."""
    if isinstance(sensor_bits, int) and arr.size:
        largest = int(arr.max())
        if largest > 2 ** sensor_bits - 1:
            raise PhotoTooDeep(name, f"holds values up to {largest}, past the {sensor_bits}-bit camera depth "
                                     f"the model learned from (white = {2 ** sensor_bits - 1})",
                               "the camera's bit depth or output format changed: set it back, or retrain on "
                               "photos like this one (train --sensor-bits sets the depth)")


def _deep_to_uint8(arr: np.ndarray, sensor_bits: SensorBits) -> np.ndarray:
    a = arr.astype(np.float32)       # float32: half float64's memory, the same 8-bit result
    if isinstance(sensor_bits, int):
        top = float(2 ** sensor_bits - 1)
    else:                            # the photo's own largest value decides ("auto", None)
        top = float(a.max())
        if sensor_bits == "auto":
            top = float(2 ** sensor_bits_for(top) - 1)
        elif top <= 65535:
            top = 65535.0
    return (np.clip(a / max(top, 1.0) * 255.0 + 0.5, 0, 255)).astype(np.uint8)


def _is_deep_colour(im: Image.Image, head: bytes) -> bool:
    """A PNG or TIFF with 16 bits a colour channel (``head``: the file's first 32 bytes):
    Pillow reads those as 8-bit RGB made of each value's top byte, which for a 12-bit
    colour camera is values 0-15."""
    if im.format == "PNG" and head[12:16] == b"IHDR":
        return head[24] == 16 and head[25] in (2, 6)        # bit depth 16; RGB or RGBA
    if im.format == "TIFF" and im.mode in ("RGB", "RGBA"):
        bits = im.tag_v2.get(258) or ()                     # BitsPerSample
        return any(b == 16 for b in (bits if isinstance(bits, tuple) else (bits,)))
    return False


def _decode_deep_colour(data: bytes, name: str) -> np.ndarray:
    """A 16-bit colour photo as a uint16 (H, W, 3) RGB array (an alpha channel is dropped:
    its scale need not be the camera's), read by OpenCV."""
    try:
        import cv2
    except ImportError:
        raise ImageError(name, "is a 16-bit colour photo, which lineguard reads with OpenCV",
                         "install opencv-python-headless (the station's install has it), or save the "
                         "photos as 8-bit colour or 16-bit greyscale") from None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] < 3:
        raise ImageError(name, "is a 16-bit colour photo OpenCV cannot read", "save it as 8-bit colour")
    return np.ascontiguousarray(arr[:, :, 2::-1])           # BGR(A) -> RGB


def deep_max(src: ImageLike) -> Optional[int]:
    """The largest value of a photo with more than 8 bits a channel, None for an 8-bit one
    (read from the header; only deep photos are decoded) or one that cannot be read."""
    if isinstance(src, Photo):
        src = src.pixels
    if isinstance(src, np.ndarray):
        return int(src.max()) if src.dtype == np.uint16 and src.size else None
    try:
        if isinstance(src, Image.Image):
            return int(np.asarray(src).max()) if src.mode in DEEP_MODES else None
        is_path = isinstance(src, (str, os.PathLike))
        with (open(src, "rb") if is_path else io.BytesIO(src)) as f:
            if f.read(8) == PNG_SIGNATURE:   # a chunk flood is refused before Pillow walks it
                _walk_png(f, refuse=True)
        with Image.open(src if is_path else io.BytesIO(src)) as im:   # the header only, so far
            w, h = im.size
            if w * h > DEFAULT_MAX_PIXELS:    # load_image refuses it, from the header
                return None
            if im.mode in DEEP_MODES:
                return int(np.asarray(im).max())
            with (open(src, "rb") if is_path else io.BytesIO(src)) as f:
                head = f.read(32)
            if _is_deep_colour(im, head):
                return int(_decode_deep_colour(Path(src).read_bytes() if is_path else src, "").max())
            return None
    except Exception:  # noqa: BLE001 - unreadable: load_image says why, later
        return None


def _describe(src: ImageLike) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, bytes):
        return f"<{len(src)} bytes>"
    if isinstance(src, np.ndarray):
        return f"<array {src.shape} {src.dtype}>"
    if isinstance(src, Photo):
        return f"<photo {src.size_hw[1]}x{src.size_hw[0]}>"
    return "<PIL image>"


def _to_rgb8(im: Image.Image, name: str, sensor_bits: SensorBits = None,
             keep_depth: bool = False) -> np.ndarray:
    mode = im.mode
    if mode in DEEP_MODES:
        arr = np.asarray(im)
        check_depth(arr, sensor_bits, name)
        if keep_depth and (mode != "I" or (arr.min() >= 0 and arr.max() <= 65535)):
            return np.ascontiguousarray(arr, dtype=np.uint16)
        gray = _deep_to_uint8(arr, sensor_bits)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        gray = np.clip((arr - lo) * scale, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        # Transparent pixels are composited on black: a cut-out part photographed on a
        # dark fixture is the common case.
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(name, f"unsupported pixel layout {arr.shape}", "save it as PNG or JPEG")
    return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class Photo:
    """A photo decoded for a model: its pixels, which a large JPEG gives at 1/2, 1/4 or
    1/8 of its size when the model's input needs no more (``load_photo``), and the
    photo's own size, in which the part's map and regions are told."""

    pixels: np.ndarray
    size_hw: tuple[int, int]     # the photo's own (height, width), EXIF orientation applied

    @classmethod
    def whole(cls, pixels: np.ndarray) -> "Photo":
        return cls(pixels, (int(pixels.shape[0]), int(pixels.shape[1])))

    @property
    def reduced(self) -> bool:
        return tuple(self.pixels.shape[:2]) != tuple(self.size_hw)


# (height, width) of a photo -> the JPEG decoder's reduction: 1, 2, 4 or 8
DecodeScale = Callable[[int, int], int]
JPEG_SCALES = (8, 4, 2, 1)
# EXIF orientations that swap a photo's width and height (a quarter turn, maybe mirrored)
_EXIF_TURNED = (5, 6, 7, 8)


# EXIF orientation -> the turn that shows the photo as seen (ImageOps.exif_transpose's table)
_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                   6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
# the same turns of an (H, W, channels) array, for the 16-bit colour photos OpenCV decodes
_EXIF_TURN_ARRAY: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1)}


def _png_refused(name: str, problem: str) -> ImageError:
    return ImageError(name, f"is corrupt or truncated ({problem})", "re-capture or re-copy the file")


def _walk_png(fp, name: str = "", refuse: bool = False, verify_data: bool = False) -> Optional[bytes]:
    """A PNG's eXIf block wherever it lies (libpng writes it before or after the image
    data), found from the chunk headers alone in a walk bounded by MAX_PNG_CHUNKS; None
    when there is none. With ``refuse`` a PNG of too many chunks raises
    :class:`ImageError`, and with ``verify_data`` too one whose image data fails its
    checksums; else the walk stops quietly (the decode says what is wrong). The walk
    stops where the file stops making sense; ``fp``'s position is kept."""
    start = fp.tell()
    try:
        size = fp.seek(0, io.SEEK_END)
        limit = MAX_PNG_CHUNKS + size // _PNG_BYTES_PER_CHUNK
        pos, chunks, exif = len(PNG_SIGNATURE), 0, None
        while pos + 12 <= size:
            fp.seek(pos)
            length, kind = struct.unpack(">I4s", fp.read(8))
            end = pos + 12 + length
            if end > size:
                break            # cut short: the decoder calls it truncated
            chunks += 1
            if chunks > limit:
                if refuse:
                    raise _png_refused(name, f"over {limit} chunks in {size / 1e6:.3g} MB, where a camera "
                                             "writes a few dozen: damaged, or made to stall the station")
                break
            if kind == b"IDAT" and verify_data:
                # Pillow reads the image data unchecked: bytes zeroed in it (a copy that
                # has not filled the middle of the file yet, bit rot) decoded to a part
                # with black rows when the decoder did not trip on them
                body, crc = fp.read(length), fp.read(4)
                if zlib.crc32(body, zlib.crc32(kind)) != struct.unpack(">I", crc)[0]:
                    raise _png_refused(name, "its image data fails its checksum: damaged, or not yet copied whole")
            elif kind == b"eXIf" and exif is None:
                exif = fp.read(length)
            elif kind == b"IEND":
                break
            pos = end
        return exif
    finally:
        fp.seek(start)


def check_png(data: bytes, name: str = "", verify_data: bool = True) -> None:
    """Refuse PNG bytes of absurdly many chunks (Pillow walks each in Python, even to
    open the file) or, with ``verify_data``, whose image data fails its checksums, with
    :class:`ImageError`; bounded time whatever the file. Other formats pass. For a
    caller that opens the bytes with Pillow before ``load_photo`` (which checks them)."""
    if bytes(data[:8]) == PNG_SIGNATURE:
        _walk_png(io.BytesIO(data), name or _describe(data), refuse=True, verify_data=verify_data)


def _jpeg_segments(read: Callable[[int, int], bytes]) -> Iterator[tuple[int, int, int]]:
    """(marker, position, length) of each segment of a JPEG's header that has a length, in
    order, read with ``read(position, size)`` past the start marker; markers without one
    (fill bytes, restart markers) are stepped over. It stops after MAX_JPEG_SEGMENTS, or
    where the header stops making sense (each caller says what that means for it)."""
    pos = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        hdr = read(pos, 4)
        if len(hdr) < 4 or hdr[0] != 0xFF:
            return
        marker = hdr[1]
        if marker == 0xFF:                      # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(hdr[2:4], "big")
        yield marker, pos, length
        pos += 2 + length


def jpeg_whole_buffer(im: Image.Image) -> int:
    """Bytes libjpeg holds for the whole photo while decoding the opened JPEG ``im``, at
    any reduction: its coefficients when it is progressive or its first scan holds fewer
    colours than the frame (more scans follow); 0 for a baseline JPEG and other formats.
    Read from the header alone; a header past MAX_JPEG_SEGMENTS segments, or one that
    stops making sense before its first scan, counts as whole (the safe side)."""
    if im.format != "JPEG" or im.fp is None:
        return 0
    fp = im.fp
    start = fp.tell()

    def read(pos: int, size: int) -> bytes:
        fp.seek(pos)
        return fp.read(size)
    try:
        frame = None
        for marker, pos, length in _jpeg_segments(read):
            if marker in _JPEG_FRAMES:
                body = read(pos + 4, max(0, length - 2))
                if len(body) < 6:
                    break
                height, width, count = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big"), body[5]
                factors = [(max(1, b >> 4), max(1, b & 15)) for b in body[7:6 + 3 * count:3]]
                frame = (marker in _JPEG_PROGRESSIVE, width, height, factors or [(1, 1)])
            elif marker == 0xDA:
                in_scan = read(pos + 4, 1)
                if frame is None or not in_scan:
                    break
                progressive, width, height, factors = frame
                if not progressive and in_scan[0] >= len(factors):
                    return 0                    # one scan of all colours: decoded a row at a time
                return _coefficient_bytes(width, height, factors)
        w, h = im.size
        return _coefficient_bytes(w, h, frame[3] if frame else [(1, 1)] * max(1, len(im.getbands())))
    finally:
        fp.seek(start)


# Inside a JPEG's scan a 0xFF byte is followed by 0x00 (a stuffed byte) or a restart
# marker; anything else (after any 0xFF fill bytes) is the marker that ends it
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
# Bytes at a scan's end that a decode may leave unread and still call the scan whole: the
# decoder reads ahead of the last block's bits; more than this, and the blocks ended early
JPEG_SCAN_SLACK = 8
# A run of zero bytes this long in a scan: a block of the file never written or copied
JPEG_ZEROED_RUN = 32


def jpeg_scan(data: bytes) -> Optional[tuple[int, int]]:
    """(start, end) of a baseline JPEG's one scan (all its colours, Huffman coded: what
    cameras write), when its end-of-image marker follows it; None for any other JPEG
    (progressive, several scans, arithmetic coded, cut short) and other formats. Its
    header is walked for at most MAX_JPEG_SEGMENTS segments."""
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    size, colours, baseline = len(data), 0, False
    for marker, pos, length in _jpeg_segments(lambda at, n: bytes(data[at:at + n])):
        if marker in _JPEG_FRAMES:
            baseline = marker in (0xC0, 0xC1)
            colours = data[pos + 9] if pos + 9 < size else 0
        elif marker == 0xDA:
            if not baseline or not colours or pos + 4 >= size or data[pos + 4] != colours:
                return None                     # not the one scan of a baseline JPEG
            start = pos + 2 + length
            hit = _JPEG_SCAN_END.search(data, start)
            if hit is None:
                return None
            after = hit.start() + 1
            while after < size and data[after] == 0xFF:
                after += 1
            return (start, hit.start()) if after < size and data[after] == 0xD9 else None
    return None


def _torn_jpeg(name: str, problem: str) -> ImageError:
    return ImageError(name, f"is corrupt or truncated ({problem}: a copy torn, or not yet written whole)",
                      "re-capture or re-copy the file")


class _WholeScanFeed(io.BytesIO):
    """A baseline JPEG's bytes as Pillow decodes them, made to show what libjpeg only
    warns of (and Pillow ignores its warnings): bytes zeroed in its middle (a copy torn on
    the network, a file whose middle is not written yet) put the decoder out of step, and
    the part was judged with a grey or garbage lower part.

    Out of step, the decoder either decodes every block before the scan's end (the rest
    garbage): the scan's last JPEG_SCAN_SLACK bytes come in a read of their own, and
    ``whole_scan_read`` says whether it needed them. Or it reaches the end-of-image marker
    with blocks to go, and fills them grey: a scan holding a run of zero bytes
    (``zeroed``) comes without that marker, a few zero bytes in its place for the decoder
    to read ahead into, so a decoder short of blocks asks for more and Pillow calls the
    file truncated. (A scan cut short without zeros, e.g. a header that declares more than
    it holds, is decoded as before.) A decoder that falls back in step by itself, about
    one torn copy in five, still passes, its photo damaged in a band."""

    def __init__(self, data: bytes, scan: tuple[int, int]):
        start, end = scan
        self.zeroed = data.find(bytes(JPEG_ZEROED_RUN), start, end) >= 0
        super().__init__(bytes(data[:end]) + (bytes(16) if self.zeroed else b"\xff\xd9"))
        # the last bytes of image data the decoder must need: zero bytes just before the end
        # marker are padding an encoder may leave (libjpeg only warns), not blocks to decode;
        # and a scan of fewer bytes than the slack (a flat 16x16 photo) is read from its start
        data_end = end
        while data_end > start and data[data_end - 1] == 0:
            data_end -= 1
        self._last = max(data_end - JPEG_SCAN_SLACK, start)
        self.whole_scan_read = False

    def read(self, size: Optional[int] = -1) -> bytes:
        pos = self.tell()
        if pos < self._last and (size is None or size < 0 or pos + size > self._last):
            size = self._last - pos
        got = super().read(size)
        self.whole_scan_read = self.whole_scan_read or self.tell() > self._last
        return got


def _coefficient_bytes(width: int, height: int, factors: list[tuple[int, int]]) -> int:
    # each colour is stored at its sampling factors' share of the size, in 8x8 blocks of
    # 64 two-byte coefficients
    h_max, v_max = max(f[0] for f in factors), max(f[1] for f in factors)
    return sum(-(-width * h // (8 * h_max)) * -(-height * v // (8 * v_max)) * 128 for h, v in factors)


def _tiff_refused(name: str, problem: str) -> ImageError:
    return ImageError(name, problem, "re-capture the part, or re-save the photo as the camera writes it")


def check_tiff(data: bytes, name: str = "") -> None:
    """Refuse TIFF bytes whose pages (at most MAX_TIFF_PAGES walked) list more than
    MAX_TIFF_ENTRIES strip or tile offsets and sizes, with :class:`ImageError` saying so;
    counted from the directory entries alone (no table read), in bounded time whatever
    the file. Other formats pass. A TIFF Pillow cannot open then was refused as "not an
    image lineguard can read", which told its owner nothing."""
    head = bytes(data[:8])
    if head[:4] not in (b"II*\x00", b"MM\x00*"):
        return
    order = "<" if head[:2] == b"II" else ">"
    entry = np.dtype([("tag", order + "u2"), ("type", order + "u2"), ("count", order + "u4"), ("value", "V4")])
    size, ifd, entries, pages, seen = len(data), int.from_bytes(head[4:8], "little" if order == "<" else "big"), 0, 0, set()
    while ifd and ifd + 2 <= size and ifd not in seen and pages < MAX_TIFF_PAGES:
        seen.add(ifd)
        pages += 1
        n = int.from_bytes(data[ifd:ifd + 2], "little" if order == "<" else "big")
        table = np.frombuffer(data, entry, count=min(n, (size - ifd - 2) // 12), offset=ifd + 2)
        entries += int(table["count"][np.isin(table["tag"], TIFF_TABLE_TAGS)].astype(np.int64).sum())
        if entries > MAX_TIFF_ENTRIES:
            raise _tiff_refused(name or _describe(data),
                                f"lists {entries:,} strip or tile offsets and sizes in {pages} page(s), over the "
                                f"{MAX_TIFF_ENTRIES:,} a photo of the largest size the station takes needs: "
                                "damaged, or made to stall the station")
        nxt = ifd + 2 + 12 * n
        ifd = int.from_bytes(data[nxt:nxt + 4], "little" if order == "<" else "big") if nxt + 4 <= size else 0


def exif_orientation(im: Image.Image) -> int:
    """An opened photo's EXIF orientation (1: as stored), read without decoding it.

    Pillow's own ``getexif()`` decodes a whole PNG to find an eXIf block after its image
    data, in pure Python past millions of chunks; and the decode error it raised on a
    damaged PNG was swallowed here as a broken EXIF block, after which ``load()`` did
    nothing: the undecoded rows stayed black and the part was judged too dark. A PNG's
    orientation is read from what opening it read, or a walk of its chunk headers."""
    tiles = getattr(im, "tile", None)
    try:
        if isinstance(im, PngImagePlugin.PngImageFile):
            orientation = Image.Image.getexif(im).get(0x0112)   # the base reader never decodes
            if orientation is None and "exif" not in im.info and im.fp is not None:
                after = _walk_png(im.fp)
                if after:
                    exif = Image.Exif()
                    exif.load(after)
                    orientation = exif.get(0x0112)
        else:
            orientation = im.getexif().get(0x0112)
        return int(orientation) if orientation in _EXIF_TRANSPOSE else 1
    except ImageError:
        raise
    except Exception:  # noqa: BLE001 - a broken EXIF block: the photo is shown as stored
        if getattr(im, "tile", None) is not tiles:
            # Pillow replaces the tile list when a decode starts: the read decoded the photo
            # and that failed, so the photo is damaged (half decoded), not only its EXIF
            raise
        return 1


def _stored_wh(im: Image.Image) -> tuple[int, int]:
    """An opened photo's (width, height) as stored, which its orientation turns. Pillow's
    TIFF reader (which turns a TIFF as it loads) gives a TIFF on its side its size as shown
    already, in the Pillow versions that do so: turned again, every TIFF shot on its side
    was told (and its masks made) on its side. A TIFF's stored size is its own tags'."""
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        w, h = tags.get(256), tags.get(257)              # ImageWidth, ImageLength
        if isinstance(w, int) and isinstance(h, int):
            return w, h
    return im.size


def shown_hw(im: Image.Image) -> tuple[int, int]:
    """An opened photo's (height, width) as it is shown and judged, EXIF orientation
    applied (a camera turned a quarter stores the photo on its side), from the header."""
    w, h = _stored_wh(im)
    return (w, h) if exif_orientation(im) in _EXIF_TURNED else (h, w)


def jpeg_scale(im: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, reduce_to_fit: bool = False,
               decode_scale: Optional[DecodeScale] = None, orientation: Optional[int] = None
               ) -> tuple[int, tuple[int, int]]:
    """The reduction a photo opened by Pillow decodes at (1 unless a JPEG) and its
    (height, width) as shown, EXIF orientation applied, read from the header alone. A
    JPEG is reduced as far as ``decode_scale`` allows, and with ``reduce_to_fit`` at least
    as far as brings it within ``max_pixels``. ``orientation``: the photo's, when read
    already (``exif_orientation``)."""
    w, h = _stored_wh(im)
    if orientation is None:
        orientation = exif_orientation(im)
    size_hw = (w, h) if orientation in _EXIF_TURNED else (h, w)
    if im.format != "JPEG":
        return 1, size_hw
    scale = int(decode_scale(*size_hw)) if decode_scale is not None else 1
    if w * h > max_pixels and reduce_to_fit:
        scale = max(scale, next((s for s in (2, 4, 8) if (w // s) * (h // s) <= max_pixels), 8))
    return scale, size_hw


def load_image(src: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS, reduce_to_fit: bool = False,
               sensor_bits: SensorBits = None, keep_depth: bool = False) -> np.ndarray:
    """Load one image as RGB uint8 (H, W, 3); raise :class:`ImageError` if unusable.

    The pixel count is checked from the header before anything is decoded (Pillow
    reads the size lazily), so an image over ``max_pixels`` costs no memory; it raises
    :class:`ImageTooLarge`. With ``reduce_to_fit`` a JPEG over the limit is decoded at
    1/2, 1/4 or 1/8 scale instead (the JPEG decoder does that for free) when that fits.
    16-bit data is scaled by ``sensor_bits`` (module docstring); ``keep_depth`` returns
    it as a uint16 array instead, for a model to scale with its own setting. A depth
    given as a number must hold the photo's values, else :class:`PhotoTooDeep`. Of a
    :class:`Photo`, its pixels (which a reduced decode holds fewer of).
    """
    return load_photo(src, max_pixels, reduce_to_fit, sensor_bits, keep_depth).pixels


NOT_AN_IMAGE = "is not an image lineguard can read"


def not_an_image_hint(name: str) -> str:
    """What to do with a file whose content is no image format: one named as an image
    (cell-7.png) is damaged or misnamed ("use one of .png, ..." misled its owner)."""
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return "its content is no image format lineguard reads: the file is damaged or misnamed; re-capture or re-copy it"
    return f"use one of {', '.join(IMAGE_SUFFIXES)} (or .gif: the station judges GIFs, training does not learn from them)"


def load_photo(src: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS, reduce_to_fit: bool = False,
               sensor_bits: SensorBits = None, keep_depth: bool = False,
               decode_scale: Optional[DecodeScale] = None) -> Photo:
    """As :func:`load_image`, and a JPEG is decoded at the reduction ``decode_scale``
    gives for its size (a model's ``Preprocess.decode_scale``: what its input needs).
    Decoding a 12 megapixel JPEG in full took longer than judging the part; at 1/4 the
    decoder skips most of its work (it averages each 8x8 block's frequencies into 2x2
    pixels), and a model that shrinks the photo 6x or more to its input sees nearly the
    same pixels (benchmarks/photo_size_bench.py). Other formats are decoded whole."""
    name = _describe(src)
    if isinstance(src, Photo):     # decoded already: its pixels made canonical, its size kept
        return Photo(_array_to_rgb8(src.pixels, name, sensor_bits, keep_depth), src.size_hw)
    if isinstance(src, np.ndarray):
        return Photo.whole(_array_to_rgb8(src, name, sensor_bits, keep_depth))
    if isinstance(src, Image.Image):
        try:
            return Photo.whole(_to_rgb8(ImageOps.exif_transpose(src), name, sensor_bits, keep_depth))
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:   # an opened file that fails to decode
            raise ImageError(name, f"is corrupt or truncated ({exc})", "re-capture or re-copy the file") from exc
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise ImageError(name, "file does not exist", "check the path")
        if path.is_dir():
            raise ImageError(name, "is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(name, f"cannot be read: {exc.strerror or exc}", "check file permissions") from exc
    else:
        data = src
    if len(data) == 0:
        raise ImageError(name, "file is empty", "the camera or copy step may have failed; re-capture the part")
    try:
        check_png(data, name)   # bounded, before Pillow walks the chunks
        check_tiff(data, name)
        scan = jpeg_scan(data)
        feed = io.BytesIO(data) if scan is None else _WholeScanFeed(data, scan)
        with Image.open(feed) as im:
            w, h = im.size
            if w < 8 or h < 8:
                raise ImageError(name, f"{w}x{h} is too small to inspect", "use images of at least 8x8 pixels")
            # Read from the header, never by decoding: a decode error met here was lost
            # before, and the load() below then left a damaged photo half decoded.
            orientation = exif_orientation(im)
            scale, size_hw = jpeg_scale(im, max_pixels, reduce_to_fit, decode_scale, orientation)
            if scale > 1 and w * h > max_pixels and jpeg_whole_buffer(im):
                # reduced, it would fit; but the decoder holds it whole (jpeg_whole_buffer)
                raise ImageTooLarge(name, f"{w}x{h} = {w * h / 1e6:.3g} megapixels is over the limit of "
                                    f"{max_pixels / 1e6:.3g}, and as a progressive JPEG it is decoded at its full "
                                    "size, never reduced to fit",
                                    "save it as a baseline (not progressive) JPEG, or downscale it, or raise the "
                                    "pixel limit")
            if scale > 1:
                im.draft("RGB", (w // scale, h // scale))
                w, h = im.size
            if w * h > max_pixels:
                raise ImageTooLarge(name, f"{w}x{h} = {w * h / 1e6:.3g} megapixels is over the limit of "
                                    f"{max_pixels / 1e6:.3g}", "crop or downscale it, or raise the pixel limit")
            if _is_deep_colour(im, data):
                deep = _decode_deep_colour(data, name)
                # turned as an 8-bit photo is: OpenCV (IMREAD_UNCHANGED) gives a PNG as stored,
                # whatever its eXIf says, and a 16-bit colour PNG shot on its side was judged
                # on its side (size_hw said upright); its TIFF reader turns a TIFF by its
                # Orientation tag itself (as Pillow's does), whatever the flags
                if orientation in _EXIF_TURN_ARRAY and im.format != "TIFF":
                    deep = np.ascontiguousarray(_EXIF_TURN_ARRAY[orientation](deep))
                return Photo.whole(_array_to_rgb8(deep, name, sensor_bits, keep_depth))
            try:
                im.load()
            except OSError as exc:
                if not (isinstance(feed, _WholeScanFeed) and feed.zeroed and "truncated" in str(exc)):
                    raise
                raise _torn_jpeg(name, "bytes in its middle are zeros, and its image data ran out before its "
                                       "last block") from exc
            if isinstance(feed, _WholeScanFeed) and not feed.whole_scan_read:
                raise _torn_jpeg(name, "its blocks were all decoded before the end of its image data: bytes in its "
                                       "middle are damaged")
            # turned as the header said (and as size_hw is told), unless the decoder turned
            # it already: Pillow's TIFF reader does so as it loads (and drops the tag), and
            # turned twice every TIFF shot on its side came back upside down
            turned_by_decoder = im.format == "TIFF" and 0x0112 not in getattr(im, "tag_v2", {0x0112: 1})
            if orientation in _EXIF_TRANSPOSE and not turned_by_decoder:
                im = im.transpose(_EXIF_TRANSPOSE[orientation])
            pixels = _to_rgb8(im, name, sensor_bits, keep_depth)
            # Decoded reduced for a model, the photo keeps its own size (its map and regions
            # are told in it). Otherwise the decode is the photo, as load_image has always
            # given a JPEG reduced to fit the pixel limit.
            return Photo(pixels, size_hw) if scale > 1 and decode_scale is not None else Photo.whole(pixels)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(name, "refused as a decompression bomb (declared size is far over the pixel limit)",
                            "if it is a genuine image, downscale it first") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(name, NOT_AN_IMAGE, not_an_image_hint(name)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageError(name, f"is corrupt or truncated ({exc})", "re-capture or re-copy the file") from exc


# a float array may overshoot [0, 1] by arithmetic's rounding (clipped); by more it is refused
FLOAT_SLACK = 1 / 510


def _array_to_rgb8(arr: np.ndarray, name: str, sensor_bits: SensorBits = None,
                   keep_depth: bool = False) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageError(name, "expected an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if arr.dtype == np.uint16:
        check_depth(arr, sensor_bits, name)
        if keep_depth:
            return np.ascontiguousarray(arr)
        arr = _deep_to_uint8(arr, sensor_bits)
    elif arr.dtype in (np.float32, np.float64):
        # floats are 0 (black) to 1 (white); a 0-255 float array clipped to 1 came out all
        # white and was judged NG with nothing said: refused instead
        lo, hi = (float(np.min(arr)), float(np.max(arr))) if arr.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -FLOAT_SLACK or hi > 1.0 + FLOAT_SLACK:
            raise ImageError(name, f"float array holds values from {lo:g} to {hi:g}, outside 0-1 "
                                   "(floats are read as 0 black to 1 white)",
                             "scale it to [0, 1], or pass 0-255 values as uint8 (arr.astype(np.uint8))")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)   # rounding's overshoot only
    elif arr.dtype != np.uint8:
        raise ImageError(name, f"unsupported array dtype {arr.dtype}", "pass uint8, uint16 or float in [0, 1]")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageError(name, f"{arr.shape[1]}x{arr.shape[0]} is too small to inspect",
                         "use images of at least 8x8 pixels")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        # composite on black, exactly as an RGBA file is, so a part scores the same
        # however it reached the inspector
        alpha = arr[:, :, 3:4].astype(np.uint16)
        arr = ((arr[:, :, :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def list_images(folder: Union[str, os.PathLike], recursive: bool = False) -> list[Path]:
    """Image files in a folder, sorted by name; raise :class:`DatasetError` if none."""
    root = Path(folder)
    if not root.exists():
        raise DatasetError(f"{root}: folder does not exist (check the path)")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, expected a folder of images")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern)
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        below = not recursive and any(p.is_dir() and any(p.glob("*")) for p in root.iterdir())
        raise DatasetError(f"{root}: no images found (expected files ending in {', '.join(IMAGE_SUFFIXES)})"
                           + ("; the images in its subfolders are not searched: give a subfolder" if below else ""))
    return files


def load_images(paths: Iterable[Union[str, os.PathLike]], max_pixels: int = DEFAULT_MAX_PIXELS,
                sensor_bits: SensorBits = None) -> tuple[list[np.ndarray], list[Path], list[ImageError]]:
    """Load many images, keeping the good ones and collecting errors for the bad ones.

    A folder with a few broken files should still be inspected; the caller decides
    whether any error is fatal (training) or only reported (inspection).
    """
    images, ok, bad = [], [], []
    for p in paths:
        try:
            images.append(load_image(p, max_pixels=max_pixels, sensor_bits=sensor_bits))
            ok.append(Path(p))
        except ImageError as exc:
            bad.append(exc)
    return images, ok, bad


def save_png_atomic(arr: np.ndarray, path: Union[str, os.PathLike]) -> Path:
    """Write a PNG via temp file + rename so a crash never leaves half an image."""
    from .atomic import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
