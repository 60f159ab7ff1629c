"""Pictures of an inspection: the stored anomaly map, heatmap and overlay PNGs.

The anomaly map is stored as an 8-bit PNG scaled to ``[0, scale]`` with
``scale = 2 * pixel_threshold``: mid-grey is the decision boundary, white is twice
over it. That keeps a map at a few kB instead of megabytes of floats, and is all a
heatmap or an overlay needs.
"""
from __future__ import annotations

from typing import Any, Optional

import cv2
import numpy as np

from .png import encode_png


def _png(arr: np.ndarray) -> bytes:
    return encode_png(arr, rgb=True)   # fast settings (line.png): a full-size 5 MP overlay 418 -> 217 ms


def decode_png(data: bytes, gray: bool = False) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if arr is None:
        raise ValueError("stored picture is unreadable")
    return arr if gray else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def map_scale(pixel_threshold: float, amap: Optional[np.ndarray]) -> float:
    if pixel_threshold > 0:
        return 2.0 * float(pixel_threshold)
    peak = float(np.max(amap)) if amap is not None and amap.size else 1.0
    return peak if peak > 0 else 1.0


MAP_MAX_SIDE = 256


def encode_map(amap: np.ndarray, scale: float) -> bytes:
    # The model's map is far coarser than the photo (one value per feature patch), so
    # storing it at up to 256 px loses nothing visible and keeps the write fast.
    h, w = amap.shape[:2]
    if max(h, w) > MAP_MAX_SIDE:
        f = MAP_MAX_SIDE / max(h, w)
        amap = cv2.resize(amap.astype(np.float32), (max(1, round(w * f)), max(1, round(h * f))),
                          interpolation=cv2.INTER_AREA)
    q = np.clip(amap.astype(np.float32) / scale, 0.0, 1.0) * 255.0 + 0.5
    return _png(q.astype(np.uint8))


def decode_map(data: bytes, scale: float) -> np.ndarray:
    return decode_png(data, gray=True).astype(np.float32) / 255.0 * scale


def heatmap_png(map_png: bytes) -> bytes:
    """Colour heatmap of a stored map (blue = normal, red = far over the threshold)."""
    q = decode_png(map_png, gray=True)
    try:
        from ..vision.overlay import heatmap_rgb
        rgb = heatmap_rgb(q.astype(np.float32) / 255.0, 0.0, 1.0)
    except ImportError:
        rgb = cv2.cvtColor(cv2.applyColorMap(q, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return _png(np.ascontiguousarray(rgb, dtype=np.uint8))


def shrink_for_display(image: np.ndarray, max_side: Optional[int]) -> tuple[np.ndarray, float]:
    """``image`` with its long side at most ``max_side`` pixels, and the factor applied (1
    when it already fits or no size is asked). A screen shows a part at 1-2 thousand
    pixels; a 12 megapixel overlay drawn at full size took seconds of the station's cores
    (benchmarks/display_bench.py)."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), f


def photo_jpeg(image: np.ndarray, max_side: Optional[int]) -> bytes:
    """The part's photo for a screen: 8-bit, at most ``max_side`` a side, as JPEG."""
    small, _ = shrink_for_display(image, max_side)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover - only on out-of-memory
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def jpeg_reduction(side: int, wanted: Optional[int]) -> int:
    """The JPEG decoder's reduction (8, 4, 2 or 1) that still gives a photo whose long side
    is ``side`` at least ``wanted`` pixels (1 when no size is wanted): a 320 px thumbnail of
    a 25 megapixel JPEG is decoded at 1/8, 0.4 megapixels instead of 25."""
    if not wanted:
        return 1
    return next((s for s in (8, 4, 2) if side // s >= wanted), 1)


# the largest side drawn as a thumbnail (the pages ask 320 px: LG.THUMB_PX)
THUMB_MAX_SIDE = 400


def overlay_png(image: np.ndarray, amap: Optional[np.ndarray], result: Any, max_side: Optional[int] = None,
                shown_hw: Optional[tuple[int, int]] = None) -> bytes:
    """The part with its anomaly areas tinted and defect regions boxed; with ``max_side``,
    drawn at that size at most (the boxes scaled with the photo). ``shown_hw``: the photo's
    own (height, width), in which the regions are told, when ``image`` is a reduced decode
    of it (:func:`jpeg_reduction`)."""
    full = max(shown_hw) if shown_hw else max(image.shape[:2])
    image, _ = shrink_for_display(image, max_side)
    f = max(image.shape[:2]) / full
    if f != 1.0:
        from dataclasses import replace
        boxes = [replace(r, x=int(r.x * f), y=int(r.y * f), width=max(1, round(r.width * f)),
                         height=max(1, round(r.height * f))) for r in result.regions]
        result = replace(result, regions=boxes)
    try:
        from ..vision.overlay import render_overlay
        if amap is not None and amap.shape[:2] != image.shape[:2]:
            amap = cv2.resize(amap, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        result.anomaly_map = amap
        # a thumbnail's burned-in caption ("NG 42.2 / 20.6") was some 7 px high on a gallery
        # card, which says the verdict and score in text beside it: left off there
        caption = "" if max_side is not None and max_side <= THUMB_MAX_SIDE else None
        return _png(np.ascontiguousarray(render_overlay(image, result, caption=caption), dtype=np.uint8))
    except ImportError:
        pass
    out = image.copy()
    if amap is not None:
        if amap.shape[:2] != image.shape[:2]:
            amap = cv2.resize(amap, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        thr = float(result.pixel_threshold) or 1.0
        q = np.clip(amap / (2 * thr), 0, 1)
        color = cv2.cvtColor(cv2.applyColorMap((q * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        alpha = (np.clip((amap / thr - 0.5) * 2, 0, 1) * 0.6)[..., None]
        out = (out * (1 - alpha) + color * alpha).astype(np.uint8)
    for r in result.regions:
        cv2.rectangle(out, (r.x, r.y), (r.x + r.width - 1, r.y + r.height - 1), (255, 0, 0), 2)
    return _png(out)
