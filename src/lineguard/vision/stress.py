"""The stress test: paint defects of known size and contrast on a plant's own good parts,
judge them with the model at its own thresholds, and say what it will miss.

    plan  = plan_stress(shapes, kinds, per_kind, seed)    # which defect on which part
    study = run_stress(inspector, good_images, ...)       # paint, judge, fit POD per kind

Each kind gets two series, as an NDT study would run them:

- the *size* series (three quarters of the parts): sizes log-uniform over the kind's
  range (shares of each photo's shorter side, see :mod:`.sized_defects`), at the kind's
  nominal contrast; its hit/miss fit gives ``a50``, ``a90`` and ``a90/95``;
- the *contrast* series (the rest), painted after the size series is judged: contrast
  log-uniform over the kind's range, at the size series' ``a90`` (or its largest size
  when a90 is not reached); its fit says how strong a defect of that size must be to
  be caught, i.e. how far the ``a90`` holds for fainter defects.

A hit is a part judged NG (the defect does not ship); a second fit counts REVIEW as a hit
too (a person looks and catches it). The good parts are also judged unpainted: their
false-reject rate is the floor under every POD curve, as a part already NG is "caught"
whatever is painted on it.

The good images must be ones the model never learned from: scores on training parts
are optimistic, and so would the curves be.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .pod import PodFit, fit_pod
from .sized_defects import (CONTRAST_RANGE, KIND_SIZE_MEANS, NOMINAL_CONTRAST, SIZE_RANGE, STRESS_KINDS,
                            paint_sized_defect)

__all__ = ["StressPart", "plan_stress", "paint_part", "run_stress", "kind_sentence", "CONTRAST_SHARE",
           "KIND_PLURAL", "KIND_ONE"]

# Share of each kind's parts in the contrast series; the rest measure size.
CONTRAST_SHARE = 0.25
# Parts judged per call: enough for the model's batching and lanes, few enough to keep
# memory flat on large photos.
_CHUNK = 32

KIND_PLURAL = {
    "scratch": "scratches", "crack": "cracks", "spot": "spots and blowholes",
    "missing_material": "breaks and missing material", "contamination": "contamination specks",
    "low_contrast_area": "low-contrast (uneven) areas",
}
# One of a kind, for "the smallest crack painted".
KIND_ONE = {
    "scratch": "scratch", "crack": "crack", "spot": "spot", "missing_material": "break",
    "contamination": "contamination speck", "low_contrast_area": "low-contrast area",
}

Progress = Optional[Callable[[str, int, int], None]]


@dataclass(frozen=True)
class StressPart:
    """One painted part: which good photo, which defect, how big and how strong."""

    kind: str
    index: int          # within its kind: with the study's seed, it fixes the painting
    series: str         # "size" or "contrast"
    base: int           # index of the good photo it is painted on
    size_px: float
    contrast: float


def _kind_seed(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, STRESS_KINDS.index(kind), index])


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    if isinstance(kinds, str):
        raise ValueError("kinds must be a list of defect kinds, not one string")
    out = list(dict.fromkeys(kinds))
    bad = [k for k in out if k not in STRESS_KINDS]
    if bad:
        raise ValueError(f"unknown defect kind(s) {', '.join(bad)}; valid kinds are: {', '.join(STRESS_KINDS)}")
    if not out:
        raise ValueError(f"no defect kinds to paint; choose from {', '.join(STRESS_KINDS)}")
    return out


def plan_stress(shapes: Sequence[tuple[int, int]], kinds: Sequence[str] = STRESS_KINDS, per_kind: int = 200,
                seed: int = 0) -> list[StressPart]:
    """Which defect goes on which good photo, at what size and contrast.

    ``shapes``: (height, width) of each good photo. Sizes are drawn as shares of the
    chosen photo's shorter side, so a defect always fits the photo it is painted on.
    """
    kinds = _check_kinds(kinds)
    if isinstance(per_kind, bool) or not isinstance(per_kind, (int, np.integer)) or per_kind < 4:
        raise ValueError(f"per_kind must be an int of at least 4 (a curve needs hits and misses), got {per_kind!r}")
    if not shapes:
        raise ValueError("no good photos to paint on")
    n_contrast = int(round(CONTRAST_SHARE * per_kind))
    plan = []
    for kind in kinds:
        rng = np.random.default_rng([seed, STRESS_KINDS.index(kind), 1 << 20])
        # Every good photo carries each kind about equally often, in a shuffled order.
        bases = np.concatenate([rng.permutation(len(shapes)) for _ in range(per_kind // len(shapes) + 1)])[:per_kind]
        lo, hi = SIZE_RANGE[kind]
        clo, chi = CONTRAST_RANGE[kind]
        for i in range(per_kind):
            short = float(min(shapes[int(bases[i])]))
            if i < per_kind - n_contrast:
                series = "size"
                share = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                contrast = NOMINAL_CONTRAST[kind]
            else:
                series = "contrast"
                share = hi      # a placeholder: run_stress paints these at the size series' a90
                contrast = math.exp(rng.uniform(math.log(clo), math.log(chi)))
            size = max(1.0, min(share * short, 0.9 * short))
            plan.append(StressPart(kind, i, series, int(bases[i]), round(size, 2), round(contrast, 2)))
    return plan


def paint_part(good: Sequence[np.ndarray], part: StressPart, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The painted photo and its mask for one planned part (the same every time)."""
    return paint_sized_defect(good[part.base], part.kind, part.size_px, part.contrast,
                              _kind_seed(seed, part.kind, part.index))


def _contrast_size(part: StressPart, size_fit: dict, good: Sequence[np.ndarray]) -> StressPart:
    """The contrast series is painted at the kind's a90 (where contrast decides whether a
    defect is caught), at the size from which every defect was caught where the size
    series was a step, or else at the largest size painted; never larger than fits the photo."""
    target = (size_fit["a90"] if size_fit.get("a90_reached") else
              size_fit.get("all_found_from") or size_fit["size_max"])
    # An a90 below the smallest size painted is the curve's guess, not a measurement: paint
    # at the smallest size painted, where 9 in 10 were seen caught.
    target = max(float(target), float(size_fit["size_min"]))
    limit = 0.9 * min(good[part.base].shape[:2])
    return replace(part, size_px=round(max(1.0, min(float(target), limit)), 2))


def _verdict(r: Any) -> str:
    v = r.verdict
    return str(getattr(v, "value", v))


def _fmt_size(px: Optional[float], mm_per_px: Optional[float]) -> str:
    if px is None:
        return "n/a"
    s = f"{px:.3g} px"
    return f"{px * mm_per_px:.3g} mm ({s})" if mm_per_px else s


def _summary(fit: PodFit, mm_per_px: Optional[float]) -> dict:
    d = fit.to_dict()
    # Beyond the largest size painted the curve is an extrapolation: said, not hidden.
    d["a50_reached"] = fit.a50 is not None and fit.a50 <= fit.size_max
    d["a90_reached"] = fit.a90 is not None and fit.a90 <= fit.size_max
    d["a90_95_reached"] = fit.a90_95 is not None and fit.a90_95 <= fit.size_max
    # Below the smallest size painted it is as much a guess as above the largest: the
    # fitted curve's tail, where no defect was painted (a50 of 0.005 px from cracks of 3.6 px
    # and up, 28 of 30 caught). Flagged, so no sentence or page states it as a size.
    below = [k for k in ("a50", "a90", "a90_95") if d[k] is not None and d[k] < fit.size_min]
    for k in ("a50", "a90", "a90_95"):
        d[f"{k}_below_painted"] = k in below
    if below:
        names = " and ".join(f"{k.replace('_', '/')} ({d[k]:.3g} px)" for k in below)
        d["notes"] = list(d.get("notes") or []) + [
            f"{names} {'lies' if len(below) == 1 else 'lie'} below the smallest size painted "
            f"({fit.size_min:.3g} px): an extrapolation, not measured"]
    if mm_per_px:
        for key in ("a50", "a90", "a90_95", "all_found_from", "size_min", "size_max"):
            d[f"{key}_mm"] = None if d[key] is None else d[key] * mm_per_px
    return d


def kind_sentence(kind: str, fit: dict, mm_per_px: Optional[float], contrast: float) -> str:
    """One sentence a plant can act on, from a kind's size fit (hit = NG)."""
    what = KIND_PLURAL[kind]
    Kind = what[0].upper() + what[1:]
    smaller = "shorter" if KIND_SIZE_MEANS[kind] == "length" else "smaller"
    at = f" at {contrast:.0f} grey levels of contrast"
    f = lambda v: _fmt_size(v, mm_per_px)  # noqa: E731
    status = fit["status"]
    if status == "blind":
        return (f"{Kind} were never caught{at}, up to {f(fit['size_max'])}: do not rely on this model for "
                f"{what}.")
    if status == "not_increasing":
        return (f"{Kind} are caught no more often when larger ({fit['hits']} of {fit['n']} caught{at}): this model "
                f"does not respond to them; do not rely on it for {what}.")
    if status in ("all_found", "separated"):
        start = fit["all_found_from"]
        first = (f"Every one of the {fit['n']} {what} painted{at} was caught, down to {f(start)}"
                 if status == "all_found" else
                 f"{Kind} {smaller} than {f(start)} were missed and every larger one caught{at}")
        if fit["a90_95"] is not None:
            return first + f"; 90% of {what} from {f(fit['a90_95'])} up are caught, with 95% confidence."
        return first + "; too few parts to state a size caught 90% of the time with 95% confidence: paint more."
    a50, a90, a95 = fit["a50"], fit["a90"], fit["a90_95"]
    if a50 is None or a50 > fit["size_max"]:
        return (f"{Kind} will usually pass{at} at every size painted, up to {f(fit['size_max'])} "
                f"({fit['hits']} of {fit['n']} caught): do not rely on this model for {what}.")
    lo = fit["size_min"]
    # Sizes below the smallest painted are the curve's tail, not measurements (see _summary).
    unmeasured = f"below the smallest {KIND_ONE[kind]} painted ({f(lo)}): not measured"
    if a90 is not None and a90 < lo:
        s = (f"The sizes below which {what} usually pass and from which 9 in 10 are caught{at} lie "
             f"{unmeasured}; {fit['hits']} of the {fit['n']} painted were caught")
        if a95 is not None and a95 < lo:
            return s + ", 9 in 10 with 95% confidence at every size painted."
        if fit["a90_95_reached"]:
            return s + f"; 9 in 10 with 95% confidence from {f(a95)}."
        if a95 is not None:
            return s + (f"; 9 in 10 with 95% confidence only from {f(a95)}, beyond the sizes painted: "
                        "paint more parts to narrow it.")
        return s + "; too few parts to say 9 in 10 with 95% confidence: paint more."
    if a50 < lo:
        s = f"The size below which {what} usually pass{at} lies {unmeasured}"
    else:
        s = f"{Kind} {smaller} than {f(a50)} will usually pass{at}"
    if not fit["a90_reached"]:
        return s + (f"; 9 in 10 are not caught at any size painted (up to {f(fit['size_max'])}): "
                    f"do not rely on this model for {what}.")
    s += f"; from {f(a90)} 9 in 10 are caught"
    if fit["a90_95_reached"]:
        return s + f" (from {f(a95)} with 95% confidence)."
    if a95 is not None:
        return s + (f", but with 95% confidence only from {f(a95)}, beyond the sizes painted: "
                    "paint more parts to narrow it.")
    return s + ", but too few parts to say so with 95% confidence: paint more."


def run_stress(inspector: Any, good: Sequence[np.ndarray], kinds: Sequence[str] = STRESS_KINDS,
               per_kind: int = 200, seed: int = 0, mm_per_px: Optional[float] = None,
               progress: Progress = None, sources: Optional[Sequence[str]] = None) -> dict:
    """Paint, judge and fit. Returns the study as a plain dict (what ``pod.json`` holds).

    ``inspector``: anything with ``inspect_batch(list of arrays)`` giving results with
    ``verdict`` (and ``score``), plus ``threshold`` and ``review_threshold``; an
    :class:`~lineguard.vision.inspector.Inspector` of either model kind. ``good``: RGB
    uint8 photos of good parts the model did not learn from.
    """
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise ValueError(f"mm_per_px must be a positive number, got {mm_per_px}")
    good = list(good)
    small = [i for i, g in enumerate(good) if min(g.shape[:2]) < 32]
    if small:
        raise ValueError(f"{len(small)} good photo(s) are under 32 px on a side; too small to paint a defect on")
    plan = plan_stress([g.shape[:2] for g in good], kinds, per_kind, seed)
    kinds = list(dict.fromkeys(p.kind for p in plan))
    total = len(good) + len(plan)
    done = 0
    t0 = time.perf_counter()

    # The unpainted parts: false rejects, and which photos are NG before any paint.
    base_verdicts: list[str] = []
    base_scores: list[float] = []
    for start in range(0, len(good), _CHUNK):
        res = inspector.inspect_batch(good[start:start + _CHUNK])
        base_verdicts += [_verdict(r) for r in res]
        base_scores += [float(r.score) for r in res]
        done += len(res)
        if progress:
            progress("judge", done, total)
    t_good = time.perf_counter() - t0

    paint_s = 0.0
    outcome: dict[tuple[str, int], tuple[str, float]] = {}

    def judge(parts: list[StressPart]) -> None:
        nonlocal done, paint_s
        for start in range(0, len(parts), _CHUNK):
            chunk = parts[start:start + _CHUNK]
            tp = time.perf_counter()
            arrays = [paint_part(good, p, seed)[0] for p in chunk]
            paint_s += time.perf_counter() - tp
            for p, r in zip(chunk, inspector.inspect_batch(arrays)):
                outcome[(p.kind, p.index)] = (_verdict(r), float(r.score))
            done += len(chunk)
            if progress:
                progress("judge", done, total)

    # Phase 1, sizes; then phase 2, contrasts at the size that phase 1 found matters.
    judge([p for p in plan if p.series == "size"])
    fits: dict[str, dict[str, dict]] = {}
    for kind in kinds:
        size_parts = [p for p in plan if p.kind == kind and p.series == "size"]
        fits[kind] = {}
        for name, hit in (("ng", lambda v: v == "NG"), ("ng_or_review", lambda v: v in ("NG", "REVIEW"))):
            fits[kind][name] = _summary(fit_pod([p.size_px for p in size_parts],
                                                [hit(outcome[(kind, p.index)][0]) for p in size_parts]), mm_per_px)
    plan = [_contrast_size(p, fits[p.kind]["ng"], good) if p.series == "contrast" else p for p in plan]
    judge([p for p in plan if p.series == "contrast"])
    judge_s = time.perf_counter() - t0

    has_band = float(getattr(inspector, "review_threshold", math.inf)) < float(getattr(inspector, "threshold", math.inf))
    n_good = len(good)
    frr = sum(v == "NG" for v in base_verdicts) / n_good
    study: dict[str, Any] = {
        "kind": "lineguard.stress",
        "n_good": n_good,
        "per_kind": per_kind,
        "seed": seed,
        "mm_per_px": mm_per_px,
        "threshold": getattr(inspector, "threshold", None),
        "review_threshold": getattr(inspector, "review_threshold", None) if has_band else None,
        "false_reject_rate": frr,
        "false_rejects": sum(v == "NG" for v in base_verdicts),
        "review_rate_good": sum(v == "REVIEW" for v in base_verdicts) / n_good,
        "contrast_share": CONTRAST_SHARE,
        "kinds": {},
        "timing_s": {"judge_good": round(t_good, 3), "paint": round(paint_s, 3), "total": round(judge_s, 3)},
    }
    if sources is not None:
        study["false_reject_parts"] = [str(sources[i]) for i, v in enumerate(base_verdicts) if v == "NG"]
    for kind in kinds:
        rows = [(p, *outcome[(kind, p.index)]) for p in plan if p.kind == kind]
        con_rows = [r for r in rows if r[0].series == "contrast"]
        contrast_fit = None
        if con_rows:
            cf = fit_pod([p.contrast for p, _, _ in con_rows], [v == "NG" for _, v, _ in con_rows]).to_dict()
            contrast_fit = {**cf, "size_px": float(np.median([p.size_px for p, _, _ in con_rows]))}
        lo, hi = SIZE_RANGE[kind]
        study["kinds"][kind] = {
            "size_means": KIND_SIZE_MEANS[kind],
            "nominal_contrast": NOMINAL_CONTRAST[kind],
            "size_share_range": [lo, hi],
            "contrast_range": list(CONTRAST_RANGE[kind]),
            "size": fits[kind]["ng"],
            "size_ng_or_review": fits[kind]["ng_or_review"],
            "contrast": contrast_fit,
            "sentence": kind_sentence(kind, fits[kind]["ng"], mm_per_px, NOMINAL_CONTRAST[kind]),
            # Each painted part: [series, base photo, size px, contrast, verdict, score, base verdict]
            "parts": [[p.series, p.base, p.size_px, p.contrast, v, round(s, 6), base_verdicts[p.base]]
                      for p, v, s in rows],
        }
    study["timing_s"]["fit"] = round(time.perf_counter() - t0 - judge_s, 3)
    return study
