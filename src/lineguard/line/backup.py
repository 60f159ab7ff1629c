"""A station's records and the files they name, copied to another folder as one whole.

The line PC's disk holds the only copy of every inspection, review and model; when it
dies, the plant's quality record goes with it. A backup copies the SQLite database
(SQLite's online backup: consistent while the station runs) and then exactly the files
that copy names (part images, maps, overlays, model files), so the backup folder holds
a station folder's contents; ``line.restore`` brings it back, every file checked.

Files are content-addressed, so a later backup into the same folder copies only the
files it does not hold yet (one whose size differs from the station's, cut short by a
power cut, is copied again). Every file copied is checked against its name on the way: a
station file that is not what its name says (cut short or rotted on the station's disk)
is never copied over the backup's copy, which may be the only good one left; the backup
names it, and whether the copy it keeps is whole, to be put back. Each copy keeps the
station file's time. The new database copy replaces the old one only once all its files
are on the disk: a backup stopped half-way leaves the previous one whole (a first one, the
folder as it found it). A
file the copy names but the station deleted meanwhile (the disk keeper makes room) is
recorded as not kept in the copy, as the keeper records it, never as a link to nothing.

A backup folder is only ever written by backups of one station: a folder holding another
station's database (its first part or its first change-log entry differ; with its
manifest lost, read from the backup's database), a copy of this station that went its
own way (restored from the same backup and run beside it: the folder's newest part is not
this station's), or a backup opened as a station since (its database changed, or its
write-ahead log beside it), is refused, not overwritten.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

from ..vision.atomic import atomic_write_bytes, hold_lock
from . import filecheck
from .db import sqlite_revision
from .imagestore import ContentStore
from .mounted import CopyFolders, FolderAway
from .periodic import PeriodicJob

# the columns of a part's record that name files of the image store; clearing the
# image clears them all (a map or overlay without its image is not kept, see line.disk)
_PART_FILES = ("image_key", "heatmap_key", "overlay_key")
MARKER = ".lineguard-backup"     # left by a backup before its database: the folder is the backups'
MANIFEST = "backup.json"
_STAMP = "%Y-%m-%dT%H:%M:%SZ"    # the manifest's times, UTC
VERIFY_EVERY_S = 7 * 86400.0     # a station's own backups read back what they hold weekly

log = logging.getLogger("lineguard.station")


class BackupError(Exception):
    """Why a backup cannot be made, and what to do."""


class StationDatabaseError(BackupError):
    """The station's own database is why (unreadable, no station's): never the backup disk's."""


class BackupRunning(BackupError):
    """Another backup into the same folder runs now: refused, nothing written."""


@dataclass
class BackupReport:
    parts: int = 0
    files_copied: int = 0
    files_there: int = 0          # already in the backup folder from an earlier backup
    bytes_copied: int = 0
    gone: int = 0                 # named by the copy but deleted meanwhile: recorded as not kept
    models: int = 0
    # the reference photos of good parts (line.reference): copied now, or named by a row but
    # gone from the station's data folder (a restore drops such rows: add them again)
    reference_copied: int = 0
    reference_missing: int = 0
    reference_missing_keys: list = field(default_factory=list)    # the first DAMAGED_SHOWN
    verified: int = 0             # files already there read back (verify=True)
    repaired: int = 0             # of them, damaged in the backup and copied again
    # the station's own file is not what its name says (cut short, rotted): never copied over
    # the backup's copy; kept_good_copy of them the backup holds whole, the copy to put back
    damaged_at_station: int = 0
    kept_good_copy: int = 0
    damaged_files: list = field(default_factory=list)    # the first DAMAGED_SHOWN: key, why, backup_whole
    # the backup folder is on the station's own disk: lost with it, and its growth eats the
    # room the disk keeper frees by deleting the station's images
    same_disk: bool = False
    seconds: float = 0.0
    # each file once a run: parts sharing a photo (the same bytes sent twice) counted it again,
    # "9 already there" in a first backup into an empty folder (what _copy said for each)
    seen: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "seen"}
        out["seconds"] = round(self.seconds, 2)
        return out


def backup_station(data_dir: Path, dest: Path, db_path: Optional[Path] = None,
                   stop: Callable[[], bool] = lambda: False, verify: bool = False) -> BackupReport:
    """Copy the SQLite station in ``data_dir`` (its database at ``db_path``, default
    ``data_dir/lineguard.db``) and every file it names into ``dest``; ``stop`` ends it
    early (:class:`BackupStopped`), the previous backup left whole. ``verify`` reads back
    every file the backup holds already and copies again those no longer whole (bit rot
    keeps a file's size, so a plain backup never sees it)."""
    t0 = time.monotonic()
    data_dir, dest = Path(data_dir).resolve(), Path(dest).resolve()
    db_path = Path(db_path or data_dir / "lineguard.db").resolve()
    if not db_path.is_file():
        raise BackupError(f"no station database at {db_path}: give the station's folder (--data); a station on "
                          "PostgreSQL (--db) is backed up with pg_dump, then a copy of its whole data folder (images/, "
                          "models/, .lineguard-folder)")
    check_backup_place(data_dir, dest)
    _check_station_db(db_path)     # before anything is written in dest
    copies = CopyFolders(data_dir)
    try:
        copies.check(dest, MARKER, "backups")     # a share's mount point without the share: not written
    except FolderAway as exc:
        raise BackupError(str(exc)) from exc
    # A first backup that fails (the backup disk full, the station's database unreadable
    # half-way) leaves the folder as it found it: its marker, manifest and half-filled
    # folders made a folder that holds no backup look like one, and kept a mount point from
    # being empty. A later one leaves the previous backup whole (its database replaced last).
    undo = None if (dest / "lineguard.db").exists() else _FirstBackupUndo(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)   # a station's database and photos: its owner's alone
        held = hold_lock(dest, wait=False)
    except BaseException:
        if undo is not None:
            undo.run()
        raise
    if held is None:
        # Two backups into one folder at once (two `lineguard backup`s, or one beside the
        # station's --backup-to) each copied part of the files, counted the other's as
        # "already there", and the last database copy replaced the first's. The folder is the
        # running one's: nothing of it is undone here.
        raise BackupRunning(f"another backup into {dest} is running now (a `lineguard backup`, or a station's "
                            "--backup-to schedule): nothing was written; wait for it to end, then back up again "
                            "if you need a newer one")
    try:
        previous = _check_folder(dest)    # read under the lock: no other backup replaces it meanwhile
        return _write_backup(data_dir, dest, db_path, copies, previous, stop, verify, t0)
    except BaseException:
        if undo is not None:
            undo.run()
        raise
    finally:
        os.close(held)           # closing releases the lock


def check_backup_place(data_dir: Path, dest: Path) -> None:
    """:class:`BackupError` where ``dest`` can never hold ``data_dir``'s backups, whatever
    the disks do: the station's folder itself, one in it or holding it, a file, or another
    station's folder (its database, no backup's marker or manifest). Found from the paths and
    what lies there, nothing written. `lineguard backup --to` and `serve --backup-to` (at its
    start) refuse the same: the station's first backup comes 5 minutes after its start at the
    earliest, and a --backup-to inside its own data folder started without a word."""
    data_dir, dest = Path(data_dir).resolve(), Path(dest).resolve()
    if dest == data_dir or data_dir in dest.parents or dest in data_dir.parents:
        raise BackupError(f"{dest} is the station's folder or holds it (or lies in it): back up to another "
                          "folder, best on another disk")
    if dest.exists() and not dest.is_dir():
        # refused, not failed: no disk to check, another path to give
        raise BackupError(f"{dest} is a file: give a folder to back up into (a new one, or an earlier backup's)")
    if (dest / "lineguard.db").is_file() and not (dest / MARKER).exists() and not (dest / MANIFEST).exists():
        # a station's folder (another line's, a restored one): its database would be replaced
        raise BackupError(f"{dest} holds a station's database that no backup made: back up to an empty folder "
                          "or to an earlier backup's folder")


# what a backup makes in its folder: undone where a first backup fails
_STORES = ("images", "models", "reference")


class _FirstBackupUndo:
    """What a first backup into ``dest`` found there, so a failed one can take away what it
    made: the folders above and at ``dest`` it made, and in ``dest`` its marker, manifest
    and the stores it made. Nothing it found is touched (a store a killed backup left keeps
    its files: each is whole under its name, and the next backup uses it)."""

    def __init__(self, dest: Path):
        self.dest = dest
        self.made: list[Path] = []            # the folders mkdir will make, deepest first
        where = dest
        while not where.exists() and where.parent != where:
            self.made.append(where)
            where = where.parent
        self.found = {name for name in (MARKER, MANIFEST, *_STORES)
                      if (dest / name).exists() or (dest / name).is_symlink()}

    def run(self) -> None:
        if (self.dest / "lineguard.db").exists():
            return            # the backup is there: its marker and manifest are what keep it one
        try:
            for name in (MARKER, MANIFEST, *_STORES):
                path = self.dest / name
                if name in self.found or not (path.exists() or path.is_symlink()):      # not its to take
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            for folder in self.made:
                if not folder.is_dir() or folder.is_symlink():
                    # never made (its mkdir failed: a read-only disk answers rmdir too with
                    # EROFS, and the user was told to clear a folder that was never there)
                    continue
                folder.rmdir()                # only if empty: never what another wrote there meanwhile
        except OSError as exc:
            log.warning("the failed first backup's folder %s could not be cleared (%s): remove what it left "
                        "there by hand", self.dest, exc)


def _write_backup(data_dir: Path, dest: Path, db_path: Path, copies: CopyFolders, previous: dict,
                  stop: Callable[[], bool], verify: bool, t0: float) -> BackupReport:
    """:func:`backup_station` once the folder is found fit: the copy itself."""
    for store in _STORES:
        # opening the backup's stores clears the temp copies of a backup killed mid-copy
        # (ContentStore.sweep_staging: an hour old, so not another backup's running now)
        ContentStore(dest / store)
    _sweep_killed_copies(dest)
    try:
        same_disk = os.stat(dest).st_dev == os.stat(data_dir).st_dev
    except OSError:
        same_disk = False
    copy_db = dest / f".lineguard.db.{os.getpid()}.tmp"
    report = BackupReport(same_disk=same_disk)
    try:
        src, out = sqlite3.connect(db_path), sqlite3.connect(copy_db)
        try:
            src.backup(out)
        finally:
            src.close()
            out.close()
        db = sqlite3.connect(copy_db)
        try:
            # the station's write-ahead log comes along in the copy's header: the copy is
            # written in place instead, so the one file renamed below holds all of it
            db.execute("PRAGMA journal_mode=DELETE")
            station = _station_id(db)
            first_change = _first_change(db)
            # the schema revision the copy holds: a restore by an older lineguard refuses it (line.restore)
            schema = sqlite_revision(db)
            held = _newest_held(db, previous.get("newest_part"))
            # The first part names a station until the record keeper deletes it (--keep-records-days):
            # then every later backup was refused as another station's. Holding the folder's newest
            # part as it was (or having rotated it out too) says it is this station still.
            if previous.get("station") and station and previous["station"] != station and \
                    held not in ("held", "rotated"):
                raise BackupError(f"{dest} holds the backup of another station (its first part differs): give each "
                                  "station its own backup folder")
            # The change log is only ever added to, so its first entry names a station for good,
            # also one with no part yet (its first key made, its first model added): the backup of
            # a new station was overwritten by any other's, its keys and model gone from it.
            if previous.get("first_change") and first_change and previous["first_change"] != first_change:
                raise BackupError(f"{dest} holds the backup of another station (its change log begins with another "
                                  "change): give each station its own backup folder")
            if held == "missing":
                _refuse_diverged(previous["newest_part"], dest)
            newest = _newest_part(db)
            _copy_part_files(db, data_dir / "images", dest / "images", report, stop, verify)
            for (key,) in db.execute("SELECT DISTINCT file_key FROM model_versions"):
                if _copy(data_dir / "models", dest / "models", key, report, verify):
                    report.models += 1
            # the reference photos of good parts a retrain learns (line.reference): exist nowhere
            # else on the station once the PC that trained the first model is gone
            # a station an older lineguard made (schema before 0032), backed up right before its
            # upgrade, has no such table: nothing to copy (its restore upgrades it at `serve`)
            refs = db.execute("SELECT DISTINCT image_key FROM reference_photos").fetchall() \
                if _has_table(db, "reference_photos") else []
            for (key,) in refs:
                copied = _copy(data_dir / "reference", dest / "reference", key, report, verify)
                if copied:
                    report.reference_copied += 1
                elif copied is None:
                    report.reference_missing += 1
                    if len(report.reference_missing_keys) < DAMAGED_SHOWN:
                        report.reference_missing_keys.append(key)
            report.parts = db.execute("SELECT count(*) FROM inspections").fetchone()[0]
        finally:
            db.close()
        if hasattr(os, "sync"):     # the files reach the disk before the database naming them
            os.sync()
        report.seconds = time.monotonic() - t0
        # The folder is marked the backups' only now, before the database that makes it a
        # backup (marked first, a failed first backup left a marked folder holding none);
        # the station remembers it (to find it unmounted later) once the backup is there
        if not (dest / MARKER).exists():
            (dest / MARKER).write_bytes(b"")
        # The manifest names the new database and the one it replaces: killed between
        # the two writes, the folder still matches it.
        made_at = _utc_stamp()
        manifest = {"made_at": made_at, "from": str(data_dir), "station": station, "newest_part": newest,
                    "first_change": first_change, "schema": schema,
                    "verified_at": made_at if verify else previous.get("verified_at"),
                    "database": _fingerprint(copy_db), "previous_database": _fingerprint(dest / "lineguard.db"),
                    **report.to_dict()}
        atomic_write_bytes(dest / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        os.replace(copy_db, dest / "lineguard.db")
        copies.mark(dest, MARKER)
    finally:
        for left in (copy_db, *(copy_db.with_name(copy_db.name + end) for end in ("-wal", "-shm", "-journal"))):
            left.unlink(missing_ok=True)
    return report


# the tables a backup reads that every lineguard schema has had (0001 on); reference_photos
# (0032 on) is read only where the station's schema has it
_CORE_TABLES = ("inspections", "model_versions")


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _check_station_db(db_path: Path) -> None:
    """Refuse, before the backup folder is touched, a database that is no station's (no
    inspections table: a new or foreign file) or cannot be read at all (damaged): copying
    it would only leave a half-filled folder and a message about the backup disk."""
    try:
        db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
        try:
            missing = [t for t in _CORE_TABLES if not _has_table(db, t)]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StationDatabaseError(f"the station's database {db_path} cannot be read ({exc}): nothing was written. "
                                   "If it is damaged, restore the last backup that worked (`lineguard restore`); if "
                                   "another program holds it locked, run the backup again later") from None
    if missing:
        raise StationDatabaseError(f"{db_path} holds no station's records (no {', '.join(missing)} table): nothing "
                                   "was written. Give the folder a station ran from (--data), or start `lineguard "
                                   "serve` on it first")


def is_disk_error(exc: BaseException) -> bool:
    """Whether a failed backup is the disk's (full, missing, unwritable: check the backup
    disk) rather than an error of the station's database (said as such, never blamed on
    the disk: a station an older lineguard made failed here as "check the backup disk")."""
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return "malformed" not in text and any(
        w in text for w in ("disk", "full", "unable to open", "readonly", "read-only", "i/o"))


def failure_message(exc: BaseException, kept: str) -> str:
    """What `lineguard backup` stopped by an error says, ``kept`` naming what the folder still holds."""
    what = f"{type(exc).__name__}: {exc}"
    if is_disk_error(exc):
        return f"the backup stopped ({what}); {kept}: check the backup disk (mounted, room left) and run it again"
    return (f"the backup stopped on an error of the station's database, not of the backup disk ({what}); {kept}: "
            "run it again once the station is idle, and if it says the same, report it with the station's log")


# a database copy of a backup killed mid-run (kill -9, a power cut) is removed this old: not
# another backup's running now
KILLED_COPY_AGE_S = 3600.0


def _sweep_killed_copies(dest: Path) -> None:
    """Remove the database copies backups killed mid-run left (a whole database each: every
    crash left one more, until the backup disk was full)."""
    now = time.time()
    for left in dest.glob(".lineguard.db.*.tmp*"):
        try:
            if now - left.stat().st_mtime > KILLED_COPY_AGE_S:
                left.unlink()
                log.info("removed %s, left by a backup killed mid-run", left)
        except OSError:
            pass


def _utc_stamp() -> str:
    return time.strftime(_STAMP, time.gmtime())


def _age_s(stamp: Optional[str]) -> Optional[float]:
    """Seconds since a manifest's time stamp; None if there is none or it is not one."""
    try:
        return time.time() - calendar.timegm(time.strptime(stamp, _STAMP))
    except (ValueError, TypeError):
        return None


def _check_folder(dest: Path) -> dict:
    """The manifest of the backups in ``dest``; refuses a folder backups may not write."""
    db = dest / "lineguard.db"
    if not db.exists():
        return {}
    if not (dest / MARKER).exists():
        if (dest / MANIFEST).is_file():
            # a backup copied without its dot-files: still refused (its marker is what keeps a
            # station's folder from being written over), saying how to put the marker back
            raise BackupError(f"{dest} holds a backup ({MANIFEST}) without its {MARKER} file (copied without "
                              f"dot-files?): if it is this station's backup, put the marker back with `touch "
                              f"{dest / MARKER}` and back up again; otherwise back up to an empty folder")
        # a station restored there (or running there) would have its database replaced
        raise BackupError(f"{dest} holds a station's database that no backup made: back up to an empty folder "
                          "or to an earlier backup's folder")
    if any(db.with_name(db.name + end).exists() for end in ("-wal", "-shm", "-journal")):
        raise BackupError(f"the backup in {dest} is open as a station (or one was killed with it open: its "
                          "write-ahead log lies beside it): stop that station; restore by copying a backup, and "
                          "back up into a folder no station runs from")
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a manifest")
    except (OSError, ValueError):
        # Not a first backup killed half-way: the manifest is written before the database
        # takes its name. Lost or damaged since (a copy that skipped it, a bad sector), it
        # said nothing, and any station's backup replaced the one there: whose backup it is
        # is read from the backup's own database instead.
        return _held_by(dest)
    if _fingerprint(db) not in (manifest.get("database"), manifest.get("previous_database")):
        raise BackupError(f"the database in {dest} changed since the backup made it (a station ran on it?): move it "
                          "aside to keep it, or back up into another folder")
    if "first_change" not in manifest:
        # made by a lineguard before the change log named the station: read from the database
        # (one that cannot be read is replaced by this backup, as before)
        try:
            manifest["first_change"] = _held_by(dest).get("first_change")
        except BackupError:
            pass
    return manifest


def _held_by(dest: Path) -> dict:
    """Whose backup ``dest`` holds, read from its database (read-only: it stays as it is)."""
    try:
        db = sqlite3.connect(f"{(dest / 'lineguard.db').as_uri()}?mode=ro", uri=True)
        try:
            return {"station": _station_id(db), "newest_part": _newest_part(db), "first_change": _first_change(db)}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the backup in {dest} has no readable {MANIFEST} and its database cannot be read ({exc}): "
                          "whose backup it is cannot be told, so it is not overwritten. Check it with `lineguard "
                          f"restore --from {dest} --check`; move it aside to keep it, or back up into another "
                          "folder") from None


def _fingerprint(db: Path) -> Optional[dict]:
    try:
        st = db.stat()
    except FileNotFoundError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _station_id(db: sqlite3.Connection) -> Optional[str]:
    """A station's lasting name: its first part's record (None before its first part)."""
    row = db.execute("SELECT id, part_id, image_sha256, created_at FROM inspections ORDER BY id LIMIT 1").fetchone()
    return None if row is None else _row_print(row)


def _first_change(db: sqlite3.Connection) -> Optional[str]:
    """The station's first change-log entry's print (None before its first change, or on a
    schema from before the change log): the change log is only ever added to."""
    if not _has_table(db, "change_log"):
        return None
    row = db.execute("SELECT id, at, action, subject FROM change_log ORDER BY id LIMIT 1").fetchone()
    return None if row is None else _row_print(row)


def _row_print(row: tuple) -> str:
    return hashlib.sha256(repr(tuple(row)).encode()).hexdigest()[:16]


def _newest_part(db: sqlite3.Connection) -> Optional[dict]:
    """The newest part's record id and print: what a later backup into the folder checks
    the station still holds as it was."""
    row = db.execute("SELECT id, part_id, image_sha256, created_at FROM inspections ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else {"id": row[0], "part_id": row[1], "print": _row_print(row)}


def _newest_held(db: sqlite3.Connection, newest: Optional[dict]) -> Optional[str]:
    """Whether the station holds the backup folder's newest part as it was: "held"; "rotated"
    (the record keeper dropped it, with every older one: not a sign of another station);
    "missing" (see :func:`_refuse_diverged`); None when the folder names no newest part."""
    if not newest:
        return None
    row = db.execute("SELECT id, part_id, image_sha256, created_at FROM inspections WHERE id = ?",
                     (newest["id"],)).fetchone()
    if row is not None and _row_print(row) == newest["print"]:
        return "held"
    if row is None:
        oldest = db.execute("SELECT min(id) FROM inspections").fetchone()[0]
        if oldest is not None and oldest > newest["id"]:
            return "rotated"
    return "missing"


def _refuse_diverged(newest: dict, dest: Path) -> None:
    """Refuse a backup over one holding parts this station does not have: a copy of the
    station restored from the same backup and run beside it has the same first part, so
    each one's backup replaced the other's and the parts only one of them made were lost
    from the folder (their record ids clash too). The station must hold the folder's newest
    part as it was; if records kept N days have since dropped it, nothing older tells."""
    raise BackupError(f"{dest} holds a part this station does not have (record {newest['id']}, part "
                      f"{newest['part_id']!r}): it is the backup of another copy of this station (one restored "
                      "from the same backup and run beside it?), or this station lost records since. The backup "
                      "there is kept; give this station its own backup folder")


def _copy_part_files(db: sqlite3.Connection, images: Path, dest: Path, report: BackupReport,
                     stop: Callable[[], bool], verify: bool) -> None:
    cols = ", ".join(_PART_FILES)
    named = " OR ".join(f"{c} IS NOT NULL" for c in _PART_FILES)
    gone: dict[int, set[str]] = {}
    for row in db.execute(f"SELECT id, {cols} FROM inspections WHERE {named}"):  # noqa: S608 - our column names
        if stop():
            raise BackupStopped("the station closed during the backup; the previous backup is whole")
        for col, key in zip(_PART_FILES, row[1:]):
            if key and _copy(images, dest, key, report, verify) is None:
                gone.setdefault(row[0], set()).add(col)
                if col == "image_key":
                    break      # its maps are not kept without it (cleared below): not copied either
    for inspection_id, cols_gone in gone.items():
        clear = _PART_FILES if "image_key" in cols_gone else sorted(cols_gone)
        db.execute(f"UPDATE inspections SET {', '.join(f'{c} = NULL' for c in clear)} WHERE id = ?",  # noqa: S608
                   (inspection_id,))
    report.gone = len(gone)
    db.commit()


def _safe(key: str) -> bool:
    """A key the station writes: relative, forward slashes, nothing that leaves its store."""
    parts = PurePosixPath(key).parts
    return bool(parts) and not (os.path.isabs(key) or "\\" in key or ":" in key or "\x00" in key
                                or any(p in ("..", ".", "") for p in parts) or key.startswith("/"))


def _copy(store: Path, dest: Path, key: str, report: BackupReport, verify: bool = False) -> Optional[bool]:
    """Copy one file of a store unless the backup holds it whole; True if copied, False if
    there (or kept: the station's own file is damaged), None if the station no longer has it.
    A file named again in the same run is answered as the first time, counted once."""
    if (store, key) not in report.seen:
        report.seen[store, key] = _copy_once(store, dest, key, report, verify)
    return report.seen[store, key]


def _copy_once(store: Path, dest: Path, key: str, report: BackupReport, verify: bool) -> Optional[bool]:
    if not _safe(key):
        return None        # not a key the station writes: nothing outside its folder is copied
    src, dst = store / key, dest / key
    try:
        held = src.stat()
    except FileNotFoundError:
        return None
    size = held.st_size
    repair = False
    try:
        if dst.stat().st_size == size:
            if not verify:
                report.files_there += 1
                return False
            report.verified += 1
            damage = filecheck.file_damage(dst, key)
            if damage is None:
                report.files_there += 1
                return False
            log.warning("backup: %s in %s is damaged (%s): copying it again", key, dest, damage)
            repair = True
    except FileNotFoundError:
        pass
    # written and fsynced in the store's staging folder, then renamed: a backup killed
    # mid-copy (or a power cut) leaves no short file under a key that later runs trust
    staging = dest / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{dst.name}.{os.getpid()}.tmp"
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        # The copy is checked against its name before it takes it (the hash its key
        # carries, a map's PNG checksums): a station file cut short on the station's disk
        # differs in size from the backup's copy, and was copied over the only good one.
        damage = filecheck.file_damage(tmp, key)
        if damage is not None:
            tmp.unlink(missing_ok=True)
            _station_file_damaged(store, dest, key, damage, report)
            return False
        nbytes = tmp.stat().st_size
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dst)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        return None        # deleted by the station between the look and the copy
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # the station's file time comes along (as cp -p), and on into a restored station: its disk
    # keeper leaves a file stored in the last minute, one a part may be about to name (set once
    # in place: a staged copy with an old time is what the staging sweep deletes)
    try:
        os.utime(dst, ns=(held.st_atime_ns, held.st_mtime_ns))
    except OSError:
        pass           # a share that keeps no times: the copy is whole all the same
    report.files_copied += 1
    report.bytes_copied += nbytes
    if repair:
        report.repaired += 1
    return True


# the station's damaged files a backup names (in its report and manifest): enough to act on
DAMAGED_SHOWN = 20


def _station_file_damaged(store: Path, dest: Path, key: str, why: str, report: BackupReport) -> None:
    """The station's own file is not what its name says: never copied over the backup's
    copy, which is said to be whole (the copy to put back) or not."""
    try:
        kept = filecheck.file_damage(dest / key, key) is None
    except FileNotFoundError:
        kept = False
    report.damaged_at_station += 1
    if kept:
        report.kept_good_copy += 1
    if len(report.damaged_files) < DAMAGED_SHOWN:
        report.damaged_files.append({"key": f"{store.name}/{key}", "why": why, "backup_whole": kept})
    if kept:
        log.error("backup: the station's own %s in %s is damaged (%s): the backup keeps its whole copy; put it "
                  "back with `cp %s %s`", key, store, why, dest / key, store / key)
    else:
        log.error("backup: the station's own %s in %s is damaged (%s), and the backup holds no whole copy of it",
                  key, store, why)


class BackupStopped(BackupError):
    """The station closed while a backup ran; the previous backup is whole."""


# A failed backup is tried again this soon, not a whole --backup-every-h later (a backup
# disk plugged back in was not used for a day); while it has failed, the folder's manifest
# is looked at this often, so a backup made by hand into it ends the fault.
RETRY_AFTER_S = 3600.0
LOOK_EVERY_S = 60.0


class BackupSchedule(PeriodicJob):
    """The station's own backups (``serve --backup-to``): every ``every_s`` into ``dest``
    on their own thread, the first once the last one (by the folder's manifest) is that
    old, at the earliest ``first_after_s`` after start. A failed backup is a station
    fault (/health) until one works, tried again after ``retry_after_s`` (an hour): a
    backup disk unplugged for weeks is seen, and one plugged back in is used within the
    hour; a backup made by hand into the folder meanwhile (``lineguard backup``) ends the
    fault too. Once ``verify_every_s`` (a week) has passed since the backup was last
    verified, the next one reads back every file the folder holds and copies the damaged
    ones again. Station files found damaged are a fault until a backup finds none."""

    thread_name = "lg-backup"
    what = "the backup"
    join_s = 30.0

    def __init__(self, data_dir: Path, dest: Path, every_s: float, faults: dict[str, str],
                 db_path: Optional[Path] = None, first_after_s: float = 300.0,
                 verify_every_s: float = VERIFY_EVERY_S, retry_after_s: float = RETRY_AFTER_S):
        super().__init__(every_s, first_after_s)
        self.data_dir, self.dest, self.db_path = Path(data_dir), Path(dest), db_path
        self.verify_every_s = verify_every_s
        self.retry_after_s = retry_after_s
        self.faults = faults
        self.last: Optional[dict] = None         # the last backup that worked
        self.error: Optional[str] = None         # why the last try failed (None: it worked)
        self.retry_at: Optional[float] = None    # time.time() of the next try after a failure
        self._met_another = False                # the last try met another backup writing the folder
        self._failed_over: Optional[dict] = None  # the folder's database (its manifest's) when the try failed
        self._failed_at_ns = 0                   # time.time_ns() of the failure
        # the backup that found the station's own files damaged: the folder's database it
        # made, and when; a later one (by hand) that finds none ends the fault
        self._damaged_over: Optional[dict] = None
        self._damaged_at_ns = 0
        self._next_at: Optional[float] = None    # time.time() of the next scheduled backup
        self._said_same_disk = False             # the backup folder on the station's disk, logged once

    def _manifest(self) -> dict:
        try:
            manifest = json.loads((self.dest / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        return manifest if isinstance(manifest, dict) else {}

    def first_wait(self) -> float:
        age = _age_s(self._manifest().get("made_at"))
        return self.first_after_s if age is None else max(self.first_after_s, self.every_s - age)

    def _verify_due(self) -> bool:
        manifest = self._manifest()
        if not manifest:
            return False             # a first backup copies every file: nothing to read back yet
        age = _age_s(manifest.get("verified_at"))
        return age is None or age >= self.verify_every_s

    def _tick(self) -> float:
        if self.error is not None and self.retry_at is not None and time.time() < self.retry_at:
            if not self.backed_up_since_failure():
                return self._wait_failed()
            age = _age_s(self.last.get("made_at")) if self.last else None
            self._next_at = time.time() + max(LOOK_EVERY_S, self.every_s - (age or 0.0))
            return self._wait_next()       # the next one a day after that one
        if self.error is None and self._next_at is not None and time.time() < self._next_at:
            self.backed_up_since_failure()     # damaged files put back, a backup by hand: the fault ends
            return self._wait_next()
        super()._tick()              # run_once says its own failures (a fault, the log)
        if self.error is not None:
            return self._wait_failed()
        if self._met_another:        # another backup was writing the folder: again in a minute
            self._met_another = False
            self._next_at = time.time() + LOOK_EVERY_S
            return LOOK_EVERY_S
        self._next_at = time.time() + self.every_s
        return min(LOOK_EVERY_S, self.every_s) if self._damaged_over is not None else self.every_s

    def _wait_next(self) -> float:
        # while a fault stands, the folder is looked at every minute, so that a backup by
        # hand ends it (see backed_up_since_failure)
        left = max(1.0, (self._next_at or time.time()) - time.time())
        return min(LOOK_EVERY_S, left) if self._damaged_over is not None else left

    def _wait_failed(self) -> float:
        left = (self.retry_at or time.time()) - time.time()
        return max(1.0, min(LOOK_EVERY_S, left))

    def backed_up_since_failure(self) -> bool:
        """After a failed try, or one that found the station's own files damaged: whether a
        backup of this station into the folder has worked since (``lineguard backup --to``
        by hand, the disk plugged back in), by the folder's manifest naming a new database,
        the one in the folder, made after that try; if so the fault ends (or, the station's
        files still damaged, says what that backup found)."""
        if self.error is not None:
            over, since = self._failed_over, self._failed_at_ns
        elif self._damaged_over is not None:
            over, since = self._damaged_over, self._damaged_at_ns
        else:
            return False
        manifest = self._manifest()
        made = manifest.get("database")
        # made after the try, not only another database than it found: a backup disk away at
        # the failure (no manifest to compare) comes back with its old backup
        if not made or made == over or made != _fingerprint(self.dest / "lineguard.db") \
                or manifest.get("from") != str(self.data_dir.resolve()) or not _made_after(manifest, since):
            return False
        report = BackupReport(**{k: manifest[k] for k in BackupReport.__dataclass_fields__ if k in manifest})
        self.error, self.retry_at = None, None
        self.last = {"made_at": manifest.get("made_at"), **report.to_dict()}
        if report.damaged_at_station:
            log.error("backup to %s: the backup made %s (by hand?) found %d of the station's own files damaged",
                      self.dest, manifest.get("made_at"), report.damaged_at_station)
            self._damaged(made, damaged_at_station_message(report, self.data_dir, self.dest))
        else:
            log.info("backup to %s: a backup made %s (by hand?) worked since, the station's files whole: the fault "
                     "ends", self.dest, manifest.get("made_at"))
            self._damaged_over = None
            self.faults.pop("backup", None)
        return True

    def _damaged(self, made: Optional[dict], fault: str) -> None:
        self._damaged_over, self._damaged_at_ns = made, time.time_ns()
        self.faults["backup"] = fault

    def run_once(self) -> None:
        failed_over = self._manifest().get("database")
        try:
            report = backup_station(self.data_dir, self.dest, self.db_path, stop=self.stopping,
                                    verify=self._verify_due())
        except BackupStopped:
            return
        except BackupRunning:
            # a backup by hand into the same folder right now: nothing wrong with the disk, and
            # no fault ("check the backup disk") nor an hour's wait; looked at again in a minute,
            # when that backup may have made this one's unneeded (backed_up_since_failure)
            log.info("backup to %s: another backup into it is running; tried again in a minute", self.dest)
            self._met_another = True
            return
        except (BackupError, OSError, sqlite3.Error) as exc:
            self.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, BackupError) else str(exc)
            kept = "the last one that worked is kept" if (self.dest / "lineguard.db").is_file() else \
                "no backup has worked yet"
            # an error of the station's own database is not blamed on the backup disk
            station_db = isinstance(exc, StationDatabaseError) or not (isinstance(exc, BackupError)
                                                                      or is_disk_error(exc))
            check = "an error of the station's database, not of the backup disk: see the log" if station_db else \
                "check the backup disk (mounted, room left)"
            self._failed(failed_over, f"the backup to {self.dest} failed at {time.strftime('%Y-%m-%d %H:%M')} "
                                      f"({self.error}); {kept}: {check}")
            log.error("backup to %s failed: %s", self.dest, self.error)
            return
        except Exception as exc:  # noqa: BLE001 - the station goes on; the fault says it
            self.error = f"{type(exc).__name__}: {exc}"
            self._failed(failed_over, f"the backup to {self.dest} failed ({self.error}); see the station's log")
            log.exception("backup to %s failed", self.dest)
            return
        self.error, self.retry_at = None, None
        self._damaged_over = None
        self.faults.pop("backup", None)
        self.last = {"made_at": _utc_stamp(), **report.to_dict()}
        log.info("backup to %s: %d parts, %d files copied (%.1f MB), %d already there, %d read back (%d damaged, "
                 "copied again), %.1f s", self.dest, report.parts, report.files_copied, report.bytes_copied / 1e6,
                 report.files_there, report.verified, report.repaired, report.seconds)
        if report.damaged_at_station:
            self._damaged(self._manifest().get("database"),
                          damaged_at_station_message(report, self.data_dir, self.dest))
        if report.same_disk and not self._said_same_disk:
            self._said_same_disk = True
            log.warning("backup folder %s is on the station's own disk: a disk that fails takes the backup with it, "
                        "and its growth takes the room the disk keeper frees by deleting part images; back up to "
                        "another disk or a share", self.dest)

    def _failed(self, failed_over: Optional[dict], fault: str) -> None:
        self._failed_over, self._failed_at_ns = failed_over, time.time_ns()
        self.retry_at = time.time() + min(self.every_s, self.retry_after_s)
        self.faults["backup"] = (f"{fault}; tried again at {time.strftime('%H:%M', time.localtime(self.retry_at))} "
                                 f"(a `lineguard backup --to {self.dest}` that works ends this fault sooner)")

    def status(self) -> dict:
        self.backed_up_since_failure()
        return {"to": str(self.dest), "every_h": round(self.every_s / 3600, 3), "last": self.last,
                "verified_at": self._manifest().get("verified_at"), "error": self.error,
                "retry_at": None if self.retry_at is None else
                time.strftime(_STAMP, time.gmtime(self.retry_at))}


def _made_after(manifest: dict, at_ns: int) -> bool:
    """Whether the backup a manifest describes was made after ``at_ns`` (time.time_ns()):
    by its made_at, the station's own clock in whole seconds; within the second of
    ``at_ns``, by its database copy's time (a backup by hand run at once after a failure)."""
    try:
        made = calendar.timegm(time.strptime(manifest.get("made_at"), _STAMP))
    except (ValueError, TypeError):
        return False
    if made != at_ns // 10 ** 9:
        return made > at_ns // 10 ** 9
    written = (manifest.get("database") or {}).get("mtime_ns")
    return isinstance(written, int) and written > at_ns


def damaged_at_station_message(report: BackupReport, data_dir: Path, dest: Path) -> str:
    """What a backup that found the station's own files damaged says (the CLI, the fault):
    which, whether the backup keeps a whole copy, and how to put it back."""
    shown = ", ".join(f"{d['key']} ({d['why']}{'; the backup keeps a whole copy' if d['backup_whole'] else ''})"
                      for d in report.damaged_files[:5])
    more = report.damaged_at_station - min(5, len(report.damaged_files))
    kept = report.kept_good_copy
    out = (f"{report.damaged_at_station} of the station's own files in {data_dir} are not what their names say "
           f"(its disk?): {shown}{f' and {more} more' if more > 0 else ''}. They were not copied over the backup")
    if kept:
        first = next(d["key"] for d in report.damaged_files if d["backup_whole"]) if any(
            d["backup_whole"] for d in report.damaged_files) else "images/KEY"
        out += (f"; the backup in {dest} keeps a whole copy of {kept}: put each back by copying it from {dest} to "
                f"the same path in {data_dir} (e.g. cp {dest}/{first} {data_dir}/{first}), or restore the "
                f"backup into a new folder (`lineguard restore --from {dest} --data NEW`)")
    if kept < report.damaged_at_station:
        out += f"; {report.damaged_at_station - kept} have no whole copy in the backup either"
    return out + " (the backup's manifest, backup.json, lists them)"
