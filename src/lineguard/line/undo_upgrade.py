"""Going back to the copy of a SQLite station's database taken before its upgrade.

A newer lineguard copies ``lineguard.db`` to ``lineguard.db.before-<old revision>``
before migrating it (line.db, ``Database._copy_before``), and the older version cannot
run on the migrated one. Going back by hand went wrong in two ways: the copy put in place
with the upgraded database's write-ahead log (``-wal``, ``-shm``) left beside it, which
SQLite then replayed onto the copy (the older version refused it as "upgraded by a newer
lineguard"); or the log deleted, and with it the upgraded database's last writes.

:func:`undo_upgrade` does it in one order that loses nothing: the copy is copied to a
temporary file and checked (it opens, it is whole, it is at the revision its name says)
before anything is moved; the station's database is locked (SQLite's exclusive lock:
refused while any process has it open); the database and its ``-wal`` and ``-shm`` are
moved together into a new folder beside it (never deleted: they hold the parts recorded
since the upgrade); the checked copy is linked into place. The copy stays, so the same
can be done again.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..vision.atomic import fsync_dir, hold_lock
from .db import BEFORE, discard_database_file, schema_revisions, sqlite_revision
from .handover import BEAT

# how long the lock on the station's database is waited for: a station running holds its
# database open (its pool's connections) and so holds SQLite's lock off for good, while a
# command reading it for a moment (`lineguard parts`) lets go within this
LOCK_WAIT_S = 2.0
_PARTS = ("", "-wal", "-shm")           # the database and its write-ahead log, moved together
# a station's run is alive while its last sign of life is this recent: two of its beats
_ALIVE = 2 * BEAT


class UndoRefused(Exception):
    """Why the copy cannot be put back, and what to do; nothing was moved or written."""


class UndoStopped(Exception):
    """Stopped half-way by something that came up meanwhile; says where each database is."""


@dataclass
class UndoReport:
    copy: Path                      # the copy put in place (it stays where it was)
    copy_revision: str
    moved_to: Path                  # the folder the upgraded database went to
    moved: list[str] = field(default_factory=list)      # the files moved there
    upgraded_revision: Optional[str] = None
    parts_since: int = 0            # parts in the moved database that the copy does not hold
    nothing_to_do: bool = False     # the database was at the copy's revision already


def find_copy(db_file: Path) -> Optional[Path]:
    """The copy taken before the upgrade beside ``db_file`` (the newest revision where more
    than one was left; a copy's own journal or temporary files are not copies)."""
    copies = [p for p in db_file.parent.glob(db_file.name + BEFORE + "*")
              if p.is_file() and not p.name.endswith((".tmp", "-wal", "-shm", "-journal"))]
    return sorted(copies)[-1] if copies else None


def _checked_copy(copy: Path, revision: str, tmp: Path) -> int:
    """Copy ``copy`` to ``tmp`` and check what was written there (the bytes that go in
    place): a whole SQLite database at ``revision``. The largest part id it holds (0: none),
    for the parts recorded since. :class:`UndoRefused` (``tmp`` removed) otherwise."""
    try:
        shutil.copyfile(copy, tmp)
        shutil.copymode(copy, tmp)          # the users' password hashes: as private as the copy
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    except OSError:
        discard_database_file(tmp)       # a full disk: no half copy left behind
        raise
    try:
        db = sqlite3.connect(tmp)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            found = sqlite_revision(db)
            try:
                largest = db.execute("SELECT max(id) FROM inspections").fetchone()[0] or 0
            except sqlite3.OperationalError:
                largest = None          # no station's records: refused below
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        discard_database_file(tmp)
        raise UndoRefused(f"the copy {copy} cannot be read as a database ({exc}): it is damaged; nothing was "
                          "moved. Go back with a `lineguard backup` taken before the upgrade (lineguard restore), "
                          "or run the newer lineguard on the upgraded database") from exc
    if verdict != "ok" or found != revision or largest is None:
        discard_database_file(tmp)
        why = (f"its integrity check says: {verdict}" if verdict != "ok"
               else f"it holds schema {found or '(none)'}, not {revision} as its name says" if found != revision
               else "it holds no station's records (no inspections table)")
        raise UndoRefused(f"the copy {copy} is not the database as the older lineguard left it ({why}); nothing "
                          "was moved. Go back with a `lineguard backup` taken before the upgrade (lineguard "
                          "restore), or run the newer lineguard on the upgraded database")
    return int(largest)


def _lock(db_file: Path) -> sqlite3.Connection:
    """A connection holding SQLite's exclusive lock on the station's database until it is
    closed. In exclusive locking mode the lock is refused while any other connection has the
    database open (a WAL reader holds its shared lock as long as it is open), so a station
    running (serve, watch/camera --data, a backup in progress) is seen even when idle.
    Refused: :class:`UndoRefused`."""
    stop = ("stop every process on this station first (serve, and watch/camera with --data; a `lineguard "
            "backup` of it), then run this again")
    con = sqlite3.connect(db_file, timeout=LOCK_WAIT_S, isolation_level=None)
    try:
        con.execute("PRAGMA locking_mode=EXCLUSIVE")
        con.execute("BEGIN EXCLUSIVE")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        con.close()
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (5, 6):      # busy, locked
            raise UndoRefused(f"{db_file} is in use by another process (its lock was not free within "
                              f"{LOCK_WAIT_S:g} s): {stop}; nothing was moved") from exc
        raise UndoRefused(f"{db_file} cannot be opened ({exc}); nothing was moved. Go back by hand: {stop}, move "
                          f"{db_file.name} with its {db_file.name}-wal and {db_file.name}-shm into another folder "
                          "together, and copy the copy in its place") from exc
    return con


def _alive_run(con: sqlite3.Connection) -> Optional[str]:
    """A station run (line.handover) with a sign of life in the last 30 s and no clean
    stop: a station on another PC, whose lock a network share may not pass on."""
    try:
        row = con.execute("SELECT process, seen_at FROM station_runs WHERE stopped_at IS NULL "
                          "ORDER BY seen_at DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:    # no such table: a schema before 0033, or another's
        return None
    if row is None or row[1] is None:
        return None
    try:
        seen = dt.datetime.fromisoformat(str(row[1]))
    except ValueError:
        return None
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return row[0] if now - seen < _ALIVE else None


def _aside_folder(db_file: Path, revision: Optional[str]) -> Path:
    """A new folder beside the database for the upgraded one: upgraded-<revision>-<time>."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"upgraded-{revision or 'unknown'}-{stamp}"
    for n in range(1, 100):
        folder = db_file.parent / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir(mode=0o700)       # its owner's alone: the database holds password hashes
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(db_file.parent / base)


def _move_back(moved: list[str], aside: Path, db_file: Path) -> None:
    """The moved files back where they were (the station's database whole, as it was), and
    the folder made for them removed once empty."""
    for name in reversed(moved):
        try:
            os.rename(aside / name, db_file.with_name(name))
        except OSError:
            pass
    try:
        aside.rmdir()
    except OSError:
        pass        # not empty: what could not go back stays there, whole


def _place(tmp: Path, db_file: Path) -> None:
    """``tmp`` linked to ``db_file`` only where nothing is there (a station started in the
    moment since would have made a new database there: left to it, not replaced)."""
    try:
        os.link(tmp, db_file)
    except FileExistsError:
        raise
    except OSError:     # a file system without links (some shares): checked, then renamed
        if db_file.exists():
            raise FileExistsError(db_file)
        os.replace(tmp, db_file)
        return
    tmp.unlink()


def undo_upgrade(db_file: Path) -> UndoReport:
    """Put the copy taken before the upgrade in place of the SQLite database ``db_file``,
    the upgraded database moved aside whole (see the module's text). :class:`UndoRefused`
    with nothing moved; ``OSError`` where the disk stopped it (what was moved is moved back);
    :class:`UndoStopped` where a new database appeared in its place meanwhile."""
    db_file = Path(db_file)
    copy = find_copy(db_file)
    if copy is None:
        raise UndoRefused(f"no copy from before an upgrade beside {db_file} ({db_file.name}{BEFORE}<revision>): "
                          "a lineguard upgrade makes it when it migrates a SQLite database (none with "
                          "LINEGUARD_UPGRADE_WITHOUT_COPY=1). Go back with a `lineguard backup` taken before the "
                          "upgrade (lineguard restore), or run the newer lineguard")
    revision = copy.name[len(db_file.name + BEFORE):]
    if not db_file.is_file():
        raise UndoRefused(f"no database at {db_file} to move aside: if you moved it yourself (with its "
                          f"{db_file.name}-wal and {db_file.name}-shm), copy the copy in its place: cp {copy} "
                          f"{db_file}")
    tmp = db_file.with_name(f".{db_file.name}.undo-upgrade.{os.getpid()}.tmp")
    # a station starting now migrates under this lock (line.db, Database.upgrade): not while we move
    upgrade_lock = hold_lock(db_file.with_name(f".{db_file.name}.upgrade-lock"), wait=False)
    if upgrade_lock is None:
        raise UndoRefused(f"a station is starting on {db_file} (upgrading it): stop it, then run this again; "
                          "nothing was moved")
    try:
        largest = _checked_copy(copy, revision, tmp)
        con = _lock(db_file)
        moved: list[str] = []
        try:
            found = sqlite_revision(con)
            if found == revision:
                discard_database_file(tmp)
                return UndoReport(copy, revision, db_file.parent, upgraded_revision=found, nothing_to_do=True)
            process = _alive_run(con)
            if process is not None:
                raise UndoRefused(f"{process} gave a sign of life in the last {_ALIVE.seconds} s on {db_file}: "
                                  f"stop it (a station stopped by a crash: wait {_ALIVE.seconds} s), then run this "
                                  "again; nothing was moved")
            try:
                since = con.execute("SELECT count(*) FROM inspections WHERE id > ?", (largest,)).fetchone()[0]
            except sqlite3.OperationalError:
                since = 0
            con.execute("ROLLBACK")     # the lock stays: exclusive locking mode keeps it until close
            # moved while the lock is held: its files keep the connection's handles, and nothing
            # else opens them meanwhile. Renames in one folder's disk: nothing copied, nothing lost
            aside = _aside_folder(db_file, found)
            try:
                for end in _PARTS:
                    part = db_file.with_name(db_file.name + end)
                    if part.exists():
                        os.rename(part, aside / part.name)
                        moved.append(part.name)
                fsync_dir(aside)
            except OSError:
                # closed first, while what was moved is away: SQLite writes nothing to a database
                # file moved since it was opened (no checkpoint at close), so it goes back as it was
                con.close()
                _move_back(moved, aside, db_file)
                raise
        finally:
            # the last connection's close folds a write-ahead log into its database; the moved
            # one's is left as it is (SQLite's "database moved" refusal), to be read there whole
            con.close()
        try:
            _place(tmp, db_file)
        except FileExistsError:
            raise UndoStopped(f"a new database appeared at {db_file} while the upgraded one was moved aside (a "
                              f"station started meanwhile?): stop it; the upgraded database is whole in {aside}, "
                              f"and the copy was not put in place (cp {copy} {db_file} once that one is moved "
                              "away)")
        except OSError:
            _move_back(moved, aside, db_file)
            raise
        fsync_dir(db_file.parent)
        return UndoReport(copy, revision, aside, moved, found, int(since))
    except BaseException:
        discard_database_file(tmp)       # the checked copy not put in place: nothing of it left behind
        raise
    finally:
        os.close(upgrade_lock)


def next_step(report: UndoReport, data_hint: str) -> str:
    """What to start next: the lineguard that runs at the copy's schema. This one, if it
    does; else the older version, installed first (this one's serve would upgrade it again)."""
    head = schema_revisions()[0]
    if report.copy_revision == head:
        return f"start the station: lineguard serve {data_hint}"
    return (f"install the lineguard version the station ran before the upgrade (schema {report.copy_revision}) "
            f"and start it there: lineguard serve {data_hint}. This lineguard (schema {head}) would upgrade it "
            "again at serve's start")
