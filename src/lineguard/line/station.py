"""The station: one path from a part image to a stored, signalled verdict.

HTTP uploads, the hot folder and the camera all call :meth:`Station.inspect`, so a
part is judged, stored and signalled the same way whatever brought it in. The order
of work is what makes it safe: refuse bad input before anything is written, run the
model, write the image file (content-addressed, atomic, fsynced while the model runs),
then commit the record; only a committed record is answered or signalled. A crash at
any point leaves either no record or a whole one. A camera in the station's process
hands over the frame's pixels (:mod:`.camera_frame`): its PNG is written only if kept. The anomaly map follows the answer
(see :mod:`.mapwriter`): a record points at its map only once the map file is stored.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import socket
import threading
import time
import unicodedata
import zlib
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError, TimeoutError as PoolTimeout
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from ..vision.errors import ImageError, ImageTooLarge as _HeaderTooLarge
from ..vision.imageio import check_png, decode_scale_of, jpeg_scale, load_photo
from .backup import BackupSchedule
from .batcher import BatcherClosed, ModelBatcher, ModelTimeout
from .camera_frame import CameraFrame
from .config import StationConfig
from .db import (DB_ERRORS, LOCK_DEFECT_TYPES, LOCK_WAIT_MS, Database, fault_line, is_busy, is_refusal,
                 is_unreachable, refusal_reason)
from .data_folders import FolderSeen, claim
from .disk import GB, DiskKeeper
from .record_keeper import RecordKeeper
from .shifts import plant_zone
from .sweep import StoreSweep, SweepSchedule
from .errors import (Conflict, CorruptImage, DefectTypesChanged, EmptyUpload, ImageTooLarge, InvalidRequest,
                     ModelLoadFailed, NotAnImage, NotFound, PassesDefects, PhotoTooDeep, RejectsGoodParts, StationBusy,
                     StationError, StorageUnavailable, UploadTooLarge)
from .alarms import AlarmWatch
from .auth import KeyCache
from .imagestore import ContentStore, sha256_hex, sniff_image
from .mapwriter import MapWriter, map_key
from .metrics import StationMetrics
from . import part_names
from .part_names import station_is
from .orm import Inspection, Review, WriteCheck, iso_utc, utcnow
from .outbox import Outbox, record_event
from .periodic import PeriodicJob
from .registry import Loader, ModelRegistry, edge_loader, model_subject
from . import audit, reviews
from .shadow import ShadowRunner
from .sinks import sinks_from_config
from .spc_data import naive_utc as _naive_utc   # the name the routers import
from .test_parts import TestPartBook

log = logging.getLogger("lineguard.station")

# another process's parts (a hot-folder watcher on the same database) show in /health's
# last_part_at this late at most: the plant view reads it every 10 s, an idle line is minutes
NEWEST_PART_READ_S = 15.0
# ms /health's own reads and write check wait for another writer's lock (a part waits
# db.LOCK_WAIT_MS): a monitor's call must answer, saying what it can
HEALTH_LOCK_WAIT_MS = 1000


_FIELD_MAX = {"part_id": 200, "line": 100, "station": 100, "product": 100, "lot": 200, "serial": 200}
# line and paragraph separators, the invisible spaces (zero width, word joiner, BOM) and the soft
# hyphen: a part id holding one looks like another and is found by no one typing it; and the
# bidirectional controls (marks, embeddings, overrides, isolates): "\u202eLN1" shows as "1NL" and
# turns the text after it around on every page and export that shows it
_INVISIBLE = ("\u2028\u2029\u200b\u2060\ufeff\u00ad\u200e\u200f"
              + "".join(map(chr, range(0x202A, 0x202F))) + "".join(map(chr, range(0x2066, 0x206A))))


def unprintable(value: str) -> Optional[str]:
    """The first control (Unicode Cc) or invisible/bidirectional character of ``value``, or
    None: what a part's fields refuse (and the API's other names, and a station's line and
    product at its start)."""
    return next((c for c in value if unicodedata.category(c) == "Cc" or c in _INVISIBLE), None)


Listener = Callable[[str, dict], None]


@dataclass
class Part:
    """What the line knows about a part before it is inspected."""

    part_id: str
    line: str
    station: str
    product: str
    lot: Optional[str] = None
    serial: Optional[str] = None

    def checked(self) -> "Part":
        """This part as it is stored: each name without surrounding spaces (a PLC's string
        padded to its length, a scanner's trailing CR: " L1 " was a line of its own beside
        L1), an empty lot or serial none; refused when a name is empty, too long or holds a
        control character (NUL, a line break, an escape: kept for ever in records, exports
        and the PLC's strings) or an invisible space (a zero-width space)."""
        tidy = {}
        for name, limit in _FIELD_MAX.items():
            value = getattr(self, name)
            if value is None and name in ("lot", "serial"):
                tidy[name] = None
                continue
            if not isinstance(value, str) or not value.strip():
                if name in ("lot", "serial") and isinstance(value, str):
                    tidy[name] = None
                    continue
                raise StationError(f"{name} is required and must not be empty")
            value = value.strip()
            if len(value) > limit:
                raise StationError(f"{name} is longer than {limit} characters")
            bad = unprintable(value)
            if bad is not None:
                raise InvalidRequest(f"{name} holds a control or invisible character (U+{ord(bad):04X}); send it "
                                     "as printable text (a scanner or PLC string may need its terminator removed)")
            tidy[name] = value
        return dataclasses.replace(self, **tidy)


@dataclass
class Outcome:
    record: Inspection
    created: bool          # False: the same part and image were already inspected
    # the part's inspections at its station before this one (earlier_inspections); None when
    # the database could not say
    earlier: Optional[int] = None


def inspection_to_dict(rec: Inspection) -> dict[str, Any]:
    """The JSON form of a record (API answers, sinks, exports)."""
    thr = rec.threshold
    return {
        "id": rec.id,
        "part_id": rec.part_id,
        "line": rec.line,
        "station": rec.station,
        "product": rec.product,
        "lot": rec.lot,
        "serial": rec.serial,
        "source": rec.source,
        "verdict": rec.verdict,
        "score": rec.score,
        "threshold": thr,
        "review_threshold": rec.review_threshold,
        "pixel_threshold": rec.pixel_threshold,
        "margin": (rec.score / thr) if thr and thr > 0 else None,
        "regions": rec.regions or [],
        "model": {"model_id": rec.model_id, "model_version": rec.model_version,
                  "registry_version": rec.registry_version},
        "timings_ms": rec.timings_ms or {},
        "image_sha256": rec.image_sha256,
        "image_size": [rec.image_width, rec.image_height],
        "stored": {"image": rec.image_key is not None, "heatmap": rec.heatmap_key is not None},
        "created_at": _iso(rec.created_at),
        "defect_type": rec.defect_type,
        "audit_sample": bool(rec.audit_sample),
        # what was off about the photo (vision.photo_check): such a part is never passed as OK
        "photo_issues": list(rec.photo_issues or []),
        # a test part's check (line.test_parts): its name, the verdict it had to get, and whether it did
        "test_part": None if rec.test_part is None else {
            "name": rec.test_part, "expected": rec.test_expected, "right": rec.verdict == rec.test_expected},
        "review": {"reviewed": bool(rec.reviewed), "label": rec.review_label, "reviewer": rec.reviewer,
                   "note": rec.review_note, "reviewed_at": _iso(rec.reviewed_at), "defect_type": rec.defect_type,
                   # where an escape was found (line.reviews.FOUND_BY); None: not said, or not an escape
                   "found_by": rec.found_by},
    }


def _review_threshold(result: Any) -> Optional[float]:
    # None where the model has no review band: the record says "no band", not a copy of threshold
    rev = getattr(result, "review_threshold", None)
    return None if rev is None or float(rev) >= float(result.threshold) else float(rev)


_iso = iso_utc   # the name the routers import


# the database fault /health's own probe sets (and clears once the database answers again)
_UNREACHABLE = "the database is not reachable"
# a part's latest review, as its record keeps it (Station.review writes every one of them)
_REVIEW_COLUMNS = ("reviewed", "review_label", "defect_type", "reviewer", "review_note", "reviewed_at", "found_by")
# /health proves the database takes writes when no part has been written for this long
WRITE_CHECK_IDLE_S = 60.0
# /health's image-folder write probe, at most this often while the folder has no fault
IMAGE_PROBE_EVERY_S = 10.0

# Faults of the station's housekeeping (backups, the old records' deletion and archive,
# the store sweep): the line goes on, every part judged and stored, so /health says
# "degraded" with a 200 (a load balancer or a container's health probe must not take
# the station off the line, or restart it over and over, for an unplugged backup disk);
# "disk" too: under --min-free-gb with nothing left to delete, parts are still stored
# (a disk that is full is the data folder's fault). The others (data folder, database,
# PLC, camera) stop parts: a 503.
HOUSEKEEPING_FAULTS = frozenset({"backup", "records", "records_image", "store_sweep", "disk"})


# How long a part whose model gave no answer in its whole wait (ModelTimeout, 300 s) is sent
# again after: not the busy answer's 5 s, which is for a pool whose connections free in
# milliseconds. The parts ahead of it took the model the whole wait: a part sent again 5 s
# later joins the same queue and waits as long again, and a stuck model is not cured by more
# parts. The same as server.app.MODEL_TIMEOUT_RETRY_S (its Retry-After).
MODEL_TIMEOUT_RETRY_S = 30


def model_timed_out(exc: BaseException) -> ModelLoadFailed:
    """The refusal of a part its model did not judge in time (``exc``: the ModelTimeout):
    what is wrong, that nothing was stored and what to do, with the wait
    (``retry_after_s``) -- the words the station's HTTP 503 answers with, so a hot folder or
    a camera in the station's process says the same as one sending over HTTP."""
    waited = str(exc) or "the model did not answer in time"
    return ModelLoadFailed(
        f"{waited}: the parts ahead of this one are still being judged (the station gets more parts than its "
        f"model judges), or the model is stuck. Nothing was stored for this part: send it again in "
        f"{MODEL_TIMEOUT_RETRY_S} s. If every part times out, check the station's load (GET /metrics: "
        "lineguard_queue_depth) and its log, and restart it if the model is stuck",
        retry_after_s=MODEL_TIMEOUT_RETRY_S)


def stops_parts(fault: str) -> bool:
    """Whether a fault stops parts being judged or stored (/health's 503), or only the
    station's housekeeping; a PLC link's answers waiting to be recorded (``plc_signals``,
    line.signal_spool) are the latter: the PLC has them, and they are kept; so are a sink's
    (``sink NAME``): its results wait in the outbox."""
    return (fault not in HOUSEKEEPING_FAULTS and not fault.endswith("_signals") and not fault.startswith("sink ")
            # a hot folder's watcher behind or silent: the station itself judges parts
            and not fault.startswith("watcher ")
            # a line alarm left unanswered: the station judges parts; people are not answering
            and not fault.startswith("alarm "))


class Station:
    """Database, file store, model registry, metrics and sinks of one station."""

    def __init__(self, config: StationConfig, loader: Optional[Loader] = None, sinks: Optional[list] = None,
                 trainer: Optional[Any] = None):
        self.config = config
        # a new data folder is its owner's alone: it holds the parts' photos and, on SQLite,
        # the database with every user's password hash (other accounts of the line PC read
        # a folder made with the usual umask)
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = Database(config.database_url, schema=config.db_schema,
                           sqlite_synchronous=config.sqlite_synchronous)
        self.db.upgrade()
        # a PostgreSQL database's records name files that one data folder keeps: a station
        # with a folder of its own is refused here (line.data_folders)
        try:
            self.folder = claim(self.db, config.data_dir,
                                let_go=os.environ.get("LINEGUARD_LET_GO_OF_FOLDER") or None)
        except BaseException:
            self.db.dispose()
            raise
        self._folder_seen = None if self.folder is None else FolderSeen(self.db, self.folder).start()
        power_safe = config.sqlite_synchronous in ("FULL", "EXTRA")
        self.images = ContentStore(config.data_dir / "images", power_safe=power_safe)
        self.maps = MapWriter(self.db, self.images)
        self.key_cache = KeyCache()
        if loader is None and (config.runtime or config.precision):
            loader = edge_loader(config.runtime, config.precision)
        self.models = ModelRegistry(self.db, ContentStore(config.data_dir / "models"), loader=loader,
                                    run_bytes_per_pixel=config.model_run_bytes_per_pixel)
        self.test_parts = TestPartBook(self.db)
        self.metrics = StationMetrics()
        self.alarms = AlarmWatch(self.db, config.alarm_rules, self.metrics)
        if sinks is None:
            sinks = sinks_from_config(config.webhook_url, config.mqtt_url,
                                      config.webhook_timeout_s, config.webhook_retries)
        self.sinks = Outbox(self.db, sinks, metrics=self.metrics, retention_s=config.outbox_retention_h * 3600)
        self.sinks.on_connected = self.alarms.record_states
        self._batchers: dict[str, ModelBatcher] = {}
        self._recent: "OrderedDict[tuple[str, str], int]" = OrderedDict()   # (part, image) -> id
        self._lines: dict[str, str] = {}      # a line's name as sent -> as stored (see _line_as_stored)
        self._stations: dict[tuple[str, str], str] = {}     # (line, station as sent) -> station as stored
        self._locks_guard = threading.Lock()
        self._write_probe = threading.Lock()     # one /health write check at a time
        self._last_write = time.monotonic()      # a part's record or a write check last committed
        # the newest part recorded (naive UTC), for /health: see newest_part
        self.last_part_at: Optional[dt.datetime] = None
        self._newest_read = -math.inf
        self._images_probed = -math.inf          # when check_storage last wrote its probe file
        self._decodes = threading.BoundedSemaphore(config.max_concurrent_decodes)
        self._pixels = PixelBudget(config.max_pixels_in_flight or config.max_image_pixels)
        # What is wrong with this station right now (storage, database): /health shows
        # it, and it clears itself at the next write that works.
        self.faults: dict[str, str] = {}
        self.plc: list = []   # the PLC links serve starts, one per protocol (/health, the line view)
        self._trim_memory = False
        sweep = SweepSchedule(StoreSweep(self.db, self.images), config.store_sweep_h * 3600, faults=self.faults)
        self.disk = DiskKeeper(self.db, self.images, self.faults, int(config.min_free_gb * GB),
                               config.ok_image_days, config.disk_check_s, busy=self.maps.is_pending,
                               sweep=sweep).start()
        # old parts' records deleted, only where the plant set how long it keeps them
        self.records: Optional[RecordKeeper] = None
        if config.keep_records_days is not None:
            self.records = RecordKeeper(self.db, self.images, config.keep_records_days, busy=self.maps.is_pending,
                                        archive=config.archive_records_to, zone=plant_zone(config.timezone),
                                        faults=self.faults, archive_images=config.archive_images).start()
        self.backups: Optional[BackupSchedule] = None
        if config.backup_to is not None:
            self.backups = BackupSchedule(config.data_dir, config.backup_to, config.backup_every_h * 3600,
                                          self.faults, db_path=config.sqlite_path).start()
        # Called after a record or review commits (the live view, see server.events);
        # replaced, never changed in place, so the inspection path reads it without a lock.
        self._listeners: tuple[Listener, ...] = ()
        self.alarms.listeners.append(lambda alarm: self._notify("alarm", alarm))
        self.refresh_active_metrics()
        self.shadow = ShadowRunner(self, config.shadow_queue)
        from .jobs import JobRunner
        self.jobs = JobRunner(self, trainer)
        self.memory = MemoryKeeper().start()
        self.alarms.start()     # last: a station that fails to open leaves no thread behind

    def record_start(self, process: str) -> bool:
        """Once the station has started (its model loaded): an entry in the change log when
        this process (``process``: the verb, and the line/station a watcher feeds) runs
        with other settings than at its last start, e.g. records kept 90 days instead of
        for good. True when one was written."""
        subject = f"{process} on {socket.gethostname()}:{self.config.data_dir.resolve()}"
        # the shift report follows this process's own runs (serve and a local watcher on one PC apart)
        self.alarms.name_run(subject)
        return audit.record_start(self.db, subject, self.config.audited_settings(), audit.cli_actor())

    def newest_part(self) -> Optional[dt.datetime]:
        """When the newest part was recorded (naive UTC; None: none yet), for /health: a line
        that stopped feeding parts (idle, its camera or PLC silent) said "ok" with nothing to
        tell it apart. This process's parts are kept as each is recorded; another process's
        on the same database (a hot-folder watcher of its own) are read at most every
        NEWEST_PART_READ_S (an indexed max), so a polled /health seldom asks the database."""
        now = time.monotonic()
        if now - self._newest_read >= NEWEST_PART_READ_S and "database" not in self.faults:
            try:
                # 1 s at most for a lock, as /health's write check: the inspections table locked
                # by another program (a maintenance job) held /health for as long as the lock
                with self.db.quick_session(HEALTH_LOCK_WAIT_MS) as s:
                    newest = s.scalar(select(func.max(Inspection.created_at)))
            except SQLAlchemyError:
                newest = None     # the database's fault is /health's to say; this process's parts still shown
            else:
                self._newest_read = now
            self._part_seen(newest)
        return self.last_part_at

    def _part_seen(self, at: Optional[dt.datetime]) -> None:
        # two threads at once may keep the older of two parts a few ms apart: the next part mends it
        if at is not None and (self.last_part_at is None or at > self.last_part_at):
            self.last_part_at = at

    # -- the inspection path -------------------------------------------------------
    def inspect(self, image: Union[bytes, CameraFrame], part: Part, source: str = "api") -> Outcome:
        """Judge, store and signal one part: ``image`` is the bytes of an image file (an
        upload, the hot folder) or a :class:`CameraFrame` from a camera in this process."""
        t0 = time.perf_counter()
        self.metrics.queue_depth.inc()
        try:
            outcome = self._inspect(image, part, source, t0)
            self._note_earlier(outcome)
            return outcome
        except StationError as exc:
            self.metrics.rejected_uploads.labels(exc.code).inc()
            raise
        except PoolTimeout as exc:
            # every database connection in use for the pool's whole wait: overload, answered
            # 503 busy and waited out by every source, not a failure on this part (a 500)
            self.metrics.rejected_uploads.labels(StationBusy.code).inc()
            raise StationBusy.no_connection() from exc
        finally:
            self.metrics.queue_depth.dec()
            if self._trim_memory:
                self._trim_memory = False
                return_freed_memory()

    def _note_earlier(self, outcome: Outcome) -> None:
        """Count the part's earlier inspections at its station (``outcome.earlier``), and log a
        part id sent again with another photo (a second record of the part, never refused nor
        merged: the verdict and SPC count it as any part), whatever sent it: the API answered
        the count, but a hot folder fed a part id twice or a PLC re-triggering one said nothing.
        A test part is sent again by design (each shift's verification), and the same photo
        sent again is the first record (a retry): neither is a re-inspection. The count is one
        read along the part's index (migration 0028); the part stands even if it fails."""
        rec = outcome.record
        try:
            outcome.earlier = earlier = earlier_inspections(self.db, rec)
        except (*DB_ERRORS, PoolTimeout) as exc:    # the part is stored: never answered "busy, send again"
            log.warning("part %r (inspection %d): its earlier inspections could not be counted (%s)", rec.part_id,
                        rec.id, refusal_reason(exc) if is_refusal(exc) else type(exc).__name__)
            return
        if not earlier or not outcome.created or rec.test_part is not None:
            return
        if earlier < REINSPECTIONS_LOGGED and by_part_tag(rec):
            log.info("PartTag %s on line %s station %s triggered again (part %r, inspection %d), after %d earlier "
                     "here (GET /api/v1/inspections?serial=%s lists them); a re-inspection after rework, or a PLC "
                     "repeating the tag", rec.serial, rec.line, rec.station, rec.part_id, rec.id, earlier, rec.serial)
        elif earlier < REINSPECTIONS_LOGGED:
            log.info("part %r on line %s station %s inspected again with another photo (source %s): inspection %d, "
                     "after %d earlier here (GET /api/v1/inspections/%d lists them); a re-inspection after rework, "
                     "or a PLC or scanner repeating the id", rec.part_id, rec.line, rec.station, rec.source,
                     rec.id, earlier, rec.id)
        elif earlier == REINSPECTIONS_LOGGED and by_part_tag(rec):
            log.warning("PartTag %s on line %s station %s was triggered %d times (inspection %d): no rework but a "
                        "tag the PLC gives many parts (a constant, a counter not kept), whose parts then read as one "
                        "part's re-inspections; give each part its own PartTag, or 0 for none. Its further "
                        "repeats are not logged (GET /api/v1/inspections?serial=%s lists them)",
                        rec.serial, rec.line, rec.station, earlier + 1, rec.id, rec.serial)
        elif earlier == REINSPECTIONS_LOGGED:
            # said once per id (the count passes this number once), not for each part after
            log.warning("part id %r on line %s station %s was sent %d times (source %s, inspection %d): no rework "
                        "but an id the source gives many parts (a scanner's NOREAD, a camera naming every file "
                        "alike), whose parts then read as one part's re-inspections; give each part its own id. "
                        "Its further repeats are not logged (GET /api/v1/inspections/%d lists them)",
                        rec.part_id, rec.line, rec.station, earlier + 1, rec.source, rec.id, rec.id)

    def _line_as_stored(self, line: str) -> str:
        """A line sent as "l1" where the records say "L1" is line L1: every page and filter
        takes the two for one line, so a second spelling stored would split its parts (the
        line view's counters, SPC) between them. The names are read again only for a name
        not seen yet, a few index hops, never per part."""
        known = self._lines.get(line)
        if known is not None:
            return known
        try:
            names = part_names.stored_names(self.db, "line")
        except DB_ERRORS:
            return line       # the database away: the part is judged (and its storing fails as it would)
        stored = part_names.as_stored(line, names)
        # replaced whole, never changed in place: the inspection path reads it without a lock
        self._lines = {**self._lines, **{n: n for n in names}, line: stored}
        return stored

    def _station_as_stored(self, line: str, station: str) -> str:
        """A station sent as "s1" where the line's parts say "S1" is station S1 (a second
        card with its own counters and rate alarms on the line view otherwise). No index
        reads a line's station names whole: those of its last day's parts are read (its
        index on line and time), once per name not seen yet."""
        known = self._stations.get((line, station))
        if known is not None:
            return known
        since = utcnow() - dt.timedelta(days=1)
        try:
            with self.db.session() as s:
                names = list(s.scalars(select(Inspection.station).where(
                    Inspection.line == line, Inspection.created_at >= since).distinct()))
        except DB_ERRORS:
            return station    # the database away: the part is judged (and its storing fails as it would)
        stored = part_names.as_stored(station, names)
        self._stations = {**self._stations, **{(line, n): n for n in names}, (line, station): stored}
        return stored

    def names_as_stored(self, line: str, station: str) -> tuple[str, str]:
        """A line and station as this station stores its parts' (see Part.checked): for a
        source that names them once for all its parts (a PLC link)."""
        line, station = line.strip(), station.strip()
        line = self._line_as_stored(line)
        return line, self._station_as_stored(line, station)

    def _inspect(self, image: Union[bytes, CameraFrame], part: Part, source: str, t0: float) -> Outcome:
        part = part.checked()
        line = self._line_as_stored(part.line)
        part = dataclasses.replace(part, line=line, station=self._station_as_stored(line, part.station))
        if isinstance(image, CameraFrame):
            _check_frame(image, self.config.max_image_pixels)
            digest, suffix = image.sha256(), ".png"
        else:
            if not image:
                raise EmptyUpload("the image is empty (0 bytes); the camera or copy step may have failed")
            limit = self.config.max_upload_bytes
            if len(image) > limit:
                raise UploadTooLarge(f"the image is {len(image) / (1 << 20):.1f} MiB, over the station limit of "
                                     f"{limit / (1 << 20):g} MiB; send a smaller image or raise --max-upload-mb")
            digest = sha256_hex(image)
            suffix, _media = sniff_image(image)
        # A resubmission is nearly always a retry of a part answered moments ago: those
        # are known in memory and answered without the model. New parts skip a database
        # look-up; an older duplicate is caught by the unique (part, image) index at
        # commit and answered with the existing record, never counted twice.
        recent = self._recent.get((part.part_id, digest))
        if recent is not None:
            existing = self._existing_by_id(recent)
            if existing is not None:
                return Outcome(self._same_part(existing, part), created=False)

        if isinstance(image, CameraFrame):
            decode_scale, pixels = None, image.width * image.height
        else:
            decode_scale = self._decode_scale(part)
            pixels = declared_pixels(image, self.config.max_image_pixels, decode_scale)
        # Hold the part's pixels from decode to answer: a part's memory (decoded image,
        # anomaly map at its size) lives that long, so large parts take turns while small
        # ones pass freely; with the pixel limit this bounds the station's memory. A large
        # JPEG holds the pixels it decodes to (a 12 MP photo at 1/4: 0.75 MP).
        with self._pixels.hold(pixels):
            return self._judge_and_store(image, part, source, t0, digest, suffix, decode_scale)

    def _judge_and_store(self, image: Union[bytes, CameraFrame], part: Part, source: str, t0: float, digest: str,
                         suffix: str, decode_scale: Optional[Callable[[int, int], int]]) -> Outcome:
        frame = image if isinstance(image, CameraFrame) else None
        if frame is None:
            photo = self._decode(image, suffix, decode_scale)
        else:
            photo = frame.photo()
            self._trim_memory |= frame.width * frame.height >= 4_000_000
        t_decode = time.perf_counter()

        mv = self.models.active_for(part.product, part.line)
        insp = self.models.inspector(mv)
        _fits_camera_depth(photo.pixels, insp)
        # Whether the image is kept, per verdict: drawn from its hash (a frame's: of its
        # pixels), so known before the model runs.
        audit = in_audit_sample(digest, self.config.audit_sample_rate)
        # a test part's image is the shift's evidence that the station was verified: kept
        test = self.test_parts.match(part.product, part.serial, part.part_id)
        keep = {not_ok: audit or test is not None or self.config.retention.keep(not_ok, digest)
                for not_ok in (False, True)}
        # Write (and fsync) the image to a temporary file while the model runs; after
        # the verdict it is renamed into place or dropped. A camera frame's PNG is
        # encoded there only when it is kept whatever the verdict; otherwise only once
        # the verdict says so (encoding costs more than the model at a few megapixels).
        staged = None
        if keep[False] and keep[True] or (frame is None and (keep[False] or keep[True])):
            staged = self._stage(image)
        try:
            try:
                judged = self._batcher(mv.model_id, insp).inspect(photo)
            except BatcherClosed:
                # the model was replaced between the look-up and the queue: judge the
                # part by the model active now (with the pixels decoded for the one before)
                mv = self.models.active_for(part.product, part.line)
                insp = self.models.inspector(mv)
                _fits_camera_depth(photo.pixels, insp)
                judged = self._batcher(mv.model_id, insp).inspect(photo)
            result = judged.result
        except ModelTimeout as exc:
            if staged is not None:
                staged.discard()
            # the words and the wait the HTTP answer gives (server.app): a hot folder or camera
            # in this process waits it out as an outage, 30 s, not its 0.5 s backoff
            raise model_timed_out(exc) from exc
        except BaseException:
            if staged is not None:
                staged.discard()
            raise

        t_judged = time.perf_counter()
        # A REVIEW part is kept like an NG one: a person is about to look at its image.
        not_ok = getattr(result.verdict, "value", result.verdict) != "OK"
        image_key = overlay_key = map_to_store = None
        scale = None
        name = digest   # the record's image_sha256: a kept frame's is its PNG's, below
        if keep[not_ok]:
            if staged is None:
                staged = self._stage(image)
            try:
                if frame is not None:
                    name = staged.made_sha256()
                image_key = staged.commit(self.images.key_for(name, suffix))
            except BaseException as exc:
                staged.discard()        # a frame's PNG half-written on a full disk: not left in staging
                if isinstance(exc, OSError):
                    raise self._storage_fault("images", exc) from exc
                raise
        elif staged is not None:
            staged.discard()
        if image_key is not None and result.anomaly_map is not None:
            # The map is stored after the answer and the overlay rendered when someone
            # asks for it (GET .../overlay): on the way they would double the time a
            # part spends outside the model.
            from . import render
            scale = render.map_scale(result.pixel_threshold, result.anomaly_map)
            map_to_store = map_key(self.images, name, mv.model_id)
        t_store = time.perf_counter()

        verdict = getattr(result.verdict, "value", str(result.verdict))
        timings = {k: round(float(v), 3) for k, v in (result.timings_ms or {}).items()}
        timings.update({"station_decode": round((t_decode - t0) * 1e3, 3),
                        "station_queue": round(judged.queued_s * 1e3, 3),
                        "station_model": round(judged.model_s * 1e3, 3),
                        "station_batch": judged.batch,
                        "station_store_files": round((t_store - t_judged) * 1e3, 3)})
        h, w = photo.size_hw
        rec = Inspection(
            part_id=part.part_id, line=part.line, station=part.station, product=part.product,
            lot=part.lot, serial=part.serial, source=source, verdict=verdict, score=float(result.score),
            threshold=float(result.threshold), pixel_threshold=float(result.pixel_threshold),
            review_threshold=_review_threshold(result), model_id=mv.model_id, model_version=mv.model_version or str(getattr(result, "model_version", "")),
            registry_version=mv.version, regions=[r.to_dict() for r in result.regions], timings_ms=timings,
            image_sha256=name, image_width=int(w), image_height=int(h), image_key=image_key,
            heatmap_key=None, heatmap_scale=scale, overlay_key=overlay_key, created_at=utcnow(),
            reviewed=False, audit_sample=audit, test_part=test.name if test else None,
            test_expected=test.verdict if test else None,
            photo_issues=list(getattr(result, "photo_issues", None) or []) or None)
        s = self.db.new_session()
        try:
            s.add(rec)
            s.flush()   # the id, for the message
            payload = inspection_to_dict(rec)
            payload["stored"]["heatmap"] = map_to_store is not None   # linked once stored (below)
            # in the record's transaction: a committed part is always signalled (see line.outbox)
            record_event(s, "inspection", part.line, payload)
            s.commit()
        except IntegrityError:
            # This part + image is already recorded (sent twice at once, or an old part
            # sent again): the first record stands and is the answer.
            s.rollback()
            s.close()
            existing = self.find_existing(part.part_id, name)
            if existing is None:
                raise
            return Outcome(self._same_part(existing, part), created=False)
        except DB_ERRORS as exc:
            s.rollback()
            if not is_refusal(exc):
                raise           # the station's own mistake: a 500 with its traceback, not a fault to wait out
            raise self._storage_fault("database", exc) from exc
        finally:
            s.close()
        self.faults.pop("images", None)
        self.faults.pop("database", None)
        self._last_write = time.monotonic()
        self._part_seen(rec.created_at)
        if image_key is not None:
            self.disk.after_write()
        self._remember(part.part_id, digest, rec.id)
        if map_to_store is not None:
            self.maps.submit(rec.id, map_to_store, result.anomaly_map, scale)
            rec.heatmap_key = map_to_store   # the answer links it; reads wait until it is stored
        total = time.perf_counter() - t0
        if test is None:     # the line's own parts: what a plant's NG rate is built on
            self.metrics.parts.labels(part.line, part.station, verdict).inc()
            if rec.photo_issues:
                self.metrics.photos_doubted.labels(part.line, part.station).inc()
        else:
            right = verdict == test.verdict
            self.metrics.test_part_checks.labels(part.line, part.station, "right" if right else "wrong").inc()
            if not right:
                log.warning("test part %s on line %s station %s got %s, not %s: the station failed its "
                            "verification; stop the line and find why (camera, lighting, model) before its parts "
                            "ship", test.name, part.line, part.station, verdict, test.verdict)
        self.metrics.latency.labels(part.line).observe(total)
        self.metrics.model_latency.labels(part.line).observe(judged.model_s)
        # the live pages hear of the part before any alarm it raises (which links to it)
        self._notify("inspection", payload)
        # a run of rejects, or a test part judged wrong, raises a line alarm (line.alarms); its
        # message goes out below
        self.alarms.after_part(rec)
        self.sinks.wake()
        # after the commit, off this thread: the shadow never delays or changes the answer
        self.shadow.submit(rec.id, part.product, part.line, mv.model_id, photo)
        return Outcome(rec, created=True)

    def _decode_scale(self, part: Part) -> Optional[Callable[[int, int], int]]:
        """How far a large JPEG of this part may be reduced as it decodes: as far as every
        model about to judge it allows (the active one and a shadow). None, the photo is
        its decode, when a model has no such rule (a stand-in) or none is known yet (the
        look-up after the decode says why)."""
        try:
            rules = [decode_scale_of(self.models.inspector(self.models.active_for(part.product, part.line)))]
            shadow = self.shadow.for_part(part.product, part.line)
            if shadow is not None:
                rules.append(decode_scale_of(self.models.inspector(shadow)))
        except PoolTimeout:
            # no connection in the pool's whole wait: busy now (503), not after the part's
            # own reads wait as long again (90 s in all, past a hot folder's 60 s: its good
            # file was taken for one that hangs the station)
            raise
        except Exception:  # noqa: BLE001 - no model or a broken one: refused after the decode, with the reason
            return None
        known = [r for r in rules if r is not None]
        if len(known) < len(rules):
            return None
        return lambda h, w: min(rule(h, w) for rule in known)

    def _stage(self, image: Union[bytes, CameraFrame]) -> Any:
        try:
            return self.images.stage(image.png if isinstance(image, CameraFrame) else image)
        except OSError as exc:
            raise self._storage_fault("images", exc) from exc

    def _decode(self, data: bytes, suffix: str, decode_scale: Optional[Callable[[int, int], int]]) -> Any:
        # A few decodes at a time: a large part's memory is spent here, so the cap (with
        # the pixel budget checked from the header) bounds the station's memory however
        # many large parts arrive at once.
        with self._decodes:
            try:
                # 16-bit photos as they are: the model scales them by its camera's depth.
                # A large JPEG decodes at the reduction the models' inputs allow (a 12 MP
                # photo's decode took 4x the fast model's time in full).
                photo = load_photo(data, max_pixels=self.config.max_image_pixels, reduce_to_fit=True,
                                   keep_depth=True, decode_scale=decode_scale)
            except _HeaderTooLarge as exc:
                raise ImageTooLarge(f"the image {exc.problem}; send a smaller image (downscale or crop it) or "
                                    "raise the station's pixel limit (--max-megapixels)") from exc
            except ImageError as exc:
                if not suffix:
                    raise NotAnImage("the upload is not an image lineguard can read; "
                                     "send PNG, JPEG, BMP, TIFF, WebP or GIF") from exc
                # the reader's own advice when it has one ("use images of at least 8x8 pixels")
                raise CorruptImage(f"the {suffix[1:].upper()} image {exc.problem}; "
                                   + (exc.hint or "re-capture or re-send the part")) from exc
        if not suffix:
            # Pillow reads more formats than the station stores and serves with a known
            # type (ICO, PPM, TGA...): refused, so no part is kept as an anonymous blob.
            raise NotAnImage("this image format is not accepted by the station; send PNG, JPEG, BMP, TIFF, "
                             "WebP or GIF")
        if photo.pixels.shape[0] * photo.pixels.shape[1] >= 4_000_000:
            self._trim_memory = True   # once this part is answered, see inspect()
        return photo

    def _same_part(self, existing: Inspection, part: Part) -> Inspection:
        """The existing record of a resubmitted part, if it really is the same part."""
        differs = {name: {"recorded": getattr(existing, name), "sent": getattr(part, name)}
                   for name in ("product", "line", "station") if getattr(existing, name) != getattr(part, name)}
        if differs:
            what = ", ".join(f"{k} {v['recorded']!r} (sent {v['sent']!r})" for k, v in differs.items())
            raise Conflict(f"part {part.part_id!r} with this image is already recorded as inspection "
                           f"{existing.id} with {what}; send it with the recorded values, or give the part "
                           "its own part id", existing_id=existing.id, differs=differs)
        return existing

    def _storage_fault(self, what: str, exc: BaseException) -> StorageUnavailable:
        msg = self._fault_message(what, exc)
        self.faults[what] = msg
        log.error("storage fault (%s): %s", what, fault_line(exc))
        if what == "images":
            self.disk.wake()      # the disk may be full: old images make room for the next parts
        return StorageUnavailable(msg)

    @staticmethod
    def _fault_message(what: str, exc: BaseException) -> str:
        # The reason without server paths: the operator is told what to check, the log
        # (station side) has the full error.
        reason = refusal_reason(exc) if isinstance(exc, DB_ERRORS) else \
            getattr(exc, "strerror", None) or type(exc).__name__
        if what != "images" and is_unreachable(exc):
            return (f"{_UNREACHABLE} ({reason}); nothing was stored: check that the database server is up and "
                    "reachable (--db), then send the part again")
        if what != "images" and is_busy(exc):
            # not the disk: another program held the tables past the wait (a maintenance job,
            # a database tool left in a transaction), and "check disk space" sent people there
            return (f"the database was held by another program past the {LOCK_WAIT_MS / 1000:g} s wait ({reason}); "
                    "nothing was stored: send the part again, and if it persists find what keeps the station's "
                    "tables locked (a maintenance job, a database tool left in a transaction)")
        where = "the data folder" if what == "images" else "the database"
        msg = f"{where} cannot be written ({reason}); nothing was stored: check disk space and permissions of " \
              f"the station's {'--data folder' if what == 'images' else 'database'}, then send the part again"
        return msg

    def check_storage(self) -> dict[str, str]:
        """Probe the data folder and database now (``/health``); returns the faults found."""
        import tempfile
        from sqlalchemy import text
        # The image folder is written to at most every IMAGE_PROBE_EVERY_S while it has no
        # fault: /health and /metrics are open, and each call wrote 64 KiB (200 calls: 13 MiB
        # on the line's disk). A folder that breaks in between is found by the next part's
        # refusal, and one with a fault is probed at every call, to clear it when it works.
        now = time.monotonic()
        if "images" in self.faults or now - self._images_probed >= IMAGE_PROBE_EVERY_S:
            self._images_probed = now
            try:
                staging = self.images.root / ".staging"
                staging.mkdir(exist_ok=True)
                # a part's worth of bytes, not an empty file: an empty file is still made on a
                # disk too full for any image, and would clear the fault a refused part set
                with tempfile.NamedTemporaryFile(dir=staging, suffix=".probe") as probe:
                    probe.write(b"\0" * 65536)
                    probe.flush()
                self.faults.pop("images", None)
            except OSError as exc:
                self._storage_fault("images", exc)
        try:
            with self.db.session() as s:
                s.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure is a fault to show
            self.faults["database"] = f"{_UNREACHABLE} ({type(exc).__name__}); check --db"
            return dict(self.faults)
        idle = time.monotonic() - self._last_write > WRITE_CHECK_IDLE_S
        if ("database" in self.faults or idle) and self._write_probe.acquire(blocking=False):
            # Reachable: cleared by a write that works, whatever the fault was (not
            # reachable, then back read-only, is still refused). Not only a part's: a
            # station a load balancer took out of service on this fault gets no part,
            # and would never come back. And a station that wrote nothing for a while
            # (a line stopped for the break) proves it can: a database turned read-only
            # meanwhile (a failover to a standby, a full disk) is a fault before the next
            # part is refused, not after. One probe at a time; the others say what stands.
            try:
                self._check_writes()
            finally:
                self._write_probe.release()
        return dict(self.faults)

    def _check_writes(self) -> None:
        """Write 64 kB of new rows and delete them again; clears the database fault if it
        commits. A part's worth and more, in new pages: a small row rewritten in place
        goes through on a database too full for any part. Waits 1 s for a lock at most
        (a /health call must not hang for the 30 s a part waits)."""
        fault = self.faults.get("database")
        # checked again in a minute whatever comes of it: a check that keeps failing for a
        # reason of its own must not run (and log) at every /health call and scrape
        self._last_write = time.monotonic()
        table = WriteCheck.__table__
        sqlite = self.db.engine.dialect.name == "sqlite"
        try:
            with self.db.engine.connect() as conn:
                try:
                    if sqlite:
                        conn.exec_driver_sql(f"PRAGMA busy_timeout={HEALTH_LOCK_WAIT_MS}")
                        conn.commit()
                    with conn.begin():
                        self._write_check_limits(conn, sqlite)
                        # rows a check stopped between its two writes left go first, only old
                        # ones: several processes (serve, a hot folder's watcher) check at once
                        conn.execute(table.delete().where(table.c.written_at < utcnow() - dt.timedelta(minutes=10)))
                        # random bytes: PostgreSQL would compress zeros to nothing
                        row_id = conn.execute(table.insert().values(
                            written_at=utcnow(), payload=os.urandom(65536))).inserted_primary_key[0]
                    with conn.begin():
                        self._write_check_limits(conn, sqlite)
                        conn.execute(table.delete().where(table.c.id == row_id))
                finally:
                    if sqlite:
                        conn.invalidate()    # not back to the pool with a 1 s wait for locks
        except Exception as exc:  # noqa: BLE001 - still refused: the fault stands, with today's reason
            if fault is None and is_busy(exc):
                # an idle station's check met another writer (a deletion of old records, the
                # watcher): not proof of anything, and a part waits 30 s where this waits 1
                log.info("the database's write check met a busy database; checked again later: %s",
                         fault_line(exc))
                return
            if is_refusal(exc):
                msg = self._fault_message("database", exc)
                if self.faults.get("database") != msg:    # logged once, not at every probe
                    log.error("storage fault (database): the write check was refused: %s", fault_line(exc))
                self.faults["database"] = msg
            else:
                log.error("the database's write check failed", exc_info=exc)
            return
        if fault is not None and self.faults.get("database") == fault:   # not one a part set meanwhile
            self.faults.pop("database", None)
            log.info("the database takes writes again: its fault is cleared")

    @staticmethod
    def _write_check_limits(conn: Any, sqlite: bool) -> None:
        if not sqlite:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{HEALTH_LOCK_WAIT_MS}ms'")
            conn.exec_driver_sql("SET LOCAL statement_timeout = '10s'")

    _RECENT_MAX = 10_000

    def _remember(self, part_id: str, digest: str, inspection_id: int) -> None:
        with self._locks_guard:
            self._recent[(part_id, digest)] = inspection_id
            if len(self._recent) > self._RECENT_MAX:
                self._recent.popitem(last=False)

    def _existing_by_id(self, inspection_id: int) -> Optional[Inspection]:
        self.maps.wait(inspection_id)
        with self.db.session() as s:
            return s.get(Inspection, inspection_id)

    def _batcher(self, model_id: str, insp: Any) -> ModelBatcher:
        # One queue per model: parts are judged one at a time, or as a batch when several
        # wait and the model judges batches faster (see line.batcher); never two calls
        # into one model at once, which on a small CPU only adds thrashing.
        with self._locks_guard:
            b = self._batchers.get(model_id)
            if b is None or b.inspector is not insp or b.closed:
                if b is not None:
                    b.close()
                b = ModelBatcher(insp, self.config.max_batch, self.config.batch_window_ms / 1000, name=model_id[:8])
                self._batchers[model_id] = b
            return b

    # -- listeners -------------------------------------------------------------------
    def add_listener(self, fn: "Listener") -> None:
        """Call ``fn(event, payload)`` after each record (``"inspection"``) or review (``"review"``)
        commits; ``payload`` is the record's JSON form, shared by all listeners: do not change it.

        It runs on the thread that judged the part, so it must return at once (hand the
        payload to a queue); an exception in it is logged and never fails the part.
        """
        with self._locks_guard:
            self._listeners = (*self._listeners, fn)

    def remove_listener(self, fn: "Listener") -> None:
        with self._locks_guard:
            self._listeners = tuple(f for f in self._listeners if f is not fn)

    def _notify(self, event: str, payload: dict[str, Any]) -> None:
        for fn in self._listeners:
            try:
                fn(event, payload)
            except Exception:  # noqa: BLE001 - a broken live view must not fail a part
                log.exception("station listener %r failed on %s", fn, event)

    # -- records ---------------------------------------------------------------------
    def find_existing(self, part_id: str, digest: str) -> Optional[Inspection]:
        # Asked for every part and almost always "no": look up the id alone (a plain
        # index probe, no ORM object) and load the record only when there is one.
        with self.db.engine.connect() as conn:
            found = conn.execute(select(Inspection.id).where(Inspection.part_id == part_id,
                                                             Inspection.image_sha256 == digest)).scalar()
        if found is None:
            return None
        # Answered a moment ago and its map still being stored: answer the same links.
        return self._existing_by_id(found)

    def get(self, inspection_id: int) -> Inspection:
        self.maps.wait(inspection_id)
        with self.db.session() as s:
            rec = s.get(Inspection, inspection_id)
        if rec is None:
            raise NotFound(f"no inspection with id {inspection_id}")
        return rec

    def query(self, *, before_id: Optional[int] = None, limit: int = 50, **filters: Any) -> list[Inspection]:
        """Newest first; ``before_id`` is the cursor (the last id of the previous page);
        ``filters`` those of :func:`select_parts`."""
        self.maps.flush()   # parts already answered are listed with their maps
        with self.db.session() as s:
            return list(s.scalars(select_parts(before_id=before_id, limit=limit, **filters)))

    def each(self, *, limit: Optional[int] = None, **filters: Any) -> Iterator[Inspection]:
        """Every record ``filters`` match, newest first, a page at a time (:func:`each_part`)."""
        return each_part(self.db, limit=limit, before_page=self.maps.flush, **filters)

    def review(self, inspection_id: int, label: str, reviewer: Optional[str], note: Optional[str],
               defect_type: Optional[str] = None, seen_review: Optional[str] = None,
               found_by: Optional[str] = None) -> Inspection:
        """Record a person's judgement of a part: appended to its history, kept as its latest
        review, and published (outbox event ``review``), all in one transaction.

        "good" on an NG/REVIEW part is a false alarm, "defect" on an NG part a confirmed
        defect, "defect" on an OK part a missed defect (an escape).

        ``seen_review``: the part's latest review as the reviewer saw it (its ``reviewed_at``
        as the API gives it, or "none": not reviewed); another one by now is refused
        (:class:`ReviewChanged`), so a person decides, not whoever wrote last (two reviewers
        on one part each read "saved", and a confirmed defect became "good"). None: no check.
        ``found_by``: where an escape was found (:data:`.reviews.FOUND_BY`), with "defect" on
        an OK part only (others refused, InvalidRequest).
        The same person saying the same again (a double click, a request re-sent after a
        timeout) is one judgement: no second history row or review event."""
        with self.db.session() as s:
            # the write lock first, then the read: SQLite's reads take no lock, and two
            # reviews that both read the part before either wrote each judged a copy that
            # was stale by then (two rows for one re-sent review; another's review unseen).
            # On PostgreSQL the row lock: a deletion of old records at this moment
            # (line.record_keeper) either waits for this review or has deleted the part.
            s.execute(update(Inspection).where(Inspection.id == inspection_id)
                      .values(reviewed=Inspection.reviewed).execution_options(synchronize_session=False))
            rec = s.get(Inspection, inspection_id, with_for_update=True)
            if rec is None:
                raise NotFound(f"no inspection with id {inspection_id}")
            reviews.check_review(s, rec.product, label, defect_type)
            if found_by is not None:
                reviews.check_found_by(found_by, label, rec.verdict, bool(rec.audit_sample))
            if rec.reviewed and (rec.review_label, rec.defect_type, rec.reviewer, rec.review_note, rec.found_by) == (
                    label, defect_type, reviewer, note, found_by):
                return rec
            if seen_review is not None:
                reviews.check_seen(rec, seen_review, _iso(rec.reviewed_at) if rec.reviewed else None)
            now = utcnow()
            s.add(Review(inspection_id=rec.id, label=label, defect_type=defect_type, reviewer=reviewer, note=note,
                         verdict_at_review=rec.verdict, created_at=now, found_by=found_by))
            rec.reviewed = True
            rec.review_label = label
            rec.defect_type = defect_type
            rec.reviewer = reviewer
            rec.review_note = note
            rec.reviewed_at = now
            rec.found_by = found_by
            # every column written, not only those that differ from the copy read above: on
            # SQLite that read takes no lock, and a review that read the part before another
            # reviewer's committed left the other's label or defect type standing (a part
            # "good, crack"; its latest review "defect" while every count read "good")
            for column in _REVIEW_COLUMNS:
                flag_modified(rec, column)
            s.flush()
            event = inspection_to_dict(rec)
            record_event(s, "review", rec.line, event)
        self.sinks.wake()
        self._notify("review", event)
        return rec

    def review_history(self, inspection_id: int) -> list[Review]:
        """Every review of a part, oldest first."""
        with self.db.session() as s:
            if s.get(Inspection, inspection_id) is None:
                raise NotFound(f"no inspection with id {inspection_id}")
            return reviews.history(s, inspection_id)

    def defect_types(self, product: str) -> list[str]:
        with self.db.session() as s:
            return reviews.defect_types(s, product)

    def has_product_settings(self, product: str) -> bool:
        """Whether the product's own settings (its defect types) were ever saved."""
        from .orm import ProductSettings
        with self.db.session() as s:
            return s.get(ProductSettings, product) is not None

    def set_defect_types(self, product: str, types: list[str], by: Optional[str] = None,
                         expected: Optional[list[str]] = None) -> list[str]:
        """Replace a product's defect types; with ``expected`` (the list as the sender last
        read it) only while the stored list is still that one, compared and written in one
        transaction under the product's lock: two engineers' saves take turns and the
        second is refused (DefectTypesChanged) rather than undoing the first. Without
        ``expected`` the list is replaced, the saves still taking turns."""
        with self.db.session() as s:
            # taken before the read, and held to the commit: a row lock was not enough on
            # PostgreSQL, where a product with no row yet has none to lock: two saves both read
            # the defaults, the first wrote its row, and the second's write, reading again,
            # found that row and replaced it (91 of 200 paired saves, 2026-12-06); two saves
            # without expected both inserted the row, and the second failed (500). On SQLite
            # this is the write lock (its reads take none).
            self.db.hold(s, (LOCK_DEFECT_TYPES << 32) | zlib.crc32(product.encode()), "products")
            if expected is not None:
                stored = reviews.defect_types(s, product)
                if stored != [t.strip() for t in expected]:
                    raise DefectTypesChanged(
                        f"{product}'s defect types were changed meanwhile: now {', '.join(stored)}; nothing "
                        "was saved. Merge your change into this list and send it again with it as expected",
                        defect_types=stored)
            return reviews.set_defect_types(s, product, types, by)

    # -- models ----------------------------------------------------------------------
    def refresh_active_metrics(self) -> None:
        """The active-version gauge as the database has it now (every process's activations)."""
        self.metrics.set_actives([(mv.product, mv.line, mv.model_id, mv.version)
                                  for mv in self.models.list() if mv.active])

    def add_model(self, data: bytes, product: str, line: str = "", note: Optional[str] = None,
                  by: Optional[str] = None, activate: bool = False, train_images: Optional[int] = None,
                  trained_from: Optional[str] = None, try_first: bool = False, filename: Optional[str] = None):
        """Register a model file as the next version (and activate it). ``try_first``: an
        upload or a training job asking to activate goes through activate_model's trial on
        the latest good parts like any activation (an upload skipped it, the way a model of
        another product got onto the line); refused, the version stays, not active."""
        mv = self.models.add(data, product, line, note=note, by=by, activate=activate and not try_first,
                             train_images=train_images, trained_from=trained_from, filename=filename)
        self.refresh_active_metrics()
        self._release_replaced()
        if activate and try_first:
            try:
                mv = self.activate_model(product, line, mv.version, by)
            except (RejectsGoodParts, PassesDefects) as exc:
                raise type(exc)(f"uploaded as version {mv.version}, not activated: {exc.message}",
                                **exc.details) from exc
        return mv

    def _release_replaced(self) -> None:
        """Free the models no product/line uses any more, and stop their queues.

        A replaced model is hundreds of MB (backbone, memory bank); kept, every
        activation would grow the station until it runs out of memory. Parts already in
        a closing queue are still judged by it; a version activated again is reloaded.
        """
        active = {mv.model_id for mv in self.models.list() if mv.active}
        with self._locks_guard:
            for model_id in [m for m in self._batchers if m not in active]:
                self._batchers.pop(model_id).close()
        # a shadow's model stays loaded (it judges every part), without a queue of its own
        self.models.keep_only(active | self.shadow.model_ids())

    def ensure_model(self, path, product: str, line: str = "", by: Optional[str] = None):
        """The start-up model (``serve --model``): a file not yet registered for
        product/line is added and activated (deploying a new model through serve); a file
        already registered is activated only while no version of product/line is active.
        A restart with the usual command line must never undo a later activation (a
        retrain, a tuned version, a rollback): the version active stays, and the file's
        version is returned not active (the caller says so). Its file is put back when a
        restore lost it."""
        # who, as every change a process's start makes is logged: the account it ran as
        # ("serve --model" alone named no one)
        by = by or f"{audit.cli_actor()} serve --model"
        data = Path(path).read_bytes()
        digest = sha256_hex(data)
        mine = [mv for mv in self.models.list(product, line) if mv.file_key.split("/")[-1].startswith(digest)]
        if mine:
            for mv in mine:
                # its file lost or damaged (a restore from a damaged backup names the version,
                # a full disk cut it short): written back
                self.models.put_file(data, Path(mv.file_key).suffix)
            active = next((mv for mv in mine if mv.active), None)
            if active is not None:
                return active
            if any(mv.active for mv in self.models.list(product, line)):
                return mine[-1]         # another version was activated since: it stays
            if self.models.given_back(product, line):
                # a rollback gave the line back to the model of every line since: it stays
                # (activated again at a restart, the rollback was undone with no word)
                return mine[-1]
            return self.activate_model(product, line, mine[-1].version, by=by)
        # --product misspelt ("tiles" beside "tile") is refused as an upload's is; a new one is said.
        # serve --new-product says it IS new (cell-ba beside cell-ab: two products of the plant)
        new = self.models.new_product_check(product, self.config.new_product, how=(
            "start serve again with --new-product"))
        if new:
            log.warning("--product: %s", new)
        return self.add_model(data, product, line, note=f"from {Path(path).name}", by=by, activate=True,
                              filename=Path(path).name)   # a PNG renamed .onnx is told by its name

    def model_faults(self) -> dict[str, str]:
        """``model PRODUCT/LINE vN`` -> why, for each active version that cannot judge parts
        now (its file lost or damaged: every part of it is refused), without loading any:
        /health and the line view say it, where they said "ok" while the line stopped."""
        faults = {}
        for mv in self.models.list():
            if mv.active:
                why = self.models.unusable(mv)
                if why:
                    faults[f"model {model_subject(mv)}"] = why
        return faults

    def load_active_models(self) -> dict[str, str]:
        """Load every active version now, so that /health says at start which cannot
        judge parts (a file lost or damaged in a restore) and the first part need not pay
        for a load: {version: why} of those that failed (each also logged)."""
        failed = {}
        for mv in [m for m in self.models.list() if m.active]:
            try:
                self.models.inspector(mv)
            except Exception as exc:  # noqa: BLE001 - said by /health and the parts' 503
                failed[model_subject(mv)] = str(exc)
        return failed

    def warm_up(self, product: str, line: str) -> bool:
        """Judge a blank photo once with the product's active model, nothing stored: a
        model's first part pays for its runtime's set-up (memory, threads), and a PLC's
        first triggers after a start missed their 1 s window on it. False when there is
        no model to warm (the first part says why)."""
        import numpy as np
        try:
            insp = self.models.inspector(self.models.active_for(product, line))
            insp.inspect(np.full((256, 256, 3), 128, np.uint8))
        except Exception as exc:  # noqa: BLE001 - a warm-up that fails changes nothing: the part will say
            log.info("model of %s (line %s) not warmed up: %s", product, line or "*", fault_line(exc))
            return False
        return True

    def activate_model(self, product: str, line: str, version: int, by: Optional[str] = None,
                       expected_active: Optional[int] = None, force: bool = False):
        """Make ``version`` judge the parts, once tried on the product's latest good parts
        (see ModelRegistry.activate for the refusals)."""
        try:
            mv = self.models.activate(product, line, version, by, expected_active=expected_active, force=force,
                                      images=self.images)
        except StationError:
            self._release_replaced()    # a version loaded to be tried and refused is let go (hundreds of MB)
            raise
        self.shadow.stop_if(mv, by)   # promoted: it judges the parts itself now
        self.refresh_active_metrics()
        self._release_replaced()
        return mv

    def rollback_model(self, product: str, line: str, by: Optional[str] = None,
                       expected_active: Optional[int] = None):
        mv = self.models.rollback(product, line, by, expected_active=expected_active)
        self.shadow.stop_if(mv, by)
        self.refresh_active_metrics()
        self._release_replaced()
        return mv

    def close(self) -> None:
        with self._locks_guard:
            for b in self._batchers.values():
                b.close()
            self._batchers.clear()
        self.shadow.close()
        self.jobs.close()
        self.alarms.close()
        self.memory.close()
        self.disk.close()
        if self._folder_seen is not None:
            self._folder_seen.close()
        if self.records is not None:
            self.records.close()
        if self.backups is not None:
            self.backups.close()
        self.sinks.close()
        self.maps.close()
        self.images.close()
        self.db.dispose()


class PixelBudget:
    """Pixels of parts being judged at once, at most ``limit`` (a part over the limit on
    its own still goes, alone). Waiters are served as pixels come back."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._cond:
            while self.used and self.used + pixels > self.limit:
                self._cond.wait()
            self.used += pixels
        try:
            yield
        finally:
            with self._cond:
                self.used -= pixels
                self._cond.notify_all()


def _fits_camera_depth(image: Any, insp: Any) -> None:
    """A 16-bit photo must lie within the camera depth the model learned from; checked
    here, before the part joins a batch, so it is refused alone with the reason."""
    if getattr(image, "dtype", None) != "uint16":
        return
    from ..vision.errors import PhotoTooDeep as TooDeep
    from ..vision.imageio import check_depth, sensor_bits_of
    try:
        check_depth(image, sensor_bits_of(insp), "the photo")
    except TooDeep as exc:
        raise PhotoTooDeep(f"the photo {exc.problem}; {exc.hint}") from exc


def _check_frame(frame: CameraFrame, max_pixels: int) -> None:
    try:
        frame.check(max_pixels)
    except _HeaderTooLarge as exc:
        raise ImageTooLarge(f"{exc.source} {exc.problem}; {exc.hint}") from exc
    except ImageError as exc:
        raise CorruptImage(f"{exc.source} {exc.problem}; {exc.hint}") from exc


def declared_pixels(data: bytes, limit: int, decode_scale: Optional[Callable[[int, int], int]] = None) -> int:
    """Pixels an image will decode to, from its header (0 if unreadable: refused later):
    a JPEG's at the reduced scale it decodes at (``imageio.jpeg_scale``). A 16-bit photo
    counts twice: it decodes to twice the bytes a pixel (four 16-bit RGBA parts of 25 MP
    took a station to 1.5 GB where 8-bit ones took 0.76). A progressive JPEG adds the
    coefficients the decoder holds for its full size whatever the reduction
    (``imageio.jpeg_whole_buffer``), a pixel for every 3 bytes as an RGB pixel decodes to:
    counted at its 1/8 decode, 563 bytes declaring 12000x12000 took 950 MB unseen, and
    eight clients sending it slowed good parts from 0.09 s to 16 s."""
    import io
    from PIL import Image
    from ..vision.imageio import jpeg_whole_buffer
    try:
        # Pillow walks a PNG's chunks in Python to open it: a flood of them (30 MB) took 12 s
        # here before load_photo, which refuses it, ever saw the part
        check_png(data, verify_data=False)
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            scale, _ = jpeg_scale(im, limit, True, decode_scale)
            deep = 2 if _sixteen_bit(data, im.mode) else 1
            whole = -(-jpeg_whole_buffer(im) // 3)
            return min(-(-w // scale) * -(-h // scale) * deep + whole, limit)
    except Exception:  # noqa: BLE001 - not an image: load_image says why
        return 0


def _sixteen_bit(data: bytes, mode: str) -> bool:
    # Pillow opens a 16-bit colour PNG as 8-bit RGB(A): its header's bit depth says
    return mode.startswith("I;16") or (data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24 and data[24] == 16)


def in_audit_sample(sha256_hex: str, rate: float) -> bool:
    """Whether a part belongs to the random audit sample (kept and flagged whatever its verdict).

    Drawn from the image hash, like OK-image retention but from other bits of it, so
    the two samples are independent; the hash is as good as a random draw and a part
    sent again gets the same decision."""
    if rate <= 0:
        return False
    return rate >= 1 or int(sha256_hex[8:16], 16) / 0xFFFFFFFF < rate


def select_parts(*, limit: int = 50, **filters: Any) -> Any:
    """The records the filters match (those of :func:`_matching`), newest first, at most
    ``limit`` (1000 at most) with ids below ``before_id``: the statement the list, the
    exports and the CLI share."""
    return _matching(select(Inspection), **filters).order_by(
        Inspection.id.desc()).limit(max(1, min(limit, 1000)))


def count_parts(db: Any, *, up_to: int, limit: Optional[int] = None, **filters: Any) -> int:
    """How many records ``filters`` match (at most ``limit`` of them), counted no further
    than ``up_to``: enough to know a spreadsheet cannot hold them before writing one."""
    cap = up_to if limit is None else min(up_to, limit)
    with db.session() as s:
        ids = _matching(select(Inspection.id), **filters).limit(cap).subquery()
        return int(s.scalar(select(func.count()).select_from(ids)))


# A part id sent again with a new photo is a second record of the part (a re-inspection
# after rework, or a PLC or scanner repeating an id): these say so where the part is read.
PART_HISTORY_MAX = 20           # other inspections a part's page lists (newest first)
PART_HISTORY_COUNT_CAP = 10_000
EARLIER_COUNT_CAP = 1000        # a part id seen more often is an id repeated for every part
# re-inspections of one part id logged one by one: a part reworked that often is rather an id
# repeated for many parts (NOREAD, a camera's "image"), said once then, never a line per part
REINSPECTIONS_LOGGED = 10


def _part_on_line(q: Any, rec: Inspection) -> Any:
    """``q`` narrowed to the records of ``rec``'s part: its part id on its line and product
    (along ``ix_inspections_part_line_id``). Another product's part of the same id (serials
    counted per product, a camera counter reset at a changeover) is another part."""
    return q.where(Inspection.part_id == rec.part_id, Inspection.line == rec.line,
                   Inspection.product == rec.product)


def part_history(db: Any, rec: Inspection, limit: int = PART_HISTORY_MAX) -> dict[str, Any]:
    """The other inspections of ``rec``'s part on its line and product (any station), newest first and at
    most ``limit``; how many the part has there, this one included (counted up to
    PART_HISTORY_COUNT_CAP); and the part's newest inspection at ``rec``'s station, so a
    reader of an older one is told a newer verdict stands."""
    with db.session() as s:
        conn = s.connection()
        others = conn.execute(_part_on_line(
            select(Inspection.id, Inspection.station, Inspection.created_at, Inspection.verdict,
                   Inspection.reviewed, Inspection.review_label), rec).where(
            Inspection.id != rec.id).order_by(Inspection.id.desc()).limit(limit)).all()
        ids = _part_on_line(select(Inspection.id), rec).limit(PART_HISTORY_COUNT_CAP + 1).subquery()
        total = int(conn.execute(select(func.count()).select_from(ids)).scalar())
        latest = conn.execute(_part_on_line(select(func.max(Inspection.id)), rec).where(
            Inspection.station == rec.station)).scalar()
    return {"total": min(total, PART_HISTORY_COUNT_CAP), "total_capped": total > PART_HISTORY_COUNT_CAP,
            "latest_id": max(latest or rec.id, rec.id),
            "others": [{"id": o.id, "station": o.station, "created_at": _iso(o.created_at), "verdict": o.verdict,
                        "review_label": o.review_label if o.reviewed else None} for o in others]}


def earlier_inspections(db: Any, rec: Inspection) -> int:
    """How many inspections of ``rec``'s part (its product) its line and station recorded before it,
    counted up to EARLIER_COUNT_CAP (the count stops there: a repeated id costs a part no
    more). A second station on the line that looks at every part (its other side) is no
    re-inspection, and is not counted."""
    with db.engine.connect() as conn:
        # the station compared as an expression, not the column: on a PostgreSQL table not yet
        # analysed (a bulk load, autovacuum off) the planner took the (line, station, id) index
        # for it and walked every part of the station (109 ms a part at 300,000, while the PLC
        # waits); the part's own index finds its few rows
        if by_part_tag(rec):
            # a PLC names each trigger's part anew (its trigger number in the id): the part
            # is its PartTag, the serial (along the serial index, migration 0030)
            q = select(Inspection.id).where(Inspection.serial == rec.serial, Inspection.line == rec.line,
                                            Inspection.product == rec.product, Inspection.source == "plc")
        else:
            q = _part_on_line(select(Inspection.id), rec)
        ids = q.where(Inspection.station + "" == rec.station, Inspection.id < rec.id).limit(EARLIER_COUNT_CAP).subquery()
        return int(conn.execute(select(func.count()).select_from(ids)).scalar())


def by_part_tag(rec: Inspection) -> bool:
    """Whether ``rec``'s part is told by its PLC PartTag (its serial) rather than its part id,
    which the PLC link makes anew for each trigger (PartTag 0: no tag, no serial)."""
    return rec.source == "plc" and bool(rec.serial)


def _matching(q: Any, *, line: Optional[str] = None, station: Optional[str] = None, product: Optional[str] = None,
              verdict: Optional[str] = None, part_id: Optional[str] = None, since: Optional[dt.datetime] = None,
              until: Optional[dt.datetime] = None, reviewed: Optional[bool] = None, lot: Optional[str] = None,
              defect_type: Optional[Union[str, tuple[str, ...]]] = None, test_parts: Optional[bool] = None,
              photo_doubted: Optional[bool] = None, audit_sample: Optional[bool] = None,
              before_id: Optional[int] = None, serial: Optional[str] = None, along_id: bool = False) -> Any:
    # along_id: the columns whose indexes end in a time, not the id (line, product, test part,
    # created_at), compared so that no index is taken for them (see each_part)
    kept = _no_index if along_id else (lambda col: col)
    for col, val in ((kept(Inspection.line), line), (kept(Inspection.product), product),
                     (Inspection.verdict, verdict), (Inspection.part_id, part_id), (Inspection.lot, lot),
                     (Inspection.defect_type, defect_type), (Inspection.serial, serial)):
        if isinstance(val, tuple):
            # a defect type's stored spellings (two products spell it each their own way: the
            # server's part_filters): any of them, along the same index
            q = q.where(col.in_(val))
        elif val is not None:
            q = q.where(col == val)
    if station is not None:
        # in any case (line and product are matched to their stored names before, by
        # part_names, and compared exactly: their indexes stay in use)
        q = q.where(station_is(Inspection.station, station))
    if since is not None:
        q = q.where(kept(Inspection.created_at) >= _naive_utc(since))
    if until is not None:
        q = q.where(kept(Inspection.created_at) < _naive_utc(until))
    if reviewed is not None:
        q = q.where(Inspection.reviewed.is_(reviewed))
    if test_parts is not None:
        q = q.where(kept(Inspection.test_part).is_not(None) if test_parts else kept(Inspection.test_part).is_(None))
    if photo_doubted is not None:     # SQL NULL when nothing was off (migration 0013)
        q = q.where(Inspection.photo_issues.is_not(None) if photo_doubted else Inspection.photo_issues.is_(None))
    if audit_sample is not None:
        q = q.where(Inspection.audit_sample.is_(audit_sample))
    if before_id is not None:
        q = q.where(Inspection.id < before_id)
    return q


def _no_index(col: Any) -> Any:
    """``col`` under SQLite's unary plus: the same value, compared without the column's indexes."""
    return UnaryExpression(col, operator=operators.custom_op("+"), type_=col.type)


def each_part(db: Any, *, limit: Optional[int] = None, before_page: Optional[Callable[[], None]] = None,
              **filters: Any) -> Iterator[Any]:
    """Every record ``filters`` match, newest first, read a thousand at a time (a year of
    parts never sits in memory); parts recorded meanwhile are not among them (ids only
    go down). ``before_page`` runs before each page is read.

    Rows of the fields the export writes (``part_records.RECORD_COLUMNS``, read as a
    record's attributes), not whole records: loading every column (the timings' JSON
    among them) as ORM objects was half of a year's export."""
    from .part_records import RECORD_COLUMNS
    # SQLite takes the index of a line, product, test-part or time filter ((line, created_at)
    # and the like) over the primary key, then sorts every matching part below the cursor
    # for each page of 1000: 0.46 s a page at 300,000 parts, an export of a line three times
    # slower than of every part, --parts own seven times. Those filters are compared there
    # as no index can serve, so each page walks the ids down from the last (0.007 s a page),
    # a whole export reading the table at most once; the filters whose indexes end in the
    # id (lot, defect type, serial, verdict, reviewed) still take them, and a part id its
    # own index (a sort of that part's few records; with a product, the product's index and
    # a sort of all its parts had been taken). PostgreSQL weighs the plans by its
    # statistics: its query is left as it was. Within a window (since), the line's or
    # product's (…, created_at) index bounds each page's sort to the window's parts, where a
    # walk of the ids would read every older part below it: yesterday's export of one line
    # from a store of years is that index's.
    along_id = db.engine.dialect.name == "sqlite" and filters.get("since") is None
    before, left = None, limit
    while left is None or left > 0:
        n = 1000 if left is None else min(1000, left)
        if before_page is not None:
            before_page()
        q = _matching(select(*RECORD_COLUMNS), before_id=before, along_id=along_id, **filters).order_by(
            Inspection.id.desc()).limit(n)
        with db.session() as s:
            page = s.connection().execute(q).all()
        yield from page
        if len(page) < n:
            return
        before = page[-1].id
        left = None if left is None else left - n


def return_freed_memory() -> None:
    """Hand memory freed after a large decode or picture back to the OS (glibc keeps it
    otherwise, and a station that once decoded four large parts would stay that size for
    ever); nothing where the C library is not glibc."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryKeeper(PeriodicJob):
    """Hands the memory glibc keeps after freeing back to the OS, every ``every_s``.

    Each thread that judges parts (the event loop's worker threads, the batcher, the
    image store's writers) allocates from a malloc arena of its own, and glibc keeps what
    is freed there for the next allocation instead of returning it: a station judging
    parts for hours grew (2 h at 4 parts/s: RSS 508 -> 622 MB), all of it in those arenas
    (Python objects, the main heap and the mapped files stayed flat), and one trim at the
    end gave back 60 MB. Soak of 7 min, fast-profile model, SQLite, 3 posting clients, a
    reviewer, a poller and two live-event listeners, 2 cores (~20 parts/s): anonymous
    memory +3.2 MB per 1000 parts as it was, +0.7 with a trim every 60 s (RSS at the end
    569 -> 544 MB). A trim took 2-12 ms there (it takes each arena's lock in turn, so a
    part being judged waits at most that): parts answered within 2 s of one had the same
    95th percentile as the rest. A smaller worker-thread pool (6, not anyio's 40) changed
    neither the rise nor the level, and answered slower: not done.
    """

    thread_name = "lg-memory"
    what = "handing freed memory back to the OS"
    join_s = 2.0

    def __init__(self, every_s: float = 60.0, first_after_s: Optional[float] = None,
                 trim: Optional[Callable[[], None]] = None):
        super().__init__(every_s, every_s if first_after_s is None else first_after_s)
        self._trim = trim or return_freed_memory

    def run_once(self) -> None:
        self._trim()
