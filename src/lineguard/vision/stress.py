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
too (a person looks and catches it). The good parts are also judged unpainted first: a
photo already NG would count as "caught" whatever is painted on it, so nothing is painted
there and it is left out of every fit; a photo already REVIEW is painted, but left out of
the NG-or-REVIEW fit. Their false-reject and review rates head the report.

Defects are painted inside the model's region of interest (its preprocess ``roi``) where
it has one, and lines (scratches, cracks) at least ``LINE_WIDTH_INPUT_PX`` model-input
pixels wide, so that the model's shrinking of the photo does not average them away.

Each kind's sentence says what was measured on what was painted (a line's width, in photo
and model-input pixels; the contrast) and, where the size series caught few, what the
contrast series found: a painted series at one contrast is one point of the plant's defects,
not all of them (KolektorSDD cracks painted 4.9 px wide at 50 grey levels: 3 of 150 caught;
the same model's real cracks, median core contrast about 90: 30 of 52).

The good images must be ones the model never learned from: scores on training parts
are optimistic, and so would the curves be.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .calibration import promise_text
from .pod import PodFit, fit_pod
from .sized_defects import (CONTRAST_RANGE, KIND_SIZE_MEANS, LINE_KINDS, LINE_WIDTH_PX, NOMINAL_CONTRAST,
                            SIZE_RANGE, STRESS_KINDS, clip_region, paint_sized_defect)

__all__ = ["StressPart", "plan_stress", "paint_part", "run_stress", "kind_sentence", "CONTRAST_SHARE",
           "KIND_PLURAL", "KIND_ONE", "FEW_GOOD", "threshold_meaning", "line_width", "LINE_WIDTH_INPUT_PX",
           "painting_for", "few_good_warning", "contrast_clause", "learnt_photos_in",
           "calibration_photos_in", "threshold_parts_unknown"]

# Share of each kind's parts in the contrast series; the rest measure size.
CONTRAST_SHARE = 0.25
# Parts judged per call: enough for the model's batching and lanes, few enough to keep
# memory flat on large photos.
_CHUNK = 32
# Fewer good photos than this and the sizes rest on few parts (README: "some 30 or more").
FEW_GOOD = 30
# A painted line is at least this many model-input pixels wide: thinner, the model's
# shrinking of the photo averages it away (a 1.4 px crack on a 500 px photo shrunk to
# 128 px changes the input by a quarter of its contrast).
LINE_WIDTH_INPUT_PX = 1.25
# the smallest side (px) a good photo may have to be painted on
MIN_SIDE_PX = 32

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

    ``shapes``: (height, width) of each good photo, or of the part of it the model inspects
    (its region of interest): sizes are drawn as shares of the shorter side, so a defect
    always fits where it is painted.
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


def _input_px(shape: Sequence[int], pre: Any) -> float:
    """Photo pixels per model-input pixel for a photo of ``shape`` (the larger of the two
    axes' shrink, so a line in any direction keeps its width); under 1 for a photo smaller
    than the input (enlarged: a 1.2 px scratch on a 128 px photo read at 224 px is 2.1 input
    pixels, said as 1.2 while this was held at 1); 1 without a preprocess."""
    if pre is None or not hasattr(pre, "input_hw"):
        return 1.0
    x, y, ww, wh = clip_region(shape, getattr(pre, "roi", None))
    if getattr(pre, "orient", "none") == "landscape" and wh > ww:
        ww, wh = wh, ww
    ih, iw = pre.input_hw
    sx, sy = ww / iw, wh / ih
    if getattr(pre, "resize", "stretch") == "pad":
        sx = sy = max(sx, sy)
    return max(sx, sy)


def painting_for(inspector: Any, good: Sequence[np.ndarray]) -> dict:
    """Where and how wide defects are painted for this model: inside its region of interest
    (``roi``, x, y, width, height; None for the whole photo), and lines (scratches, cracks)
    at least ``LINE_WIDTH_INPUT_PX`` model-input pixels wide (``line_width_px``, per photo,
    in photo pixels; never under the painter's own ``LINE_WIDTH_PX``)."""
    pre = getattr(inspector, "preprocess", None)
    roi = getattr(pre, "roi", None)
    scale = [round(_input_px(g.shape, pre), 4) for g in good]
    return {"roi": [int(v) for v in roi] if roi else None, "line_width_input_px": LINE_WIDTH_INPUT_PX,
            "photo_px_per_input_px": scale}


def line_width(kind: str, painting: Optional[dict], base: int) -> Optional[float]:
    """The full width (photo px) a line of ``kind`` is painted at on photo ``base``; None for
    kinds that are not lines."""
    if kind not in LINE_KINDS:
        return None
    scale = (painting or {}).get("photo_px_per_input_px")
    f = float(scale[base]) if scale else 1.0
    # Held at LINE_WIDTH_INPUT_PX model-input px at every scale: a photo the size of the model
    # input (f = 1) got the painter's 1.2 px scratch, 1.2 input px, under the 1.25 promised.
    return max(LINE_WIDTH_PX[kind], LINE_WIDTH_INPUT_PX * f)


def paint_part(good: Sequence[np.ndarray], part: StressPart, seed: int,
               painting: Optional[dict] = None) -> tuple[np.ndarray, np.ndarray]:
    """The painted photo and its mask for one planned part (the same every time).
    ``painting``: the study's (:func:`painting_for`): the model's region of interest and
    the width of painted lines; None paints anywhere on the photo at the painter's widths."""
    roi = (painting or {}).get("roi")
    width = line_width(part.kind, painting, part.base)
    return paint_sized_defect(good[part.base], part.kind, part.size_px, part.contrast,
                              _kind_seed(seed, part.kind, part.index), region=roi, line_width_px=width)


def learnt_photos_in(inspector: Any, items: Sequence[Any]) -> Optional[np.ndarray]:
    """Which of ``items`` (photo files, as the model loads them) are photos the model
    learned from, by the prints it keeps (``info['learnt_photos']``, as recalibrate tells
    them); None for a model that keeps none. Judged on its own 100 training tiles a model
    showed 0% false rejects and 0% review where new parts gave 1.0% and 7.3%: its
    training photos fit it far better than new parts, and the curves would flatter it."""
    from .inspector import LEARNT_PHOTOS
    return _photos_in(inspector, items, (getattr(inspector, "info", None) or {}).get(LEARNT_PHOTOS))


def calibration_photos_in(inspector: Any, items: Sequence[Any]) -> Optional[np.ndarray]:
    """Which of ``items`` are the good photos held out of training to set the model's
    reject threshold, by the prints its calibration record keeps (``CALIBRATION_PHOTOS``,
    written by ``lineguard train --holdout``); None for a record that keeps none. The
    threshold was put above all but its target share of their scores, so their false-reject
    rate is where it was put, not a measurement: 12 such parts of the training folder showed
    0% false rejects."""
    from .bundle import CALIBRATION_PHOTOS
    calib = getattr(inspector, "calibration", None)
    return _photos_in(inspector, items, calib.get(CALIBRATION_PHOTOS) if isinstance(calib, dict) else None)


def threshold_parts_unknown(inspector: Any) -> bool:
    """True where the reject threshold was set on good parts the model did not learn from
    (held out at training, or given to recalibrate) and the record keeps no prints of them:
    a study cannot tell them from new parts."""
    from .bundle import CALIBRATION_PHOTOS
    from .inspector import PARTS_GIVEN, PARTS_HELD_OUT
    calib = getattr(inspector, "calibration", None)
    if not isinstance(calib, dict) or calib.get(CALIBRATION_PHOTOS):
        return False
    return calib.get("calibration_method") == "held out" or calib.get("calibration_parts") in (PARTS_HELD_OUT,
                                                                                                 PARTS_GIVEN)


def _photos_in(inspector: Any, items: Sequence[Any], prints: Any) -> Optional[np.ndarray]:
    from .inspector import photo_prints
    known = set(prints or ()) if isinstance(prints, (list, tuple)) else set()
    if not known:
        return None
    seen = []
    for it in items:
        try:
            x = inspector.preprocess.load(it)[0]
        except Exception:       # unreadable here: the caller's own loading says so
            seen.append(False)
            continue
        seen.append(photo_prints(x[None])[0] in known)
    return np.array(seen, bool)


def few_good_warning(n_good: int, n_given: Optional[int] = None, copies: int = 0) -> Optional[str]:
    """What a study painted on fewer than ``FEW_GOOD`` different good photos must say; None
    from there up. ``n_given``: the photos given, where some were not painted on (judged NG,
    or doubted by the photo check, unpainted): the sizes rest on the ``n_good`` painted, not
    on those. ``copies``: photos painted that are copies of another painted (the same photo,
    byte for byte): one part, so counted once, as ``train`` counts them."""
    if n_good >= FEW_GOOD:
        return None
    n_unpainted = (n_given - n_good - copies) if n_given is not None else 0
    said = ([f"of the {n_given} given, {n_unpainted} were judged NG or doubted by the photo check unpainted and "
             "carry no defect"] if n_unpainted > 0 else [])
    said += [f"{copies} more were copies of these, the same photo byte for byte: copies count once"] if copies else []
    different = " different" if copies else ""
    painted = f" painted on ({'; '.join(said)})" if said else ""
    return (f"only {n_good}{different} good photo(s){painted}: each was painted many times, "
            f"so these sizes rest on {n_good} "
            f"part(s), not on the number of defects painted, and the 95% bounds (a90/95) treat repeats on one "
            f"photo as independent, so they are narrower than the parts justify; use {FEW_GOOD} or more "
            "held-out good parts before relying on them")


def _contrast_size(part: StressPart, size_fit: dict, good: Sequence[np.ndarray],
                   roi: Optional[Sequence[int]] = None) -> StressPart:
    """The contrast series is painted at the kind's a90 (where contrast decides whether a
    defect is caught), at the size from which every defect was caught where the size
    series was a step, or else at the largest size painted; never larger than fits the photo."""
    target = (size_fit["a90"] if size_fit.get("a90_reached") else
              size_fit.get("all_found_from") or size_fit["size_max"])
    # An a90 below the smallest size painted is the curve's guess, not a measurement: paint
    # at the smallest size painted, where 9 in 10 were seen caught.
    target = max(float(target), float(size_fit["size_min"]))
    limit = 0.9 * min(clip_region(good[part.base].shape, roi)[2:])
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


def _what_painted(kind: str, contrast: float, mm_per_px: Optional[float], width_px: Optional[float],
                  width_input_px: Optional[float]) -> str:
    """The painted defect's plural with its width (lines) and contrast: what the numbers are for."""
    what = KIND_PLURAL[kind]
    if width_px is not None:
        what += " " + _width(mm_per_px, width_px, width_input_px)
    return what + f" at {contrast:.0f} grey levels of contrast"


def _width(mm_per_px: Optional[float], width_px: float, width_input_px: Optional[float]) -> str:
    """A painted line's width: "0.143 mm wide (1.43 px; 1.25 model-input px)"."""
    px = [f"{width_px:.3g} px"] + ([f"{width_input_px:.3g} model-input px"] if width_input_px else [])
    return (f"{width_px * mm_per_px:.3g} mm wide ({'; '.join(px)})" if mm_per_px else
            f"{px[0]} wide" + (f" ({px[1]})" if len(px) > 1 else ""))


def contrast_clause(kind: str, cfit: Optional[dict], mm_per_px: Optional[float]) -> str:
    """What the contrast series measured, said where the size series caught few: at the size
    it was painted, how strong a defect had to be to be caught. A size series at one contrast
    that catches few says that contrast is too faint for this model, not that the kind is
    missed: painted KolektorSDD cracks at 50 grey levels were caught 2 of 150, while the real
    cracks (median core contrast some 90) were caught 30 of 52 by the same model."""
    if not cfit or not cfit.get("n"):
        return ""
    at = f"at {_fmt_size(cfit.get('size_px'), mm_per_px)}"
    span = f"{cfit['size_min']:.0f} to {cfit['size_max']:.0f} grey levels"
    s = f" Painted {at} from {span}, {cfit['hits']} of {cfit['n']} were caught"
    status = cfit.get("status")
    if status == "blind":
        return s + f": none, even at {cfit['size_max']:.0f} grey levels."
    if status in ("all_found", "separated") and cfit.get("all_found_from") is not None:
        return s + f", every one from {cfit['all_found_from']:.0f} grey levels up."
    a50, a90 = cfit.get("a50"), cfit.get("a90")
    if status == "fit" and a90 is not None and cfit["size_min"] <= a90 <= cfit["size_max"]:
        return s + f"; 9 in 10 from {a90:.0f} grey levels up" + (
            f" (half from {a50:.0f})." if a50 is not None and a50 >= cfit["size_min"] else ".")
    if status == "fit" and a50 is not None and cfit["size_min"] <= a50 <= cfit["size_max"]:
        return s + f"; half from {a50:.0f} grey levels up, 9 in 10 not reached below {cfit['size_max']:.0f}."
    return s + "."


# an a90/95 this many times the largest size painted is said as "far beyond", not as a size
FAR_BEYOND = 10.0


def kind_sentence(kind: str, fit: dict, mm_per_px: Optional[float], contrast: float,
                  width_px: Optional[float] = None, contrast_fit: Optional[dict] = None,
                  width_input_px: Optional[float] = None) -> str:
    """One sentence a plant can act on, from a kind's size fit (hit = NG).

    It says what was measured, on what was painted (lines: their width; every kind: its
    contrast), never a verdict on the kind as a whole: a size series at one contrast and
    width catching few says those defects pass, and the contrast series (``contrast_fit``)
    says how much stronger they must be to be caught."""
    what = KIND_PLURAL[kind]
    smaller = "shorter" if KIND_SIZE_MEANS[kind] == "length" else "smaller"
    # The subject with a line's width: it decides what the line's sizes mean (README: "the
    # width is in each line kind's sentence"), said in every branch, not only where few were caught.
    what_w = what + (f" {_width(mm_per_px, width_px, width_input_px)}" if width_px is not None else "")
    Kind_w = what_w[0].upper() + what_w[1:]
    at = f" at {contrast:.0f} grey levels of contrast"
    painted = _what_painted(kind, contrast, mm_per_px, width_px, width_input_px)
    Painted = painted[0].upper() + painted[1:]
    f = lambda v: _fmt_size(v, mm_per_px)  # noqa: E731

    def beyond(a95: float) -> str:
        # "only from 1.58e+04 px" was said of 128 px photos: a size no part has, not a bound
        if a95 > FAR_BEYOND * fit["size_max"]:
            return f"far beyond the sizes painted (over {FAR_BEYOND:g} times the largest, {f(fit['size_max'])})"
        return f"from {f(a95)}, beyond the sizes painted"
    status = fit["status"]
    # Where few were caught, the contrast series says whether stronger ones are: the sentence
    # then points to real defects, not away from the model.
    check = (" Check with real defects of this kind (`lineguard eval`) before relying on the model for them "
             "or setting it aside.")
    if status == "blind":
        return (f"{Painted} were never caught (0 of {fit['n']}), up to {f(fit['size_max'])}."
                + contrast_clause(kind, contrast_fit, mm_per_px) + check)
    if status == "not_increasing":
        return (f"{Painted} were caught {fit['hits']} of {fit['n']}, no more often when larger (up to "
                f"{f(fit['size_max'])})." + contrast_clause(kind, contrast_fit, mm_per_px) + check)
    if status in ("all_found", "separated"):
        start = fit["all_found_from"]
        first = (f"Every one of the {fit['n']} {what_w} painted{at} was caught, down to {f(start)}"
                 if status == "all_found" else
                 f"{Kind_w} {smaller} than {f(start)} were missed and every larger one caught{at}")
        if fit["a90_95"] is not None:
            return first + f"; 90% of {what} from {f(fit['a90_95'])} up are caught, with 95% confidence."
        return first + "; too few parts to state a size caught 90% of the time with 95% confidence: paint more."
    a50, a90, a95 = fit["a50"], fit["a90"], fit["a90_95"]
    if a50 is None or a50 > fit["size_max"]:
        return (f"{Painted} were caught {fit['hits']} of {fit['n']}, at every size painted ({f(fit['size_min'])} "
                f"to {f(fit['size_max'])}): at that contrast most pass."
                + contrast_clause(kind, contrast_fit, mm_per_px) + check)
    lo = fit["size_min"]
    # Sizes below the smallest painted are the curve's tail, not measurements (see _summary).
    unmeasured = f"below the smallest {KIND_ONE[kind]} painted ({f(lo)}): not measured"
    if a90 is not None and a90 < lo:
        s = (f"The sizes below which {what_w} usually pass and from which 9 in 10 are caught{at} lie "
             f"{unmeasured}; {fit['hits']} of the {fit['n']} painted were caught")
        if a95 is not None and a95 < lo:
            return s + ", 9 in 10 with 95% confidence at every size painted."
        if fit["a90_95_reached"]:
            return s + f"; 9 in 10 with 95% confidence from {f(a95)}."
        if a95 is not None:
            return s + f"; 9 in 10 with 95% confidence only {beyond(a95)}: paint more parts to narrow it."
        return s + "; too few parts to say 9 in 10 with 95% confidence: paint more."
    if a50 < lo:
        s = f"The size below which {what_w} usually pass{at} lies {unmeasured}"
    else:
        s = f"{Kind_w} {smaller} than {f(a50)} will usually pass{at}"
    if not fit["a90_reached"]:
        # said as "no size reaches 9 in 10": "9 in 10 are not caught at any size" read as
        # 90% missed at every size, which is not what the fit says
        return s + (f"; no size painted (up to {f(fit['size_max'])}) reaches 9 in 10 caught at that contrast "
                    f"({fit['hits']} of {fit['n']} caught)." + contrast_clause(kind, contrast_fit, mm_per_px) + check)
    s += f"; from {f(a90)} 9 in 10 are caught"
    if fit["a90_95_reached"]:
        return s + f" (from {f(a95)} with 95% confidence)."
    if a95 is not None:
        return s + f", but with 95% confidence only {beyond(a95)}: paint more parts to narrow it."
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
    from .inspector import photo_prints
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise ValueError(f"mm_per_px must be a positive number, got {mm_per_px}")
    good = list(good)
    small = [i for i, g in enumerate(good) if min(g.shape[:2]) < MIN_SIDE_PX]
    if small:
        # `lineguard stress` leaves these out and names them (small_photos); here, named too
        named = [str(sources[i]) if sources is not None else f"photo {i}" for i in small]
        raise ValueError(f"{len(small)} good photo(s) are under {MIN_SIDE_PX} px on a side, too small to paint a "
                         f"defect on ({', '.join(named[:3])}{', ...' if len(named) > 3 else ''}): leave them out")
    kinds = _check_kinds(kinds)
    painting = painting_for(inspector, good)
    roi = painting["roi"]
    windows = [clip_region(g.shape, roi) for g in good]
    if min(min(w[2:]) for w in windows) < 32:
        raise ValueError("the model's region of interest is under 32 px on a side in some photos; too small to "
                         "paint a defect in")
    t0 = time.perf_counter()

    # The unpainted parts: false rejects, and which photos are NG (or REVIEW) before any paint.
    base_verdicts: list[str] = []
    base_scores: list[float] = []
    base_doubted: list[bool] = []       # REVIEW for the photo itself (the photo check), whatever its score
    for start in range(0, len(good), _CHUNK):
        res = inspector.inspect_batch(good[start:start + _CHUNK])
        base_verdicts += [_verdict(r) for r in res]
        base_scores += [float(r.score) for r in res]
        base_doubted += [bool(getattr(r, "photo_issues", None)) for r in res]
        if progress:
            progress("judge", len(base_verdicts), len(good))
    t_good = time.perf_counter() - t0
    # A photo already NG unpainted is "caught" whatever is painted on it: it says nothing of
    # the defect, so none is painted there. One already REVIEW is painted (for hit = NG) but
    # left out of the hit = NG-or-REVIEW fit, for the same reason. One the photo check doubts
    # is REVIEW whatever is painted, never NG: counted as a miss, it made every kind "never
    # caught" on a folder of such photos (a walk: 72 of 72 painted parts scored above the
    # threshold), so none is painted there either.
    usable = [i for i, v in enumerate(base_verdicts) if v != "NG" and not base_doubted[i]]
    # Copies of one photo are one part: 10 photos copied 4 times read "40 good parts" with no
    # few-parts warning and a90/95 bounds that treat the copies' defects as independent parts.
    prints = [photo_prints(g[None])[0] + str(g.shape) for g in good]
    n_copies = len(good) - len(set(prints))
    n_painted = len({prints[i] for i in usable})
    if not usable:
        doubted = sum(base_doubted)
        if doubted:
            raise ValueError(f"{doubted} of the {len(good)} good photos are unlike the model's good photos (the "
                             "photo check judges them REVIEW whatever their score: another lamp, camera or "
                             "product?)" + (f" and the other {len(good) - doubted} are judged NG unpainted"
                                            if doubted < len(good) else "")
                             + ", so a defect painted on them can never be judged NG; give good photos as the line "
                             "takes them now for the model, or, after a planned change of lamp or camera, "
                             "recalibrate it with --photo-range first")
        raise ValueError(f"all {len(good)} good photos are judged NG unpainted: the model rejects these good "
                         "parts, so nothing painted on them can be judged; check the model and the folder")
    sub = plan_stress([(windows[i][3], windows[i][2]) for i in usable], kinds, per_kind, seed)
    plan = [replace(p, base=usable[p.base]) for p in sub]
    total = len(good) + len(plan)
    done = len(good)

    paint_s = 0.0
    outcome: dict[tuple[str, int], tuple[str, float]] = {}

    def judge(parts: list[StressPart]) -> None:
        nonlocal done, paint_s
        for start in range(0, len(parts), _CHUNK):
            chunk = parts[start:start + _CHUNK]
            tp = time.perf_counter()
            arrays = [paint_part(good, p, seed, painting)[0] for p in chunk]
            paint_s += time.perf_counter() - tp
            for p, r in zip(chunk, inspector.inspect_batch(arrays)):
                outcome[(p.kind, p.index)] = (_verdict(r), float(r.score))
            done += len(chunk)
            if progress:
                progress("judge", done, total)

    n_good = len(good)
    already = {"ng": ("NG",), "ng_or_review": ("NG", "REVIEW")}
    left_out = {name: sum(v in vs or d for v, d in zip(base_verdicts, base_doubted)) for name, vs in already.items()}
    n_doubted = sum(1 for v, d in zip(base_verdicts, base_doubted) if d and v != "NG")

    def left_out_note(name: str, n_parts: int) -> Optional[str]:
        if not left_out[name]:
            return None
        what = "NG" if name == "ng" else "REVIEW or NG"
        judged = left_out[name] - (n_doubted if name == "ng" else 0)
        said = f"{judged} of {n_good} good photos were judged {what} unpainted" if judged else ""
        if n_doubted:
            # REVIEW for the photo itself: never NG whatever is painted, so nothing was painted there
            said += (" and " if said else "") + (f"{n_doubted} of {n_good} were REVIEW for the photo itself (the "
                                                 "photo check: never NG, whatever is painted)")
        return (f"{said}: left out of this fit ({n_parts} painted part(s)), as a photo already {what} is counted "
                "found whatever is painted on it")

    # Phase 1, sizes; then phase 2, contrasts at the size that phase 1 found matters.
    judge([p for p in plan if p.series == "size"])
    fits: dict[str, dict[str, dict]] = {}
    for kind in kinds:
        size_parts = [p for p in plan if p.kind == kind and p.series == "size"]
        fits[kind] = {}
        for name, hit in (("ng", lambda v: v == "NG"), ("ng_or_review", lambda v: v in ("NG", "REVIEW"))):
            keep = [p for p in size_parts if base_verdicts[p.base] not in already[name]]
            dropped = len(size_parts) - len(keep)
            if keep:
                d = _summary(fit_pod([p.size_px for p in keep], [hit(outcome[(kind, p.index)][0]) for p in keep]),
                             mm_per_px)
            else:
                d = _no_clean_base(size_parts, mm_per_px)
            d["left_out_parts"] = dropped
            d["left_out_photos"] = left_out[name]
            note = left_out_note(name, dropped)
            if note:
                d["notes"] = list(d.get("notes") or []) + [note]
            fits[kind][name] = d
        above = above_ng_note(fits[kind]["ng"], fits[kind]["ng_or_review"])
        if above:
            fits[kind]["ng_or_review"]["notes"] = list(fits[kind]["ng_or_review"].get("notes") or []) + [above]
    plan = [_contrast_size(p, fits[p.kind]["ng"], good, roi) if p.series == "contrast" else p for p in plan]
    judge([p for p in plan if p.series == "contrast"])
    judge_s = time.perf_counter() - t0

    has_band = float(getattr(inspector, "review_threshold", math.inf)) < float(getattr(inspector, "threshold", math.inf))
    frr = sum(v == "NG" for v in base_verdicts) / n_good
    calib = getattr(inspector, "calibration", None)
    study: dict[str, Any] = {
        "kind": "lineguard.stress",
        "n_good": n_good,
        "per_kind": per_kind,
        "seed": seed,
        "mm_per_px": mm_per_px,
        "threshold": getattr(inspector, "threshold", None),
        "review_threshold": getattr(inspector, "review_threshold", None) if has_band else None,
        "calibration": _calibration_summary(calib) if isinstance(calib, dict) else None,
        "false_reject_rate": frr,
        "false_rejects": sum(v == "NG" for v in base_verdicts),
        "review_rate_good": sum(v == "REVIEW" for v in base_verdicts) / n_good,
        "reviews_good": sum(v == "REVIEW" for v in base_verdicts),
        # photos already a hit unpainted, left out of each fit (hit = NG: never painted)
        "left_out_photos": {"ng": left_out["ng"], "ng_or_review": left_out["ng_or_review"],
                            "photo_doubted": n_doubted},
        "painting": painting,
        # on the photos painted: one judged NG or doubted unpainted carries no defect, so adds no part
        "warnings": [w for w in [few_good_warning(n_painted, n_good, len(usable) - n_painted),
                                 _sizes_warning(good)] if w],
        # photos given that are copies of an earlier one (the same photo byte for byte)
        "photo_copies": n_copies,
        "contrast_share": CONTRAST_SHARE,
        "kinds": {},
        "timing_s": {"judge_good": round(t_good, 3), "paint": round(paint_s, 3), "total": round(judge_s, 3)},
    }
    if sources is not None:
        study["false_reject_parts"] = [str(sources[i]) for i, v in enumerate(base_verdicts) if v == "NG"]
        study["review_parts"] = [str(sources[i]) for i, v in enumerate(base_verdicts) if v == "REVIEW"]
    for kind in kinds:
        rows = [(p, *outcome[(kind, p.index)]) for p in plan if p.kind == kind]
        con_rows = [r for r in rows if r[0].series == "contrast"]
        contrast_fit = None
        if con_rows:
            cf = fit_pod([p.contrast for p, _, _ in con_rows], [v == "NG" for _, v, _ in con_rows],
                         unit=" grey levels", what="contrast").to_dict()
            contrast_fit = {**cf, "size_px": float(np.median([p.size_px for p, _, _ in con_rows]))}
        lo, hi = SIZE_RANGE[kind]
        entry = {
            "size_means": KIND_SIZE_MEANS[kind],
            "nominal_contrast": NOMINAL_CONTRAST[kind],
            "size_share_range": [lo, hi],
            "contrast_range": list(CONTRAST_RANGE[kind]),
            "size": fits[kind]["ng"],
            "size_ng_or_review": fits[kind]["ng_or_review"],
            "contrast": contrast_fit,
            "sentence": None,
            # Each painted part: [series, base photo, size px, contrast, verdict, score, base verdict]
            "parts": [[p.series, p.base, p.size_px, p.contrast, v, round(s, 6), base_verdicts[p.base]]
                      for p, v, s in rows],
        }
        width = width_in = None
        if kind in LINE_KINDS:
            widths = [line_width(kind, painting, p.base) for p, _, _ in rows]
            entry["line_width_px"] = width = round(float(np.median(widths)), 3)
            scale = float(np.median([painting["photo_px_per_input_px"][p.base] for p, _, _ in rows]))
            # the width the model sees: what decides whether a line survives its shrinking
            entry["line_width_input_px"] = width_in = round(width / scale, 3)
        entry["sentence"] = kind_sentence(kind, fits[kind]["ng"], mm_per_px, NOMINAL_CONTRAST[kind], width,
                                          contrast_fit, width_in)
        study["kinds"][kind] = entry
    study["timing_s"]["fit"] = round(time.perf_counter() - t0 - judge_s, 3)
    return study


ABOVE_NG = "above hit = NG's"


def above_ng_note(ng: dict, ng_or_review: dict) -> Optional[str]:
    """Said when hit = NG-or-REVIEW's a90 comes out larger than hit = NG's. Every part found as
    NG is found as NG-or-REVIEW too, so on the same photos that cannot be; the two curves are
    fitted apart, the second without the photos already REVIEW unpainted, and a reader took the
    larger a90 as the review band making detection worse."""
    a, b = ng.get("a90"), ng_or_review.get("a90")
    if a is None or b is None or b <= a or not ng.get("a90_reached"):
        return None
    fewer = int(ng_or_review.get("left_out_parts") or 0) - int(ng.get("left_out_parts") or 0)
    on = (f" (on {fewer} fewer painted parts: those on photos already REVIEW unpainted)" if fewer > 0 else "")
    return (f"its a90, {b:.3g} px, is {ABOVE_NG} ({a:.3g} px), though every part found as NG counts as found here "
            f"too: the two curves are fitted apart{on}, so the gap is the fits' scatter, not the review band "
            "missing defects; read hit = NG's a90 as the size both catch")


def _sizes_warning(good: Sequence[np.ndarray]) -> Optional[str]:
    """Photos of more than one size (e.g. two camera resolutions) pooled in one study: sizes in
    px, and in mm through one --mm-per-px, then mix two scales. Said, naming the sizes."""
    counts: dict[tuple[int, int], int] = {}
    for g in good:
        counts[(int(g.shape[1]), int(g.shape[0]))] = counts.get((int(g.shape[1]), int(g.shape[0])), 0) + 1
    if len(counts) < 2:
        return None
    said = ", ".join(f"{n} at {w}x{h} px" for (w, h), n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (f"the good photos come in {len(counts)} sizes ({said}): defect sizes are in each photo's own pixels, "
            "so the curves pool two scales (and one --mm-per-px cannot fit both); run the stress test on the photos "
            "of each size apart")


def _no_clean_base(parts: list[StressPart], mm_per_px: Optional[float]) -> dict:
    """The fit where every photo painted was already a hit unpainted: nothing to fit."""
    sizes = [p.size_px for p in parts] or [float("nan")]
    d = PodFit(status="no_clean_base", n=0, hits=0, size_min=float(min(sizes)), size_max=float(max(sizes))).to_dict()
    for k in ("a50", "a90", "a90_95"):
        d[f"{k}_reached"] = False
        d[f"{k}_below_painted"] = False
    if mm_per_px:
        for key in ("a50", "a90", "a90_95", "all_found_from", "size_min", "size_max"):
            d[f"{key}_mm"] = None if d[key] is None else d[key] * mm_per_px
    return d


def _calibration_summary(c: dict) -> dict:
    """What the model's calibration says its reject threshold is for and guarantees."""
    keys = ("method", "strategy", "target_false_reject_rate", "guaranteed_false_reject_rate",
            "false_reject_rate_upper_90", "n_calibration", "calibration_parts", "review_rate",
            "guaranteed_not_ok_rate", "enough_calibration_parts", "effective_calibration_parts", "note")
    return {k: c[k] for k in keys if k in c}


def threshold_meaning(study: dict) -> Optional[str]:
    """One sentence: what the model's reject threshold was set for, from its calibration."""
    c = study.get("calibration") or {}
    target = c.get("target_false_reject_rate")
    if target is None:
        return None
    on = f" on {c['n_calibration']} good parts" if c.get("n_calibration") else ""
    if c.get("strategy") == "f1":
        return (f"the reject threshold is the one that scored best (F1) on the calibration's defect photos{on}, "
                f"not one set for a false-reject target ({float(target):.2%} was asked)")
    s = f"the reject threshold was set at calibration for a false-reject target of {float(target):.2%}{on}"
    if c.get("guaranteed_false_reject_rate") is not None:
        s += f"; the calibration promises {promise_text(c)}"     # as `lineguard train` says it
    if c.get("review_rate"):
        s += f"; review band for {float(c['review_rate']):.2%} of good parts"
        if c.get("guaranteed_not_ok_rate") is not None:
            s += f" (REVIEW or NG at most {float(c['guaranteed_not_ok_rate']):.2%} on average)"
    if c.get("note"):
        s += f". {c['note']}"
    return s
