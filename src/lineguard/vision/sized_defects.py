"""Defects of a set size and contrast, painted on any photo: the stress test's painter.

``synth.add_defect`` draws sizes and strengths at random inside a band, which suits a
validation set. A probability-of-detection study needs the opposite: each defect's size
and contrast chosen by the caller, so that detection can be plotted against them. The
kinds are named as a plant names them; each maps onto a painter style of
:mod:`lineguard.vision.synth`:

=================  ====================================  ========================
kind               what it looks like (synth style)       size means
=================  ====================================  ========================
scratch            thin straight-ish line (scratch)       length, px
crack              branching dark line (crack)            end-to-end length, px
spot               round pit / blowhole (dent, particle)  diameter, px
missing_material   chip, break: substrate shows           equivalent diameter, px
                   through a torn edge (missing_coating)  (of the same area)
contamination      cluster of specks (particle, stain)    cluster diameter, px
low_contrast_area  large soft uneven patch (stain)        diameter, px
=================  ====================================  ========================

Contrast is the change in grey level (0-255, the mean of R, G and B) at the defect's
core; the polarity (darker or brighter) is chosen to show on the local surface, as
``synth`` does. Like ``synth``, the returned mask is exactly the pixels that changed,
and every changed pixel moves by at least 3 grey levels (smaller steps could round back
to the old value), so contrasts under 3 are painted as 3.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from .synth import (_apply, _blob, _contrast_sign, _noise_sigma, _raster_curves, _smooth_noise, _smoothstep,
                    crack_branches)

__all__ = ["STRESS_KINDS", "KIND_SIZE_MEANS", "NOMINAL_CONTRAST", "SIZE_RANGE", "CONTRAST_RANGE",
           "LINE_KINDS", "LINE_WIDTH_PX", "paint_sized_defect", "clip_region"]

STRESS_KINDS: tuple[str, ...] = ("scratch", "crack", "spot", "missing_material", "contamination",
                                 "low_contrast_area")

KIND_SIZE_MEANS: dict[str, str] = {
    "scratch": "length", "crack": "length", "spot": "diameter", "missing_material": "equivalent diameter",
    "contamination": "cluster diameter", "low_contrast_area": "diameter",
}

# Grey levels at the defect core for the size series. Chosen as what such a defect
# typically shows under diffuse light (a crack is a deep shadow, an uneven area barely
# shows); the contrast series sweeps around these.
NOMINAL_CONTRAST: dict[str, float] = {
    "scratch": 40.0, "crack": 50.0, "spot": 50.0, "missing_material": 60.0, "contamination": 35.0,
    "low_contrast_area": 12.0,
}
# The contrast series: log-uniform between these (grey levels). Lines reach well past their
# nominal contrast: real KolektorSDD cracks showed 48 to 148 grey levels at their core (median
# about 90; painted cracks of 50 measure 70 the same way), and a series that stops at 90 could
# not show that this model caught most of them; below 8 a painted line is lost in any texture.
CONTRAST_RANGE: dict[str, tuple[float, float]] = {
    "scratch": (8.0, 120.0), "crack": (8.0, 150.0), "spot": (3.0, 90.0), "missing_material": (3.0, 110.0),
    "contamination": (3.0, 70.0), "low_contrast_area": (3.0, 40.0),
}
# Sizes painted, as shares of the photo's shorter side: from about invisible to
# obvious, so that a fit has misses at one end and hits at the other. Lines run up to most
# of the short side: real KolektorSDD cracks were 121 to 444 px long on 500 px wide photos,
# and a series that stopped at 0.6 (300 px) painted none as long as the third of them most
# often caught.
SIZE_RANGE: dict[str, tuple[float, float]] = {
    "scratch": (0.02, 0.85), "crack": (0.02, 0.85), "spot": (0.008, 0.2), "missing_material": (0.015, 0.3),
    "contamination": (0.01, 0.25), "low_contrast_area": (0.04, 0.6),
}

_MIN_PX = 1.0
# Line defects (scratch, crack) and their default full width at the core, photo px; the
# caller may ask for wider lines (the stress test does, so that a line stays at least
# 1.25 model-input pixels wide, stress.LINE_WIDTH_INPUT_PX, at every scale of photo).
LINE_KINDS: tuple[str, ...] = ("scratch", "crack")
LINE_WIDTH_PX: dict[str, float] = {"scratch": 1.2, "crack": 1.4}


def _check(image: np.ndarray, kind: str, size_px: float, contrast: float,
           region: Optional[tuple[int, int, int, int]] = None) -> None:
    if kind not in STRESS_KINDS:
        raise ValueError(f"unknown defect kind {kind!r}; valid kinds are: {', '.join(STRESS_KINDS)}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an RGB uint8 array of shape (H, W, 3), got {desc}")
    if not (math.isfinite(size_px) and size_px >= _MIN_PX):
        raise ValueError(f"size_px must be at least {_MIN_PX} px, got {size_px}")
    if size_px > 0.95 * min(image.shape[:2]):
        raise ValueError(f"a {kind} of {size_px:.0f} px does not fit a {image.shape[1]}x{image.shape[0]} photo; "
                         "paint smaller defects or use larger photos")
    if region is not None and size_px > 0.95 * min(region[2], region[3]):
        raise ValueError(f"a {kind} of {size_px:.0f} px does not fit the {region[2]}x{region[3]} region of "
                         "interest; paint smaller defects")
    if not (math.isfinite(contrast) and contrast > 0):
        raise ValueError(f"contrast must be a positive number of grey levels, got {contrast}")


def _centre(rng: np.random.Generator, h: int, w: int, reach: float,
            region: Optional[tuple[int, int, int, int]] = None) -> tuple[float, float]:
    """A centre that keeps a defect of this reach inside the photo, or inside ``region``
    (x, y, width, height: the model's region of interest) where one is given (centred
    in it, if it cannot be)."""
    x0, y0, rw, rh = region if region is not None else (0, 0, w, h)
    my, mx = min(reach + 1, rh / 2), min(reach + 1, rw / 2)
    return float(y0 + rng.uniform(my, rh - my)), float(x0 + rng.uniform(mx, rw - mx))


def clip_region(shape: Sequence[int], roi: Optional[Sequence[int]]) -> tuple[int, int, int, int]:
    """The part of a photo of ``shape`` (h, w, ...) a model inspects: its region of interest
    (x, y, width, height) clipped to the photo, as the model's preprocessing clips it; the
    whole photo where there is none (or the ROI lies outside this photo)."""
    h, w = int(shape[0]), int(shape[1])
    if roi is None:
        return 0, 0, w, h
    x, y, rw, rh = (int(v) for v in roi)
    if x >= w or y >= h:
        return 0, 0, w, h
    return x, y, max(1, min(rw, w - x)), max(1, min(rh, h - y))


def _box(cy: float, cx: float, reach: float, h: int, w: int) -> tuple[int, int, int, int]:
    r = int(math.ceil(reach)) + 2
    return max(0, int(cy) - r), max(0, int(cx) - r), min(h, int(cy) + r + 1), min(w, int(cx) + r + 1)


def _level(image: np.ndarray, y0: int, x0: int, y1: int, x1: int) -> float:
    return float(image[y0:y1, x0:x1].mean())


def _dark_first(level: float, contrast: float) -> float:
    """Shadows (cracks, pits, holes) darken; where the surface is too dark to darken by
    ``contrast``, they show bright instead (as a pore does under a ring light)."""
    return -1.0 if level - contrast >= 8.0 else 1.0


def _paint_line(image, rng, size, contrast, branched: bool, region=None, width=None):
    H, W = image.shape[:2]
    if branched:
        # A crack: a random walk, rescaled so that its ends lie ``size`` apart.
        n = int(rng.integers(7, 14))
        ang = rng.uniform(0, 2 * math.pi)
        pts = [np.zeros(2)]
        for _ in range(n):
            ang += rng.normal(0.0, 0.4)
            pts.append(pts[-1] + rng.uniform(0.6, 1.3) * np.array([math.sin(ang), math.cos(ang)]))
        main = np.array(pts)
        span = float(np.hypot(*(main[-1] - main[0]))) or 1.0
        main *= size / span
        main -= 0.5 * (main[0] + main[-1])
        lines = [main] + crack_branches(main, size / n, rng, branches=(1, 3), steps=(2, 4))
        half_w = 0.5 * LINE_WIDTH_PX["crack"]
    else:
        ang = rng.uniform(0, math.pi)
        bend = rng.normal(0.0, 0.06) * size
        p0 = np.array([-0.5 * size * math.sin(ang), -0.5 * size * math.cos(ang)])
        p1 = bend * np.array([math.cos(ang), -math.sin(ang)])
        t = np.linspace(0.0, 1.0, int(size * 2) + 8)[:, None]
        lines = [(1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * (-p0)]
        half_w = 0.5 * LINE_WIDTH_PX["scratch"]
    if width is not None:
        half_w = max(half_w, 0.5 * float(width))
    reach = max(float(np.abs(p).max()) for p in lines) + 3 + max(0.0, half_w - 0.7)
    cy, cx = _centre(rng, H, W, reach, region)
    y0, x0, y1, x1 = _box(cy, cx, reach, H, W)
    dense, widths = [], []
    for i, pl in enumerate(lines):
        segs = [a + np.linspace(0, 1, max(2, int(np.hypot(*(b - a)) * 2) + 1))[:, None] * (b - a)
                for a, b in zip(pl[:-1], pl[1:])]
        p = np.concatenate(segs) + np.array([cy - y0, cx - x0])
        dense.append(p)
        # Tapered ends: scratches and cracks fade out rather than stop square.
        s = np.linspace(0.0, 1.0, len(p))
        widths.append(half_w * (0.4 + 0.6 * np.sin(np.pi * s) ** 0.5) * (1.0 if i == 0 else 0.7))
    d, hw = _raster_curves(dense, widths, y1 - y0, x1 - x0)
    alpha = np.clip(hw + 0.5 - d, 0.0, 1.0)
    level = _level(image, y0, x0, y1, x1)
    sign = _dark_first(level, contrast) if branched else _contrast_sign(level, 0.6, rng)
    delta = (sign * contrast * alpha)[..., None] * np.ones(3, np.float32)
    return y0, x0, delta, alpha > 0.2


def _disc_alpha(cy, cx, radius, y0, x0, y1, x1, edge=0.7):
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.hypot(yy - cy, xx - cx)
    return np.clip((radius - d) / edge + 0.5, 0.0, 1.0), d


def _paint_spot(image, rng, size, contrast, region=None, width=None):
    H, W = image.shape[:2]
    radius = 0.5 * size
    cy, cx = _centre(rng, H, W, radius + 2, region)
    y0, x0, y1, x1 = _box(cy, cx, radius + 2, H, W)
    alpha, d = _disc_alpha(cy, cx, radius, y0, x0, y1, x1)
    # A pit is deepest in the middle: full contrast there, 70% at its edge.
    depth = 0.7 + 0.3 * np.clip(1.0 - (d / max(radius, 0.5)) ** 2, 0.0, 1.0)
    sign = _dark_first(_level(image, y0, x0, y1, x1), contrast)
    delta = (sign * contrast * alpha * depth)[..., None] * np.ones(3, np.float32)
    return y0, x0, delta, alpha > 0.2


def _paint_missing(image, rng, size, contrast, region=None, width=None):
    H, W = image.shape[:2]
    # _blob's ellipse has the area of a disc of this radius before its edge wobbles.
    radius = 0.5 * size
    reach = 1.6 * radius * 1.3 + 3
    cy, cx = _centre(rng, H, W, reach, region)
    y0, x0, y1, x1 = _box(cy, cx, reach, H, W)
    r = _blob(rng, cy, cx, radius, y0, x0, y1, x1, 0.2)
    alpha = np.clip((1.0 - r) * radius / 0.8 + 0.5, 0.0, 1.0)
    crop = image[y0:y1, x0:x1].astype(np.float32)
    level = float(crop.mean())
    sign = _dark_first(level, contrast)
    # What shows through is flat (no surface texture), at the set contrast, with the
    # photo's own sensor noise so that it does not look pasted on.
    hh, ww = alpha.shape
    under = np.float32(level + sign * contrast) + rng.normal(0.0, max(0.5, _noise_sigma(crop)),
                                                              size=(hh, ww)).astype(np.float32)
    delta = alpha[..., None] * (under[..., None] - crop)
    return y0, x0, delta, alpha > 0.15


def _paint_contamination(image, rng, size, contrast, region=None, width=None):
    H, W = image.shape[:2]
    radius = 0.5 * size
    main_r = max(0.6, 0.3 * radius)
    specks = [(0.0, 0.0, main_r)]
    for _ in range(int(rng.integers(2, 7))):
        rr = (radius - main_r * 0.5) * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * math.pi)
        specks.append((rr * math.sin(a), rr * math.cos(a), max(0.5, rng.uniform(0.1, 0.2) * radius)))
    # The farthest speck sits on the cluster's rim, so that the cluster spans ``size``.
    a = rng.uniform(0, 2 * math.pi)
    specks.append(((radius - specks[-1][2]) * math.sin(a), (radius - specks[-1][2]) * math.cos(a), specks[-1][2]))
    cy, cx = _centre(rng, H, W, radius + 2, region)
    y0, x0, y1, x1 = _box(cy, cx, radius + 2, H, W)
    alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
    for oy, ox, r in specks:
        al, _ = _disc_alpha(cy + oy, cx + ox, r, y0, x0, y1, x1)
        alpha = np.maximum(alpha, al)
    sign = _contrast_sign(_level(image, y0, x0, y1, x1), 0.5, rng)
    # Dirt and debris carry a little colour of their own.
    tint = np.float32(1.0) + rng.normal(0.0, 0.08, size=3).astype(np.float32)
    tint /= tint.mean()
    delta = (sign * contrast * alpha)[..., None] * tint
    return y0, x0, delta, alpha > 0.25


def _paint_low_contrast(image, rng, size, contrast, region=None, width=None):
    H, W = image.shape[:2]
    radius = 0.5 * size
    reach = 1.3 * radius * 1.3 + 3
    cy, cx = _centre(rng, H, W, reach, region)
    y0, x0, y1, x1 = _box(cy, cx, reach, H, W)
    r = _blob(rng, cy, cx, radius, y0, x0, y1, x1, 0.15)
    # A soft shoulder a third of the radius wide: uneven areas have no edge to find.
    alpha = _smoothstep((1.0 - r) / 0.35 + 0.5)
    hh, ww = alpha.shape
    alpha = alpha * (0.9 + 0.1 * _smooth_noise(rng, hh, ww, max(3.0, radius / 3), max(3.0, radius / 3)))
    sign = _contrast_sign(_level(image, y0, x0, y1, x1), 0.5, rng)
    delta = (sign * contrast * alpha)[..., None] * np.ones(3, np.float32)
    return y0, x0, delta, alpha > 0.22


_PAINTERS = {
    "scratch": lambda im, rng, s, c, **kw: _paint_line(im, rng, s, c, branched=False, **kw),
    "crack": lambda im, rng, s, c, **kw: _paint_line(im, rng, s, c, branched=True, **kw),
    "spot": _paint_spot,
    "missing_material": _paint_missing,
    "contamination": _paint_contamination,
    "low_contrast_area": _paint_low_contrast,
}


def paint_sized_defect(image: np.ndarray, kind: str, size_px: float, contrast: float,
                       rng: np.random.Generator, region: Optional[Sequence[int]] = None,
                       line_width_px: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect of ``kind``, ``size_px`` big (see the table above for what size
    means per kind) and ``contrast`` grey levels strong -> (new image, mask 0/255).

    The defect lies wholly inside the photo (inside ``region``, (x, y, width, height),
    where given: the model's region of interest), centred at a random place drawn from
    ``rng``; the input is not modified. ``line_width_px``: for scratches and cracks, the
    full width at the line's core, at least ``LINE_WIDTH_PX`` (ignored for other kinds).
    """
    size_px, contrast = float(size_px), float(contrast)
    if region is not None:
        region = clip_region(image.shape, region)
    _check(image, kind, size_px, contrast, region)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0)")
    if line_width_px is not None and not (math.isfinite(line_width_px) and line_width_px > 0):
        raise ValueError(f"line_width_px must be a positive number of pixels, got {line_width_px}")
    image = np.ascontiguousarray(image)
    y0, x0, delta, support = _PAINTERS[kind](image, rng, size_px, max(contrast, 3.0), region=region,
                                             width=line_width_px)
    if not support.any():   # sub-pixel defect: mark its centre pixel at least
        support = np.zeros_like(support)
        support[support.shape[0] // 2, support.shape[1] // 2] = True
        delta = np.where(np.abs(delta) > 0, delta, np.float32(contrast))
    return _apply(image, y0, x0, delta, support)
