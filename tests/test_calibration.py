"""Thresholds a plant can trust: the conformal rank, the honest note when there are too
few held-out parts, the false-reject guarantee in simulation, F1-optimal and rates."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from lineguard.vision.calibration import (beta_quantile, conformal_threshold, design_effect, f1_optimal_threshold,
                                          pixel_threshold_from_good, rates_at, summarize)


@pytest.mark.parametrize("n,alpha,rank", [(99, 0.01, 99), (199, 0.01, 198), (19, 0.1, 18), (50, 0.1, 46),
                                          (20, 0.05, 20), (1000, 0.05, 951), (9, 0.5, 5)])
def test_conformal_rank_for_known_n_and_alpha(n, alpha, rank):
    scores = np.random.default_rng(n).permutation(np.arange(n, dtype=float))   # k-th smallest = k - 1
    thr, info = conformal_threshold(scores, alpha)
    assert info["rank"] == rank
    assert thr == rank - 1
    assert info["enough_calibration_parts"] is True and "note" not in info
    assert info["guaranteed_false_reject_rate"] == pytest.approx((n + 1 - rank) / (n + 1))
    assert info["guaranteed_false_reject_rate"] <= alpha
    assert info["n_calibration"] == n and info["method"] == "conformal"


def test_conformal_rank_is_exact_for_many_n_and_alpha():
    # ceil((n + 1)(1 - alpha)) in exact arithmetic: float rounding must not move the rank.
    for alpha in ("0.001", "0.005", "0.01", "0.02", "0.03", "0.05", "0.07", "0.1", "0.2", "0.3"):
        for n in range(1, 300, 7):
            k = min(math.ceil((n + 1) * (1 - Fraction(alpha))), n)
            assert conformal_threshold(np.arange(n, dtype=float), float(alpha))[1]["rank"] == k, (n, alpha)


def test_too_few_parts_uses_the_max_and_says_so():
    scores = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 0.5])
    thr, info = conformal_threshold(scores, 0.01)
    assert thr == 5.0
    assert info["enough_calibration_parts"] is False
    assert info["calibration_parts_needed"] == 99
    assert info["guaranteed_false_reject_rate"] == pytest.approx(1 / 7)
    note = info["note"]
    assert "6 good parts scored by models without them" in note and "99" in note and "14.29%" in note


def test_upper_bound_is_the_beta_quantile():
    _, info = conformal_threshold(np.arange(100.0), 0.05)
    k = info["rank"]
    assert info["false_reject_rate_upper_90"] == pytest.approx(stats.beta.ppf(0.9, 101 - k, k))
    assert info["false_reject_rate_upper_90"] > info["guaranteed_false_reject_rate"]


def test_beta_quantile_matches_scipy():
    """The scipy-free Beta quantile (binomial tail + bisection) against scipy's, over the
    parameters conformal calibration produces and some far from them."""
    cases = [(n + 1 - k, k) for n in (1, 2, 5, 9, 19, 50, 99, 199, 500, 2000)
             for k in {1, max(1, n // 2), max(1, math.ceil((n + 1) * 0.99) if n >= 99 else n), n}]
    cases += [(1, 1), (3, 4), (10, 2), (40, 3), (200, 19800)]
    for a, b in cases:
        for q in (1e-6, 0.05, 0.5, 0.9, 0.99, 0.999999):
            want = stats.beta.ppf(q, a, b)
            assert beta_quantile(q, a, b) == pytest.approx(want, rel=1e-9, abs=1e-300), (q, a, b)
    assert beta_quantile(0.0, 3, 4) == 0.0 and beta_quantile(1.0, 3, 4) == 1.0


@pytest.mark.parametrize("q,a,b", [(0.9, 1.5, 2), (0.9, 0, 3), (0.9, 2, -1), (1.2, 2, 3), (-0.1, 2, 3)])
def test_beta_quantile_refuses_what_it_cannot_compute(q, a, b):
    with pytest.raises(ValueError, match="integer parameters|between 0 and 1"):
        beta_quantile(q, a, b)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_false_reject_rate_must_be_a_rate(bad):
    with pytest.raises(ValueError, match="false_reject_rate"):
        conformal_threshold(np.arange(10.0), bad)


def test_no_scores_is_a_value_error():
    with pytest.raises(ValueError, match="at least one"):
        conformal_threshold(np.array([]), 0.1)


@pytest.mark.parametrize("n,alpha", [(60, 0.05), (200, 0.05), (150, 0.1)])
def test_realised_false_reject_rate_holds_in_simulation(n, alpha):
    """2000 calibration sets: the realised false-reject rate on new good parts (exact, from
    the score distribution) averages at most the target, and the stated 90% upper bound
    covers it about 90% of the time."""
    rng = np.random.default_rng(n)
    dist = stats.gamma(a=3.0)                     # skewed, like anomaly scores
    realised, upper_ok = [], []
    for cal in dist.rvs(size=(2000, n), random_state=rng):
        thr, info = conformal_threshold(cal, alpha)
        fr = float(dist.sf(thr))                  # P(new good part's score > threshold)
        realised.append(fr)
        upper_ok.append(fr <= info["false_reject_rate_upper_90"])
    realised = np.array(realised)
    assert realised.mean() <= alpha + 0.003
    assert realised.mean() >= alpha - 0.02        # and not absurdly conservative
    assert 0.87 <= np.mean(upper_ok) <= 0.93


def test_the_bound_counts_parts_when_a_part_has_several_photos():
    """20 parts, 10 photos each, photos of a part scoring alike (the part's own level plus
    a little noise), as a plant that photographs each part from several sides. Counting
    the 200 photos as independent, the stated 90% bound covers the threshold's true rate
    far less than 90% of the time; counting parts (the design effect), at least 90%."""
    rng = np.random.default_rng(7)
    parts, photos, alpha, noise = 20, 10, 0.1, 0.3
    labels = np.repeat(np.arange(parts), photos)
    spread = math.sqrt(1 + noise ** 2)
    by_photo, by_part = [], []
    for _ in range(400):
        s = np.repeat(rng.normal(size=parts), photos) + rng.normal(scale=noise, size=parts * photos)
        thr, plain = conformal_threshold(s, alpha)
        thr_g, grouped = conformal_threshold(s, alpha, groups=labels)
        assert thr_g == thr                        # the threshold itself is the photos' rank
        rate = float(stats.norm.sf(thr, scale=spread))
        by_photo.append(rate <= plain["false_reject_rate_upper_90"])
        by_part.append(rate <= grouped["false_reject_rate_upper_90"])
    assert np.mean(by_photo) < 0.8                 # the photo count overstates the evidence
    assert np.mean(by_part) >= 0.9
    assert 5 < grouped["design_effect"] <= photos


def test_one_photo_per_part_or_unrelated_photos_change_nothing():
    rng = np.random.default_rng(3)
    s = rng.gamma(3.0, size=120)
    assert conformal_threshold(s, 0.05, groups=list(range(120)))[1] == conformal_threshold(s, 0.05)[1]
    assert design_effect(s, None) == 1.0
    # photos grouped at random: their scores do not cluster, the effect stays near 1
    assert design_effect(s, np.repeat(np.arange(30), 4)) < 1.5
    # identical photos of each part: worth exactly the number of parts
    twins = np.repeat(s[:40], 3)
    assert design_effect(twins, np.repeat(np.arange(40), 3)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="one label per score"):
        design_effect(s, [0, 1])


def test_naive_quantile_would_fail_the_simulation():
    # Control: the plain (1 - alpha) empirical quantile over-rejects on average, which is
    # why the conformal rank matters; the simulation above is able to tell them apart.
    rng = np.random.default_rng(0)
    dist = stats.gamma(a=3.0)
    n, alpha = 30, 0.1
    cal = np.sort(dist.rvs(size=(4000, n), random_state=rng), axis=1)
    naive = dist.sf(cal[:, int(math.floor(n * (1 - alpha))) - 1]).mean()
    conformal = np.mean([dist.sf(conformal_threshold(c, alpha)[0]) for c in cal[:2000]])
    assert naive > alpha + 0.01
    assert conformal <= alpha + 0.005


def _brute_f1(g, d, t):
    tp = int((d > t).sum())
    fp = int((g > t).sum())
    fn = len(d) - tp
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


@pytest.mark.parametrize("seed", range(5))
def test_f1_optimal_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 1, 40).round(1)             # rounding makes ties
    d = rng.normal(1.5, 1, 15).round(1)
    t, f1 = f1_optimal_threshold(g, d)
    allv = np.unique(np.concatenate([g, d]))
    cands = np.concatenate([[allv[0] - 1], (allv[:-1] + allv[1:]) / 2, [allv[-1] + 1]])
    best = max(_brute_f1(g, d, c) for c in cands)
    assert f1 == pytest.approx(best)
    assert _brute_f1(g, d, t) == pytest.approx(f1)


def test_f1_threshold_separates_separable_scores():
    t, f1 = f1_optimal_threshold(np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0]))
    assert f1 == 1.0 and 3.0 <= t < 5.0


def test_f1_needs_defects():
    with pytest.raises(ValueError, match="defect images"):
        f1_optimal_threshold(np.arange(5.0), np.array([]))


def test_rates_at_counts():
    r = rates_at(np.array([0.1, 0.5, 0.9, 1.0]), np.array([0.4, 1.0, 2.0]), threshold=0.9)
    assert r["false_rejects"] == 1 and r["false_reject_rate"] == 0.25    # only 1.0 > 0.9
    assert r["escapes"] == 1 and r["escape_rate"] == pytest.approx(1 / 3)  # 0.4 <= 0.9
    assert r["n_good"] == 4 and r["n_defect"] == 3 and r["threshold"] == 0.9
    none = rates_at(np.array([1.0]), np.array([]), 0.5)
    assert none["escape_rate"] is None and none["false_reject_rate"] == 1.0


def test_summarize_strategies():
    g = np.linspace(0, 1, 50)
    d = np.linspace(0.8, 2, 10)
    frr = summarize(g, 0.1, d, "frr")
    assert frr["threshold"] == frr["frr_threshold"]
    assert frr["at_frr_threshold"]["threshold"] == frr["threshold"]
    assert "f1_threshold" in frr and "at_f1_threshold" in frr
    f1 = summarize(g, 0.1, d, "f1")
    assert f1["threshold"] == f1["f1_threshold"]
    assert summarize(g, 0.1)["threshold"] == frr["threshold"]
    with pytest.raises(ValueError, match="needs defect images"):
        summarize(g, 0.1, None, "f1")
    with pytest.raises(ValueError, match="strategy"):
        summarize(g, 0.1, d, "youden")


def test_pixel_threshold_is_a_high_good_quantile_capped_at_the_image_threshold():
    rng = np.random.default_rng(0)
    maps = [rng.random((32, 32)).astype(np.float32) for _ in range(5)]
    t = pixel_threshold_from_good(maps, image_threshold=10.0, quantile=0.99)
    assert t == pytest.approx(np.quantile(np.concatenate([m.ravel() for m in maps]), 0.99))
    assert pixel_threshold_from_good(maps, image_threshold=0.5) == 0.5
    sub = pixel_threshold_from_good(maps, image_threshold=10.0, quantile=0.5, max_pixels=1000)
    assert 0.4 < sub < 0.6


def test_promise_check_counted_by_hand():
    from lineguard.vision.calibration import promise_check
    cal = {"threshold": 0.5, "review_threshold": 0.3, "guaranteed_false_reject_rate": 0.01,
           "guaranteed_not_ok_rate": 0.06}
    # 100 recent parts: 1 NG (0.9), 4 in the band (0.4): as promised, nothing flagged
    kept = [0.1] * 95 + [0.4] * 4 + [0.9]
    r = promise_check(cal, kept)
    assert (r["ng"]["k"], r["ng"]["n"], r["ng"]["promised"]) == (1, 100, 0.01)
    assert (r["not_ok"]["k"], r["not_ok"]["promised"]) == (5, 0.06)
    assert not r["ng"]["above_promise"] and not r["not_ok"]["above_promise"]
    # 20 of 100 in the band: the share's interval (95%: ~13-29%) lies above the 6% promised
    # for REVIEW or NG; NG alone still within its promise
    broken = promise_check(cal, [0.1] * 79 + [0.4] * 20 + [0.9])
    assert broken["not_ok"]["k"] == 21 and broken["not_ok"]["lo"] > 0.06
    assert broken["not_ok"]["above_promise"] and not broken["ng"]["above_promise"]
    # a share above the promise that the interval cannot tell from it is not flagged: 1 of 10
    assert not promise_check(cal, [0.1] * 9 + [0.9])["ng"]["above_promise"]
    # no band: no not-OK promise; thresholds set by hand (no guarantee): no check; no parts yet
    assert "not_ok" not in promise_check({**cal, "review_threshold": 0.5}, kept)
    assert promise_check({"threshold": 0.5, "review_threshold": 0.3}, kept) is None
    assert promise_check(cal, [])["ng"] == {"k": 0, "n": 0, "rate": None, "lo": 0.0, "hi": 1.0,
                                            "promised": 0.01, "above_promise": False}


def test_parts_for_review_band_is_where_the_band_opens():
    """30 good parts hold no 5% band above a 1% false-reject rate: both ranks are the
    largest score. The count said to be needed is the first at which summarize opens one."""
    from lineguard.vision.calibration import parts_for_review_band, summarize
    assert parts_for_review_band(0.01, 0.05) == 33
    assert parts_for_review_band(0.01, 0) is None
    for frr, rr in ((0.01, 0.05), (0.1, 0.2), (0.02, 0.1), (0.005, 0.01)):
        n = parts_for_review_band(frr, rr)
        for m, band in ((n - 1, False), (n, True)):
            c = summarize(np.arange(m, dtype=float), frr, review_rate=rr)
            assert (c["review_threshold"] < c["threshold"]) is band, (frr, rr, m)


def test_too_few_parts_note_says_where_the_scores_came_from():
    from lineguard.vision.calibration import PARTS_NOT_LEARNT, too_few_parts_note
    _, info = conformal_threshold(np.arange(30.0), 0.01)
    assert too_few_parts_note(info) == info["note"]           # training's wording, as before
    assert too_few_parts_note(info, PARTS_NOT_LEARNT).startswith(
        "30 good parts the model did not learn from cannot guarantee a 1.00% false-reject rate (needs 99)")


def test_copies_of_a_photo_count_once_in_the_promise():
    """5 photos saved twice promised 9.09% on average (10 parts); 5 parts give 16.67%. A walk:
    `recalibrate` on 30 photos given three times promised 1.10% where 30 parts give 3.23%."""
    from lineguard.vision.calibration import conformal_threshold, promise_text, too_few_parts_note
    scores = np.arange(1.0, 6.0)
    twice = np.concatenate([scores, scores])
    thr, plain = conformal_threshold(twice, 0.01)
    assert plain["guaranteed_false_reject_rate"] == pytest.approx(1 / 11)        # as if 10 parts
    thr_c, info = conformal_threshold(twice, 0.01, copies=[False] * 5 + [True] * 5)
    assert thr_c == thr == 5.0                                                   # the threshold itself stays
    assert info["guaranteed_false_reject_rate"] == pytest.approx(1 / 6)
    assert (info["copies_counted_once"], info["distinct_calibration_parts"]) == (5, 5)
    assert "10 good photos, 5 different ones," in too_few_parts_note(info)
    assert "its 10 photos are 5 different ones: copies count once" in promise_text(info)
    # enough distinct parts: the same promise as without the copies
    many = np.linspace(0, 1, 199)
    _, alone = conformal_threshold(many, 0.01)
    _, with_copies = conformal_threshold(np.concatenate([many, many[:50]]), 0.01, copies=[False] * 199 + [True] * 50)
    assert with_copies["guaranteed_false_reject_rate"] >= alone["guaranteed_false_reject_rate"] - 1e-9


def test_a_review_band_opens_by_the_ranks_on_these_parts_not_by_a_count_once_enough():
    """Walk: 40 good parts, a 1% band above 20%: parts_for_review_band says 23, and on 40 the
    two ranks fall together again; train and the retrain job called that "tied scores"."""
    from lineguard.vision.calibration import parts_for_review_band, review_band_opens
    assert parts_for_review_band(0.2, 0.01) == 23
    assert review_band_opens(0.2, 0.01, 23) and not review_band_opens(0.2, 0.01, 40)
    assert not review_band_opens(0.01, 0.05, 30) and review_band_opens(0.01, 0.05, 33)
    assert not review_band_opens(0.01, 0.05, 0)
