"""Files in the image store that no part's record names are found and deleted.

Every writer keeps the links whole by its order: the disk keeper clears a record's keys
(committed) before it deletes the files, the map writer stores a map before it links
it. The price of that order is a leak when the second step never comes: the station
killed between clearing and deleting, a map stored for a part whose image was cleared
meanwhile, an image stored for a part sent twice at once whose first record stands.
Each leaves a file no record names, which nothing would ever free; over months of
crashes and power cuts they fill the disk the keeper is guarding.

So the store is swept: at start-up (after a crash is when they appear) and once a day,
every file under the store is checked against the records in batches (by the SHA-256 its
key starts with, which the part's record holds, indexed) and the ones no record names are
deleted. A file written in the last hour is left alone (another process on the same data
folder, a hot-folder watcher, may be about to commit its record), as is one the station
stored for a part in the last minute (:meth:`.ContentStore.delete_unnamed`).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Optional

from sqlalchemy import func, or_, select

from .db import Database
from .imagestore import ContentStore
from .mapwriter import map_key
from .orm import Inspection
from .periodic import PeriodicJob

log = logging.getLogger("lineguard.station")

# a key the store writes: ab/cd/abcd<62 more hex digits><suffix>
_HEX2 = re.compile(r"[0-9a-f]{2}")
_NAME = re.compile(r"([0-9a-f]{64})(\.[^/]*)?")    # a map's suffix holds its model id's letters


@dataclass
class SweepReport:
    files: int = 0           # files looked at
    young: int = 0           # of them, too recent to judge
    unnamed: int = 0         # of the rest, files no record names (deleted unless a dry run or refused)
    unnamed_bytes: int = 0
    deleted: int = 0
    failed: int = 0          # could not be deleted (a permission, a read-only folder)
    refused: Optional[str] = None          # why nothing was deleted (looks like the wrong database)
    seconds: float = 0.0
    finished_at: Optional[float] = None    # time.time() when done
    examples: list[str] = field(default_factory=list)   # a few unnamed keys, for the log

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("examples")
        out["unnamed_mb"] = round(self.unnamed_bytes / 1e6, 3)
        out["seconds"] = round(self.seconds, 3)
        return out


class StoreSweep:
    """One pass over a store's files deletes those no record names (see the module doc).

    Records are never deleted, so crashes leave a few unnamed files, not most of them,
    and none stored after the newest record: when the database holds no part, when
    dozens of unnamed files are newer than its newest record (a database restored from
    an older backup), or when it names none of the files or under half of a hundred and
    more (another station's database), it is not the database these images were stored
    with, and the sweep deletes nothing and says so.
    """

    MAX_UNNAMED_SHARE = 0.5
    MIN_UNNAMED_FOR_SHARE = 100      # a new station's two leftovers beside one image are not a wrong database
    MAX_UNNAMED_AFTER_NEWEST = 50    # files stored after the newest record: a crash leaves a few

    def __init__(self, db: Database, images: ContentStore, min_age_s: float = 3600.0, batch: int = 500,
                 pause_s: float = 0.002):
        self.db = db
        self.images = images
        self.min_age_s = min_age_s
        self.batch = batch
        # between batches: a sweep of a million files runs beside the line, and must not
        # hold the interpreter long enough to delay a part
        self.pause_s = pause_s

    def _files(self) -> Iterator[tuple[str, str, os.stat_result]]:
        """(key, sha256, stat) of every file laid out as the store lays keys out; the
        staging folder and anything else in the folder are not the store's to judge."""
        root = self.images.root
        for top in _scandir(root):
            if not (top.is_dir(follow_symlinks=False) and _HEX2.fullmatch(top.name)):
                continue
            for sub in _scandir(top.path):
                if not (sub.is_dir(follow_symlinks=False) and _HEX2.fullmatch(sub.name)):
                    continue
                for f in _scandir(sub.path):
                    m = _NAME.fullmatch(f.name)
                    if not m or m.group(1)[:4] != top.name + sub.name or not f.is_file(follow_symlinks=False):
                        continue
                    try:
                        st = f.stat(follow_symlinks=False)
                    except OSError:
                        continue     # deleted meanwhile
                    yield f"{top.name}/{sub.name}/{f.name}", m.group(1), st

    def run(self, dry_run: bool = False, stop: Callable[[], bool] = lambda: False) -> SweepReport:
        """Find the unnamed files (the whole store first, so a wrong database is seen
        before anything goes), then delete them, each checked against the records again."""
        report = SweepReport()
        t0 = time.monotonic()
        if not dry_run:
            self.images.sweep_staging()     # files moved aside by a station killed mid-delete go back first
        young_after = time.time() - self.min_age_s
        unnamed: dict[str, tuple[str, float]] = {}       # key -> (sha256, mtime)
        batch: dict[str, tuple[str, int, float]] = {}    # key -> (sha256, size, mtime), looked up by SHA-256
        maybe: dict[str, tuple[str, int, float]] = {}    # no record with its SHA-256 names it: looked up by key
        for key, sha, st in self._files():
            if stop():
                break
            report.files += 1
            if st.st_mtime > young_after:
                report.young += 1
                continue
            batch[key] = (sha, st.st_size, st.st_mtime)
            if len(batch) >= self.batch:
                named = self._named_by_sha(batch)
                maybe.update((k, v) for k, v in batch.items() if k not in named)
                batch = {}
                if len(maybe) >= self.BY_KEY:
                    self._note_unnamed(maybe, report, unnamed)
                    maybe = {}
                if report.unnamed > 100_000 and report.unnamed > self.MAX_UNNAMED_SHARE * (report.files - report.young):
                    break      # the wrong database, plainly: no need to hold a million keys to say so
                time.sleep(self.pause_s)
        if not stop():
            if batch:
                named = self._named_by_sha(batch)
                maybe.update((k, v) for k, v in batch.items() if k not in named)
            self._note_unnamed(maybe, report, unnamed)
        report.refused = self._wrong_database(report, unnamed) if unnamed else None
        if report.refused is None and not dry_run:
            self._delete(unnamed, report, stop)
        report.seconds = time.monotonic() - t0
        report.finished_at = time.time()
        return report

    def _wrong_database(self, report: SweepReport, unnamed: dict[str, tuple[str, float]]) -> Optional[str]:
        """Why the unnamed files say the database is not these images' (then nothing is
        deleted), or None. Records are never deleted and crashes leave a few files each,
        never many, and none stored after the newest record the database holds."""
        with self.db.session() as s:
            newest = s.scalar(select(func.max(Inspection.created_at)))
        what = ("Nothing was deleted: give the station's own folder (--data) or database (--db), or move the "
                "images folder aside if these images are no longer wanted")
        if newest is None:
            # a new station's first part may have been stored and not recorded (a crash): a
            # file or two are told apart from another station's images
            n = report.unnamed
            if n <= 2:
                return (f"the database holds no part yet, and {n} file{'s are' if n > 1 else ' is'} in the image "
                        "store: left by a first part the station stopped before recording, or this is not the "
                        f"database {'they were' if n > 1 else 'it was'} stored with. {what}")
            return (f"the database holds no part, yet {n} files are in the image store: it is not the "
                    f"database these images were stored with. {what}")
        # file times are the clock's; records' times naive UTC
        after = newest.replace(tzinfo=dt.timezone.utc).timestamp() + 60
        later = sum(1 for _sha, mtime in unnamed.values() if mtime > after)
        if later >= self.MAX_UNNAMED_AFTER_NEWEST:
            return (f"{later} files in the image store were stored after the newest part the database holds "
                    f"({newest:%Y-%m-%d %H:%M} UTC) and no record names them: the database was restored from an "
                    f"older backup, or is not this station's. {what}")
        judged = report.files - report.young
        if report.unnamed >= judged or (report.unnamed >= self.MIN_UNNAMED_FOR_SHARE
                                        and report.unnamed > self.MAX_UNNAMED_SHARE * judged):
            return (f"{report.unnamed} of the {judged} files looked at in the image store "
                    f"({report.unnamed_bytes / 1e6:.0f} MB) are named by no part's record: this database is not the "
                    f"one these images were stored with. {what}")
        return None

    def _delete(self, unnamed: dict[str, tuple[str, float]], report: SweepReport, stop: Callable[[], bool]) -> None:
        keys = list(unnamed.items())
        for i in range(0, len(keys), self.BY_KEY):
            if stop():
                return
            part = {k: (sha, 0, mtime) for k, (sha, mtime) in keys[i:i + self.BY_KEY]}
            # named since it was found (a part recorded meanwhile): it stays
            still = self._named_by_sha(part)
            still |= self._named_by_key([k for k in part if k not in still])
            for key in part.keys() - still:
                try:
                    if self.images.delete_unnamed(key, unless_newer_than_s=self.min_age_s):
                        report.deleted += 1
                except OSError as exc:     # one file (a permission, a read-only folder) does not end the sweep
                    report.failed += 1
                    if report.failed == 1:
                        log.warning("store sweep: could not delete %s (%s)", key, exc)

    # Keys looked up by themselves at a time: the look reads the whole table (no index on
    # the map and overlay columns), so it waits for some hundreds of keys, not one
    # batch's; three columns of 300 stay under old SQLite's 999 variables a statement.
    BY_KEY = 300

    def _note_unnamed(self, maybe: dict[str, tuple[str, int, float]], report: SweepReport,
                      unnamed: dict[str, tuple[str, float]]) -> None:
        if not maybe:
            return
        named = self._named_by_key(list(maybe))
        for key, (sha, size, mtime) in maybe.items():
            if key in named:
                continue
            report.unnamed += 1
            report.unnamed_bytes += size
            if len(report.examples) < 5:
                report.examples.append(key)
            unnamed[key] = (sha, mtime)

    def _named_by_sha(self, batch: dict[str, tuple[str, int, float]]) -> set[str]:
        """The keys some record with the file's SHA-256 names (or will: the map of a part
        that has its image). Every key a station writes now holds its image's SHA-256."""
        named: set[str] = set()
        with self.db.session() as s:
            rows = s.execute(select(Inspection.image_key, Inspection.heatmap_key, Inspection.overlay_key,
                                    Inspection.image_sha256, Inspection.model_id)
                             .where(Inspection.image_sha256.in_({v[0] for v in batch.values()})))
            for image_key, heatmap_key, overlay_key, sha, model_id in rows:
                named.update(k for k in (image_key, heatmap_key, overlay_key) if k)
                if image_key:
                    named.add(map_key(self.images, sha, model_id))
        return named & batch.keys()

    def _named_by_key(self, keys: list[str]) -> set[str]:
        """The ``keys`` a record names by the key itself: early stations stored an NG
        part's overlay and its map under the picture's own SHA-256, not the image's."""
        named: set[str] = set()
        cols = (Inspection.image_key, Inspection.heatmap_key, Inspection.overlay_key)
        with self.db.session() as s:
            for i in range(0, len(keys), self.BY_KEY):
                chunk = keys[i:i + self.BY_KEY]
                for row in s.execute(select(*cols).where(or_(*(c.in_(chunk) for c in cols)))):
                    named.update(k for k in row if k)
        return named & set(keys)


def _scandir(path: Any) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


class SweepSchedule(PeriodicJob):
    """Runs a :class:`StoreSweep` on its own thread: ``first_after_s`` after start, then
    every ``every_s``, and soon when the disk keeper finds the disk full with nothing
    left it may delete (a long sweep must not hold up the keeper's looks)."""

    thread_name = "lg-sweep"
    what = "the store sweep"

    def __init__(self, sweep: StoreSweep, every_s: float, first_after_s: float = 600.0,
                 faults: Optional[dict[str, str]] = None):
        super().__init__(every_s, first_after_s)
        self.sweep = sweep
        self.faults = faults if faults is not None else {}   # the station's: /health shows a refused sweep
        self.last: Optional[SweepReport] = None
        self.total_deleted = 0
        self._ended_at: Optional[float] = None    # time.time() the last sweep ended, done or failed

    def soon(self) -> None:
        """Sweep now unless a sweep ended (or failed) in the last hour (the disk is full
        and only files no record names may be left to free)."""
        if self._ended_at is None or time.time() - self._ended_at > 3600:
            super().soon()

    def run_once(self) -> SweepReport:
        report = self.sweep.run(stop=self.stopping)
        self.last = report
        self.total_deleted += report.deleted
        if report.refused:
            log.error("store sweep: %s", report.refused)
            self.faults["store_sweep"] = report.refused
            return report
        self.faults.pop("store_sweep", None)
        if report.unnamed:
            log.warning("store sweep: %d files no part's record names (%.1f MB, e.g. %s) deleted; %d files in "
                        "%.1f s", report.deleted, report.unnamed_bytes / 1e6, ", ".join(report.examples),
                        report.files, report.seconds)
        else:
            log.info("store sweep: every one of %d files is named by a part's record (%.1f s)", report.files,
                     report.seconds)
        return report

    def _tick(self) -> float:
        try:
            return super()._tick()
        finally:
            self._ended_at = time.time()

    def status(self) -> dict[str, Any]:
        return {"every_h": round(self.every_s / 3600, 3), "files_deleted": self.total_deleted,
                "last": None if self.last is None else self.last.to_dict()}
