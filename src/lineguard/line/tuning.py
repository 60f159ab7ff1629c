"""Threshold tuning: what a threshold would do on parts the line already judged, and
saving new thresholds as a new model version (same model, new thresholds).

A part scoring above the threshold is NG, above the review threshold (and up to the
threshold) REVIEW, else OK: the same rule as ``Inspector`` applies. Scores do not depend
on the thresholds, so every part a model judged tells what any other threshold would
have made of it.
"""
from __future__ import annotations

import copy
import logging
import math
import threading
from typing import Any, Optional, Sequence

import numpy as np
from sqlalchemy import select

from ..vision.calibration import conformal_threshold, promise_check, rate_with_ci
from ..vision.errors import BundleError
from . import part_names
from .errors import ActiveChanged, InvalidModel, InvalidRequest, NotFound, StationError
from .orm import Inspection, ModelVersion

# Calibration entries that state a guarantee of the thresholds the calibration chose
# (its conformal rank, its bound on false rejects): wrong once a person moves them.
_STALE = ("rank", "review_rank", "guaranteed_false_reject_rate", "guaranteed_not_ok_rate",
          "false_reject_rate_upper_90", "false_reject_rate_upper_95", "enough_calibration_parts", "frr_threshold",
          "f1_threshold")

MAX_SCORES = 5000      # per list in the tuning answer: plenty for a histogram and the rates
MAX_RAISE = 100        # a threshold this many times the one the good parts set passes every part
# audit-sample parts a false-reject target is measured on, newest first: enough for a target
# of 0.002% (49,999 good parts), a few hundred kB of scores
MAX_TARGET_PARTS = 50_000
TARGET_CONFIDENCE = 0.95
# what a target's rate is measured on, in the words the page and the API answer use
TARGET_PARTS = ("good parts of the random audit sample (reviewed good, or judged OK and not reviewed; those judged NG "
                "or REVIEW and not reviewed counted as good)")


def _share(k: int, n: int) -> dict[str, Any]:
    return {"k": int(k), "n": int(n), "rate": (k / n) if n else None}


def check_thresholds(threshold: float, review_threshold: Optional[float]) -> None:
    """Refuse thresholds a model cannot use (InvalidRequest, 422, saying what to fix)."""
    if not math.isfinite(threshold):
        raise InvalidRequest(f"threshold must be a finite number, got {threshold}")
    if review_threshold is not None:
        if not math.isfinite(review_threshold):
            raise InvalidRequest(f"review_threshold must be a finite number or null (no review band), "
                                 f"got {review_threshold}")
        if review_threshold >= threshold:
            raise InvalidRequest(f"review_threshold ({review_threshold:g}) must be below threshold "
                                 f"({threshold:g}): parts between the two go to REVIEW; send null for no band")


def check_against_calibrated(threshold: float, review_threshold: Optional[float], base: float) -> None:
    """Refuse thresholds more than MAX_RAISE times, or less than 1/MAX_RAISE of, ``base``,
    the threshold this model's good parts set (InvalidRequest, 422). Both bounds live
    here, where every way of saving thresholds passes (the REST API, any verb calling
    :func:`save_thresholds`): the lower one sat in the API's router alone, so a caller of
    this module could save 5e-324 and, activated, that version rejected every good part.
    Against the calibrated threshold, not the one tuned from, so tunings in steps cannot
    climb past it or sink below it. A model with no threshold above 0 has no bound."""
    if not base > 0:
        return
    if threshold > MAX_RAISE * base:
        # far past every score a part of this model gets: the station would pass every part
        raise InvalidRequest(f"threshold {threshold:g} is more than {MAX_RAISE} times {base:.6g}, the threshold "
                             "this model's good parts set: every part would pass, defects too; set it within "
                             "the scores the Tuning page shows")
    floor = base / MAX_RAISE
    for what, value, every in (("threshold", threshold, "every part would be NG, good parts too"),
                               ("review_threshold", review_threshold, "every part would go to REVIEW")):
        # at or below 0 (and not finite) are refused before this, in their own words
        if value is not None and 0 < value < floor:
            raise InvalidRequest(f"{what} {value:g} is less than 1/{MAX_RAISE} of {base:.6g}, the threshold "
                                 f"this model's good parts set: {every}; set it within the scores the Tuning "
                                 "page shows")


def expected_rates(good_scores: Sequence[float], defect_scores: Sequence[float], recent_scores: Sequence[float],
                   threshold: float, review_threshold: Optional[float] = None,
                   photo_review: Optional[dict[str, Sequence[int]]] = None) -> dict[str, Any]:
    """What ``threshold``/``review_threshold`` would have done to the parts given.

    - ``false_rejects``: good parts (reviewed good) scoring above the threshold (NG).
    - ``escapes``: defective parts (reviewed defect) at or below the review threshold
      (OK; without a band, at or below the threshold).
    - ``review_load``: recent parts (any verdict) in the band: the share a person has to look at.
    - ``recent_ng``: recent parts that would be NG.
    - ``photo_review``: recent parts the photo check sent to REVIEW.

    ``photo_review``: for "good", "defect" and "recent", the positions in that list of the
    parts the photo check doubted. Such a part is REVIEW whatever its score, and the photo
    check does not depend on the thresholds, so it is counted as REVIEW at any of them
    (never a false reject, an escape or NG): counted by its score, 5 dark photos among 170
    parts made a review load of 3 where the line had sent 8 to REVIEW.

    Reviewed good parts are mostly former NG and REVIEW parts (false alarms are what
    gets reviewed), so they score higher than good parts at large: ``false_rejects``
    overstates the share of all good parts rejected unless the good scores come from a
    random audit sample. Likewise ``escapes`` counts only the defects someone found.
    """
    r = threshold if review_threshold is None else review_threshold
    check_thresholds(threshold, review_threshold)
    doubted = photo_review or {}

    def verdicts(scores: Sequence[float], which: str) -> tuple[int, int, int, int]:
        """(parts, NG, REVIEW, OK) of a list, as the station judges them."""
        x = np.asarray(scores, dtype=np.float64)
        photo = np.zeros(len(x), dtype=bool)
        photo[np.asarray(doubted.get(which, ()), dtype=np.int64)] = True
        ng = int(np.sum((x > threshold) & ~photo))
        ok = int(np.sum((x <= r) & ~photo))
        return len(x), ng, len(x) - ng - ok, ok
    g_n, g_ng, g_rev, _ = verdicts(good_scores, "good")
    d_n, _, d_rev, d_ok = verdicts(defect_scores, "defect")
    x_n, x_ng, x_rev, _ = verdicts(recent_scores, "recent")
    return {"threshold": float(threshold), "review_threshold": None if review_threshold is None else float(r),
            "false_rejects": _share(g_ng, g_n), "good_to_review": _share(g_rev, g_n),
            "escapes": _share(d_ok, d_n), "defects_to_review": _share(d_rev, d_n),
            "review_load": _share(x_rev, x_n), "recent_ng": _share(x_ng, x_n),
            "photo_review": _share(len(doubted.get("recent", ())), x_n)}


# -- the model file ---------------------------------------------------------------------

def _file_calibration(data: bytes) -> Optional[tuple[str, dict[str, Any]]]:
    """(format, calibration) of a .lgm bundle or an exported .onnx; None for another format."""
    from ..runtime import onnx_file
    from ..vision import bundle
    if onnx_file.is_export(data):
        return "onnx", dict(onnx_file.load(data)[1].get("calibration") or {})
    try:
        manifest, _, _ = bundle.loads(data)
    except BundleError:
        return None
    return "lgm", dict(manifest.get("calibration") or {})


# file key -> its calibration record. Model files are content-addressed, so an entry never
# goes stale, and a model file of 100 MB is read and hashed once, not on every request.
_CALIBRATIONS: dict[str, dict[str, Any]] = {}
_CALIBRATIONS_LOCK = threading.Lock()


def model_calibration(station: Any, mv: ModelVersion) -> dict[str, Any]:
    """The calibration record of a version (threshold, review_threshold, ...), read from
    its file; a model of another format (a custom loader) is asked for its own."""
    with _CALIBRATIONS_LOCK:
        hit = _CALIBRATIONS.get(mv.file_key)
    if hit is not None:
        return copy.deepcopy(hit)
    data = station.models.store.path(mv.file_key).read_bytes()
    found = _file_calibration(data)
    if found is not None:
        cal = found[1]
    else:
        insp = station.models.inspector(mv)
        cal = dict(getattr(insp, "calibration", None) or {})
        cal.setdefault("threshold", float(insp.threshold))
        cal.setdefault("review_threshold", float(getattr(insp, "review_threshold", insp.threshold)))
    with _CALIBRATIONS_LOCK:
        _CALIBRATIONS[mv.file_key] = copy.deepcopy(cal)
    return cal


def scored_as(cal: dict[str, Any], model_id: str) -> str:
    """The model whose scores a version gives: a tuned version scores like its source."""
    return str((cal.get("tuned") or {}).get("scored_as") or model_id)


def same_scores(station: Any, mv: ModelVersion) -> list[str]:
    """Model ids of every version of the product that scores parts exactly as ``mv``
    does: its source model and every version tuned from it (thresholds differ, scores not)."""
    def root_of(v: ModelVersion) -> str:
        return scored_as(model_calibration(station, v), v.model_id)

    root = root_of(mv)
    ids = {mv.model_id, root}
    for v in station.models.list(mv.product):
        try:
            if root_of(v) == root:
                ids.add(v.model_id)
        except (StationError, BundleError, OSError):
            continue   # a version whose file no longer loads judged nothing like this one
    return sorted(ids)


def score_sources(station: Any, model_ids: Sequence[str]) -> dict[str, str]:
    """Each model id -> the model whose scores it gives (``scored_as``): a version tuned
    from another scores every part exactly as its source, so score charts count the two
    as one model. An id no version of the registry has (deleted, or from another
    station), or whose file no longer loads, stays itself."""
    wanted = set(model_ids)
    out = {m: m for m in wanted}
    if len(wanted) < 2:
        return out     # one model: nothing to compare, no model file read
    for v in station.models.list():
        if v.model_id not in wanted:
            continue
        try:
            out[v.model_id] = scored_as(model_calibration(station, v), v.model_id)
        except (StationError, BundleError, OSError):
            continue
    return out


def active_version(station: Any, product: str, line: str) -> Optional[ModelVersion]:
    """The version active for exactly ``product``/``line`` (None: none): the one a version
    saved here for that product/line replaces once activated."""
    return next((v for v in station.models.list(product, line) if v.active), None)


def _beside_active(station: Any, src: ModelVersion, active: Optional[ModelVersion]) -> Optional[str]:
    """None: ``src`` is the active version; "none": none is active; "same": the active one
    scores alike (tuned from the same model, only the thresholds differ); "other": another
    model is active, and activating a version tuned from ``src`` puts ``src``'s model back."""
    if active is not None and active.id == src.id:
        return None
    if active is None:
        return "none"
    return "same" if active.model_id in same_scores(station, src) else "other"


def not_active_warning(station: Any, src: ModelVersion, active: Optional[ModelVersion]) -> Optional[str]:
    """What to know when the version tuned is not the one active (None when it is)."""
    kind = _beside_active(station, src, active)
    if kind is None:
        return None
    if kind == "none" or active is None:
        return f"v{src.version} is not active: no version of {_where(src)} is"
    if kind == "same":
        return (f"v{src.version} is not the active version: v{active.version} is, the same model with other "
                "thresholds")
    return (f"v{src.version} is not the active version: v{active.version} is, another model; a version tuned "
            f"from v{src.version} judges with v{src.version}'s model, so activating it puts that model back in "
            f"place of v{active.version}'s")


def _where(mv: ModelVersion) -> str:
    return f"product {mv.product!r}" + (f" line {mv.line!r}" if mv.line else "")


def tuned_calibration(cal: dict[str, Any], threshold: float, review_threshold: Optional[float],
                      source: ModelVersion, note: Optional[str], by: Optional[str],
                      target: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """``cal`` with the new thresholds: a threshold moved by hand carries no promise; one
    set by a false-reject target (``target``: :func:`threshold_for_target`'s answer for
    this very threshold) carries the target's, as training's threshold carries its own."""
    new = {k: v for k, v in cal.items() if k not in _STALE}
    old_t = float(cal["threshold"])
    new["threshold"] = float(threshold)
    new["review_threshold"] = float(threshold if review_threshold is None else review_threshold)
    if review_threshold is None:
        new["review_rate"] = 0.0
    if "pixel_threshold" in cal:
        # never above the image threshold, so an NG part always has its worst spot outlined
        new["pixel_threshold"] = min(float(cal["pixel_threshold"]), float(threshold))
    new["strategy"] = "manual"
    new["tuned"] = {"from_version": source.version, "from_model_id": source.model_id,
                    "from_threshold": old_t, "from_review_threshold": float(cal.get("review_threshold", old_t)),
                    # the threshold the good parts set, carried along a chain of tunings
                    "calibrated_threshold": calibrated_threshold(cal),
                    "scored_as": scored_as(cal, source.model_id), "note": note, "by": by}
    if target is not None:
        # the same conformal promise training makes, measured on the audit sample's good parts:
        # the Tuning page checks recent parts against it (promise_check) as against training's
        rate = float(target["false_reject_rate"])
        new.update(strategy="frr", method="conformal", target_false_reject_rate=rate,
                   n_calibration=int(target["good_parts"]), rank=int(target["rank"]),
                   guaranteed_false_reject_rate=float(target["guaranteed_false_reject_rate"]),
                   false_reject_rate_upper_95=float(target["false_reject_rate_upper_95"]),
                   enough_calibration_parts=True, calibration_parts_needed=math.ceil(1 / rate) - 1,
                   calibration_measured_on=TARGET_PARTS)
        new["tuned"]["false_reject_target"] = rate
    return new


def calibrated_threshold(cal: dict[str, Any]) -> float:
    """The threshold the good parts set, before any tuning by hand (a version tuned before
    this was recorded: the one it was tuned from)."""
    tuned = cal.get("tuned") or {}
    return float(tuned.get("calibrated_threshold", tuned.get("from_threshold", cal["threshold"])))


def rewrite_thresholds(data: bytes, calibration: dict[str, Any], loaded: Any = None) -> bytes:
    """The model file ``data`` with ``calibration`` in place of its own: a new, sealed file
    (its content hash recomputed) with every tensor or graph byte as it was.

    ``.lgm`` bundles and exported ``.onnx`` models are rewritten here; a model of another
    format (loaded by a custom loader) must offer ``with_calibration(calibration) -> bytes``.
    """
    from ..runtime import onnx_file
    from ..vision import bundle
    if onnx_file.is_export(data):
        _, manifest, _ = onnx_file.load(data)
        return onnx_file.seal(onnx_file.replace_manifest(data, {**manifest, "calibration": calibration}))[0]
    try:
        manifest, tensors, _ = bundle.loads(data)
    except BundleError:
        if loaded is not None and callable(getattr(loaded, "with_calibration", None)):
            return loaded.with_calibration(calibration)
        raise InvalidModel("this model file is neither a .lgm bundle nor an exported .onnx, so its thresholds "
                           "cannot be rewritten here; recalibrate it with `lineguard recalibrate`") from None
    return bundle.dumps({**manifest, "calibration": calibration}, tensors)[0]


def tuning_data(station: Any, product: str, line: str, version: Optional[int] = None,
                limit: int = MAX_SCORES) -> dict[str, Any]:
    """Scores of reviewed-good, reviewed-defect and recent parts judged by the version's
    model (and by any version it was tuned from: same scores), newest first, with its
    thresholds. ``version`` None: the version active on ``line``. With ``line``, only
    that line's parts, also under a model every line shares (its thresholds stay that
    model's: saved, they judge every line it does); NotFound for a line no part was
    ever inspected on (a misspelt name showed every line's parts)."""
    mv, cal, base, parts_line = _scored_parts(station, product, line, version)
    newest = Inspection.id.desc()
    # whether the photo check doubted the part: then it was REVIEW whatever its score
    doubted = Inspection.photo_issues.is_not(None)
    with station.db.session() as s:
        good_rows = s.execute(base.add_columns(doubted).where(Inspection.review_label == "good")
                              .order_by(newest).limit(limit)).all()
        defect_rows = s.execute(base.add_columns(doubted).where(Inspection.review_label == "defect")
                                .order_by(newest).limit(limit)).all()
        recent_rows = s.execute(base.add_columns(doubted, Inspection.review_label).order_by(newest).limit(limit)).all()
    good, defect, recent = ([row[0] for row in rows] for rows in (good_rows, defect_rows, recent_rows))
    photo_review = {which: [i for i, row in enumerate(rows) if row[1]]
                    for which, rows in (("good", good_rows), ("defect", defect_rows), ("recent", recent_rows))}
    # The promise is about good parts: a part a person confirmed defective is not a false
    # reject, so it does not count against it (unreviewed defects still do: at a plant's
    # defect rate of well under 1% they move the share by less than its interval's width).
    confirmed = sum(1 for row in recent_rows if row[2] == "defect")
    kept = [row for row in recent_rows if row[2] != "defect"]
    promise = promise_check(cal, [row[0] for row in kept], photo_review=[bool(row[1]) for row in kept])
    if promise is not None:
        promise["reviewed_defects_left_out"] = confirmed
        # what made the promise: training's calibration, or a false-reject target it was saved from
        target = (cal.get("tuned") or {}).get("false_reject_target")
        promise["promised_by"] = "target" if target is not None else "training"
        if target is not None:
            promise["false_reject_target"] = float(target)
    t = float(cal["threshold"])
    r = float(cal.get("review_threshold", t))
    active = active_version(station, product, mv.line)
    return {"product": product, "line": mv.line, "parts_line": mv.line or parts_line, "version": mv.version,
            "model_id": mv.model_id,
            # sent back on saving (expected_active): a version activated meanwhile is not overridden
            "active_version": active.version if active is not None else None,
            "not_active": not_active_warning(station, mv, active),
            "threshold": t, "review_threshold": r if r < t else None,
            "good_scores": good, "defect_scores": defect, "recent_scores": recent,
            # positions in each list of the parts the photo check sent to REVIEW, whatever their score
            "photo_review": photo_review, "promise": promise}


def _scored_parts(station: Any, product: str, line: str, version: Optional[int]) -> tuple[Any, ...]:
    """(version, its calibration, the query of the scores of the parts its model judged,
    the line whose parts they are or None): what :func:`tuning_data` and
    :func:`threshold_for_target` read their parts through, so both see the same parts."""
    parts_line = None
    if line:
        # the lines parts were inspected on, and those with a model of their own (none yet, maybe)
        lines = sorted(set(part_names.stored_names(station.db, "line"))
                       | {m.line for m in station.models.list(product) if m.line})
        parts_line = part_names.as_stored(line, lines)      # "l2" for L2
        if parts_line not in lines:
            raise NotFound(f"no part was ever inspected on line {line!r}; leave the line empty for every line's "
                           f"parts (lines: {', '.join(lines[:20]) or 'none yet'})")
    if version is None:
        try:
            mv = station.models.active_for(product, parts_line or "")
        except NotFound:
            if parts_line:
                raise
            mv = _on_its_line(station, product, None)
    else:
        try:
            mv = station.models.get(product, parts_line or "", version)
        except NotFound:
            if not parts_line:
                mv = _on_its_line(station, product, version)
            else:
                mv = station.models.get(product, "", version)     # a version every line shares
    cal = model_calibration(station, mv)
    ids = same_scores(station, mv)
    # the line's own parts: a test part checked every shift would count as many parts
    base = select(Inspection.score).where(Inspection.product == product, Inspection.model_id.in_(ids),
                                          Inspection.test_part.is_(None))
    if mv.line or parts_line:
        base = base.where(Inspection.line == (mv.line or parts_line))
    return mv, cal, base, parts_line


def check_target(false_reject_rate: float) -> None:
    """Refuse a false-reject target no threshold can be set for (InvalidRequest, 422)."""
    if not math.isfinite(false_reject_rate) or not 0 < false_reject_rate < 1:
        raise InvalidRequest(f"false_reject_rate is the share of good parts judged NG, above 0 and below 1 (0.005 "
                             f"for 0.5%), got {false_reject_rate:g}")
    if false_reject_rate >= 0.5:
        # a share, not a percentage: 0.5 sent for "0.5 %" set the threshold at the median good part
        raise InvalidRequest(f"false_reject_rate {false_reject_rate:g} would reject {false_reject_rate:.0%} of the "
                             "good parts: it is a share, not a percentage (0.005 for 0.5%)")


def _share_text(rate: float) -> str:
    return f"{rate * 100:.4g}%"


def threshold_for_target(station: Any, product: str, line: str, version: Optional[int],
                         false_reject_rate: float, limit: int = MAX_TARGET_PARTS) -> dict[str, Any]:
    """The NG threshold that holds ``false_reject_rate`` on the good parts of the random
    audit sample the version's model judged (newest ``limit``), with the evidence for it.

    Which good parts: the audit sample's (drawn by the photo's hash before the verdict),
    reviewed good or judged OK and not reviewed. Parts reviewed good alone are mostly the
    model's false alarms (people review what it flagged), so a target measured on them
    overstates the rate and sets the threshold high, over defects; every OK part of the
    line lies under the old threshold by construction. The audit sample is neither.
    Its parts judged NG or REVIEW that nobody reviewed are counted as good parts
    (``unreviewed_not_ok``): left out, the threshold came out below them and did not hold
    the target; a defect among them only raises the threshold.

    The threshold is the conformal one training sets (:func:`conformal_threshold`): at
    most ``false_reject_rate`` of good parts like these on average, and this threshold's
    own rate under ``false_reject_rate_upper_95`` with 95% confidence. A target needs
    at least ceil(1/target) - 1 such parts (199 for 0.5%), as ``train --frr`` does;
    fewer are refused (InvalidRequest) saying how many there are and the lowest target
    they support. ``escapes``: the reviewed defects the threshold (and the version's
    review band where it lies below it) would pass as OK: only the defects someone found.
    """
    check_target(false_reject_rate)
    mv, cal, base, parts_line = _scored_parts(station, product, line, version)
    newest = Inspection.id.desc()
    with station.db.session() as s:
        rows = s.execute(base.add_columns(Inspection.verdict, Inspection.review_label)
                         .where(Inspection.audit_sample.is_(True)).order_by(newest).limit(limit)).all()
        defect = list(s.scalars(base.where(Inspection.review_label == "defect").order_by(newest).limit(MAX_SCORES)))
    good = np.asarray([r[0] for r in rows if r[2] == "good" or (r[2] is None and r[1] == "OK")], dtype=np.float64)
    # judged NG or REVIEW, nobody said what they are: most are defects, some false rejects
    unsure = np.asarray([r[0] for r in rows if r[2] is None and r[1] != "OK"], dtype=np.float64)
    n, u = len(good), len(unsure)
    # The unreviewed NG and REVIEW parts are counted as good: the side that keeps the promise.
    # Left out, they are the sample's highest-scoring good parts when good, and the threshold
    # came out below them: asked for 1% on a line where 2.9% of good parts were NG, the
    # threshold set rejected 8.5% of them (a reviewer's simulation). Counted, a defect among
    # them can only raise the threshold (more escapes, said below), never break the promise.
    counted = np.concatenate([good, unsure])
    enough = n + u > 0 and math.ceil((n + u + 1) * (1 - false_reject_rate)) <= n + u
    if not enough:
        raise InvalidRequest(_too_few_for_target(station, mv, false_reject_rate, n + u, u))
    thr, info = conformal_threshold(counted, false_reject_rate, confidence=TARGET_CONFIDENCE)
    upper = float(info[f"false_reject_rate_upper_{int(TARGET_CONFIDENCE * 100)}"])
    unsure_above = int(np.sum(unsure > thr))
    t = float(cal["threshold"])
    r = float(cal.get("review_threshold", t))
    # the version's band stays where it lies below the new threshold; at or above it, no band
    review = r if r < t and r < thr else None
    # said, not done quietly: the page kept its band box ticked and saved a version without one
    band_removed = (f"the review threshold ({r:.6g}) is at or above the new NG threshold ({thr:.6g}): the review band "
                    "is removed; to keep one, set a review threshold below the NG threshold"
                    if r < t and review is None else None)
    passed = int(np.sum(np.asarray(defect, dtype=np.float64) <= (thr if review is None else review)))
    return {"product": product, "line": mv.line, "parts_line": mv.line or parts_line, "version": mv.version,
            "false_reject_rate": float(false_reject_rate), "threshold": float(thr), "review_threshold": review,
            "band_removed": band_removed,
            "version_threshold": t, "version_review_threshold": r if r < t else None,
            "measured_on": TARGET_PARTS, "good_parts": n + u, "above": int(np.sum(counted > thr)),
            "rank": int(info["rank"]),
            "guaranteed_false_reject_rate": float(info["guaranteed_false_reject_rate"]),
            "confidence": TARGET_CONFIDENCE, "false_reject_rate_upper_95": upper,
            # of good_parts: the unreviewed NG and REVIEW ones counted as good, and how many lie above
            "unreviewed_not_ok": u, "unreviewed_not_ok_above": unsure_above,
            "escapes": rate_with_ci(passed, len(defect), TARGET_CONFIDENCE)}


def _too_few_for_target(station: Any, mv: ModelVersion, false_reject_rate: float, n: int, unsure: int) -> str:
    """Why ``n`` good parts cannot hold the target, and what to do (the rule of ``train --frr``)."""
    needed = max(math.ceil(1 / false_reject_rate) - 1, n + 1)
    text = (f"a {_share_text(false_reject_rate)} false-reject target needs at least {needed} good parts; you have "
            f"{n} ({TARGET_PARTS}, judged by v{mv.version}'s model")
    if unsure:
        text += f"; {unsure} of them judged NG or REVIEW, not reviewed yet"
    text += ")."
    if n:
        # the lowest target n parts hold: 1/(n+1), rounded up to the hundredth of a percent shown
        lowest = math.ceil(round(1e4 / (n + 1), 6)) / 1e4
        text += f" {n} parts hold a target of {_share_text(lowest)} or more."
    rate = float(getattr(station.config, "audit_sample_rate", 0.0) or 0.0)
    sample = (f"the audit sample is {_share_text(rate)} of the parts, --audit-sample-rate" if rate > 0
              else "this station keeps no audit sample: start it with --audit-sample-rate 0.02 or more")
    return (text + f" For a lower target, wait for more parts ({sample}), review the audit sample's NG and REVIEW "
            "parts, or recalibrate on a folder of good parts the model did not learn from (`lineguard recalibrate "
            "MODEL GOOD_DIR --frr RATE -o OUT`).")


def _on_its_line(station: Any, product: str, version: Optional[int]) -> ModelVersion:
    """The version (``version`` None: the active one) of a line's model when no line was
    given and no model every line shares has it: after ``serve --line L1`` every model is a
    line's, and the Tuning page without a line said "no active model on line ''" (and
    "activate a version", one being active on L1). The only line with one is taken;
    several are refused naming them, to choose from; none: NotFound, as before."""
    found = [m for m in station.models.list(product) if m.line
             and (m.active if version is None else m.version == version)]
    what = "an active version" if version is None else f"a version {version}"
    if len(found) == 1:
        return found[0]
    if found:
        lines = ", ".join(f"{m.line} (v{m.version})" for m in found)
        raise InvalidRequest(f"product {product!r} has {what} on several lines, and none every line shares: "
                             f"{lines}; choose the line (line=...) to tune")
    if version is None:
        return station.models.active_for(product, "")     # its own message: unknown product, none active
    return station.models.get(product, "", version)


def save_thresholds(station: Any, product: str, line: str, version: int, threshold: float,
                    review_threshold: Optional[float], note: Optional[str] = None,
                    by: Optional[str] = None, expected_active: Optional[int] = None,
                    false_reject_rate: Optional[float] = None, parts_line: Optional[str] = None) -> ModelVersion:
    """A new, inactive version of ``product``/``line``: version ``version``'s model with
    these thresholds. Activate it as any other version.

    ``false_reject_rate``: the false-reject target ``threshold`` was set from (measured on
    ``parts_line``'s parts; None: ``line``'s). The target is worked out again here, on the
    same parts, and a threshold it does not set is refused (InvalidRequest): the version
    then carries the target's promise, which the caller's word alone must not give it.

    ``expected_active``: the version the caller saw active for the product/line (0: none).
    When another one is active by now (a retrain or an upload activated it while the
    Tuning page stood open) nothing is saved (:class:`ActiveChanged`): the new version
    would carry the old model, and activating it would quietly undo the retrain. A
    version tuned while another is active says so in its note either way."""
    check_thresholds(threshold, review_threshold)
    # a part's score is its distance from the good parts, 0 at best: at or below 0 every
    # part is rejected (or, for the band, sent to review). Checked on saving only: a
    # version saved so before can still be opened here and put right.
    if threshold <= 0:
        raise InvalidRequest(f"threshold must be above 0 (scores are distances from the good parts, 0 at best: "
                             f"every part would be NG), got {threshold:g}")
    if review_threshold is not None and review_threshold <= 0:
        raise InvalidRequest(f"review_threshold must be above 0 (every part would go to REVIEW) or null (no "
                             f"review band), got {review_threshold:g}")
    src = station.models.get(product, line, version)
    active = active_version(station, product, src.line)
    have = active.version if active is not None else 0
    if expected_active is not None and expected_active != have:
        seen = f"v{expected_active}" if expected_active else "none"
        raise ActiveChanged(f"the active version of {_where(src)} changed since you looked: "
                            + (f"v{have} is active now" if have else "no version is active now")
                            + f", not {seen}; nothing was saved. Reload the Tuning page and tune the version "
                            f"active now (the API: send \"expected_active\": {have} to save thresholds for "
                            f"v{version} anyway)", active_version=have or None)
    data = station.models.store.path(src.file_key).read_bytes()
    found = _file_calibration(data)
    loaded = None
    if found is None:
        loaded = station.models.inspector(src)
        cal = model_calibration(station, src)
    else:
        cal = found[1]
    old_t = float(cal["threshold"])
    old_r = float(cal.get("review_threshold", old_t))
    new_r = threshold if review_threshold is None else review_threshold
    check_against_calibrated(threshold, review_threshold, calibrated_threshold(cal))
    if old_t == threshold and old_r == new_r:
        raise InvalidRequest(f"version {version} already has threshold {threshold:g} and review threshold "
                             f"{new_r:g}; move them before saving")
    target = None
    if false_reject_rate is not None:
        target = _target_of(station, src, threshold, false_reject_rate, line if parts_line is None else parts_line)
    new = rewrite_thresholds(data, tuned_calibration(cal, threshold, review_threshold, src, note, by, target),
                             loaded)
    # the band said only when there is one, before or after (without one its threshold is the NG one)
    band_before, band_after = old_r < old_t, review_threshold is not None
    why = f"thresholds of v{version} tuned: {old_t:.6g} -> {threshold:.6g}"
    if band_after and (not band_before or old_r != new_r):
        why += f", review {f'{old_r:.6g}' if band_before else 'none'} -> {new_r:.6g}"
    elif band_before and not band_after:
        why += ", review band removed"
    if target is not None:
        why += f", from a {_share_text(target['false_reject_rate'])} false-reject target"
    # said where the version is listed: whoever activates it later sees it is not the model judging now
    kind = _beside_active(station, src, active)
    if kind == "none":
        why += " (saved while no version was active)"
    elif kind is not None and active is not None:
        why += (f" (saved while v{active.version} was active, " + (
            "the same model with other thresholds)" if kind == "same" else
            f"another model: activating this version puts v{version}'s model back)"))
    return station.add_model(new, product, src.line, note=f"{why}. {note}" if note else why, by=by, activate=False)


def _target_of(station: Any, src: ModelVersion, threshold: float, false_reject_rate: float,
               parts_line: str) -> dict[str, Any]:
    """The answer of :func:`threshold_for_target` for the version ``src`` and this target,
    when it sets ``threshold``; else InvalidRequest saying what to do."""
    found = threshold_for_target(station, src.product, parts_line, src.version, false_reject_rate)
    if found["version"] != src.version or (found["line"] or "") != (src.line or ""):
        raise InvalidRequest(f"the {_share_text(false_reject_rate)} false-reject target on line {parts_line!r} is "
                             f"measured for v{found['version']}{' of line ' + found['line'] if found['line'] else ''}, "
                             f"not v{src.version}; send the line the Tuning page shows (parts_line)")
    # JSON carries a float exactly; a tolerance only for a client that prints fewer digits
    if not math.isclose(threshold, found["threshold"], rel_tol=1e-9):
        raise InvalidRequest(f"threshold {threshold:.10g} is not the one a {_share_text(false_reject_rate)} "
                             f"false-reject target sets now ({found['threshold']:.10g}, on {found['good_parts']} good "
                             "parts): parts judged since moved it. Set the target again and save, or leave "
                             "false_reject_rate out to save a threshold set by hand (it carries no promise)")
    return found


def rejects_good_parts_warning(station: Any, mv: ModelVersion) -> Optional[str]:
    """What activating ``mv`` will be refused for, said when it is saved: the trial on the
    product's latest good parts that activation runs (:func:`..compare.try_on_good_parts`).
    None when it passes them. A threshold saved below every good part was taken without a
    word (0.5 where the model's was 19.53), and only its activation said so, blaming the model."""
    from .compare import try_on_good_parts
    active = active_version(station, mv.product, mv.line)
    try:
        trial = try_on_good_parts(station.db, station.images, station.models.inspector(mv), mv.product, mv.line,
                                  active.model_id if active is not None else None)
    except (StationError, BundleError, OSError):
        return None      # saved all the same: its activation loads it again and says what is wrong
    except Exception:    # noqa: BLE001 - advice only: the version is saved, a 500 now had it saved twice
        logging.getLogger(__name__).exception("the new version's trial on good parts failed; saved all the same")
        return None
    if not trial.rejects_good_parts:
        return None
    return (f"this threshold {trial.did(parts=f'good parts of {mv.product!r}')}: activating v{mv.version} will be "
            "refused unless forced (\"force\": true); set the threshold within the good parts' scores the Tuning "
            "page shows")
