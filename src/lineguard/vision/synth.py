"""A seeded synthetic product line: electrode-coating parts, good and defective.

It feeds the test suite and ``make demo``, and lets a user try thresholds before a
camera is mounted. The part is a battery electrode seen top-down: a dark coated
rectangle on bare metal foil (an uncoated tab strip along the top edge) lying on a
darker fixture. Good parts differ only in what differs on a real line: coating grain
and slot-die streaks, a lighting drift, a few pixels of pose jitter, sensor noise.

Defects are painted with exact ground truth: the mask is precisely the set of pixels
whose value changed, so pixel metrics computed on this data are not blurred by
labelling slop. ``add_defect`` paints onto any RGB image, which is how a validation
set is built from a plant's own good images.

Pure numpy + scipy.ndimage + Pillow, so it runs wherever the core package runs.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image
from scipy import ndimage

from .errors import DatasetError

__all__ = ["DEFECT_TYPES", "make_part", "add_defect", "write_dataset", "DatasetExistsError"]

DEFECT_TYPES: tuple[str, ...] = ("scratch", "dent", "particle", "crack", "stain", "missing_coating")

MIN_SIZE = 64
MAX_SIZE = 8192
# The area band a painted defect must fall in, as a fraction of the image: visible,
# yet not so large that any detector finds it trivially.
AREA_MIN = 0.001
AREA_MAX = 0.03

# Part colours (RGB). A graphite/NMC-like coating: dark grey with a cool cast.
_COAT_RGB = np.array([58.0, 64.0, 77.0], dtype=np.float32)
_FOIL_RGB = np.array([168.0, 171.0, 176.0], dtype=np.float32)
_FIXTURE_RGB = np.array([24.0, 25.0, 29.0], dtype=np.float32)

# Smallest change, in grey levels, inside a defect: below it a pixel could round back
# to its old value and the mask would stop being "exactly the pixels changed".
_MIN_STEP = 3.0


class DatasetExistsError(DatasetError, FileExistsError):
    """The output folder of ``write_dataset`` already holds files."""


# --------------------------------------------------------------------------- helpers


def _check_kind(kind: str) -> int:
    if kind not in DEFECT_TYPES:
        raise ValueError(f"unknown defect kind {kind!r}; valid kinds are: {', '.join(DEFECT_TYPES)}")
    return DEFECT_TYPES.index(kind)


def _check_size(size: Union[int, tuple[int, int]]) -> tuple[int, int]:
    if isinstance(size, (bool, np.bool_)):
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if isinstance(size, (int, np.integer)):
        hw = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in size
    ):
        hw = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if min(hw) < MIN_SIZE or max(hw) > MAX_SIZE:
        raise ValueError(f"size {hw} out of range: each side must be between {MIN_SIZE} and {MAX_SIZE} px")
    return hw


def _check_seed(seed: int) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return int(seed)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell_y: float, cell_x: float) -> np.ndarray:
    """Unit-ish noise with features about ``cell`` px apart (bicubic-upsampled lattice)."""
    gh = max(2, int(math.ceil(h / cell_y)) + 1)
    gw = max(2, int(math.ceil(w / cell_x)) + 1)
    lattice = rng.standard_normal((gh, gw), dtype=np.float32)
    up = Image.fromarray(lattice, mode="F").resize((w, h), Image.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def _noise_sigma(crop: np.ndarray) -> float:
    """Robust sensor-noise estimate (MAD of horizontal differences), grey levels."""
    g = crop.mean(axis=2) if crop.ndim == 3 else crop
    if g.shape[1] < 2:
        return 0.0
    d = np.diff(g, axis=1).ravel()
    mad = float(np.median(np.abs(d - np.median(d))))
    return min(1.4826 * mad / math.sqrt(2.0), 12.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# --------------------------------------------------------------------------- good part


def _render_good(seed: int, h: int, w: int, want_foil: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Good part -> (image uint8, coating bool, centre region bool, bare-foil image or None).

    The bare-foil image is the same part with the coating stripped (same pose,
    light and sensor noise); ``missing_coating`` reveals it.
    """
    rng = np.random.default_rng(seed)
    yy, xx = _grid(h, w)
    scale = math.sqrt(h * w) / 256.0

    # Pose jitter: the part never lands twice in the same place on a fixture.
    theta = math.radians(rng.normal(0.0, 0.6))
    cy = h / 2.0 + rng.normal(0.0, 1.5) * scale
    cx = w / 2.0 + rng.normal(0.0, 1.5) * scale
    c, s = math.cos(theta), math.sin(theta)
    dx = xx - np.float32(cx)
    dy = yy - np.float32(cy)
    u = c * dx + s * dy
    v = -s * dx + c * dy

    # Foil sheet, and the coated area inside it (uncoated tab strip along the top).
    ax, ay = 0.43 * w, 0.44 * h
    foil = np.clip(np.minimum(ax - np.abs(u), ay - np.abs(v)) + 0.5, 0.0, 1.0)
    top, bottom, side = -ay + 0.11 * h, ay - 0.025 * h, ax - 0.025 * w
    coat_dist = np.minimum(np.minimum(side - np.abs(u), v - top), bottom - v)
    coat = np.clip(coat_dist + 0.5, 0.0, 1.0)

    # Coating: fine grain + mid-scale mottling + slot-die streaks running along v.
    grain = rng.standard_normal((h, w), dtype=np.float32)
    mottle = _smooth_noise(rng, h, w, 10.0 * scale, 10.0 * scale)
    streak = _smooth_noise(rng, h, w, 80.0 * scale, 5.0 * scale)
    coat_tex = 0.045 * grain + 0.035 * mottle + 0.025 * streak
    # Slightly thicker, brighter bead along the coating edge, as a slot die leaves.
    bead = np.exp(-np.maximum(coat_dist, 0.0) / (2.5 * scale)) * 0.12
    coat_tex += bead
    # Foil: rolled metal, brushed along u.
    brush = _smooth_noise(rng, h, w, 2.0 * scale, 60.0 * scale)
    foil_tex = 0.03 * brush + 0.015 * grain
    fixture_tex = 0.08 * mottle + 0.05 * grain

    # Lot-to-lot colour drift of the coating, small.
    coat_rgb = _COAT_RGB * np.float32(1.0 + rng.normal(0.0, 0.02))
    colours = np.stack([_FIXTURE_RGB, _FOIL_RGB, coat_rgb]).astype(np.float32)

    # Lighting: global gain, a linear drift and mild vignetting, different per part.
    g0 = 1.0 + rng.normal(0.0, 0.025)
    gx, gy = rng.normal(0.0, 0.05, size=2)
    vig = rng.uniform(0.03, 0.10)
    nx = (xx - w / 2.0) / w
    ny = (yy - h / 2.0) / h
    light = np.float32(g0) * (1.0 + np.float32(gx) * nx + np.float32(gy) * ny - np.float32(vig) * (nx * nx + ny * ny) * 2.0)

    # Sensor noise: mostly shared by the three channels (demosaicing correlates them),
    # plus a little chroma noise. Cheaper than three independent normal draws.
    sigma = np.float32(rng.uniform(1.4, 2.2))
    luma_noise = rng.standard_normal((h, w), dtype=np.float32) * sigma
    chroma_noise = (rng.random((h, w, 3), dtype=np.float32) - np.float32(0.5)) * (sigma * np.float32(1.6))

    w_fix = (1.0 - foil) * (1.0 + fixture_tex)
    w_foil_bare = foil * (1.0 + foil_tex)

    def compose(w_coat_layer: np.ndarray, w_foil_layer: np.ndarray) -> np.ndarray:
        weights = np.stack([w_fix, w_foil_layer, w_coat_layer], axis=-1)
        img = (weights @ colours) * light[..., None]
        img += luma_noise[..., None]
        img += chroma_noise
        img += np.float32(0.5)  # round half up by truncation below: values are >= 0 after clip
        np.clip(img, 0, 255, out=img)
        return img.astype(np.uint8)

    fc = foil * coat
    image = compose(fc * (1.0 + coat_tex), w_foil_bare * (1.0 - coat))
    bare = compose(np.zeros_like(fc), w_foil_bare) if want_foil else None

    coated = coat_dist >= 0.5
    centres = coat_dist >= 0.05 * math.sqrt(h * w)
    return image, coated, centres, bare


# --------------------------------------------------------------------------- defects
#
# Each painter returns (y0, x0, delta, support): a float change to add to the crop
# image[y0:y0+h, x0:x0+w] (h, w from support) and where the defect is. Painters only
# describe the defect; _apply turns that into exact pixels and an exact mask.


def _window(cy: float, cx: float, radius: float, h: int, w: int) -> tuple[int, int, int, int]:
    r = int(math.ceil(radius)) + 2
    y0, x0 = max(0, int(cy) - r), max(0, int(cx) - r)
    y1, x1 = min(h, int(cy) + r + 1), min(w, int(cx) + r + 1)
    return y0, x0, y1, x1


def _raster_curves(curves: list[np.ndarray], widths: list[np.ndarray], h: int, w: int):
    """Distance field to polylines sampled densely -> (distance, local half-width), window-local."""
    seeds = np.zeros((h, w), dtype=bool)
    half = np.zeros((h, w), dtype=np.float32)
    for pts, hw in zip(curves, widths):
        iy = np.clip(np.rint(pts[:, 0]).astype(int), 0, h - 1)
        ix = np.clip(np.rint(pts[:, 1]).astype(int), 0, w - 1)
        seeds[iy, ix] = True
        half[iy, ix] = np.maximum(half[iy, ix], hw)
    dist, (ny, nx) = ndimage.distance_transform_edt(~seeds, return_indices=True)
    return dist.astype(np.float32), half[ny, nx]


def _local_level(image: np.ndarray, y0: int, x0: int, y1: int, x1: int) -> float:
    return float(image[y0:y1, x0:x1].mean())


def _contrast_sign(level: float, p_bright: float, rng: np.random.Generator) -> float:
    # On a very bright or very dark surface only one polarity can show up.
    if level > 185:
        return -1.0
    if level < 45:
        return 1.0
    return 1.0 if rng.random() < p_bright else -1.0


def _paint_scratch(image, rng, cy, cx, S, **_):
    H, W = image.shape[:2]
    length = rng.uniform(0.15, 0.40) * S
    ang = rng.uniform(0, math.pi)
    bend = rng.normal(0.0, 0.12) * length
    p0 = np.array([cy - 0.5 * length * math.sin(ang), cx - 0.5 * length * math.cos(ang)])
    p2 = np.array([cy + 0.5 * length * math.sin(ang), cx + 0.5 * length * math.cos(ang)])
    p1 = np.array([cy, cx]) + bend * np.array([math.cos(ang), -math.sin(ang)])
    y0, x0, y1, x1 = _window(cy, cx, 0.5 * length + abs(bend) + 4, H, W)
    t = np.linspace(0.0, 1.0, int(length * 2) + 8)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2 - np.array([y0, x0])
    width = max(0.7, rng.uniform(0.6, 1.2) * S / 256.0)
    taper = width * (0.35 + 0.65 * np.sin(np.pi * t[:, 0]) ** 0.5)
    d, hw = _raster_curves([pts], [taper], y1 - y0, x1 - x0)
    alpha = np.clip(hw + 0.5 - d, 0.0, 1.0)
    support = alpha > 0.2
    sign = _contrast_sign(_local_level(image, y0, x0, y1, x1), 0.7, rng)
    amp = rng.uniform(40.0, 75.0)
    delta = (sign * amp * alpha)[..., None] * np.ones(3, np.float32)
    return y0, x0, delta, support


def crack_branches(main: np.ndarray, seg: float, rng: np.random.Generator, branches: tuple[int, int],
                   steps: tuple[int, int]) -> list[np.ndarray]:
    """Side branches of a crack polyline: each leaves a random inner point of ``main`` at
    an angle to it and wanders a few ``seg``-long steps (counts drawn from the half-open
    ranges ``branches`` and ``steps``). Real cracks fork; a single line looks painted."""
    out = []
    for _ in range(int(rng.integers(*branches))):
        k = int(rng.integers(1, len(main) - 1))
        d = main[k + 1] - main[k - 1]
        b_ang = math.atan2(d[0], d[1]) + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        bp = [main[k]]
        for _ in range(int(rng.integers(*steps))):
            b_ang += rng.normal(0.0, 0.4)
            bp.append(bp[-1] + seg * rng.uniform(0.5, 1.0) * np.array([math.sin(b_ang), math.cos(b_ang)]))
        out.append(np.array(bp))
    return out


def _paint_crack(image, rng, cy, cx, S, **_):
    H, W = image.shape[:2]
    seg = max(2.0, 0.025 * S)
    n = int(rng.integers(7, 14))
    ang = rng.uniform(0, 2 * math.pi)
    pts = [np.array([0.0, 0.0])]
    for _ in range(n):
        ang += rng.normal(0.0, 0.45)
        pts.append(pts[-1] + seg * rng.uniform(0.6, 1.3) * np.array([math.sin(ang), math.cos(ang)]))
    main = np.array(pts)
    main -= main.mean(axis=0)
    polylines = [main] + crack_branches(main, seg, rng, branches=(1, 4), steps=(2, 6))
    reach = max(float(np.abs(p).max()) for p in polylines)
    y0, x0, y1, x1 = _window(cy, cx, reach + 3, H, W)
    off = np.array([cy - y0, cx - x0])
    dense, widths = [], []
    base_w = max(0.55, rng.uniform(0.45, 0.8) * S / 256.0)
    for i, pl in enumerate(polylines):
        segs = []
        for a, b in zip(pl[:-1], pl[1:]):
            m = max(2, int(np.hypot(*(b - a)) * 2) + 1)
            segs.append(a + np.linspace(0, 1, m)[:, None] * (b - a))
        p = np.concatenate(segs) + off
        dense.append(p)
        # Cracks open widest where they started and close towards the tips.
        fall = np.linspace(1.0, 0.5, len(p)) * (1.0 if i == 0 else 0.75)
        widths.append(base_w * fall)
    d, hw = _raster_curves(dense, widths, y1 - y0, x1 - x0)
    alpha = np.clip(hw + 0.5 - d, 0.0, 1.0)
    support = alpha > 0.2
    crop = image[y0:y1, x0:x1].astype(np.float32)
    level = crop.mean()
    depth = rng.uniform(0.55, 0.8)
    # A crack is a shadow: mostly dark; on an already dark surface it must still read.
    target = min(level * (1.0 - depth), max(0.0, level - 35.0))
    delta = alpha[..., None] * (target - crop)
    if level < 45:
        delta = alpha[..., None] * np.float32(40.0) * np.ones(3, np.float32)
    return y0, x0, delta, support


def _paint_dent(image, rng, cy, cx, S, **_):
    H, W = image.shape[:2]
    sa = rng.uniform(0.022, 0.042) * S
    sb = sa / rng.uniform(1.0, 1.8)
    ang = rng.uniform(0, math.pi)
    y0, x0, y1, x1 = _window(cy, cx, 2.2 * sa, H, W)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = math.cos(ang), math.sin(ang)
    p = (c * dx + s * dy) / sa
    q = (-s * dx + c * dy) / sb
    hgt = np.exp(-0.5 * (p * p + q * q))
    gy, gx = np.gradient(hgt)
    light = rng.uniform(0, 2 * math.pi)
    shade = (math.cos(light) * gx + math.sin(light) * gy) * sa  # ~unit amplitude
    level = _local_level(image, y0, x0, y1, x1)
    amp = rng.uniform(45.0, 75.0)
    lum = amp * shade - rng.uniform(6.0, 14.0) * hgt
    if level > 185:
        lum = -np.abs(lum)
    elif level < 45:
        lum = np.abs(lum)
    support = hgt > 0.2
    delta = lum[..., None] * np.ones(3, np.float32)
    return y0, x0, delta, support


def _paint_particle(image, rng, cy, cx, S, **_):
    H, W = image.shape[:2]
    k = S / 256.0
    specks = [(0.0, 0.0, max(1.6, rng.uniform(3.2, 5.0) * k))]
    spread = max(4.0, rng.uniform(6.0, 12.0) * k)
    for _ in range(int(rng.integers(2, 7))):
        rr = spread * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * math.pi)
        specks.append((rr * math.sin(a), rr * math.cos(a), max(0.8, rng.uniform(1.0, 2.4) * k)))
    reach = spread + max(r for *_, r in specks) + 2
    y0, x0, y1, x1 = _window(cy, cx, reach, H, W)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    alpha = np.zeros(yy.shape, np.float32)
    for oy, ox, r in specks:
        d = np.hypot(yy - (cy + oy), xx - (cx + ox))
        alpha = np.maximum(alpha, np.clip(r + 0.5 - d, 0.0, 1.0))
    support = alpha > 0.25
    crop = image[y0:y1, x0:x1].astype(np.float32)
    level = float(crop.mean())
    sign = _contrast_sign(level, 0.6, rng)
    if sign > 0:  # metal chip or binder lump catching the light
        colour = np.array([205.0, 200.0, 190.0], np.float32) * np.float32(rng.uniform(0.9, 1.15))
    else:  # dirt, burnt debris
        colour = np.array([14.0, 12.0, 12.0], np.float32) * np.float32(rng.uniform(0.5, 1.5))
    colour = colour + rng.normal(0.0, 6.0, size=alpha.shape + (3,)).astype(np.float32)
    delta = alpha[..., None] * (colour - crop)
    return y0, x0, delta, support


def _blob(rng, cy, cx, radius, y0, x0, y1, x1, wobble):
    """Irregular blob: an ellipse whose edge is pushed in and out by smooth noise."""
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    ang = rng.uniform(0, math.pi)
    aspect = rng.uniform(1.0, 1.6)
    c, s = math.cos(ang), math.sin(ang)
    dy, dx = yy - cy, xx - cx
    p = (c * dx + s * dy) / (radius * math.sqrt(aspect))
    q = (-s * dx + c * dy) / (radius / math.sqrt(aspect))
    r = np.sqrt(p * p + q * q)
    h, w = yy.shape
    cell = max(3.0, radius / 2.5)
    r = r + wobble * _smooth_noise(rng, h, w, cell, cell)
    return r


def _paint_stain(image, rng, cy, cx, S, **_):
    H, W = image.shape[:2]
    radius = rng.uniform(0.035, 0.075) * S
    y0, x0, y1, x1 = _window(cy, cx, 1.9 * radius, H, W)
    r = _blob(rng, cy, cx, radius, y0, x0, y1, x1, 0.18)
    soft = rng.uniform(0.35, 0.6)
    alpha = _smoothstep((1.0 - r) / soft + 0.5)
    hh, ww = alpha.shape
    # Dried electrolyte / oil: uneven inside, often with a darker tide line.
    alpha = alpha * (0.85 + 0.15 * _smooth_noise(rng, hh, ww, 4.0, 4.0))
    support = alpha > 0.22
    level = _local_level(image, y0, x0, y1, x1)
    palettes = np.array(
        [[34.0, 18.0, -6.0],   # brownish, oxidised
         [26.0, 24.0, 8.0],    # yellow-grey residue
         [-22.0, -20.0, -16.0],  # dark, soaked
         [8.0, 22.0, 30.0]],   # bluish film
        np.float32,
    )
    shift = palettes[int(rng.integers(len(palettes)))] * np.float32(rng.uniform(0.8, 1.2))
    if level > 185 and shift.mean() > 0:
        shift = -shift
    elif level < 45 and shift.mean() < 0:
        shift = -shift
    delta = alpha[..., None] * shift
    return y0, x0, delta, support


def _paint_missing(image, rng, cy, cx, S, substrate=None, **_):
    H, W = image.shape[:2]
    radius = rng.uniform(0.03, 0.06) * S
    y0, x0, y1, x1 = _window(cy, cx, 1.8 * radius, H, W)
    r = _blob(rng, cy, cx, radius, y0, x0, y1, x1, 0.25)
    edge_px = 1.2
    alpha = np.clip((1.0 - r) * radius / edge_px + 0.5, 0.0, 1.0)
    crop = image[y0:y1, x0:x1].astype(np.float32)
    if substrate is not None:
        under = substrate[y0:y1, x0:x1].astype(np.float32)
    else:
        # Unknown part: show a substrate that contrasts with what is around it, with
        # the same sensor noise, so it does not look pasted.
        level = float(crop.mean())
        base = _FOIL_RGB if level < 120 else np.array([34.0, 33.0, 36.0], np.float32)
        hh, ww = alpha.shape
        tex = 1.0 + 0.03 * _smooth_noise(rng, hh, ww, 2.0, 20.0)
        under = tex[..., None] * base
        under = under + rng.normal(0.0, max(1.0, _noise_sigma(crop)), size=under.shape).astype(np.float32)
    # The torn coating edge stands a little proud and throws a thin dark rim.
    rim = np.clip(1.0 - np.abs(r - 1.0 - 1.5 / radius) * radius / 1.2, 0.0, 1.0) * (1.0 - alpha)
    delta = alpha[..., None] * (under - crop) - (rim * 18.0)[..., None]
    support = (alpha > 0.15) | (rim > 0.3)
    return y0, x0, delta, support


_PAINTERS = {
    "scratch": _paint_scratch,
    "dent": _paint_dent,
    "particle": _paint_particle,
    "crack": _paint_crack,
    "stain": _paint_stain,
    "missing_coating": _paint_missing,
}


def _apply(image: np.ndarray, y0: int, x0: int, delta: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add ``delta`` on ``support`` so that every support pixel really changes."""
    h, w = support.shape
    crop = image[y0:y0 + h, x0:x0 + w].astype(np.float32)
    delta = np.where(support[..., None], delta, 0.0).astype(np.float32)
    lum = delta.mean(axis=2)
    weak = support & (np.abs(lum) < _MIN_STEP)
    if weak.any():
        sgn = np.where(lum[weak] < 0, -1.0, 1.0).astype(np.float32)
        delta[weak] += (sgn * (_MIN_STEP - np.abs(lum[weak])))[:, None]
    new = np.clip(np.rint(crop + delta), 0, 255)
    stuck = support & (new == crop).all(axis=2)
    if stuck.any():  # saturated in that direction: go the other way
        new[stuck] = np.clip(np.rint(crop[stuck] - delta[stuck]), 0, 255)
    out = image.copy()
    out[y0:y0 + h, x0:x0 + w] = new.astype(np.uint8)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[y0:y0 + h, x0:x0 + w] = np.where((new != crop).any(axis=2), 255, 0).astype(np.uint8)
    return out, mask


def _paint(image, kind, rng, region, centres, substrate=None, tries: int = 30):
    H, W = image.shape[:2]
    S = math.sqrt(H * W)
    painter = _PAINTERS[kind]
    cand = np.flatnonzero(centres) if centres is not None else None
    lo, hi = AREA_MIN * H * W, AREA_MAX * H * W
    best = None
    for _ in range(tries):
        if cand is not None:
            idx = int(cand[rng.integers(len(cand))])
            cy, cx = idx // W + rng.random() - 0.5, idx % W + rng.random() - 0.5
        else:
            cy, cx = rng.uniform(0.12, 0.88) * H, rng.uniform(0.12, 0.88) * W
        y0, x0, delta, support = painter(image, rng, cy, cx, S, substrate=substrate)
        full = support.sum()
        if region is not None:
            support = support & region[y0:y0 + support.shape[0], x0:x0 + support.shape[1]]
        area = support.sum()
        if area == 0:
            continue
        if lo <= area <= hi and area >= 0.8 * full:
            return _apply(image, y0, x0, delta, support)
        # Keep the closest miss in case nothing fits (tiny region, odd aspect).
        miss = 0.0 if lo <= area <= hi else min(abs(math.log(area / lo)), abs(math.log(area / hi)))
        if best is None or miss < best[0]:
            best = (miss, y0, x0, delta, support)
    if best is None:
        raise ValueError(f"could not place a {kind} defect inside the given region; use a larger region")
    _, y0, x0, delta, support = best
    return _apply(image, y0, x0, delta, support)


# --------------------------------------------------------------------------- public API


def make_part(seed: int, size: Union[int, tuple[int, int]] = 256, defect: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic part -> (image uint8 HxWx3 RGB, mask uint8 HxW 0/255).

    The mask is all zeros when ``defect`` is None. Deterministic in ``seed``; the
    defective part is the good part of the same seed with one defect painted on, so
    ``make_part(s)`` and ``make_part(s, defect=k)`` differ exactly on the mask.
    ``size`` is an int (square) or (height, width), each side at least 64 px.
    """
    seed = _check_seed(seed)
    h, w = _check_size(size)
    k = None if defect is None else _check_kind(defect)
    image, coated, centres, bare = _render_good(seed, h, w, want_foil=(defect == "missing_coating"))
    if defect is None:
        return image, np.zeros((h, w), np.uint8)
    rng = np.random.default_rng([seed, 1 + k])
    return _paint(image, defect, rng, coated, centres, substrate=bare)


def add_defect(image: np.ndarray, kind: str, rng: np.random.Generator, region: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect of ``kind`` onto any RGB uint8 image -> (new image, mask).

    Works on real photos too: polarity and substrate are chosen to contrast with the
    surface around the spot. ``region`` (bool HxW) limits where the defect may be: its
    centre is drawn inside it and no pixel outside it changes. The input is not
    modified; the mask (0/255) is exactly the pixels that changed.
    """
    _check_kind(kind)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an RGB uint8 array of shape (H, W, 3), got {desc}")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"image is {h}x{w}; each side must be at least {MIN_SIZE} px")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0)")
    if region is not None:
        region = np.asarray(region)
        if region.shape != (h, w):
            raise ValueError(f"region must have shape {(h, w)}, got {region.shape}")
        region = region.astype(bool)
        if not region.any():
            raise ValueError("region is empty: no pixel where a defect may be placed")
    return _paint(np.ascontiguousarray(image), kind, rng, region, region)


def _part_seed(seed: int, split: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, split, index]).generate_state(1, dtype=np.uint32)[0])


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def write_dataset(
    out: Union[str, os.PathLike],
    n_good: int = 200,
    n_defect: int = 60,
    seed: int = 0,
    size: int = 256,
    n_test_good: Optional[int] = None,
    defect_types: Sequence[str] = DEFECT_TYPES,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Path:
    """Write one MVTec-AD style category and return its path.

    Layout: ``train/good/000.png``, ``test/good/000.png``, ``test/<type>/000.png`` and
    ``ground_truth/<type>/000_mask.png``, plus ``synth.json`` recording how it was
    made. ``n_test_good`` defaults to ``max(10, n_good // 4)``; ``n_defect`` is spread
    evenly over ``defect_types`` (earlier types get the remainder). Everything is
    written into a temporary folder next to ``out`` and renamed into place, so ``out``
    is either complete or absent. Refuses an ``out`` that exists and is not empty.
    """
    out = Path(out)
    seed = _check_seed(seed)
    h, w = _check_size(size)
    for name, val in (("n_good", n_good), ("n_defect", n_defect)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 0:
            raise ValueError(f"{name} must be a non-negative int, got {val!r}")
    if n_test_good is None:
        n_test_good = max(10, n_good // 4)
    elif isinstance(n_test_good, bool) or not isinstance(n_test_good, (int, np.integer)) or n_test_good < 0:
        raise ValueError(f"n_test_good must be a non-negative int, got {n_test_good!r}")
    if isinstance(defect_types, str):
        raise ValueError("defect_types must be a sequence of kinds, not a single string")
    types = list(defect_types)
    for t in types:
        _check_kind(t)
    if len(set(types)) != len(types):
        raise ValueError(f"defect_types has duplicates: {types}")
    if n_defect > 0 and not types:
        raise ValueError("n_defect > 0 needs at least one defect type")
    if out.exists():
        if not out.is_dir():
            raise DatasetExistsError(f"{out} exists and is not a folder; choose another output path")
        if any(out.iterdir()):
            raise DatasetExistsError(f"{out} already exists and is not empty; remove it or choose another output folder")

    per_type = [n_defect // len(types) + (1 if i < n_defect % len(types) else 0) for i in range(len(types))] if types else []
    total = n_good + n_test_good + n_defect
    digits = max(3, len(str(max(n_good, n_test_good, max(per_type, default=0), 1) - 1)))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    # mkdtemp makes a private (0700) folder; the dataset is for everyone on the machine
    _mask = os.umask(0)
    os.umask(_mask)
    os.chmod(tmp, 0o777 & ~_mask)
    done = 0
    try:
        def put(rel: str, arr: np.ndarray) -> None:
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png(arr))

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        (tmp / "train" / "good").mkdir(parents=True)
        (tmp / "test" / "good").mkdir(parents=True)
        for i in range(n_good):
            img, _ = make_part(_part_seed(seed, 0, i), (h, w))
            put(f"train/good/{i:0{digits}d}.png", img)
            tick()
        for i in range(n_test_good):
            img, _ = make_part(_part_seed(seed, 1, i), (h, w))
            put(f"test/good/{i:0{digits}d}.png", img)
            tick()
        for t, count in zip(types, per_type):
            (tmp / "test" / t).mkdir(parents=True, exist_ok=True)
            (tmp / "ground_truth" / t).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img, mask = make_part(_part_seed(seed, 2 + DEFECT_TYPES.index(t), i), (h, w), defect=t)
                put(f"test/{t}/{i:0{digits}d}.png", img)
                put(f"ground_truth/{t}/{i:0{digits}d}_mask.png", mask)
                tick()
        manifest = {
            "generator": "lineguard.vision.synth",
            "seed": seed,
            "size": [h, w],
            "n_good": n_good,
            "n_test_good": n_test_good,
            "n_defect": dict(zip(types, per_type)),
        }
        (tmp / "synth.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above); rename cannot replace a folder everywhere
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
