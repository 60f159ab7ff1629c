"""Anomaly maps are stored after the part is answered, not on its way.

Encoding a map and fsyncing its file took about as long as everything else the station
does around the model, and nobody looks at a map in the milliseconds after a verdict.
So the inspection record is committed (and answered) without it, and this writer then
stores the map file (atomic, fsynced) and only afterwards points the record at it.

The order is what keeps a crash harmless: a record never names a map file that is not
on disk. Killed in between, the record simply has no map (``heatmap_key`` NULL, the
API says it was not kept); the verdict, score, regions and image are all there.
Reads of a record that still has its map in flight wait for it (:meth:`wait`), so a
client that follows the ``heatmap`` link of a fresh answer gets the picture.

A link the database refuses (an outage, a failover) is tried again, with backoff, for
as long as the station runs and once more at its close: the map is on disk already, and
an NG part's map is what its reviewer opens (it was logged and dropped).

A link that found no database connection in the pool's whole wait (an overloaded station:
every connection in use by requests) is no fault of the database nor of the station, and
the station's log already says the overload once a minute: it is said here as a warning
when it begins, once a minute while it lasts (with how many maps wait for their link) and
when the maps are linked, never a line each time. Any other failure of the link (a
database refusing, a bug) is an ERROR, said the same way, a bug with its traceback.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
from sqlalchemy import update
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .db import Database, fault_line, is_refusal
from .imagestore import ContentStore
from .orm import Inspection
from .sources.outage import LastingFaults

log = logging.getLogger("lineguard.station")

# the link's lasting faults (see LastingFaults): the pool's wait run out (overload), any
# other failure of the link, and maps given up
OVERLOAD = ("maps", "overload")
REFUSED = ("maps", "refused")
GIVEN_UP = ("maps", "given up")


@dataclass
class _Job:
    inspection_id: int
    key: str
    amap: np.ndarray
    scale: float
    done: threading.Event


class MapWriter:
    """One background thread that stores anomaly maps and links them to their records.

    It lets ``linger_s`` pass after a map arrives before it starts: the part's answer is
    on its way out in those milliseconds and should not queue behind the encoder for the
    interpreter lock; the maps of a busy line gather meanwhile and are linked in one
    transaction.
    """

    # links the database refused, tried again after RETRY_FIRST_S, doubling up to RETRY_MAX_S;
    # past UNLINKED_MAX the oldest are given up (their parts say the map was not kept)
    RETRY_FIRST_S = 1.0
    RETRY_MAX_S = 30.0
    UNLINKED_MAX = 10_000

    def __init__(self, db: Database, store: ContentStore, linger_s: float = 0.03):
        self.db = db
        self.store = store
        self.linger_s = linger_s
        self._queue: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._unlinked: dict[int, str] = {}        # inspection id -> its stored map's key
        self._retry_s = self.RETRY_FIRST_S
        self._retry_at = 0.0
        # said from the writer's thread alone (LastingFaults is not thread-safe)
        self._faults = LastingFaults(log)
        self._thread = threading.Thread(target=self._run, name="lg-maps", daemon=True)
        self._thread.start()

    def submit(self, inspection_id: int, key: str, amap: np.ndarray, scale: float) -> None:
        done = threading.Event()
        with self._lock:
            self._pending[inspection_id] = done
        self._queue.put(_Job(inspection_id, key, amap, scale, done))

    def wait(self, inspection_id: int, timeout: float = 10.0) -> None:
        """Block until the map of this inspection (if one is in flight) is stored."""
        ev = self._pending.get(inspection_id)
        if ev is not None:
            ev.wait(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every map submitted so far is stored."""
        with self._lock:
            events = list(self._pending.values())
        for ev in events:
            ev.wait(timeout)

    def is_pending(self, inspection_id: int) -> bool:
        # a map stored but not linked yet (the database refused) is still this writer's:
        # the disk keeper and the store sweep must not take it for a file no record names
        return inspection_id in self._pending or inspection_id in self._unlinked

    def close(self) -> None:
        """Store what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=60)

    def unlinked(self) -> int:
        """Maps stored whose link the database has refused so far (tried again)."""
        return len(self._unlinked)

    def _link(self, links: dict[int, str]) -> bool:
        """Point each record at its stored map in one transaction; False if refused."""
        try:
            with self.db.session() as s:
                for inspection_id, key in links.items():
                    # not once the disk keeper cleared the part's image (see line.disk)
                    s.execute(update(Inspection).where(Inspection.id == inspection_id,
                                                       Inspection.image_key.is_not(None))
                              .values(heatmap_key=key))
            return True
        except Exception as exc:  # noqa: BLE001 - kept and tried again
            self._say_refused(exc, len(self._unlinked.keys() | links.keys()))
            return False

    def _say_refused(self, exc: Exception, waiting: int) -> None:
        """Say a link that failed, as a lasting fault: when it begins, then at most once a
        minute with how many maps wait (``waiting``), never a line for each try."""
        if isinstance(exc, PoolTimeout):
            # overload: every connection in use for the pool's whole wait; the requests
            # that met it are answered 503 busy and the app says it too (a warning)
            self._faults.happens(
                OVERLOAD, logging.WARNING,
                "anomaly maps wait for their link: no database connection came in the pool's whole wait (the "
                "station is overloaded, every connection in use by requests); %(waiting)d maps are stored and "
                "linked once a connection is free (their parts say \"not kept\" meanwhile)",
                still="anomaly maps still wait for a database connection after %(lasted).0f s (the station is "
                      "overloaded): %(waiting)d maps stored and not linked yet, %(times)d tries in the last "
                      "%(quiet_s).0f s",
                waiting=waiting)
            return
        # the database refusing (unreachable, full, read-only) in one line with its own
        # reason: a few seconds' outage logged a 50-line traceback of SQLAlchemy and psycopg
        fault = self._faults.get(REFUSED)
        self._faults.happens(
            REFUSED, logging.ERROR,
            "could not link %(waiting)d anomaly maps to their inspections (%(error)s); trying again in %(first).0f s, "
            "then at most every %(most).0f s until linked (their parts say \"not kept\" meanwhile)",
            still="still cannot link anomaly maps to their inspections after %(lasted).0f s (%(error)s): "
                  "%(waiting)d maps stored and not linked yet, %(times)d tries in the last %(quiet_s).0f s",
            waiting=waiting, first=self.RETRY_FIRST_S, most=self.RETRY_MAX_S,
            error=fault_line(exc))
        if fault is None and not is_refusal(exc):
            # not the database refusing but the station's own mistake (a missing column):
            # its traceback once, for whoever fixes it
            log.error("the anomaly maps' link failed", exc_info=exc)

    def _linked(self, n: int) -> None:
        """The maps the database had refused are linked: the faults said are over."""
        for key in (OVERLOAD, REFUSED):
            self._faults.ends(key, logging.WARNING, "linked %(n)d anomaly maps the database had refused (for "
                                                    "%(lasted).0f s)", n=n)
        self._faults.ends(GIVEN_UP)

    def _link_again(self) -> None:
        if not self._unlinked or time.monotonic() < self._retry_at:
            return
        links = dict(self._unlinked)
        if self._link(links):
            self._linked(len(links))
            for inspection_id in links:
                self._unlinked.pop(inspection_id, None)
            self._retry_s = self.RETRY_FIRST_S
        else:
            self._retry_at = time.monotonic() + self._retry_s
            self._retry_s = min(self.RETRY_MAX_S, self._retry_s * 2)

    def _keep_unlinked(self, links: dict[int, str]) -> None:
        self._unlinked.update(links)
        while len(self._unlinked) > self.UNLINKED_MAX:
            given_up = next(iter(self._unlinked))
            del self._unlinked[given_up]
            # lost: said (when it begins, then once a minute with the count), not a line
            # for each part, which a long overload gives one a part
            going = self._faults.get(GIVEN_UP)
            self._faults.happens(
                GIVEN_UP, logging.ERROR,
                "gave up linking the anomaly map of inspection %(first)s: more than %(most)d maps wait for the "
                "database; the oldest are given up (their parts say the map was not kept)",
                still="gave up linking %(lost)d anomaly maps so far (from inspection %(first)s to %(last)s): their "
                      "links still fail (see the lines before: the database refusing, or every connection in use)",
                start={"first": given_up}, most=self.UNLINKED_MAX, last=given_up,
                lost=(going["lost"] if going is not None else 0) + 1)
        if not self._retry_at or time.monotonic() >= self._retry_at:
            self._retry_at = time.monotonic() + self._retry_s

    def _run(self) -> None:
        from . import render
        stop = False
        while not stop:
            try:
                job = self._queue.get(timeout=self.RETRY_FIRST_S if self._unlinked else None)
            except queue.Empty:
                self._link_again()
                continue
            if job is None:
                break
            if self.linger_s > 0:
                time.sleep(self.linger_s)
            batch = [job]
            # Take whatever else is queued: one database transaction links them all.
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            stored: list[_Job] = []
            for j in batch:
                try:
                    self.store.put(render.encode_map(j.amap, j.scale), key=j.key)
                    stored.append(j)
                except Exception:  # noqa: BLE001 - a lost map must not stop the writer
                    log.exception("could not store the anomaly map of inspection %s", j.inspection_id)
            try:
                links = {j.inspection_id: j.key for j in stored}
                if links and self._unlinked:
                    # the database took this batch's records a moment ago: try it with those
                    # refused before, now, not at their retry time (up to 30 s away)
                    self._keep_unlinked(links)
                    self._retry_at = 0.0
                elif links and not self._link(links):
                    self._keep_unlinked(links)
                self._link_again()
            finally:
                # a reader waits no longer: a map not linked yet is "not kept" until it is
                with self._lock:
                    for j in batch:
                        self._pending.pop(j.inspection_id, None)
                for j in batch:
                    j.done.set()
        if self._unlinked:                      # closing: one last try, said if refused
            self._retry_at = 0.0
            self._link_again()
            if self._unlinked:
                log.error("closing with %d anomaly maps not linked to their inspections (the database "
                          "refused): their parts say the map was not kept", len(self._unlinked))


def map_key(store: ContentStore, image_digest: str, model_id: str) -> str:
    """Where the map of one image under one model lives (known before it is computed)."""
    tag = "".join(c for c in str(model_id).lower() if c.isalnum())[:16] or "model"
    return store.key_for(image_digest, f".map-{tag}.png")
