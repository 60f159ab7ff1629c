"""Background jobs of a station (training a new model version from stored good parts).

Jobs run one at a time on a worker thread; their state is a database row so any
process (and the operator after a restart) can see it. A job that was running when the
process died is marked ``interrupted`` at the next start.
"""
from __future__ import annotations

import logging
import queue
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy import or_, select, update

from .errors import StationError
from .orm import Inspection, Job, utcnow

log = logging.getLogger("lineguard.jobs")

Trainer = Callable[..., Any]


def default_trainer(images: list[Path], **params: Any) -> Any:
    from ..vision.inspector import Inspector
    return Inspector.fit([str(p) for p in images], **params)


class JobRunner:
    def __init__(self, station: Any, trainer: Optional[Trainer] = None):
        self.station = station
        self.trainer = trainer or default_trainer
        self._q: queue.Queue = queue.Queue()
        with station.db.session() as s:
            s.execute(update(Job).where(Job.status.in_(["queued", "running"]))
                      .values(status="interrupted", message="the station stopped while this job ran; start it again"))
        self._thread = threading.Thread(target=self._run, name="jobs", daemon=True)
        self._thread.start()

    def submit_training(self, product: str, line: str = "", limit: int = 200, min_images: int = 10,
                        activate: bool = False, by: Optional[str] = None, **fit_params: Any) -> Job:
        good = self.good_part_keys(product, line, limit)
        if len(good) < min_images:
            raise StationError(f"only {len(good)} stored good parts of product {product!r}"
                               + (f" on line {line!r}" if line else "") + f"; at least {min_images} are needed. "
                               "Keep more OK images (retention ok_sample_rate) or upload a model trained offline")
        params = {"product": product, "line": line, "limit": limit, "activate": activate, "by": by,
                  "fit": fit_params}
        with self.station.db.session() as s:
            job = Job(kind="train", status="queued", progress=0.0, params=params)
            s.add(job)
            s.flush()
        self._q.put(job.id)
        return job

    def good_part_keys(self, product: str, line: str, limit: int) -> list[str]:
        """Image keys of parts judged OK and not overruled, or reviewed as good; newest first.

        A part judged REVIEW (or NG) is learned from only once a person has labelled it
        good: the model was unsure of it, and learning an unreviewed defect as good
        would teach the next version to pass it."""
        q = (select(Inspection.image_key).where(Inspection.product == product, Inspection.image_key.is_not(None))
             .where(or_(Inspection.review_label == "good",
                        (Inspection.verdict == "OK") & or_(Inspection.review_label.is_(None),
                                                           Inspection.review_label != "defect")))
             .order_by(Inspection.id.desc()).limit(limit))
        if line:
            q = q.where(Inspection.line == line)
        with self.station.db.session() as s:
            return list(dict.fromkeys(s.scalars(q)))

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
                self._train(job_id)
            except Exception as exc:  # noqa: BLE001 - a job failure is reported, never fatal
                log.exception("job %s failed", job_id)
                self._set(job_id, status="failed", message=f"{type(exc).__name__}: {exc}", finished_at=utcnow())

    def _train(self, job_id: int) -> None:
        job = self.get(job_id)
        p = job.params
        self._set(job_id, status="running", progress=0.05, message="collecting stored good parts")
        keys = self.good_part_keys(p["product"], p["line"], p["limit"])
        paths = [self.station.images.path(k) for k in keys if self.station.images.exists(k)]
        self._set(job_id, progress=0.15, message=f"training on {len(paths)} good parts")
        insp = self.trainer(paths, **(p.get("fit") or {}))
        self._set(job_id, progress=0.85, message="saving and registering the new version")
        with tempfile.TemporaryDirectory(dir=self.station.config.data_dir) as tmp:
            path = Path(tmp) / "model.lgm"
            insp.save(path)
            data = path.read_bytes()
        mv = self.station.add_model(data, p["product"], p["line"], note=f"trained by job {job_id} on "
                                    f"{len(paths)} stored good parts", by=p.get("by"), activate=p["activate"])
        self._set(job_id, status="done", progress=1.0, finished_at=utcnow(),
                  message=f"version {mv.version} registered" + (" and activated" if p["activate"] else ""),
                  result={"product": mv.product, "line": mv.line, "version": mv.version,
                          "model_id": mv.model_id, "images": len(paths)})

    def close(self) -> None:
        self._q.put(None)
