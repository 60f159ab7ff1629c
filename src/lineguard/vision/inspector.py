"""The Inspector: one object that learns a part from good images and judges new ones.

    insp = Inspector.fit("parts/good/", detector="patchcore", false_reject_rate=0.01)
    result = insp.inspect("parts/new/0001.png")
    insp.save("cell.lgm"); Inspector.load("cell.lgm")

It glues the layer-1 pieces together: image loading, region of interest and resize
policy, a detector, the calibrated thresholds, regions, and the model file.
"""
from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from . import bundle, openers
from . import photo_check as photo_check_module
from .atomic import atomic_write_bytes
from .calibration import (PARTS_NOT_LEARNT, check_review_rate, conformal_threshold, pixel_threshold_from_good,
                          summarize, too_few_parts_note)
from .errors import BundleError, DatasetError, ImageError
from .imageio import (ImageLike, Photo, SensorBits, check_sensor_bits, deep_max, list_images, sensor_bits_for,
                      shown_hw)
from .preprocess import Geometry, Preprocess
from .regions import find_regions, outline_peak, to_photo
from .result import InspectionResult, Verdict

if TYPE_CHECKING:  # the detectors need torch; the edge install runs exported models without it
    from .detectors import Detector

GoodImages = Union[str, os.PathLike, Sequence[ImageLike]]
# progress(stage, done, total): stages are "load", "features", then the detector's own
# (PatchCore: "coreset", "cross-scoring"; " at 0.7x" after them for an extra input size),
# and "calibrate"
Progress = Optional[Callable[[str, int, int], None]]


def _resolve(images: GoodImages) -> list[ImageLike]:
    if isinstance(images, (str, os.PathLike)):
        p = Path(images)
        if p.is_dir() or not p.exists():
            return list(list_images(p))
        return [p]
    items = list(images)
    out: list[ImageLike] = []
    for it in items:
        if isinstance(it, (str, os.PathLike)) and Path(it).is_dir():
            out.extend(list_images(it))
        else:
            out.append(it)
    return out


def _load_all(items: Sequence[ImageLike], progress: Progress, pre: Preprocess, stage: str = "load",
              loaded: Optional[list[int]] = None, sizes: Optional[list[tuple[int, int]]] = None,
              geometries: Optional[list[Geometry]] = None) -> tuple[list[np.ndarray], list[ImageError]]:
    """Load images as ``pre``'s model inputs, keeping going past unreadable ones; each is
    shrunk to its input as it loads (a large JPEG decoded at reduced scale) so a large
    training folder is never held at full resolution. ``loaded``, when given, receives
    the index of every item that loaded; ``sizes``, what the model was shown of each
    (photo_check.seen_size: the photo check's shape); ``geometries``, each one's Geometry
    (what :func:`photo_doubts` judges its shape by).

    A photo far smaller than the others (a quarter of their median side or less, e.g. an
    8x8 file among 1024x1024 photos) is no photo of the part: it is refused like an
    unreadable one. Blown up to the model's input it scored far above every good part and,
    with fewer than 99 parts, set the threshold alone (every test defect shipped)."""
    imgs, bad, sides, kept, shown, geos = [], [], [], [], [], []
    for i, it in enumerate(items):
        try:
            x, geometry = pre.load(it)
            imgs.append(x)
            sides.append(min(geometry.photo_hw))
            shown.append(photo_check_module.seen_size(geometry))
            geos.append(geometry)
            kept.append(i)
        except ImageError as exc:
            bad.append(exc)
        if progress:
            progress(stage, i + 1, len(items))
    if len(sides) >= 4:
        typical = float(np.median(sides))
        small = {j for j, side in enumerate(sides) if side * TOO_SMALL_SIDE <= typical}
        for j in sorted(small):
            item = items[kept[j]]
            name = str(item) if isinstance(item, (str, os.PathLike)) else f"image #{kept[j]}"
            bad.append(ImageError(name, f"{sides[j]} px on its short side where the other photos have about "
                                        f"{typical:.0f}", TOO_SMALL_HINT))
        imgs = [x for j, x in enumerate(imgs) if j not in small]
        kept = [i for j, i in enumerate(kept) if j not in small]
        shown = [wh for j, wh in enumerate(shown) if j not in small]
        geos = [g for j, g in enumerate(geos) if j not in small]
    if loaded is not None:
        loaded.extend(kept)
    if sizes is not None:
        sizes.extend(shown)
    if geometries is not None:
        geometries.extend(geos)
    return imgs, bad


def _some_unreadable(bad: Sequence[ImageError], few: int = 3) -> str:
    """The first few unreadable photos, each with why, then how many more: a refusal that
    said "got 0 (40 unreadable)" left the person to find out which and why alone."""
    said = "; ".join(str(e) for e in bad[:few])
    return said + (f"; and {len(bad) - few} more" if len(bad) > few else "")


def _names(items: Sequence[Any], loaded: Sequence[int]) -> list[str]:
    """How records and messages name the loaded photos: a file's path, else ``#index``."""
    return [str(items[i]) if isinstance(items[i], (str, os.PathLike)) else f"#{i}" for i in loaded]


def _far_out(scores: np.ndarray, names: Sequence[str]) -> tuple[float, np.ndarray, list[dict[str, Any]]]:
    """Good photos scoring far above the others (Tukey's far-out rule, Q3 + 3 IQR: no
    distribution assumed): the cut, which ones, and them named, highest score first, for a
    person to look at (train and recalibrate alike)."""
    q1, q3 = np.quantile(scores, [0.25, 0.75])
    cut = float(q3 + 3 * (q3 - q1))
    far = scores > cut
    named = [{"image": names[int(j)], "score": round(float(scores[j]), 6)} for j in np.argsort(-scores) if far[j]]
    return cut, far, named


# a photo whose short side is this many times smaller than the folder's median is refused
TOO_SMALL_SIDE = 4
# what is said of it: read, but left out for its size (not unreadable)
TOO_SMALL_HINT = "not a photo of the part at the line's camera: left out"


# What the record says about the parts its thresholds came from: the guarantee holds only
# for good parts the model did not learn from (training parts score too low).
# info key: the prints of the photos a model learned from (see photo_prints)
LEARNT_PHOTOS = "learnt_photos"
# info key (and recalibrate's record's): the good photos far from most that the photo
# check's range holds all the same, [{"image": name, "what": [what is off, ...]}]
# (vision.photo_check.learn_range_and_unusual); absent in models from before
PHOTO_UNUSUAL = "photo_unusual"
# info keys: the good photos left out of learning whether the photos were colour for their
# colour (a grey photo among colour ones), [{"image": name, "issues": [what is off]}]; and,
# where the colour check is off ("mixed"), why, as a sentence (None where it is on)
# (vision.photo_check.colour_learnt); absent in models from before
PHOTO_COLOUR_ODD = "photo_colour_odd"
PHOTO_COLOUR_OFF = "photo_colour_off"


def _colour_learnt(x: np.ndarray, left_out: Sequence[int], names: Sequence[str], cast: bool) -> dict[str, Any]:
    """The info's colour keys (``photo_colour``, ``photo_cast`` where ``cast``, and the two
    above), learnt from the photos the photo check's range learnt from (``left_out``: the
    indices of its odd and unusual photos): one black frame among 40 colour photos had
    turned the grey and cast checks off with no word, and a grey or tinted part then passed
    as OK on its score."""
    keep = np.ones(len(x), bool)
    keep[list(left_out)] = False
    learnt = photo_check_module.colour_learnt(x, keep)
    return {"photo_colour": learnt["colour"],
            "photo_cast": photo_check_module.learn_cast(x, keep=keep) if cast else None,
            PHOTO_COLOUR_ODD: [{"image": names[i], "issues": what} for i, what in learnt["odd"]],
            PHOTO_COLOUR_OFF: photo_check_module.colour_off_said(learnt["counts"]) if "counts" in learnt else None}


def photo_doubts(x: np.ndarray, geo: Geometry, info: dict[str, Any]) -> list[str]:
    """What the photo check doubts about one model input ``x`` (``geo``: its Geometry), against
    what a model's ``info`` learnt of its good photos (their range, colour, colour balance and
    shape): empty where nothing. A doubted photo is judged REVIEW whatever its score
    (``Inspector._result``), so training counts a defect photo it doubts as caught at review,
    not as an escape (calibration.escapes_judged): counted by score, the record said 20 of 24
    magnetic-tile defects escaped where inspect judged 10 OK."""
    doubts = photo_check_module.issues(x, info.get("photo_range"))[1]
    doubts += photo_check_module.colour_issues(x, info.get("photo_colour"), info.get("photo_cast"))
    doubts += photo_check_module.aspect_issues(geo, info.get("photo_aspect"))
    return doubts


def photo_prints(x: np.ndarray) -> list[str]:
    """A short print of each preprocessed photo (the first 8 bytes of its SHA-256, hex): the
    same file loaded by the same model gives the same print, so recalibrating can tell the
    photos it learned from. 16 characters a photo: 12 kB in the manifest for 762 photos."""
    import hashlib
    return [hashlib.sha256(np.ascontiguousarray(row).tobytes()).hexdigest()[:16] for row in x]


# info key: sets of good photos with the same print (see duplicate_photos)
DUPLICATE_PHOTOS = "duplicate_photos"


def duplicate_photos(prints: Sequence[str]) -> list[list[int]]:
    """Indices of the photos sharing a print (the same photo after preprocessing: a
    byte-identical copy, or one saved twice), one list per print with more than one, in
    the order given: KolektorSDD's train/good holds 13 such pairs."""
    by_print: dict[str, list[int]] = {}
    for i, p in enumerate(prints):
        by_print.setdefault(p, []).append(i)
    return [ix for ix in by_print.values() if len(ix) > 1]


def _copies_said(names: Sequence[str], twins: Sequence[Sequence[int]], need: int, detector: str) -> str:
    """Why good photos that are mostly copies of each other are refused (fewer than ``need``
    different ones), naming the copies: one part photographed once teaches one part."""
    distinct = len(names) - sum(len(ix) - 1 for ix in twins)
    example = " = ".join(str(names[i]) for i in twins[0][:3]) + (" = ..." if len(twins[0]) > 3 else "")
    what = (f"all {len(names)} good photos are copies of one photo (the same content: {example})" if distinct == 1
            else f"the {len(names)} good photos are copies of only {distinct} different photos (the same content, "
                 f"e.g. {example})")
    return (f"{what}: a model needs photos of different good parts ({detector} at least {need}; 30 to 200 for a "
            "line): photograph other good parts, put them in the folder instead of the copies, and train again")


def _copies_of_earlier(prints: Sequence[str]) -> list[bool]:
    """For each photo, whether an earlier one in ``prints`` is the same photo: a copy is no
    other part, so the threshold's promise counts it once (calibration.conformal_threshold)."""
    seen: set[str] = set()
    out = []
    for p in prints:
        out.append(p in seen)
        seen.add(p)
    return out


def _join_twins(labels: Optional[list[str]], twins: Sequence[Sequence[int]], n: int) -> Optional[list[str]]:
    """Group labels with every set of twins in one group: the groups given are joined where
    twins span them (a copy filed under another part), else each photo is its own group."""
    if not twins:
        return labels
    base = list(labels) if labels is not None else [f"photo#{i}" for i in range(n)]
    parent = {g: g for g in base}

    def root(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for ix in twins:
        first = root(base[ix[0]])
        for j in ix[1:]:
            parent[root(base[j])] = first
    return [root(g) for g in base]


PARTS_HELD_OUT = "good parts held out of training"
PARTS_TRAINING = ("the training parts themselves (no hold-out): optimistic, the false-reject rate is not "
                  "guaranteed; recalibrate on good parts the model did not learn from")
PARTS_CROSS_FIT = ("every good training part, each scored by a model without it (or its group): "
                   "cross-fitting, no part held out of the model")
PARTS_GIVEN = "good parts given to recalibrate; they must be good parts the model did not learn from"


# A square input is kept for parts within this ratio of square ("areaN" below): on
# magnetic tiles (median 1.16 : 1) following the aspect ratio was no better than the
# square (image AUROC 0.971 vs 0.978), on KolektorSDD's 2.5 : 1 commutators far better
# (0.82 -> 0.90), and on those commutators cut to 1.7 : 1 the same at 18% fewer pixels
# (benchmarks/crop_product.py). 1.5 is a round number between the first two.
SQUARE_UP_TO = 1.5


def good_parts_sensor_bits(items: Sequence[ImageLike]) -> int:
    """The camera's bit depth read off the good photos: 8 when none has more than 8 bits
    a pixel, else the smallest depth that holds the largest value of any (a 12-bit
    camera's brightest good part reaches nearer 4095 than 1023)."""
    largest = [m for m in (deep_max(it) for it in items) if m is not None]
    return sensor_bits_for(max(largest)) if largest else 8


def auto_input_size(spec: str, items: Sequence[ImageLike], roi: Optional[Sequence[int]] = None
                    ) -> tuple[int, int]:
    """A model input that follows the good photos' median aspect ratio, so a tall or
    wide part is not squeezed into a square (thin cracks survive). Sides are multiples
    of 32, the long side at most 3x the short one. Sizes come from the image headers;
    nothing is decoded.

    - ``"auto"`` (short side 224) or ``"autoN"``: short side N, the long side as the
      parts (KolektorSDD's 500x1254 commutators: 576x224; image AUROC 0.82 -> 0.89).
    - ``"areaN"``: at most N x N pixels, i.e. about the square's work: an N x N square
      for parts within 1.5 : 1 of square (``SQUARE_UP_TO``), else the largest input of
      the parts' shape that holds no more pixels (the commutators at area224: 320x128,
      fewer pixels than 224x224, image AUROC 0.82 -> 0.90 with EfficientNet-Lite0).
    """
    from PIL import Image

    from .preprocess import size_rule
    rule, side = size_rule(spec)
    ratios = []
    for it in items:
        try:
            if isinstance(it, np.ndarray):
                h, w = it.shape[:2]
            elif isinstance(it, Photo):
                h, w = it.size_hw
            else:
                with Image.open(it) as im:
                    h, w = shown_hw(im)   # as judged: a photo stored on its side is turned
        except (OSError, ValueError, TypeError):
            continue   # unreadable: the loader reports it
        if roi is not None:
            w, h = max(1, min(int(roi[2]), w - int(roi[0]))), max(1, min(int(roi[3]), h - int(roi[1])))
        ratios.append(h / w)
    if not ratios:
        return side, side
    r = float(np.median(ratios))
    ratio = max(r, 1 / r)

    def long_side(short: int) -> int:
        return int(min(3 * short, max(short, round(short * ratio / 32) * 32)))

    if rule == "auto":
        short = side
    elif ratio <= SQUARE_UP_TO:
        return side, side
    else:   # the largest short side whose input holds at most side x side pixels (64 at least)
        fits = [s for s in range(64, side + 1, 32) if s * long_side(s) <= side * side]
        short = max(fits) if fits else 64
    return (long_side(short), short) if r >= 1 else (short, long_side(short))


def _group_labels(groups: Union[None, str, Sequence[Any]], n_items: int, loaded: Sequence[int],
                  names: Sequence[str]) -> Optional[list[str]]:
    """One group label per loaded good image (``names``: theirs, in order), from a list
    (one per given image) or a file-name pattern."""
    if groups is None:
        return None
    if isinstance(groups, str):
        import re
        try:
            pattern = re.compile(groups)
        except re.error as exc:
            raise ValueError(f"groups pattern {groups!r} is not a regular expression: {exc}") from exc
        labels = []
        for name in names:
            m = pattern.search(Path(name).name)
            if m is None:
                raise DatasetError(f"groups pattern {groups!r} does not match the file name {Path(name).name!r}; "
                                   "use a pattern every good image's name matches, e.g. r'^(part\\d+)_'")
            labels.append(m.group(1) if m.groups() else m.group(0))
        if len(labels) > 1 and len(set(labels)) == 1:
            # said as what the pattern did, not as "calibration needs good parts from at least 2 groups"
            raise DatasetError(f"groups pattern {groups!r} puts every good photo in one group ({labels[0]!r}): a "
                               "photo's group is the pattern's first (parenthesised) group, or else its whole "
                               "match, and must name its part, e.g. r'^(part\\d+)_'")
        return labels
    labels = [str(g) for g in groups]
    if len(labels) != n_items:
        raise ValueError(f"groups must give one label per good image: got {len(labels)} labels "
                         f"for {n_items} images")
    return [labels[i] for i in loaded]


def _flags(flags: Union[bool, Sequence[bool]], n_items: int, loaded: Sequence[int], name: str) -> np.ndarray:
    """One of fit's per-image flags (``calibrate_on``, ``exclude_suspects``: a bool for
    every image, or one per good image given) for the photos that loaded."""
    if isinstance(flags, (bool, np.bool_)):
        return np.full(len(loaded), bool(flags))
    flags = [bool(f) for f in flags]
    if len(flags) != n_items:
        raise ValueError(f"{name} must give one flag per good image: got {len(flags)} for {n_items} images")
    return np.array([flags[i] for i in loaded], dtype=bool)


def _calibration_record(good_scores: np.ndarray, good_maps: np.ndarray, false_reject_rate: float,
                        defect_scores: Optional[np.ndarray], strategy: str, held_out: bool,
                        review_rate: float = 0.0, detector: Any = None, parts: str = "",
                        groups: Optional[Sequence[Any]] = None, copies: Optional[Sequence[bool]] = None,
                        defect_photo_review: Optional[Sequence[bool]] = None) -> dict[str, Any]:
    """Thresholds (image, review and pixel) and the evidence behind them, from held-out parts
    (``groups``: the part each photo shows, where a part has several). ``defect_photo_review``:
    which defect photos the photo check doubts (:func:`photo_doubts`), so that the escapes
    count by the verdict each defect is given, as inspect judges and eval counts them.

    ``detector`` says what scored them (``runtime``, ``precision``): thresholds follow
    the scores of the model they were set on, and an int8 or bf16 model scores differently.
    """
    calib = summarize(good_scores, false_reject_rate, defect_scores, strategy, review_rate=review_rate,
                      groups=groups, copies=copies, defect_photo_review=defect_photo_review)
    calib["pixel_threshold"] = pixel_threshold_from_good(list(good_maps), calib["threshold"])
    calib["held_out"] = held_out
    calib["calibrated_on"] = {"runtime": str(getattr(detector, "runtime", "torch")),
                              "precision": str(getattr(detector, "precision", "fp32"))}
    calib["calibration_parts"] = parts or (PARTS_HELD_OUT if held_out else PARTS_TRAINING)
    calib["good_score_quantiles"] = {q: float(np.quantile(good_scores, float(q)))
                                     for q in ("0.5", "0.9", "0.99", "1.0")}
    return calib


# A recalibration batch is narrow when, on brightness or contrast, it covers less of the
# training photos than n photos of their kind would but once in a thousand batches: the
# share of its kind that n photos' range covers is Beta(n-1, 2) whatever the kind's shape
# (40 photos: under 79% once in 1000), less NARROW_SLACK for the training photos being
# known by two percentiles only. The darkest 40 of 381 held-out magnetic tiles covered 2%
# of the training brightness (13% of the other good tiles were then rejected, 0.2% after a
# random 40), the darkest 40 of 133 KolektorSDD photos 57%; of 300 random 40s none was
# under 67% on either product (the bar at 40: 63%); of random 10s and 20s, 0.7-2% under theirs.
NARROW_CHANCE = 0.001
NARROW_SLACK = 0.8
# photos alike to about a grey level are as alike as a camera makes them: below this
# spread a lamp's drift by a grey level would read as a batch from another lamp
_COVER_SD_FLOOR = 0.005


def _narrow_bar(n: int) -> float:
    """The coverage under which ``n`` photos are a narrow batch: NARROW_SLACK times the
    share their range covers in only NARROW_CHANCE of batches (Beta(n-1, 2)'s quantile:
    n c^(n-1) - (n-1) c^n, solved by halving)."""
    if n < 2:
        return 0.0          # one photo covers nothing: "too few parts" says what is wrong
    lo, hi = 0.0, 1.0
    for _ in range(40):
        c = (lo + hi) / 2
        lo, hi = (c, hi) if n * c ** (n - 1) - (n - 1) * c ** n < NARROW_CHANCE else (lo, c)
    return NARROW_SLACK * lo


def _photo_coverage(x: np.ndarray, photo_range: Optional[dict[str, Any]], centred: bool = False,
                    also_doubted: Optional[Sequence[bool]] = None,
                    names: Optional[Sequence[str]] = None) -> Optional[dict[str, Any]]:
    """How much of what the model learnt from (``photo_range``: the training photos'
    1st-99th percentiles of brightness and contrast) the recalibration photos ``x`` cover
    (``expected``: what as many photos of their kind cover on average, (n-1)/(n+1)), and
    on which measures they are narrow (``narrow``: under ``bar``, :func:`_narrow_bar`). None for a
    model without a photo range. The training photos are modelled as normal between
    their percentiles (the model keeps no more of them); the batch's own range leaves out
    its odd photos (:func:`photo_check.learn_range`), so one flickered photo does not
    widen a batch from one lamp; a batch most of whose photos the photo check doubts
    (``unlike_training``) is not judged narrow. ``centred``: the lamp or camera changed on purpose
    (``--photo-range``), so where the batch lies says nothing, only how wide it is.
    ``also_doubted``: the photos the check doubts on what ``photo_range`` does not hold (their
    colour, their shape), as ``inspect`` doubts them: a batch of colour-swapped photos, every
    one REVIEW at the line, set a threshold with not a word said. ``names``: the photos'
    names, the first 20 doubted ones kept (``doubted_images``) for a person to look at."""
    if not photo_range or len(x) == 0:
        return None
    import math
    got, _ = photo_check_module.learn_range(x, focus_at=photo_range.get("focus_at", "blocks"))
    n = len(x)
    expected = (n - 1) / (n + 1)
    bar = _narrow_bar(n)
    out: dict[str, Any] = {"n": n, "expected": round(expected, 3), "bar": round(bar, 3), "narrow": []}
    # most photos outside the range itself: not a slice of the training lighting but another
    # lamp or camera, which the photo check already doubts part by part (--photo-range is
    # the way to take it); judged narrow, a planned change would be named a lot's photos
    extra = list(also_doubted) if also_doubted is not None else [False] * len(x)
    which = [] if centred else [i for i, (a, more) in enumerate(zip(x, extra))
                                if more or photo_check_module.issues(a, photo_range)[1]]
    doubted = len(which)
    out["doubted"] = doubted
    if names is not None and which:
        out["doubted_images"] = [str(names[i]) for i in which[:20]]
    if doubted > n / 2:
        out["unlike_training"] = True
    for m in ("brightness", "contrast"):
        r = photo_range.get(m)
        if not r:
            continue
        mu, sd = (r[2] + r[3]) / 2, max((r[3] - r[2]) / 4.652, _COVER_SD_FLOOR)   # 1st-99th: +-2.326 sd
        lo, hi = got[m][2], got[m][3]
        if centred:
            lo, hi = mu - (hi - lo) / 2, mu + (hi - lo) / 2

        def below(v: float) -> float:
            return 0.5 * (1 + math.erf((v - mu) / (sd * math.sqrt(2))))
        covered = below(hi) - below(lo)
        out[m] = {"batch": [round(got[m][2], 4), round(got[m][3], 4)], "learnt": [r[2], r[3]],
                  "covered": round(covered, 3)}
        if covered < bar and not out.get("unlike_training"):
            out["narrow"].append(m)
    return out


class Inspector:
    """A fitted detector with its preprocessing and calibrated thresholds."""

    def __init__(self, detector: Detector, preprocess: Preprocess, calibration: dict[str, Any],
                 info: Optional[dict[str, Any]] = None, min_region_area: int = 4):
        self.detector = detector
        self.preprocess = preprocess
        self.calibration = calibration
        self.info = dict(info or {})
        self.min_region_area = min_region_area
        self._model_id: Optional[str] = None
        self._pool: Optional[ThreadPoolExecutor] = None  # lanes of inspect_batch, made on first use
        self._pool_lanes = 0

    # ------------------------------------------------------------ properties
    @property
    def threshold(self) -> float:
        return float(self.calibration["threshold"])

    @property
    def review_threshold(self) -> float:
        """At or below it a part is OK; above it and up to ``threshold`` it is REVIEW.
        Models from before review bands have none: it is then ``threshold`` (no band)."""
        return float(self.calibration.get("review_threshold", self.calibration["threshold"]))

    @property
    def pixel_threshold(self) -> float:
        return float(self.calibration["pixel_threshold"])

    @property
    def model_version(self) -> str:
        return str(self.info.get("version", ""))

    @property
    def model_id(self) -> str:
        """Content hash of the model file this inspector saves to (first 16 hex digits)."""
        if self._model_id is None:
            _, digest = self._file_bytes()
            self._model_id = digest[:16]
        return self._model_id

    @property
    def is_exported(self) -> bool:
        """Runs an exported model (``.onnx``; no torch) rather than a ``.lgm``."""
        return callable(getattr(self.detector, "file_bytes", None))

    # ------------------------------------------------------------------- fit
    @classmethod
    def fit(cls, good: GoodImages, detector: str = "patchcore", false_reject_rate: float = 0.01,
            image_size: Union[int, str, tuple[int, int]] = 224, resize: str = "stretch",
            roi: Optional[Sequence[int]] = None, orient: str = "none",
            holdout: float = 0.0, defect_images: Optional[GoodImages] = None, threshold_strategy: str = "frr",
            min_region_area: int = 4, seed: int = 0, version: Optional[str] = None,
            skip_bad: bool = True, progress: Progress = None, review_rate: float = 0.0,
            groups: Union[None, str, Sequence[Any]] = None, exclude_suspects: Union[bool, Sequence[bool]] = False,
            sensor_bits: SensorBits = "auto", photo_check: bool = True,
            calibrate_on: Optional[Sequence[bool]] = None, exclude_odd_suspects: bool = False,
            **detector_params: Any) -> "Inspector":
        """Learn from good images only; calibrate the threshold on every one of them.

        By default (``holdout`` 0) every good image enters the model and also sets the
        threshold: each is scored by a model that did not learn from it (cross-fitting:
        PatchCore leaves the part's own patches out of its bank and refills their places
        as a refit would, other detectors refit on K-1 folds), and the threshold is the conformal quantile of those scores for
        ``false_reject_rate``. ``groups`` keeps photos that belong together (several
        shots of one part, one lot) on the same side: a list with one label per good
        image, or a regular expression whose first group (else the whole match) in each
        file name is its label, e.g. ``r"^(part[0-9]+)_"``. Without it each photo stands
        alone, and a part photographed several times is judged against its own other
        photos: too low a threshold. ``holdout`` > 0 instead keeps that share of the
        good images out of the model to set the threshold (the old way: a smaller bank,
        fewer calibration scores). Good images whose score lies far above the others' are
        listed in ``info['suspect_good']``: a plant's good folder usually holds a few bad
        parts, and a person should look at them; with ``exclude_suspects`` they do not
        set the threshold (only once a person has confirmed they are bad: on a product
        whose good parts vary that much, e.g. new commutators on KolektorSDD, leaving
        them out set the threshold too low, 7.3-8.5% false rejects for a 1% target).
        ``exclude_suspects`` may also be one flag per good image: only the flagged ones are
        left out when far above the others (a station flags the parts nobody reviewed;
        one a person reviewed good stays whatever it scores).
        ``exclude_odd_suspects``: a good photo odd on both counts, far above the others in
        score and far unlike them as a photo (``info['photo_odd']``: left out of the photo
        check's range, so a photo like it is never passed on its score), is left out of the
        model and the threshold too, whoever gave it (a black frame among a station's
        reference photos set a retrain's threshold alone, and defects below it passed).
        The photos left out either way are named in ``info['suspects_left_out']``, and the
        counted part whose score is the threshold in ``calibration['threshold_set_by']``.
        ``defect_images``, when a user has
        some, add escape rates and an F1-optimal alternative (``threshold_strategy='f1'``).
        ``review_rate`` > 0 adds a review band: about that share of good parts is judged
        REVIEW instead of OK (see :mod:`lineguard.vision.calibration`); 0, no band.
        Unreadable files are skipped and listed in ``info['skipped']`` unless
        ``skip_bad`` is False, in which case the first one raises. ``sensor_bits`` is the
        camera's bit depth for 16-bit photos (a 12-bit camera's values end at 4095):
        ``"auto"`` takes the smallest of 8 / 10 / 12 / 14 / 16 bits that holds every good
        photo's values; the model then loads every photo with it. ``photo_check`` keeps
        the range of the good photos' brightness, contrast and focus: a photo outside it
        is not passed on its score (see :mod:`lineguard.vision.photo_check`).
        ``calibrate_on`` (one flag per good image, cross-fitting only): only the flagged
        images' scores set the thresholds; the others are learnt, not counted. The
        conformal promise holds for parts drawn like the line's, so a station retraining
        from its reviews flags its random audit sample: the parts people reviewed good
        after the old model flagged them are its oddest good parts, and counted, they set
        the threshold above the line's defects (see line.jobs).
        """
        from .detectors import DETECTORS, create_detector
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        if not 0 <= holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {holdout}")
        if calibrate_on is not None and holdout > 0:
            raise ValueError("calibrate_on names the parts that set the threshold among those cross-fitted: "
                             "give it with holdout 0")
        check_review_rate(false_reject_rate, review_rate)   # before the slow part, not after it
        sensor_bits = check_sensor_bits(sensor_bits)
        items = _resolve(good)
        # a size rule read from the parts' shape ("auto", "area224") is kept beside the size it
        # gave: a retrain applies the rule to its own parts (a camera turned, a new ROI)
        input_rule = image_size if isinstance(image_size, str) else None
        if isinstance(image_size, str):
            image_size = auto_input_size(image_size, items, roi)
        if sensor_bits == "auto":
            sensor_bits = good_parts_sensor_bits(items)
        pre = Preprocess(image_size=tuple(image_size) if isinstance(image_size, (list, tuple)) else image_size,
                         resize=resize, roi=tuple(roi) if roi else None, orient=orient, sensor_bits=sensor_bits)
        loaded: list[int] = []
        shapes: list[tuple[int, int]] = []
        inputs, bad = _load_all(items, progress, pre, loaded=loaded, sizes=shapes)
        if bad and not skip_bad:
            raise bad[0]
        det = create_detector(detector, seed=seed, **detector_params)
        need = det.min_good_images + 1
        if len(inputs) < need:
            raise DatasetError(f"{detector} needs at least {need} readable good images ({det.min_good_images} to "
                               f"learn from, and others to set the threshold); got {len(inputs)}"
                               + (f" ({len(bad)} unreadable: {_some_unreadable(bad)})" if bad else "")
                               + "; add more photos of good parts")
        x = np.stack(inputs)
        del inputs
        names = _names(items, loaded)
        counted = None if calibrate_on is None else _flags(calibrate_on, len(items), loaded, "calibrate_on")
        photo_range, odd, unusual = (photo_check_module.learn_range_and_unusual(x) if photo_check
                                     else (None, [], []))
        photo_info = {
            "photo_range": photo_range,
            # whether the good photos were colour: a grey photo (a camera switched to mono) is
            # then named as a photo issue (vision.photo_check.colour_issues); and a colour
            # model's colour balance: a photo of another (a warm LED for a white one, a tinted
            # variant) is named as a photo issue (vision.photo_check.cast_issues). From the
            # photos the range learnt from, the few of another colour left out (named), or
            # why the check is off
            **_colour_learnt(x, [i for i, _ in odd + unusual], names, cast=photo_check),
            # the good photos' shape (width/height): a photo of another (a 4:3 camera where
            # they were square) is named as a photo issue (vision.photo_check.aspect_issues)
            "photo_aspect": photo_check_module.learn_aspect(shapes, names),
        }
        labels = _group_labels(groups, len(items), loaded, names)
        prints = photo_prints(x)
        twins = duplicate_photos(prints)
        if len(set(prints)) < need:
            # 40 copies of one photo were refused as "calibration needs good parts from at least
            # 2 groups (parts, lots)" with no --group-by given: copies join one group (below)
            raise DatasetError(_copies_said(names, twins, need, detector))
        # the same photo twice (a camera saving twice, a copy): each twin scored against
        # its copy's patches scores too low (a threshold set too optimistically), and two
        # copies of one bad part hide each other; so twins share a group, on one side
        user_groups = labels is not None
        labels = _join_twins(labels, twins, len(x))
        # the detector calls it (done, total) for the features, and with stage= for its
        # later stages (detectors.patchcore.stage_progress): the same line on the terminal
        fit_progress = (lambda d, t, stage="features": progress(stage, d, t)) if progress else None
        t0 = time.perf_counter()
        if holdout > 0:
            rng = np.random.default_rng(seed)
            n_cal = min(max(1, int(round(holdout * len(x)))), len(x) - det.min_good_images)
            if labels is None:
                order = rng.permutation(len(x))
            else:   # whole groups out: a part's other photos must not be in the model
                group_of = np.unique(labels, return_inverse=True)[1]
                rank = rng.permutation(group_of.max() + 1)[group_of]
                order = np.argsort(rank, kind="stable")
                n_cal = int(np.searchsorted(np.sort(rank), rank[order[n_cal - 1]], side="right"))
                n_cal = min(n_cal, len(x) - det.min_good_images)
            cal_idx, train_idx = np.sort(order[:n_cal]), np.sort(order[n_cal:])
            det.fit(x[train_idx], progress=fit_progress)
            train_s = time.perf_counter() - t0
            cal_scores, cal_maps = det.score(x[cal_idx])
            method = "held out"
        else:
            cal_idx = train_idx = np.arange(len(x))
            cal_scores, cal_maps = det.fit_cross_scored(x, progress=fit_progress, groups=labels)
            train_s = time.perf_counter() - t0
            n_cal = len(x)
            method = "cross-fit"
        if progress:
            progress("calibrate", 1, 1)
        defect_scores, d_x, d_doubted = None, None, None
        if defect_images is not None:
            d_geos: list[Geometry] = []
            d_inputs, d_bad = _load_all(_resolve(defect_images), None, pre, geometries=d_geos)
            bad.extend(d_bad)
            if d_inputs:
                d_x = np.stack(d_inputs)
                defect_scores, _ = det.score(d_x)
                # the escapes count by the verdict, as inspect judges each defect: one whose photo
                # the check doubts is REVIEW whatever its score (caught at review, not escaped)
                d_doubted = [bool(photo_doubts(a, g, photo_info)) for a, g in zip(d_x, d_geos)]
        # A plant's "good" folder usually holds a few bad or odd parts. Name the ones whose
        # out-of-sample score lies far above the others' (Tukey's far-out rule, Q3 + 3 IQR:
        # no distribution assumed) so a person looks at them. By default they still set
        # the threshold: the far-out parts of one product are defects (magnetic_tile: left
        # out, escapes at 1% fell from 52% to 18% with 0.5% false rejects), of another
        # variation its labels call good (KolektorSDD: left out, 7.3-8.5% false rejects on new parts).
        # Only a person can tell; ``exclude_suspects`` is for after they have looked.
        far_out, is_suspect, suspect = _far_out(cal_scores, [names[int(i)] for i in cal_idx])
        flagged = _flags(exclude_suspects, len(items), loaded, "exclude_suspects")
        if exclude_odd_suspects and odd:
            flagged[[i for i, _ in odd]] = True
        leave = is_suspect & flagged[cal_idx]
        left_out_names = ([names[int(i)] for i in cal_idx[leave]] if leave.any() and (~leave).sum() >= 1
                          else [])
        use = ~leave if leave.any() and (~leave).sum() >= 1 else np.ones(len(cal_scores), bool)
        if method == "cross-fit" and not use.all() and int(use.sum()) > det.min_good_images:
            # Left out by a person who looked: out of the model too, not the threshold only.
            # Kept in the bank, a bad part's own patches were "good" there, and parts like it
            # passed (3 of 4 photos of another product judged OK on magnetic tiles). The
            # rest are fitted and cross-scored again: their scores against the smaller bank.
            keep = np.flatnonzero(use)
            det = create_detector(detector, seed=seed, **detector_params)
            t0 = time.perf_counter()
            cal_scores, cal_maps = det.fit_cross_scored(
                x[keep], progress=fit_progress, groups=None if labels is None else [labels[int(i)] for i in keep])
            train_s += time.perf_counter() - t0
            cal_idx = train_idx = keep
            n_cal = len(keep)
            use = np.ones(len(keep), bool)
            if d_x is not None:
                defect_scores, _ = det.score(d_x)
        all_used = use
        if counted is not None:
            use = use & counted[cal_idx]
            if not use.any():
                raise DatasetError("none of the good images named to set the threshold (calibrate_on) could be "
                                   "read, or all were left out as suspects; name others")
            n_cal = int(use.sum())
        calib = _calibration_record(cal_scores[use], cal_maps[use], false_reject_rate, defect_scores,
                                    threshold_strategy, held_out=True, review_rate=review_rate, detector=det,
                                    parts=PARTS_HELD_OUT if method == "held out" else PARTS_CROSS_FIT,
                                    groups=None if labels is None else [labels[int(i)] for i in cal_idx[use]],
                                    copies=_copies_of_earlier([prints[int(i)] for i in cal_idx[use]]),
                                    defect_photo_review=d_doubted)
        calib["calibration_method"] = method
        # which counted part's own score is the threshold (None: it lies between scores, as
        # an F1 threshold may): a station names it when that part is one to look at
        at = np.flatnonzero(cal_scores[use] == calib["threshold"])
        calib["threshold_set_by"] = names[int(cal_idx[use][at[0]])] if len(at) else None
        calib["suspect_cut"] = far_out
        calib["suspects_excluded"] = int(leave.sum()) if leave.any() and (~leave).sum() >= 1 else 0
        if is_suspect.any() and not calib["suspects_excluded"] and (~is_suspect).sum() >= 1:
            # what leaving them out would do, so a person who finds them bad knows what
            # retraining with exclude_suspects buys before spending the time on it
            rest = ~is_suspect if counted is None else ~is_suspect & counted
            if rest.any():
                calib["threshold_without_suspects"] = conformal_threshold(cal_scores[rest], false_reject_rate)[0]
        if counted is not None:
            # what counting every part would have set, so the record shows what the choice moved
            calib["calibration_subset"] = {
                "parts": n_cal, "learnt": int(len(train_idx)),
                "threshold_all_parts": conformal_threshold(cal_scores[all_used], false_reject_rate)[0]}
        if calib["suspects_excluded"]:
            calib["suspects_note"] = (f"{calib['suspects_excluded']} good image(s) scored far above the others and "
                                      "were left out of the threshold: the false-reject promise holds for parts like "
                                      "the rest. Look at them (info['suspect_good']); if they are good after all, "
                                      "train again without the --exclude-suspects flag (exclude_suspects=False) "
                                      "so they count" + ("; one whose photo is unlike the others' too "
                                                         "(info['photo_odd']) is left out whatever: a photo like it "
                                                         "is not passed on its score" if exclude_odd_suspects and odd
                                                         else ""))
        if user_groups:
            calib["n_groups"] = int(len(set(labels)))
        now = datetime.now(timezone.utc)
        info = {
            "version": version or now.strftime("%Y%m%d-%H%M%S"),
            "created_at": now.isoformat(timespec="seconds"),
            "n_train": int(len(train_idx)), "n_calibration": int(n_cal),
            "image_size_rule": input_rule,
            "suspect_good": suspect,
            # the good photos left out of the model and the threshold (exclude_suspects,
            # exclude_odd_suspects), by name
            "suspects_left_out": left_out_names,
            "n_defect_images": 0 if defect_scores is None else int(len(defect_scores)),
            "train_s": round(train_s, 3),
            "skipped": [str(e) for e in bad],
            # those of them read but left out for their size (far smaller than the others), by
            # name: not damaged, so a copy added again is left out again
            "skipped_too_small": [e.source for e in bad if e.hint == TOO_SMALL_HINT],
            # the photo check's range, colour, colour balance and shape (see photo_info above)
            **photo_info,
            # good photos far unlike the others (a lamp flicker, a shot out of focus): left
            # out of the photo check's range, named for a person to look at
            "photo_odd": [{"image": names[i], "issues": what} for i, what in odd],
            # and those far from most that the range holds all the same, named (the range's
            # own "unusual" says what is off only): a gentler note names them
            PHOTO_UNUSUAL: [{"image": names[i], "what": what} for i, what in unusual],
            # what each photo the model learned from looks like after preprocessing (8 bytes of
            # its SHA-256): recalibrating on them gave a threshold below most good parts'
            # scores (78 of 100 new good tiles rejected), said only as a "check" line
            LEARNT_PHOTOS: [prints[int(i)] for i in train_idx],
            # good photos that are the same photo (same print), each set named: kept in one
            # cross-fitting group so neither scores the other
            DUPLICATE_PHOTOS: [[names[int(i)] for i in ix] for ix in twins],
        }
        return cls(det, pre, calib, info, min_region_area=min_region_area)

    # ------------------------------------------------------------- inspect
    def inspect(self, image: ImageLike, source: str = "") -> InspectionResult:
        return self.inspect_batch([image], sources=[source] if source else None)[0]

    def inspect_batch(self, images: Iterable[ImageLike], batch_size: int = 16,
                      sources: Optional[Sequence[str]] = None) -> list[InspectionResult]:
        """Inspect many parts, ``batch_size`` at a time through the model, or one part
        per core side by side where the model runs that way faster (exported models).

        Raises :class:`ImageError` for an unreadable image; callers that want to go on
        past bad files load them first and pass what loaded: :class:`Photo` objects from
        ``imageio.load_photo_for(inspector, src)`` (a large JPEG then decodes at the
        reduced scale a file would), or arrays.
        """
        items = list(images)
        names = [sources[i] if sources is not None else (str(it) if isinstance(it, (str, os.PathLike)) else "")
                 for i, it in enumerate(items)]
        if len(items) > 1 and getattr(self.detector, "lanes", 1) > 1:
            return list(self._lane_pool().map(self._inspect_in_lane, items, names))
        results: list[InspectionResult] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            t0 = time.perf_counter()
            geos, inputs = [], []
            for it in chunk:
                x, g = self.preprocess.load(it)
                geos.append(g)
                inputs.append(x)
            t1 = time.perf_counter()
            scores, maps = self.detector.score(np.stack(inputs))
            t2 = time.perf_counter()
            n = len(chunk)
            for j in range(n):
                res = self._result(float(scores[j]), self.preprocess.map_back(maps[j], geos[j]), geos[j],
                                   inputs[j])
                res.source = names[start + j]
                results.append(res)
            t3 = time.perf_counter()
            per = {"preprocess": (t1 - t0) * 1000 / n, "model": (t2 - t1) * 1000 / n,
                   "postprocess": (t3 - t2) * 1000 / n, "total": (t3 - t0) * 1000 / n}
            for r in results[-n:]:
                r.timings_ms = dict(per)
        return results

    def _lane_pool(self) -> ThreadPoolExecutor:
        lanes = int(self.detector.lanes)
        if self._pool is None or self._pool_lanes != lanes:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="lg-lane")
            self._pool_lanes = lanes
        return self._pool

    def _inspect_in_lane(self, item: ImageLike, source: str) -> InspectionResult:
        # The whole part in one lane: decoding and the map's resize overlap the model
        # running for the part in the next lane (numpy, Pillow and ONNX Runtime let go
        # of the GIL while they work).
        t0 = time.perf_counter()
        x, geo = self.preprocess.load(item)
        t1 = time.perf_counter()
        scores, maps = self.detector.score_in_lane(x)
        t2 = time.perf_counter()
        res = self._result(float(scores[0]), self.preprocess.map_back(maps[0], geo), geo, x)
        res.source = source
        t3 = time.perf_counter()
        res.timings_ms = {"preprocess": (t1 - t0) * 1000, "model": (t2 - t1) * 1000,
                          "postprocess": (t3 - t2) * 1000, "total": (t3 - t0) * 1000}
        return res

    def _result(self, score: float, amap: np.ndarray, geo: Geometry, x: np.ndarray) -> InspectionResult:
        threshold, review_threshold = self.threshold, self.review_threshold
        if score > threshold:
            verdict = Verdict.NG
        elif score > review_threshold:
            verdict = Verdict.REVIEW
        else:
            verdict = Verdict.OK
        # A photo unlike the good photos (a dim lamp, a blurred lens) is judged by a person,
        # whatever its score (vision.photo_check): the score says little either way. Turning
        # only OK into REVIEW scrapped all 144 good parts of a defocused lens as NG (their
        # score rose with the blur) while each answer named the blur. REVIEW still sets the
        # PLC's NG bit (line.plc_handshake), so no such part ships; photo_issues say why.
        doubts = photo_doubts(x, geo, self.info)
        on_score = verdict
        if doubts:
            verdict = Verdict.REVIEW
        regions = []
        shape = geo.photo_hw
        # Passed on its score: no region (what is off is the photo, not a spot on the part).
        # Not passed on its score, doubted or not: regions, so a person sees where to look.
        if on_score is not Verdict.OK:
            # found on the map (smaller than a large photo: geo.map_scale), told in photo pixels
            f = geo.map_scale
            found = find_regions(amap, self.pixel_threshold, min_area=max(1, int(self.min_region_area * f * f)))
            regions = to_photo(found, f, shape, self.min_region_area)
            # Report what would keep the part from passing as OK on its own; keep at least the worst spot.
            strong = [r for r in regions if r.peak_score > review_threshold]
            regions = strong or regions[:1]
            if not regions:
                # The image score and the map disagree: smoothing and resizing the map to
                # the photo lower its peaks, so a part can be NG (or REVIEW) with no pixel
                # above the pixel threshold. The operator still needs to be told where to
                # look, so outline the area around the map's highest point instead.
                regions = to_photo(outline_peak(amap, amap.shape), f, shape)
        return InspectionResult(verdict=verdict, score=score, threshold=threshold,
                                pixel_threshold=self.pixel_threshold, anomaly_map=amap, regions=regions,
                                model_id=self.model_id, model_version=self.model_version,
                                image_size=(int(shape[1]), int(shape[0])), review_threshold=review_threshold,
                                photo_issues=doubts)

    # ------------------------------------------------------------ recalibrate
    def recalibrate(self, good: GoodImages, false_reject_rate: Optional[float] = None,
                    defect_images: Optional[GoodImages] = None, strategy: str = "frr",
                    review_rate: Optional[float] = None, photo_range: bool = False,
                    odd_parts: str = "keep") -> dict[str, Any]:
        """Reset thresholds (image, review and pixel) from fresh good parts, scored by this
        very model on its own runtime and precision: after an int8 export, or to run an
        exported model in bf16 on OpenVINO, the thresholds then follow the scores the line
        will see. The parts must be good and must not be ones the model learned from
        (e.g. reviewed false alarms from the line). Returns the new calibration record;
        ``save`` writes the model with it. Works on an edge install (no torch, no scipy).

        ``review_rate`` None keeps the model's review band setting (none for models
        without one), so recalibrating never drops a band the line relies on; 0 removes it.
        ``photo_range`` learns the photo check's range (:mod:`.photo_check`) again from
        these photos too: after a planned change of lamp or camera, when the line's good
        photos no longer look like the training photos (the record's ``photo_odd`` names
        photos left out of it); otherwise the range learnt at training stays.

        ``odd_parts``: what to do with good photos scoring far above the others
        (``suspect_good``, named for a person to look at). "keep" (default): they count, and
        where one of them sets the threshold the record says so (``threshold_set_by_suspects``,
        with ``threshold_without_suspects``): one odd photo among 64 KolektorSDD photos set an
        int8 threshold at 35.19 instead of 28.98, and 47 of 52 real defects passed instead of 22. "leave out": the
        threshold is set without them (``suspects_excluded``; the promise then holds for
        good parts like the rest), once a person has looked and found them bad.

        Where the model has a photo range, the record's ``photo_coverage`` says how much of
        the training photos' brightness and contrast these photos cover, and ``narrow``
        names the measures on which they are a narrow batch (one lot, shift or lamp
        setting: the darkest 40 of the held-out magnetic tiles set a threshold that then
        rejected 13% of the other good tiles, 0.2% after a random 40). The CLI refuses to
        write such a threshold unless told (``--narrow-ok``), and a batch the photo check
        mostly doubts (``unlike_training``: another product or camera) unless ``--photo-range``.

        The record keeps the prints of the photos that set the threshold
        (``bundle.CALIBRATION_PHOTOS``, replacing the earlier record's), so ``eval`` and
        ``stress`` tell them among good test photos.
        """
        if odd_parts not in ("keep", "leave out"):
            raise ValueError(f"odd_parts must be 'keep' or 'leave out', got {odd_parts!r}")
        if false_reject_rate is None:
            # the model's own target, as the CLI's default (from Python it was 1% whatever the
            # model was trained for)
            false_reject_rate = float(self.calibration.get("target_false_reject_rate", 0.01))
        if review_rate is None:
            review_rate = float(self.calibration.get("review_rate", 0.0))
        check_review_rate(false_reject_rate, review_rate)
        if photo_range and not self.info.get("photo_range"):
            # a check left off at training (--no-photo-check: photos that vary that much) is not
            # turned on behind the user's back
            raise ValueError("this model has no photo check (trained with --no-photo-check, or before the check "
                             "existed); --photo-range only learns an existing check's range again: retrain to "
                             "add one")
        items, loaded, shapes = _resolve(good), [], []
        inputs, bad = _load_all(items, None, self.preprocess, loaded=loaded, sizes=shapes)
        if not inputs:
            raise DatasetError(f"no readable good images to recalibrate with ({len(bad)} unreadable); "
                               "give a folder or list of good part photos the model did not learn from")
        x = np.stack(inputs)
        del inputs
        names = _names(items, loaded)
        learnt = set(self.info.get(LEARNT_PHOTOS) or ())
        seen = np.array([p in learnt for p in photo_prints(x)], bool) if learnt else np.zeros(len(x), bool)
        if seen.all():
            raise DatasetError(f"all {len(x)} photos are photos this model learned from: scored by it, they fit "
                               "far better than new parts do, and a threshold set on them rejects good parts "
                               "(78 of 100 new good tiles in one test); give good parts it did not learn from "
                               "(photos from the line since training, reviewed false alarms)")
        if seen.any():
            x = x[~seen]
            shapes = [wh for wh, s_ in zip(shapes, seen) if not s_]
            loaded = [i for i, s_ in zip(loaded, seen) if not s_]
            learnt_names = [n for n, s_ in zip(names, seen) if s_]
            names = [n for n, s_ in zip(names, seen) if not s_]
        new_range, odd, unusual = (photo_check_module.learn_range_and_unusual(x) if photo_range
                                   else (None, [], []))
        # what of the training photos' lighting these photos cover, against the range learnt
        # at training (before --photo-range replaces it): a batch from one lot, shift or lamp
        # setting sets a threshold that fits those parts only
        colour, cast, aspect = (self.info.get(k) for k in ("photo_colour", "photo_cast", "photo_aspect"))
        coverage = _photo_coverage(x, self.info.get("photo_range"), centred=photo_range, also_doubted=[
            bool(photo_check_module.colour_issues(a, colour, cast)) or photo_check_module.shape_doubted(*wh, aspect)
            for a, wh in zip(x, shapes)], names=names)
        # with --photo-range, what the check learns again here: the model judges by it from now on
        relearnt: dict[str, Any] = {}
        if photo_range:
            relearnt = {"photo_range": new_range,
                        # a new camera: colour or mono, and its lamp's colour (from the photos the range learnt from)
                        **_colour_learnt(x, [i for i, _ in odd + unusual], names, cast=True),
                        "photo_aspect": photo_check_module.learn_aspect(shapes)}     # and its shape
        scores, maps = self.detector.score(x)
        dscores, d_doubted = None, None
        if defect_images is not None:
            d_geos: list[Geometry] = []
            d, _ = _load_all(_resolve(defect_images), None, self.preprocess, geometries=d_geos)
            if d:
                dscores, _ = self.detector.score(np.stack(d))
                # escapes by the verdict, as at training: a defect the photo check doubts is REVIEW
                judged_by = {**self.info, **relearnt}
                d_doubted = [bool(photo_doubts(a, g, judged_by)) for a, g in zip(d, d_geos)]
        # as at training: good photos scoring far above the others are named for a person to
        # look at (one over-exposed tile set the threshold alone: escapes 74% -> 99.5%)
        cut, far, suspects = _far_out(scores, names)
        leave_out = odd_parts == "leave out" and far.any() and (~far).sum() >= 1
        use = ~far if leave_out else np.ones(len(scores), bool)
        # copies of one photo (a folder given twice, a camera saving twice) are one part: the
        # promise counts them once, and they are one group in its confidence bound (90 photos,
        # 30 of them three times, promised <= 1.10% where 30 parts give 3.23%)
        kept_prints = [p for p, u in zip(photo_prints(x), use) if u]
        copies = _copies_of_earlier(kept_prints)
        calib = _calibration_record(scores[use], maps[use], false_reject_rate, dscores, strategy, held_out=True,
                                    review_rate=review_rate, detector=self.detector, parts=PARTS_GIVEN,
                                    groups=kept_prints if any(copies) else None, copies=copies,
                                    defect_photo_review=d_doubted)
        if calib.get("enough_calibration_parts") is False:
            # one model and fresh parts, not training's cross-fit: the record says so
            calib["note"] = too_few_parts_note(calib, PARTS_NOT_LEARNT)
        if seen.any():
            calib["learnt_left_out"] = {"count": int(seen.sum()), "images": learnt_names[:20]}
        if not learnt:
            # a model from before the prints were kept cannot tell its training photos
            calib["learnt_unknown"] = True
        calib["suspect_cut"], calib["suspect_good"] = cut, suspects
        calib["suspects_excluded"] = int(far.sum()) if leave_out else 0
        if leave_out:
            calib["threshold_with_suspects"] = conformal_threshold(scores, false_reject_rate)[0]
            calib["suspects_note"] = (f"{int(far.sum())} good photo(s) scored far above the others and were left "
                                      "out of the threshold: the false-reject promise holds for parts like the rest")
        elif far.any() and (~far).sum() >= 1:
            # what the threshold would be without them; where one of them sets it (the threshold
            # is a named photo's score: with too few parts for the target, the largest score),
            # the record says so, and the CLI refuses to write it unasked
            calib["threshold_without_suspects"] = conformal_threshold(scores[~far], false_reject_rate)[0]
            calib["threshold_set_by_suspects"] = bool(calib["threshold"] > cut)
        if bad:
            calib["skipped"] = [str(e) for e in bad]
        # the prints of the photos that set this threshold, in place of those that set the one
        # before (a new record): `eval` and `stress` then tell them among good test photos, on
        # which the false-reject rate is where the threshold was put, not a measurement (eval
        # of a model recalibrated on test/good said nothing, train --holdout's prints only kept)
        calib[bundle.CALIBRATION_PHOTOS] = sorted(set(kept_prints))
        if coverage is not None:
            calib["photo_coverage"] = coverage
        if photo_range:
            calib["photo_range_before_n"] = int(self.info["photo_range"].get("n", 0))
            self.info.update(relearnt)
            calib["photo_range_relearnt"] = True
            calib["photo_odd"] = [{"image": names[i], "issues": what} for i, what in odd]
            calib[PHOTO_UNUSUAL] = [{"image": names[i], "what": what} for i, what in unusual]
            calib[PHOTO_COLOUR_ODD] = relearnt[PHOTO_COLOUR_ODD]
        self.calibration = calib
        self._model_id = None
        return calib

    # ------------------------------------------------------------ persistence
    def _to_bundle(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        import torch

        from .backbones import weights_sha256
        from .. import __version__
        det = self.detector
        params = det.get_params()
        params["layers"] = list(params.get("layers", ()))
        manifest = {
            "lineguard_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "python": platform.python_version(),
            "backbone": {"name": getattr(det, "backbone", None),
                         "weights_sha256": weights_sha256(det.backbone) if getattr(det, "backbone", None) else None},
            "detector": {"name": det.name, "params": params, "meta": det.state_meta()},
            "preprocess": self.preprocess.to_dict(),
            "calibration": self.calibration,
            "min_region_area": self.min_region_area,
            "info": self.info,
        }
        return manifest, det.state_tensors()

    def _file_bytes(self) -> tuple[bytes, str]:
        """The model file this inspector saves: a ``.lgm`` bundle, or for an exported
        model its ``.onnx`` with this inspector's calibration (graph unchanged)."""
        if self.is_exported:
            updates: dict[str, Any] = {"calibration": self.calibration, "min_region_area": self.min_region_area}
            info = dict(self.detector.manifest.get("info") or {})
            relearnt = {k: self.info.get(k) for k in ("photo_range", "photo_colour", "photo_aspect", "photo_cast",
                                                      PHOTO_COLOUR_ODD, PHOTO_COLOUR_OFF)
                        if info.get(k) != self.info.get(k)}                 # relearnt by recalibrate
            if relearnt:
                updates["info"] = {**info, **relearnt}
            return self.detector.file_bytes(updates)
        return bundle.dumps(*self._to_bundle())

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the model file atomically (a ``.lgm``, or an ``.onnx`` for an exported
        model); returns its path."""
        suffix = Path(path).suffix.lower()
        if self.is_exported and suffix == ".lgm":
            raise BundleError(f"{path}: this inspector runs an exported model; save it as .onnx")
        if not self.is_exported and suffix == ".onnx":
            raise BundleError(f"{path}: a torch model saves as .lgm; write an .onnx with "
                              "`lineguard export MODEL.lgm --format onnx`")
        data, digest = self._file_bytes()
        atomic_write_bytes(path, data)
        self._model_id = digest[:16]
        return Path(path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike, bytes], runtime: Optional[str] = None,
             precision: Optional[str] = None, threads: Optional[int] = None) -> "Inspector":
        """Load a model file (``.lgm``, torch) or an exported edge model (``.onnx``).

        ``runtime`` (exported models): ``onnxruntime`` (default) or ``openvino``;
        ``precision``: ``bf16`` with OpenVINO on CPUs that have it; ``threads``: the
        runtime's threads (default: the ``set_threads`` knob, else every core).
        """
        open_export = openers.find(path)
        if open_export is not None:
            # runtime None: the one the file's thresholds were set on (runtime.loader)
            return open_export(cls, path, threads=threads, runtime=runtime, precision=precision)
        if runtime not in (None, "torch") or precision not in (None, "fp32"):
            raise BundleError(f"{'<bytes>' if isinstance(path, bytes) else path}: a .lgm model runs on torch in "
                              "fp32; to use another runtime or precision export it first "
                              "(`lineguard export MODEL.lgm --format onnx`) and load the .onnx file")
        try:
            from .detectors import DETECTORS
        except ImportError as exc:
            raise BundleError(f"{'<bytes>' if isinstance(path, bytes) else path}: a .lgm model needs torch "
                              "(pip install 'lineguard[torch]'); on an edge install export it first with "
                              "`lineguard export MODEL.lgm --format onnx` and load the .onnx file") from exc
        if isinstance(path, bytes):
            manifest, tensors, digest = bundle.loads(path)
            name = "<bytes>"
        else:
            manifest, tensors, digest = bundle.load(path)
            name = str(path)
        try:
            dname = manifest["detector"]["name"]
            if dname not in DETECTORS:
                raise BundleError(f"{name}: detector {dname!r} is not known to this lineguard "
                                  f"(knows {', '.join(DETECTORS)}); upgrade lineguard")
            det = DETECTORS[dname].from_state(manifest["detector"]["params"], manifest["detector"]["meta"], tensors)
            pre = Preprocess.from_dict(manifest["preprocess"])
            insp = cls(det, pre, manifest["calibration"], manifest.get("info", {}),
                       min_region_area=int(manifest.get("min_region_area", 4)))
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{name}: model settings are incomplete or from an incompatible lineguard "
                              f"version ({type(exc).__name__}: {exc}); re-train or re-export the model") from exc
        insp._model_id = digest[:16]
        insp.info.setdefault("lineguard_version", manifest.get("lineguard_version"))
        return insp

    def describe(self) -> dict[str, Any]:
        """Plain summary for `lineguard info` and the station's model list."""
        return {"model_id": self.model_id, "version": self.model_version, "detector": self.detector.name,
                "params": self.detector.get_params(), "preprocess": self.preprocess.to_dict(),
                "threshold": self.threshold, "review_threshold": self.review_threshold,
                "pixel_threshold": self.pixel_threshold,
                # the photos' prints as counts: hundreds of hashes say nothing in `info` or the model list
                "calibration": {k: (len(v) if k == bundle.CALIBRATION_PHOTOS and isinstance(v, list) else v)
                                for k, v in (self.calibration or {}).items()},
                "info": {k: (len(v) if k == LEARNT_PHOTOS else v) for k, v in self.info.items()}}
