"""A camera frame as the PNG the station receives, encoded fast.

Camera sources (``lineguard camera``, ``serve --plc-camera``) hand the station each
frame as a PNG: lossless, and what the station stores. With OpenCV's default PNG
settings the round trip cost far more than judging the part: a 1920x1080 colour frame
took ~225 ms to encode and ~69 ms for the station to decode, against ~10 ms for the fast
model (``python -m benchmarks.frame_encode_bench``). Two things change that, and the
pixels the station reads back are the same:

- a mono camera's frame, which OpenCV delivers as three equal colour channels, is
  encoded as one grey channel (a third of the bytes; the station reads grey photos back
  as those three equal channels);
- each row is stored as its difference from the row above (PNG's "up" filter: one
  filter, where OpenCV tried several per row) and compressed with zlib's run-length
  strategy at level 1: faster to write and to read, and smaller on camera-like frames.
"""
from __future__ import annotations

import numpy as np


def is_mono(frame: np.ndarray) -> bool:
    """A 3-channel frame whose channels are all equal (a mono camera through OpenCV)."""
    return (frame.ndim == 3 and frame.shape[2] == 3 and np.array_equal(frame[:, :, 0], frame[:, :, 1])
            and np.array_equal(frame[:, :, 1], frame[:, :, 2]))


def png_params() -> list[int]:
    import cv2
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    # the filter choice came with OpenCV 4.11; older builds keep their own filtering
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    return params + [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def encode_frame(frame: np.ndarray) -> bytes:
    """An OpenCV frame (BGR, grey, 8 or 16 bits) as PNG bytes; ValueError if it cannot be."""
    import cv2
    if is_mono(frame):
        frame = frame[:, :, 0]
    ok, buf = cv2.imencode(".png", frame, png_params())
    if not ok:
        raise ValueError(f"the camera frame ({frame.shape}, {frame.dtype}) could not be encoded as PNG")
    return buf.tobytes()
