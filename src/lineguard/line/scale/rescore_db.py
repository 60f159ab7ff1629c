"""Re-scored results into the station database, beside their Parquet.

    recorder = StationRecorder.open("postgresql://lineguard@db/plant")   # or the station's SQLite URL
    rescore("cell.onnx", "archive/2026/", "results.parquet", recorder=recorder)

The rows go into tables of their own (``rescore_runs``, ``rescore_results``,
``rescore_parts``), never into ``inspections``: a re-score of last year's archive
must not move the live line counters, the shift's defect rate or the SPC charts.

**Which run.** A run is the pair (results folder, model id). Starting ``rescore`` again
with the same ``--out`` and the same model resumes the same run row; a different model
on the same ``--out`` is refused (that folder's parts hold the other model's scores).

**Written once, whatever kills it.** The Parquet part is the record: each part is
written first (temp file + rename), then copied into the database in one transaction
with a row in ``rescore_parts`` naming it. A run killed between the two leaves a part
the database lacks; the next start copies every part not yet named, before it scores
anything. Rows are upserted on (run, path), so a part copied twice adds nothing, and
an image re-scored after its file changed replaces its row.

**Alive, whatever a chunk takes.** From :meth:`StationRecorder.begin` until the run
finishes, stops or its recorder closes, a thread renews the run's ``updated_at`` every
``HEARTBEAT_EVERY`` (one minute) that no chunk of results renewed it: ``GET
/api/v1/rescores`` calls a run "silent" (presumed killed) after ``SILENT_AFTER`` with its
record not renewed, and one chunk of a live run can take longer than that. A killed process
beats no more, so it still reads silent. Each beat is one UPDATE of one row that waits at
most ``HEARTBEAT_WAIT_MS`` for a lock: on a busy SQLite file it gives way to the chunks and
the station's own writes (the next beat tries again) instead of queueing behind them.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from sqlalchemy import select, text, update

from ..db import Database, not_current_message, schema_revisions
from ..orm import RescorePart, RescoreResult, RescoreRun, utcnow
from ..errors import StationError
from ..rescores import HEARTBEAT_EVERY, SILENT_AFTER

log = logging.getLogger(__name__)

# bound parameters per IN (...) query: under SQLite's old limit of 999
_IN_CHUNK = 500
# the longest a heartbeat waits for another writer's lock (a chunk's copy, the live station's
# writes on its SQLite file) before it gives up until the next beat: a beat must never hold
# up a chunk, and missing one is harmless (SILENT_AFTER is 30 of them)
HEARTBEAT_WAIT_MS = 500
# beats failed in a row before it is said in the log (one refused beat is ordinary)
_BEATS_MISSED_SAID = 5
_RESULT_COLUMNS = ("path", "size", "mtime_ns", "sha256", "score", "verdict", "threshold", "review_threshold",
                   "pixel_threshold", "n_regions", "largest_region_area", "error", "photo_issues")


class StationDbError(Exception):
    """The station database cannot be used; the message says what to fix."""


def _shown(url: str) -> str:
    from ..config import without_password
    return without_password(url)


def _no_sqlite_file(url: str) -> None:
    """:class:`StationDbError` for a SQLite --station-db whose file is not there: opened, it
    would be made (a mistyped path became a new, empty database holding the results)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        u = make_url(url)
    except ArgumentError:
        return                                 # not a URL: Database says so, naming --station-db
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not Path(u.database).is_file():
        raise StationDbError(f"no station database at {u.database}: rescore writes into a station's database, it "
                             "makes none; give the station's --data DIR, or --station-db sqlite:////path/lineguard.db "
                             "of a station that has started once")


def _no_station_here(db: Database, url: str) -> str:
    """Why a database (or PostgreSQL schema) that holds no station is refused, naming the
    schemas that do. `LINEGUARD_DB_SCHEMA=hd_zz rescore --station-db ...` (a typo for hd_a)
    made a 31-table schema hd_zz and wrote the results there, exit 0; without a schema it
    would have built station tables in the public one."""
    from ..db import schemas_shown, station_schemas
    where = _shown(url)
    if db.is_sqlite:
        return (f"{where} holds no station's tables: rescore writes into a station's database, it makes none; give "
                "the station's --data DIR, or the --station-db of a station that has started once")
    here = f"schema {db.schema}" if db.schema else "its public schema (no --db-schema)"
    try:
        stations = [s for s in station_schemas(db.engine) if s != (db.schema or "public")]
    except Exception:  # noqa: BLE001 - the list is a hint; the refusal stands without it
        stations = []
    if not stations:
        return (f"{where} holds no station in {here}, nor in any other schema: rescore writes into a station's "
                "database, it makes none; check --station-db (the database `lineguard serve --db` uses)")
    if stations == ["public"]:
        fix = "no --db-schema (and unset LINEGUARD_DB_SCHEMA): the station is in the public schema"
    else:
        fix = (f"--db-schema {stations[0]}" if len(stations) == 1 else "--db-schema NAME of the station to write "
               "into") + " (or LINEGUARD_DB_SCHEMA), as the station's `lineguard serve` has it"
    return (f"{where} holds no station in {here}; this database holds stations in: {schemas_shown(stations)}. "
            f"rescore writes into a station, it makes none: give {fix}")


def _bucket(verdict: Optional[str], error: Optional[str]) -> str:
    return "error" if error is not None else str(verdict)


class StationRecorder:
    """Writes one rescore run into a station database (see the module docstring)."""

    def __init__(self, db: Database):
        self.db = db
        self.run_id: Optional[int] = None
        self.model_id = ""
        self._parts_loaded = 0
        # seconds between beats; a test may shorten it
        self.heartbeat_every_s = HEARTBEAT_EVERY.total_seconds()
        # time.monotonic() when this run's record was last renewed (begin, a chunk, a beat)
        self._renewed = 0.0
        self._heartbeat: Optional[threading.Thread] = None
        self._heartbeat_stop = threading.Event()

    @classmethod
    def open(cls, url: str, schema: Optional[str] = None, existing: bool = False) -> "StationRecorder":
        """Connect (a new database: its tables made; one at another schema: refused, never
        migrated here), or :class:`StationDbError` naming the URL (called before any image
        is scored, so a typo costs nothing). ``existing`` (``lineguard rescore``): a database,
        or schema, that holds no station is refused, not made one (:func:`_no_station_here`)."""
        from sqlalchemy.exc import SQLAlchemyError
        if existing:
            _no_sqlite_file(url)
        try:
            db = Database(url, schema=schema)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StationDbError(f"cannot use the station database {_shown(url)}: {exc}. Give --station-db as "
                                 "postgresql://user@host:5432/db or sqlite:////path/station.db, or --data DIR "
                                 "for a station folder's own database") from exc
        try:
            # a new database is made; a station's at another schema is left as it is: pointed
            # at a plant's database from another machine (a Ray cluster), an upgrade here
            # stopped the older stations running on it from starting again
            found = db.check_schema()
            if found is None and existing:
                why = _no_station_here(db, url)
                db.dispose()
                raise StationDbError(why)
            if found is None:
                db.upgrade()
            elif found != schema_revisions()[0]:
                db.dispose()
                raise StationDbError(f"cannot use the station database {_shown(url)}: {not_current_message(found)}")
        except (SQLAlchemyError, OSError) as exc:
            db.dispose()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StationDbError(f"cannot use the station database {_shown(url)}: {reason}. Check --station-db "
                                 "(is the server up, the database there, the user allowed?) or --data") from exc
        except StationError as exc:     # a newer lineguard's schema; no room for the copy before an upgrade
            db.dispose()
            raise StationDbError(f"cannot use the station database {_shown(url)}: {exc.message}") from exc
        return cls(db)

    def close(self) -> None:
        self.stop_heartbeat()
        self.db.dispose()

    def _start_heartbeat(self) -> None:
        self.stop_heartbeat()            # a recorder begun twice keeps one heartbeat
        self._heartbeat_stop = threading.Event()
        # a daemon: a run's end that never reached stop_heartbeat must not keep the process
        self._heartbeat = threading.Thread(target=self._beat_until_stopped, args=(self._heartbeat_stop,),
                                           name=f"lineguard-rescore-heartbeat-{self.run_id}", daemon=True)
        self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        """End the heartbeat (the run finished or stopped, or the recorder closes). Waits a
        moment for a beat under way; a beat stuck on an unreachable server is left to end
        alone (it writes nothing into a run that finished or stopped, see _beat)."""
        self._heartbeat_stop.set()
        beat, self._heartbeat = self._heartbeat, None
        if beat is not None and beat is not threading.current_thread():
            beat.join(timeout=2 * HEARTBEAT_WAIT_MS / 1000 + 1.0)

    def _beat_until_stopped(self, stop: threading.Event) -> None:
        every = self.heartbeat_every_s
        tried = time.monotonic()
        missed = 0
        # due one interval after the last renewal: a run whose chunks come every few
        # seconds never beats, and adds no write to its database
        while not stop.wait(max(0.0, max(self._renewed, tried) + every - time.monotonic())):
            if time.monotonic() - self._renewed < every:
                continue                 # a chunk renewed the record meanwhile
            tried = time.monotonic()
            reason = self._beat()
            if reason is None:
                missed = 0
                continue
            missed += 1
            if missed == _BEATS_MISSED_SAID:
                log.warning("rescore run %s: its record could not be renewed %d times in a row (%s); if this "
                            "goes on for %d minutes, GET /api/v1/rescores reads the run silent, though it runs",
                            self.run_id, missed, reason, SILENT_AFTER.total_seconds() // 60)

    def _beat(self) -> Optional[str]:
        """Renew the running run's updated_at; None, or why it could not. Only a run still
        running: a beat racing the run's finish or stop never dates either."""
        try:
            with self.db.quick_session(wait_ms=HEARTBEAT_WAIT_MS) as s:
                s.execute(update(RescoreRun)
                          .where(RescoreRun.id == self.run_id, RescoreRun.finished_at.is_(None),
                                 RescoreRun.stopped_at.is_(None))
                          .values(updated_at=utcnow()))
        except Exception as exc:  # noqa: BLE001 - a beat never ends the run; the chunks say the database's faults
            said = str(getattr(exc, "orig", None) or exc).strip()
            return said.splitlines()[0] if said else type(exc).__name__
        self._renewed = time.monotonic()
        return None

    def begin(self, out: Path | str, images: str, model_id: str, model_version: str, mode: str,
              listed: int, images_as_given: Optional[str] = None) -> int:
        """Find or make the run of (``out``, ``model_id``); returns its id.

        ``images`` is the archive as an absolute path (or URL). A resume must name the same
        archive: one with another --images rewrote the run's record (its archive, listed
        count and mode) to the resume's, so a 24,000-image run read as one day's folder;
        it is refused (:class:`DatasetError`) before anything is changed."""
        from ...vision.errors import DatasetError
        out = str(out)
        now = utcnow()
        with self.db.session() as s:
            run = s.scalars(select(RescoreRun).where(RescoreRun.out == out, RescoreRun.model_id == model_id)).first()
            if run is not None and not _same_archive(run.images, images, images_as_given):
                raise DatasetError(f"{out} is rescore run {run.id} of the archive {run.images}, not of {images}: "
                                   f"give --images {run.images} to resume it, or a new --out for another archive")
            if run is None:
                run = RescoreRun(out=out, images=images, model_id=model_id, model_version=model_version, mode=mode,
                                 listed=listed, counts={}, starts=1, started_at=now, updated_at=now)
                s.add(run)
            else:
                run.starts += 1
                # the same archive; a run recorded before paths were made absolute gets its absolute path
                run.images, run.mode, run.listed, run.updated_at = images, mode, listed, now
                run.finished_at = run.stopped_at = run.stop_reason = None
            s.flush()
            self.run_id = run.id
        self.model_id = model_id
        self._renewed = time.monotonic()
        self._start_heartbeat()
        return self.run_id

    def load_missing(self, parts: Iterable[Path]) -> int:
        """Copy every part not yet in the database (one a kill left behind); returns how many."""
        import pyarrow.parquet as pq
        with self.db.session() as s:
            loaded = set(s.scalars(select(RescorePart.name).where(RescorePart.run_id == self.run_id)))
        n = 0
        for part in parts:
            if part.name not in loaded:
                self.load_part(part, pq.read_table(part))
                n += 1
        return n

    def load_part(self, part: Path, table: Any) -> None:
        """Upsert one Parquet part's rows and name the part, in one transaction."""
        from sqlalchemy.exc import SQLAlchemyError
        try:
            self._load_part(part, table)
            self._parts_loaded += 1
            if not self.db.is_sqlite and str(self._parts_loaded).rstrip("0") == "1":
                # after 1, 10, 100... parts: PostgreSQL plans from table statistics, and a
                # table that grew from empty in minutes has none until autovacuum comes
                # by; without them each part's look-up scans the whole run (measured: a
                # part's copy grew from 45 to 600 ms over 20,000 rows; flat with them)
                with self.db.engine.begin() as conn:
                    conn.execute(text("ANALYZE rescore_results"))
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            # the part is on disk already: a later start copies it
            raise StationDbError(f"the station database failed while copying {part.name} of rescore run "
                                 f"{self.run_id}: {reason}. The Parquet parts are complete; run the same command "
                                 "again to copy what is missing and go on") from exc

    def _load_part(self, part: Path, table: Any) -> None:
        rows = []
        for r in table.to_pylist():
            row = {k: r.get(k) for k in _RESULT_COLUMNS}
            row["run_id"] = self.run_id
            row["scored_at"] = dt.datetime.fromtimestamp(float(r.get("scored_at") or 0.0), dt.timezone.utc) \
                .replace(tzinfo=None)
            rows.append(row)
        with self.db.session() as s:
            if s.get(RescorePart, (self.run_id, part.name)) is not None:
                return
            run = s.get(RescoreRun, self.run_id)
            counts = dict(run.counts or {})
            paths = [r["path"] for r in rows]
            # rows this part replaces (an image re-scored after its file changed) leave the counts first
            for i in range(0, len(paths), _IN_CHUNK):
                q = select(RescoreResult.verdict, RescoreResult.error).where(
                    RescoreResult.run_id == self.run_id, RescoreResult.path.in_(paths[i:i + _IN_CHUNK]))
                for verdict, error in s.execute(q):
                    b = _bucket(verdict, error)
                    counts[b] = counts.get(b, 0) - 1
            for r in rows:
                b = _bucket(r["verdict"], r["error"])
                counts[b] = counts.get(b, 0) + 1
            if rows:
                s.execute(_upsert(self.db), rows)
            s.add(RescorePart(run_id=self.run_id, name=part.name, rows=len(rows), loaded_at=utcnow()))
            run.counts = {k: v for k, v in counts.items() if v}
            run.updated_at = utcnow()
        self._renewed = time.monotonic()

    def finish(self) -> None:
        self.stop_heartbeat()
        with self.db.session() as s:
            run = s.get(RescoreRun, self.run_id)
            run.finished_at = run.updated_at = utcnow()

    def stopped(self, reason: str) -> None:
        """Say in the run's record that it ended unfinished, and why (an error, Ctrl-C,
        SIGTERM): without it the run read "running" for ever. Best effort: the database may
        be what failed, and the error the run stopped on is what the user must see."""
        self.stop_heartbeat()
        if self.run_id is None:
            return
        from sqlalchemy.exc import SQLAlchemyError
        try:
            with self.db.session() as s:
                run = s.get(RescoreRun, self.run_id)
                if run is not None and run.finished_at is None:
                    run.stopped_at = utcnow()
                    run.stop_reason = reason[:2000]
        except (SQLAlchemyError, OSError) as exc:
            log.warning("rescore run %s: could not record that it stopped (%s)", self.run_id, exc)


def _same_archive(recorded: str, images: str, as_given: Optional[str]) -> bool:
    """Whether a resume's --images (``images`` absolute, ``as_given`` as typed) names the
    archive a run recorded: runs before 2026-12-05 recorded it as typed, often relative."""
    if recorded in (images, as_given):
        return True
    return "://" not in recorded and os.path.abspath(recorded) == images


def _upsert(db: Database) -> Any:
    """INSERT ... ON CONFLICT (run_id, path) DO UPDATE, for executemany."""
    if db.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    stmt = insert(RescoreResult)
    new = {c: getattr(stmt.excluded, c) for c in _RESULT_COLUMNS + ("scored_at",) if c != "path"}
    return stmt.on_conflict_do_update(index_elements=["run_id", "path"], set_=new)


def station_db_url(data: Optional[Path], url: Optional[str]) -> str:
    """``--station-db`` as given, else the SQLite file of the station folder ``--data``."""
    if url:
        return url
    from ..config import StationConfig
    return StationConfig(data_dir=Path(data or "./station")).database_url


def schema_from_env() -> Optional[str]:
    """The PostgreSQL schema the station uses (``LINEGUARD_DB_SCHEMA``), as ``serve`` reads it."""
    return os.environ.get("LINEGUARD_DB_SCHEMA") or None
