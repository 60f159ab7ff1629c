"""Defect regions from an anomaly map: boxes, areas, peaks, order, filters."""
from __future__ import annotations

import json

import numpy as np

from lineguard.vision.regions import find_regions
from lineguard.vision.result import DefectRegion


def _map() -> np.ndarray:
    m = np.zeros((40, 60), np.float32)
    m[5:10, 10:20] = 2.0            # A: 5x10 block, peak 3 at one pixel
    m[7, 12] = 3.0
    m[30:34, 40:43] = 5.0           # B: 4x3 block, the worst
    m[20, 5] = 9.0                  # C: a single hot pixel
    m[25, 25] = m[26, 26] = 1.5     # D: diagonal pair, 8-connected
    return m


def test_boxes_areas_peaks_and_means():
    regions = find_regions(_map(), pixel_threshold=1.0)
    assert len(regions) == 4
    by_peak = {r.peak_score: r for r in regions}
    a, b, c, d = by_peak[3.0], by_peak[5.0], by_peak[9.0], by_peak[1.5]
    assert (a.x, a.y, a.width, a.height, a.area_px) == (10, 5, 10, 5, 50)
    assert a.mean_score == np.float32((49 * 2.0 + 3.0) / 50)
    assert (b.x, b.y, b.width, b.height, b.area_px, b.mean_score) == (40, 30, 3, 4, 12, 5.0)
    assert (c.x, c.y, c.width, c.height, c.area_px) == (5, 20, 1, 1, 1)
    assert (d.x, d.y, d.width, d.height, d.area_px) == (25, 25, 2, 2, 2)


def test_sorted_by_peak_then_area():
    m = _map()
    m[0:2, 50:58] = 5.0             # E: same peak as B, larger (16 px): comes before B
    regions = find_regions(m, 1.0)
    assert [r.peak_score for r in regions] == [9.0, 5.0, 5.0, 3.0, 1.5]
    assert [r.area_px for r in regions[1:3]] == [16, 12]


def test_min_area_drops_specks_and_max_regions_caps():
    regions = find_regions(_map(), 1.0, min_area=3)
    assert sorted(r.area_px for r in regions) == [12, 50]
    assert [r.peak_score for r in find_regions(_map(), 1.0, max_regions=2)] == [9.0, 5.0]


def test_threshold_is_strict_and_nothing_above_gives_nothing():
    m = _map()
    assert find_regions(m, 9.0) == []
    assert [r.area_px for r in find_regions(m, 2.0)] == [1, 12, 1]   # C, B, A's single 3.0 pixel
    assert find_regions(np.zeros((8, 8), np.float32), 0.0) == []


def test_region_json_round_trip():
    r = find_regions(_map(), 1.0)[0]
    assert isinstance(r, DefectRegion)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["box"] == [r.x, r.y, r.width, r.height]
    assert DefectRegion.from_dict(d) == r


def test_run_labelling_matches_scipy_on_random_maps():
    """The numpy labeller (no scipy on the edge) agrees with scipy.ndimage, 8-connected."""
    from scipy import ndimage
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(8, 60, 2)
        m = ndimage.gaussian_filter(rng.random((h, w)).astype(np.float32), rng.uniform(0, 2))
        thr = float(np.quantile(m, rng.uniform(0.5, 0.99)))
        got = sorted((r.x, r.y, r.width, r.height, r.area_px, r.peak_score)
                     for r in find_regions(m, thr, min_area=1, max_regions=10**6))
        lab, _ = ndimage.label(m > thr, structure=np.ones((3, 3)))
        ref = []
        for i, sl in enumerate(ndimage.find_objects(lab)):
            own = lab[sl] == i + 1
            ref.append((sl[1].start, sl[0].start, sl[1].stop - sl[1].start, sl[0].stop - sl[0].start,
                        int(own.sum()), float(m[sl][own].max())))
        assert got == sorted(ref)
