"""One PostgreSQL station database, one data folder.

A station's records name files (model versions, part photos, anomaly maps) kept in its
data folder. Several processes may share one folder and one database (a station and its
hot-folder watcher, on one PC or over a network share); but a second station started
with a folder of its own on the same database (or schema) broke the first: a model
uploaded on one was "active" on the other, whose folder lacked its file, so every part
of the line was refused (503 model_unavailable); and one station's disk keeper cleared the
photo links of every other station's parts, their photos still on the other disks.

So each folder carries an id (``.lineguard-folder``, made at its first start) and the
database a row per folder; a station whose folder is not the one the database's records
point at (seen in the last :data:`KEPT_DAYS`) is refused at start, saying what to do:
share that folder, give each station its own ``--db-schema``, or, when that folder is
gone for good (the PC replaced, its files restored into this one), name it to let go of.
A SQLite database lives in its own data folder, so only PostgreSQL is checked.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Optional

from sqlalchemy import delete, inspect as sql_inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from ..vision.atomic import atomic_write_text
from .db import LOCK_DATA_FOLDERS
from .schema_names import _SCHEMA_RE as _SCHEMA_NAME
from .errors import StationError
from .orm import DataFolder, utcnow
from .periodic import PeriodicJob

log = logging.getLogger("lineguard.station")

ID_FILE = ".lineguard-folder"
# beside it: the database (its URL without the password) and schema whose station keeps its
# files here, written at each claim. A PostgreSQL station's folder holds no lineguard.db:
# started without --db, `serve` made a new, empty SQLite station in it; refused now, it
# names the database to give (see :func:`postgresql_station_of`). A file of its own: a
# lineguard older than this one reads the id file alone, and one line more in it is
# "damaged" to that one (after an undo-upgrade)
DB_FILE = ".lineguard-database"
# a folder not seen by any process for this long no longer holds the database
KEPT_DAYS = 7.0


class OtherDataFolder(StationError):
    http_status = 409
    code = "other_data_folder"


class BackupFolderAsData(StationError):
    http_status = 409
    code = "backup_folder"


def refuse_backup_folder(data_dir: Path, db_file: Optional[Path] = None) -> None:
    """:class:`BackupFolderAsData` when ``data_dir`` (or the folder of the SQLite database
    ``db_file``) is a backup ``lineguard backup`` made, not a station folder. Opened as a
    station, even to list its keys, its database was switched to a write-ahead log: it
    was changed, and the next backup into it refused ("changed since the backup made it")."""
    from .backup import MARKER      # not at the top: line.backup has no need of this module
    for folder in dict.fromkeys([Path(data_dir)] + ([Path(db_file).parent] if db_file is not None else [])):
        if (folder / MARKER).exists():
            raise BackupFolderAsData(
                f"{folder} is a backup made by `lineguard backup` (it holds {MARKER}), not a station folder: "
                "opening it as one would change its database, and the next backup into it would refuse. Check it "
                f"with `lineguard restore --from {folder} --check`; restore it with `lineguard restore --from "
                f"{folder} --data NEW_FOLDER` and use NEW_FOLDER", folder=str(folder))


def folder_id(data_dir: Path, new_id: Optional[str] = None) -> str:
    """The data folder's id, made at its first use (``new_id``, or a new one). Made once
    whoever comes first: a station and its watcher started together on a new folder each
    made an id, the last write won, and the other claimed an id no file held (then refused
    its own restarts)."""
    path = Path(data_dir) / ID_FILE
    if not path.exists():
        tmp = path.with_name(f"{ID_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        atomic_write_text(tmp, (new_id or str(uuid.uuid4())) + "\n")
        try:
            os.link(tmp, path)              # fails if another process made it first: theirs stands
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        found = path.read_text(encoding="ascii").strip()
        uuid.UUID(found)
        return found
    except (ValueError, UnicodeDecodeError):
        raise OtherDataFolder(f"{path} is damaged (not a folder id); restore it from a backup of this folder, "
                              "or delete it to give the folder a new id") from None


def claim(db, data_dir: Path, let_go: Optional[str] = None, now: Optional[dt.datetime] = None) -> Optional[str]:
    """Record that ``data_dir`` keeps this database's files, or :class:`OtherDataFolder`
    when another folder does. ``let_go``: the id of a folder gone for good, forgotten
    first (said in the log). Returns this folder's id; None on SQLite (nothing to claim:
    no id file is made)."""
    if db.is_sqlite:
        return None
    mine = _claim(db, data_dir, let_go, now)
    mine = mine if mine is not None else _claim(db, data_dir, let_go, now)
    if mine is not None:
        _note_database(db, Path(data_dir))
    return mine


def _note_database(db, data_dir: Path) -> None:
    """:data:`DB_FILE` written (whole, then renamed) where it does not say this database
    and schema yet. Only a help for a later refusal's words: a folder it cannot be written
    in is logged, never a refused start."""
    from .config import without_password
    url = db.url       # as a command line gives it (postgresql://): psycopg is the driver meant by it
    url = "postgresql://" + url[len("postgresql+psycopg://"):] if url.startswith("postgresql+psycopg://") else url
    said = json.dumps({"db": without_password(url), "db_schema": db.schema}, sort_keys=True) + "\n"
    path = data_dir / DB_FILE
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == said:
            return
        atomic_write_text(path, said)
    except OSError as exc:
        log.warning("could not note the database in %s (%s): a start without --db on this folder will not be "
                    "able to name it", path, exc)


def postgresql_station_of(data_dir: Path) -> Optional[dict]:
    """None, unless ``data_dir`` is the data folder of a station on PostgreSQL: it holds
    the folder's id (:data:`ID_FILE`, made at a claim, on PostgreSQL alone) and no SQLite
    station (lineguard.db). Then {"db": its URL without the password, "db_schema": its
    schema or None}, each None where not known (the folder claimed by a lineguard older
    than :data:`DB_FILE`, or that file unreadable). Read only."""
    data_dir = Path(data_dir)
    if not (data_dir / ID_FILE).is_file() or (data_dir / "lineguard.db").exists():
        return None
    found = {"db": None, "db_schema": None}
    try:
        noted = json.loads((data_dir / DB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return found
    if isinstance(noted, dict):
        found.update({k: noted[k] for k in found if isinstance(noted.get(k), str) and noted[k]})
    return found



class PlaceRefused(ValueError):
    """A folder, database and schema that cannot be one station (:func:`station_place_problem`)."""


def station_place_problem(data: Optional[Path], db: Optional[str], db_schema: Optional[str],
                          schema_var: bool = False, postgresql_folder: bool = True,
                          db_given: bool = False) -> Optional[str]:
    """:class:`PlaceRefused`, before anything is opened or made, where a command's folder,
    database and schema (as resolved: the options, else their variables) cannot be one
    station: a schema with no PostgreSQL database (SQLite has none: it was ignored, and the
    SQLite station in --data used, or made); or, with ``postgresql_folder``, a PostgreSQL
    station's data folder (its id file, no lineguard.db) with no PostgreSQL database given:
    `serve` made a new, empty SQLite station in it, its keys and parts elsewhere than the
    line's. The check of every command taking --data and --db (serve, watch, camera, keys,
    users, parts, old-records, sweep..., and ``python -m lineguard.server``). Returns a note
    to say, or None. ``schema_var``: the schema came from LINEGUARD_DB_SCHEMA (named so).
    ``db_given``: the database was named on the command line: a SQLite one named so is meant
    (a PC whose environment sets a PostgreSQL station's LINEGUARD_DB and LINEGUARD_DB_SCHEMA
    runs its SQLite station with --db sqlite:///...), so the environment's schema is set aside
    (the note) and the folder is not asked for a lineguard.db (its database may lie elsewhere)."""
    import shlex

    from .config import without_password
    if db is not None and not db.strip().lower().startswith("sqlite"):
        return None             # a database server: its schema is checked as it opens
    where = f"the SQLite one in {data}" if db is None else f"a SQLite one ({without_password(db)})"
    if db_given and db is not None:
        if db_schema and not schema_var:
            raise PlaceRefused(f"--db-schema {db_schema} is a PostgreSQL station's schema, but --db names a SQLite "
                               "database: leave the schema out, or give the PostgreSQL database (--db "
                               "postgresql://...)")
        return (f"LINEGUARD_DB_SCHEMA {db_schema} set aside: --db names a SQLite database, which has no schemas"
                if db_schema else None)
    theirs = postgresql_station_of(Path(data)) if data is not None and postgresql_folder else None
    if theirs is not None:
        named = theirs["db"] or "postgresql://USER@HOST/DATABASE"
        schema = theirs["db_schema"] if theirs["db"] else db_schema
        hint = f"--db {shlex.quote(named)}" + (f" --db-schema {shlex.quote(schema)}" if schema else "")
        raise PlaceRefused(
            f"{data} is the data folder of a station on PostgreSQL"
            + (f" ({named}" + (f", schema {theirs['db_schema']}" if theirs["db_schema"] else "") + ")"
               if theirs["db"] else "")
            + f" (it holds {ID_FILE} and no lineguard.db), but the database given is {where}: that would be "
            f"another, empty station in its folder. Give that station's database: {hint}"
            + ("" if theirs["db"] else " (and its --db-schema, where it has one)")
            + (" (with the database password where *** stands)" if "***" in named else "") + ", or set LINEGUARD_DB"
            + (" and LINEGUARD_DB_SCHEMA" if schema or not theirs["db"] else "") + " as its serve has them. "
            f"To make this folder a SQLite station's on purpose, remove {ID_FILE} (and {DB_FILE}) from it first")
    if db_schema:
        given = "LINEGUARD_DB_SCHEMA" if schema_var else "--db-schema"
        raise PlaceRefused(f"{given} {db_schema} is a PostgreSQL station's schema, but the database is {where}: the "
                           "schema would be ignored and that SQLite station used (or made). Give the station's "
                           "database with it (--db postgresql://... or LINEGUARD_DB), or leave the schema out"
                           + (" (unset LINEGUARD_DB_SCHEMA)" if schema_var else ""))
    return None


def _claim(db, data_dir: Path, let_go: Optional[str], now: Optional[dt.datetime]) -> Optional[str]:
    """:func:`claim` once; None where another process wrote the folder's id file meanwhile."""
    now = now or utcnow()
    here = {"host": socket.gethostname()[:255], "path": str(Path(data_dir).resolve())}
    with db.session() as s:
        # two folders' first starts at one moment: one claims, the other then sees it
        s.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_DATA_FOLDERS})"))
        # the id file written only once the claim is accepted: a refused start wrote one into
        # the folder it was given (a folder it made, or one holding other files), and that
        # folder was then another station's to the next start, though nothing ran in it
        made = not (Path(data_dir) / ID_FILE).exists()
        mine = str(uuid.uuid4()) if made else folder_id(data_dir)
        if let_go and let_go != mine:
            gone = s.get(DataFolder, let_go)
            if gone is not None:
                log.warning("data folder %s (%s:%s) let go of: this database's records now point at %s",
                            let_go, gone.host, gone.path, here["path"])
                s.execute(delete(DataFolder).where(DataFolder.folder_id == let_go))
        since = now - dt.timedelta(days=KEPT_DAYS)
        others = list(s.scalars(select(DataFolder).where(DataFolder.folder_id != mine, DataFolder.last_seen >= since)
                                .order_by(DataFolder.last_seen.desc())))
        # this very folder under another id: its id file lost (a copy that skipped dot-files,
        # a tidy-up) and made again. The same host and path: the records' files are here.
        same = [o for o in others if (o.host, o.path) == (here["host"], here["path"])]
        for o in same:
            log.warning("data folder %s:%s had id %s, now %s (its %s was lost): the same folder, kept",
                        o.host, o.path, o.folder_id, mine, ID_FILE)
            s.delete(o)
        others = [o for o in others if o not in same]
        if others:
            o = others[0]
            raise OtherDataFolder(
                f"this database's records point at files in another data folder, {o.host}:{o.path} (folder "
                f"{o.folder_id}, last used {o.last_seen:%Y-%m-%d %H:%M} UTC), not {here['path']}: a station "
                "with a folder of its own would miss that folder's models and photos, and its disk keeper "
                "would clear their links. Give this station that same folder (a network share), or its own "
                f"--db-schema; if that folder is gone for good, start once with LINEGUARD_LET_GO_OF_FOLDER="
                f"{o.folder_id}", folder=o.folder_id, host=o.host, path=o.path)
        if made and folder_id(data_dir, mine) != mine:
            # another process wrote its id first (one on another database, not under this
            # lock): the folder's id is that one, checked as such
            s.rollback()
            return None
        row = s.get(DataFolder, mine)
        if row is None:
            s.add(DataFolder(folder_id=mine, first_seen=now, last_seen=now, **here))
        else:
            row.host, row.path, row.last_seen = here["host"], here["path"], now
    return mine


def check(db, data_dir: Path, now: Optional[dt.datetime] = None) -> None:
    """What :func:`claim` refuses, read-only, for the commands that look after a station
    (keys, users, alarm rules, parts, old records, sweep) given its --data and a database:
    :class:`OtherDataFolder` when the database's records point at another data folder.
    With --db-schema forgotten they acted on the station in the database's public schema
    (a key made there, a user added, its parts exported) while serve refused the same
    folder and database. Never claims and never makes an id file: a folder that has none
    (a station made before claims existed, an admin on another PC giving --db alone) is not
    one this can tell apart, and is let through as before. (A station made with --new
    claims its database at once: cli.station._folder_checked.)"""
    if db.is_sqlite or not (Path(data_dir) / ID_FILE).is_file():
        return
    mine = folder_id(data_dir)            # only read: the file is there
    if not sql_inspect(db.engine).has_table("data_folders", schema=db.schema):
        return                            # a database older than claims: nothing claimed yet
    now = now or utcnow()
    here = {"host": socket.gethostname()[:255], "path": str(Path(data_dir).resolve())}
    since = now - dt.timedelta(days=KEPT_DAYS)
    with db.session() as s:
        others = [o for o in s.scalars(select(DataFolder).where(DataFolder.folder_id != mine,
                                                                DataFolder.last_seen >= since)
                                       .order_by(DataFolder.last_seen.desc()))
                  if (o.host, o.path) != (here["host"], here["path"])]     # this folder, its id file made again
        if not others:
            return
        current = s.execute(text("SELECT current_schema()")).scalar() or "public"
    o = others[0]
    holding = [name for name in _schemas_claiming(db, mine) if name != current]
    if holding == ["public"]:
        fix = ("this folder's station is in the database's public schema: leave out --db-schema (and unset "
               "LINEGUARD_DB_SCHEMA)")
    elif len(holding) == 1:
        fix = f"this folder's station is in schema {holding[0]!r}: add --db-schema {holding[0]} (or set " \
              f"LINEGUARD_DB_SCHEMA={holding[0]})"
    else:
        fix = ("give this station's schema with --db-schema NAME (or LINEGUARD_DB_SCHEMA), as its `serve` has it, "
               "or the --data of the station that uses this one")
    raise OtherDataFolder(
        f"{here['path']} is not the data folder of the station in schema {current!r} of this database: that "
        f"station's files are in {o.host}:{o.path} (folder {o.folder_id}, last used {o.last_seen:%Y-%m-%d %H:%M} "
        f"UTC), so this would act on another station than this folder's (serve refuses the same); {fix}. "
        "Nothing was changed", folder=o.folder_id, host=o.host, path=o.path)


def claimed_in_other_schemas(db, data_dir: Path) -> list[str]:
    """The other schemas of this PostgreSQL database whose stations claim ``data_dir``
    (read only: no id file is made). :func:`claim` looks in its own schema alone, so a
    mistyped --db-schema started a new, empty station on another station's folder, its
    disk keeper then clearing files that station's records name (serve refuses it first)."""
    if db.is_sqlite or not (Path(data_dir) / ID_FILE).is_file():
        return []
    own = db.schema or "public"
    return [name for name in _schemas_claiming(db, folder_id(data_dir)) if name != own]


def _schemas_claiming(db, folder: str) -> list[str]:
    """The schemas of this PostgreSQL database whose stations claim ``folder`` (read only;
    a schema this user may not read is passed over)."""
    found = []
    with db.engine.connect() as conn:
        names = [r[0] for r in conn.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'data_folders' "
            "ORDER BY table_schema"))]
        for name in names:
            if not _SCHEMA_NAME.match(name):
                continue
            try:
                if conn.execute(text(f'SELECT 1 FROM "{name}".data_folders WHERE folder_id = :f'),
                                {"f": folder}).first() is not None:
                    found.append(name)
            except SQLAlchemyError:
                conn.rollback()
    return found


class FolderSeen(PeriodicJob):
    """The folder's claim renewed while a station runs (its last_seen): a station running
    for weeks without a restart still holds its database."""

    thread_name = "lg-folder-seen"
    what = "renewing the data folder's claim on the database"

    def __init__(self, db, folder: str, every_s: float = 3600.0):
        super().__init__(every_s, first_after_s=every_s)
        self.db, self.folder = db, folder

    def run_once(self) -> object:
        with self.db.session() as s:
            row = s.get(DataFolder, self.folder)
            if row is not None:
                row.last_seen = utcnow()
        return None
