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
    regions = []
    # Statistics per region on its own bounding box: a few small crops instead of
    # scipy's whole-image label statistics (which sort every pixel), ~10x faster on
    # the usual handful of regions.
    for i, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None:
            continue
        own = labels[sl] == i + 1
        area = int(own.sum())
        if area < min_area:
            continue
        values = amap[sl][own]
        ys, xs = sl
        regions.append(DefectRegion(x=int(xs.start), y=int(ys.start), width=int(xs.stop - xs.start),
                                    height=int(ys.stop - ys.start), area_px=area,
                                    peak_score=float(values.max()), mean_score=float(values.mean())))
    regions.sort(key=lambda r: (-r.peak_score, -r.area_px))
    return regions[:max_regions]
