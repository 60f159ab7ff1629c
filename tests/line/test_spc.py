"""SPC maths against numbers computed by hand: p-chart limits, Nelson rules, score drift,
exact intervals for reviewed rates."""
from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist

import numpy as np
import pytest

from lineguard.line import spc
from lineguard.line.spc import Subgroup, p_chart, review_rates, rule_hits, score_drift
from lineguard.vision.calibration import clopper_pearson


def _hits(z):
    return [(h.index, h.rule) for h in rule_hits(z)]


# -- p-chart ------------------------------------------------------------------------

def _by_hand(n, d, p):
    """UCL, LCL and z of a subgroup of n parts with d NG on a line at p, from the binomial
    terms written out (math.comb), not the module's scipy calls."""
    pmf = [math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)]
    beyond = 1 - NormalDist().cdf(3)                       # 0.00135, a normal curve's beyond 3 sigma
    upper, lower = (lambda k: sum(pmf[k:])), (lambda k: sum(pmf[:k + 1]))
    hi = next((k for k in range(n + 1) if upper(k) < beyond), n + 1)       # the fewest NG beyond
    lo = max((k for k in range(n + 1) if lower(k) < beyond), default=-1)   # the most NG beyond below
    u, low = upper(d), lower(d)
    z = -NormalDist().inv_cdf(u) if u < 0.5 else NormalDist().inv_cdf(low) if low < 0.5 else 0.0
    return min(1.0, (hi - 0.5) / n), (lo + 0.5) / n if lo >= 0 else 0.0, z


def test_p_chart_limits_follow_each_subgroup_size_hand_computed():
    n = [100, 80, 120, 100, 50, 100, 150, 100, 100, 100]      # 1000 parts
    d = [2, 1, 3, 2, 6, 1, 2, 0, 3, 2]                          # 22 NG
    chart = p_chart([Subgroup(f"h{i}", None, ni, di) for i, (ni, di) in enumerate(zip(n, d))])
    assert chart.centre == pytest.approx(0.022)
    for pt, ni, di in zip(chart.points, n, d):
        ucl, lcl, z = _by_hand(ni, di, 0.022)
        assert pt.n == ni and pt.defects == di and pt.p == pytest.approx(di / ni)
        assert (pt.ucl, pt.lcl, pt.z) == (pytest.approx(ucl), lcl, pytest.approx(z, abs=1e-6))
    # n=100: 8 NG has a 0.21% chance on a stable line, 9 has 0.06%: the limit is 8.5 NG, 8.5%;
    # n=50: 6 NG (0.08%) is beyond, 5 NG (0.55%) is not. A small subgroup gets the wider limit.
    assert [pt.ucl for pt in chart.points[3:5]] == [pytest.approx(0.085), pytest.approx(0.11)]
    assert all(pt.lcl == 0.0 for pt in chart.points)      # 0 NG is no rare event at 2.2%
    # subgroup 4: 6 in 50, P(X >= 6) = 0.00079 < 0.00135: z 3.16, the only rule hit
    assert chart.points[4].z == pytest.approx(3.161, abs=1e-3)
    assert [(h.index, h.rule) for h in chart.alarms] == [(4, 1)]
    assert chart.points[4].rules == [1] and all(not p.rules for i, p in enumerate(chart.points) if i != 4)
    assert chart.alarms[0].text.startswith("h4: defect rate above the control limit")
    # p̄ ± 3 sigma would have put subgroup 3's limit at 2.2% + 4.4% = 6.6%: 7 NG in 100 beyond
    # it, which a stable line at 2.2% makes once in 160 subgroups
    assert p_chart([Subgroup("a", None, 1000, 22), Subgroup("b", None, 100, 7)], centre=0.022).alarms == []


def test_p_chart_lower_limit_above_zero_hand_computed():
    chart = p_chart([Subgroup("a", None, 200, 30), Subgroup("b", None, 400, 30)])
    # p̄ = 60 / 600 = 0.1; n=200: beyond are 35 NG and more, 7 and fewer (limits 34.5/200 and
    # 7.5/200); n=400: 60+ and 22- (59.5/400, 22.5/400). Where n·p̄ is large the limits are
    # near p̄ ± 3 sigma (0.1636 / 0.0364 and 0.145 / 0.055).
    a, b = chart.points
    assert chart.centre == pytest.approx(0.1)
    assert (a.ucl, a.lcl) == (pytest.approx(0.1725), pytest.approx(0.0375))
    assert (b.ucl, b.lcl) == (pytest.approx(0.14875), pytest.approx(0.05625))
    assert (a.ucl, a.lcl, a.z) == (pytest.approx(_by_hand(200, 30, 0.1)[0]), pytest.approx(_by_hand(200, 30, 0.1)[1]),
                                   pytest.approx(_by_hand(200, 30, 0.1)[2], abs=1e-6))
    assert (a.z, b.z) == (pytest.approx(2.136, abs=1e-3), pytest.approx(-1.622, abs=1e-3))   # normal: 2.357, -1.667
    assert p_chart([Subgroup("a", None, 400, 100), Subgroup("b", None, 400, 20)]).points[1].rules == [1]   # below


def test_a_healthy_line_at_a_low_defect_rate_raises_almost_no_alarm_and_a_real_rise_is_caught():
    """0.3% NG, 100 parts an hour, two days of hours: with p̄ ± 3 sigma and z on it, 86% of
    such charts had an alarm (two NG in an hour "beyond the limit" in 60%, "nine below the
    centre" from hours without NG in 56%). A stable line is now flagged about as often as
    a normal curve would be, and a line that went to 3% is still flagged."""
    rng = np.random.default_rng(7)

    def chart(rates):
        return p_chart([Subgroup(f"h{i}", None, 100, int(rng.binomial(100, r))) for i, r in enumerate(rates)])

    stable = [chart([0.003] * 48) for _ in range(200)]
    assert sum(bool(c.alarms) for c in stable) / 200 < 0.05
    assert not any(h.rule == 2 for c in stable for h in c.alarms)
    risen = [chart([0.003] * 24 + [0.03] * 24) for _ in range(50)]
    assert sum(any(h.index >= 24 for h in c.alarms) for c in risen) / 50 > 0.75     # 84% here


def test_p_chart_skips_empty_subgroups_and_handles_a_zero_centre():
    chart = p_chart([Subgroup("a", None, 0, 0), Subgroup("b", None, 10, 0), Subgroup("c", None, 20, 0)])
    assert [p.label for p in chart.points] == ["b", "c"]
    assert chart.centre == 0 and all(p.ucl == 0 and p.z == 0 for p in chart.points) and not chart.alarms
    # against a centre of 0 taken from a reference period, the first defect is off the chart
    first = p_chart([Subgroup("d", None, 10, 1)], centre=0.0)
    assert first.points[0].z == math.inf and [h.rule for h in first.alarms] == [1]
    with pytest.raises(ValueError, match="impossible"):
        p_chart([Subgroup("x", None, 5, 6)])


# -- rules: each one hit by a sequence made for it, and just missed by a near one --------

def test_rule_1_one_point_beyond_3_sigma():
    assert _hits([0, 0, 3.1]) == [(2, 1)]
    assert _hits([0, 0, -3.2]) == [(2, 1)]
    assert _hits([0, 0, 3.0]) == []          # on the limit is not beyond it


def test_rule_2_nine_in_a_row_on_one_side():
    assert _hits([0.5] * 9) == [(8, 2)]
    assert _hits([-0.3] * 9) == [(8, 2)]
    assert _hits([0.5] * 8) == []            # eight is Western Electric's count, not ours
    assert _hits([0.5] * 4 + [0.0] + [0.5] * 4) == []   # a point on the centre line breaks the run


def test_rule_3_six_in_a_row_rising_or_falling():
    assert _hits([-0.9, -0.6, -0.3, 0.1, 0.4, 0.7]) == [(5, 3)]
    assert _hits([0.7, 0.4, 0.1, -0.3, -0.6, -0.9]) == [(5, 3)]
    assert _hits([-0.9, -0.6, -0.3, 0.1, 0.4, 0.4]) == []     # a tie is not a rise
    assert _hits([-0.6, -0.3, 0.1, 0.4, 0.7]) == []           # five points


def test_rule_5_two_of_three_beyond_2_sigma_same_side():
    assert _hits([0, 2.5, 0.5, 2.5]) == [(3, 5)]
    assert _hits([0, -2.5, -2.1]) == [(2, 5)]
    assert _hits([0, 2.5, 0.5, -2.5]) == []      # opposite sides
    assert _hits([0, 2.5, 0.5, 0.5, 2.5]) == []  # 2 of 4, not of 3
    # the point after the pattern is in control: not flagged for what came before it
    assert _hits([0, 2.5, 2.5, 0.1]) == [(2, 5)]


def test_rule_6_four_of_five_beyond_1_sigma_same_side():
    assert _hits([0, 1.5, 1.5, 0.5, 1.5, 1.5]) == [(5, 6)]
    assert _hits([0, -1.5, -1.5, -1.5, -1.5]) == [(4, 6)]
    assert _hits([0, 1.5, 1.5, 0.5, 0.5, 1.5]) == []     # 3 of 5


def test_rule_texts_name_the_pattern_for_an_operator():
    hit = rule_hits([0.5] * 9)[0]
    assert "9 periods in a row above the average" in hit.text


# -- score drift --------------------------------------------------------------------

def _stream(seed: int, shift_from=None, shift=0.0, groups=30, n=50):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(groups):
        s = rng.normal(1.0, 0.2, n)
        if shift_from is not None and i >= shift_from:
            s = s + shift
        out.append((f"g{i}", dt.datetime(2026, 12, 1) + dt.timedelta(hours=i), s))
    return out


def test_drift_alarm_fires_when_the_scores_shift():
    # a moved camera: every part scores one sd higher from subgroup 15 on
    res = score_drift(_stream(0, shift_from=15, shift=0.2))
    assert res.alarm and res.index == 15 and res.label == "g15"     # the start of the run
    assert "higher" in res.text and "camera" in res.text
    assert all(not p.drift for p in res.points[:15])
    assert sum(p.drift for p in res.points[15:]) >= 13
    assert res.points[15].shift > 0.2     # about Phi(1/sqrt 2) - 0.5 = 0.26
    lower = score_drift(_stream(1, shift_from=20, shift=-0.2))
    assert lower.alarm and lower.index == 20 and "lower" in lower.text


def test_no_drift_alarm_on_a_stable_stream():
    res = score_drift(_stream(0))
    assert not res.alarm and res.index is None and "steady" in res.text
    assert res.baseline["subgroups"] == 5 and res.baseline["n"] == 250
    assert all(p.shift is None for p in res.points[:5])     # the baseline is not tested against itself
    # a long stable line: single subgroups may cross 3 sigma by chance (about 0.3 % each,
    # more when the baseline happened to sit low, as with this seed), but never two in a
    # row, so no alarm
    many = score_drift(_stream(7, groups=400))
    assert 0 < sum(p.drift for p in many.points) <= 10
    assert not many.alarm


def test_one_drifted_subgroup_alone_is_no_alarm():
    # a single odd hour (someone held a part to the light) then back to normal
    res = score_drift(_stream(0, shift_from=20, shift=0.3, groups=21) + _stream(5, groups=30)[21:])
    assert res.points[20].drift and not res.alarm
    # the same hour followed by a second one: the alarm names the first
    res = score_drift(_stream(0, shift_from=20, shift=0.3, groups=22) + _stream(5, groups=30)[22:])
    assert res.alarm and res.index == 20


def test_a_few_real_defects_are_not_drift():
    # an hour with 5 of 50 parts far out (real defects): the p-chart's business
    stream = _stream(0)
    s = stream[20][2].copy()
    s[:5] = 5.0
    stream[20] = ("g20", stream[20][1], s)
    assert not score_drift(stream).alarm


def test_drift_needs_a_practical_shift_not_only_significance():
    # 20 000 parts a subgroup: a 0.05-sd move is 'significant' but not a camera problem
    res = score_drift(_stream(3, shift_from=10, shift=0.01, groups=15, n=20000))
    assert not res.alarm
    assert max(abs(p.z) for p in res.points[10:]) > 3     # significant, yet below min_shift


def test_drift_with_too_small_a_baseline_says_so():
    res = score_drift([("a", None, np.array([1.0, 2.0]))])
    assert not res.alarm and "not enough parts" in res.text
    # a window that is all baseline says there was nothing to compare, not "steady"
    res = score_drift(_stream(0, groups=5))
    assert not res.alarm and "nothing to compare yet" in res.text


# -- exact intervals and reviewed rates ------------------------------------------------

def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(0, 50)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 50), abs=1e-10)   # 0.0711
    assert hi == pytest.approx(0.0711, abs=1e-4)
    lo, hi = clopper_pearson(5, 20)          # textbook: (0.0866, 0.4910)
    assert (lo, hi) == (pytest.approx(0.0866, abs=1e-4), pytest.approx(0.4910, abs=1e-4))
    assert clopper_pearson(50, 50)[1] == 1.0 and clopper_pearson(50, 50)[0] == pytest.approx(0.025 ** (1 / 50))
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_clopper_pearson_covers_at_least_the_confidence():
    # exact coverage: the binomial probability of every k whose interval holds the true rate
    n = 40
    intervals = [clopper_pearson(k, n) for k in range(n + 1)]
    for p in (0.005, 0.02, 0.05, 0.1, 0.3, 0.5):
        cover = sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k)
                    for k, (lo, hi) in enumerate(intervals) if lo <= p <= hi)
        assert cover >= 0.95 - 1e-12, (p, cover)


def test_review_rates_definitions():
    counts = {("NG", "good"): 3, ("NG", "defect"): 37, ("OK", "defect"): 1, ("OK", "good"): 199,
              ("REVIEW", "good"): 4, ("REVIEW", "defect"): 2}
    r = review_rates(counts)
    assert r["false_reject"]["k"] == 3 and r["false_reject"]["n"] == 40
    assert r["false_reject"]["rate"] == pytest.approx(0.075)
    assert r["escape"]["k"] == 1 and r["escape"]["n"] == 200 and r["escape"]["rate"] == pytest.approx(0.005)
    assert r["escape"]["lo"] < 0.005 < r["escape"]["hi"]
    assert r["review_band"] == {"good": 4, "defect": 2} and r["confidence"] == 0.95
    empty = review_rates({})
    assert empty["escape"] == {"rate": None, "lo": 0.0, "hi": 1.0, "k": 0, "n": 0}
    assert empty["escape_audit"]["n"] == 0 and empty["audit_sample"] == {"ok_parts": 0, "reviewed": 0}
    # the random audit sample's OK parts: 2 defects in 400 reviewed of 1000 drawn
    a = review_rates(counts, audit={"parts": 1000, "good": 398, "defect": 2})
    assert a["escape_audit"]["k"] == 2 and a["escape_audit"]["n"] == 400
    assert a["escape_audit"]["rate"] == pytest.approx(0.005) and a["audit_sample"] == {"ok_parts": 1000,
                                                                                      "reviewed": 400}
    assert a["escape"] == r["escape"]


def test_rule_table_lists_the_rules_used():
    assert sorted(spc.RULES) == [1, 2, 3, 5, 6]


# -- periods in the plant's time zone -------------------------------------------------------

def test_hours_and_days_follow_daylight_saving_in_the_plant_zone():
    from lineguard.line.spc_data import Periods
    hours = Periods("hour", timezone="Europe/Berlin")
    # 2026-10-25: clocks go back at 03:00 CEST to 02:00 CET; 02:00-03:00 local happens twice
    first = hours.of(dt.datetime(2026, 10, 25, 0, 30))      # 02:30 CEST
    second = hours.of(dt.datetime(2026, 10, 25, 1, 30))     # 02:30 CET
    assert first == (dt.datetime(2026, 10, 25, 0, 0), "2026-10-25 02:00")
    assert second == (dt.datetime(2026, 10, 25, 1, 0), "2026-10-25 02:00 (2nd)")
    days = Periods("day", timezone="Europe/Berlin")
    # the local day of 25 October has 25 hours: 22:00 UTC the day before to 23:00 UTC
    assert days.of(dt.datetime(2026, 10, 25, 12, 0)) == (dt.datetime(2026, 10, 24, 22, 0), "2026-10-25")
    assert days.of(dt.datetime(2026, 10, 25, 22, 59)) == (dt.datetime(2026, 10, 24, 22, 0), "2026-10-25")
    assert days.of(dt.datetime(2026, 10, 25, 23, 0)) == (dt.datetime(2026, 10, 25, 23, 0), "2026-10-26")
    # a shift starting 06:10 needs 1-minute slots in the database, whole quarters otherwise
    assert Periods("shift", ("06:10", "18:10"), "UTC").slot_s == 60 and hours.slot_s == 900


def test_pareto_orders_defect_types_and_says_how_the_model_judged_each():
    from lineguard.line.spc import UNTYPED, pareto
    bars = pareto({("crack", "NG"): 30, ("crack", "OK"): 10, ("dent", "NG"): 25, ("scratch", "REVIEW"): 5,
                   (None, "NG"): 5, ("chip", "NG"): 25})
    assert [b.defect_type for b in bars] == ["crack", "chip", "dent", UNTYPED, "scratch"]   # ties by name
    crack = bars[0]
    assert (crack.parts, crack.caught, crack.at_review, crack.escaped) == (40, 30, 0, 10)
    assert crack.share == pytest.approx(0.4) and bars[1].cumulative == pytest.approx(0.65)
    assert bars[-1].cumulative == pytest.approx(1.0) and bars[-1].at_review == 5
    assert pareto({}) == []


def test_defect_map_counts_region_centres_per_cell():
    import numpy as np

    from lineguard.line.spc import defect_map
    grid = defect_map(np.array([[0.1, 0.1], [0.12, 0.2], [0.99, 0.99], [1.0, 1.0], [0.5, 0.25]]), columns=4, rows=2)
    assert grid.tolist() == [[2, 0, 1, 0], [0, 0, 0, 2]]      # an edge centre counts in the last cell
    assert defect_map(np.zeros((0, 2)), 3, 3).sum() == 0


def test_the_p_chart_needs_no_scipy():
    """A station installed with the [server] extra has no scipy: its limits are summed here."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['scipy'] = None\n"
            "from lineguard.line.spc import Subgroup, p_chart\n"
            "c = p_chart([Subgroup('a', None, 100, 2), Subgroup('b', None, 50, 6)], centre=0.022)\n"
            "print(round(c.points[1].ucl, 6), [h.rule for h in c.alarms])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0.11", "[1]"]


def test_a_count_far_in_a_tail_has_a_finite_z():
    """A camera fault's hour, 100 of 100 NG at 0.3%: z was infinite (1e9 in the API and CSV)."""
    from lineguard.line.spc import _binomial_limits
    z = _binomial_limits(100, 100, 0.003)[2]
    assert z == pytest.approx(-NormalDist().inv_cdf(0.003 ** 100), rel=1e-6)      # P(X >= 100) = p^100
    assert _binomial_limits(100_000, 601, 0.003)[2] == pytest.approx(15.285, abs=1e-3)
    far = _binomial_limits(10 ** 7, 10 ** 7, 0.5)[2]
    assert math.isfinite(far) and far > 3000
    assert math.isfinite(_binomial_limits(100_000, 0, 0.5)[2]) and _binomial_limits(100_000, 0, 0.5)[2] < -300


# -- the share of good parts scrapped, and what an audit claim takes -------------------

# a month-end walk's line L1: 730 parts; 22 judged NG, every one reviewed (2 good, 20
# defects); 28 REVIEW reviewed good; 680 OK, 10 of them audited good
_L1_COUNTS = {("NG", "good"): 2, ("NG", "defect"): 20, ("REVIEW", "good"): 28, ("OK", "good"): 10}
_L1_PARTS = {"NG": {"parts": 22, "good": 2, "defect": 20}, "REVIEW": {"parts": 28, "good": 28, "defect": 0},
             "OK": {"parts": 680, "good": 10, "defect": 0}}


def test_good_parts_scrapped_is_the_share_of_good_parts_rejected_not_of_rejected_parts_good():
    r = review_rates(_L1_COUNTS, parts=_L1_PARTS)
    gs = r["good_scrapped"]
    # 2 of the 710 good parts (730 made, 20 confirmed defects) were judged NG: 0.28 %,
    # where the rejected parts reviewed good are 2 of 22, 9.1 %
    assert (gs["k"], gs["n"]) == (2, 710) and gs["rate"] == pytest.approx(2 / 710)
    assert (gs["lo"], gs["hi"]) == pytest.approx(clopper_pearson(2, 710))
    assert gs["estimate"] is False and "every NG part was reviewed" in gs["text"]
    assert r["false_reject"]["k"] == 2 and r["false_reject"]["n"] == 22      # the old key, unchanged
    # a line that rejected nothing: none of its good parts scrapped, with its upper bound
    none = review_rates({}, parts={"OK": {"parts": 500, "good": 0, "defect": 1}})["good_scrapped"]
    assert (none["k"], none["n"], none["rate"], none["estimate"]) == (0, 499, 0.0, False)
    assert none["hi"] == pytest.approx(clopper_pearson(0, 499)[1])


def test_good_parts_scrapped_is_an_estimate_when_ng_parts_were_left_unreviewed():
    # 40 NG parts, 10 reviewed (1 good): the good share 1/10 stands for all 40, 4 good
    # parts rejected; 36 NG parts taken as defects, and 2 passed parts confirmed defects,
    # leave 4 + 958 good parts made
    parts = {"NG": {"parts": 40, "good": 1, "defect": 9}, "OK": {"parts": 960, "good": 5, "defect": 2}}
    gs = review_rates({("NG", "good"): 1, ("NG", "defect"): 9}, parts=parts)["good_scrapped"]
    assert gs["estimate"] is True and gs["k"] == pytest.approx(4.0) and gs["n"] == pytest.approx(962.0)
    assert gs["rate"] == pytest.approx(4 / 962) and gs["lo"] is None and gs["hi"] is None
    assert gs["ng_not_reviewed"] == 30 and "an estimate" in gs["text"] and "30 of 40" in gs["text"]
    # none of the NG parts reviewed: nothing to say how many were good
    blind = review_rates({}, parts={"NG": {"parts": 4}, "OK": {"parts": 9}})["good_scrapped"]
    assert blind["rate"] is None and blind["k"] is None and blind["estimate"] is True
    assert "none of the 4 NG parts reviewed" in blind["text"]


def _binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


def test_the_audit_says_how_many_audited_parts_a_claim_of_1000_ppm_needs_and_where_to_raise_the_rate():
    a = review_rates({}, audit={"parts": 14, "good": 10, "defect": 0}, parts={"OK": {"parts": 1000}},
                     audit_rate=0.02)["escape_audit"]
    # 0 of 10: "at most 25.9 % defective" (one-sided 95 %), not the two-sided interval's 30.8 %
    assert a["upper_bound"] == pytest.approx(1 - 0.05 ** (1 / 10)) and a["hi"] == pytest.approx(1 - 0.025 ** 0.1)
    # n >= ln(0.05) / ln(0.999) = 2994.2: 2995 audited OK parts with no defect state < 0.1 %
    assert a["target"] == 0.001 and a["needed"] == 2995
    assert 1 - 0.05 ** (1 / 2995) <= 0.001 < 1 - 0.05 ** (1 / 2994)
    assert (a["more_needed"], a["waiting"]) == (2985, 4)
    # the 4 waiting are reviewed first; the other 2981 at 2 % of the parts made
    assert a["audit_sample_rate"] == 0.02 and a["parts_to_make"] == math.ceil(2981 / 0.02)
    assert "audit_sample_rate" in a["setting"] and "--audit-sample-rate" in a["setting"]
    # one defect found: the bound holds with no more found (binomial P(X <= 1) <= 5 %)
    one = review_rates({}, audit={"parts": 400, "good": 399, "defect": 1})["escape_audit"]
    n = one["needed"]
    assert _binom_cdf(1, n, 0.001) <= 0.05 < _binom_cdf(1, n - 1, 0.001)
    assert one["more_needed"] == n - 400 and one["parts_to_make"] is None      # no audit rate given
    # enough audited: nothing more needed
    done = review_rates({}, audit={"parts": 3000, "good": 3000, "defect": 0}, audit_rate=0.02)["escape_audit"]
    assert done["more_needed"] == 0 and done["upper_bound"] <= 0.001 and done["parts_to_make"] == 0


def test_a_reference_period_without_ng_sets_half_a_part_not_zero():
    """A centre of 0 put every later NG part infinitely far beyond the limit."""
    assert spc.reference_centre(6, 182) == 6 / 182
    assert spc.reference_centre(0, 2000) == 0.5 / 2000
    one, two = (spc.p_chart([spc.Subgroup("s", None, 100, d)], centre=spc.reference_centre(0, 2000))
                for d in (1, 2))
    assert not one.alarms and math.isfinite(one.points[0].z)
    assert [h.rule for h in two.alarms] == [1]
    with pytest.raises(ValueError):
        spc.reference_centre(0, 0)
