"""How well an inspector separates good parts from defective ones.

Image level: ``image_auroc``, ``roc_curve``, ``f1_max`` and ``rates_at`` (false rejects
and escapes at one threshold, the two numbers a plant cares about). Pixel level:
``pixel_auroc`` and ``aupro`` (per-region overlap, the MVTec AD measure that counts a
small scratch as much as a large dent).

Everything is exact, ties included: AUROC is the probability that a defect scores
above a good part, a tie counting one half, which is the area under the ROC curve with
tied scores grouped into one step. The pixel metrics never loop over thresholds: the
good pixels are sorted once and every defect pixel is placed among them by binary
search, so ~60 million pixels take a few seconds. ``PixelMetrics`` accumulates maps
one image at a time so that an evaluation never has to keep full anomaly maps.

Conventions: label 1 / True means defect (NG). A part is judged NG when its score is
strictly above the threshold (``rates_at``); ROC points are "score >= t" at each distinct
score, so the two agree at every threshold strictly between distinct scores.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

__all__ = [
    "image_auroc", "roc_curve", "f1_max", "rates_at",
    "pixel_auroc", "aupro", "PixelMetrics",
]


# --------------------------------------------------------------------------- helpers

def _scores_labels(scores: Sequence[float] | np.ndarray,
                   labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length ({s.size} vs {y.size})")
    if s.size and np.isnan(s).any():
        raise ValueError("scores contain NaN; the inspector produced an invalid score")
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0/1 or False/True (1 = defect)")
        y = y.astype(bool)
    return s, y


def _need_both_classes(n_pos: int, n_neg: int, what: str) -> None:
    if n_pos == 0 or n_neg == 0:
        missing = "defective" if n_pos == 0 else "good"
        raise ValueError(f"{what} is undefined without {missing} samples "
                         f"({n_pos} defective, {n_neg} good)")


def _rank_auc(pos: np.ndarray, neg_sorted: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(pos == neg); ``neg_sorted`` ascending."""
    below, not_above = _place(pos, neg_sorted)
    return _auc_from_counts(below, not_above, pos.size, neg_sorted.size)


def _place(pos: np.ndarray, neg_sorted: np.ndarray, pos_is_sorted: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """For each positive: how many negatives are below it, and how many are not above."""
    # Sorted keys make the binary searches walk memory in order (much faster).
    p = pos if pos_is_sorted else np.sort(pos)
    below = np.searchsorted(neg_sorted, p, side="left")
    not_above = below.copy()
    # Exact ties between a defect pixel and good pixels are rare in real maps: search
    # a second time only for the values that hit one.
    if neg_sorted.size:
        hit = neg_sorted[np.minimum(below, neg_sorted.size - 1)] == p
        hit &= below < neg_sorted.size
        if hit.any():
            not_above[hit] = np.searchsorted(neg_sorted, p[hit], side="right")
    return below, not_above


def _auc_from_counts(below: np.ndarray, not_above: np.ndarray, n_pos: int, n_neg: int) -> float:
    # Integer sums are exact; 2*sum(below) + sum(ties) stays far below 2**63 for any
    # realistic pixel count, and the single division at the end keeps full precision.
    twice = 2 * int(below.sum(dtype=np.int64)) + int((not_above - below).sum(dtype=np.int64))
    return twice / (2.0 * n_pos * n_neg)


# --------------------------------------------------------------------- image level

def image_auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve of image scores (ties count one half).

    Raises ValueError when only one class is present: the AUROC is then undefined.
    """
    s, y = _scores_labels(scores, labels)
    pos, neg = s[y], s[~y]
    _need_both_classes(pos.size, neg.size, "AUROC")
    return _rank_auc(pos, np.sort(neg))


def roc_curve(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds decreasing; a point per distinct score.

    Point i counts parts with ``score >= thresholds[i]`` as NG; the first point is
    (0, 0) at threshold +inf. Tied scores form one step, so the trapezoid area under
    this curve equals :func:`image_auroc`.
    """
    s, y = _scores_labels(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    _need_both_classes(n_pos, n_neg, "ROC curve")
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    # Last index of each run of equal scores: the curve moves once per distinct score.
    ends = np.r_[np.flatnonzero(s_desc[1:] != s_desc[:-1]), s_desc.size - 1]
    tps = np.cumsum(y_desc)[ends]
    fps = (ends + 1) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thr = np.r_[np.inf, s_desc[ends]]
    return fpr, tpr, thr


def _threshold_below(value: float, next_lower: Optional[float]) -> float:
    """A threshold t with ``value > t`` and ``next_lower <= t`` (for "score > t is NG")."""
    if next_lower is None:
        return float(np.nextafter(value, -np.inf))
    mid = 0.5 * (value + next_lower)
    if not (next_lower <= mid < value):           # adjacent floats: the mean rounds up
        mid = float(np.nextafter(value, -np.inf))
    return float(mid)


def f1_max(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
           ) -> tuple[float, float]:
    """Best F1 over all thresholds, and a threshold that reaches it.

    The threshold follows the "score > threshold is NG" rule of :func:`rates_at`: it
    lies midway between the lowest score judged NG and the next lower score, so
    ``rates_at(scores, labels, threshold)`` reproduces the counts behind the F1.
    """
    s, y = _scores_labels(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("F1 is undefined without defective samples")
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    ends = np.r_[np.flatnonzero(s_desc[1:] != s_desc[:-1]), s_desc.size - 1]
    tp = np.cumsum(y_desc)[ends].astype(np.float64)
    fp = (ends + 1) - tp
    f1 = 2.0 * tp / (tp + fp + n_pos)          # = 2tp / (2tp + fp + fn)
    best = int(np.argmax(f1))
    value = float(s_desc[ends[best]])
    next_lower = float(s_desc[ends[best] + 1]) if ends[best] + 1 < s_desc.size else None
    return float(f1[best]), _threshold_below(value, next_lower)


def rates_at(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
             threshold: float) -> dict:
    """False rejects and escapes when ``score > threshold`` is judged NG.

    Returns ``false_reject_rate`` (good parts judged NG / good parts),
    ``escape_rate`` (defective parts judged OK / defective parts), the counts behind
    them and ``n_good``/``n_defect``. A rate is None when its class is absent.
    """
    s, y = _scores_labels(scores, labels)
    ng = s > float(threshold)
    n_good, n_defect = int((~y).sum()), int(y.sum())
    false_rejects = int((ng & ~y).sum())
    escapes = int((~ng & y).sum())
    return {
        "false_reject_rate": false_rejects / n_good if n_good else None,
        "escape_rate": escapes / n_defect if n_defect else None,
        "n_good": n_good,
        "n_defect": n_defect,
        "false_rejects": false_rejects,
        "escapes": escapes,
    }


# --------------------------------------------------------------------- pixel level

class PixelMetrics:
    """Accumulates anomaly maps and ground-truth masks, then gives pixel AUROC and AUPRO.

    Only the pixel values are kept (good pixels, defect pixels, the size of the defect
    region each defect pixel belongs to), not the maps, so a caller can drop each map
    after :meth:`add`. Each image can carry a tag (its defect type) for per-type
    pixel AUROC.

    Ground-truth regions are 8-connected components of each mask, as in the MVTec AD
    evaluation.
    """

    def __init__(self) -> None:
        self._neg: list[np.ndarray] = []
        self._pos: list[np.ndarray] = []
        self._pos_inv_area: list[np.ndarray] = []
        self._pos_tag: list[int] = []
        self._tags: dict[str, int] = {}
        self.n_images = 0
        self.n_regions = 0
        self._neg_sorted: Optional[np.ndarray] = None
        self._pos_data: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        self._placed: Optional[tuple[np.ndarray, np.ndarray]] = None

    def add(self, anomaly_map: np.ndarray, mask: Optional[np.ndarray], tag: str = "") -> None:
        """Add one image. ``mask`` None or all False: every pixel counts as good."""
        amap = np.asarray(anomaly_map)
        if amap.ndim != 2:
            raise ValueError(f"anomaly map must be 2-D (H, W), got shape {amap.shape}")
        if not np.issubdtype(amap.dtype, np.floating):
            amap = amap.astype(np.float64)
        if np.isnan(amap).any():
            raise ValueError("anomaly map contains NaN; the inspector produced an invalid map")
        self._neg_sorted = None
        self._pos_data = None
        self._placed = None
        self.n_images += 1
        if mask is None or not np.any(mask):
            self._neg.append(amap.ravel())
            return
        m = np.asarray(mask).astype(bool, copy=False)
        if m.shape != amap.shape:
            raise ValueError(f"mask shape {m.shape} differs from anomaly map shape {amap.shape}")
        # 8-connected regions from the mask's runs, pure numpy (vision.regions): the edge
        # install evaluates an exported model without scipy; same regions as ndimage.label
        from .regions import label_runs

        _, starts, ends, comp = label_runs(m)
        n = int(comp.max()) + 1
        lengths = ends - starts
        areas = np.bincount(comp, weights=lengths, minlength=n)
        self._neg.append(amap[~m])
        self._pos.append(amap[m])     # row-major: the runs one after another
        self._pos_inv_area.append(np.repeat(1.0 / areas[comp], lengths))
        self._pos_tag.append(self._tags.setdefault(tag, len(self._tags)))
        self.n_regions += n

    # -- prepared, sorted data (computed once, shared by both metrics)

    def _negatives(self) -> np.ndarray:
        if self._neg_sorted is None:
            if not self._neg:
                raise ValueError("no good pixels: pixel metrics are undefined")
            neg = np.concatenate(self._neg)
            if self._pos:
                neg = neg.astype(np.result_type(neg, *self._pos), copy=False)
            neg.sort()
            self._neg_sorted = neg
        return self._neg_sorted

    def _positives(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values ascending, 1/region area, tag index), all in that order."""
        if self._pos_data is None:
            if not self._pos:
                raise ValueError("no defect pixels in the masks: pixel metrics are undefined")
            vals = np.concatenate(self._pos)
            inv = np.concatenate(self._pos_inv_area)
            tags = np.repeat(np.asarray(self._pos_tag, dtype=np.int32), [p.size for p in self._pos])
            vals = vals.astype(np.result_type(vals, *self._neg) if self._neg else vals.dtype, copy=False)
            order = np.argsort(vals)
            self._pos_data = (vals[order], inv[order], tags[order])
        return self._pos_data

    @property
    def n_good_pixels(self) -> int:
        return int(sum(a.size for a in self._neg))

    @property
    def n_defect_pixels(self) -> int:
        return int(sum(a.size for a in self._pos))

    def _placement(self) -> tuple[np.ndarray, np.ndarray]:
        if self._placed is None:
            pos, _, _ = self._positives()
            self._placed = _place(pos, self._negatives(), pos_is_sorted=True)
        return self._placed

    def pixel_auroc(self) -> float:
        """Pixel AUROC over every pixel added: defect pixels vs good pixels."""
        below, not_above = self._placement()
        return _auc_from_counts(below, not_above, below.size, self._negatives().size)

    def pixel_auroc_by_tag(self) -> dict[str, float]:
        """Per tag: that tag's defect pixels vs all good pixels of all images added."""
        below, not_above = self._placement()
        _, _, tags = self._positives()
        n_neg = self._negatives().size
        out = {}
        for name, idx in self._tags.items():
            sel = tags == idx
            n = int(sel.sum())
            if n:
                out[name] = _auc_from_counts(below[sel], not_above[sel], n, n_neg)
        return out

    def aupro(self, fpr_limit: float = 0.3) -> float:
        """Normalised area under the per-region-overlap curve up to ``fpr_limit``.

        PRO(t): mean over all ground-truth regions of the fraction of the region with
        score >= t. FPR(t): fraction of good pixels (all images) with score >= t. The
        curve is integrated with the trapezoid rule over every distinct threshold,
        cut at ``fpr_limit`` by linear interpolation, and divided by ``fpr_limit`` so
        a perfect map scores 1.
        """
        if not (0.0 < fpr_limit <= 1.0):
            raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
        neg = self._negatives()
        pos, inv_area, _ = self._positives()
        n_neg = neg.size

        # Only the highest ~fpr_limit share of good pixels matters. Take whole runs of
        # equal values, one element more than needed so that the run crossing the
        # limit is complete.
        need = min(n_neg, int(np.ceil(fpr_limit * n_neg)) + 1)
        start = int(np.searchsorted(neg, neg[n_neg - need], side="left"))
        tail = neg[start:]                                   # ascending, whole runs
        run_start = np.r_[0, np.flatnonzero(tail[1:] != tail[:-1]) + 1]
        values = tail[run_start]
        n_runs = values.size
        # Run j holds good pixels [start + run_start[j], start + run_end[j]) of the
        # sorted array: FPR is n_neg - that start (>= v) or - that end (> v), over n_neg.
        fpr_after = (n_neg - start - run_start) / n_neg                           # FPR(>= v)
        fpr_before = (n_neg - start - np.r_[run_start[1:], tail.size]) / n_neg    # FPR(> v)
        del tail, run_start

        # Region weight (1/area) of the defect pixels above each run's value: place
        # every defect pixel among the runs once, then suffix sums.
        r = np.searchsorted(values, pos, side="left")           # values[r-1] < p <= values[r]
        above = np.cumsum(np.bincount(r, weights=inv_area, minlength=n_runs + 1)[::-1])[::-1]
        pro_gt = above[1:] / self.n_regions                     # W(p > v_j) = sum over r > j
        equal = r < n_runs
        equal[equal] = values[r[equal]] == pos[equal]
        pro_ge = pro_gt + np.bincount(r[equal], weights=inv_area[equal], minlength=n_runs) / self.n_regions

        # Going down in threshold (j from high to low), run j draws the segment
        # (fpr_before, PRO(> v)) -> (fpr_after, PRO(>= v)); defect pixels strictly
        # between two good values only lift the curve at constant FPR (no area).
        full = fpr_after <= fpr_limit
        area = float(np.sum((fpr_after[full] - fpr_before[full]) * (pro_gt[full] + pro_ge[full])) / 2.0)
        if not full.all():
            k = int(np.flatnonzero(~full)[-1])                  # the highest run past the limit
            if fpr_before[k] < fpr_limit:                        # it crosses: interpolate
                frac = (fpr_limit - fpr_before[k]) / (fpr_after[k] - fpr_before[k])
                pro_at_limit = pro_gt[k] + frac * (pro_ge[k] - pro_gt[k])
                area += (fpr_limit - fpr_before[k]) * (pro_gt[k] + pro_at_limit) / 2.0
        return float(area / fpr_limit)


def _accumulate(maps: Iterable[np.ndarray], masks: Iterable[Optional[np.ndarray]]) -> PixelMetrics:
    maps, masks = list(maps), list(masks)
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} anomaly maps but {len(masks)} masks")
    acc = PixelMetrics()
    for i, (amap, mask) in enumerate(zip(maps, masks)):
        if mask is not None and np.shape(mask) != np.shape(amap):
            raise ValueError(f"image {i}: mask shape {np.shape(mask)} differs from map shape {np.shape(amap)}")
        acc.add(amap, mask)
    return acc


def pixel_auroc(maps: Sequence[np.ndarray], masks: Sequence[Optional[np.ndarray]]) -> float:
    """Pixel AUROC over lists of (H, W) anomaly maps and boolean masks (sizes may vary).

    A mask of None means a good image (all pixels good). Raises ValueError when there
    are no defect pixels or no good pixels.
    """
    return _accumulate(maps, masks).pixel_auroc()


def aupro(maps: Sequence[np.ndarray], masks: Sequence[Optional[np.ndarray]],
          fpr_limit: float = 0.3) -> float:
    """Per-region-overlap AUC up to ``fpr_limit``, normalised to [0, 1].

    See :meth:`PixelMetrics.aupro`. Images without defects only add good pixels.
    """
    return _accumulate(maps, masks).aupro(fpr_limit)
