"""Parts' records older than the plant keeps them are deleted (only with --keep-records-days).

By default every part's record stays for good: it is the quality record (IATF 16949 asks
records be kept for the part's production life and a year more; many plants keep them
longer, in the station's backups or a plant system fed by the outbox). But a record is not
free: with its indexes a part takes about 1 kB of database (measured on SQLite: 0.95 kB,
the outbox apart, which is pruned after a day), so a station judging a part a second
adds some 30 GB a year, which a small line PC may not hold for years. With
``keep_days`` set, once a day (the first time 10 minutes after start) the records of
parts older than that are deleted, oldest first in short batches, with their image, map
and overlay files (a file another record still names stays), and so are the PLC's
answers (``line_signals``) older than that.

With ``archive`` (a folder: another disk, a share the plant backs up; it must exist, an
unmounted share's mount point is not written), each batch's records are first written
there as CSV (the parts export's columns and what only an archive needs; one file a
batch, named by host, UTC day and ids, written whole and never replacing a file) with no
transaction open (a slow share holds up no part): a batch whose file cannot be written
is not deleted (``/health`` shows a ``records`` fault saying why). The PLC's answers go
there too, before they are deleted (``signals-...csv``). A part reviewed between the file and the delete stays
in the database and in the file; a crash after the file and before the commit leaves
rows in both, written again at the next run (under another name if the batch
differs): the ``id`` column tells the copies apart. With the records go the images of
the parts not passed (``archive_images="ng"``, the default: the evidence of each reject,
a small share of the line; "all": every part's image the station kept; "none"), written
before the CSV under ``images/`` by their store keys (named by SHA-256: an image two
parts share is written once), the CSV's ``image_file`` naming each one that is there
(an image already deleted for room is not; maps and overlays are not archived: the
regions are in the CSV).

What the station still learns or proves from stays, however old: parts a person reviewed
and the audit sample (retraining, threshold tuning and the escape estimates read them),
and test-part checks (a shift's verification; a check left wrong stands until the test
part is checked right). Alarms and the change log stay (a few rows a day).

Counts that reach back before the cutoff would be of the parts kept only, mostly reviewed
ones, far from the line's mix: the cutoff is stored (``records_kept``, moved forward
before each deletion by whichever process makes it), the charts of the line's parts read
from it on, and the shift report of an earlier shift says its counts are not the shift's.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import and_, delete, func, or_, select

from ..vision.atomic import fsync_dir
from .db import Database
from .disk import delete_files_no_record_names
from .mounted import CopyFolders
from .imagestore import ContentStore
from .periodic import PeriodicJob
from .orm import Inspection, LineSignal, RecordsKept, Review, ShadowResult, utcnow
from .part_records import BOM, COLUMNS, _time, record_row

log = logging.getLogger("lineguard.station")

BATCH = 500
ARCHIVE_MARK = ".lineguard-archive"    # left in the archive folder at its first use (line.mounted)
MIN_DAYS = 30      # a shorter setting is a typo more often than a plan: the week's SPC context alone is 7 days


def _may_go() -> tuple[Any, ...]:
    """The records that may be deleted for their age: not reviewed, not in the audit
    sample, not a test-part check."""
    return (Inspection.reviewed.is_(False), Inspection.audit_sample.is_(False), Inspection.test_part.is_(None))


class RecordKeeper(PeriodicJob):
    """Deletes the records of parts older than ``keep_days`` on its own thread (see the module);
    a run that fails is tried again within the hour (the records stay meanwhile)."""

    thread_name = "lg-records"
    what = "deleting old records"
    retry_after_s = 3600.0

    def __init__(self, db: Database, images: ContentStore, keep_days: float, every_s: float = 86400.0,
                 first_after_s: float = 600.0, busy: Any = None, archive: Optional[Path] = None,
                 zone: Optional[dt.tzinfo] = None, faults: Optional[dict[str, str]] = None,
                 archive_images: str = "ng"):
        if not keep_days >= MIN_DAYS:
            raise ValueError(f"records are kept at least {MIN_DAYS} days (the shift report and SPC compare with the "
                             f"weeks before), got {keep_days}; leave it unset to keep every record")
        super().__init__(every_s, first_after_s)
        self.db = db
        self.images = images
        self.keep_days = float(keep_days)
        self.busy = busy or (lambda inspection_id: False)    # a part whose map is still being written
        self.archive = Path(archive) if archive is not None else None
        # what happens after a failed archive: a station tries again; `old-records --delete`
        # is one run, so it says to run it again
        self.again = "tried again within the hour"
        self.copies = CopyFolders(Path(images.root).parent)     # the station's data folder
        self._marked = False
        if archive_images not in ARCHIVE_IMAGES:
            raise ValueError(f"archive_images is one of {', '.join(ARCHIVE_IMAGES)}, got {archive_images!r}")
        self.archive_images = archive_images    # whose part images go to the archive with the records
        self.zone = zone                   # the plant's time zone: the CSV's plant_time column
        self.faults = faults if faults is not None else {}     # the station's (/health)
        self.deleted = {"parts": 0, "signals": 0, "files": 0}      # since start
        self.unreadable_images = 0
        self.last: Optional[dict[str, Any]] = None
        self.archive_problem: Optional[tuple[str, str]] = None    # the last archive failure: (why, what to do)

    def cutoff(self, now: Optional[dt.datetime] = None) -> dt.datetime:
        """Parts recorded before this (naive UTC) are not all kept."""
        return (now or utcnow()) - dt.timedelta(days=self.keep_days)

    def run_once(self, now: Optional[dt.datetime] = None) -> dict[str, Any]:
        """Delete every record older than the cutoff that may go, in batches; what was deleted."""
        t0 = time.perf_counter()
        cutoff = self.cutoff(now)
        parts = files = signals = 0
        self.unreadable_images = 0          # this run's: the fault clears after a run with none
        self.archive_problem = None
        cursor: tuple[dt.datetime, int] = (dt.datetime.min, 0)
        try:
            if self.archive is not None:
                try:
                    self._archive_folder()      # before the cutoff moves: no archive, nothing changes
                except OSError as exc:
                    self._archive_failed(exc)
                    raise
            # said before anything goes, for every process on the database: charts and
            # reports read from here on (a later, shorter setting never moves it back)
            _mark_kept_since(self.db, cutoff, self.keep_days)
            with self.db.session() as s:
                # the newest rows never go: SQLite would hand their ids out again, and alarms
                # mark what they have done with by ids (a station idle longer than keep_days)
                newest_part = s.scalar(select(func.max(Inspection.id))) or 0
                newest_signal = s.scalar(select(func.max(LineSignal.id))) or 0
            while not self.stopping():
                looked, n, f, cursor = self._parts_batch(cutoff, cursor, newest_part)
                parts, files = parts + n, files + f
                if looked < BATCH:
                    break
            while not self.stopping():
                with self.db.session() as s:
                    answers = list(s.scalars(select(LineSignal).where(LineSignal.triggered_at < cutoff,
                                                                      LineSignal.id < newest_signal)
                                             .order_by(LineSignal.id).limit(BATCH)))
                    ids = [a.id for a in answers]
                    archived = _signals_file(answers) if answers and self.archive is not None else None
                if archived is not None:
                    self._archive(*archived)      # as the parts': no transaction open, not written, not deleted
                if ids:
                    with self.db.session() as s:
                        s.execute(delete(LineSignal).where(LineSignal.id.in_(ids)))
                signals += len(ids)
                if len(ids) < BATCH:
                    break
            self.faults.pop("records", None)       # a run that went through: the archive works again
            if not self.unreadable_images and not self.stopping():
                self.faults.pop("records_image", None)
        finally:         # what went before a failure counts too
            self.deleted["parts"] += parts
            self.deleted["signals"] += signals
            self.deleted["files"] += files
            self.last = {"at": utcnow().isoformat() + "Z", "cutoff": cutoff.isoformat() + "Z", "parts": parts,
                         "files": files, "signals": signals, "images_unreadable": self.unreadable_images,
                         "seconds": round(time.perf_counter() - t0, 3)}
        if parts or signals:
            log.info("records: deleted %d parts' records (%d files) and %d PLC answers older than %.0f days "
                     "(before %s)", parts, files, signals, self.keep_days, cutoff.isoformat(timespec="seconds"))
        return self.last

    def _parts_batch(self, cutoff: dt.datetime, cursor: tuple[dt.datetime, int],
                     newest: int) -> tuple[int, int, int, tuple[dt.datetime, int]]:
        """One batch after ``cursor`` (created_at, id): the oldest records that may go,
        archived (with ``archive``), then deleted in one transaction (with their reviews
        and shadow results), then the files no record names any more (record first: a
        crash in between leaves a file the store sweep finds, never a record naming a
        missing file). (records looked at, records deleted, files deleted, the cursor
        past them)."""
        at, last_id = cursor
        after = or_(Inspection.created_at > at, and_(Inspection.created_at == at, Inspection.id > last_id))
        may_go = (*_may_go(), Inspection.id < newest)
        with self.db.session() as s:
            rows = list(s.execute(select(Inspection.id, Inspection.image_sha256, Inspection.image_key,
                                         Inspection.heatmap_key, Inspection.overlay_key, Inspection.created_at,
                                         Inspection.verdict)
                                  .where(Inspection.created_at < cutoff, after, *may_go)
                                  .order_by(Inspection.created_at, Inspection.id).limit(BATCH)))
        if not rows:
            return 0, 0, 0, cursor
        looked, cursor = len(rows), (rows[-1][5], rows[-1][0])
        rows = [r for r in rows if not self.busy(r[0])]
        ids = [r[0] for r in rows]
        if ids and self.archive is not None:
            # written whole with no transaction open (a slow share holds up no part and
            # keeps no session idle) and before the delete: not written, not deleted.
            # The images first, so the CSV names only those that are there.
            copied = self._archive_images([r[2] for r in rows if r[2] and self._image_goes(r[6])])
            if copied is None:          # closed while copying: this batch another time
                return 0, 0, 0, cursor
            in_archive, unreadable = copied
            if unreadable:              # kept, with its image, until the image can be read
                rows = [r for r in rows if r[2] not in unreadable]
                ids = [r[0] for r in rows]
            with self.db.session() as s:
                name, data = _archive_file(list(s.scalars(select(Inspection).where(Inspection.id.in_(ids))
                                                          .order_by(Inspection.id))), self.zone, in_archive)
            self._archive(name, data)
        with self.db.session() as s:
            still_may_go = select(Inspection.id).where(Inspection.id.in_(ids), *may_go)
            # First a write (SQLite: the write lock from here to the commit, so no review
            # commits in between), then the filters again, locking the rows in id order
            # (PostgreSQL: a review being written now waits, and finds the part gone): a
            # part reviewed (or drawn into the audit sample) since the select stays, with
            # its review and shadow results (and in the archive: the id tells).
            s.execute(delete(Review).where(Review.inspection_id.in_(still_may_go)))
            gone = list(s.scalars(still_may_go.order_by(Inspection.id).with_for_update()))
            if gone:
                s.execute(delete(ShadowResult).where(ShadowResult.inspection_id.in_(gone)))
                s.execute(delete(Review).where(Review.inspection_id.in_(gone)))
                s.execute(delete(Inspection).where(Inspection.id.in_(gone)))
        gone_set = set(gone)
        rows = [r for r in rows if r[0] in gone_set]
        files = delete_files_no_record_names(self.db, self.images, {r[1] for r in rows},
                                             {k for r in rows for k in r[2:5] if k}) if rows else 0
        return looked, len(rows), files, cursor

    def _image_goes(self, verdict: str) -> bool:
        return self.archive_images == "all" or (self.archive_images == "ng" and verdict != "OK")

    def _archive_images(self, keys: list[str]) -> Optional[tuple[set[str], set[str]]]:
        """Copy these part images into the archive's ``images/`` under their store keys
        (named by SHA-256: one already there is the same image, kept from an earlier
        batch or another record). (the keys now there, the keys whose image could not
        be read), or None when the station closed meanwhile. An image no longer in the
        store (deleted for room) is left out, not an error; one the station's disk
        cannot read keeps its record (a fault says which), while the archive not
        written stops the batch (nothing deleted)."""
        assert self.archive is not None
        there: set[str] = set()
        unreadable: set[str] = set()
        for key in dict.fromkeys(keys):
            if self.stopping():
                return None
            try:
                source = self.images.path(key).open("rb")
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                self._unreadable(key, exc, unreadable)
                continue
            try:
                with source:
                    self._archive_folder()
                    copy_new(source, self.archive, f"images/{key}")
            except _SourceError as exc:
                self._unreadable(key, exc.__cause__ or exc, unreadable)
                continue
            except OSError as exc:
                self._archive_failed(exc)
                raise
            there.add(key)
        return there, unreadable

    def _unreadable(self, key: str, exc: BaseException, unreadable: set[str]) -> None:
        unreadable.add(key)
        self.unreadable_images += 1
        self.faults["records_image"] = (f"the image {key} could not be read for the archive ({exc}); its part's "
                                        "record is kept until it can: check the station's data disk")
        log.error("records: image %s not readable for the archive (%s); its record is kept", key, exc)

    def _archive_folder(self) -> None:
        """Refuses (an OSError) an archive folder that is not the plant's disk or share
        (line.mounted); marks it at its first use."""
        assert self.archive is not None
        if not self.archive.is_dir():
            # not made here: an archive share not mounted would fill the disk being cleaned
            raise FileNotFoundError(f"the archive folder {self.archive} does not exist (a share not mounted?)")
        # its mount point, which does exist: records written there would hide under the
        # share once mounted again, deleted from the station as archived
        self.copies.check(self.archive, ARCHIVE_MARK, "the record archive")
        if not self._marked:
            self.copies.mark(self.archive, ARCHIVE_MARK)
            self._marked = True

    def _archive_failed(self, exc: OSError) -> None:
        assert self.archive is not None
        if not os.path.lexists(self.archive):
            # what to do for a folder that is not there is to make it, not to give it room
            cause, todo = "it does not exist (a share not mounted?)", "make the folder, or mount the share"
            said = f"the archive folder {self.archive} does not exist (a share not mounted?)"
        else:
            cause, todo = f"{exc}", "make the folder (or mount the share) writable and give it room"
            said = f"the records could not be archived to {self.archive} ({exc})"
        # apart, for `old-records --delete` to say once in its own words (nothing deleted, or some)
        self.archive_problem = (said, todo)
        self.faults["records"] = (f"old records could not be archived to {self.archive} ({cause}); those not "
                                  f"archived were not deleted: {todo}; {self.again}")

    def _archive(self, name: str, data: bytes) -> Path:
        assert self.archive is not None
        try:
            self._archive_folder()
            return write_new(self.archive / name, data)
        except OSError as exc:
            self._archive_failed(exc)
            raise

    def preview(self, now: Optional[dt.datetime] = None) -> dict[str, Any]:
        """What a run now would delete, and what stays however old, without deleting:
        for a plant deciding how long it keeps its records (``lineguard old-records``)."""
        cutoff = self.cutoff(now)
        old = Inspection.created_at < cutoff
        with self.db.session() as s:
            newest_part = s.scalar(select(func.max(Inspection.id))) or 0
            newest_signal = s.scalar(select(func.max(LineSignal.id))) or 0
            going = (old, *_may_go(), Inspection.id < newest_part)
            n, first, last, with_image = s.execute(
                select(func.count(), func.min(Inspection.created_at), func.max(Inspection.created_at),
                       func.count(Inspection.image_key)).where(*going)).one()
            verdicts = dict(s.execute(select(Inspection.verdict, func.count()).where(*going)
                                      .group_by(Inspection.verdict)).all())
            kept = {name: s.scalar(select(func.count()).where(old, cond)) or 0
                    for name, cond in (("reviewed", Inspection.reviewed.is_(True)),
                                       ("audit_sample", and_(Inspection.reviewed.is_(False),
                                                             Inspection.audit_sample.is_(True))),
                                       ("test_part_checks", and_(Inspection.reviewed.is_(False),
                                                                 Inspection.audit_sample.is_(False),
                                                                 Inspection.test_part.is_not(None))))}
            signals = s.scalar(select(func.count()).where(LineSignal.triggered_at < cutoff,
                                                          LineSignal.id < newest_signal)) or 0
        stamp = (lambda t: None if t is None else t.isoformat(timespec="seconds") + "Z")
        return {"keep_days": self.keep_days, "cutoff": stamp(cutoff), "parts": n, "first": stamp(first),
                "last": stamp(last), "verdicts": {k: verdicts.get(k, 0) for k in ("OK", "NG", "REVIEW")},
                "with_image": with_image, "signals": signals, "kept": kept}

    def status(self) -> dict[str, Any]:
        since = kept_since(self.db)
        return {"keep_days": self.keep_days, "kept_since": since.isoformat(timespec="seconds") + "Z" if since else None,
                "archive": str(self.archive) if self.archive is not None else None,
                "archive_images": self.archive_images if self.archive is not None else None,
                "deleted_since_start": dict(self.deleted), "last": self.last}


def _mark_kept_since(db: Database, cutoff: dt.datetime, keep_days: float) -> None:
    with db.session() as s:
        row = s.get(RecordsKept, 1, with_for_update=True)
        if row is None:
            s.add(RecordsKept(id=1, kept_since=cutoff, keep_days=keep_days, updated_at=utcnow()))
        elif cutoff > row.kept_since:
            row.kept_since, row.keep_days, row.updated_at = cutoff, keep_days, utcnow()


def kept_since(db: Database) -> Optional[dt.datetime]:
    """Parts recorded before this (naive UTC) are not all kept: the cutoff of the last
    deletion of old records by any process on the database (None: every record kept)."""
    with db.session() as s:
        row = s.get(RecordsKept, 1)
        return row.kept_since if row is not None else None


# whose part images go to the archive with their records: none, the parts not passed
# (NG and REVIEW: the evidence of a reject, a small share of the line), or every part's
ARCHIVE_IMAGES = ("none", "ng", "all")

# the parts export's columns, then what the archive alone needs: the image (by its
# SHA-256, and its file in the archive where it went there), the pixel threshold and
# every region as the record has it
ARCHIVE_COLUMNS = COLUMNS + ["image_sha256", "image_file", "pixel_threshold", "regions_json"]


def _archive_file(records: list[Inspection], zone: Optional[dt.tzinfo],
                  in_archive: frozenset[str] | set[str] = frozenset()) -> tuple[str, bytes]:
    """(file name, CSV bytes) of one batch. Values as the records hold them (no
    spreadsheet guard: an archive is read back, not opened and run); ``image_file`` the
    image's path in the archive (``images/...``) where its key is in ``in_archive``. The
    name carries this host, the first record's UTC day and the batch's ids, so line PCs
    sharing one archive folder (ids start at 1 on each) never name two files alike."""
    rows = (record_row(rec, zone) + [rec.image_sha256,
                                     f"images/{rec.image_key}" if rec.image_key in in_archive else None,
                                     rec.pixel_threshold,
                                     json.dumps(rec.regions if isinstance(rec.regions, list) else [])]
            for rec in records)
    name = f"records-{_host()}-{records[0].created_at:%Y-%m-%d}utc-{records[0].id}-{records[-1].id}.csv"
    return name, _csv_bytes(ARCHIVE_COLUMNS, rows)


SIGNAL_COLUMNS = ["id", "protocol", "line", "station", "trigger_seq", "part_tag", "recipe_id", "product",
                  "inspection_id", "late_inspection_id", "signal", "result_code", "reason", "triggered_at",
                  "answered_at"]


def _signals_file(answers: list[LineSignal]) -> tuple[str, bytes]:
    """(file name, CSV bytes) of a batch of what the PLC was told (line_signals), as stored."""
    rows = ([getattr(a, c) for c in SIGNAL_COLUMNS] for a in answers)
    name = f"signals-{_host()}-{answers[0].triggered_at:%Y-%m-%d}utc-{answers[0].id}-{answers[-1].id}.csv"
    return name, _csv_bytes(SIGNAL_COLUMNS, rows)


def _csv_bytes(columns: list[str], rows: Any) -> bytes:
    """An archive file: the header, then each row's values as stored (times in UTC with
    their Z, None empty; no spreadsheet guard: an archive is read back, not opened and run)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write(BOM)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else _time(v) for v in row])
    return buf.getvalue().encode("utf-8")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:60] or "station"


def _put_new(tmp: str, target: Path) -> bool:
    """Give the written, synced file ``tmp`` the name ``target`` unless a file has it
    (never replaced); whether it took the name."""
    try:
        os.link(tmp, target)            # fails if the name is taken: nothing is overwritten
        return True
    except FileExistsError:
        return False
    except OSError:                     # a share without hard links: the name checked, then renamed
        if target.exists():
            return False
        os.replace(tmp, target)
        return True


class _SourceError(OSError):
    """The station's own file could not be read (not the archive's fault)."""


def copy_new(source: Any, root: Path, relative: str) -> Path:
    """Copy the open file ``source`` to ``root/relative`` unless a file has that name
    (content-addressed: it is the same file), streamed, synced, whole or not at all.
    Folders under ``root`` are made one level at a time and synced: ``root`` itself is
    never made (a share unmounted meanwhile fails here, not fills the local disk)."""
    *folders, name = relative.split("/")
    folder, made = root, []
    for part in folders:
        folder = folder / part
        try:
            folder.mkdir()              # no parents: root must be there
            made.append(folder)
        except FileExistsError:
            pass
    target = folder / name
    if target.is_file():
        return target
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            while True:
                try:
                    chunk = source.read(1 << 20)
                except OSError as exc:
                    raise _SourceError(str(exc)) from exc
                if not chunk:
                    break
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        _put_new(tmp, target)           # a name taken is the same image: that file stays
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(folder)
    for new in reversed(made):          # each new folder's name, up to root's
        fsync_dir(new.parent)
    return target


def write_new(path: Path, data: bytes) -> Path:
    """Write ``data`` as a new file at ``path`` (or ``path`` with -2, -3... when another
    file has that name and other contents; the same contents: already there), whole or
    not at all, the file and its folder synced: an archive file is never replaced."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        target = path
        for n in range(2, 1000):
            if _put_new(tmp, target) or target.read_bytes() == data:
                break
            target = path.with_name(f"{path.stem}-{n}{path.suffix}")
        else:
            raise FileExistsError(f"{path}: 1000 files of that name")
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)      # the new name survives a power cut only once the folder is synced
    return target
