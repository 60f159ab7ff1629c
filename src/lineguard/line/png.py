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
"""
from __future__ import annotations

import numpy as np


def png_params() -> list[int]:
    import cv2
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    # the filter choice came with OpenCV 4.11; older builds keep their own filtering
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    return params + [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def encode_png(arr: np.ndarray) -> bytes:
    """An OpenCV image (BGR or grey, 8 or 16 bits) as PNG bytes; ValueError if it cannot be."""
    import cv2
    ok, buf = cv2.imencode(".png", arr, png_params())
    if not ok:
        raise ValueError(f"the image ({arr.shape}, {arr.dtype}) could not be encoded as PNG")
    return buf.tobytes()


def is_mono(frame: np.ndarray) -> bool:
    """A 3-channel frame whose channels are all equal (a mono camera through OpenCV)."""
    return (frame.ndim == 3 and frame.shape[2] == 3 and np.array_equal(frame[:, :, 0], frame[:, :, 1])
            and np.array_equal(frame[:, :, 1], frame[:, :, 2]))


def encode_frame(frame: np.ndarray) -> bytes:
    """A camera frame from OpenCV as the PNG the station receives (a mono one as grey)."""
    return encode_png(frame[:, :, 0] if is_mono(frame) else frame)
