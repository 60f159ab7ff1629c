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
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)               # (h, w + 1): +1 at a start, -1 past an end
    rs, starts = np.nonzero(d == 1)
    re_, ends = np.nonzero(d == -1)
    assert len(rs) == len(re_)
    return rs, starts, ends


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
    peak = np.full(k, -np.inf)
    total = np.zeros(k)
    for r, s, e, c in zip(rows, starts, ends, comp):
        seg = amap[r, s:e]
        m = seg.max()
        if m > peak[c]:
            peak[c] = m
        total[c] += float(seg.sum(dtype=np.float64))
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
