"""A station's records and the files they name, copied to another folder as one whole.

The line PC's disk holds the only copy of every inspection, review and model; when it
dies, the plant's quality record goes with it. A backup copies the SQLite database
(SQLite's online backup: consistent while the station runs) and then exactly the files
that copy names (part images, maps, overlays, model files), so the backup folder is a
station folder: ``lineguard serve --data BACKUP`` runs on it as it is.

Files are content-addressed, so a later backup into the same folder copies only the
files it does not hold yet. The new database copy replaces the old one only once all its
files are in place: a backup stopped half-way leaves the previous one whole. A file the
copy names but the station deleted meanwhile (the disk keeper makes room) is recorded as
not kept in the copy, as the keeper records it, never as a link to nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..vision.atomic import atomic_write_bytes

# the columns of a part's record that name files of the image store; clearing the
# image clears them all (a map or overlay without its image is not kept, see line.disk)
_PART_FILES = ("image_key", "heatmap_key", "overlay_key")


class BackupError(Exception):
    """Why a backup cannot be made, and what to do."""


@dataclass
class BackupReport:
    parts: int = 0
    files_copied: int = 0
    files_there: int = 0          # already in the backup folder from an earlier backup
    bytes_copied: int = 0
    gone: int = 0                 # named by the copy but deleted meanwhile: recorded as not kept
    models: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 2)
        return out


def backup_station(data_dir: Path, dest: Path, db_path: Path | None = None) -> BackupReport:
    """Copy the SQLite station in ``data_dir`` (its database at ``db_path``, default
    ``data_dir/lineguard.db``) and every file it names into ``dest``."""
    t0 = time.monotonic()
    data_dir, dest = Path(data_dir).resolve(), Path(dest).resolve()
    db_path = Path(db_path or data_dir / "lineguard.db").resolve()
    if not db_path.is_file():
        raise BackupError(f"no station database at {db_path}: give the station's folder (--data)")
    if dest == data_dir or data_dir in dest.parents or dest in data_dir.parents:
        raise BackupError(f"{dest} is the station's folder or holds it (or lies in it): back up to another "
                          "folder, best on another disk")
    if (dest / "lineguard.db").exists() and not (dest / "backup.json").exists():
        # a station restored there (or running there) would have its database replaced
        raise BackupError(f"{dest} holds a station's database that no backup made: back up to an empty folder "
                          "or to an earlier backup's folder")
    dest.mkdir(parents=True, exist_ok=True)
    copy_db = dest / f".lineguard.db.{os.getpid()}.tmp"
    report = BackupReport()
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
            _copy_part_files(db, data_dir / "images", dest / "images", report)
            for (key,) in db.execute("SELECT file_key FROM model_versions"):
                if _copy(data_dir / "models", dest / "models", key, report):
                    report.models += 1
            report.parts = db.execute("SELECT count(*) FROM inspections").fetchone()[0]
        finally:
            db.close()
        # the copies reach the disk before the database that names them replaces the old one
        if hasattr(os, "sync"):     # not on Windows, where the rename below is the order there is
            os.sync()
        os.replace(copy_db, dest / "lineguard.db")
    finally:
        for left in (copy_db, *(copy_db.with_name(copy_db.name + end) for end in ("-wal", "-shm", "-journal"))):
            left.unlink(missing_ok=True)
    report.seconds = time.monotonic() - t0
    manifest = {"made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from": str(data_dir),
                **report.to_dict()}
    atomic_write_bytes(dest / "backup.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return report


def _copy_part_files(db: sqlite3.Connection, images: Path, dest: Path, report: BackupReport) -> None:
    cols = ", ".join(_PART_FILES)
    named = f"{_PART_FILES[0]} IS NOT NULL OR " + " OR ".join(f"{c} IS NOT NULL" for c in _PART_FILES[1:])
    gone: dict[int, set[str]] = {}
    for row in db.execute(f"SELECT id, {cols} FROM inspections WHERE {named}"):  # noqa: S608 - our column names
        for col, key in zip(_PART_FILES, row[1:]):
            if key and _copy(images, dest, key, report) is None:
                gone.setdefault(row[0], set()).add(col)
    for inspection_id, cols_gone in gone.items():
        clear = _PART_FILES if "image_key" in cols_gone else sorted(cols_gone)
        db.execute(f"UPDATE inspections SET {', '.join(f'{c} = NULL' for c in clear)} WHERE id = ?",  # noqa: S608
                   (inspection_id,))
    report.gone = len(gone)
    db.commit()


def _copy(store: Path, dest: Path, key: str, report: BackupReport) -> bool | None:
    """Copy one file of a store unless the backup holds it; True if copied, False if
    there, None if the station no longer has it."""
    if ".." in key.split("/") or key.startswith("/"):
        return None        # not a key the station writes: nothing outside its folder is copied
    src, dst = store / key, dest / key
    if dst.exists():
        report.files_there += 1
        return False
    # written in the store's staging folder (cleared of old temp files when a station
    # opens it), then renamed: a backup killed mid-copy leaves no half file under a key
    staging = dest / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{dst.name}.{os.getpid()}.tmp"
    try:
        shutil.copyfile(src, tmp)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dst)
    report.files_copied += 1
    report.bytes_copied += dst.stat().st_size
    return True
