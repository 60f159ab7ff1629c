"""Is this photo like the good photos the model learnt from? A check before the verdict.

An anomaly model judges what it is shown. A lamp gone dim, a lens out of focus, a
camera's exposure changed: the photo is then unlike every photo the model learnt from,
and its score says little about the part (a dim photo of a scratched part can score as
low as a good one: an escape no threshold prevents). So the model keeps, from its good
photos, the range of three measures of the picture it sees (after its crop and resize,
so whatever the camera's size and depth):

- ``brightness``: the mean grey level, 0 (black) to 1 (white);
- ``contrast``: the grey levels' standard deviation, same scale;
- ``focus``: the fine detail left, the Laplacian's RMS over the contrast (blur lowers it;
  dividing by the contrast keeps a darker photo of the same sharpness at the same focus),
  at the model input's full resolution (models learnt before: on 128 px block averages,
  which smoothed away most of what a slightly defocused lens loses).

A photo outside the range (with a margin: 0.65 of the good photos' spread, measured on the
scale the odd-photo fence uses below, logit for brightness and contrast, so it stops short of
black, white and flat however widely they spread; and never less than a fifth of their
median; for focus, below 0.6 of the least sharp good photos') is named with what is off
and the range it is outside, as training printed it (:func:`range_said`), e.g. "too dark: brightness
0.21, allowed 0.28-0.62", and a part that would have passed goes to REVIEW instead: a person looks
before a photo the model cannot judge ships a part. Its score and map are kept as
they are. Blur only counts one way (a sharper photo than ever is no reason to doubt).

A plant's good folder holds a few odd photos too (a lamp flickering while they were
taken, one shot out of focus). Taken into the range they would widen it until the fault
they show passes, so photos far outside the others (Tukey's fences: past the quartiles
by ``ODD_FENCE`` times the interquartile range, on a scale bounded as the measure is: logit
for brightness and contrast, log for focus, so a lamp-off photo among widely spread good ones
is far out; and by at least the margins' floors) are left out of it; only a few
(ODD_MAX_SHARE): more are a variant of the part, which the range must hold. Of those, a
photo is called odd (named for a person to look at, and "parts like it go to REVIEW")
only where the range learnt without it doubts it, in the words a part's message would use:
"odd" means "the check would doubt it". One the range holds all the same (the others'
spread and margin reach it: heavy-tailed brightness, a wide part family) is merely
unusual: a gentler note says so, since a part like it is judged on its score (a photo at
brightness 0.745 had been named "too bright" beside a range printed as 0.202-0.763, and
train's next step said such parts went to REVIEW).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

MEASURES = ("brightness", "contrast", "focus")
# The range's margin on each side: SPREAD_MARGIN of the good photos' spread (1st to 99th
# percentile) on the fence's bounded scale (_widened), at least RELATIVE_FLOOR of their median
# (a dark part's dimmed lamp moves brightness by little in absolute terms) and ABSOLUTE_FLOOR
# (sensor noise). 0.65, not the 0.5 it was on the measures' own scale: at 0.5 and 0.6 on this
# scale the brightest good tiles (4 of 952 at brightness 0.83-0.87) fell outside ranges learnt
# from 100 random tiles more often than before (200 draws: 16 -> 29 held-out photos doubted at
# 0.6, 13 at 0.65); 0.7 let a lamp at 60% pass on a third of the commutators learnt from their
# first 100 (64% doubted, 88% before, 85% at 0.65). benchmarks/photo_range_bench.py, README.
SPREAD_MARGIN = 0.65
RELATIVE_FLOOR = 0.2
ABSOLUTE_FLOOR = 0.02
FOCUS_LOW = 0.6          # focus below this share of the good photos' 1st percentile: blurred
ODD_FENCE = 3.0          # a good photo this many IQRs past the quartiles is odd: left out, named
ODD_MIN_PHOTOS = 8       # with fewer photos the quartiles say too little to call one odd
# at most this share of the good photos (and at least 2) may be odd: more past the fence
# are a variant of the product (a darker batch of parts), which the range must hold
ODD_MAX_SHARE = 0.05
MAX_SIDE = 128           # measured on at most this many pixels a side (block averages)
FOCUS_AT = "input"       # focus at the model input's full resolution (benchmarks/photo_focus_bench.py)
# what a photo below / above each measure's range is called
_WORDS = {"brightness": ("too dark", "too bright"), "contrast": ("too flat (low contrast)", "too much contrast"),
          "focus": ("blurred (out of focus?)", "")}
# and a good photo far from most that the range holds all the same (learn_range's unusual)
_GENTLE = {"brightness": ("darker than most", "brighter than most"),
           "contrast": ("flatter than most", "more contrast than most"), "focus": ("less sharp than most", "")}


def _lap_focus(g: np.ndarray, contrast: float) -> float:
    """The Laplacian's RMS over the contrast of a grey image (0 when too small)."""
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = (g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1]) - 4.0 * g[1:-1, 1:-1]
    return float(np.sqrt(np.mean(lap * lap)) / (contrast + 1e-3))


def laplacian_focus(x: np.ndarray) -> float:
    """Focus of a model input (H, W, 3) uint8 at its full resolution: the fine detail a
    slightly defocused lens removes first, which block averages had already smoothed.
    The same measure as on the blocks (Laplacian RMS over the contrast), in integers
    and dot products: numpy's float version took about 1 ms a 224 px input on the
    2-core host, this about 0.15 ms (benchmarks/photo_focus_bench.py)."""
    if x.shape[0] < 3 or x.shape[1] < 3:
        return 0.0
    g = x[..., 0].astype(np.int32)
    g += x[..., 1]
    g += x[..., 2]                       # grey x 765
    lap = g[1:-1, :-2] + g[1:-1, 2:]
    lap += g[:-2, 1:-1]
    lap += g[2:, 1:-1]
    lap -= 4 * g[1:-1, 1:-1]
    f = lap.ravel().astype(np.float32)
    d = g.ravel().astype(np.float32)
    d -= d.mean()
    rms = np.sqrt(np.dot(f, f) / f.size) / 765
    contrast = np.sqrt(np.dot(d, d) / d.size) / 765
    return float(rms / (contrast + 1e-3))


def measure(x: np.ndarray, focus_at: str = "blocks") -> dict[str, float]:
    """The three measures of one model input (H, W, 3) uint8 as the model sees it;
    ``focus_at`` "input" measures focus at the input's full resolution, "blocks" on the
    block averages (models whose range was learnt so)."""
    # block sums of the three channels in integers, then one small float image: converting
    # the whole input to float first cost ~1 ms a part (about a tenth of the fast model's time);
    # block averages, not a strided view, so fine detail is not aliased into the Laplacian
    h, w = x.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / MAX_SIDE)))
    hh, ww = h // step * step, w // step * step
    acc = np.zeros((hh // step, ww // step), np.uint32)
    for dy in range(step):
        for dx in range(step):
            for c in range(3):
                acc += x[dy:hh:step, dx:ww:step, c]
    g = acc.astype(np.float32) * np.float32(1 / (765 * step * step))
    contrast = float(g.std())
    if focus_at not in ("input", "blocks"):     # a range from a newer lineguard: not guessed
        raise ValueError(f"the photo check's range measures focus at {focus_at!r}, which this lineguard does not "
                         "know; update lineguard or retrain the model")
    focus = laplacian_focus(x) if focus_at == "input" else _lap_focus(g, contrast)
    return {"brightness": float(g.mean()), "contrast": contrast, "focus": focus}


# The fence is drawn on a scale where "far" means far for a measure bounded by 0 (and 1):
# brightness and contrast on the logit scale (contrast as a share of its most, 0.5: a photo
# half black, half white), focus on the log scale. On the measures' own scale the fence was
# additive: tiles spread over brightness 0.2-0.5 (interquartile range about 0.07-0.2) put the
# lower fence below 0, so a lamp-off photo (brightness 0.004) in the good folder was learnt
# into the range, which then reached 0 and passed every black photo on its score. On these
# scales distance is by ratio near the bounds: a photo a tenth as bright as most is far out
# however widely they spread (and one as near white), while a tight product (commutators,
# brightness 0.72-0.76) gets much the same fence as before.
_SCALE_SPAN = {"brightness": 1.0, "contrast": 0.5}
_SCALE_EPS = 1e-3        # a black (or white) photo's 0 (1) is taken as this near it: a finite scale


def _to_scale(m: str, v: np.ndarray) -> np.ndarray:
    """A measure on its fence's scale: logit of the share of its span, or log for focus."""
    if m == "focus":
        return np.log(np.maximum(v, _SCALE_EPS))
    p = np.clip(np.asarray(v, float) / _SCALE_SPAN[m], _SCALE_EPS, 1 - _SCALE_EPS)
    return np.log(p / (1 - p))


def _from_scale(m: str, t: float) -> float:
    if m == "focus":
        return float(np.exp(t))
    return float(_SCALE_SPAN[m] / (1 + np.exp(-t)))


def _floor(v: np.ndarray) -> float:
    """The least a margin (or fence) reaches past the good photos, brightness and contrast:
    a fifth of their median (a dark part's dimmed lamp moves brightness by little in absolute
    terms) and 0.02 (sensor noise), so near-identical photos get no speck-wide range."""
    return max(RELATIVE_FLOOR * float(np.median(v)), ABSOLUTE_FLOOR)


def _widened(m: str, lo: float, hi: float, k: float, floor: float) -> tuple[float, float]:
    """``lo``-``hi`` of brightness or contrast widened on each side by ``k`` times its width
    on the measure's bounded scale (:func:`_to_scale`), and at least by ``floor`` on its own
    scale. The one rule for the fence (quartiles, ``ODD_FENCE``) and the range's margin
    (1st-99th percentile, ``SPREAD_MARGIN``): the margin added on the measure's own scale
    took tiles spread over brightness 0.2-0.7 to a range of 0-1 (contrast 0-0.3), which
    passed every tile photographed with the lamp off, while the fence on the bounded scale
    called such a photo far out; near a bound the same spread now reaches by ratio, so the
    range stops short of black, white and flat."""
    t_lo, t_hi = float(_to_scale(m, lo)), float(_to_scale(m, hi))
    reach = k * (t_hi - t_lo)
    return min(_from_scale(m, t_lo - reach), lo - floor), max(_from_scale(m, t_hi + reach), hi + floor)


def _past_fence(values: dict[str, np.ndarray], fence: Optional[float]
                ) -> dict[int, list[tuple[str, int, str]]]:
    """:func:`odd_photos`'s photos as (measure, side: 0 below / 1 above, "most good photos
    q1-q3")."""
    n = len(values["brightness"])
    past: dict[int, list[tuple[str, int, str]]] = {}
    if fence is None or n < ODD_MIN_PHOTOS:
        return past
    for m in MEASURES:
        v = values[m]
        q1, q3 = (float(q) for q in np.quantile(v, [0.25, 0.75]))
        most = f"most good photos {q1:.3g}-{q3:.3g}"
        # and past the floors too (the fence never nearer the quartiles than the floors),
        # so near-identical photos do not make a speck of difference odd
        if m == "focus":
            t1, t3 = (float(q) for q in np.quantile(_to_scale(m, v), [0.25, 0.75]))
            lo, hi = min(_from_scale(m, t1 - fence * (t3 - t1)), FOCUS_LOW * q1), None
        else:
            lo, hi = _widened(m, q1, q3, fence, _floor(v))
        for i in np.flatnonzero(v < lo):
            past.setdefault(int(i), []).append((m, 0, most))
        if hi is not None:
            for i in np.flatnonzero(v > hi):
                past.setdefault(int(i), []).append((m, 1, most))
    if len(past) > max(2, ODD_MAX_SHARE * n):     # not a few odd photos: a variant of the product
        return {}
    return past


def odd_photos(values: dict[str, np.ndarray], fence: Optional[float] = ODD_FENCE) -> dict[int, list[str]]:
    """The good photos far outside the others (index -> what is off): past the quartiles
    by ``fence`` interquartile ranges, and at least by the range's own margin floors (so
    near-identical photos do not make a speck of difference odd); for focus only the
    blurred side, and only below FOCUS_LOW of the first quartile too. None when more than
    ODD_MAX_SHARE of the photos (at least 2) lie past the fence: a few odd photos are a
    lamp's flicker, many are a variant of the part. ``fence`` None: no fence. These are
    left out of the range; :func:`learn_range` calls odd only those its range doubts."""
    return {i: [f"{_WORDS[m][side]}: {m} {values[m][i]:.3g}, {most}" for m, side, most in what]
            for i, what in _past_fence(values, fence).items()}


def learn_range(inputs: np.ndarray, fence: Optional[float] = ODD_FENCE, focus_at: str = FOCUS_AT
                ) -> tuple[dict[str, Any], list[tuple[int, list[str]]]]:
    """:func:`learn_range_and_unusual` without which photos are the unusual ones (the
    range still says what is off about each, under ``unusual``)."""
    photo_range, odd, _ = learn_range_and_unusual(inputs, fence, focus_at)
    return photo_range, odd


def learn_range_and_unusual(inputs: np.ndarray, fence: Optional[float] = ODD_FENCE, focus_at: str = FOCUS_AT
                            ) -> tuple[dict[str, Any], list[tuple[int, list[str]]], list[tuple[int, list[str]]]]:
    """The range of the good photos' measures, with margins (``inputs``: N, H, W, 3), and
    the odd photos: [(index, what is off)], those past the fence (:func:`odd_photos`,
    left out of the range) that the range then doubts, each said as a part's message
    would say it (:func:`issues`) with where most good photos lie.

    Per measure: [lowest allowed, highest allowed (None: no limit), the good photos' 1st
    percentile, their 99th] (with few photos the percentiles are about the extremes);
    ``focus_at``, where focus was measured (see :func:`measure`), which the check of
    each photo then follows; ``n``, the photos it was learnt from; ``left_out``, the
    photos past the fence (odd or not); ``unusual`` (only where there are some), what
    is off about each photo past the fence that the range holds all the same: not odd,
    a part like it is judged on its score. Third, those unusual photos as [(index, what is
    off)], as the odd ones are: the range keeps what is off only (it goes into the model
    file, where a photo's index means nothing), so a caller that knows the photos' names
    names them from these (train's note said "a good photo far from most" and no name,
    leaving a person to find it among hundreds)."""
    got = [measure(x, focus_at) for x in inputs]
    values = {m: np.array([g[m] for g in got]) for m in MEASURES}
    past = _past_fence(values, fence)
    keep = np.ones(len(got), bool)
    keep[list(past)] = False
    # the fence's photos stay out of the range whatever follows: taken in, they widen it
    out: dict[str, Any] = {"n": int(keep.sum()), "left_out": len(past), "focus_at": focus_at}
    for m in ("brightness", "contrast"):
        v = values[m][keep]
        lo, hi = (float(q) for q in np.quantile(v, [0.01, 0.99]))
        # the margin on the fence's scale (_widened): added on the measure's own scale, half of
        # a wide spread reached past 0 and 1, and the range passed black and white photos
        low, high = _widened(m, lo, hi, SPREAD_MARGIN, _floor(v))
        out[m] = [round(max(0.0, low), 5), round(min(_SCALE_SPAN[m], high), 5), round(lo, 5), round(hi, 5)]
    lo_f, hi_f = (float(q) for q in np.quantile(values["focus"][keep], [0.01, 0.99]))
    out["focus"] = [round(FOCUS_LOW * lo_f, 5), None, round(lo_f, 5), round(hi_f, 5)]
    # odd: the check would doubt it, said in the check's own words (the same rule as a
    # part's, _doubts); else unusual, said gently, with the range that holds it
    odd: list[tuple[int, list[str]]] = []
    unusual: list[tuple[int, list[str]]] = []
    for i, what in sorted(past.items()):
        doubts = _doubts(got[i], out)
        if doubts:
            odd.append((i, [f"{d}, {_most(values[m])}" for m, d in doubts]))
        else:
            unusual.append((i, [f"{_GENTLE[m][side]}: {m} {values[m][i]:.3g}, {said}, allowed {_allowed(out[m])}"
                                for m, side, said in what]))
    if unusual:
        out["unusual"] = [what for _, what in unusual]
    return out, odd, unusual


def _most(v: np.ndarray) -> str:
    q1, q3 = (float(q) for q in np.quantile(v, [0.25, 0.75]))
    return f"most good photos {q1:.3g}-{q3:.3g}"


def _said(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}"


def _apart(v: float, bound: float) -> tuple[str, str]:
    """A photo's measure and the bound it crossed, each to 3 significant digits, or more
    where 3 would show the two the same ("contrast 0.145, allowed 0.00942-0.145" reads as
    a photo inside the range)."""
    for digits in (3, 4, 5, 6):
        a, b = _said(v, digits), _said(bound, digits)
        if a != b:
            break
    return a, b


def _allowed(r: list, lo: Optional[str] = None, hi: Optional[str] = None) -> str:
    """A measure's range as the check uses it (``r``: a range's [lowest allowed, highest
    allowed or None, ...]), its bounds as given (``lo``, ``hi``) or to 3 digits."""
    lo = lo if lo is not None else _said(r[0])
    if r[1] is None:
        return f"at least {lo}"
    return f"{lo}-{hi if hi is not None else _said(r[1])}"


def range_said(photo_range: dict[str, Any]) -> str:
    """The range a photo must be in to be judged on its score, as the check uses it (the
    good photos' spread with its margins, not the good photos' own extremes): e.g.
    "brightness 0.142-0.349, contrast 0.00942-0.145, focus at least 0.512". Training
    prints this and a doubted part's message names the same numbers; they once said two
    ranges (training the allowed one, a part the good photos' 1st-99th percentiles), and a
    part at 0.148 was "outside 0.0434-0.111" of a range printed as reaching 0.145."""
    return ", ".join(f"{m} {_allowed(photo_range[m])}" for m in MEASURES if photo_range.get(m))


def _doubts(got: dict[str, float], photo_range: dict[str, Any]) -> list[tuple[str, str]]:
    """What the check doubts about measures ``got`` against ``photo_range``: [(measure,
    what is off)], the one rule for a part (:func:`issues`) and for calling a good photo
    odd (:func:`learn_range`)."""
    found = []
    for m in MEASURES:
        r = photo_range.get(m)
        if not r:
            continue
        lo, hi = r[0], r[1]
        v = got[m]
        # the range the check used, as training printed it (range_said): the photo's value
        # and the bound it crossed with digits enough to tell them apart
        if v < lo:
            said, bound = _apart(v, lo)
            found.append((m, f"{_WORDS[m][0]}: {m} {said}, allowed {_allowed(r, lo=bound)}"))
        elif hi is not None and v > hi:
            said, bound = _apart(v, hi)
            found.append((m, f"{_WORDS[m][1]}: {m} {said}, allowed {_allowed(r, hi=bound)}"))
    return found


def issues(x: np.ndarray, photo_range: Optional[dict[str, Any]]) -> tuple[dict[str, float], list[str]]:
    """The measures of one model input, and what is off about it (empty: like the good
    photos, or a model without a range)."""
    if not photo_range:        # a model from before the check: nothing measured
        return {}, []
    got = measure(x, photo_range.get("focus_at", "blocks"))    # as it was learnt (older models: blocks)
    return got, [what for _, what in _doubts(got, photo_range)]


# -- the photo's shape: another camera or its settings ---------------------------------------
# The model keeps only its input size (224 x 224), so a photo of another shape is stretched
# (or padded) to it without a word: a 4:3 camera's photos (341 x 256 where the good photos
# were 256 x 256) scored all 144 good parts NG with no photo issue. The model keeps the
# width/height range of what it was shown of its good photos (``info["photo_aspect"]``: the
# inspected window, turned as the model sees it; absent in models from before: not checked),
# and a photo outside it by more than ASPECT_MARGIN is named like a dim lamp. Metadata of the
# model only: no detector's scoring and no exported graph sees it.
ASPECT_MARGIN = 0.03     # a photo's width/height this share past the good photos' range is another shape
_SHAPES = ((1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (5, 4), (4, 5), (16, 9), (9, 16), (16, 10), (10, 16), (2, 1),
           (1, 2))


def seen_size(geo: Any) -> tuple[int, int]:
    """(width, height) of what the model is shown of a photo (a preprocess Geometry): its
    inspected window, turned where the model input turns it."""
    _, _, w, h = geo.window
    return (int(h), int(w)) if geo.turned else (int(w), int(h))


def shape_said(w: int, h: int) -> str:
    """A width/height as a camera's shape is named: "4:3" within 1% of it, else "1.41:1"."""
    r = w / max(h, 1)
    for a, b in _SHAPES:
        if abs(r / (a / b) - 1) <= 0.01:
            return f"{a}:{b}"
    return f"{r:.2f}:1"


# Good photos of two shapes (half 128 x 128, half 256 x 192: two cameras, or one switched
# midway) were learnt as one range, 1.0-1.33, without a word: half the photos were
# stretched, and a camera switched from one shape to the other (or to 7:6 between them) was
# no longer named. Width/heights more than SHAPE_GAP apart (sorted, each from the one
# before) are now shapes of their own, kept apart (``shapes``), and train says so. Under it
# one range: crops of a region a few % apart, and 4:3 beside 5:4 (6.7%) as before.
SHAPE_GAP = 0.10
# ... but only where a camera's fixed frame is involved (learn_aspect). Photos cropped at
# many sizes vary continuously, and among a few dozen of them gaps over 10% come by chance:
# 50 magnetic-tile crops (width/height 0.4-2.5) were cut into 4 "shapes" and 10% of the good
# test tiles, falling between them, went to REVIEW as "another camera". Elsewhere a gap parts
# two shapes only when it is past WIDE_SHAPE_GAP and past what chance leaves between that
# many photos spread evenly (log scale) over their width/heights once in SHAPE_CHANCE.
# Random draws of 30, 50, 100 magnetic-tile crops (20 each) were split in none (every one
# before), while a camera of a fixed 2:1 frame beside crops of 0.9-1.1 is still a shape of
# its own (one of 4:3 beside them, 21% off, is not: within the crops' one range).
WIDE_SHAPE_GAP = 0.5
SHAPE_CHANCE = 0.001


def _most_common(sizes: list[tuple[int, int]]) -> list[int]:
    counts: dict[tuple[int, int], int] = {}
    for wh in sizes:
        counts[tuple(wh)] = counts.get(tuple(wh), 0) + 1
    common = max(counts, key=lambda k: counts[k])
    return [int(common[0]), int(common[1])]


def _split_at(ratios: list[float], order: list[int], gap: float) -> list[list[int]]:
    """``order`` (indices of ``ratios``, ascending) cut wherever a width/height is more
    than ``gap`` past the one before."""
    sets = [[order[0]]]
    for i in order[1:]:
        if ratios[i] > ratios[sets[-1][-1]] * (1 + gap):
            sets.append([i])
        else:
            sets[-1].append(i)
    return sets


def _tight(group: Sequence[float]) -> bool:
    """A camera's fixed frame (or crops of one region): width/heights (``group``, ascending)
    within SHAPE_GAP, a twentieth at each end aside: two crops beside a camera's 20 photos
    made its frame "wide", and so the set one range."""
    k = len(group) // 20
    return group[len(group) - 1 - k] <= group[k] * (1 + SHAPE_GAP) + 1e-12


def chance_gap(n: int, lo: float, hi: float) -> float:
    """The widest gap (a share, as SHAPE_GAP) that ``n`` width/heights spread evenly on a
    log scale over ``lo``-``hi`` leave by chance once in SHAPE_CHANCE: the largest of n - 1
    uniform spacings passes a share x of the span with chance at most (n - 1)(1 - x)^(n - 2)."""
    if n < 3 or hi <= lo:
        return 0.0
    x = 1 - (SHAPE_CHANCE / (n - 1)) ** (1 / (n - 2))
    return math.exp(x * math.log(hi / lo)) - 1


def learn_aspect(sizes: list[tuple[int, int]], names: Optional[list[str]] = None) -> Optional[dict[str, Any]]:
    """The good photos' shapes (``sizes``: (width, height) each, :func:`seen_size`):
    ``range`` [lowest, highest] width/height, ``size`` the most common [width, height]
    (what a part's message names); with photos of several shapes (SHAPE_GAP between tight
    shapes; WIDE_SHAPE_GAP and chance where one is wide) also ``shapes``, one {range, size,
    n, photos} each, narrowest first: a photo is then of the good photos' shape when it is
    of one of them. ``photos``: every one of ``names`` in a shape other than the largest
    (the photos train asks to move out: all of them, not a few), a few of the largest's.
    None without photos."""
    if not sizes:
        return None
    ratios = [w / max(h, 1) for w, h in sizes]
    learnt: dict[str, Any] = {"range": [round(min(ratios), 5), round(max(ratios), 5)], "size": _most_common(sizes)}
    order = sorted(range(len(sizes)), key=lambda i: ratios[i])
    sets = _split_at(ratios, order, SHAPE_GAP)
    # Each gap over SHAPE_GAP parts two shapes where both sides are tight and one of them is
    # a camera's frame (it holds a quarter of the photos, at least 5): two cameras' frames, or a
    # few photos of another camera beside one. Elsewhere the photos vary continuously (crops),
    # and only a gap chance hardly leaves (WIDE_SHAPE_GAP, chance_gap) parts them. A few crops
    # alike in the sparse ends of a spread are no camera (kept apart, they made holes), and two
    # crops beside a camera's 20 photos do not make its frame wide (_tight sets a twentieth
    # aside: the set was one range, a third camera's shape between the two no longer named).
    least = max(5, math.ceil(0.25 * len(ratios)))
    tight = [_tight([ratios[i] for i in st]) for st in sets]
    frame = [t and len(st) >= least for t, st in zip(tight, sets)]
    wide = max(WIDE_SHAPE_GAP, chance_gap(len(ratios), min(ratios), max(ratios)))
    merged = [list(sets[0])]
    for k, (left, right) in enumerate(zip(sets, sets[1:])):
        if (tight[k] and tight[k + 1] and (frame[k] or frame[k + 1])) \
                or ratios[right[0]] > ratios[left[-1]] * (1 + wide):
            merged.append(list(right))
        else:
            merged[-1].extend(right)
    sets = merged
    if len(sets) > 1:       # one shape: the range alone, as models from before keep it
        main = max(range(len(sets)), key=lambda k: len(sets[k]))
        learnt["shapes"] = [{"range": [round(ratios[s[0]], 5), round(ratios[s[-1]], 5)],
                             "size": _most_common([sizes[i] for i in s]), "n": len(s),
                             "photos": ([str(names[i]) for i in sorted(s)[:5 if k == main else None]]
                                        if names else [])} for k, s in enumerate(sets)]
    return learnt


def _wide(shape: dict[str, Any]) -> bool:
    """A shape of crops (width/heights more than 1% apart), not a camera's fixed frame."""
    lo, hi = shape["range"]
    return hi > lo * 1.01


def shape_group_said(shape: dict[str, Any], short: bool = False) -> str:
    """One of the good photos' shapes as a person reads it: a fixed frame by its most common
    size, "256 x 192 (4:3)" (``short``: "4:3"); crops of many shapes by their range,
    "width/height 0.60-1.03" (their most common size named a group of 0.60 to 1.03 "0.60:1")."""
    if _wide(shape):
        lo, hi = shape["range"]
        return f"width/height {lo:.2f}-{hi:.2f}"
    w, h = shape["size"]
    return shape_said(w, h) if short else f"{w} x {h} ({shape_said(w, h)})"


def shapes_said(photo_aspect: Optional[dict[str, Any]]) -> str:
    """The good photos' shapes as train names them, e.g. "1:1 x20 (128 x 128), 4:3 x20 (256 x
    192)", a wide one "x34 of width/height 0.60-1.03"; "" for one shape (or a model from before)."""
    return ", ".join(f"x{s['n']} of {shape_group_said(s)}" if _wide(s) else
                     f"{shape_said(*s['size'])} x{s['n']} ({s['size'][0]} x {s['size'][1]})"
                     for s in (photo_aspect or {}).get("shapes") or [])


def shape_doubted(w: int, h: int, photo_aspect: Optional[dict[str, Any]]) -> bool:
    """Whether what the model is shown of a photo, ``w`` x ``h`` (:func:`seen_size`), is of
    another shape than the good photos' (False for a model from before their shape was kept)."""
    if not photo_aspect or not photo_aspect.get("range"):
        return False
    lo, hi = photo_aspect["range"]
    r = w / max(h, 1)
    shapes = photo_aspect.get("shapes") or []        # several: of one of them, not between them
    return not any(a / (1 + ASPECT_MARGIN) <= r <= b * (1 + ASPECT_MARGIN)
                   for a, b in ([s["range"] for s in shapes] or [(lo, hi)]))


def aspect_issues(geo: Any, photo_aspect: Optional[dict[str, Any]]) -> list[str]:
    """What is off about a photo's shape (a preprocess Geometry) against the good photos'
    (empty: within their range and ASPECT_MARGIN, or a model from before it was kept), e.g.
    "photo 341 x 256 (4:3); the model learnt from 256 x 256 (1:1): another camera or its
    settings changed"."""
    w, h = seen_size(geo)
    if not shape_doubted(w, h, photo_aspect):
        return []
    lo, hi = photo_aspect["range"]
    shapes = photo_aspect.get("shapes") or []
    ph, pw = geo.photo_hw
    if (w, h) == (pw, ph):
        photo = f"photo {w} x {h}"
    elif geo.turned and (h, w) == (pw, ph):
        photo = f"photo {pw} x {ph}, turned {w} x {h}"
    else:                # a region of interest cut from it
        photo = f"photo {pw} x {ph}, its window {w} x {h}"
    if shapes:
        return [f"{photo} ({shape_said(w, h)}); the model learnt from "
                + " and ".join(shape_group_said(s) for s in shapes)
                + ": another camera or its settings changed"]
    tw, th = photo_aspect.get("size") or (0, 0)
    learnt = shape_said(tw, th) if tw and th else f"{lo:.2f}:1"
    if tw and th and abs(hi / lo - 1) > 0.01:        # the good photos were of several shapes
        learnt += f", width/height {lo:.2f}-{hi:.2f}"
    return [f"{photo} ({shape_said(w, h)}); the model learnt from "
            + (f"{tw} x {th} " if tw and th else "") + f"({learnt}): another camera or its settings changed"]


# -- colour or grey: a camera switched to mono ---------------------------------------------
# A model learnt from colour photos and shown a greyscale one (a camera switched to mono, a
# grey PNG, a 2-D array) sees a photo unlike every good one: its score says little (on the
# walk's fast model 30 of 30 good grey photos scored NG, with no word of why). The model
# keeps whether its good photos were colour (``info["photo_colour"]``: "colour", "grey" or
# "mixed"; absent in models from before: "unknown", not checked), and a grey photo shown to
# a colour model is named like a dim lamp: the part goes to REVIEW, never OK on its score.
# A single-channel photo reaches the model as three equal channels, so the check needs
# nothing from the decoder, and also sees an RGB file whose three channels are one grey.
GREY_SPREAD = 0.1        # a photo whose channels differ by at most this (mean, 0-255 levels) is grey
COLOUR_SPREAD = 0.5      # the good photos are colour when every one differs by more (JPEG's rounding of a
#                          grey photo stays below this; a colour camera's noise alone is above it)
_SPREAD_STEP = 4         # measured on every 4th row and column: ~0.05 ms a 224 px input


def colour_spread(x: np.ndarray) -> float:
    """How far the three channels of a model input (H, W, 3) uint8 differ: the mean over
    pixels of the largest channel minus the smallest, in 0-255 levels (0: a grey photo)."""
    if x.ndim != 3 or x.shape[2] < 3:
        return 0.0
    s = x[::_SPREAD_STEP, ::_SPREAD_STEP, :3]
    return float(np.mean(s.max(axis=2).astype(np.int16) - s.min(axis=2)))


def learn_colour(inputs: np.ndarray, keep: Optional[np.ndarray] = None) -> str:
    """Whether the good photos (N, H, W, 3) were colour: "colour", "grey", else "mixed"
    (not checked); :func:`colour_learnt`'s ``colour``."""
    return colour_learnt(inputs, keep)["colour"]


def _colour_kind(spread: float) -> str:
    return "colour" if spread > COLOUR_SPREAD else "grey" if spread <= GREY_SPREAD else "between"


def colour_learnt(inputs: np.ndarray, keep: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Whether the good photos (N, H, W, 3) were colour, and from which: ``colour`` is
    "colour" (every photo learnt from), "grey" (every one), else "mixed" (not checked);
    ``kept``, a mask of the photos it was learnt from; ``odd``, [(index, what is off)] of
    the photos left out for their colour; ``counts``, how many of the photos looked at were
    colour, grey and between (only where "mixed": why the check is off).

    ``keep``: the photos to look at, those the photo check's range learnt from (its odd and
    unusual photos left out): a black frame in the good folder (a lamp off, a trigger too
    early) is no camera's colour, and taken in it turned a colour model's grey and cast
    checks off with no word. As the range's odd photos: of those looked at, a few (at most
    ``ODD_MAX_SHARE``, at least 2; with ``ODD_MIN_PHOTOS`` or more) unlike the others (a
    grey photo among colour ones, a colour one among grey ones) are left out too; more are
    photos of two cameras or settings, which no one colour check holds."""
    spreads = np.array([colour_spread(a) for a in inputs], float)
    looked = np.ones(len(spreads), bool) if keep is None else np.asarray(keep, bool).copy()
    kinds = [_colour_kind(v) for v in spreads]
    counts = {k: sum(1 for i in np.flatnonzero(looked) if kinds[i] == k) for k in ("colour", "grey", "between")}
    n = int(looked.sum())
    for colour in ("colour", "grey"):
        unlike = looked & np.array([k != colour for k in kinds], bool)
        few = n >= ODD_MIN_PHOTOS and unlike.sum() <= max(2, ODD_MAX_SHARE * n)
        if n and (not unlike.any() or few) and counts[colour]:
            odd = [(int(i), [_colour_odd_said(float(spreads[i]), colour)]) for i in np.flatnonzero(unlike)]
            return {"colour": colour, "kept": looked & ~unlike, "odd": odd}
    return {"colour": "mixed", "kept": looked, "odd": [], "counts": counts}


def _colour_odd_said(spread: float, colour: str) -> str:
    """What is off about a good photo left out of learning the colour, in the check's words."""
    if colour == "colour":
        grey = "greyscale photo" if spread <= GREY_SPREAD else "nearly grey photo"
        return f"{grey} among colour ones: colour spread {spread:.2g}, the others above {COLOUR_SPREAD:g}"
    kind = "colour photo" if spread > COLOUR_SPREAD else "nearly grey photo"
    return f"{kind} among greyscale ones: colour spread {spread:.2g}, the others at most {GREY_SPREAD:g}"


_KIND_SAID = {"colour": "colour", "grey": "greyscale", "between": "nearly grey"}


def colour_off_said(counts: dict[str, int]) -> str:
    """Why a model's colour check is off ("mixed": :func:`colour_learnt`'s ``counts``), and
    what turns it on, for train to say: a check off with no word let a greyscale or tinted
    photo pass as OK on its score.

    Photos nearly grey (colour spread between ``GREY_SPREAD`` and ``COLOUR_SPREAD``: a grey
    photo saved as JPEG reaches 0.5), all or all but a few clearly colour ones, are said so:
    they are neither colour nor greyscale, not two cameras (20 nearly grey photos of one
    camera were said to be "two cameras or settings"). They are not learnt "grey": a grey
    model names a photo above ``COLOUR_SPREAD`` a colour photo, and learnt from photos that
    reach it already, the same camera's next photo a little past it would be doubted as a
    colour photo, a false reject blaming the camera."""
    n = sum(counts.values())
    seen = " and ".join(f"{counts[k]} {_KIND_SAID[k]}" for k in ("colour", "grey", "between") if counts.get(k))
    few = max(2, int(ODD_MAX_SHARE * n)) if n >= ODD_MIN_PHOTOS else 0      # as colour_learnt leaves out
    if counts.get("between") and counts.get("colour", 0) <= few:
        return (f"colour check off: of the {n} good photos it looked at, {seen}: the photos are nearly grey (colour "
                f"spread between {GREY_SPREAD:g} and {COLOUR_SPREAD:g}), neither clearly colour nor greyscale, so "
                "neither check fits them; a greyscale or tinted part is judged on its score alone. To turn it on, "
                "save a mono camera's photos as greyscale (PNG or one channel: a JPEG's colour rounding makes a grey "
                "photo nearly grey), or check a colour camera's colour (saturation, white balance) is on")
    why = (f"too few good photos ({n}; {ODD_MIN_PHOTOS} or more) to leave one out as odd" if n < ODD_MIN_PHOTOS else
           f"more than a few unlike the rest (at most {max(2, int(ODD_MAX_SHARE * n))} are left out as odd), so "
           "two cameras or settings")
    return (f"colour check off: of the {n} good photos it looked at, {seen}: {why}; a greyscale or tinted part is "
            "judged on its score alone. To turn it on, train on photos of one camera setting, all colour or all "
            "greyscale")


def colour_issues(x: np.ndarray, photo_colour: Optional[str],
                  photo_cast: Optional[dict[str, Any]] = None) -> list[str]:
    """What is off about a photo's colour against the good photos' (empty: nothing, or a
    model that does not know whether its photos were colour, "mixed" or "unknown"); for a
    colour model with a colour balance (``photo_cast``, :func:`learn_cast`), a colour photo
    outside it too (:func:`cast_issues`; a grey photo is named grey, not as a cast as well).

    Both ways: a grey photo shown to a colour model, and a clearly coloured photo (channels
    differing by more than ``COLOUR_SPREAD``, as colour photos do) shown to a model learnt
    from grey ones, e.g. a colour camera put in place of a mono one: a tinted copy of 15 good
    grey commutators was judged NG 14 times with no word of why. A grey photo stored as RGB
    (three equal channels) or with JPEG's rounding stays below ``COLOUR_SPREAD``."""
    if photo_colour == "colour":
        spread = colour_spread(x)
        if spread <= GREY_SPREAD:
            return ["greyscale photo: the model learnt from colour photos (camera switched to mono, or a grey "
                    f"image format?); colour spread {spread:.2g}, good photos above {COLOUR_SPREAD:g}"]
        return cast_issues(x, photo_cast)
    elif photo_colour == "grey":
        spread = colour_spread(x)
        if spread > COLOUR_SPREAD:
            return ["colour photo: the model learnt from greyscale photos (a colour camera in place of a mono "
                    f"one, or a tinted lamp?); colour spread {spread:.2g}, good photos at most {GREY_SPREAD:g}"]
    return []


# -- colour cast: a lamp of another colour, a tinted variant ---------------------------------
# A colour model's photos can be colour all the same and unlike the good ones: a warm LED put
# in place of a white one, a camera's white balance changed, a tinted variant of the product
# under this recipe. Brightness, contrast and focus stay in range and colour_issues sees
# colour where colour was learnt, so every part went NG with nothing said. The model keeps
# the good photos' colour balance (``info["photo_cast"]``; only for colour models, only with
# a photo check; absent in models from before: not checked) on two axes of the photo's mean
# colour (every 4th pixel): ``red_blue``, its red over its blue (a warmer lamp raises it, a
# cooler one lowers it), and ``green``, its green over the geometric mean of red and blue
# (green against magenta). Ratios of the mean, since a lamp's colour or a white balance
# multiplies each channel by a gain: the ratio moves by those gains however much of the
# photo is bright foil or dark coating, while a defect moves it only by the share of the
# mean it changes. Measured in log units (a ratio's change is the same up or down).
CAST_AXES = ("red_blue", "green")
CAST_MARGIN = SPREAD_MARGIN   # past the good photos' 1st-99th percentile by this share of their spread
# and at least this on each side, in log units (a channel's gain 8% off its partner's). On the
# synthetic line (224 px) the good photos' red/blue spread (1st-99th percentile) was 0.017 and
# no defect photo (stains, missing coating) lay more than 0.015 from the good photos' mean,
# while the tint of another variant (red x1.15, blue x0.87) moves red/blue by 0.28, a milder
# one (x1.07, x0.94) by 0.13, a warm-white LED for a cool-white one by more still: 0.08 flags
# all of those and no good or defect part (learnt from 20 to 200 good photos), and leaves room
# for what a lamp of the same colour bin or a camera's noise moves (a few %; at 0.06 a shift
# of red x1.03, blue x0.97 was doubted on up to a quarter of the parts). Measured on
# `lineguard synth` at 224 px: 200 good photos to learn from, 200 good and 180 defect to test.
CAST_FLOOR = 0.08
_CAST_WORDS = {"red_blue": ("bluer (cooler)", "warmer (redder, yellower)"),
               "green": ("more magenta (pinker)", "greener")}
_CAST_SAID = {"red_blue": "red/blue", "green": "green/(red, blue)"}


def colour_balance(x: np.ndarray) -> dict[str, float]:
    """The colour balance of a model input (H, W, 3) uint8 on :data:`CAST_AXES`, as log
    ratios of its mean channels (every 4th row and column; 0-255 levels plus 1, so a
    channel at black stays finite). The channel sums as one float32 dot product (exact for
    inputs up to ~1000 px a side): numpy's strided integer sum took about three times as long."""
    s = x[::_SPREAD_STEP, ::_SPREAD_STEP, :3].reshape(-1, 3).astype(np.float32)
    n = max(1, len(s))
    r, g, b = (np.ones(n, np.float32) @ s).tolist()
    lr, lg, lb = (math.log(c / n + 1.0) for c in (r, g, b))
    return {"red_blue": lr - lb, "green": lg - 0.5 * (lr + lb)}


def learn_cast(inputs: np.ndarray, fence: Optional[float] = ODD_FENCE, keep: Optional[np.ndarray] = None
               ) -> Optional[dict[str, Any]]:
    """The good photos' colour balance (``inputs``: N, H, W, 3) per axis of
    :data:`CAST_AXES` as ratios: [lowest allowed, highest allowed, their 1st percentile,
    their 99th]; ``n`` the photos it was learnt from, ``left_out`` those left out of it.
    None unless the good photos are colour (:func:`learn_colour`): a grey model already
    names any colour photo. Learnt from the photos the colour was learnt from
    (:func:`colour_learnt`: of ``keep``, the photo check's range's, those of the model's
    colour: a black or grey frame is no lamp's colour). As the range's (:func:`learn_range`):
    photos past the fence (``ODD_FENCE`` IQRs past the quartiles, and past the floor) are
    left out, only a few (more are a variant the band must hold), and the margin has a
    floor, so near-identical photos get no speck-wide band."""
    if not len(inputs):
        return None
    learnt = colour_learnt(inputs, keep)
    if learnt["colour"] != "colour":
        return None
    idx = np.flatnonzero(learnt["kept"])
    got = [colour_balance(inputs[i]) for i in idx]
    values = {a: np.array([g[a] for g in got]) for a in CAST_AXES}
    keep_cast = np.ones(len(got), bool)
    if fence is not None and len(got) >= ODD_MIN_PHOTOS:
        past = np.zeros(len(got), bool)
        for a in CAST_AXES:
            q1, q3 = np.quantile(values[a], [0.25, 0.75])
            reach = max(fence * (q3 - q1), CAST_FLOOR)
            past |= (values[a] < q1 - reach) | (values[a] > q3 + reach)
        if past.sum() <= max(2, ODD_MAX_SHARE * len(got)):     # more: a variant of the product
            keep_cast = ~past
    out: dict[str, Any] = {"n": int(keep_cast.sum()), "left_out": int(len(inputs) - keep_cast.sum())}
    for a in CAST_AXES:
        lo, hi = (float(q) for q in np.quantile(values[a][keep_cast], [0.01, 0.99]))
        reach = max(CAST_MARGIN * (hi - lo), CAST_FLOOR)
        out[a] = [round(float(np.exp(v)), 5) for v in (lo - reach, hi + reach, lo, hi)]
    return out


def cast_said(photo_cast: dict[str, Any]) -> str:
    """The colour balance a photo must have, as a doubted part's message names it: e.g.
    "red/blue 0.71-0.83, green/(red, blue) 0.96-1.09"."""
    return ", ".join(f"{_CAST_SAID[a]} {_allowed(photo_cast[a])}" for a in CAST_AXES if photo_cast.get(a))


def cast_issues(x: np.ndarray, photo_cast: Optional[dict[str, Any]]) -> list[str]:
    """What is off about a photo's colour balance against the good photos' (empty: inside
    their band, or a model without one), e.g. "colour cast: photo warmer (redder, yellower)
    than the good photos: red/blue 0.99, allowed 0.71-0.83; the lamp's colour changed (a warm
    LED?), the camera's white balance, or another product variant"."""
    if not photo_cast:
        return []
    got = colour_balance(x)
    found = []
    for a in CAST_AXES:
        r = photo_cast.get(a)
        if not r:
            continue
        v = float(np.exp(got[a]))
        side = 0 if v < r[0] else 1 if v > r[1] else None
        if side is None:
            continue
        said, bound = _apart(v, r[side])
        allowed = _allowed(r, lo=bound) if side == 0 else _allowed(r, hi=bound)
        found.append(f"colour cast: photo {_CAST_WORDS[a][side]} than the good photos: {_CAST_SAID[a]} {said}, "
                     f"allowed {allowed}; the lamp's colour changed (a warm or cool LED?), the camera's white "
                     "balance, or another product variant")
    return found


# -- what to do about it: advice per kind of issue, for the photo alarm -----------------------
# One sentence for every issue ("check the lamp, the lens and the camera's settings") sent the
# technician of a defocused lens to the lamp first. Each kind of issue has its likely causes,
# in the order a technician checks them; the photo alarm gives the advice for the kinds the
# last doubted photos had, most frequent first.
# A camera replaced at night: "learn the photo range again" alone left the technician with a
# model file on a PC, not on the station, and the shift's red rabbit, put through with the old
# camera, still standing as the proof; the steps end at the station and the test parts.
_RECALIBRATE = ("if a lamp or camera was replaced and good parts now look different for good, learn the photo range "
                "again from good parts taken since (lineguard recalibrate MODEL GOOD_DIR --photo-range -o OUT), "
                "not to quiet a fault; upload OUT as the product's next version (Models page) and put the test parts "
                "through before production (docs/camera-change.md)")
ADVICE = {
    "too dark": "too dark: check that the lamp is on, not dimmed or failing (flicker, an ageing LED) and not moved, "
                "then the camera's exposure time, gain and aperture; " + _RECALIBRATE,
    "too bright": "too bright: check the camera's exposure time, gain and aperture, a new or stronger lamp, and "
                  "daylight or another light reaching the part; " + _RECALIBRATE,
    "blurred": "blurred: the lens is out of focus: check the focus ring (turn it back and lock it) and that the "
               "lens and camera are tight and not knocked; clean the lens and the camera's window; check that the "
               "part sits at its usual distance (fixture, conveyor height)",
    "too flat": "low contrast: clean the lens and the camera's window (dust, oil mist, condensation), check the lamp "
                "(weaker, diffuser moved) and glare from other light",
    "too much contrast": "too much contrast: check the lamp's diffuser and position (harsher light), direct "
                         "sunlight, and the camera's gain",
    "greyscale photo": "greyscale photos: the camera was switched to mono (its pixel format) or the image format "
                       "changed: set it back to colour",
    "photo shape": "another photo shape: the camera, its resolution or its region of interest (ROI, binning) "
                   "changed: set them back as the model's photos were taken; a new camera of another shape needs a model "
                   "learnt from its photos: photograph 30 or more good parts with it, train on them (lineguard train "
                   "GOOD_DIR -o OUT), upload OUT on the Models page and put the test parts through before production "
                   "(docs/camera-change.md)",
    "colour photo": "colour photos: a colour camera in place of the mono one, or its pixel format changed, or a "
                    "tinted lamp; or another product variant under this product's recipe: check the recipe",
    "colour cast": "colour cast: check the lamp's colour (a replaced or ageing LED, warm white for cool white, a "
                   "coloured filter or daylight reaching the part), then the camera's white balance (set to auto, or "
                   "changed) and its pixel format (red and blue swapped: BGR for RGB); or another product variant "
                   "(a tinted batch) under this product's recipe: check the recipe; " + _RECALIBRATE,
}


def issue_kind(issue: str) -> Optional[str]:
    """The kind of a photo issue (a key of :data:`ADVICE`), from its words: "too dark",
    "blurred", ... (None: not a kind known here, e.g. from a newer lineguard)."""
    if issue.startswith("photo "):       # aspect_issues: "photo 341 x 256 (4:3); the model learnt from ..."
        return "photo shape"
    head = issue.split(":", 1)[0].strip()
    for kind in ADVICE:
        if head.startswith(kind):
            return kind
    return None


def advice(issues: list[str]) -> list[str]:
    """What to check for ``issues`` (the last doubted photos' photo_issues, each as the
    check words it), one sentence per kind, the kind met most often first (a tie: the one
    first in :data:`ADVICE`: a lamp's dark and flat photos start at the lamp, a lens's blurred
    and flat ones at the focus); nothing for issues of no known kind."""
    kinds = [k for k in (issue_kind(i) for i in issues) if k is not None]
    order = sorted(set(kinds), key=lambda k: (-kinds.count(k), list(ADVICE).index(k)))
    return [ADVICE[k] for k in order]
