"""A candidate model judging new parts beside the active one (shadow mode).

The candidate's verdict is stored per part (``shadow_results``) for the compare page
and never signalled: the PLC, the sinks and the answer only ever hear the active model.
The part is handed over after its record is committed and answered, to one worker
thread behind a small queue; when the candidate falls behind, parts are dropped (and
counted) rather than held: a shadow must neither slow the line nor grow the station's
memory, and a comparison on most parts is as good as one on all.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from . import audit
from .db import DB_ERRORS
from .errors import Conflict, NotFound
from .orm import Inspection, ModelShadow, ModelVersion, ShadowResult, utcnow
from .registry import model_subject

log = logging.getLogger("lineguard.shadow")


@dataclass
class _Part:
    inspection_id: int
    product: str
    line: str
    active_model_id: str
    image: Any


def on_give_back(s: Session, product: str, line: str, back_to: ModelVersion, dropped: Optional[ModelVersion],
                 by: Optional[str]) -> Optional[str]:
    """The shadow of ``line``'s own version when a rollback gives the line back to the
    product's model of every line (``back_to``; ``dropped``: the line's own version that
    judged it until now), in the rollback's transaction; the sentence that says what
    became of it, for the change log (None: no such shadow).

    It was run against the line's own version, which judges nothing now. A candidate of
    another model runs on, set against the version that judges the line now: Compare
    counts only the parts the active version judged, so from the give-back on. One with
    the very model of ``back_to`` (its file uploaded again for the line) ends: the
    live model judges those parts itself, the shadow skipped every one, and Compare
    blamed it for all of them as parts it fell behind on."""
    row = s.get(ModelShadow, (product, line))
    cand = s.get(ModelVersion, row.model_version_id) if row is not None else None
    if row is None or cand is None:
        return None
    if cand.model_id == back_to.model_id:
        s.delete(row)
        why = (f"line {line} was given back to {model_subject(back_to)}, the same model as v{cand.version} "
               "(one model id): it judges the line's parts itself now")
        audit.record(s, "model.shadow_stopped", f"{product}/{line}", by, why=why)
        return f"the shadow of {model_subject(cand)} ended: {why}"
    return (f"{model_subject(cand)} runs on in shadow, compared from now on with {model_subject(back_to)}, "
            "which judges the line now" + (f", not with {model_subject(dropped)}" if dropped is not None else ""))


def compared_with(s: Session, cand_id: int, product: str, model_id: str, version: int, line: str = "") -> int:
    """The parts version ``cand_id`` judged in shadow beside the version ``version`` of
    ``product`` with ``model_id`` (the one live then), as Compare counts them
    (compare.compare: the parts that version judged, test parts left out)."""
    q = (select(func.count()).select_from(ShadowResult)
         .join(Inspection, Inspection.id == ShadowResult.inspection_id)
         .where(ShadowResult.model_version_id == cand_id, Inspection.product == product,
                Inspection.model_id == model_id, Inspection.registry_version == version,
                Inspection.test_part.is_(None)))
    if line:
        q = q.where(Inspection.line == line)
    return int(s.scalar(q) or 0)


@dataclass
class _RunsOn:
    """A shadow that runs on, compared from now on with the version made live: its
    sentence, the parts counted after the change's commit (LiveChange.said)."""
    cand: str                 # model_subject of the shadow's version
    cand_id: int
    after: str                # model_subject of the version made live, and what finds its parts
    after_of: tuple[str, str, int]
    before: Optional[str]
    before_of: Optional[tuple[str, str, int]]
    where: str                # " of line L" or ""
    on: str                   # the line Compare is asked for

    def sentence(self, again: Optional[int] = None, left: Optional[int] = None) -> str:
        said = (f"{self.cand} runs on in shadow, compared from now on with {self.after}, which judges the "
                f"parts{self.where} now: Compare counts only the parts {self.after} judged")
        if again is None:
            return said
        return (said + ", " + (f"{again} from an earlier time it was live" if again else "none yet")
                + (f"; the {left} parts compared with {self.before} are left out of it" if left else ""))


@dataclass
class LiveChange:
    """What became of the shadows when the live model changed (on_live_change): ``logged``,
    the change log's words (no counts: they are counted after the commit); said(db), the
    answer's, with the counts."""
    fixed: list[str]
    runs_on: list[_RunsOn]

    @property
    def logged(self) -> str:
        return "; ".join([r.sentence() for r in self.runs_on] + self.fixed)

    def said(self, db: Any) -> str:
        """With Compare's counts, read after the change's commit and outside its lock: two
        counts over every shadow result of the candidate inside the activation's transaction
        held SQLite's write lock 3.5 s at a million results, parts waiting behind it."""
        out = []
        try:
            with db.session() as s:
                for r in self.runs_on:
                    again = compared_with(s, r.cand_id, *r.after_of, r.on)
                    left = compared_with(s, r.cand_id, *r.before_of, r.on) if r.before_of is not None else 0
                    out.append(r.sentence(again, left))
        except DB_ERRORS:            # the change stands: its answer says it without the counts
            out = [r.sentence() for r in self.runs_on]
        return "; ".join(out + self.fixed)


def on_live_change(s: Session, product: str, line: str, before: Optional[ModelVersion], after: ModelVersion,
                   by: Optional[str]) -> Optional[LiveChange]:
    """The shadows whose live model changes when ``after`` is made to judge product/line in
    place of ``before`` (an activation, or a rollback within the line's own versions), in
    that change's transaction: what became of them, for its change-log entry (``shadow``:
    LiveChange.logged) and its answer (``warning``: LiveChange.said, with the counts, after
    the commit); None: no shadow concerned.

    Compare sets a shadow against the version live now, on the parts that version judged
    (compare.compare): the moment the live model changes, its counts start again from what
    the new one judged, and those of the one before leave it (they come back should that
    version be live again: the same two models on the same kind of parts). That happened
    with no word: the engineer read "0 parts" (or, after a rollback, the old version's
    parts back) on a comparison that had not changed in any way they had done. So it is
    said, with the counts. A shadow of the very model made live (its version activated,
    or the same file under another version) ends: the live model judges those parts itself,
    the shadow skipped every one, and Compare blamed it for all of them as parts it fell
    behind on (the same as on_give_back)."""
    fixed: list[str] = []
    runs_on: list[_RunsOn] = []
    own = s.get(ModelShadow, (product, line))
    # (the shadow, the line its Compare is asked for) whose live model is ``after`` from now on
    concerned: list[tuple[ModelShadow, str]] = [(own, line)] if own is not None else []
    if not line:
        # the model of every line judges each line with no version of its own active
        for row in s.scalars(select(ModelShadow).where(ModelShadow.product == product, ModelShadow.line != "")):
            if s.scalar(select(ModelVersion.id).where(ModelVersion.product == product, ModelVersion.line == row.line,
                                                      ModelVersion.active.is_(True))) is None:
                concerned.append((row, row.line))
    for row, on in concerned:
        cand = s.get(ModelVersion, row.model_version_id)
        if cand is None or cand.id == after.id:
            if cand is not None:    # promoted: ShadowRunner.stop_if ends it, after the commit
                fixed.append(f"the shadow of {model_subject(cand)} ends: it judges the parts itself now")
            continue
        where = f" of line {on}" if on else ""
        if cand.model_id == after.model_id:
            s.delete(row)
            why = (f"{model_subject(after)} was made to judge the parts{where}, the same model as v{cand.version} "
                   "(one model id): it judges them itself now")
            audit.record(s, "model.shadow_stopped", f"{product}/{row.line or '*'}", by, why=why)
            fixed.append(f"the shadow of {model_subject(cand)} ended: {why}")
            continue
        runs_on.append(_RunsOn(
            cand=model_subject(cand), cand_id=cand.id, after=model_subject(after),
            after_of=(after.product, after.model_id, after.version),
            before=model_subject(before) if before is not None else None,
            before_of=(before.product, before.model_id, before.version) if before is not None else None,
            where=where, on=on))
    if line and own is None:
        # the line had the shadow of every line beside the model of every line: its parts leave
        # that comparison, judged by a version of the line's own from now on
        wide = s.get(ModelShadow, (product, ""))
        cand = s.get(ModelVersion, wide.model_version_id) if wide is not None else None
        if cand is not None and before is not None and before.line == "" and after.line == line:
            fixed.append(f"{model_subject(cand)} runs on in shadow; line {line}'s parts, judged by "
                         f"{model_subject(after)} from now on, leave its Compare with {model_subject(before)} "
                         f"(GET /api/v1/models/{product}/compare?line={line}&candidate={cand.version} compares them "
                         f"with {model_subject(after)})")
    return LiveChange(fixed, runs_on) if fixed or runs_on else None


class ShadowRunner:
    """Which version shadows which product/line, and the worker that runs it."""

    CONFIG_TTL_S = 2.0   # another process's start/stop is seen within this

    def __init__(self, station: Any, queue_size: int = 8):
        self.station = station
        self._q: "queue.Queue[Optional[_Part]]" = queue.Queue(maxsize=max(1, queue_size))
        self._guard = threading.Lock()
        self._config: dict[tuple[str, str], ModelVersion] = {}
        self._config_until = 0.0
        self.judged = 0
        self.dropped = 0       # the candidate fell behind: these parts were not compared
        self.failed = 0
        self._busy = 0
        self._idle = threading.Condition(self._guard)
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    # -- which version shadows what ---------------------------------------------------
    def start(self, product: str, line: str, version: int, by: Optional[str] = None) -> ModelVersion:
        """Run ``version`` of product/line beside the active model on every new part."""
        models = self.station.models
        mv = models.get(product, line, version)
        active = self._active_or_none(product, line)
        if active is not None and active.model_id == mv.model_id:
            raise Conflict(f"version {version} of {product!r} is the model already active"
                           + (f" on line {line!r}" if line else "") + "; shadow a different version")
        models.loadable(mv)   # refuse one that cannot load now (or whose file is gone), not on the first part
        with self.station.db.session() as s:
            row = s.get(ModelShadow, (product, line))
            if row is not None and row.model_version_id == mv.id:
                return mv           # shadowing already: its run (and its start) stays as it is
            if row is None:
                s.add(ModelShadow(product=product, line=line, model_version_id=mv.id, started_by=by))
            else:
                # one shadow per product and line: the one running ends, and the log says so
                before = s.get(ModelVersion, row.model_version_id)
                audit.record(s, "model.shadow_stopped", f"{product}/{line or '*'}", by,
                             why=f"v{mv.version} shadows instead" + (f" of v{before.version}" if before else ""))
                row.model_version_id, row.started_at, row.started_by = mv.id, utcnow(), by
            audit.record(s, "model.shadow_started", model_subject(mv), by)
        self._changed()
        return mv

    def stop(self, product: str, line: str, by: Optional[str] = None) -> None:
        with self.station.db.session() as s:
            n = s.execute(delete(ModelShadow).where(ModelShadow.product == product,
                                                    ModelShadow.line == line)).rowcount
            if n:
                audit.record(s, "model.shadow_stopped", f"{product}/{line or '*'}", by)
        self._changed()
        if not n:
            # "no shadow runs" read as "it never had any", though its past runs are kept
            where = f"product {product!r}" + (f" line {line!r}" if line else "")
            raise NotFound(f"no shadow is running for {where}: nothing to stop (its past runs stay for GET "
                           f"/api/v1/models/{product}/compare?candidate=; start one with POST "
                           f"/api/v1/models/{product}/shadow)")

    def stop_if(self, mv: ModelVersion, by: Optional[str] = None) -> None:
        """A version made active stops shadowing (it now judges the parts itself)."""
        with self.station.db.session() as s:
            if s.execute(delete(ModelShadow).where(ModelShadow.model_version_id == mv.id)).rowcount:
                audit.record(s, "model.shadow_stopped", f"{mv.product}/{mv.line or '*'}", by,
                             why=f"v{mv.version} was made active")
        self._changed()

    def current(self) -> dict[tuple[str, str], ModelVersion]:
        """(product, line) -> shadow version, read at most every CONFIG_TTL_S."""
        now = time.monotonic()
        with self._guard:
            if now < self._config_until:
                return self._config
        with self.station.db.session() as s:
            rows = s.execute(select(ModelShadow.product, ModelShadow.line, ModelVersion)
                             .join(ModelVersion, ModelVersion.id == ModelShadow.model_version_id)).all()
        config = {(p, ln): mv for p, ln, mv in rows}
        with self._guard:
            self._config, self._config_until = config, now + self.CONFIG_TTL_S
        return config

    def for_part(self, product: str, line: str) -> Optional[ModelVersion]:
        """The shadow version for a part: the line's own first, else the product's."""
        config = self.current()
        return config.get((product, line)) or config.get((product, ""))

    def model_ids(self) -> set[str]:
        return {mv.model_id for mv in self.current().values()}

    def _changed(self) -> None:
        with self._guard:
            self._config_until = 0.0
        self.station._release_replaced()

    def _active_or_none(self, product: str, line: str) -> Optional[ModelVersion]:
        from .errors import NoActiveModel
        try:
            return self.station.models.active_for(product, line)
        except NoActiveModel:
            return None

    # -- the worker -----------------------------------------------------------------
    def submit(self, inspection_id: int, product: str, line: str, active_model_id: str, image: Any) -> bool:
        """Hand a committed part to the shadow; False when none runs, the queue is full or
        which shadow runs could not be read (no database connection in the pool's wait, the
        database away: the part is stored, and its answer must not be an error that asks for
        it again)."""
        try:
            if self.for_part(product, line) is None:
                return False
        except (PoolTimeout, *DB_ERRORS) as exc:
            log.warning("part %d not shadowed: which shadow runs could not be read from the database (%s)",
                        inspection_id, type(exc).__name__)
            self.dropped += 1
            self._count("dropped")
            return False
        with self._guard:
            try:
                self._q.put_nowait(_Part(inspection_id, product, line, active_model_id, image))
            except queue.Full:
                self.dropped += 1
                self._count("dropped")
                return False
            self._busy += 1
        return True

    def _count(self, outcome: str) -> None:
        metrics = getattr(self.station, "metrics", None)
        if metrics is not None:
            metrics.shadow_parts.labels(outcome).inc()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every part handed over is judged (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        try:
            # the line's answer comes first: on a busy CPU the kernel favours the
            # inspection threads over this one (Linux: a thread's own nice value)
            import os
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while True:
            part = self._q.get()
            if part is None:
                return
            try:
                self._judge(part)
            except Exception:  # noqa: BLE001 - a shadow failure never touches the line
                self.failed += 1
                self._count("failed")
                log.exception("shadow judgement of inspection %s failed", part.inspection_id)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _judge(self, part: _Part) -> None:
        mv = self.for_part(part.product, part.line)
        # stopped meanwhile, or promoted: the active model already judged this part
        if mv is None or mv.model_id == part.active_model_id:
            return
        result = self.station.models.inspector(mv).inspect(part.image)
        verdict = getattr(result.verdict, "value", str(result.verdict))
        try:
            with self.station.db.session() as s:
                s.add(ShadowResult(inspection_id=part.inspection_id, model_version_id=mv.id, verdict=verdict,
                                   score=float(result.score), created_at=utcnow()))
        except IntegrityError:
            return   # judged already (the part was handed over twice)
        self.judged += 1
        self._count("judged")

    def close(self) -> None:
        try:
            self._q.put_nowait(None)
        except queue.Full:
            # drain: parts not yet judged are dropped, like any the shadow falls behind on
            while True:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
            self._q.put_nowait(None)
        self._thread.join(timeout=5)
