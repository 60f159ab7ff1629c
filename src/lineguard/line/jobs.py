"""Background jobs of a station (training a new model version from reviewed or sampled parts).

Jobs run one at a time on a worker thread; their state is a database row so any
process (and the operator after a restart) can see it. A job that was running when the
process died is marked ``interrupted`` at the next start; one running when the station
closes (a `systemctl stop`) stops at its fit's next progress report and is marked so then.
"""
from __future__ import annotations

import inspect
import logging
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy import or_, select, update

from . import audit
from .errors import ActiveChanged, Conflict, PassesDefects, RejectsGoodParts, StationError
from .orm import Inspection, Job, utcnow
from .part_names import check_product_and_line

log = logging.getLogger("lineguard.jobs")

Trainer = Callable[..., Any]


# What retraining may learn from. Never the unreviewed OK parts outside the audit sample:
# they are what the old model passed, its missed defects among them, and their scores all
# lie below the old threshold, so a threshold set on them inherits the old cut. Never an
# unreviewed NG or REVIEW part either, audit sample or not (see good_part_keys).
SOURCES = ("confirmed", "sample", "both")

# A retrain's thresholds are set on the audit-sample parts it learns from (a random draw of
# the line's parts) when it has at least this many; the parts reviewed good are learnt but
# not counted. Those are mostly the old version's false alarms, the oddest good parts: on
# real tiles and commutators, counted, they set the threshold above the line's defects (a
# walk: held-out escapes 43% -> 75% and 42% -> 26 of 26; benchmarks/retrain_threshold_study.py:
# 85% and 96% escapes, against 66.5% and 32.8% counting the sample). With fewer, the promise
# would rest on a handful of scores (20: the highest of them, about 5% false rejects
# expected), so every part counts and the job says why.
MIN_SAMPLE_FOR_THRESHOLD = 20


def default_trainer(images: list[Path], progress: Any = None, **params: Any) -> Any:
    from ..vision.inspector import Inspector
    # holdout 0: every part enters the model and sets the threshold by cross-fitting,
    # each scored by a model that did not learn from it (see Inspector.fit)
    params.setdefault("holdout", 0.0)
    return Inspector.fit([str(p) for p in images], progress=progress, **params)


def _n_train(insp: Any) -> Optional[int]:
    """How many parts a trained model says it learnt (``info['n_train']``; None: it does not say)."""
    info = getattr(insp, "info", None)
    n = info.get("n_train") if isinstance(info, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def _missing_photos(ids: list[int]) -> str:
    """The reference photos whose file is gone from the data folder, by id, and what to do."""
    shown = ", ".join(str(i) for i in ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
    return (f"{len(ids)} reference photo(s) are missing from the data folder's reference store (ids {shown}): "
            "remove each with lineguard reference remove ID, or add the photos again (lineguard reference add)")


def _unread(insp: Any, paths: list[Path], parts: list[tuple[str, str]]) -> dict[str, str]:
    """image key -> why, of the photos the trained model says it skipped as unreadable
    (``info['skipped']``: "<path>: <problem> (<hint>)", as Inspector.fit records them)."""
    info = getattr(insp, "info", None)
    skipped = info.get("skipped") if isinstance(info, dict) else None
    if not skipped:
        return {}
    out: dict[str, str] = {}
    for path, (key, _why) in zip(paths, parts):
        name = str(path) + ": "
        for said in skipped:
            if isinstance(said, str) and said.startswith(name):
                out[key] = said[len(name):]
                break
    return out


def _keys_named(insp: Any, name: str, paths: list[Path], parts: list[tuple[str, str]],
                calibration: bool = False) -> list[str]:
    """The image keys of the photos a trained model names under ``name`` in its ``info`` (its
    ``calibration``): a photo's name or a list of them, as Inspector.fit names photos by
    path. Empty where the model does not say (a plant's own trainer)."""
    record = getattr(insp, "calibration" if calibration else "info", None)
    named = record.get(name) if isinstance(record, dict) else None
    named = [named] if isinstance(named, str) else named if isinstance(named, list) else []
    by_path = {str(path): key for path, (key, _why) in zip(paths, parts)}
    return [by_path[str(n)] for n in named if str(n) in by_path]


def _named(entry: dict[str, Any]) -> str:
    """A look_at entry as a person finds it: a reference photo by its id, a part by its
    inspection, else the stored image."""
    if "reference_photo_id" in entry:
        return f"reference photo {entry['reference_photo_id']}"
    return f"part #{entry['inspection_id']}" if entry.get("inspection_id") else f"part image {entry['image_key']}"


def _reasons(entry: dict[str, Any]) -> str:
    """Why a look_at entry is named, in words."""
    said = []
    if "score" in entry["reasons"]:
        said.append(f"score {entry['score']:.4g} far above the others'" if isinstance(entry.get("score"), (int, float))
                    else "a score far above the others'")
    if entry.get("photo_issues"):
        said.append(("its colour: " if entry.get("colour") else "its photo: ") + "; ".join(entry["photo_issues"]))
    return ", and ".join(said)


def describe_sources(source: str, n: int, n_confirmed: int, n_sample: int, n_reference: int = 0) -> str:
    what = {"confirmed": "parts reviewed as good", "sample": "audit-sample parts judged OK or reviewed good",
            "both": "parts reviewed as good and audit-sample parts judged OK"}[source]
    if n_reference:
        # how many came from each source: the engineer sees the reference photos were learnt
        return (f"{n} {what} and reference photos of good parts ({n_confirmed} reviewed good, {n_sample} audit "
                f"sample, {n_reference} reference photos)")
    return f"{n} {what} ({n_confirmed} reviewed good, {n_sample} audit sample)"


def _takes(trainer: Trainer, name: str) -> bool:
    """Whether the trainer names a parameter (Inspector.fit and the default trainer take
    ``progress`` and, through ``**params``, ``calibrate_on``). Not one that merely takes
    ``**kwargs``: a plant's own trainer may pass them on to a library that refuses an
    unknown keyword."""
    if trainer is default_trainer:     # passes everything on to Inspector.fit
        return True
    try:
        return name in inspect.signature(trainer).parameters
    except (TypeError, ValueError):
        return False


class JobStopped(Exception):
    """The station is closing: the fit stops at its next progress report."""


# A fit reports its progress every photo and coreset step: stopped within a second or two.
# A plant's own trainer without progress cannot be stopped: the close waits this long for it.
CLOSE_WAIT_S = 30.0
INTERRUPTED = "the station stopped while this job ran; start it again"
# a job still queued when the station stopped: told it "ran", the engineer looked for what it had done
NOT_STARTED = "the station stopped before this job started: nothing was trained; start it again"


def _mark_stopped(s: Any, jobs: Any) -> None:
    """Mark ``jobs`` (an update of Job rows) interrupted: a running one as stopped while it
    ran, a queued one as never started (its progress as it was)."""
    for status, message in (("running", INTERRUPTED), ("queued", NOT_STARTED)):
        s.execute(jobs.where(Job.status == status)
                  .values(status="interrupted", message=message, finished_at=utcnow()))


class _FitProgress:
    """Inspector.fit's progress(stage, done, total) as the job's row: its share of the
    job (reading the photos 15-30 %, learning their features 30-80 %, the threshold
    after) and what it is doing, written at most every ``every_s`` and at each new stage,
    so a fit of thousands of photos does not write a row per photo."""

    # the coreset and the cross-scoring took two thirds of a 762-photo fit with the bar held
    # at 80% (the features' end); "coreset at 0.7x" (an extra input size) in its stage's band
    SPANS = {"load": (0.15, 0.30, "reading the photos"), "features": (0.30, 0.50, "learning the good parts' features"),
             "coreset": (0.50, 0.70, "choosing the patches to keep"),
             "cross-scoring": (0.70, 0.80, "scoring each good part without it"),
             "calibrate": (0.80, 0.85, "setting the threshold")}

    def __init__(self, write: Callable[..., None], trained_from: str, every_s: float = 1.0,
                 stopping: Callable[[], bool] = lambda: False):
        self.write, self.trained_from, self.every_s = write, trained_from, every_s
        self.stopping = stopping
        self._stage: Optional[str] = None
        self._last = 0.0
        self._shown = 0.15

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.stopping():
            raise JobStopped()
        lo, hi, what = self.SPANS.get(stage.split(" at ")[0], (0.15, 0.85, stage))
        now = time.monotonic()
        if stage == self._stage and now - self._last < self.every_s and done < total:
            return
        self._stage, self._last = stage, now
        share = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        counted = f" ({done} of {total})" if stage != "calibrate" and total > 1 else ""
        # never backwards: a trainer's own stage after these must not pull the bar back
        self._shown = max(self._shown, round(lo + (hi - lo) * share, 3))
        try:
            self.write(progress=self._shown, message=f"training on {self.trained_from}: {what}{counted}")
        except Exception:  # noqa: BLE001 - progress is for the page: a locked database must not fail the fit
            log.warning("could not write a training job's progress", exc_info=True)


class JobRunner:
    progress_every_s = 1.0      # how often a fit's progress is written to the job's row

    def __init__(self, station: Any, trainer: Optional[Trainer] = None):
        self.station = station
        self.trainer = trainer or default_trainer
        self._q: queue.Queue = queue.Queue()
        self._closing = threading.Event()
        with station.db.session() as s:
            _mark_stopped(s, update(Job))
        self._thread = threading.Thread(target=self._run, name="jobs", daemon=True)
        self._thread.start()

    def submit_training(self, product: str, line: str = "", limit: int = 200, min_images: int = 10,
                        activate: bool = False, by: Optional[str] = None, source: str = "both",
                        reference: bool = True, **fit_params: Any) -> Job:
        if source not in SOURCES:
            from .errors import InvalidRequest
            raise InvalidRequest(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        check_product_and_line(self.station.db, product, line, new_product=(
            "A retrain learns from the station's own photos of the product: inspect its parts here, or add reference "
            "photos of good parts (lineguard reference add), first"))
        good = self.good_part_keys(product, line, limit, source)
        refs = self.reference_keys(product, line, good) if reference else []
        # a row whose file is gone from the data folder is no photo to learn: counted, a retrain
        # asked for at least 10 learnt from 4
        store = self._references().store if refs else None
        refs_gone = [pid for key, pid in refs if not store.exists(key)]
        refs = [(key, pid) for key, pid in refs if store.exists(key)]
        if len(good) + len(refs) < min_images:
            doubted = self.doubted_photos(product, line, limit, source, good)
            n_ref_kept = len(self._references().for_training(product, line))
            raise StationError(f"only {len(good) + len(refs)} stored parts and reference photos of product "
                               f"{product!r}" + (f" on line {line!r}" if line else "") + " to learn from (source "
                               f"{source!r}: {describe_sources(source, len(good), *self._counts(good))}; "
                               + (f"{len(refs)} reference photos of good parts" if reference else
                                  f"reference photos not asked for, {n_ref_kept} kept") + f"); at least "
                               f"{min_images} are needed"
                               + (f"; {doubted} other photo(s) of parts it would learn were left out for their photo "
                                  "issues (unlike the photos the model learnt: a lamp, the focus, the exposure), "
                                  "which a retrain never learns, as they would widen the photo check until such a "
                                  "photo of a defect passes. If the line's photos have changed for good, train a "
                                  "model offline on photos as the line takes them now (lineguard train) and upload "
                                  "it; if not, see to the camera" if doubted else "")
                               + (f"; {_missing_photos(refs_gone)}" if refs_gone else "")
                               + ". Review more of its parts as good (review queue, gallery)"
                               + ("" if source == "both" else ", learn from both the parts reviewed good and the "
                                  "audit sample")
                               + ", keep more parts in the audit sample (the station's setting "
                               "--audit-sample-rate, LINEGUARD_AUDIT_SAMPLE_RATE), "
                               + ("learn from the reference photos too (\"reference\": true), " if not reference
                                  and n_ref_kept else "")
                               + "give the station the photos of good parts its first model was trained on "
                               "(lineguard reference add, or the Models page's reference photos), or upload a model "
                               "trained offline")
        # min_images is kept with the job: a reference photo's file gone from the data folder
        # before the job runs leaves it fewer photos than were counted here (checked again then)
        params = {"product": product, "line": line, "limit": limit, "activate": activate, "by": by,
                  "source": source, "reference": bool(reference), "min_images": min_images, "fit": fit_params}
        with self.station.db.session() as s:
            job = Job(kind="train", status="queued", progress=0.0, params=params)
            s.add(job)
            s.flush()
            audit.record(s, "model.training_started", f"{product}/{line or '*'} job {job.id}", by,
                         images=len(good) + len(refs), source=source, activate=activate,
                         reference_photos=len(refs) if reference else None)
        self._q.put(job.id)
        return job

    def good_part_keys(self, product: str, line: str, limit: int, source: str = "both",
                       doubted: bool = False) -> list[tuple[str, str]]:
        """(image key, why) of the parts training may learn from, newest first (``doubted``:
        instead, those it would learn but for their photo issues, to say how many were left out).

        ``why`` is "confirmed" (a person reviewed it as good, whatever the model said) or
        "sample" (in the random audit sample, judged OK by the model that judged it and
        not reviewed). An audit-sample part judged NG or REVIEW that nobody reviewed is
        never learnt: it is most likely a defect, and learnt, it sets the new threshold
        at its own score (every defect like it ships). A photo any part was reviewed as a
        defect with is left out whichever part it came with (a re-sent photo shares its
        image, not its review). Test parts are left out whatever their review (a red
        rabbit passed as OK by a failing station is a defect).
        """
        confirmed = Inspection.review_label == "good"
        sample = Inspection.audit_sample.is_(True) & (
            confirmed | (Inspection.review_label.is_(None) & (Inspection.verdict == "OK")))
        which = {"confirmed": confirmed, "sample": sample, "both": or_(confirmed, sample)}[source]
        # the photos reviewed as defects, by content (each part's photo looked up on its
        # index), and by the stored image's key (the reviewed parts' index: a few)
        from .reviews import photo_reviewed_as_defect
        defect_keys = select(Inspection.image_key).where(Inspection.reviewed.is_(True),
                                                         Inspection.review_label == "defect",
                                                         Inspection.image_key.is_not(None))
        q = (select(Inspection.image_key, Inspection.review_label)
             .where(Inspection.product == product, Inspection.image_key.is_not(None)).where(which)
             .where(~photo_reviewed_as_defect(), Inspection.image_key.not_in(defect_keys))
             .where(Inspection.test_part.is_(None))    # a red rabbit is never learnt as good
             # nor a photo unlike the good ones (a dim lamp): learnt, it would widen the photo
             # check until such a photo of a defect passes, whoever reviewed the part good
             .where(Inspection.photo_issues.is_not(None) if doubted else Inspection.photo_issues.is_(None))
             .order_by(Inspection.id.desc()).limit(limit))
        if line:
            q = q.where(Inspection.line == line)
        keys: dict[str, str] = {}
        with self.station.db.session() as s:
            for key, label in s.execute(q):
                keys.setdefault(key, "confirmed" if label == "good" else "sample")
        return list(keys.items())

    def _references(self) -> Any:
        from .reference import of_station
        return of_station(self.station)

    def reference_keys(self, product: str, line: str, parts: list[tuple[str, str]]) -> list[tuple[str, int]]:
        """(image key, photo id) of the reference photos of good parts a retrain of ``product``
        (``line``) learns beside ``parts`` (the stored parts': a photo among them is learnt
        once). Never a photo a part was reviewed as a defect with: a person said it shows a
        defect, whoever gave it as good (the same rule as the stored parts')."""
        have = {k for k, _why in parts}
        photos = [(key, pid) for pid, key in self._references().for_training(product, line) if key not in have]
        if not photos:
            return []
        shas = {key: Path(key).name.split(".")[0] for key, _pid in photos}
        defects: set[str] = set()
        with self.station.db.session() as s:
            values = list(shas.values())
            for i in range(0, len(values), 500):     # a few hundred bound values per query
                defects.update(s.scalars(select(Inspection.image_sha256).where(
                    Inspection.reviewed.is_(True), Inspection.review_label == "defect",
                    Inspection.image_sha256.in_(values[i:i + 500]))))
        return [(key, pid) for key, pid in photos if shas[key] not in defects]

    def doubted_photos(self, product: str, line: str, limit: int, source: str,
                       learnt: list[tuple[str, str]]) -> int:
        """How many photos a retrain would learn but for their photo issues (not counting
        one learnt anyway from another part that came without issues)."""
        have = {k for k, _why in learnt}
        return len({k for k, _why in self.good_part_keys(product, line, limit, source, doubted=True)} - have)

    @staticmethod
    def _counts(parts: list[tuple[str, str]]) -> tuple[int, int]:
        """(reviewed good, audit sample) among stored parts; reference photos are neither."""
        n_confirmed = sum(1 for _k, why in parts if why == "confirmed")
        return n_confirmed, sum(1 for _k, why in parts if why == "sample")

    def recent(self, limit: int = 20, status: Optional[list[str]] = None, kind: Optional[str] = None) -> list[Job]:
        """The newest jobs first (``status``, ``kind``: only those), so a page reloaded
        mid-training finds the job it started, and the engineer sees what the last
        trainings did."""
        q = select(Job).order_by(Job.id.desc()).limit(limit)
        if status:
            q = q.where(Job.status.in_(status))
        if kind:
            q = q.where(Job.kind == kind)
        with self.station.db.session() as s:
            return list(s.scalars(q))

    def get(self, job_id: int) -> Job:
        with self.station.db.session() as s:
            job = s.get(Job, job_id)
        if job is None:
            from .errors import NotFound
            raise NotFound(f"no job with id {job_id}")
        return job

    def _set(self, job_id: int, **values: Any) -> None:
        with self.station.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(**values))

    def _run(self) -> None:
        while True:
            job_id = self._q.get()
            if job_id is None:
                return
            try:
                if self._closing.is_set():
                    raise JobStopped()       # queued behind the one stopped: not started now
                self._train(job_id)
            except JobStopped:
                # the station is closing: said now for it and those queued behind it, not first
                # at the next start (a station never started again left them "running" for ever)
                stopped = [job_id]
                while not self._q.empty():
                    stopped.append(self._q.get_nowait())
                stopped = [j for j in stopped if j is not None]
                try:
                    with self.station.db.session() as s:
                        _mark_stopped(s, update(Job).where(Job.id.in_(stopped)))
                except Exception:  # noqa: BLE001 - the next start marks them all the same
                    log.warning("jobs %s: could not record that they were stopped", stopped, exc_info=True)
                log.info("training job(s) %s stopped: the station is closing", stopped)
                return
            except Exception as exc:  # noqa: BLE001 - a job failure is reported, never fatal
                log.exception("job %s failed", job_id)
                try:
                    self._set(job_id, status="failed", message=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
                except Exception:  # noqa: BLE001 - the database is down too: the thread must live for the next job
                    log.exception("job %s: could not record its failure", job_id)

    def _train(self, job_id: int) -> None:
        from ..vision.inspector import PHOTO_COLOUR_OFF, TOO_SMALL_HINT
        job = self.get(job_id)
        p = job.params
        source = p.get("source", "both")
        self._set(job_id, status="running", progress=0.05, message="collecting the parts to learn from")
        parts = [(k, why) for k, why in self.good_part_keys(p["product"], p["line"], p["limit"], source)
                 if self.station.images.exists(k)]
        paths = [self.station.images.path(k) for k, _why in parts]
        # the reference photos of good parts after the stored parts (a job from before them:
        # learnt too, as a retrain now is by default); a file gone from the folder is skipped
        ref_ids: dict[str, int] = {}
        ref_missing: list[int] = []      # the ids of the reference photos whose file is gone
        if p.get("reference", True):
            store = self._references()
            for key, pid in self.reference_keys(p["product"], p["line"], parts):
                if store.store.exists(key):
                    ref_ids[key] = pid
                    parts.append((key, "reference"))
                    paths.append(store.path(key))
                else:
                    ref_missing.append(pid)
        min_images = int(p.get("min_images") or 0)
        if len(paths) < min_images:
            # counted when the job was asked for, by their rows; a file gone since (a restore
            # without it, a disk cleaned by hand) would leave a model learnt from too few
            # parts, its threshold set by a handful of scores
            self._set(job_id, status="failed", finished_at=utcnow(),
                      message=f"only {len(paths)} stored parts and reference photos of product {p['product']!r}"
                              + (f" on line {p['line']!r}" if p["line"] else "") + f" could be read, at least "
                              f"{min_images} are needed"
                              + (f": {_missing_photos(ref_missing)}" if ref_missing else
                                 " (stored parts' images were deleted since the job was asked for)")
                              + "; nothing was trained")
            return
        trained_from = describe_sources(source, len(paths), *self._counts(parts), len(ref_ids))
        self._set(job_id, progress=0.15, message=f"training on {trained_from}")
        fit = dict(p.get("fit") or {})
        if _takes(self.trainer, "progress"):
            fit["progress"] = _FitProgress(lambda **v: self._set(job_id, **v), trained_from, self.progress_every_s,
                                           stopping=self._closing.is_set)
        in_sample = self._in_audit_sample(p["product"], [k for k, why in parts if why != "reference"])
        # The threshold is set on a random draw of good parts: the audit sample's, and the
        # reference photos (the photos of good parts a first model learnt, not picked for being
        # odd); the parts reviewed good after a false alarm are learnt but not counted.
        counted = [k in in_sample or why == "reference" for k, why in parts]
        n_sample = sum(counted)
        by_sample = MIN_SAMPLE_FOR_THRESHOLD <= n_sample < len(parts) and _takes(self.trainer, "calibrate_on")
        if by_sample:
            fit["calibrate_on"] = counted
        if _takes(self.trainer, "exclude_suspects"):
            # an audit-sample part nobody reviewed that scores far above the others is most
            # likely a defect the old version passed: learnt and counted it lifts the
            # threshold to its own score (with fewer than 99 parts counted, the highest sets
            # it). Left out, and named under look_at for a person; one reviewed good stays.
            fit.setdefault("exclude_suspects", [why == "sample" for _k, why in parts])
        if _takes(self.trainer, "exclude_odd_suspects"):
            # a photo odd on both counts (far above the others in score, and unlike them as a
            # photo: outside the photo check's range, never passed on its score) is left out
            # whoever gave it: one black reference photo among the good ones set the threshold
            # alone (58.17 where the version before had 19.9) and a crack part passed as OK
            fit.setdefault("exclude_odd_suspects", True)
        insp = self.trainer(paths, **fit)
        cal = getattr(insp, "calibration", None) or {}
        # Every count below is the model's own: a part the fit left out (an unreviewed
        # audit-sample part far above the others) was counted as learnt ("28 images" of a
        # model that learnt 27), and named under look_at as learnt from.
        left_out = self._left_out(insp, paths, parts, cal)
        # the photos the fit could not read (a reference photo cut short on the disk): not
        # learnt, so not counted under any source, and named for a person to replace
        unread = _unread(insp, paths, parts)
        # of them, those read but left out for their size: not damaged, added again they are
        # left out again (they were told to be removed and added again)
        too_small = {k: unread.pop(k).removesuffix(f" ({TOO_SMALL_HINT})")
                     for k in _keys_named(insp, "skipped_too_small", paths, parts) if k in unread}
        learnt = [(k, why) for k, why in parts if k not in left_out and k not in unread and k not in too_small]
        n_learnt = _n_train(insp) or len(learnt)
        n_sample = sum(1 for k, why in learnt if k in in_sample or why == "reference")
        n_reference = sum(1 for _k, why in learnt if why == "reference")
        n_confirmed, n_audit = self._counts(learnt)
        trained_from = describe_sources(source, n_learnt, n_confirmed, n_audit, n_reference)
        look_at = self._look_at(insp, paths, [k for k, _why in parts], p["product"], left_out, ref_ids)
        # a threshold still set by a part named under look_at: said with the version, not in
        # the job's message alone (a black photo's 58.17 stood with "warning": null)
        set_by = _keys_named(insp, "threshold_set_by", paths, parts, calibration=True)
        odd_threshold = next((a for a in look_at if set_by and a["image_key"] == set_by[0]), None)
        threshold_warning = None
        if odd_threshold is not None:
            thr = getattr(insp, "threshold", None)
            threshold_warning = (f"its threshold{f' ({thr:.4g})' if isinstance(thr, (int, float)) else ''} is "
                                 "the score of "
                                 f"{_named(odd_threshold)}, named under look_at ({_reasons(odd_threshold)}): "
                                 "look at it before activating; if it is bad, "
                                 + ("remove it (lineguard reference remove "
                                    f"{odd_threshold['reference_photo_id']})" if "reference_photo_id" in odd_threshold
                                    else "review it as a defect") + " and retrain")
        self._set(job_id, progress=0.85, message="saving and registering the new version")
        with tempfile.TemporaryDirectory(dir=self.station.config.data_dir) as tmp:
            path = Path(tmp) / "model.lgm"
            insp.save(path)
            data = path.read_bytes()
        # the version's note is shown on the Models list beside it: the warning stays with it
        mv = self.station.add_model(data, p["product"], p["line"],
                                    note=f"trained by job {job_id} on {trained_from}"
                                         + (f"; warning: {threshold_warning}" if threshold_warning else ""),
                                    by=p.get("by"), train_images=n_learnt,
                                    trained_from=f"job {job_id}: {trained_from}")
        refused: Optional[Conflict] = None
        if p["activate"]:
            try:
                mv = self.station.activate_model(p["product"], p["line"], mv.version, p.get("by"))
            except (RejectsGoodParts, PassesDefects, ActiveChanged) as exc:
                # the training worked and its version is there to shadow, compare or force;
                # only the switch was refused. The job read "failed" with "uploaded as version
                # N, not activated", and the Models page said "training failed"
                refused = exc
        message = f"version {mv.version} registered" + (
            " and activated" if p["activate"] and refused is None else "")
        if refused is not None:
            message += f", not activated: {refused.message}"
        # the activation's warning (activated without a shadow comparison, a shadow now set
        # against it): the API's answer says it, and a retrain with activate=true dropped it
        warning = getattr(mv, "shadow_note", None) if p["activate"] and refused is None else None
        if warning:
            message += f"; {warning}"
        if threshold_warning:
            message += f"; warning: {threshold_warning}"
        warning = "; ".join(w for w in (threshold_warning, warning) if w) or None
        # how many came from each source (the stored parts reviewed good, the audit sample, the
        # reference photos): the engineer sees what it learnt without opening the version
        message += f"; learnt from {trained_from}"
        counted_what = ("audit-sample parts and reference photos" if n_reference else "audit-sample parts")
        if ref_missing:
            message += f"; not learnt: {_missing_photos(ref_missing)}"
        if unread:
            message += (f"; {len(unread)} photo(s) given could not be read and were not learnt: "
                        + "; ".join((f"reference photo {ref_ids[k]}" if k in ref_ids else f"part image {k}")
                                    + f" ({why})" for k, why in list(unread.items())[:5])
                        + (f"; and {len(unread) - 5} more" if len(unread) > 5 else "")
                        + (" (remove a damaged reference photo with lineguard reference remove ID and add it again "
                           "from the training folder)" if any(k in ref_ids for k in unread) else ""))
        if too_small:
            message += (f"; {len(too_small)} photo(s) given were read but left out for their size, far smaller than "
                        f"the others ({TOO_SMALL_HINT.removesuffix(': left out')}): "
                        + "; ".join((f"reference photo {ref_ids[k]}" if k in ref_ids else f"part image {k}")
                                    + f" ({why})" for k, why in list(too_small.items())[:5])
                        + (f"; and {len(too_small) - 5} more" if len(too_small) > 5 else "")
                        + (" (remove such a reference photo with lineguard reference remove ID: added again, it is "
                           "left out again)" if any(k in ref_ids for k in too_small) else ""))
        if by_sample:
            message += (f"; its threshold was set on the {n_sample} {counted_what} among them (a random draw of "
                        f"the line), the other {n_learnt - n_sample}, reviewed good, were learnt but not counted "
                        "(parts people chose to review are no random draw: the old version's false alarms among "
                        "them are the oddest good parts)")
        elif MIN_SAMPLE_FOR_THRESHOLD <= n_sample < n_learnt:
            # a plant's own trainer that does not name calibrate_on
            message += (f"; the trainer takes no calibrate_on, so every part set its threshold, not only the "
                        f"{n_sample} {counted_what}: the old version's false alarms reviewed good among them "
                        "may lift it above the line's defects")
        elif n_sample < n_learnt and n_sample < MIN_SAMPLE_FOR_THRESHOLD:
            message += (f"; only {n_sample} of its parts are in the audit sample"
                        + (" or reference photos" if n_reference else "") + f" (at least "
                        f"{MIN_SAMPLE_FOR_THRESHOLD} set the threshold alone), so every part set it, the old "
                        "version's false alarms reviewed good among them: it may pass defects. Keep more parts in "
                        "the audit sample (--audit-sample-rate), give the station the photos of good parts its "
                        "first model learnt (lineguard reference add), or retrain later")
        if cal.get("suspects_excluded"):
            odd = {a["image_key"] for a in look_at if a["image_key"] in left_out and a.get("photo_issues")
                   and not a.get("colour")}
            if not odd:
                message += (f"; {cal['suspects_excluded']} audit-sample part(s) nobody reviewed scored far above the "
                            "others and were left out (most likely defects the old version passed)")
            elif left_out - odd:
                message += (f"; {len(left_out - odd)} audit-sample part(s) nobody reviewed scored far above the "
                            "others and were left out (most likely defects the old version passed)")
            if odd:
                message += (f"; {len(odd)} photo(s) given scored far above the others and were unlike them as photos "
                            "(named under look_at), and were left out (a photo like them is not passed on its score)")
        band = self._review_band(insp, fit, cal, n_sample if by_sample else n_learnt)
        if band is not None and band["empty"]:
            message += "; " + band["note"]
        at_top = bool(cal.get("rank")) and cal.get("rank") == cal.get("n_calibration")
        if at_top:
            # the CLI says it ("threshold set at the largest of their scores"); the station's
            # job said nothing, and on real tiles and commutators such a retrain, learnt from
            # the old version's false alarms (the oddest good parts), shipped 75% and 100% of
            # the defects held out
            message += (f"; its threshold is the highest of the {cal['n_calibration']} parts' own scores (each "
                        "scored by models without it): the oddest part it learned from sets it, and defects "
                        "scoring below it pass; " + ("it was activated all the same: watch what it passes (the "
                                                     "audit sample's reviews) and roll back if defects ship"
                                                     if p["activate"] and refused is None else
                                                     "run it in shadow and compare before activating"))
        # why the new version's colour check is off (photos of two camera settings among its
        # parts): a greyscale or tinted part is then judged on its score alone, which train says
        # and the job kept unsaid
        colour_off = (getattr(insp, "info", None) or {}).get(PHOTO_COLOUR_OFF)
        colour_off = colour_off if isinstance(colour_off, str) and colour_off else None
        if colour_off:
            message += f"; {colour_off}"
        if look_at:
            n_refs = sum(1 for a in look_at if "reference_photo_id" in a)
            counted_look = " and ".join(n for n in (f"{len(look_at) - n_refs} part(s)" if len(look_at) > n_refs
                                                    else "", f"{n_refs} reference photo(s)" if n_refs else "") if n)
            message += (f"; look at {counted_look} it was given that scored far above the others or "
                        "whose photos were unlike the others'" + (f" ({len(left_out)} left out of it)" if left_out
                                                                  else "")
                        + ", and review any bad one as a defect before the next retrain")
        self._set(job_id, status="done", progress=1.0, finished_at=utcnow(), message=message,
                  result={"product": mv.product, "line": mv.line, "version": mv.version,
                          "model_id": mv.model_id, "activated": bool(p["activate"]) and refused is None,
                          "not_activated": None if refused is None else {"code": refused.code,
                                                                         "message": refused.message},
                          # the activation's warning, and the threshold's when a part under look_at sets it
                          "warning": warning,
                          "images": n_learnt, "source": source, "look_at": look_at,
                          # the sentence why its colour check is off (None: on, or a model that does not say)
                          "photo_colour_off": colour_off,
                          # how many came from each source (the Models page says it)
                          "sources": {"reviewed_good": n_confirmed, "audit_sample": n_audit,
                                      "reference_photos": n_reference},
                          "threshold_is_highest_score": at_top, "review_band": band,
                          "threshold_set_on": {"parts": n_sample if by_sample else n_learnt,
                                               "audit_sample_only": by_sample, "audit_sample_parts": n_sample}})

    def _in_audit_sample(self, product: str, keys: list[str]) -> set[str]:
        """Which of these stored photos came with a part of the random audit sample (drawn
        by the photo's content, so a re-sent photo draws the same)."""
        found: set[str] = set()
        with self.station.db.session() as s:
            for i in range(0, len(keys), 500):     # a few hundred bound values per query
                q = (select(Inspection.image_key).distinct()
                     .where(Inspection.product == product, Inspection.audit_sample.is_(True),
                            Inspection.image_key.in_(keys[i:i + 500])))
                found.update(s.scalars(q))
        return found

    @staticmethod
    def _left_out(insp: Any, paths: list[Path], parts: list[tuple[str, str]], cal: dict[str, Any]) -> set[str]:
        """The parts the fit left out (``exclude_suspects``: audit-sample parts nobody
        reviewed that scored far above the others), by image key: its ``suspect_good``
        among the parts flagged, once its record says it left any out."""
        if not cal.get("suspects_excluded"):
            return set()
        info = getattr(insp, "info", None) or {}
        if isinstance(info.get("suspects_left_out"), list):
            # the fit names them (those unlike the others as photos too, whoever gave them)
            return set(_keys_named(insp, "suspects_left_out", paths, parts))
        flagged = {str(path): key for path, (key, why) in zip(paths, parts) if why == "sample"}
        return {flagged[str(s.get("image"))] for s in info.get("suspect_good") or []
                if str(s.get("image")) in flagged}

    @staticmethod
    def _review_band(insp: Any, fit: dict[str, Any], cal: dict[str, Any], counted: int) -> Optional[dict[str, Any]]:
        """Whether the review band asked for (``review_rate`` > 0, the replaced version's
        by default) opened, and when not, why, as the CLI's ``train`` says it: on 21-32
        parts a 5% band's REVIEW limit falls on the NG threshold, and the new version
        judged every part OK or NG, its review threshold null, with nothing said. None:
        no band asked for (or a trainer whose model has no thresholds to tell)."""
        rate = float(fit.get("review_rate") or 0.0)
        threshold, review = getattr(insp, "threshold", None), getattr(insp, "review_threshold", None)
        if rate <= 0 or not isinstance(threshold, (int, float)) or not isinstance(review, (int, float)):
            return None
        if review < threshold:
            return {"review_rate": rate, "empty": False}
        from ..vision.calibration import empty_band_cause
        frr = float(fit.get("false_reject_rate") or 0.01)
        n = cal.get("n_calibration")
        n = n if isinstance(n, int) and not isinstance(n, bool) else counted
        cause, needed = empty_band_cause(frr, rate, n)
        if cause == "tied":
            why = ("the highest scores of the parts that set the thresholds are tied: learn from more, or more "
                   "varied, good parts")
        elif cause == "under_one_rank":
            # on these parts the band's rank falls on the threshold's again (not monotone)
            why = (f"a {rate:.2%} band over {n} parts is less than one part's rank above the threshold: give a "
                   f"larger review_rate (at least {1 / (n + 1):.2%}) or learn from more parts")
        else:
            why = f"{n} parts set the thresholds, too few for a {rate:.2%} band above a {frr:.2%} false-reject rate" + (
                f" (it needs {needed}): learn from more parts (review more as good, keep more in the audit sample) "
                "or give a larger review_rate" if needed else "")
        return {"review_rate": rate, "empty": True, "parts": n, "parts_needed": needed,
                "note": f"the review band is empty (its REVIEW limit is at the NG threshold: the new version judges "
                        f"every part OK or NG, none REVIEW): {why}"}

    def _look_at(self, insp: Any, paths: list[Path], keys: list[str], product: str,
                 left_out: Optional[set[str]] = None,
                 reference: Optional[dict[str, int]] = None) -> list[dict[str, Any]]:
        """The parts the new model was given that scored far above the others
        (``Inspector.fit``'s suspects, highest first; ``left_out``: those it did not learn,
        said so), then those whose photos were far unlike the others' (its ``photo_odd``,
        left out of the photo check's range), then those of another colour than the others
        (its ``photo_colour_odd``: a grey photo among colour ones, left out of learning the
        colour check, ``colour`` true), as stored parts a person can open. A plant's good
        parts always hold a few bad ones: reviewed as a defect, a part is left out of every
        later retrain (``good_part_keys``)."""
        from ..vision.inspector import PHOTO_COLOUR_ODD
        by_path = {str(path): key for path, key in zip(paths, keys)}
        info = getattr(insp, "info", None) or {}
        suspects = [(by_path.get(str(s.get("image"))), s.get("score"), None, False)
                    for s in info.get("suspect_good") or []]
        suspects += [(by_path.get(str(o.get("image"))), None, list(o.get("issues") or []), colour)
                     for odd, colour in (("photo_odd", False), (PHOTO_COLOUR_ODD, True))
                     for o in info.get(odd) or []]
        suspects = [(k, score, issues, colour) for k, score, issues, colour in suspects if k]
        if not suspects:
            return []
        reference = reference or {}
        ids: dict[str, int] = {}
        with self.station.db.session() as s:
            q = (select(Inspection.id, Inspection.image_key)
                 .where(Inspection.product == product,
                        Inspection.image_key.in_([k for k, _, _, _ in suspects if k not in reference]))
                 .order_by(Inspection.id))
            for iid, key in s.execute(q):
                ids[key] = iid            # the latest inspection of that image
        # One entry per photo, with every reason it is named for (``reasons``: "score",
        # "photo", "colour"; ``why`` the first of them, as before): a black photo far above
        # the others was listed twice, once for its score and once for its photo, and counted
        # twice. A reference photo is no part: named by its id, to look at and remove if bad.
        merged: dict[str, dict[str, Any]] = {}
        for k, score, issues, colour in suspects:
            reason = "colour" if colour else "photo" if issues else "score"
            entry = merged.setdefault(k, {"inspection_id": ids.get(k), "image_key": k, "score": None,
                                          "why": "photo" if issues else "score", "reasons": [],
                                          **({"reference_photo_id": reference[k]} if k in reference else {})})
            if reason not in entry["reasons"]:
                entry["reasons"].append(reason)
            if score is not None:
                entry["score"] = score
            if issues:
                entry.setdefault("photo_issues", []).extend(i for i in issues if i not in entry["photo_issues"])
            if colour:
                # left out of learning the colour check, not of the photo check's range: the
                # Models page says which
                entry["colour"] = True
            if k in (left_out or ()):
                entry["left_out"] = True
        return list(merged.values())

    def close(self) -> None:
        """Stop the job running now (at its fit's next progress report) and wait for it. Left
        running, the fit's native code was still at work while the interpreter shut down: a
        station stopped during a retrain aborted (SIGABRT, exit 134: a `systemctl stop` left a
        core dump and a failed unit)."""
        self._closing.set()
        self._q.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(CLOSE_WAIT_S)
            if self._thread.is_alive():
                log.warning("a training job did not stop within %.0f s of the station closing (a trainer that "
                            "reports no progress cannot be stopped): it is marked interrupted at the next start",
                            CLOSE_WAIT_S)
