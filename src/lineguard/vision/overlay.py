"""Draw where a part is anomalous: a heatmap over the image, region boxes, the verdict.

Numpy and Pillow only, so the torch-free edge install can draw overlays for the
operator screen and the record.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .imageio import ImageLike, load_image
from .preprocess import resize_map
from .result import DefectRegion, InspectionResult, Verdict

__all__ = ["heatmap_rgb", "render_overlay", "map_display_range"]

# A dark-to-bright colour ramp (black, violet, red, orange, pale yellow) whose lightness
# rises steadily, so "brighter = more anomalous" reads the same on a screen, in print
# and for colour-blind operators. Nine hand-picked anchors, linearly interpolated.
_ANCHORS = np.array([
    (0.000, 0, 0, 4),
    (0.125, 30, 12, 70),
    (0.250, 85, 16, 110),
    (0.375, 135, 33, 107),
    (0.500, 185, 55, 86),
    (0.625, 226, 90, 52),
    (0.750, 248, 140, 12),
    (0.875, 248, 200, 52),
    (1.000, 252, 254, 164),
], dtype=np.float64)


def _build_lut(n: int = 256) -> np.ndarray:
    x = np.linspace(0.0, 1.0, n)
    lut = np.stack([np.interp(x, _ANCHORS[:, 0], _ANCHORS[:, c]) for c in (1, 2, 3)], axis=1)
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)


_LUT = _build_lut()

_BOX_COLOUR = (0, 230, 255)       # cyan: stands apart from every colour of the ramp
_NG_COLOUR = (220, 30, 30)
_OK_COLOUR = (20, 150, 60)
_REVIEW_COLOUR = (200, 150, 0)      # amber: neither pass nor reject, a person looks


def _normalise(anomaly_map: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    m = np.asarray(anomaly_map, dtype=np.float32)
    span = float(vmax) - float(vmin)
    if not np.isfinite(span) or span <= 0:
        return (m > vmin).astype(np.float32)
    out = (m - np.float32(vmin)) * np.float32(1.0 / span)
    np.clip(out, 0.0, 1.0, out=out)
    return np.nan_to_num(out, nan=0.0, copy=False)


def heatmap_rgb(anomaly_map: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Colour an (H, W) map: ``vmin`` and below black, ``vmax`` and above pale yellow."""
    m = np.asarray(anomaly_map)
    if m.ndim != 2:
        raise ValueError(f"anomaly map must be 2-D (H, W), got shape {m.shape}")
    idx = np.rint(_normalise(m, vmin, vmax) * (len(_LUT) - 1)).astype(np.intp)
    return _LUT[idx]


def map_display_range(anomaly_map: np.ndarray, pixel_threshold: Optional[float]) -> tuple[float, float, float]:
    """(vmin, vmid, vmax) for showing a map: colour from vmin to vmax, full opacity from vmid.

    With a calibrated pixel threshold the scale is anchored to it, not to the map's
    own range: vmin = threshold/2, vmid = threshold, vmax = max(peak, 1.5 x threshold).
    A good part (everything below threshold) then stays mostly transparent and dark
    instead of having its noise stretched to full colour, the threshold always sits
    at the same place on the ramp, and a strong defect still spans the whole ramp up
    to its peak. Without a threshold the map is scaled to itself (median to peak),
    which always shows *something*: read it as "where, relatively", not "how bad".
    """
    m = np.asarray(anomaly_map, dtype=np.float32)
    finite = m[np.isfinite(m)]
    peak = float(finite.max()) if finite.size else 0.0
    if pixel_threshold is not None and np.isfinite(pixel_threshold) and pixel_threshold > 0:
        t = float(pixel_threshold)
        return 0.5 * t, t, max(peak, 1.5 * t)
    lo = float(np.median(finite)) if finite.size else 0.0
    hi = max(peak, lo + 1e-6)
    return lo, 0.5 * (lo + hi), hi


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):     # Pillow without FreeType
        return ImageFont.load_default()


def render_overlay(image: ImageLike, result_or_map: Union[InspectionResult, np.ndarray, None],
                   threshold: Optional[float] = None,
                   regions: Optional[Sequence[DefectRegion]] = None,
                   alpha: float = 0.45, caption: Optional[str] = None) -> np.ndarray:
    """Image with its anomaly heatmap blended in, defect boxes and a verdict caption.

    ``result_or_map`` is an :class:`InspectionResult` (map, regions, pixel threshold
    and a "NG 2.31 / 1.80" caption come from it) or a bare (H, W) map (or None for the
    image with boxes only). ``threshold`` is the pixel threshold the map is scaled to
    (see :func:`map_display_range`); ``regions`` and ``caption`` override the result's.
    The heatmap is transparent below threshold/2 and reaches ``alpha`` opacity at the
    threshold, so the part stays visible where it is fine. A map of a different size
    than the image is resized to it. Returns uint8 (H, W, 3).
    """
    img = load_image(image, sensor_bits="auto")   # shown, not judged: a 12-bit photo by its own depth
    h, w = img.shape[:2]
    amap = result_or_map
    if isinstance(result_or_map, InspectionResult):
        res = result_or_map
        amap = res.anomaly_map
        if threshold is None:
            threshold = res.pixel_threshold
        if regions is None:
            regions = res.regions
        if caption is None:
            verdict = res.verdict.value if isinstance(res.verdict, Verdict) else str(res.verdict)
            caption = f"{verdict}  {res.score:.3g} / {res.threshold:.3g}"

    out = img.astype(np.float32)
    if amap is not None:
        m = resize_map(amap, w, h)
        vmin, vmid, vmax = map_display_range(m, threshold)
        heat = heatmap_rgb(m, vmin, vmax).astype(np.float32)
        weight = _normalise(m, vmin, vmid) * np.float32(np.clip(alpha, 0.0, 1.0))
        out += (heat - out) * weight[:, :, None]
    canvas = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(canvas)
    line = max(1, min(h, w) // 160)
    for r in regions or ():
        x0, y0 = max(0, r.x - line), max(0, r.y - line)
        x1, y1 = min(w - 1, r.x + r.width - 1 + line), min(h - 1, r.y + r.height - 1 + line)
        draw.rectangle((x0, y0, x1, y1), outline=_BOX_COLOUR, width=line)

    if caption:
        font = _font(max(10, min(h, w) // 18))
        pad = max(2, min(h, w) // 100)
        left, top, right, bottom = draw.textbbox((pad, pad), caption, font=font)
        word = caption.lstrip().upper()
        bg = (_NG_COLOUR if word.startswith("NG") else _OK_COLOUR if word.startswith("OK")
              else _REVIEW_COLOUR if word.startswith("REVIEW") else (0, 0, 0))
        draw.rectangle((0, 0, right + pad, bottom + pad), fill=bg)
        draw.text((pad, pad), caption, fill=(255, 255, 255), font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()
