"""Reading re-scored archives back from the station database (``GET /api/v1/rescores``).

The rows are written by ``lineguard rescore --station-db`` (:mod:`.scale.rescore_db`)
into tables of their own; nothing here touches the live inspections except the
comparison, which only reads them.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import NotFound
from .orm import Inspection, RescorePart, RescoreResult, RescoreRun

QUANTILES = (0.5, 0.9, 0.99)
# A running ``lineguard rescore`` renews its record's updated_at at least this often, with
# or without a chunk of results (StationRecorder's heartbeat): one chunk can take longer
# than SILENT_AFTER (a big --chunk-rows, a slow CPU, a Ray cluster busy with other work),
# and a live run then read "silent", as if killed.
HEARTBEAT_EVERY = dt.timedelta(minutes=1)
# A run whose record nothing renewed for this long is "silent": its process is gone (kill -9,
# a power cut, the machine lost: nothing could say so) or cannot reach the database. That is
# 30 heartbeats missed in a row, so a beat refused now and then (the station's SQLite busy,
# a PostgreSQL restart) never makes a live run read silent; a killed run reads silent this
# long after its last beat. Kept at 30 minutes, not a few beats: a run of a lineguard from
# before the heartbeat renews its record only with each chunk, and chunks of minutes are usual.
# A run hung inside its process (the heartbeat beats on) reads "running", its results not
# growing: updated_at says only that the process is alive.
SILENT_AFTER = dt.timedelta(minutes=30)


def _iso(t: Optional[dt.datetime]) -> Optional[str]:
    return t.isoformat() + "Z" if t is not None else None


def run_status(run: RescoreRun, now: Optional[dt.datetime] = None) -> str:
    """finished; stopped (it ended unfinished and said why); silent (its record not renewed
    for SILENT_AFTER, 30 of its HEARTBEAT_EVERY beats: a kill -9 or a power cut, which leave
    nothing said); running (alive: its process renewed the record lately, whether or not a
    chunk of results came)."""
    if run.finished_at is not None:
        return "finished"
    if run.stopped_at is not None:
        return "stopped"
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return "silent" if run.updated_at is not None and now - run.updated_at > SILENT_AFTER else "running"


def run_to_dict(run: RescoreRun, now: Optional[dt.datetime] = None,
                last_results_at: Optional[dt.datetime] = None) -> dict[str, Any]:
    counts = dict(run.counts or {})
    return {"id": run.id, "out": run.out, "images": run.images, "model_id": run.model_id,
            "model_version": run.model_version, "mode": run.mode, "listed": run.listed,
            "results": sum(counts.values()), "counts": counts, "starts": run.starts,
            "started_at": _iso(run.started_at), "updated_at": _iso(run.updated_at),
            "finished_at": _iso(run.finished_at), "finished": run.finished_at is not None,
            "status": run_status(run, now), "stopped_at": _iso(run.stopped_at), "stop_reason": run.stop_reason,
            "silent_after_s": SILENT_AFTER.total_seconds(), "heartbeat_s": HEARTBEAT_EVERY.total_seconds(),
            # updated_at is renewed by the heartbeat too: when results last came tells a run
            # hung inside its process (running, this not moving) from one at work
            "last_results_at": _iso(last_results_at)}


def _last_results(s: Session, run_ids: list[int]) -> dict[int, dt.datetime]:
    """Each run's newest chunk of results copied (rescore_parts.loaded_at)."""
    if not run_ids:
        return {}
    q = (select(RescorePart.run_id, func.max(RescorePart.loaded_at)).where(RescorePart.run_id.in_(run_ids))
         .group_by(RescorePart.run_id))
    return {run_id: at for run_id, at in s.execute(q)}


def list_runs(s: Session, limit: int = 50, before_id: Optional[int] = None) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
    q = select(RescoreRun)
    if before_id is not None:
        q = q.where(RescoreRun.id < before_id)
    q = q.order_by(RescoreRun.id.desc()).limit(max(1, min(limit, 500)))
    runs = list(s.scalars(q))
    last = _last_results(s, [r.id for r in runs])
    return [run_to_dict(r, last_results_at=last.get(r.id)) for r in runs]


def _quantiles(s: Session, run_id: int) -> dict[str, Optional[float]]:
    """Nearest-rank score quantiles, read in order from the (run_id, score) index: no sort,
    no scores sent to Python, and the same on SQLite (which has no percentile function)
    and PostgreSQL. The OFFSET still walks the index, so a p99 costs a pass over the run."""
    scored = RescoreResult.score.is_not(None)
    n = s.scalar(select(func.count()).select_from(RescoreResult).where(RescoreResult.run_id == run_id, scored)) or 0
    out: dict[str, Optional[float]] = {"min": None, **{f"p{round(q * 100):d}": None for q in QUANTILES}, "max": None}
    if not n:
        return out
    base = select(RescoreResult.score).where(RescoreResult.run_id == run_id, scored).order_by(RescoreResult.score)
    for name, k in (("min", 0), *((f"p{round(q * 100):d}", int(q * (n - 1))) for q in QUANTILES), ("max", n - 1)):
        out[name] = s.scalar(base.offset(k).limit(1))
    return out


def compare_live(s: Session, run_id: int) -> dict[str, Any]:
    """For archive images the line also inspected (same SHA-256): how many times the
    re-score's verdict differs from the live one, and which way.

    Counted per (inspection, result) pair: an image inspected twice is counted twice."""
    q = (select(Inspection.verdict, RescoreResult.verdict, func.count())
         .join(Inspection, Inspection.image_sha256 == RescoreResult.sha256)
         .where(RescoreResult.run_id == run_id, RescoreResult.verdict.is_not(None))
         .group_by(Inspection.verdict, RescoreResult.verdict))
    matched = changed = 0
    changes: dict[str, int] = {}
    for live, new, n in s.execute(q):
        matched += n
        if live != new:
            changed += n
            changes[f"{live}->{new}"] = n
    return {"matched": matched, "changed": changed, "unchanged": matched - changed,
            "changes": dict(sorted(changes.items()))}


def run_summary(s: Session, run_id: int, verdict: str = "NG", limit: int = 100, offset: int = 0,
                with_live: bool = True) -> dict[str, Any]:
    """A run's counts, score quantiles, comparison with the live verdicts, and one page
    of its ``verdict`` results (highest score first; ``error`` lists unreadable images)."""
    run = s.get(RescoreRun, run_id)
    if run is None:
        raise NotFound(f"no rescore run with id {run_id}; GET /api/v1/rescores lists them")
    body = run_to_dict(run, last_results_at=_last_results(s, [run.id]).get(run.id))
    body["score_quantiles"] = _quantiles(s, run_id)
    if with_live:
        body["compare_live"] = compare_live(s, run_id)
    q = select(RescoreResult).where(RescoreResult.run_id == run_id)
    if verdict == "error":
        q = q.where(RescoreResult.error.is_not(None)).order_by(RescoreResult.path)
    else:
        q = q.where(RescoreResult.verdict == verdict).order_by(RescoreResult.score.desc(), RescoreResult.id)
    limit = max(1, min(limit, 1000))
    rows = list(s.scalars(q.offset(offset).limit(limit + 1)))
    body["page"] = {"verdict": verdict, "offset": offset, "limit": limit,
                    "next_offset": offset + limit if len(rows) > limit else None,
                    "results": [_result(r) for r in rows[:limit]]}
    return body


def _result(r: RescoreResult) -> dict[str, Any]:
    return {"path": r.path, "sha256": r.sha256, "score": r.score, "verdict": r.verdict, "threshold": r.threshold,
            "review_threshold": r.review_threshold, "pixel_threshold": r.pixel_threshold,
            "n_regions": r.n_regions, "largest_region_area": r.largest_region_area, "error": r.error,
            "photo_issues": r.photo_issues,
            "scored_at": _iso(r.scored_at)}
