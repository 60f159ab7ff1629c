"""Statistical process control of a line: defect-rate p-chart, run rules, score drift,
and the rates reviewers measured, with confidence intervals.

Pure maths on counts and scores: no database, no web (the API in
``lineguard.server.routers.spc`` feeds it). The numbers follow the textbook (Montgomery,
*Introduction to Statistical Quality Control*, ch. 7; Nelson, J. Qual. Technol. 1984):

p-chart with variable subgroup size and probability limits
    Subgroup i has n_i parts, d_i of them defective (verdict NG). Centre line
    p̄ = Σd_i / Σn_i. Each subgroup gets its own limits from the binomial distribution of
    d_i on a stable line (Montgomery 7.2.1, "probability limits"): beyond them lie the
    counts such a line makes with less than 0.135% chance on that side, the chance a normal
    curve leaves beyond 3σ. A small subgroup (a short shift, a lot of 40 parts) gets wide
    limits, a big one narrow limits. The textbook's p̄ ± 3·sqrt(p̄(1 − p̄)/n_i) assumes a
    normal curve, which a plant's low defect rate is not: at 0.3% NG and 100 parts an hour
    that limit is 1.9%, so two NG in one hour (a 1-in-27 event on a stable line) was
    "beyond the control limit", and 60% of healthy two-day charts had such an alarm; a
    subgroup with no NG (three hours in four there) stood below the centre, and nine of
    them in a row "shifted the process down" on 56%. Where n·p̄ is large the two agree.

Run rules on the standardised values z_i
    With variable n the raw p_i are not comparable against one set of zones; z_i are
    (Montgomery 7.3.1, "standardised control chart"). z_i is the normal quantile of d_i's
    binomial tail: Φ⁻¹(1 − P(X ≥ d_i)) above the median count, Φ⁻¹(P(X ≤ d_i)) below it,
    0 at it, so z_i > 3 exactly when the point is beyond its upper limit, each zone holds
    no more of a stable line's points than a normal curve's would, and a count a stable line
    makes more often than not on that side (no NG where 0.3 are expected) is not below the
    centre at all. Where n·p̄ is large z_i is (p_i − p̄)/σ_i to within 0.5/sqrt(n·p̄(1 − p̄)).
    Rule numbers are Nelson's:

    1. one point beyond 3σ (either side)
    2. nine points in a row on one side of the centre line (Nelson's nine, not Western
       Electric's eight: on a p-chart of small p the distribution is skewed and eight
       gives more false alarms)
    3. six points in a row steadily increasing or decreasing
    5. two of three points in a row beyond 2σ on the same side
    6. four of five points in a row beyond 1σ on the same side

    A rule is marked on the point that completes its pattern, and for rules 5 and 6
    that point must itself be one of those beyond the zone (so an in-control point is
    never flagged for what came before it).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Optional, Sequence

import numpy as np

from ..vision.calibration import beta_quantile, rate_with_ci

RULES = {
    1: "one point beyond 3σ",
    2: "9 points in a row on one side of the centre line",
    3: "6 points in a row steadily increasing or decreasing",
    5: "2 of 3 points beyond 2σ on the same side",
    6: "4 of 5 points beyond 1σ on the same side",
}


@dataclass
class Subgroup:
    """Parts judged in one hour, shift, day or lot."""

    label: str
    start: Optional[dt.datetime]     # naive UTC, like the records
    n: int                           # parts judged
    defects: int                     # parts judged NG


@dataclass
class ChartPoint:
    label: str
    start: Optional[dt.datetime]
    n: int
    defects: int
    p: float
    ucl: float
    lcl: float
    z: float
    rules: list[int] = field(default_factory=list)


@dataclass
class RuleHit:
    index: int
    rule: int
    text: str


@dataclass
class PChart:
    centre: float
    points: list[ChartPoint]
    alarms: list[RuleHit]


def p_chart(subgroups: Sequence[Subgroup], centre: Optional[float] = None) -> PChart:
    """The p-chart of ``subgroups`` (in time order; empty ones are left out).

    ``centre`` fixes p̄ (e.g. from a reference period: Phase II monitoring); by default
    it is estimated from the subgroups themselves (Phase I).
    """
    groups = [g for g in subgroups if g.n > 0]
    for g in groups:
        if g.defects < 0 or g.defects > g.n:
            raise ValueError(f"subgroup {g.label!r}: {g.defects} defects out of {g.n} parts is impossible")
    total = sum(g.n for g in groups)
    pbar = float(centre) if centre is not None else (sum(g.defects for g in groups) / total if total else 0.0)
    if not 0.0 <= pbar <= 1.0:
        raise ValueError(f"the centre line must be a rate between 0 and 1, got {pbar}")
    points = []
    for g in groups:
        p = g.defects / g.n
        if 0.0 < pbar < 1.0:
            ucl, lcl, z = _binomial_limits(g.n, g.defects, pbar)
        else:   # p̄ is 0 or 1: every point sits on it, or is infinitely far (the first defect ever)
            ucl = lcl = pbar
            z = 0.0 if p == pbar else math.copysign(math.inf, p - pbar)
        points.append(ChartPoint(g.label, g.start, g.n, g.defects, p, ucl, lcl, z))
    hits = rule_hits([pt.z for pt in points])
    for h in hits:
        points[h.index].rules.append(h.rule)
        h.text = f"{points[h.index].label}: {h.text}"
    return PChart(pbar, points, hits)


def reference_centre(ng: int, parts: int) -> float:
    """The centre line (p̄) a reference period of ``parts`` parts with ``ng`` NG sets for
    Phase II: its NG share, or, when it had none, half an NG part in it (0.5 / parts). A
    centre of 0 puts every later NG part infinitely far beyond the limit: a line at 0.3 %
    whose week before had no NG in 2,000 parts alarmed on the shift's first NG part; at
    0.5 / 2,000 one NG in a shift of 100 is within the limits, two are beyond."""
    if parts <= 0:
        raise ValueError("a reference period needs parts")
    return ng / parts if ng else 0.5 / parts


# the fewest parts a reference period (baseline_since/until) must hold to set a centre line:
# a centre from a handful of parts is that handful's luck. One OK part set it at 50 % by the
# half-NG-part rule (two: 25 %), every upper limit at 100 %, and a line at 17 % NG read as
# "better than baseline". Not n·p̄ ≥ 5, the normal curve's rule: the limits here are the
# binomial's own, and an NG-free baseline's n·p̄ is 0.5 however long it ran.
MIN_REFERENCE_PARTS = 50


# the chance a normal curve leaves beyond 3 sigma on one side: each side's limit
BEYOND = 0.0013498980316301


def _binomial_limits(n: int, d: int, pbar: float) -> tuple[float, float, float]:
    """(UCL, LCL, z) of a subgroup of ``n`` parts with ``d`` NG on a line at ``pbar``
    (0 < pbar < 1). The limits sit half a part inside the first count beyond them, so a
    point is beyond its limit exactly when its z is beyond 3.

    The binomial terms are summed here (numpy, no scipy: a station installed with the
    [server] extra alone has none) over the counts within 15 sigma (and 20 parts) of n·p̄;
    what lies outside weighs less than 1e-30."""
    mean, sd = n * pbar, math.sqrt(n * pbar * (1.0 - pbar))
    lo = max(0, int(mean - 15 * sd - 20))
    hi = min(n, int(mean + 15 * sd + 20) + 1)
    k = np.arange(lo, hi + 1, dtype=np.float64)
    # log pmf at lo, then each next term by its ratio (n-k)/(k+1)·p/(1-p)
    first = (math.lgamma(n + 1) - math.lgamma(lo + 1) - math.lgamma(n - lo + 1)
             + lo * math.log(pbar) + (n - lo) * math.log1p(-pbar))
    steps = np.log(n - k[:-1]) - np.log(k[:-1] + 1) + math.log(pbar) - math.log1p(-pbar)
    pmf = np.exp(first + np.concatenate(([0.0], np.cumsum(steps))))
    cdf = np.cumsum(pmf)                     # P(X <= lo + i)
    sf = np.cumsum(pmf[::-1])[::-1]          # P(X >= lo + i), summed from the small end
    i = d - lo
    normal = NormalDist()
    if i > hi - lo or i < 0:
        # past the terms summed (a camera fault's hour: 100 of 100 NG at 0.3%): the tail from
        # its first term in logs, a finite z as far out as it is
        z = _far_z(n, d, pbar)
    else:
        upper, lower = float(sf[i]), float(cdf[i])          # P(X >= d), P(X <= d)
        if upper < 0.5:
            z = -normal.inv_cdf(upper) if upper > 0 else _far_z(n, d, pbar)
        elif lower < 0.5:
            z = normal.inv_cdf(lower) if lower > 0 else _far_z(n, d, pbar)
        else:
            z = 0.0
    beyond_up = np.flatnonzero(sf < BEYOND)           # counts beyond the upper limit (sf falls)
    first_up = lo + int(beyond_up[0]) if len(beyond_up) else n + 1
    below = np.flatnonzero(cdf < BEYOND)              # counts beyond the lower limit (cdf rises)
    last_low = lo + int(below[-1]) if len(below) else (lo - 1 if lo > 0 else -1)
    ucl = min(1.0, (first_up - 0.5) / n)
    lcl = max(0.0, (last_low + 0.5) / n) if last_low >= 0 else 0.0
    return ucl, lcl, z


def _far_z(n: int, d: int, pbar: float) -> float:
    """z of a count far in a tail, from the log of that tail: its first term over one minus
    the ratio of the next term to it (the terms fall at least that fast), then the normal
    quantile of it, in logs where the tail is smaller than a float holds."""
    log_pmf = (math.lgamma(n + 1) - math.lgamma(d + 1) - math.lgamma(n - d + 1)
               + d * math.log(pbar) + (n - d) * math.log1p(-pbar))
    above = d > n * pbar
    ratio = ((n - d) / (d + 1) * pbar / (1 - pbar)) if above else (d / (n - d + 1) * (1 - pbar) / pbar)
    log_tail = log_pmf - math.log1p(-min(ratio, 1 - 1e-12))
    if log_tail > -700:
        z = -NormalDist().inv_cdf(min(math.exp(log_tail), 0.5))
    else:   # Φ⁻¹(1 - q) for a q below a float: sqrt(L - ln L - ln 2π), L = -2 ln q (to 0.1%)
        big = -2 * log_tail
        z = math.sqrt(big - math.log(big) - math.log(2 * math.pi))
    return z if above else -z


def _side(z: float) -> int:
    return 1 if z > 0 else -1 if z < 0 else 0


def rule_hits(z: Sequence[float]) -> list[RuleHit]:
    """Nelson rules 1, 2, 3, 5 and 6 (see the module docstring) on standardised values,
    in order of the point that completes each pattern. Texts are for the operator."""
    z = [float(v) for v in z]
    hits: list[RuleHit] = []
    for i, zi in enumerate(z):
        if abs(zi) > 3:
            word = "above" if zi > 0 else "below"
            hits.append(RuleHit(i, 1, f"defect rate {word} the control limit: something changed in this "
                                      "period; check the parts and what changed on the line"))
        if i >= 8:
            s = {_side(v) for v in z[i - 8:i + 1]}
            if len(s) == 1 and 0 not in s:
                word = "above" if 1 in s else "below"
                hits.append(RuleHit(i, 2, f"9 periods in a row {word} the average defect rate: the process "
                                          f"has shifted {'up' if word == 'above' else 'down'}"))
        if i >= 5:
            w = z[i - 5:i + 1]
            diffs = [b - a for a, b in zip(w, w[1:])]
            if all(d > 0 for d in diffs) or all(d < 0 for d in diffs):
                word = "rising" if diffs[0] > 0 else "falling"
                hits.append(RuleHit(i, 3, f"defect rate {word} 6 periods in a row: a trend (tool wear, "
                                          "drifting setting, material change)"))
        for rule, size, need, zone in ((5, 3, 2, 2.0), (6, 5, 4, 1.0)):
            if i >= size - 1 and abs(zi) > zone:
                sign = _side(zi)
                w = z[i - size + 1:i + 1]
                if sum(1 for v in w if v * sign > zone) >= need:
                    word = "above" if sign > 0 else "below"
                    hits.append(RuleHit(i, rule, f"{need} of the last {size} periods far {word} the average "
                                                 f"(beyond {zone:g}σ): an early sign of a shift"))
    return hits


# -- score drift ---------------------------------------------------------------------

@dataclass
class ScorePoint:
    label: str
    start: Optional[dt.datetime]
    n: int
    mean: Optional[float]
    median: Optional[float]
    p95: Optional[float]
    shift: Optional[float] = None     # P(score here > score in the baseline) - 0.5; None in the baseline
    z: Optional[float] = None
    drift: bool = False


@dataclass
class DriftResult:
    points: list[ScorePoint]
    baseline: dict[str, Any]
    alarm: bool
    index: Optional[int]
    label: Optional[str]
    text: str


# Why a rank statistic and not an EWMA or CUSUM of the subgroup median: anomaly scores
# are skewed and heavy-tailed, their unit depends on the detector (PatchCore distances,
# PaDiM Mahalanobis), and subgroup sizes vary from a handful to thousands. An EWMA needs
# the between-subgroup sigma of the median in score units, estimated from a few baseline
# subgroups and wrong for every subgroup of another size. The Mann-Whitney statistic
# needs none of that: A = P(a part now scores above a baseline part) is 0.5 when nothing
# changed, whatever the distribution and the detector, and its standard error under "no
# change" is known exactly for any pair of sizes. It moves with the bulk of the parts (a
# moved camera or changed light shifts every part's score), not with a few real defects
# in the tail, so a bad hour of defects is the p-chart's business, not a drift alarm.
# Statistical significance alone is not enough with thousands of parts an hour (any
# trivial change is "significant"), so an alarm needs both |z| > 3 and a shift of at
# least ``min_shift`` in A (0.1: 60 % of parts now score above the typical baseline part,
# about a 0.35-sigma move of a normal score; a camera knocked out of place moves it far more).
# And it needs ``persist`` (2) drifted subgroups in a row: every subgroup is compared with
# the same baseline, so a baseline that happened to sit low makes single 3-sigma hits
# several times likelier than 0.3 %; a moved camera stays moved, a chance hit does not
# repeat (on 40 simulated stable lines of 200 subgroups: 25 single hits, no pair).
# The line alarm ``drift`` (line.alarms) tests each group of a station's parts as it fills
# by the same rule (rank_shift and is_drift), against its model's first parts there.
DRIFT_Z = 3.0
DRIFT_MIN_SHIFT = 0.10
DRIFT_MIN_PARTS = 10
DRIFT_PERSIST = 2


def rank_shift(base_sorted: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """(A - 0.5, z) of the Mann-Whitney comparison of ``x`` with the sorted baseline."""
    m, n = len(base_sorted), len(x)
    below = np.searchsorted(base_sorted, x, side="left")
    upto = np.searchsorted(base_sorted, x, side="right")
    u = float(np.sum(below) + 0.5 * np.sum(upto - below))     # ties count one half
    a = u / (m * n)
    se = math.sqrt((m + n + 1) / (12.0 * m * n))   # sd of A under no change (ties make it a bit smaller)
    return a - 0.5, (a - 0.5) / se


def is_drift(shift: float, z: float, min_shift: float = DRIFT_MIN_SHIFT, z_limit: float = DRIFT_Z) -> bool:
    """Whether a subgroup's rank shift is a drift: beyond chance and big enough to matter."""
    return abs(z) > z_limit and abs(shift) >= min_shift


def score_drift(groups: Sequence[tuple[str, Optional[dt.datetime], np.ndarray]], baseline_groups: int = 5,
                baseline: Optional[np.ndarray] = None, min_shift: float = DRIFT_MIN_SHIFT,
                z_limit: float = DRIFT_Z, min_parts: int = DRIFT_MIN_PARTS,
                persist: int = DRIFT_PERSIST) -> DriftResult:
    """Per-subgroup score summaries and a drift alarm against a baseline.

    ``groups``: (label, start, scores) in time order. The baseline is ``baseline`` (e.g.
    the scores of a reference window) or else the first ``baseline_groups`` subgroups
    with parts, which are then not tested themselves. Each later subgroup of at least
    ``min_parts`` parts is marked ``drift`` when its scores moved (see the comment above);
    the alarm names the first of ``persist`` marked subgroups in a row, moved the same
    way (subgroups too small to test neither break nor extend a run). So a camera moved
    in the latest subgroup alarms one subgroup later.
    """
    points = []
    for label, start, s in groups:
        s = np.asarray(s, dtype=np.float64)
        s = s[np.isfinite(s)]
        if len(s):
            points.append(ScorePoint(label, start, len(s), float(s.mean()), float(np.median(s)),
                                     float(np.quantile(s, 0.95))))
        else:
            points.append(ScorePoint(label, start, 0, None, None, None))
    scores = [np.asarray(s, dtype=np.float64) for _, _, s in groups]
    first_tested = 0
    if baseline is None:
        used = [i for i, p in enumerate(points) if p.n][:baseline_groups]
        base = np.concatenate([scores[i] for i in used]) if used else np.zeros(0)
        first_tested = used[-1] + 1 if used else len(points)
        desc = {"from": points[used[0]].label if used else None, "to": points[used[-1]].label if used else None,
                "subgroups": len(used)}
    else:
        base = np.asarray(baseline, dtype=np.float64)
        desc = {"from": None, "to": None, "subgroups": None}
    base = np.sort(base[np.isfinite(base)])
    desc.update({"n": int(len(base)),
                 "mean": float(base.mean()) if len(base) else None,
                 "median": float(np.median(base)) if len(base) else None,
                 "p95": float(np.quantile(base, 0.95)) if len(base) else None})
    if len(base) < min_parts:
        return DriftResult(points, desc, False, None, None,
                           f"not enough parts to compare with: the baseline has {len(base)} parts scored, "
                           f"needs {min_parts}; widen the time window")
    first = None
    run: list[int] = []
    tested = 0
    for i in range(first_tested, len(points)):
        p = points[i]
        if p.n < min_parts:
            continue
        tested += 1
        s = scores[i][np.isfinite(scores[i])]
        p.shift, p.z = rank_shift(base, s)
        p.drift = is_drift(p.shift, p.z, min_shift, z_limit)
        # a run is drift the same way (a jump up then down is two events, not one)
        run = run + [i] if p.drift and (not run or (points[run[-1]].shift > 0) == (p.shift > 0)) else \
            ([i] if p.drift else [])
        if len(run) >= persist and first is None:
            first = run[0]
    if not tested:
        return DriftResult(points, desc, False, None, None,
                           f"nothing to compare yet: no subgroup after the baseline has {min_parts} parts or more; "
                           "widen the time window or give a baseline window")
    if first is None:
        return DriftResult(points, desc, False, None, None,
                           f"scores are steady: no run of subgroups moved away from the baseline ({tested} compared)")
    p = points[first]
    word = "higher" if p.shift > 0 else "lower"
    text = (f"{p.label}: part scores are {word} than in the baseline ({p.shift + 0.5:.0%} of parts score above "
            f"a typical baseline part; median {p.median:.4g} vs {desc['median']:.4g}): check the camera's "
            "position, focus and the lighting, then the parts")
    return DriftResult(points, desc, True, first, p.label, text)


# -- rates from reviewed parts ----------------------------------------------------------

AUDIT_TARGET = 0.001     # 1000 ppm: the defective share of passed parts a customer claim states
AUDIT_RATE_SETTING = "audit_sample_rate (serve --audit-sample-rate, or LINEGUARD_AUDIT_SAMPLE_RATE)"


def _upper_bound(k: int, n: int, confidence: float) -> float:
    """One-sided exact upper bound on a rate of ``k`` in ``n``: the claim "at most x at 95 %"
    (the two-sided interval's upper end is a 97.5 % bound: k = 0, n = 10 gives 25.9 % here,
    30.8 % there)."""
    return 1.0 if n == 0 or k >= n else beta_quantile(confidence, k + 1, n - k)


def audited_parts_needed(k: int, target: float, confidence: float) -> int:
    """The fewest audited parts whose one-sided exact upper bound is at most ``target``
    when ``k`` defects are found among them (and no more). For k = 0 that is the rule of
    three's exact form, n >= ln(1 - confidence) / ln(1 - target): 2995 parts for 0.1 % at
    95 % (3 / 0.001 = 3000)."""
    if k == 0:
        n = math.ceil(math.log(1 - confidence) / math.log1p(-target))
        # the float division can land a hair either side of a whole number
        while n > 1 and _upper_bound(0, n - 1, confidence) <= target:
            n -= 1
        while _upper_bound(0, n, confidence) > target:
            n += 1
        return n
    lo, hi = k + 1, max(2 * (k + 1), math.ceil((k + 3) / target))
    while _upper_bound(k, hi, confidence) > target:
        lo, hi = hi, 2 * hi
    while lo < hi:       # the bound falls as n grows
        mid = (lo + hi) // 2
        if _upper_bound(k, mid, confidence) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _good_scrapped(parts: dict[str, dict[str, int]], confidence: float, never_judged: int = 0) -> dict[str, Any]:
    """See :func:`review_rates`."""
    def get(v: str, key: str) -> int:
        return int((parts.get(v) or {}).get(key, 0))
    ng, g, d = get("NG", "parts"), get("NG", "good"), get("NG", "defect")
    unreviewed = ng - g - d
    # parts judged OK or REVIEW after their window: the PLC had rejected them already
    # (told NG without a verdict), so those not confirmed defects are good parts scrapped
    late_good = sum(get(v, "rejected_late") - get(v, "rejected_late_defect") for v in parts if v != "NG")
    # good parts not rejected: every part of another verdict but the confirmed defects
    # (unreviewed OK and REVIEW parts count as good: their defects are unknown) and those
    # the PLC rejected before their verdict came
    passed_good = sum(get(v, "parts") - get(v, "defect") for v in parts if v != "NG") - late_good
    out: dict[str, Any] = {"ng_parts": ng, "ng_reviewed": g + d, "ng_reviewed_good": g,
                           "ng_not_reviewed": unreviewed, "good_parts_passed": passed_good,
                           "rejected_late_good": late_good, "rejected_never_judged": never_judged,
                           "rate_if_never_judged_good": None}

    def said(r: dict[str, Any], text: str) -> dict[str, Any]:
        # the PLC's rejects without a verdict in time: those judged late are in k, those
        # never judged in no count (no record: good or not is unknown), said with the share
        # they would make were every one of them good
        if late_good:
            text += (f"; k counts {late_good} part(s) judged OK or REVIEW after their inspection window, which the "
                     "PLC had already rejected without a verdict")
        if never_judged:
            text += (f"; {never_judged} part(s) the PLC rejected without a verdict were never judged (no record): "
                     "left out of k and n, whether they were good is unknown")
            if r["k"] is not None and r["n"] is not None:
                out["rate_if_never_judged_good"] = (r["k"] + never_judged) / (r["n"] + never_judged)
                text += f" (were all of them good: {out['rate_if_never_judged_good']:.2%})"
        return {**r, **out, "text": text}
    if not unreviewed:
        r = rate_with_ci(g + late_good, g + late_good + passed_good, confidence)
        text = ("every NG part was reviewed: exact count" if ng else "no part was judged NG") if r["n"] else \
            "no good part in this window"
        return said({**r, "estimate": False}, text)
    if not g + d:
        return said({"rate": None, "lo": None, "hi": None, "k": None, "n": None, "estimate": True},
                    f"none of the {ng} NG parts reviewed yet: review them (the Review queue lists them) "
                    "to know how many were good")
    # the good share of the NG parts reviewed stands for all NG parts of the window (as
    # good as the reviewed ones are like the rest); the NG parts it calls defects are no
    # good parts, so they leave the denominator as the confirmed defects do
    k = g / (g + d) * ng + late_good
    n = k + passed_good
    return said({"rate": k / n if n else None, "lo": None, "hi": None, "k": k, "n": n, "estimate": True},
                f"an estimate: {unreviewed} of {ng} NG parts not reviewed; {g} of the {g + d} reviewed "
                f"were good, taken as the share of all {ng} (review every NG part for an exact count "
                "and interval)")


def review_rates(counts: dict[tuple[str, str], int], confidence: float = 0.95,
                 audit: Optional[dict[str, int]] = None, parts: Optional[dict[str, dict[str, int]]] = None,
                 audit_rate: Optional[float] = None, target: float = AUDIT_TARGET,
                 never_judged: int = 0) -> dict[str, Any]:
    """The share of good parts scrapped, and rates of reviewed parts, with exact intervals.

    ``counts`` maps (verdict the station gave, latest review label) to a number of
    parts, e.g. ``{("NG", "good"): 3, ("NG", "defect"): 40, ("OK", "defect"): 1,
    ("OK", "good"): 200}``. Only reviewed parts count.

    ``parts`` (``spc_data.verdict_counts``: every part of the window by verdict, with how
    many were reviewed good or defect) gives ``good_scrapped``, the **share of good
    parts scrapped** (good parts judged NG / good parts made: the false-reject rate of
    the plant manager, of training's ``--frr`` and of the Tuning page):

    - good parts made = every part of the window less the confirmed defects (reviewed
      defect); the unreviewed OK and REVIEW parts count as good, their few defects
      unknown (at most the audit's escape share of the OK parts).
    - every NG part reviewed: k = NG parts reviewed good, n = good parts made, with an
      exact (Clopper–Pearson) interval: ``estimate`` false.
    - some NG parts not reviewed: the good share of those reviewed stands for all of
      them: k = (NG reviewed good / NG reviewed) x all NG parts, n = k + the good parts
      not judged NG (the unreviewed NG parts taken as defects leave n as the confirmed
      defects do); ``estimate`` true, no interval (lo, hi null), k and n not whole, and
      ``text`` says so: as good as the reviewed NG parts are like the rest. None reviewed:
      rate, k and n null.
    - parts the PLC rejected without a verdict in time: those judged after their window
      (``parts``' ``rejected_late``) whose verdict was OK or REVIEW and that were not
      reviewed defect are good parts scrapped, in k (``rejected_late_good``), not among
      the good parts passed. ``never_judged`` (``spc_data.rejected_never_judged``: no
      record, goodness unknown) are left out of k and n; ``rejected_never_judged`` and
      ``text`` say how many, and ``rate_if_never_judged_good`` the share were they all good.

    Rates of reviewed parts (each conditional on the verdict, because that is how parts
    get reviewed: NG parts are looked at, OK parts by audit):

    - ``false_reject`` (the key kept for the clients that read it) = NG parts reviewers
      called good / NG parts reviewed: the share of **rejected** parts that were good.
      Not the share of good parts scrapped: 2 of 22 rejected parts good is 9 %, while 2
      of 700 good parts scrapped is 0.3 %.
    - ``escape`` = OK parts reviewers called defect / OK parts reviewed: the share of
      passed parts that were defective (what would reach the customer).

    REVIEW parts are in neither: a person judges them by design; their counts are
    returned apart (``review_band``).

    These are honest estimates only when, within each verdict, the reviewed parts are
    like the unreviewed ones (every NG part reviewed, or a random sample of them; OK
    parts from a random audit). If operators review the OK parts that looked suspicious,
    the escape rate is overstated; if they review only NG parts near the threshold, the
    rejected-parts rate (and the estimated ``good_scrapped``) is overstated. The interval
    covers sampling noise only, never this selection bias.

    ``audit`` (``spc_data.audit_ok_counts``: the random audit sample's OK parts, how many
    and how many reviewed good or defect) gives ``escape_audit``, the defective share of
    passed parts on those alone: drawn before the verdict, so free of that bias as long
    as the ones reviewed are not chosen among them; ``audit_sample`` says how many of its
    OK parts were reviewed. ``escape_audit`` also says what a claim to a customer takes:
    ``upper_bound``, the one-sided exact bound at ``confidence`` ("at most x defective",
    which the two-sided interval's ``hi`` overstates); ``needed``, the audited OK parts
    that state a bound of ``target`` (1000 ppm) with the defects found so far and no more
    (none found: n >= ln(1 - confidence) / ln(1 - target), 2995 at 95 %); ``more_needed``
    beyond those reviewed; ``waiting``, the sample's OK parts not reviewed yet (reviewing
    them counts first); and, from ``audit_rate`` (the station's audit_sample_rate), ``parts_to_make``: about how
    many more parts the line must make for the rest (null when it keeps no sample), its
    OK share taken from ``parts`` when given.
    """
    def c(v: str, label: str) -> int:
        return int(counts.get((v, label), 0))

    fr_k, fr_n = c("NG", "good"), c("NG", "good") + c("NG", "defect")
    es_k, es_n = c("OK", "defect"), c("OK", "defect") + c("OK", "good")
    a = {"parts": 0, "good": 0, "defect": 0, **(audit or {})}
    a_k, a_n = a["defect"], a["defect"] + a["good"]
    needed = audited_parts_needed(a_k, target, confidence)
    more = max(0, needed - a_n)
    waiting = max(0, a["parts"] - a_n)
    all_parts = sum(int(v.get("parts", 0)) for v in (parts or {}).values())
    ok_share = int((parts or {}).get("OK", {}).get("parts", 0)) / all_parts if all_parts else 1.0
    rate = float(audit_rate) if audit_rate else 0.0
    to_make = math.ceil((more - min(more, waiting)) / (rate * ok_share)) if rate > 0 and ok_share > 0 else None
    return {"good_scrapped": _good_scrapped(parts, confidence, never_judged) if parts is not None else None,
            "false_reject": rate_with_ci(fr_k, fr_n, confidence),
            "escape": rate_with_ci(es_k, es_n, confidence),
            "escape_audit": {**rate_with_ci(a_k, a_n, confidence),
                             "upper_bound": _upper_bound(a_k, a_n, confidence), "target": target,
                             "needed": needed, "more_needed": more, "waiting": waiting,
                             "audit_sample_rate": audit_rate, "parts_to_make": to_make,
                             "setting": AUDIT_RATE_SETTING},
            "audit_sample": {"ok_parts": a["parts"], "reviewed": a["defect"] + a["good"]},
            "review_band": {"good": c("REVIEW", "good"), "defect": c("REVIEW", "defect")},
            "confidence": confidence}


# -- which defect types matter most ---------------------------------------------------

UNTYPED = "(no type given)"


@dataclass
class ParetoBar:
    defect_type: str
    parts: int            # parts reviewed as this defect
    caught: int           # of them judged NG by the model
    at_review: int        # judged REVIEW: a person caught them
    escaped: int          # judged OK: the model passed them (found by an audit or downstream)
    share: float          # of every reviewed defect
    cumulative: float     # this bar and every bigger one


def pareto(counts: dict[tuple[Optional[str], str], int]) -> list[ParetoBar]:
    """Reviewed defects by type, biggest first, with each type's share and the running
    total (the "vital few" are the bars up to about 80 %).

    ``counts`` maps (defect type or None, verdict the station gave) to parts whose latest
    review says defect. Per type it also says how the model judged them: a type with many
    escapes is one the model misses (train on it, check its probability of detection),
    one with many caught is one the process makes (look upstream). Ties are ordered by
    name so the chart does not reshuffle between refreshes."""
    by_type: dict[str, dict[str, int]] = {}
    for (dtype, verdict), n in counts.items():
        acc = by_type.setdefault(dtype or UNTYPED, {"NG": 0, "REVIEW": 0, "OK": 0})
        acc[verdict] = acc.get(verdict, 0) + int(n)
    total = sum(sum(v.values()) for v in by_type.values())
    bars, running = [], 0
    for dtype, v in sorted(by_type.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        parts = sum(v.values())
        running += parts
        bars.append(ParetoBar(dtype, parts, v["NG"], v["REVIEW"], v["OK"], parts / total, running / total))
    return bars


# -- where on the part defects are ----------------------------------------------------

def defect_map(centres: np.ndarray, columns: int, rows: int) -> np.ndarray:
    """Counts of defect regions per cell of a ``rows`` x ``columns`` grid over the part.

    ``centres`` holds one region a row: its centre as a fraction of the photo's width and
    height (0..1). A cluster (the same corner every time, one fixture's contact point)
    points at a cause on the line, not at the part's material."""
    grid = np.zeros((rows, columns), dtype=np.int64)
    if len(centres):
        c = np.clip(np.asarray(centres, dtype=np.float64), 0.0, np.nextafter(1.0, 0.0))
        np.add.at(grid, ((c[:, 1] * rows).astype(int), (c[:, 0] * columns).astype(int)), 1)
    return grid
