"""PNGs the line writes, encoded fast: camera frames sent to the station, and the maps
and pictures the station stores and draws.

With OpenCV's default PNG settings, writing a picture cost far more than judging the
part: a 1920x1080 colour camera frame took ~225 ms to encode and ~69 ms for the station
to decode, against ~10 ms for the fast model (``python -m benchmarks.frame_encode_bench``);
a full-size overlay of a 5 MP part ~418 ms. Two things change that, and the pixels read
back are the same:

- each row is stored as its difference from the row above (PNG's "up" filter: one
  filter, where OpenCV tried several per row) and compressed with zlib's run-length
  strategy at level 1: faster to write and to read, and as small or smaller on camera
  frames and pictures (the 5 MP overlay: 217 ms, 14% smaller);
- a mono camera's frame, which OpenCV delivers as three equal colour channels, is
  encoded as one grey channel (a third of the bytes; the station reads grey photos back
  as those three equal channels).

A picture of a megabyte or more is compressed in pieces, one per core (at most four),
written here: OpenCV's writer uses one core, and a kept 5 MP colour frame's PNG took
longer than everything else the station did for the part. Each piece is a deflate
stream that starts afresh and ends on a byte boundary without closing (zlib's sync
flush), so the pieces join into the one stream a PNG holds; the same filter, strategy
and level, the same pixels read back, a few hundred bytes larger.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

PIECES_FROM_BYTES = 1 << 20     # pixels' bytes from which a picture is compressed in pieces
_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


def png_params() -> list[int]:
    import cv2
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    # the filter choice came with OpenCV 4.11; older builds keep their own filtering
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    return params + [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def encode_png(arr: np.ndarray, rgb: bool = False) -> bytes:
    """An OpenCV image (BGR, BGRA or grey, 8 or 16 bits; ``rgb``: RGB or RGBA) as PNG bytes;
    ValueError if it cannot be."""
    import cv2
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    pieces = min(_cores(), arr.shape[0])
    if (arr.nbytes >= PIECES_FROM_BYTES and pieces > 1 and arr.dtype in (np.uint8, np.uint16)
            and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)))):
        if arr.ndim == 3 and not rgb:      # PNG holds RGB(A)
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB if arr.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
        return _encode_in_pieces(arr, pieces)
    if arr.ndim == 3 and rgb:              # OpenCV's writer takes BGR(A)
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", arr, png_params())
    if not ok:
        raise ValueError(f"the image ({arr.shape}, {arr.dtype}) could not be encoded as PNG")
    return buf.tobytes()


def is_mono(frame: np.ndarray) -> bool:
    """A 3-channel frame whose channels are all equal (a mono camera through OpenCV)."""
    return (frame.ndim == 3 and frame.shape[2] == 3 and np.array_equal(frame[:, :, 0], frame[:, :, 1])
            and np.array_equal(frame[:, :, 1], frame[:, :, 2]))


def frame_pixels(frame: np.ndarray) -> np.ndarray:
    """The pixels a camera frame's PNG holds: a mono camera's three equal channels (or
    one channel of three dimensions) as a 2-D grey image; other frames as they are."""
    if frame.ndim == 3 and (frame.shape[2] == 1 or is_mono(frame)):
        return frame[:, :, 0]
    return frame


def encode_frame(frame: np.ndarray) -> bytes:
    """A camera frame from OpenCV as the PNG the station receives (a mono one as grey)."""
    return encode_png(frame_pixels(frame))


def _cores() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="lg-png")
        return _pool


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _encode_in_pieces(arr: np.ndarray, pieces: int) -> bytes:
    """``arr``: grey, RGB or RGBA, 8 or 16 bits."""
    h, w = arr.shape[:2]
    deep = arr.dtype == np.uint16
    rows = np.ascontiguousarray(arr, dtype=">u2" if deep else np.uint8).view(np.uint8).reshape(h, -1)
    # the "up" filter: each row's bytes less the row above's (mod 256), led by filter type 2
    filtered = np.empty((h, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    flat = memoryview(filtered).cast("B")
    bounds = [filtered.shape[1] * (h * i // pieces) for i in range(pieces + 1)]

    def deflate(i: int) -> bytes:
        z = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_RLE)   # raw deflate: the pieces join
        out = z.compress(flat[bounds[i]:bounds[i + 1]])
        return out + z.flush(zlib.Z_FINISH if i == pieces - 1 else zlib.Z_SYNC_FLUSH)

    stream = b"".join(_executor().map(deflate, range(pieces)))
    # zlib's wrapper: deflate with a 32 kB window, fastest level; the Adler-32 of all filtered bytes
    idat = b"\x78\x01" + stream + struct.pack(">I", zlib.adler32(flat))
    colour_type = 0 if arr.ndim == 2 else 2 if arr.shape[2] == 3 else 6     # grey, RGB, RGBA
    header = struct.pack(">IIBBBBB", w, h, 16 if deep else 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
