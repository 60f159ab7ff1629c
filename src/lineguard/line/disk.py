"""Part images are deleted, oldest first, before the data disk fills up.

A station that keeps every image fills its disk in days (a 1 MB image a second is 86 GB
a day), and a station that cannot write an image refuses the part: the line stops. So a
keeper thread watches the free space of the disk under the data folder, and when it
falls under ``min_free_bytes`` (looked at every minute, at most every second while
parts are written, and at once when a write fails) deletes the image files of the oldest parts until a
margin above it is free again: OK parts' first, then NG and REVIEW parts'. The images
retraining learns from (parts a person reviewed, the audit sample) and the test parts'
(the shifts' proof the station was verified, :mod:`.test_parts`) are never deleted
here; if only those are left, ``/health`` says the disk is full and what to do. With
``ok_image_days`` OK parts' images older than that go too, whatever the disk.

Only files go: the record of every part stays (verdict, score, regions, reviews) and
says its image is not kept (``image_key``/``heatmap_key`` NULL), as for a part whose
image was never kept. The order keeps every link whole: a record stops naming its files
(committed) before they are deleted, so a crash in between leaves a file no record
names (the store sweep, :mod:`.sweep`, deletes it later), never a record naming a
missing file; a file another record still names (the
same image sent for two parts, one map of it), or one stored again in the last minute
for a part whose record is about to name it, stays. A part whose image file another process
stored in the last minute (a station started at once on a folder just restored or copied:
every file that young) keeps its link and waits for a later look: its file would stay, so
a cleared link would free nothing and lose the image to the app; and a link is never
cleared and then named again, which another deleter on the folder (``watch --data``'s
keeper, ``lineguard sweep``) could meet half-way, deleting the file in between. Parts
younger than ``min_age_s`` are left alone: their map may still be on its way (see
:mod:`.mapwriter`).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
import time
from typing import Any, Callable, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from .db import Database
from .imagestore import ContentStore
from .mapwriter import map_key
from .orm import Inspection, utcnow
from .periodic import PeriodicJob
from .sweep import SweepSchedule

log = logging.getLogger("lineguard.station")

GB = 1024 ** 3
# Room kept back on the data disk: a disk filled to the last byte by something else left the
# keeper unable to write the database change that comes before any delete ("database or disk
# is full"), and every part was refused until someone stepped in. Given back to let it run.
RESERVE_NAME = ".lineguard-reserve"
RESERVE_MAX = 64 * 1024 ** 2
BATCH = 200            # records a step: one short transaction, then the files
MARGIN = 1.1           # purge to 10% above the floor, so one purge is not followed by the next part's


class DiskKeeper(PeriodicJob):
    """Keeps free space on the data disk at ``min_free_bytes`` or more by deleting old images:
    a look at start, then every ``check_every_s``, at once when a write failed."""

    thread_name = "lg-disk"
    what = "the disk check"
    again_if_asked_during_run = True     # a write failed during a look: the disk may have filled since

    def __init__(self, db: Database, images: ContentStore, faults: dict[str, str], min_free_bytes: int,
                 ok_image_days: Optional[float] = None, check_every_s: float = 60.0, min_age_s: float = 120.0,
                 free_bytes: Optional[Callable[[], int]] = None, batch: int = BATCH,
                 busy: Callable[[int], bool] = lambda inspection_id: False,
                 sweep: Optional[SweepSchedule] = None):
        super().__init__(every_s=check_every_s, first_after_s=0.0)
        self.db = db
        self.images = images
        self.faults = faults
        self.min_free_bytes = int(min_free_bytes)
        self.ok_image_days = ok_image_days
        self.min_age_s = min_age_s
        self.batch = batch
        self.busy = busy       # a part whose map is still on its way (MapWriter.is_pending)
        # files no record names (a crash between two steps leaves them): swept on its own
        # thread, and at once when the disk is full with nothing else left to delete
        self.sweep = sweep
        self._free_bytes = free_bytes or (lambda: shutil.disk_usage(images.root).free)
        self.deleted = {"OK": 0, "NG/REVIEW": 0}     # parts whose images went, since start
        # the highest id each kind of part was cleared up to: the next look starts there,
        # not at the first part ever recorded (whose rows have no files left)
        self._cursor = {"OK": 0, "NG/REVIEW": 0, "OK by age": 0}
        # within one look, the parts passed over for their files' youth (see _check)
        self._young: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._looked = 0.0     # monotonic time of the last after_write look
        # beside the stores, not in them (the store sweep would take it for a file no record names)
        self.reserve = images.root.parent / RESERVE_NAME
        self.reserve_bytes = min(RESERVE_MAX, self.min_free_bytes // 4)

    # -- running ---------------------------------------------------------------------
    def start(self) -> "DiskKeeper":
        if self.min_free_bytes > 0 or self.ok_image_days is not None:
            super().start()
        if self.sweep is not None and self.sweep.every_s > 0:
            self.sweep.start()
        return self

    def wake(self) -> None:
        """Look now (a write just failed: the disk may be full)."""
        self.soon()

    def after_write(self) -> None:
        """A part's image was just written: on a busy line the disk can reach its floor
        well within a minute, so look at the free space (one statfs call, at most once a
        second) and clear room now if it is under the floor."""
        now = time.monotonic()
        if self.min_free_bytes <= 0 or now - self._looked < 1.0:
            return
        self._looked = now
        free = self._free()
        if free is not None and free < self.min_free_bytes:
            self.wake()

    def close(self) -> None:
        super().close()
        if self.sweep is not None:
            self.sweep.close()

    def run_once(self) -> None:
        self.check()

    def _keep_reserve(self, free: Optional[int]) -> None:
        """Allocate the reserve file once the disk nears its floor (under three times it) with
        room for it above the floor: a disk far from full needs none (and a test suite's
        hundreds of stations would each hold one), one filling up gets it before it is full."""
        if self.reserve_bytes <= 0 or free is None or free < self.min_free_bytes + 2 * self.reserve_bytes \
                or free >= 3 * self.min_free_bytes:
            return
        try:
            if self.reserve.exists():
                return
            tmp = self.reserve.with_name(self.reserve.name + ".tmp")
            with open(tmp, "wb") as fh:
                # blocks held on the disk, not a sparse file that holds none
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fh.fileno(), 0, self.reserve_bytes)
                else:
                    fh.write(b"\0" * self.reserve_bytes)
            os.replace(tmp, self.reserve)
        except OSError as exc:
            log.warning("disk: the reserve file %s could not be written: %s", self.reserve, exc)

    def _give_back_reserve(self) -> bool:
        try:
            self.reserve.unlink()
        except OSError:
            return False
        log.warning("disk: the data disk is full: the %d MB kept back (%s) are given back so that old images can "
                    "be deleted", self.reserve_bytes // 1024 ** 2, self.reserve)
        return True

    # -- one look --------------------------------------------------------------------
    def _free(self) -> Optional[int]:
        """Free bytes on the data disk; None if it cannot be read (the folder is gone or
        unmounted: the storage fault says so, this must not turn /health into a 500)."""
        try:
            return int(self._free_bytes())
        except OSError:
            return None

    def status(self) -> dict[str, Any]:
        free = self._free()
        out = {"free_gb": None if free is None else round(free / GB, 2),
               "min_free_gb": round(self.min_free_bytes / GB, 2), "ok_image_days": self.ok_image_days,
               "images_deleted": dict(self.deleted)}
        if self.sweep is not None:
            out["store_sweep"] = self.sweep.status()
        return out

    def check(self, now: Optional[dt.datetime] = None) -> dict[str, int]:
        """Delete what the rules say must go now; returns the parts cleared, by kind. A
        database too full for the change that comes first gets the reserve back, once."""
        try:
            return self._check(now)
        except SQLAlchemyError as exc:
            if "full" not in str(exc).lower() or not self._give_back_reserve():
                raise
            return self._check(now)

    def _check(self, now: Optional[dt.datetime] = None) -> dict[str, int]:
        with self._lock:
            # the parts passed over in this look for their file's youth, by cursor: (the
            # first's id, how many); the look goes on past them, the next starts at them
            self._young = {}
            try:
                return self._look(now)
            finally:
                for cursor, (first, _n) in self._young.items():
                    self._cursor[cursor] = min(self._cursor[cursor], first - 1)

    def _look(self, now: Optional[dt.datetime]) -> dict[str, int]:
        now = now or utcnow()
        young = now - dt.timedelta(seconds=self.min_age_s)
        cleared = {"OK": 0, "NG/REVIEW": 0}
        if self.ok_image_days is not None:
            older = min(young, now - dt.timedelta(days=self.ok_image_days))
            while not self.stopping() and (n := self._clear("OK", older, age_rule=True)[0]):
                cleared["OK"] += n
        free = self._free()
        if self.min_free_bytes <= 0 or free is None:
            return cleared
        if free >= self.min_free_bytes:
            self.faults.pop("disk", None)
            self._keep_reserve(free)
            return cleared
        waiting = False
        for kind in ("OK", "NG/REVIEW"):
            if waiting:
                break     # an OK part's map is still being stored: its image goes first, next look
            while free is not None and free < self.min_free_bytes * MARGIN and not self.stopping():
                n, waiting = self._clear(kind, young)
                if not n:
                    break
                cleared[kind] += n
                free = self._free()
        if waiting:
            return cleared   # not a full disk: the next look (within a second of the next part) goes on
        if free is None:
            return cleared
        if any(cleared.values()):
            log.warning("disk: %.2f GB free (floor %.2f GB): deleted the images of the oldest %d OK and %d "
                        "NG/REVIEW parts", free / GB, self.min_free_bytes / GB, cleared["OK"],
                        cleared["NG/REVIEW"])
        if free < self.min_free_bytes:
            if self.sweep is not None:
                self.sweep.soon()
            passed = sum(n for kind, (_first, n) in self._young.items() if kind != "OK by age")
            self.faults["disk"] = (
                f"the data disk has {free / GB:.2f} GB free, under the station's floor of "
                f"{self.min_free_bytes / GB:.2f} GB, and no part image is left that may go (those left "
                "are parts a person reviewed, the audit sample retraining learns from, test parts, and the last "
                "minutes' parts; or the disk is filled by other data)"
                + (f"; {passed} parts' image files were written in the last {self.images.recent_s:.0f} s by "
                   "another process (a folder restored or copied just now?): they go at the next look"
                   if passed else "")
                + ": free space on the disk, move the data folder to a larger one, or lower --min-free-gb")
        else:
            self.faults.pop("disk", None)
            self._keep_reserve(free)
        return cleared

    def _clear(self, kind: str, before: dt.datetime, age_rule: bool = False) -> tuple[int, bool]:
        """Stop the oldest batch of ``kind`` parts recorded before ``before`` naming their
        files, then delete the files no record names any more; (the number of parts,
        whether it stopped at a part whose map is on its way). A batch that clears none
        (reviewed meanwhile, files just written) is followed by the next one."""
        verdict_is = Inspection.verdict == "OK" if kind == "OK" else Inspection.verdict != "OK"
        cursor = f"{kind} by age" if age_rule else kind
        # a part that still has its image, not reviewed by a person, not in the audit
        # sample, not a test part
        may_go = (Inspection.image_key.is_not(None), Inspection.reviewed.is_(False),
                  Inspection.audit_sample.is_(False), Inspection.test_part.is_(None))
        while not self.stopping():
            # In id order, not filtered by age: a part recorded a few milliseconds out of id
            # order (two threads committing) would be passed by the cursor and keep its image
            # for good; the batch ends at the first part too young instead.
            q = (select(Inspection.id, Inspection.image_sha256, Inspection.image_key, Inspection.heatmap_key,
                        Inspection.overlay_key, Inspection.created_at)
                 .where(Inspection.id > self._cursor[cursor], verdict_is, *may_go)
                 .order_by(Inspection.id).limit(self.batch))
            waiting = False
            with self.db.session() as s:
                rows = list(s.execute(q))
                for n, r in enumerate(rows):
                    if r[5] >= before:
                        rows = rows[:n]
                        break
                    # a part whose map is still being stored waits for a later look (the cursor
                    # stops before it); its record is linked to the map only while it has an image
                    if self.busy(r[0]):
                        rows = rows[:n]
                        waiting = True
                        break
                if not rows:
                    return 0, waiting
                ids = [r[0] for r in rows]
                # Decided before any link is cleared, never undone after: a file that stays
                # keeps its part's link (see the module's text).
                fresh = {r[0] for r in rows if self._written_elsewhere_just_now(r[2])}
                if fresh:
                    first, passed = self._young.get(cursor, (min(fresh), 0))
                    self._young[cursor] = (min(first, *fresh), passed + len(fresh))
                    rows = [r for r in rows if r[0] not in fresh]
                kept: set[int] = set()
                if rows:
                    # The filters again, in the write: a part reviewed (or drawn into the audit
                    # sample) since the select keeps its image; only the rows changed here lose
                    # their files.
                    go = [r[0] for r in rows]
                    s.execute(update(Inspection).where(Inspection.id.in_(go), *may_go)
                              .values(image_key=None, heatmap_key=None, overlay_key=None))
                    kept = set(s.scalars(select(Inspection.id).where(Inspection.id.in_(go),
                                                                      Inspection.image_key.is_not(None))))
            # past the parts passed over too: the look goes on to older files (the look's
            # end sets it back to the first of them, see _check)
            self._cursor[cursor] = ids[-1]
            rows = [r for r in rows if r[0] not in kept]
            if not rows:      # the whole batch reviewed meanwhile, or just written: on to the next one
                continue
            delete_files_no_record_names(self.db, self.images, {r[1] for r in rows},
                                         {k for r in rows for k in r[2:5] if k})
            self.deleted[kind] += len(rows)
            return len(rows), waiting
        return 0, False

    def _written_elsewhere_just_now(self, key: Optional[str]) -> bool:
        """Whether the part image ``key`` was written in the last ``recent_s`` (its file's
        time) by no part of this station: the store would keep it (a folder restored or
        copied a moment ago, another process's store). One a part of this station stored
        again is named by that part's record, or is about to be: the old part's link goes."""
        if not key or self.images.stored_here_recently(key):
            return False
        try:
            return self.images.path(key).stat().st_mtime > time.time() - self.images.recent_s
        except (OSError, ValueError):
            return False      # missing (nothing to keep), or not a key of the store


def delete_files_no_record_names(db: Database, images: ContentStore, shas: set[str], keys: set[str]) -> int:
    """Delete the files ``keys`` (of images with the SHA-256s ``shas``) that no record
    names any more: called after the records that named them stopped doing so
    (committed). Returns how many were deleted."""
    # A file's key holds its image's SHA-256 (the map's too), so the records that may
    # still name one are those with the same SHA-256, found by its index: their
    # files, and the map of a record that still has its image (it may be on its way).
    still: set[str] = set()
    shas = sorted(shas)
    for i in range(0, len(shas), 500):       # a bound on the statement's parameters
        with db.session() as s:
            named = s.execute(select(Inspection.image_key, Inspection.heatmap_key, Inspection.overlay_key,
                                     Inspection.image_sha256, Inspection.model_id)
                              .where(Inspection.image_sha256.in_(shas[i:i + 500])))
            for image_key, heatmap_key, overlay_key, sha, model_id in named:
                still.update(k for k in (image_key, heatmap_key, overlay_key) if k)
                if image_key:
                    still.add(map_key(images, sha, model_id))
    deleted = 0
    for key in keys - still:
        # not a file another process on the data folder stored again just now
        deleted += bool(images.delete_unnamed(key, unless_newer_than_s=images.recent_s))
    return deleted
