"""Evaluate an inspector on an MVTec-style category folder: every metric, one call.

    ev = evaluate(inspector, "datasets/magnetic_tile", out_dir="reports/tile")
    ev["image_auroc"], ev["false_reject_rate"], ev["escape_rate"], ev["review_load"]

Memory stays bounded by the pixel data the metrics need (one float per pixel), not by
the images: each image is loaded, inspected and dropped; only the anomaly maps of the
few gallery candidates are kept, and their images are re-read from disk for the
report.
"""
from __future__ import annotations

import heapq
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from .calibration import promise_check
from .dataset import GOOD, MVTecCategory, TestItem
from .errors import DatasetError, LineguardError
from .imageio import Photo, load_photo_for
from .preprocess import resize_map
from .metrics import PixelMetrics, f1_max, image_auroc

__all__ = ["evaluate"]

# progress(stage, done, total), the same shape the Inspector uses; stage "inspect".
Progress = Optional[Callable[[str, int, int], None]]


def _or_none(fn: Callable[..., Any], *args: Any) -> Any:
    """A metric, or None where it is undefined (e.g. only one class present)."""
    try:
        return fn(*args)
    except ValueError:
        return None


class _Lowest:
    """Keeps the k entries with the smallest keys (ties by arrival: earlier wins)."""

    def __init__(self, k: int):
        self.k = k
        self._heap: list[tuple[Any, ...]] = []

    def offer(self, key: tuple[float, int], payload: dict) -> None:
        if self.k <= 0:
            return
        entry = (-key[0], -key[1], payload)         # heap top = the largest key kept
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif (key[0], key[1]) < (-self._heap[0][0], -self._heap[0][1]):
            heapq.heapreplace(self._heap, entry)

    def payloads(self) -> list[dict]:
        return [e[2] for e in self._heap]


def _inspect(inspector: Any, photos: list[Photo], items: list[TestItem], batch_size: int,
             skipped: list[dict]) -> list[tuple[TestItem, Photo, Any]]:
    """Inspect a batch; if the batch fails, go one by one so one bad part costs one part."""
    try:
        results = inspector.inspect_batch(photos, batch_size=batch_size)
        return list(zip(items, photos, results))
    except (LineguardError, ValueError) as exc:
        if len(photos) == 1:
            skipped.append({"path": str(items[0].path), "defect_type": items[0].defect_type,
                            "error": f"inspection failed: {exc}"})
            return []
    out = []
    for it, photo in zip(items, photos):
        try:
            out.append((it, photo, inspector.inspect_batch([photo], batch_size=1)[0]))
        except (LineguardError, ValueError) as exc:
            skipped.append({"path": str(it.path), "defect_type": it.defect_type,
                            "error": f"inspection failed: {exc}"})
    return out


def _promise(inspector: Any, threshold: float, good_scores: np.ndarray,
             doubted: Optional[np.ndarray] = None) -> Optional[dict[str, Any]]:
    """The good test parts against what training promised for good parts like its own;
    None without good parts, or when the threshold is not the one the promise was made for.
    ``doubted``: which of them the photo check doubted, left out (``left_out_photo_doubted``):
    the promise is for photos like the training ones, and a dark or blurred photo the check
    already sent to REVIEW scores high; counted, 6 such among 26 good parts read as 19% "NG
    on their scores ... ABOVE the promise" beside a false-reject rate of 0."""
    cal = dict(getattr(inspector, "calibration", None) or {})
    left_out = 0 if doubted is None else int(np.sum(doubted))
    if left_out:
        good_scores = good_scores[~np.asarray(doubted, dtype=bool)]
    if not len(good_scores) or cal.get("threshold") is None or float(cal["threshold"]) != threshold:
        return None
    out = promise_check(cal, good_scores)
    if out is not None and left_out:
        out["left_out_photo_doubted"] = left_out
    return out


def _good_photos_seen(inspector: Any, good: list[Path]) -> Optional[str]:
    """What the good test photos the model learned from, or that set its threshold, do to
    the false-reject figure, by the prints the model keeps (as recalibrate and stress tell
    them: its training photos', and those of the good photos that set its threshold, held
    out at training or given to recalibrate); None where none are among them or the model
    keeps no prints. A test/good
    folder holding the training photos showed checks of the training promise that could
    not fail, without a word. (Not through vision.stress: it imports scipy, which an edge
    install has not.)"""
    from .bundle import CALIBRATION_PHOTOS
    from .inspector import LEARNT_PHOTOS, photo_prints
    info = getattr(inspector, "info", None)
    cal = getattr(inspector, "calibration", None)
    kept = [(set((info if isinstance(info, dict) else {}).get(LEARNT_PHOTOS) or ()), "the model learned from"),
            (set((cal if isinstance(cal, dict) else {}).get(CALIBRATION_PHOTOS) or ()), "that set its threshold")]
    if not good or not any(known for known, _ in kept):
        return None
    prints = []
    for f in good:
        try:
            prints.append(photo_prints(inspector.preprocess.load(f)[0][None])[0])
        except Exception:       # noqa: BLE001 - it was inspected above; a print that fails tells nothing
            continue
    said = [f"{n} of the {len(good)} good test photos are photos {how}"
            for known, how in kept if known and (n := sum(p in known for p in prints))]
    if not said:
        return None
    return ("; ".join(said) + ": they score lower than new parts do, so the false-reject rate and the check of "
            "what training promised flatter the model; test it on good parts it has not seen")


def _pct(rate: Any) -> str:
    return "n/a" if rate is None else f"{float(rate):.2%}"


_VERDICTS = ("OK", "NG", "REVIEW")


def _judged(records: list[dict], scores: np.ndarray, threshold: float, review_threshold: float) -> np.ndarray:
    """Each part's verdict as the station gave it (what items.csv lists): the score rule
    (NG above ``threshold``, REVIEW above ``review_threshold``, else OK) and whatever else
    judged the part, the photo check sending a photo unlike the good ones to REVIEW. A
    verdict that is none of the three (a stand-in inspector) falls back to the score rule."""
    by_score = np.where(scores > threshold, "NG", np.where(scores > review_threshold, "REVIEW", "OK"))
    return np.array([r["verdict"] if r["verdict"] in _VERDICTS else s for r, s in zip(records, by_score)],
                    dtype=object)


def evaluate(inspector: Any, category_root: Union[str, os.PathLike, MVTecCategory],
             out_dir: Union[str, os.PathLike, None] = None, batch_size: int = 16,
             progress: Progress = None, max_gallery: int = 12, fpr_limit: float = 0.3) -> dict:
    """Inspect every test image of a category and measure how well the inspector does.

    ``inspector`` needs ``threshold``, ``pixel_threshold`` and
    ``inspect_batch(images, batch_size=...) -> list[InspectionResult]``; a
    ``review_threshold`` below ``threshold`` is a review band (without one: no band).
    ``category_root`` is an MVTec-style folder (see :mod:`lineguard.vision.dataset`).

    Returns a dict with plain top-level keys: ``image_auroc``, ``pixel_auroc``,
    ``aupro`` (to ``fpr_limit``), ``f1_max`` and ``f1_threshold``, ``threshold`` (the
    inspector's) with ``false_reject_rate``/``escape_rate`` and their counts at it,
    the review band's ``review_threshold`` and its review load: ``review_load`` (share
    of all parts judged REVIEW), ``review_load_good``, ``review_load_defect`` and the
    counts ``reviews``, ``reviews_good``, ``reviews_defect``, and of those the REVIEWs the
    photo check made (a photo unlike the good ones whose score passed or rejected it): ``reviews_photo``,
    ``reviews_photo_good``, ``reviews_photo_defect``; ``promise``: the good test parts
    judged NG (and not OK) on their scores against what the calibration promised, with
    exact intervals (:func:`lineguard.vision.calibration.promise_check`). Every count
    follows the verdict each part was given, as items.csv lists it and the station judges:
    a false reject is a good part judged NG (score above ``threshold``); an escape is a
    defect judged OK (score at or below ``review_threshold`` and a photo the check did not
    doubt); a part judged REVIEW is neither, band or photo check: a person looks.
    Beside them, by the score alone whatever the photo check said: ``escape_rate_by_score``
    and ``escapes_by_score`` (defects scored at or below ``review_threshold``), of which
    ``escapes_held_by_photo_check`` only the photo check sent to REVIEW; and what its
    REVIEWs cost in good parts, ``review_load_photo_good`` (``reviews_photo_good`` of
    ``n_good``). ``n_good``, ``n_defect``, ``per_defect_type`` ({type: image_auroc (that
    type vs all good parts), pixel_auroc (that type's defect pixels vs all good pixels),
    escape_rate, escapes, escapes_by_score, escapes_held_by_photo_check, review_load,
    reviews_photo, n, mean_score}), ``skipped`` (unreadable images with the reason),
    ``notes``, timings, and ``items`` (one small dict per image: path, defect_type, score,
    verdict, and photo_issues where the photo check doubted the photo). A metric that is
    undefined (e.g. image AUROC or best F1 without good test images) is None. With
    ``out_dir`` the report is written there (:func:`lineguard.vision.report.write_report`)
    and ``report`` holds its index.html.
    """
    cat = category_root if isinstance(category_root, MVTecCategory) else MVTecCategory(category_root)
    threshold = float(inspector.threshold)
    review_threshold = min(float(getattr(inspector, "review_threshold", threshold)), threshold)
    pixel_threshold = float(inspector.pixel_threshold)
    batch_size = max(1, int(batch_size))
    test_items = cat.test_items
    total = len(test_items)

    records: list[dict] = []
    skipped: list[dict] = []
    notes: list[str] = []
    pix = PixelMetrics() if cat.has_ground_truth else None
    mask_problems: list[str] = []
    no_mask = 0
    resized_maps = 0
    # Gallery candidates: the report shows the lowest-scoring defects and the
    # highest-scoring good parts, so the same number of each is all that is kept.
    low_defects, high_goods = _Lowest(max_gallery), _Lowest(max_gallery)

    t_start = time.perf_counter()
    t_inspect = 0.0
    done = 0
    for start in range(0, total, batch_size):
        chunk = test_items[start:start + batch_size]
        photos, ok = [], []
        for it in chunk:
            try:
                photos.append(load_photo_for(inspector, it.path))
                ok.append(it)
            except LineguardError as exc:
                skipped.append({"path": str(it.path), "defect_type": it.defect_type, "error": str(exc)})
        t0 = time.perf_counter()
        inspected = _inspect(inspector, photos, ok, batch_size, skipped) if photos else []
        t_inspect += time.perf_counter() - t0
        for it, photo, res in inspected:
            verdict = getattr(res.verdict, "value", res.verdict)
            rec = {"path": str(it.path), "defect_type": it.defect_type,
                   "score": float(res.score), "verdict": str(verdict)}
            if getattr(res, "photo_issues", None):
                rec["photo_issues"] = list(res.photo_issues)
            idx = len(records)
            records.append(rec)
            amap = res.anomaly_map
            shape = photo.size_hw
            if amap is not None and np.shape(amap) != shape:
                amap = resize_map(amap, shape[1], shape[0])
                resized_maps += 1
            if pix is not None and amap is not None:
                try:
                    mask = cat.load_mask(it, image_shape=shape)
                except DatasetError as exc:
                    mask_problems.append(str(exc))
                    mask = None
                if mask is not None:
                    pix.add(amap, mask, tag=it.defect_type)
                elif it.is_defect:
                    no_mask += 1
            payload = {"index": idx, "anomaly_map": amap, "regions": list(getattr(res, "regions", []) or []),
                       "pixel_threshold": float(getattr(res, "pixel_threshold", pixel_threshold)),
                       "threshold": float(getattr(res, "threshold", threshold))}
            if it.is_defect:
                low_defects.offer((rec["score"], idx), payload)
            else:
                high_goods.offer((-rec["score"], idx), payload)
        done += len(chunk)
        if progress:
            progress("inspect", done, total)
        del photos, inspected

    scores = np.array([r["score"] for r in records], dtype=np.float64)
    labels = np.array([r["defect_type"] != GOOD for r in records], dtype=bool)
    types = np.array([r["defect_type"] for r in records], dtype=object)
    # One rule for every count, the station's: a part counts by the verdict it was given
    # (items.csv's). A good part judged NG is a false reject; a defect judged OK is an
    # escape; a part judged REVIEW is neither, a person looks at it, whatever sent it there:
    # the review band or the photo check (a defect there is caught at review, not shipped).
    # Counting the photo check's REVIEWs by their score instead called 42 magnetic-tile
    # defects escapes and gave a review load of 0 with 87 parts sent to a person.
    judged = _judged(records, scores, threshold, review_threshold)
    ng, in_review, passed = judged == "NG", judged == "REVIEW", judged == "OK"
    # the REVIEWs the photo check made: a doubted photo is REVIEW whatever its score, and those
    # whose score would have passed or been rejected are the check's (one in the band is the band's)
    doubted_photo = np.array([bool(r.get("photo_issues")) for r in records], dtype=bool)
    by_photo = in_review & doubted_photo & ((scores <= review_threshold) | (scores > threshold))
    # The escapes by the score alone, whatever the photo check said: a weaker model doubts more
    # photos, and a defect the photo check sends to REVIEW counts as caught, so the headline rate
    # flattered it (magnetic tile, 40 training photos: AUROC 0.85 -> 0.77 while the escape rate
    # "improved" 0.59 -> 0.34 with 212 defects sent to REVIEW for their photo). Beside it: the
    # defects only the photo check held back, and what that costs in good parts sent to a person.
    passed_by_score = scores <= review_threshold
    held_by_photo = labels & passed_by_score & in_review & doubted_photo
    # F1 needs good parts as much as AUROC does: without them every threshold below the lowest
    # defect "finds" all of them and F1 read 1.0000 on a folder of defects alone
    f1 = _or_none(f1_max, scores, labels) if (~labels).any() else None

    pixel_auroc = aupro = None
    per_type_pixel: dict[str, float] = {}
    t_pix = time.perf_counter()
    if pix is not None and pix.n_regions > 0:
        pixel_auroc = _or_none(pix.pixel_auroc)
        aupro = _or_none(pix.aupro, fpr_limit)
        per_type_pixel = _or_none(pix.pixel_auroc_by_tag) or {}
    t_pix = time.perf_counter() - t_pix

    per_type: dict[str, dict] = {}
    good = ~labels
    for t in cat.defect_types:
        sel = types == t
        if not sel.any():
            continue
        both = sel | good
        escapes_t = int((passed & sel).sum())
        per_type[t] = {
            "n": int(sel.sum()),
            "image_auroc": _or_none(image_auroc, scores[both], labels[both]),
            "pixel_auroc": per_type_pixel.get(t),
            "escape_rate": escapes_t / int(sel.sum()),
            "escapes": escapes_t,
            "escapes_by_score": int((passed_by_score & sel).sum()),
            "escapes_held_by_photo_check": int((held_by_photo & sel).sum()),
            "review_load": float(in_review[sel].mean()),
            "reviews_photo": int(by_photo[sel].sum()),
            "mean_score": float(scores[sel].mean()),
        }

    by_score = np.where(scores > threshold, "NG", np.where(scores > review_threshold, "REVIEW", "OK"))
    doubted = int(doubted_photo.sum())
    # where each photo's doubts are written: items.csv's photo_issues column, or the items returned
    issues_at = "the photo_issues column of items.csv" if out_dir is not None else "photo_issues in the items"
    if doubted:
        notes.append(f"{doubted} photos were unlike the model's good photos (photo check; see {issues_at} "
                     f"for why): {int(by_photo[good].sum())} good and {int(by_photo[labels].sum())} defective "
                     "parts judged REVIEW for it whatever their score (the band's own apart); they count in the "
                     "review load (reviews_photo_good, reviews_photo_defect) and a defect among them as caught at review, "
                     "not as an escape")
        held = int(held_by_photo.sum())
        if held:
            n_def, n_gd = int(labels.sum()), int(good.sum())
            by_score_n = int((passed_by_score & labels).sum())
            cost = (f"; what it costs: {int(by_photo[good].sum())} of {n_gd} good parts "
                    f"({_pct(by_photo[good].mean())}) sent to REVIEW by the photo check" if n_gd else "")
            notes.append(f"escape rate {_pct(passed[labels].mean())} ({int(passed[labels].sum())} of {n_def} defects "
                         f"judged OK) counts the {held} defects only the photo check held back (REVIEW for their "
                         f"photo; their scores would have passed them) as caught; on their scores alone "
                         f"{by_score_n} of {n_def} defects ({_pct(by_score_n / n_def)}) would have passed "
                         f"(escape_rate_by_score){cost}. A weaker model doubts more photos and this flatters "
                         "it: compare models by image_auroc and escape_rate_by_score")
        doubted_good = int(doubted_photo[good].sum())
        if doubted_good:
            notes.append(f"the check of what training promised for good parts leaves out the {doubted_good} good "
                         "photo(s) the photo check doubted: the promise is for photos like the training ones")
    disagree = int(sum(r["verdict"] != v for r, v in zip(records, by_score) if not r.get("photo_issues")))
    if disagree:
        notes.append(f"{disagree} verdicts differ from the score rule (NG above threshold, REVIEW above "
                     "review_threshold, else OK); rates here count the verdicts as given (items.csv)")
    if labels.any() and not good.any():
        notes.append("no good test photos (test/good): image AUROC, best F1 (f1_max), the false reject rate and "
                     "the promise check are not measured, as they weigh defects against good parts; add good "
                     "photos the model has not learned from to test/good")
    if skipped:
        notes.append(f"{len(skipped)} test images could not be inspected and are left out (see skipped)")
    if pix is None:
        notes.append("no ground_truth folder: pixel metrics (pixel AUROC, AUPRO) not computed")
    elif pix.n_regions == 0:
        notes.append("no defect pixels in any mask: pixel metrics not computed")
    if no_mask:
        notes.append(f"{no_mask} defect images have no usable mask and are left out of the pixel metrics")
    notes.extend(mask_problems[:20])
    if resized_maps:
        notes.append(f"{resized_maps} anomaly maps did not match their image size and were resized")

    # What training found in its good folder (named by train and eval alike): a far-out
    # "good" photo can set the threshold (KolektorSDD: 43.8, 26.3 without it, and every
    # defect passed) and the report must say so, with the rates without it.
    info = getattr(inspector, "info", None)
    info = info if isinstance(info, dict) else {}
    cal = getattr(inspector, "calibration", None)
    cal = cal if isinstance(cal, dict) else {}
    good_folder: dict[str, Any] = {"suspect_good": list(info.get("suspect_good") or []),
                                   "threshold_without_suspects": cal.get("threshold_without_suspects"),
                                   "photo_odd": list(info.get("photo_odd") or []),
                                   "duplicate_photos": list(info.get("duplicate_photos") or [])}
    tws = good_folder["threshold_without_suspects"]
    if good_folder["suspect_good"]:
        shown = ", ".join(str(s["image"]) for s in good_folder["suspect_good"][:5])
        line = (f"{len(good_folder['suspect_good'])} good training photo(s) scored far above the others "
                f"({shown}): a bad or odd part in the good folder? Look at them")
        if tws is not None and len(scores):
            # judged as above with only the reject threshold moved: the band (up to it) and
            # the photo check's REVIEWs stay, so a lower threshold never adds escapes
            ng_w = (scores > float(tws)) & ~doubted_photo        # a doubted photo is REVIEW whatever its score
            ok_w = ~ng_w & (scores <= min(review_threshold, float(tws))) & ~doubted_photo
            r = {"false_rejects": int((ng_w & good).sum()), "escapes": int((ok_w & labels).sum())}
            r["false_reject_rate"] = r["false_rejects"] / int(good.sum()) if good.any() else None
            r["escape_rate"] = r["escapes"] / int(labels.sum()) if labels.any() else None
            good_folder["at_threshold_without_suspects"] = {
                k: r[k] for k in ("false_reject_rate", "escape_rate", "false_rejects", "escapes")}
            line += (f"; without them the threshold would be {float(tws):.4f} instead of {threshold:.4f}: "
                     f"false reject rate {_pct(r['false_reject_rate'])}, escape rate {_pct(r['escape_rate'])} "
                     "on these test parts")
        elif cal.get("suspects_excluded"):
            line += "; they were left out of the threshold (--exclude-suspects)"
        notes.append(line)
    seen_line = _good_photos_seen(inspector, [Path(r["path"]) for r in records if r["defect_type"] == GOOD])
    if seen_line:
        notes.append(seen_line)
    if good_folder["duplicate_photos"]:
        notes.append(f"{len(good_folder['duplicate_photos'])} set(s) of the same photo in the good training folder "
                     "(a camera saving twice, or a copy?): see duplicate_photos")

    n_eval = len(records)
    elapsed = time.perf_counter() - t_start
    evaluation: dict[str, Any] = {
        "image_auroc": _or_none(image_auroc, scores, labels),
        "pixel_auroc": pixel_auroc,
        "aupro": aupro,
        "aupro_fpr_limit": fpr_limit,
        "f1_max": f1[0] if f1 else None,
        "f1_threshold": f1[1] if f1 else None,
        "threshold": threshold,
        "pixel_threshold": pixel_threshold,
        "false_reject_rate": float(ng[good].mean()) if good.any() else None,
        "escape_rate": float(passed[labels].mean()) if labels.any() else None,
        "false_rejects": int(ng[good].sum()),
        "escapes": int(passed[labels].sum()),
        # the same defects by the score alone, whatever the photo check said, and those only the
        # photo check held back (judged REVIEW for their photo, their scores passing)
        "escape_rate_by_score": float(passed_by_score[labels].mean()) if labels.any() else None,
        "escapes_by_score": int((passed_by_score & labels).sum()),
        "escapes_held_by_photo_check": int(held_by_photo.sum()),
        "review_threshold": review_threshold,
        "review_load": float(in_review.mean()) if n_eval else None,
        "review_load_good": float(in_review[good].mean()) if good.any() else None,
        "review_load_defect": float(in_review[labels].mean()) if labels.any() else None,
        "reviews": int(in_review.sum()),
        "reviews_good": int(in_review[good].sum()),
        "reviews_defect": int(in_review[labels].sum()),
        # of those, the REVIEWs the photo check made (the score alone would have passed them)
        "reviews_photo": int(by_photo.sum()),
        "reviews_photo_good": int(by_photo[good].sum()),
        "reviews_photo_defect": int(by_photo[labels].sum()),
        # what the photo check's REVIEWs cost: the share of good parts it sent to a person
        "review_load_photo_good": float(by_photo[good].mean()) if good.any() else None,
        "promise": _promise(inspector, threshold, scores[good], doubted_photo[good]),
        "n_good": int(good.sum()),
        "n_defect": int(labels.sum()),
        "per_defect_type": per_type,
        "category": cat.root.name,
        "category_root": str(cat.root),
        "n_test_images": total,
        "n_evaluated": n_eval,
        "n_pixel_images": pix.n_images if pix is not None else 0,
        "n_defect_regions": pix.n_regions if pix is not None else 0,
        "skipped": skipped,
        **good_folder,
        "notes": notes,
        "seconds_total": round(elapsed, 3),
        "ms_per_image": round(1000.0 * t_inspect / n_eval, 3) if n_eval else None,
        "seconds_pixel_metrics": round(t_pix, 3),
    }
    for attr in ("model_id", "model_version"):
        try:
            value = getattr(inspector, attr, None)
        except Exception:                      # a model hash failing must not lose the evaluation
            value = None
        if value:
            evaluation[attr] = str(value)
    del pix

    if out_dir is not None:
        from .report import write_report

        items = [dict(r) for r in records]
        for p in low_defects.payloads() + high_goods.payloads():
            items[p["index"]].update({k: v for k, v in p.items() if k != "index"})
        evaluation["report"] = str(write_report(Path(out_dir), evaluation, items, max_gallery=max_gallery))
        if progress:
            progress("report", 1, 1)
    evaluation["items"] = records
    return evaluation
