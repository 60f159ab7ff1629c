"""Thresholds a plant can trust.

The image threshold is set from good parts held out of training, by a target
false-reject rate alpha ("at most 1 good part in 100 scrapped"). We use the split
conformal quantile: with n held-out good scores, the threshold is the k-th smallest,
k = ceil((n + 1)(1 - alpha)). For a new good part exchangeable with those, the chance
that it is rejected is then at most alpha, whatever the score distribution. The rate
that a particular calibration set delivers is itself random, Beta(n + 1 - k, k)
distributed, so we also state an upper bound at 90% confidence.

With too few held-out parts for the target (n + 1 < 1 / alpha) no finite quantile
guarantees alpha; we use the largest held-out score, say so, and report the rate
that is guaranteed instead (1 / (n + 1)).

A review band adds a second, lower threshold, the review threshold: a part scoring
above the reject threshold is NG, at or below the review threshold OK, in between
REVIEW (a person looks). It is the same conformal quantile, taken for "not OK" at the
rate ``false_reject_rate + review_rate``: rank k_ok = ceil((n + 1)(1 - frr - review_rate)).
A new good part is then judged not OK (REVIEW or NG) with probability at most
frr + review_rate, so about ``review_rate`` of good parts go to review on top of the
false rejects. ``review_rate = 0`` gives k_ok = k: no band, the review threshold
equals the reject threshold and no part is ever REVIEW.

Whether parts keep these promises (``promise_check``: the share judged NG, and not OK,
against the promise) is stated with exact Clopper-Pearson intervals.

Nothing here needs scipy or torch: an edge install recalibrates an exported model on
its own runtime's scores (``Inspector.recalibrate``).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np


def design_effect(scores: np.ndarray, groups: Optional[Sequence[Any]]) -> float:
    """How many times fewer independent parts a calibration set of grouped photos is
    worth (Kish's design effect, 1 + (m - 1) * ICC): photos of one part score alike, so
    eight photos of a part say less than eight parts. ICC is the share of the scores'
    variance that lies between groups (one-way ANOVA estimate, held in [0, 1]); ``m``
    the size-weighted mean group size. 1.0 without groups or with one photo each."""
    if groups is None:
        return 1.0
    x = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
    if len(labels) != len(x):
        raise ValueError(f"groups must give one label per score: got {len(labels)} for {len(x)} scores")
    sizes = np.bincount(labels)
    n, g = len(x), len(sizes)
    if g == n or g < 2:
        return 1.0 if g == n else float(n)      # one group: as good as one part
    means = np.bincount(labels, weights=x) / sizes
    between = float(np.sum(sizes * (means - x.mean()) ** 2)) / (g - 1)
    within = float(np.sum((x - means[labels]) ** 2)) / (n - g)
    m0 = (n - float(np.sum(sizes ** 2)) / n) / (g - 1)   # the ANOVA's mean group size
    between_var = max(0.0, (between - within) / m0)
    icc = between_var / (between_var + within) if between_var + within > 0 else 1.0
    m_weighted = float(np.sum(sizes ** 2)) / n
    return float(min(1.0 + (m_weighted - 1.0) * icc, n / g))


def conformal_threshold(good_scores: np.ndarray, false_reject_rate: float,
                        confidence: float = 0.9,
                        groups: Optional[Sequence[Any]] = None,
                        copies: Optional[Sequence[bool]] = None) -> tuple[float, dict[str, Any]]:
    """The reject threshold for ``false_reject_rate`` and its evidence (module docstring).

    ``groups`` (one label per score: the part a photo shows) changes only the stated
    confidence bound: the rank and the average guarantee treat photos as exchangeable,
    but the spread of this one threshold's rate is that of the number of independent
    parts, n / design effect (:func:`design_effect`), not of the photo count. (With
    strongly alike photos the average itself runs a little above the target, e.g. 5.6%
    for 5% with 40 parts of 5 photos in simulation; the part-level conformal rule, valid
    whatever the photos, gave 3.6%: README, "Photos that belong together".)

    ``copies`` (one flag per score: the same photo as an earlier one, byte for byte) changes
    the stated average too: a copy is no other part, so the promise is that of the distinct
    photos (5 photos saved twice promised 9.09% as 10 parts, where 5 parts give 16.67%).
    """
    raw = np.asarray(good_scores, dtype=np.float64)
    s = np.sort(raw)
    n = len(s)
    if n == 0:
        raise ValueError("need at least one held-out good score to set a threshold")
    if not 0 < false_reject_rate < 1:
        raise ValueError(f"false_reject_rate must be between 0 and 1, got {false_reject_rate}")
    k = _rank(n, false_reject_rate)
    enough = k <= n
    k = min(k, n)
    threshold = float(s[k - 1])
    guaranteed = (n + 1 - k) / (n + 1)          # E[rejection rate] bound for this k
    dup = np.zeros(n, bool) if copies is None else np.asarray(copies, bool)
    if dup.any():
        distinct = raw[~dup]
        n_d, k_d = len(distinct), int(np.sum(distinct <= threshold))
        guaranteed = max(guaranteed, (n_d + 1 - k_d) / (n_d + 1))
        enough = enough and _rank(n_d, false_reject_rate) <= n_d
    deff = design_effect(raw, groups) if n else 1.0
    if deff > 1.0:
        # the same share of the calibration above the threshold, out of fewer parts;
        # rounded the cautious way (more above, fewer in all) for the integer Beta. The
        # parts count is floored past float error: 27 photos of 26 different ones are
        # n / deff = 25.999999999999996 parts, and floored bare the bound was 25 parts'
        n_eff = max(1, _floor(n / deff))
        above = min(n_eff - 1, -(-(n - k) * n_eff // n))      # a ceiling in whole numbers
        upper = beta_quantile(confidence, above + 1, n_eff - above) if n_eff > 1 else 1.0
    else:
        upper = beta_quantile(confidence, n + 1 - k, k)
    info = {
        "method": "conformal",
        "target_false_reject_rate": false_reject_rate,
        "n_calibration": n,
        "rank": k,
        "guaranteed_false_reject_rate": guaranteed,
        f"false_reject_rate_upper_{int(confidence * 100)}": upper,
        "enough_calibration_parts": enough,
        "calibration_parts_needed": math.ceil(round(1 / false_reject_rate, 9)) - 1,
    }
    if deff > 1.0:
        info["design_effect"] = round(deff, 4)
        info["effective_calibration_parts"] = round(n / deff, 1)
    if dup.any():
        info["copies_counted_once"] = int(dup.sum())
        info["distinct_calibration_parts"] = int(n - dup.sum())
    if not enough:
        info["note"] = too_few_parts_note(info)
    return threshold, info


def _floor(x: float) -> int:
    """``math.floor`` of a quotient that stands for a whole number of parts, past the float
    error in its last digits (25.999999999999996 is 26 parts, not 25)."""
    return math.floor(round(x, 9))


def _rank(n: int, rate: float) -> int:
    """The conformal rank ceil((n + 1)(1 - rate)), past the float error in the product
    (10 * (1 - 0.3) is 7.000000000000001: rank 8 instead of 7). Every rank of this module
    is taken here, so the thresholds and the review band's part counts agree."""
    return math.ceil(round((n + 1) * (1 - rate), 9))


# How training's calibration parts were scored: held out, or each by a model without it
# (cross-fitting). Recalibration says its own (``PARTS_NOT_LEARNT``): one model, fresh parts.
PARTS_CROSS_FIT = "scored by models without them"
PARTS_NOT_LEARNT = "the model did not learn from"


def held_out(calib: dict[str, Any]) -> Any:
    """Whether a calibration record's good parts were held out of the model's training.

    Training wrote ``held_out: true`` for a cross-fit model too, whose record says no part
    was held out (each part was scored by models without it, then the model learnt them
    all), and ``lineguard info`` showed it so: read from how the parts were scored,
    where the record says; else the stored flag (recalibration: fresh parts, held out)."""
    method = calib.get("calibration_method")
    if method == "cross-fit" or "cross-fitting" in str(calib.get("calibration_parts", "")):
        return False
    if method == "held out":
        return True
    return calib.get("held_out")


def too_few_parts_note(info: dict[str, Any], parts: str = PARTS_CROSS_FIT) -> str:
    """What a threshold from too few parts guarantees instead (``info``: from
    :func:`conformal_threshold`); ``parts`` says where the good parts' scores came from."""
    n = info["n_calibration"]
    if info.get("copies_counted_once"):
        # 90 photos, 30 of them three times: 30 parts, not 90
        n = f"{n} good photos, {info['distinct_calibration_parts']} different ones,"
    else:
        n = f"{n} good parts"
    return (f"{n} {parts} cannot guarantee a "
            f"{share_said(info['target_false_reject_rate'])} false-reject rate (needs {info['calibration_parts_needed']}); "
            f"threshold set at the largest of their scores, which guarantees "
            f"{info['guaranteed_false_reject_rate']:.2%}")


def share_said(rate: float) -> str:
    """A share of parts as a percentage a person reads back as what was asked: two
    decimals ("1.00%") where they hold it, else as many as it takes ("0.125%"): a target of
    --frr 1e-9 was printed "0.00%", beside "needs 999999999" parts."""
    two = f"{rate:.2%}"
    if rate <= 0 or rate >= 0.01 or math.isclose(round(rate, 4), rate, rel_tol=1e-9):
        return two
    return np.format_float_positional(100 * rate, precision=3, fractional=False, trim="-") + "%"


def promise_text(c: dict[str, Any]) -> str:
    """What a calibration promises, in the two senses a plant needs: the conformal bound
    holds on average over good folders like this one, while this one threshold's own rate
    is random (with 50 parts, 0-5% on magnetic tiles for a 2% promise; benchmarks/promise_bench.py)."""
    text = f"on average <= {c['guaranteed_false_reject_rate']:.2%}"
    if c.get("false_reject_rate_upper_90") is not None:
        text += f"; this threshold's own rate <= {c['false_reject_rate_upper_90']:.2%} with 90% confidence"
    if c.get("copies_counted_once"):
        text += (f" (its {c['n_calibration']} photos are {c['distinct_calibration_parts']} different ones: "
                 "copies count once)")
    elif c.get("effective_calibration_parts") is not None:
        text += (f" (its {c['n_calibration']} photos count as about {c['effective_calibration_parts']:g} parts: "
                 "photos of one part score alike)")
    return text


def parts_for_review_band(false_reject_rate: float, review_rate: float, limit: int = 1_000_000) -> Optional[int]:
    """The fewest good parts whose review rank falls below the reject rank, so that a band
    at ``review_rate`` can open (the ranks of :func:`conformal_threshold`, same arithmetic).
    With fewer, both thresholds are the largest score and the band is empty: 30 parts
    hold no 5% band above a 1% false-reject rate (33 do). None past ``limit``."""
    check_review_rate(false_reject_rate, review_rate)
    if review_rate <= 0:
        return None
    for n in range(1, limit + 1):
        k = min(_rank(n, false_reject_rate), n)
        if _rank(n, false_reject_rate + review_rate) < k:
            return n
    return None


def review_band_opens(false_reject_rate: float, review_rate: float, n: int) -> bool:
    """Whether on ``n`` good parts the review band's rank lies below the threshold's (the
    ranks of :func:`conformal_threshold`). Not monotone in n: :func:`parts_for_review_band`
    says 23 parts open a 1% band above a 20% false-reject rate, and on 40 the two ranks
    fall together again (a band less than one part), which was told as tied scores."""
    k = min(_rank(n, false_reject_rate), n)
    return n > 0 and _rank(n, false_reject_rate + review_rate) < k


def empty_band_cause(false_reject_rate: float, review_rate: float, n: int) -> tuple[str, Optional[int]]:
    """Why a review band asked for came out empty on ``n`` good parts, and the fewest parts
    that open one (None past the search): "tied" (the ranks lie apart, but the parts' scores
    there are one), "too_few" (fewer than that), or "under_one_rank" (enough once, but on
    these the band's rank falls on the threshold's). train, recalibrate and the retrain job
    each say it in their own words."""
    try:
        needed = parts_for_review_band(false_reject_rate, review_rate)
    except ValueError:
        needed = None
    if review_band_opens(false_reject_rate, review_rate, n):
        return "tied", needed
    if needed is None or n < needed:
        return "too_few", needed
    return "under_one_rank", needed


def check_review_rate(false_reject_rate: float, review_rate: float) -> None:
    """Refuse a review rate that cannot make a band, with what to do instead."""
    if not math.isfinite(float(review_rate)) or review_rate < 0:
        raise ValueError(f"review_rate must be 0 (no review band) or a positive share of good parts to send "
                         f"to review, e.g. 0.05; got {review_rate}")
    if 0 < false_reject_rate < 1 and false_reject_rate + review_rate >= 1:  # a bad frr is refused on its own
        raise ValueError(f"false_reject_rate + review_rate must stay below 1 (got {false_reject_rate} + "
                         f"{review_rate}); lower the review rate: it is the share of good parts a person "
                         "looks at, typically a few percent")


def review_threshold(good_scores: np.ndarray, false_reject_rate: float, review_rate: float,
                     reject_threshold: float) -> tuple[float, dict[str, Any]]:
    """The review threshold: the conformal quantile for "not OK" at frr + review_rate.

    At or below it a part is OK. Never above ``reject_threshold`` (a band cannot be
    negative: with the F1 strategy the reject threshold may sit below this quantile,
    and then the band is empty). ``review_rate`` 0 returns ``reject_threshold`` itself.
    """
    check_review_rate(false_reject_rate, review_rate)
    if review_rate == 0:
        return float(reject_threshold), {"review_rate": 0.0}
    thr, info = conformal_threshold(good_scores, false_reject_rate + review_rate)
    return min(thr, float(reject_threshold)), {
        "review_rate": float(review_rate),
        "review_rank": info["rank"],
        # the bound on good parts judged REVIEW or NG; what is left after the false
        # rejects is the review load on good parts
        "guaranteed_not_ok_rate": info["guaranteed_false_reject_rate"],
    }


def _beta_cdf(x: float, a: int, b: int) -> float:
    """Regularised incomplete beta I_x(a, b) for integer a, b >= 1.

    For integers it is a binomial tail: I_x(a, b) = P(Binomial(a + b - 1, x) >= a).
    The tail away from the binomial's mean is the small one: it is summed directly
    (1 - the other tail would lose the digits that matter near 0 or 1), from the end
    next to the mean outwards, where the terms shrink, until they stop adding anything.
    Terms are computed in logs so that large binomial coefficients do not overflow.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    m = a + b - 1
    lx, l1x, lm = math.log(x), math.log1p(-x), math.lgamma(m + 1)

    def pmf(j: int) -> float:
        return math.exp(lm - math.lgamma(j + 1) - math.lgamma(m - j + 1) + j * lx + (m - j) * l1x)

    def tail(js: range) -> float:
        terms: list[float] = []
        for j in js:
            t = pmf(j)
            terms.append(t)
            if t < 1e-18 * terms[0]:  # beyond the mode the terms only shrink
                break
        return math.fsum(terms)

    if a > m * x:      # P(X >= a) is the upper tail: small
        return min(1.0, tail(range(a, m + 1)))
    return max(0.0, 1.0 - tail(range(a - 1, -1, -1)))


def beta_quantile(q: float, a: int, b: int) -> float:
    """Quantile (inverse CDF) of Beta(a, b) for integer a, b >= 1, e.g. the upper
    confidence bound of a conformal threshold's false-reject rate.

    Exact up to float rounding: the CDF is a finite binomial sum (:func:`_beta_cdf`),
    which is increasing in x, so bisection on [0, 1] converges to the last bit.
    """
    if not (isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer))) or a < 1 or b < 1:
        raise ValueError(f"beta_quantile needs integer parameters >= 1, got a={a!r}, b={b!r}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be between 0 and 1, got {q}")
    a, b = int(a), int(b)
    if q == 0.0:
        return 0.0
    if q == 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(1100):   # enough halvings to reach the smallest positive float
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return hi


def _scores_and_labels(good_scores: np.ndarray, defect_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(good_scores, dtype=np.float64).ravel()
    d = np.asarray(defect_scores, dtype=np.float64).ravel()
    return np.concatenate([g, d]), np.concatenate([np.zeros(len(g), bool), np.ones(len(d), bool)])


def rates_at(good_scores: np.ndarray, defect_scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """False rejects (good judged NG) and escapes (defect judged OK) at a threshold, by
    score (:func:`with_defect_verdicts` counts the escapes by the verdict).

    The plant-side view of :func:`metrics.rates_at` (good and defect scores given
    apart), with the threshold recorded beside the counts.
    """
    from .metrics import rates_at as _rates

    return {"threshold": float(threshold), **_rates(*_scores_and_labels(good_scores, defect_scores), threshold)}


def escapes_judged(defect_scores: Sequence[float], threshold: float, review_threshold: Optional[float] = None,
                   photo_review: Optional[Sequence[bool]] = None) -> dict[str, Any]:
    """Defect photos judged OK (escapes) at these thresholds, by the verdict each is given,
    the rule of ``lineguard eval`` (vision.evaluate) and the station: OK at or below the
    review threshold (the threshold itself without a band) with a photo the photo check did
    not doubt; a doubted photo is REVIEW whatever its score, a defect caught at review, not
    an escape. Counted by score instead, train said 20 of 24 magnetic-tile defects escaped
    where inspect judged 10 OK and eval counted 10 escapes. Returns ``escapes``,
    ``escape_rate`` (None without defects), ``n_defect``, ``defects_review`` (judged REVIEW:
    the band's and the photo check's) and ``defects_photo_review`` (the photo check's)."""
    d = np.asarray(defect_scores, dtype=np.float64).ravel()
    doubted = np.zeros(len(d), bool) if photo_review is None else np.asarray(photo_review, bool).ravel()
    if len(doubted) != len(d):
        raise ValueError(f"photo_review must give one flag per defect score: got {len(doubted)} for {len(d)}")
    band = float(threshold) if review_threshold is None else min(float(review_threshold), float(threshold))
    ok = (d <= band) & ~doubted
    ng = (d > float(threshold)) & ~doubted
    n = len(d)
    return {"escapes": int(ok.sum()), "escape_rate": float(ok.mean()) if n else None, "n_defect": n,
            "defects_review": int((~ok & ~ng).sum()), "defects_photo_review": int(doubted.sum())}


def with_defect_verdicts(calib: dict[str, Any], defect_scores: Sequence[float],
                         photo_review: Sequence[bool]) -> dict[str, Any]:
    """A calibration record whose escape counts (``at_frr_threshold``, ``at_f1_threshold``,
    ``at_review_threshold``, ``measured_escape_rate``) follow the verdicts, as
    :func:`escapes_judged` counts them, on the defect photos' scores and the photo check's
    doubts of them (``photo_review``). For a record whose counts were taken by score; the
    false rejects on the good parts stay as they are. A record without defects is returned as is."""
    out = dict(calib)
    # each threshold alone, no band; and the model's own pair (the band's defects are REVIEW)
    for key, threshold, band in (("at_frr_threshold", calib.get("frr_threshold"), None),
                                 ("at_f1_threshold", calib.get("f1_threshold"), None),
                                 ("at_review_threshold", calib.get("threshold"), calib.get("review_threshold"))):
        if key in out and threshold is not None:
            out[key] = {**out[key], **escapes_judged(defect_scores, threshold, band, photo_review)}
    if "measured_escape_rate" in out and "at_f1_threshold" in out:
        out["measured_escape_rate"] = out["at_f1_threshold"]["escape_rate"]
    return out


def f1_optimal_threshold(good_scores: np.ndarray, defect_scores: np.ndarray) -> tuple[float, float]:
    """Threshold maximising F1 of the NG class (defect = positive); returns (threshold, f1)."""
    from .metrics import f1_max

    if len(np.asarray(defect_scores)) == 0:
        raise ValueError("F1-optimal threshold needs defect images")
    f1, threshold = f1_max(*_scores_and_labels(good_scores, defect_scores))
    return threshold, f1


def pixel_threshold_from_good(maps: list[np.ndarray], image_threshold: float,
                              quantile: float = 0.999, max_pixels: int = 2_000_000,
                              seed: int = 0) -> float:
    """Pixel threshold for outlining regions, from good parts' anomaly maps.

    A high quantile of good pixels: on a good part almost no pixel exceeds it, so on
    an NG part the region outlines what is unlike any good surface. Never above the
    image threshold, so every NG part has at least its worst spot outlined.
    """
    rng = np.random.default_rng(seed)
    flat = np.concatenate([m.ravel() for m in maps])
    if len(flat) > max_pixels:
        flat = rng.choice(flat, max_pixels, replace=False)
    return float(min(np.quantile(flat, quantile), image_threshold))


# What the conformal quantile guarantees about the threshold it sets: under the F1 strategy
# the threshold is another one, so these go into ``frr_promise`` (what the frr threshold
# would have promised), never beside the F1 threshold, where every reader of the record
# (eval's promise check, the station's Tuning page, ``train``'s output) would quote them.
PROMISE_KEYS = ("method", "rank", "guaranteed_false_reject_rate", "false_reject_rate_upper_90",
                "enough_calibration_parts", "calibration_parts_needed", "design_effect",
                "effective_calibration_parts", "note")

F1_NO_PROMISE = ("no false-reject guarantee: the threshold is the one that scored best (F1) on the given good and "
                 "defect parts, and its rates are measured on those same parts, which chose it: the escape rate "
                 "is optimistic for new defects, and the false-reject rate is one sample's")


def summarize(good_scores: np.ndarray, false_reject_rate: float,
              defect_scores: Optional[np.ndarray] = None, strategy: str = "frr",
              review_rate: float = 0.0, groups: Optional[Sequence[Any]] = None,
              copies: Optional[Sequence[bool]] = None,
              defect_photo_review: Optional[Sequence[bool]] = None) -> dict[str, Any]:
    """Full calibration record: the chosen thresholds and both rates where known.

    ``threshold`` is the reject threshold (above it: NG); ``review_threshold`` the
    review threshold (at or below it: OK; in between: REVIEW), from ``review_rate``
    as the module docstring defines. ``review_rate`` 0: no band, the two are equal.
    ``groups``: which photos show the same part, ``copies`` which are copies of another
    (:func:`conformal_threshold`). ``defect_photo_review``: which defect photos the photo
    check doubts, so that escapes count by the verdict (:func:`escapes_judged`).

    Strategy "f1": the reject threshold is the F1-optimal one on the given parts. It
    carries no conformal promise: the record holds its measured rates
    (``measured_false_reject_rate``, ``measured_escape_rate``, from ``at_f1_threshold``)
    and ``no_promise`` saying why; what the frr threshold (``frr_threshold``) would have
    promised is kept apart in ``frr_promise``. A review band then sends ``review_rate``
    of the good parts to REVIEW on top of those the F1 threshold rejects on the given
    parts (the conformal quantile at their measured share + ``review_rate``), again
    measured, not promised (``at_review_threshold``).
    """
    check_review_rate(false_reject_rate, review_rate)
    thr, info = conformal_threshold(good_scores, false_reject_rate, groups=groups, copies=copies)
    out: dict[str, Any] = {"strategy": strategy, "frr_threshold": thr, **info}
    if defect_scores is not None and len(defect_scores):
        f1_t, f1 = f1_optimal_threshold(good_scores, defect_scores)
        out["f1_threshold"] = f1_t
        out["f1"] = f1
        out["at_frr_threshold"] = rates_at(good_scores, defect_scores, thr)
        out["at_f1_threshold"] = rates_at(good_scores, defect_scores, f1_t)
    if strategy == "f1":
        if "f1_threshold" not in out:
            raise ValueError("strategy 'f1' needs defect images; give some or use strategy 'frr'")
        out["frr_promise"] = {k: out.pop(k) for k in PROMISE_KEYS if k in out}
        out["method"] = "f1"
        out["threshold"] = out["f1_threshold"]
        at = out["at_f1_threshold"]
        out["measured_false_reject_rate"] = at["false_reject_rate"]
        out["measured_escape_rate"] = at["escape_rate"]
        out["no_promise"] = F1_NO_PROMISE
        if review_rate > 0:
            # the band's meaning under F1: review_rate of the good parts to REVIEW on top of the
            # share the F1 threshold rejects (at frr + review_rate, the module's band, it sat above
            # an F1 threshold below the frr one and was always empty)
            rejected = float(at["false_reject_rate"] or 0.0)
            level = min(rejected + review_rate, 1.0 - 1.0 / (len(np.ravel(good_scores)) + 2))
            rt = min(conformal_threshold(good_scores, level)[0], out["threshold"])
            out["review_threshold"] = rt
            out["review_rate"] = float(review_rate)
        else:
            out["review_threshold"], _ = review_threshold(good_scores, false_reject_rate, 0.0, out["threshold"])
            out["review_rate"] = 0.0
    elif strategy == "frr":
        out["threshold"] = thr
        out["review_threshold"], review_info = review_threshold(good_scores, false_reject_rate, review_rate,
                                                                out["threshold"])
        out.update(review_info)
    else:
        raise ValueError(f"strategy must be 'frr' or 'f1', got {strategy!r}")
    if defect_scores is not None and len(defect_scores) and review_rate > 0:
        # escapes are defects judged OK: with a band, those at or below the review threshold
        out["at_review_threshold"] = rates_at(good_scores, defect_scores, out["review_threshold"])
    if defect_scores is not None and len(defect_scores) and defect_photo_review is not None:
        out = with_defect_verdicts(out, defect_scores, defect_photo_review)
    return out


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for a rate of ``k`` in ``n``; (0, 1) when n is 0.

    Conservative: covers the true rate at least ``confidence`` of the time for every
    rate, which is what a plant wants from "at most x % escapes". k = 0 gives an upper
    bound of 1 - (α/2)^(1/n) (k=0, n=50: 0.0711).
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else beta_quantile(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta_quantile(1 - alpha / 2, k + 1, n - k)
    return lo, hi


def rate_with_ci(k: int, n: int, confidence: float = 0.95) -> dict[str, Any]:
    """A rate of ``k`` in ``n`` with its exact interval: {rate (None when n is 0), lo, hi, k, n}."""
    lo, hi = clopper_pearson(k, n, confidence)
    return {"rate": (k / n) if n else None, "lo": lo, "hi": hi, "k": int(k), "n": int(n)}


def promise_check(calibration: dict[str, Any], scores: Sequence[float],
                  confidence: float = 0.95,
                  photo_review: Optional[Sequence[bool]] = None) -> Optional[dict[str, Any]]:
    """Do these parts keep the promise the calibration made?

    Training promised that, on average, at most ``guaranteed_false_reject_rate`` of good
    parts are judged NG and, with a band, at most ``guaranteed_not_ok_rate`` are judged
    not OK (REVIEW or NG), for good parts like the training set. Here: the shares of
    ``scores`` judged so at the calibration's thresholds, with exact intervals, and
    whether a share lies above its promise beyond doubt (the interval's lower end above
    it). ``evaluate`` passes known-good test parts; the station its recent parts less
    those a person reviewed as defects, which still hold the unreviewed defects, so there
    a share above the promise means more defects than usual or good parts unlike the
    training photos. Either way parts unlike the training set break it: KolektorSDD's
    test commutators sent 10-11% of good photos to a 5% band whose promise held on the
    training commutators left out (``benchmarks/commutator_band_study.py``).

    ``photo_review``: which of ``scores`` the photo check doubted. Such a part is REVIEW
    whatever its score (:class:`~lineguard.vision.inspector.Inspector`), so it is never
    NG and always not OK; counted by its score, a dark photo scoring high read as an NG
    that broke the promise. Left out (None): every part is judged by its score.

    None when the thresholds carry no promise (set by hand, an old model file, or chosen
    by F1 on the given parts: models trained before ``frr_promise`` kept the frr
    threshold's promise beside the F1 threshold, which does not keep it).
    """
    if "guaranteed_false_reject_rate" not in calibration or calibration.get("strategy") == "f1":
        return None
    x = np.asarray(scores, dtype=np.float64)
    t = float(calibration["threshold"])
    r = float(calibration.get("review_threshold", t))

    doubted = np.zeros(len(x), dtype=bool) if photo_review is None else np.asarray(photo_review, dtype=bool)

    def check(k: int, promised: float) -> dict[str, Any]:
        share = rate_with_ci(k, len(x), confidence)
        return {**share, "promised": float(promised), "above_promise": bool(len(x) and share["lo"] > promised)}
    out: dict[str, Any] = {"confidence": confidence,
                           "ng": check(int(np.sum((x > t) & ~doubted)), calibration["guaranteed_false_reject_rate"])}
    if r < t and "guaranteed_not_ok_rate" in calibration:
        out["not_ok"] = check(int(np.sum((x > r) | doubted)), calibration["guaranteed_not_ok_rate"])
    if photo_review is not None:
        out["photo_review"] = int(doubted.sum())
    return out
