"""Defect regions: connected areas of the anomaly map above the pixel threshold."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .result import DefectRegion


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
    labels, n = ndimage.label(above, structure=np.ones((3, 3), dtype=bool))
    index = np.arange(1, n + 1)
    areas = ndimage.sum_labels(np.ones_like(amap, dtype=np.int64), labels, index)
    peaks = ndimage.maximum(amap, labels, index)
    means = ndimage.mean(amap, labels, index)
    boxes = ndimage.find_objects(labels)
    regions = []
    for i, sl in enumerate(boxes):
        if sl is None or areas[i] < min_area:
            continue
        ys, xs = sl
        regions.append(DefectRegion(x=int(xs.start), y=int(ys.start), width=int(xs.stop - xs.start),
                                    height=int(ys.stop - ys.start), area_px=int(areas[i]),
                                    peak_score=float(peaks[i]), mean_score=float(means[i])))
    regions.sort(key=lambda r: (-r.peak_score, -r.area_px))
    return regions[:max_regions]
