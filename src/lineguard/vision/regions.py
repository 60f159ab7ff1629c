"""Defect regions: connected areas of the anomaly map above the pixel threshold.

Pure numpy, so the torch-free edge install needs no scipy. Labelling works on runs:
each image row's above-threshold pixels form runs, runs that touch a run on the row
above (8-connected: overlapping or diagonal) are united, and each component's box,
area, peak and mean are accumulated from its runs. A thresholded anomaly map has few
runs, so this costs well under a millisecond for a typical NG part.
"""
from __future__ import annotations

import numpy as np

from .result import DefectRegion


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, start, end) of every horizontal run of True, row-major; end exclusive."""
    w = mask.shape[1]
    live = np.flatnonzero(mask.any(axis=1))   # only rows that hold a run are looked at
    padded = np.zeros((len(live), w + 2), dtype=bool)
    padded[:, 1:-1] = mask[live]
    # every change along a padded row, row-major: each row's changes alternate start, end
    change = np.flatnonzero(padded[:, 1:] != padded[:, :-1])
    row_of, col = np.divmod(change, w + 1)
    return live[row_of[0::2]], col[0::2], col[1::2]


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def label_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of ``mask`` and the component (0..k-1) each belongs to, 8-connected."""
    rows, starts, ends = _runs(mask)
    n = len(rows)
    parent = list(range(n))
    # index of the first run of each row, to scan only the row above
    row_first = np.searchsorted(rows, np.arange(mask.shape[0] + 1))
    for i in range(n):
        y = rows[i]
        if y == 0:
            continue
        s, e = starts[i], ends[i]
        for j in range(row_first[y - 1], row_first[y]):
            if ends[j] < s:          # ends before our start minus one: no touch (diagonal allowed)
                continue
            if starts[j] > e:        # starts past our end plus one: no touch, later ones neither
                break
            a, b = _find(parent, i), _find(parent, j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = np.array([_find(parent, i) for i in range(n)], dtype=np.int64)
    _, comp = np.unique(roots, return_inverse=True)
    return rows, starts, ends, comp


def find_regions(amap: np.ndarray, pixel_threshold: float, min_area: int = 1,
                 max_regions: int = 50) -> list[DefectRegion]:
    """Regions of ``amap > pixel_threshold`` (8-connected), worst first.

    Sorted by peak score (severity), then area. ``min_area`` drops single-pixel specks
    a plant does not care about; ``max_regions`` bounds the result for a badly
    mis-set threshold.
    """
    above = amap > pixel_threshold
    if not above.any():
        return []
    rows, starts, ends, comp = label_runs(above)
    k = int(comp.max()) + 1
    lengths = ends - starts
    area = np.bincount(comp, weights=lengths, minlength=k).astype(np.int64)
    # the map's values above the threshold, row-major, are the runs one after another
    values = amap[above].astype(np.float64)
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    peak = np.full(k, -np.inf)
    np.maximum.at(peak, comp, np.maximum.reduceat(values, first))
    total = np.bincount(comp, weights=np.add.reduceat(values, first), minlength=k)
    x0 = np.full(k, np.iinfo(np.int64).max)
    np.minimum.at(x0, comp, starts)
    x1 = np.zeros(k, dtype=np.int64)
    np.maximum.at(x1, comp, ends)
    y0 = np.full(k, np.iinfo(np.int64).max)
    np.minimum.at(y0, comp, rows)
    y1 = np.zeros(k, dtype=np.int64)
    np.maximum.at(y1, comp, rows + 1)
    regions = [DefectRegion(x=int(x0[c]), y=int(y0[c]), width=int(x1[c] - x0[c]), height=int(y1[c] - y0[c]),
                            area_px=int(area[c]), peak_score=float(peak[c]), mean_score=float(total[c] / area[c]))
               for c in range(k) if area[c] >= min_area]
    regions.sort(key=lambda r: (-r.peak_score, -r.area_px))
    return regions[:max_regions]


def to_photo(regions: list[DefectRegion], map_scale: float, photo_hw: tuple[int, int],
             min_area: int = 1) -> list[DefectRegion]:
    """Regions found on a map ``map_scale`` times the photo's size, in photo pixels: each
    box covers the photo pixels its map pixels cover, areas scale by the square, and
    regions under ``min_area`` photo pixels are dropped."""
    if map_scale >= 1.0:
        return regions
    h, w = photo_hw
    f = float(map_scale)
    out = []
    for r in regions:
        x0, y0 = min(int(r.x / f), w - 1), min(int(r.y / f), h - 1)
        x1 = min(w, max(x0 + 1, int(np.ceil((r.x + r.width) / f))))
        y1 = min(h, max(y0 + 1, int(np.ceil((r.y + r.height) / f))))
        area = min(int(round(r.area_px / (f * f))), (x1 - x0) * (y1 - y0))
        if area >= min_area:
            out.append(DefectRegion(x=x0, y=y0, width=x1 - x0, height=y1 - y0, area_px=max(1, area),
                                    peak_score=r.peak_score, mean_score=r.mean_score))
    return out


# Where the fallback outline is drawn, as a share of the way from the part's ordinary
# surface (the map's median) up to its peak: 0.5 is the peak's half-height, the usual
# way to give a blob a size without a calibrated level. Lower would spread over the
# surface texture of a faint peak; higher shrinks to a few pixels.
PEAK_OUTLINE_LEVEL = 0.5


def outline_peak(amap: "np.ndarray | None", shape: tuple[int, ...],
                 level: float = PEAK_OUTLINE_LEVEL) -> list[DefectRegion]:
    """One region around the anomaly map's highest point, for a part judged NG or REVIEW
    when no area of the map is above the pixel threshold.

    The outline is where the map is at least ``median + level * (peak - median)``,
    the connected area holding the peak; so it always exists and contains the peak,
    whatever the calibration. A map that is missing or has no finite value gives the
    whole image (nothing better is known).
    """
    h, w = int(shape[0]), int(shape[1])
    if amap is not None and np.size(amap):
        m = np.asarray(amap, dtype=np.float32)
        finite = np.isfinite(m)
        if finite.any():
            peak = float(m[finite].max())
            base = float(np.median(m[finite]))
            cut = base + level * (peak - base)
            # find_regions keeps pixels strictly above its threshold; one step below
            # ``cut`` keeps the peak itself even on a flat map (peak == base == cut).
            below = np.nextafter(np.float32(min(cut, peak)), np.float32(-np.inf))
            # sorted by peak: the first region holds the map's maximum
            return find_regions(np.where(finite, m, -np.inf), float(below), min_area=1)[:1]
    return [DefectRegion(x=0, y=0, width=w, height=h, area_px=w * h, peak_score=0.0, mean_score=0.0)]
