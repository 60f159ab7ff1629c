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

from .db import Database
from .imagestore import ContentStore
from .orm import Inspection

log = logging.getLogger("lineguard.station")


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

    def __init__(self, db: Database, store: ContentStore, linger_s: float = 0.03):
        self.db = db
        self.store = store
        self.linger_s = linger_s
        self._queue: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
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
        return inspection_id in self._pending

    def close(self) -> None:
        """Store what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        from . import render
        stop = False
        while not stop:
            job = self._queue.get()
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
                if stored:
                    with self.db.session() as s:
                        for j in stored:
                            # not once the disk keeper cleared the part's image (see line.disk)
                            s.execute(update(Inspection).where(Inspection.id == j.inspection_id,
                                                               Inspection.image_key.is_not(None))
                                      .values(heatmap_key=j.key))
            except Exception:  # noqa: BLE001
                log.exception("could not link %d anomaly maps to their inspections", len(stored))
            finally:
                with self._lock:
                    for j in batch:
                        self._pending.pop(j.inspection_id, None)
                for j in batch:
                    j.done.set()


def map_key(store: ContentStore, image_digest: str, model_id: str) -> str:
    """Where the map of one image under one model lives (known before it is computed)."""
    tag = "".join(c for c in str(model_id).lower() if c.isalnum())[:16] or "model"
    return store.key_for(image_digest, f".map-{tag}.png")
