"""Metrics against brute-force definitions on small data, ties included."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lineguard.vision.metrics import (PixelMetrics, aupro, f1_max, image_auroc, pixel_auroc,
                                      rates_at, roc_curve)


# ------------------------------------------------------------------ brute force

def bf_auroc(scores, labels):
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y][:, None], s[~y][None, :]
    return ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)


def bf_f1(scores, labels):
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    best = 0.0
    for t in np.unique(s):
        ng = s >= t
        tp, fp, fn = (ng & y).sum(), (ng & ~y).sum(), (~ng & y).sum()
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


def bf_aupro(maps, masks, limit):
    """The definition, threshold by threshold: PRO averaged over 8-connected regions."""
    regions, negs = [], []
    for a, m in zip(maps, masks):
        if m is None:
            negs.append(a.ravel())
            continue
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [a[lab == i] for i in range(1, n + 1)]
        negs.append(a[~m])
    neg = np.concatenate(negs)
    fpr, pro = [0.0], [0.0]
    for t in np.unique(np.concatenate([neg] + regions))[::-1]:
        fpr.append((neg >= t).mean())
        pro.append(np.mean([(r >= t).mean() for r in regions]))
    area = 0.0
    for i in range(1, len(fpr)):
        f0, f1, p0, p1 = fpr[i - 1], fpr[i], pro[i - 1], pro[i]
        if f1 <= limit:
            area += (f1 - f0) * (p0 + p1) / 2
        elif f0 < limit:
            pl = p0 + (p1 - p0) * (limit - f0) / (f1 - f0)
            area += (limit - f0) * (p0 + pl) / 2
    return area / limit


def random_pixel_case(rng):
    maps, masks = [], []
    for _ in range(rng.integers(1, 4)):
        h, w = rng.integers(3, 9, 2)
        a = rng.integers(0, rng.integers(2, 12), (h, w)).astype(np.float32)   # many ties
        m = None
        if rng.random() < 0.7:
            m = rng.random((h, w)) < 0.25
            m[0, 0], m[-1, -1] = True, False
            a = a + m * rng.integers(0, 3)
        maps.append(a)
        masks.append(m)
    if all(m is None for m in masks):
        masks[0] = np.zeros(maps[0].shape, bool)
        masks[0][0, 0] = True
    return maps, masks


# ------------------------------------------------------------------ image level

def test_image_auroc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        scores = rng.integers(0, 6, n).astype(float)          # heavy ties
        labels = rng.random(n) < 0.4
        labels[0], labels[1] = True, False
        assert image_auroc(scores, labels) == pytest.approx(bf_auroc(scores, labels), abs=1e-12)


def test_auroc_perfect_inverse_and_all_tied():
    assert image_auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert image_auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert image_auroc([0.5] * 4, [0, 1, 0, 1]) == 0.5


def test_auroc_one_class_is_a_clear_error():
    with pytest.raises(ValueError, match="undefined without good"):
        image_auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="undefined without defective"):
        image_auroc([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="0/1"):
        image_auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        image_auroc([np.nan, 0.2], [0, 1])


def test_roc_curve_groups_ties_and_its_area_is_the_auroc():
    scores = [0.9, 0.5, 0.5, 0.5, 0.1, 0.1]
    labels = [1, 1, 0, 0, 1, 0]
    fpr, tpr, thr = roc_curve(scores, labels)
    assert thr[0] == np.inf and list(thr[1:]) == [0.9, 0.5, 0.1]
    np.testing.assert_allclose(fpr, [0, 0, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1])
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(image_auroc(scores, labels))
    rng = np.random.default_rng(3)
    s, y = rng.integers(0, 5, 30).astype(float), rng.random(30) < 0.5
    fpr, tpr, _ = roc_curve(s, y)
    assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(bf_auroc(s, y))


def test_f1_max_matches_brute_force_and_threshold_reproduces_it():
    rng = np.random.default_rng(1)
    for _ in range(40):
        n = int(rng.integers(2, 30))
        s = rng.integers(0, 8, n).astype(float) / 7
        y = rng.random(n) < 0.5
        y[0] = True
        f1, thr = f1_max(s, y)
        assert f1 == pytest.approx(bf_f1(s, y))
        r = rates_at(s, y, thr)
        tp = r["n_defect"] - r["escapes"]
        assert 2 * tp / (2 * tp + r["false_rejects"] + r["escapes"]) == pytest.approx(f1)


def test_f1_threshold_sits_between_scores():
    f1, thr = f1_max([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert f1 == 1.0 and thr == pytest.approx(0.5)
    f1, thr = f1_max([0.3, 0.3], [1, 1])        # everything NG is best: threshold below all
    assert f1 == 1.0 and thr < 0.3


def test_rates_at_counts_false_rejects_and_escapes():
    r = rates_at([0.1, 0.6, 0.5, 0.4, 0.9], [0, 0, 0, 1, 1], threshold=0.5)
    # score > 0.5 is NG: the good part at 0.6 is a false reject, 0.5 itself passes;
    # the defect at 0.4 escapes.
    assert r == {"false_reject_rate": 1 / 3, "escape_rate": 1 / 2, "n_good": 3, "n_defect": 2,
                 "false_rejects": 1, "escapes": 1}
    assert rates_at([0.1], [0], 0.5)["escape_rate"] is None


# ------------------------------------------------------------------ pixel level

def test_pixel_metrics_match_brute_force_on_random_tied_data():
    rng = np.random.default_rng(2)
    for trial in range(60):
        maps, masks = random_pixel_case(rng)
        pos = np.concatenate([a[m] for a, m in zip(maps, masks) if m is not None])
        neg = np.concatenate([a.ravel() if m is None else a[~m] for a, m in zip(maps, masks)])
        expected = bf_auroc(np.r_[pos, neg], np.r_[np.ones(pos.size), np.zeros(neg.size)])
        assert pixel_auroc(maps, masks) == pytest.approx(expected, abs=1e-12)
        limit = [0.05, 0.3, 0.5, 1.0][trial % 4]
        assert aupro(maps, masks, limit) == pytest.approx(bf_aupro(maps, masks, limit), abs=1e-12)


def test_pixel_hand_case():
    # Region of two pixels (0.9, 0.3); good pixels 0.5 and 0.1.
    maps = [np.array([[0.9, 0.3, 0.5, 0.1]])]
    masks = [np.array([[True, True, False, False]])]
    assert pixel_auroc(maps, masks) == pytest.approx(0.75)         # 3 of 4 pairs
    # PRO is 1/2 until FPR 1/2, then 1: area 0.25 + 0.5 over [0, 1].
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.75)
    assert aupro(maps, masks, fpr_limit=0.3) == pytest.approx(0.5)


def test_aupro_averages_regions_not_pixels():
    # Regions {0} (score 5) and {2,3,4} (5, 1, 1); good pixels 0 and 2.
    maps = [np.array([[5.0, 0.0, 5.0, 1.0, 1.0, 2.0]])]
    masks = [np.array([[1, 0, 1, 1, 1, 0]], dtype=bool)]
    # Up to FPR 1/2 PRO = (1 + 1/3) / 2 = 2/3 (a pixel average would give 1/2).
    assert aupro(maps, masks, fpr_limit=0.5) == pytest.approx(2 / 3)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(1 / 3 + 1 / 2)


def test_perfect_map_scores_one_and_good_images_only_add_false_positives():
    rng = np.random.default_rng(4)
    maps, masks = [], []
    for k in range(4):
        m = np.zeros((20, 30), bool)
        if k % 2:
            m[3:8, 4:9] = True
            m[12:15, 20:28] = True
        a = rng.random((20, 30)).astype(np.float32) * 0.5 + m
        maps.append(a)
        masks.append(m if k % 2 else None)
    assert pixel_auroc(maps, masks) == 1.0
    assert aupro(maps, masks) == pytest.approx(1.0)
    # A bright spot on a good image lowers AUPRO only through the FPR.
    maps[0][0, 0] = 10.0
    assert aupro(maps, masks) < 1.0 and pixel_auroc(maps, masks) < 1.0


def test_pixel_metrics_errors_and_mixed_sizes_and_dtypes():
    a = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="no defect pixels"):
        pixel_auroc([a], [None])
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc([a], [np.zeros((5, 4), bool)])
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro([a], [a > 0], fpr_limit=0)
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    maps = [np.full((3, 3), 0.25, np.float64), a]
    maps[0][1, 1] = 0.5
    assert pixel_auroc(maps, [m, None]) == 1.0


def test_accumulator_per_tag_auroc():
    acc = PixelMetrics()
    m = np.zeros((2, 2), bool)
    m[0, 0] = True
    acc.add(np.array([[1.0, 0.0], [0.0, 0.0]]), m, tag="bright")
    acc.add(np.array([[0.0, 0.5], [0.5, 0.5]]), m, tag="faint")
    acc.add(np.zeros((2, 2)), None, tag="good")
    by = acc.pixel_auroc_by_tag()
    # 10 good pixels: 7 at 0, 3 at 0.5. "bright" (1.0) beats all; "faint" (0.0) ties 7.
    assert by == {"bright": 1.0, "faint": pytest.approx(3.5 / 10)}
    assert acc.pixel_auroc() == pytest.approx((10 + 3.5) / 20)
    assert acc.n_regions == 2 and acc.n_images == 3


def test_large_maps_are_fast_enough():
    import time

    rng = np.random.default_rng(5)
    acc = PixelMetrics()
    for k in range(20):
        m = np.zeros((300, 400), bool)
        m[100:140, 50 + k:90 + k] = True
        acc.add(rng.random((300, 400), dtype=np.float32) + 0.3 * m, m if k % 2 else None)
    t = time.perf_counter()
    assert 0.5 < acc.pixel_auroc() < 1.0
    assert 0.0 < acc.aupro() < 1.0
    assert time.perf_counter() - t < 5.0        # 2.4 M pixels; ~0.2 s normally
