"""A station brought back from its backup, every file checked against its content hash.

A backup nobody has restored is a hope, not a backup: a disk that rotted a sector, a
copy cut by a yanked USB disk, a database opened by hand since. ``check_backup`` reads
a backup folder as a restore would (the database's own integrity check, then every file
its records name hashed against the SHA-256 its key starts with) and says what is
damaged; ``restore_station`` does the same while copying the backup into a new station
folder, put in place by one rename only once whole, so a restore stopped half-way leaves
no half station where ``serve --data`` would start on it.

A part whose image is missing or damaged in the backup comes back with its record, its
image recorded as not kept (as the disk keeper records a deleted one), never as a link
to nothing or to wrong bytes. A model file missing or damaged is reported by version:
the station cannot load that version until it is added again.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from ..vision.atomic import hold_lock
from . import filecheck
from .backup import _PART_FILES, MANIFEST, MARKER, _fingerprint, _safe
from .db import SchemaTooNew, check_schema_known, sqlite_revision

# a store's key ends in a file named by the SHA-256 of its bytes (line.imagestore)
_STAGING = ".lineguard-restoring"      # inside a target folder that exists already
_DISK_OWN = {"lost+found"}             # what a freshly formatted disk holds of its own


class RestoreError(Exception):
    """Why a backup cannot be restored (or checked), and what to do; nothing was written."""


@dataclass
class RestoreReport:
    parts: int = 0
    made_at: Optional[str] = None           # when the backup was made (its manifest)
    files: int = 0                          # files the records name, each read and hashed
    bytes: int = 0
    missing: int = 0                        # named by a record, not in the backup
    damaged: int = 0                        # in the backup, but its bytes are not its key's
    parts_without_image: int = 0            # parts restored with their image recorded as not kept
    models: int = 0
    # reference photos (line.reference) whose file is missing or damaged in the backup: their
    # rows are dropped, the photos to add again
    reference_lost: int = 0
    models_damaged: list[str] = field(default_factory=list)   # "product[/line] vN" that cannot load
    # of them, the active ones: every part of that product (and line) is refused until a
    # model file is added again or another version activated
    models_damaged_active: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)         # a few missing or damaged keys
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def whole(self) -> bool:
        return not (self.missing or self.damaged or self.models_damaged)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 2)
        out["whole"] = self.whole
        return out


def check_backup(backup: Path) -> RestoreReport:
    """Read every record and file of the backup in ``backup`` as a restore would; writes
    nothing. ``report.whole`` is False when anything is missing or damaged."""
    t0 = time.monotonic()
    backup = Path(backup).resolve()
    report = RestoreReport()
    report.made_at = _check_source(backup, report).get("made_at")
    _check_schema(backup)
    db = _open_read_only(backup / "lineguard.db")
    try:
        _check_database(db, backup)
        _walk(db, backup, None, report)
    finally:
        db.close()
    report.seconds = time.monotonic() - t0
    return report


def restore_station(backup: Path, data_dir: Path) -> RestoreReport:
    """Copy the backup in ``backup`` into the new station folder ``data_dir`` (absent or
    empty), checking every file; a part whose image is missing or damaged comes back
    with its image recorded as not kept. The station appears only once whole."""
    t0 = time.monotonic()
    backup, data_dir = Path(backup).resolve(), Path(data_dir).resolve()
    report = RestoreReport()
    manifest = _check_source(backup, report)
    _check_schema(backup)          # before anything is written
    report.made_at = manifest.get("made_at")
    if data_dir == backup or backup in data_dir.parents or data_dir in backup.parents:
        raise RestoreError(f"{data_dir} is the backup folder, lies in it or holds it: restore into a new folder "
                           "beside it (the backup stays as it is, for the next restore)")
    if data_dir.exists() and not data_dir.is_dir():
        raise RestoreError(f"{data_dir} is a file: restore into a new or empty folder")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _one_restore_at_a_time(data_dir.parent):
        _clear_leftovers(data_dir)
        if data_dir.exists():
            # an empty folder made for it, perhaps a disk of its own mounted there: built
            # inside it (on that disk) and moved into place with the database last, so
            # until the end the folder holds no station a `serve` could start on
            staging = data_dir / _STAGING
        else:
            # built beside it and renamed into place whole
            staging = data_dir.parent / f".{data_dir.name}.restoring"
            if staging.exists():
                shutil.rmtree(staging)      # a restore killed here earlier (the lock says none runs now)
        staging.mkdir(mode=0o700)      # as a station makes its data folder: its owner's alone
        try:
            src = _open_read_only(backup / "lineguard.db")
            try:
                _check_database(src, backup)
                out = sqlite3.connect(staging / "lineguard.db")
                try:
                    src.backup(out)
                finally:
                    out.close()
            finally:
                src.close()
            db = sqlite3.connect(staging / "lineguard.db")
            try:
                _walk(db, backup, staging, report)
            finally:
                db.close()
            if hasattr(os, "sync"):      # on the disk before the station takes its name
                os.sync()
            if staging.parent == data_dir:
                for name in ("models", "images", "reference", "lineguard.db"):
                    if (staging / name).exists():
                        os.replace(staging / name, data_dir / name)
                shutil.rmtree(staging)
            else:
                os.replace(staging, data_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    report.seconds = time.monotonic() - t0
    return report


@contextmanager
def _one_restore_at_a_time(parent: Path) -> Iterator[None]:
    """Two restores into one place would clear each other's half-built folders: the
    folder the target lies in is locked while a restore runs (POSIX; elsewhere unlocked)."""
    fd = hold_lock(parent, wait=False)
    if fd is None:
        raise RestoreError(f"another restore into {parent} is running: wait for it to end")
    try:
        yield
    finally:
        os.close(fd)             # closing releases the lock


def _clear_leftovers(data_dir: Path) -> None:
    """Refuse a target that holds anything but what a stopped restore into it left."""
    if not data_dir.exists():
        return
    names = {p.name for p in data_dir.iterdir()} - _DISK_OWN
    if not names:
        return
    if _STAGING in names and "lineguard.db" not in names and names <= {_STAGING, "images", "models", "reference"}:
        for name in names:           # a restore stopped while moving into place: start again
            shutil.rmtree(data_dir / name)
        return
    raise RestoreError(f"{data_dir} is not empty: restore into a new or empty folder (move an old station "
                       "folder aside first; a restore never mixes two stations)")


def _check_source(backup: Path, report: RestoreReport) -> dict:
    """The backup's manifest; refuses a folder that is not a backup, or one open as a station."""
    db = backup / "lineguard.db"
    if not db.is_file():
        raise RestoreError(f"no backup in {backup} (no lineguard.db): give the folder `lineguard backup --to` "
                           "wrote")
    if not (backup / MARKER).exists():
        if (backup / MANIFEST).is_file():
            # only a backup writes one: a copy of the backup that left out dot-files (`cp -r dir/*`)
            report.notes.append(f"the backup's {MARKER} file is missing (a copy that left out dot-files?): read "
                                f"as a backup all the same, as its {MANIFEST} says it is one. A later `lineguard "
                                f"backup` into it refuses until it is back: `touch {backup / MARKER}`")
        else:
            raise RestoreError(f"{backup} is a station's folder, not a backup: stop that station and copy the "
                               "folder, or back it up with `lineguard backup` and restore that")
    if any(db.with_name(db.name + end).exists() for end in ("-wal", "-shm", "-journal")):
        raise RestoreError(f"the backup in {backup} is open as a station (or one was killed with it open: its "
                           "write-ahead log lies beside it): stop that station, then restore")
    try:
        manifest = json.loads((backup / MANIFEST).read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a manifest")
    except (OSError, ValueError):
        # Not a first backup that did not finish: the manifest is written before the database
        # takes its name. Lost or damaged since, it only said when the backup was made; the
        # database and every file it names are checked all the same. (This said "run `lineguard
        # backup` into it again": with the station gone, the command that replaces the backup.)
        report.notes.append(f"the backup's {MANIFEST} is missing or unreadable (lost or damaged since the backup "
                            "was made): when it was made is not known; its records and every file they name were "
                            "checked all the same")
        return {}
    if _fingerprint(db) not in (manifest.get("database"), manifest.get("previous_database")):
        # copied with a tool that does not keep file times (cp -r, tar, a USB stick), or
        # opened since: not refused, every record's files are checked all the same
        report.notes.append("the database's size or time differs from what the backup wrote (copied without its "
                            "file times, or opened since): its records and every file they name were checked "
                            "all the same")
    return manifest


def _check_schema(backup: Path) -> None:
    """Refuse a backup a newer lineguard made: this version cannot run on its tables (its
    `serve` would refuse the restored station), so nothing is written for it."""
    try:
        db = _open_read_only(backup / "lineguard.db")
        try:
            found = sqlite_revision(db)
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return              # not readable: _check_database says so, as for any damaged backup
    try:
        check_schema_known(found, "restore it with the lineguard that made it, or restore a backup from "
                                  "before the upgrade")
    except SchemaTooNew as exc:
        raise RestoreError(f"the backup in {backup}: {exc.message}. Nothing was written") from None


def _open_read_only(path: Path) -> sqlite3.Connection:
    # read-only: checking or restoring a backup never changes it (nor makes a journal beside it)
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)


def _check_database(db: sqlite3.Connection, backup: Path) -> None:
    try:
        result = [row[0] for row in db.execute("PRAGMA integrity_check")]   # indexes too
        db.execute("SELECT count(*) FROM inspections").fetchone()
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"the backup's database in {backup} cannot be read ({exc}): restore an earlier copy of "
                           "the backup") from None
    if result != ["ok"]:
        raise RestoreError(f"the backup's database in {backup} is damaged ({'; '.join(result[:3])}): restore an "
                           "earlier copy of the backup")


def _walk(db: sqlite3.Connection, backup: Path, dest: Optional[Path], report: RestoreReport) -> None:
    """Check (and with ``dest``, copy) every file the records in ``db`` name; with
    ``dest`` the parts whose files are lost are recorded as not keeping them."""
    seen: dict[tuple[str, str], bool] = {}       # (store, key) -> whole

    def whole(store: str, key: str) -> bool:
        if (store, key) not in seen:
            seen[store, key] = _check_file(backup / store, key, None if dest is None else dest / store, report)
        return seen[store, key]

    cols = ", ".join(_PART_FILES)
    named = " OR ".join(f"{c} IS NOT NULL" for c in _PART_FILES)
    lost: dict[int, set[str]] = {}
    for row in db.execute(f"SELECT id, {cols} FROM inspections WHERE {named}"):  # noqa: S608 - our names
        for col, key in zip(_PART_FILES, row[1:]):
            if key and not whole("images", key):
                lost.setdefault(row[0], set()).add(col)
                if col == "image_key":
                    # its maps are not kept without it (cleared below): neither read nor copied,
                    # a restored folder held map files no record named
                    break
    for product, line, version, key, active in db.execute(
            "SELECT product, line, version, file_key, active FROM model_versions ORDER BY id").fetchall():
        report.models += 1
        if not whole("models", key):
            name = f"{product}{'/' + line if line else ''} v{version}"
            report.models_damaged.append(name)
            if active:
                report.models_damaged_active.append(name)
    # the reference photos of good parts a retrain learns (line.reference); a backup from before
    # them has no such table
    try:
        refs = db.execute("SELECT id, image_key FROM reference_photos").fetchall()
    except sqlite3.OperationalError:
        refs = []
    refs_lost = [ref_id for ref_id, key in refs if not whole("reference", key)]
    report.reference_lost = len(refs_lost)
    report.parts = db.execute("SELECT count(*) FROM inspections").fetchone()[0]
    report.parts_without_image = sum(1 for cols_lost in lost.values() if "image_key" in cols_lost)
    if dest is None:
        return
    if refs_lost:
        # not kept: a retrain would fail on a photo that is not there (counted above as missing
        # or damaged, and named in the examples)
        db.execute(f"DELETE FROM reference_photos WHERE id IN ({', '.join('?' * len(refs_lost))})",  # noqa: S608
                   refs_lost)
    for inspection_id, cols_lost in lost.items():
        # as the disk keeper clears: a map or overlay without its image is not kept either
        clear = _PART_FILES if "image_key" in cols_lost else sorted(cols_lost)
        db.execute(f"UPDATE inspections SET {', '.join(f'{c} = NULL' for c in clear)} WHERE id = ?",  # noqa: S608
                   (inspection_id,))
    db.commit()


def _check_file(store: Path, key: str, dest: Optional[Path], report: RestoreReport) -> bool:
    """Read one file of the backup (copying it into ``dest`` on the way); False, and
    counted, if it is missing, not a plain file, unreadable, or not whole (``filecheck.damage``)."""
    if not _safe(key):
        report.missing += 1          # not a key a station writes: nothing outside the backup is read
        _example(report, f"missing (not a store key): {key!r}")
        return False
    tmp = None if dest is None else dest / ".staging" / f"{Path(key).name}.restoring"
    if tmp is not None:
        tmp.parent.mkdir(parents=True, exist_ok=True)
    # the restore's own copy: any error writing it (a full disk) stops the restore
    fout = open(tmp, "wb") if tmp is not None else None
    try:
        damage, nbytes = filecheck.read_stored(store / key, key, fout)
    except FileNotFoundError:
        damage, nbytes = None, None
    finally:
        if fout is not None:
            fout.close()
    if nbytes is not None:           # opened and read through (not a link, not unreadable)
        report.files += 1
        report.bytes += nbytes
        if damage is None:
            if tmp is not None:
                target = dest / key
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)      # the folder is put in place after os.sync, once whole
                # The file keeps the time it had (as cp -p): written with the restore's time,
                # every image was "stored in the last minute" to the disk keeper of a station
                # started at once on a nearly full disk, which then deleted none of them.
                try:
                    held = os.stat(store / key, follow_symlinks=False)
                    os.utime(target, ns=(held.st_atime_ns, held.st_mtime_ns))
                except OSError:
                    pass     # a disk that keeps no times: the file is whole all the same
            return True
    if tmp is not None:
        tmp.unlink(missing_ok=True)
    if damage is None:
        report.missing += 1
        _example(report, f"missing: {key}")
    else:
        report.damaged += 1
        _example(report, f"damaged ({damage}): {key}")
    return False


def _example(report: RestoreReport, line: str) -> None:
    if len(report.examples) < 10:
        report.examples.append(line)
