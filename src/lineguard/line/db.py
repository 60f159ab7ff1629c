"""Database connection of a station: SQLite (WAL) by default, PostgreSQL by URL.

The schema is owned by Alembic; :meth:`Database.upgrade` brings any database (new or
from an older lineguard) to the current tables and runs at every start-up. A SQLite
database from an older lineguard is copied beside itself first
(``lineguard.db.before-<revision>``): the older version cannot run on the upgraded one,
and that copy is what a plant rolls back to. A database a newer lineguard upgraded is
refused (:class:`SchemaTooNew`), never half-read.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import InternalError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..vision.atomic import hold_lock
from .errors import StationError
from .schema_names import check_schema_name

log = logging.getLogger("lineguard.station")

_MIGRATIONS = Path(__file__).with_name("migrations")
# The errors a database's refusal comes as (and, with them, some of lineguard's own
# mistakes: a missing column is an OperationalError too; see is_refusal).
DB_ERRORS = (OperationalError, InternalError)
# SQLite's primary result codes for a database that cannot take a request now: busy or
# locked past the wait, read-only, I/O error, full, cannot open the file
_SQLITE_REFUSALS = frozenset({5, 6, 8, 10, 13, 14})
# PostgreSQL's SQLSTATE classes for the same: connection lost, insufficient resources
# (disk full, out of memory, too many connections), operator intervention (shut down,
# starting up, statement timeout); and codes: a read-only transaction (a standby after
# a failover), serialization failure, deadlock, lock not available, I/O error
_PG_REFUSAL_CLASSES = frozenset({"08", "53", "57"})
_PG_REFUSALS = frozenset({"25006", "40001", "40P01", "55P03", "58030"})


def is_refusal(exc: BaseException) -> bool:
    """Whether the database could not take the request now (unreachable, locked, full,
    read-only): not a fault of the request, which may be sent again, nor a bug in the
    station (a missing column, a syntax error), which may not hide as one."""
    if not isinstance(exc, DB_ERRORS):
        return False
    if getattr(exc, "connection_invalidated", False):
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_REFUSALS
    state = getattr(orig, "sqlstate", None)
    if state is None:      # psycopg's own: no server answered (connection failed or lost)
        return isinstance(exc, OperationalError) and type(orig).__module__.startswith("psycopg")
    return state[:2] in _PG_REFUSAL_CLASSES or state in _PG_REFUSALS


# PostgreSQL's codes for a server that is not taking connections: shut down by an
# administrator or a crash, starting up, or the database closed to connections
_PG_AWAY = frozenset({"57P01", "57P02", "57P03", "55000"})


def is_unreachable(exc: BaseException) -> bool:
    """Whether a refusal (is_refusal) is the database server not answering at all (down,
    restarting, the network): said so, not as a database that "cannot be written", which
    sent an operator to check the disk of a server that was simply down."""
    if not isinstance(exc, DB_ERRORS):
        return False
    if getattr(exc, "connection_invalidated", False):
        return True
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlite_errorcode", None) is not None:
        return False        # a file on this PC's disk: it answers, or cannot be written
    state = getattr(orig, "sqlstate", None)
    if state is None:
        return isinstance(exc, OperationalError) and type(orig).__module__.startswith("psycopg")
    return state[:2] == "08" or state in _PG_AWAY


# Of those, the ones that say only "busy now": another writer held a lock past the wait
# (SQLite BUSY/LOCKED; PostgreSQL lock not available, a statement timeout, a serialization
# failure or deadlock). Not proof the database would refuse a part, which waits longer.
_SQLITE_BUSY = frozenset({5, 6})
_PG_BUSY = frozenset({"55P03", "57014", "40001", "40P01"})


def is_busy(exc: BaseException) -> bool:
    """Whether a refusal (is_refusal) only says another writer was in the way."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_BUSY
    return getattr(orig, "sqlstate", None) in _PG_BUSY


# -- a database server not up yet (a station PC switched on before the database's) ------
# libpq hands back a connection the server refused as text, without its SQLSTATE (psycopg's
# error has none): the server's own answer is "SEVERITY:  message" after "failed: ", libpq's
# (refused, closed, timed out, no route) has no such part. Of the server's answers, these
# pass by themselves: starting up, recovering, shutting down for a restart, every
# connection slot taken. Its English text only: a server set to another language is not
# recognised, and its answer ends serve at once, as any other refusal (a wrong password, a
# database or role that does not exist, pg_hba), which no waiting mends.
_SERVER_SAID = re.compile(r"failed: [^\s:]+:  ")
_NOT_UP_YET = ("the database system is starting up", "the database system is not yet accepting connections",
               "the database system is in recovery mode", "the database system is shutting down",
               "too many clients already", "remaining connection slots are reserved")
# libpq's own words for what no waiting mends either: a password it was not given, TLS the
# server or the certificate will not do
_CLIENT_REFUSALS = ("password", "certificate", "does not support SSL", "SSL was required")


def not_up_yet(exc: Optional[BaseException]) -> Optional[str]:
    """Why a database server did not take a new connection, in a few words (its host and
    port, never the password), where that may pass by itself: nothing listening yet, the
    connection closed or timed out, the host not found yet, the server starting up. None
    for anything else: a refusal no waiting mends, or not a failed connection at all."""
    if not isinstance(exc, OperationalError):
        return None
    orig = exc.orig
    if not type(orig).__module__.startswith("psycopg") or getattr(orig, "sqlstate", None) is not None:
        return None
    if getattr(getattr(orig, "pgconn", None), "needs_password", False):
        return None
    said = str(orig).strip()
    server = _SERVER_SAID.search(said)
    if server is not None:
        answer = said[server.end():].split("\n")[0].strip()
        return answer if any(phrase in answer for phrase in _NOT_UP_YET) else None
    if any(word in said for word in _CLIENT_REFUSALS):
        return None
    # the last address tried, its reason: "connection to server at "10.0.0.5", port 5432
    # failed: Connection refused", the hint libpq adds on the next lines left out
    reason = said.rsplit("failed: ", 1)[-1].split("\n")[0].strip() if "failed: " in said else said.split("\n")[0]
    return reason or type(orig).__name__


def knock(url: str, timeout_s: float = 10.0) -> Optional[BaseException]:
    """Try one connection to the database at ``url``: None when the server took it, else
    the error (see :func:`not_up_yet`). At most ``timeout_s`` (libpq counts whole seconds,
    2 at least): a server that takes the connection and never answers held a connection
    130 s before (psycopg's default), and a station waiting at start-up must try again."""
    from sqlalchemy.pool import NullPool
    engine = create_engine(_normalise_url(url), poolclass=NullPool,
                           connect_args={"connect_timeout": max(2, int(timeout_s))})
    try:
        with engine.connect():
            return None
    except DB_ERRORS as exc:
        return exc
    finally:
        engine.dispose()


def discard_database_file(path: Path) -> None:
    """A SQLite file that is not to be kept (a half-made copy) removed with its journal
    files, as far as the disk lets it: what cannot be removed is left, never raised."""
    for left in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))):
        try:
            left.unlink(missing_ok=True)
        except OSError:
            pass


def station_schemas(engine: Engine) -> list[str]:
    """The schemas of a PostgreSQL database that hold a station (its inspections and the
    revision Alembic keeps), in name order; read only, whatever the engine's search_path.
    A mistyped --db-schema is a new, empty schema: serve and rescore name these to say
    which one was meant."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name IN ('inspections', "
            "'alembic_version') GROUP BY table_schema HAVING count(DISTINCT table_name) = 2 ORDER BY table_schema"))]


def schemas_shown(names: list[str], most: int = 8) -> str:
    """Schema names for one line: the first ``most``, then how many more."""
    from .close_names import listed
    return listed(names, most)


def typo_of(name: str, others: list[str]) -> Optional[str]:
    """The one of ``others`` that ``name`` is a keying slip of (close_names.keying_slip: a
    letter typed twice or two neighbours swapped: hd_aa or h_da for hd_a); None if none is.
    A sibling's name is not one (hd_b, line2, line12 beside hd_a, line1, line21)."""
    from .close_names import keying_slip      # the product names' rule, on names as typed
    return next((o for o in others if o != name and keying_slip(name, o)), None)


def server_address(url: str) -> str:
    """Where a database server is, for a line in the log: host:port and the database's
    name, no user or password."""
    u = make_url(_normalise_url(url))
    return f"{u.host or 'localhost'}:{u.port or 5432}" + (f" (database {u.database})" if u.database else "")


# PostgreSQL advisory lock keys, one per kind of change held across processes (the outbox
# holds each line's under a two-part key, line.outbox.lock_line: a key space of its own)
LOCK_MIGRATIONS, LOCK_SIGN_INS, LOCK_ALARM_CAUSES = 74110, 74111, 74112
# activations and rollbacks of one product take turns: this key shifted 32 bits up, the
# product's crc32 below (line.registry), so no product's key meets the ones above
LOCK_MODEL_CHANGES = 74113
# two stations claiming one database for their data folders at the same moment (line.data_folders)
LOCK_DATA_FOLDERS = 74114
# saves of one product's defect types with the list the sender read (line.station), shifted
# and keyed by product as LOCK_MODEL_CHANGES is
LOCK_DEFECT_TYPES = 74115
# reports issued (line.issued_reports): a window's revision is counted from the rows, so two
# issued at the same instant each counted only its own and both were kept as revision 1
LOCK_ISSUED_REPORTS = 74116


def refusal_reason(exc: BaseException) -> str:
    """The database's reason in a few words, for an operator: SQLite's own sentence
    ("database or disk is full"), PostgreSQL's error class ("DiskFull",
    "ReadOnlySqlTransaction"): its messages name the server's host and port."""
    orig = getattr(exc, "orig", None) or exc
    if type(orig).__module__.startswith("sqlite3"):
        return str(orig).split("\n")[0]
    return type(orig).__name__


def fault_line(exc: BaseException) -> str:
    """An error in one line for the log: a database that could not take a request
    (is_refusal: unreachable, locked, full, read-only) with its own reason ("the
    database cannot be reached: Connection refused"), else the error's kind and first
    words. An outage of a few seconds logged a 50-line traceback of SQLAlchemy and psycopg
    for each of the alarm look, the map links and the station's stop."""
    if not is_refusal(exc):
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    why = not_up_yet(exc) or refusal_reason(exc)
    return f"the database cannot be reached: {why}" if is_unreachable(exc) else f"the database refused: {why}"



class SchemaTooNew(StationError):
    """The database was upgraded by a newer lineguard: this version does not know its tables."""
    http_status = 503
    code = "schema_too_new"


# set to 1 to upgrade a SQLite database without its safety copy (a disk with no room for one)
UPGRADE_WITHOUT_COPY = "LINEGUARD_UPGRADE_WITHOUT_COPY"
BEFORE = ".before-"        # lineguard.db.before-<revision>: the database as the older version left it


def _script_dir():
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


_known: Optional[tuple[str, frozenset]] = None


def schema_revisions() -> tuple[str, frozenset]:
    """(the newest schema revision this lineguard knows, every revision it knows)."""
    global _known
    if _known is None:
        script = _script_dir()
        _known = (script.get_current_head(), frozenset(r.revision for r in script.walk_revisions()))
    return _known


_ROLL_BACK = (f"run that version, or restore the backup taken before the upgrade (lineguard.db{BEFORE}... beside "
              "the database, or your backup folder)")


def newer_schema_message(found: str, what_to_do: str = _ROLL_BACK) -> str:
    head = schema_revisions()[0]
    return (f"this database was upgraded by a newer lineguard (schema {found}; this version knows up to {head}): "
            + what_to_do)


def not_current_message(found: Optional[str]) -> str:
    """What a command that never migrates (the access commands, those that read a
    station, rescore) says of a database at another schema than this lineguard's."""
    return (f"database at schema {found or '(none)'}, this lineguard at {schema_revisions()[0]}: start "
            "`lineguard serve` on it to upgrade it (it keeps a copy of a SQLite database from before), or run the "
            "version that wrote it")


def check_schema_known(found: Optional[str], what_to_do: str = _ROLL_BACK) -> None:
    """Refuse (:class:`SchemaTooNew`) a schema revision a newer lineguard wrote: Alembic
    would fail on it with a long traceback ("Can't locate revision identified by ...")."""
    if found is not None and found not in schema_revisions()[1]:
        raise SchemaTooNew(newer_schema_message(found, what_to_do), schema=found, knows=schema_revisions()[0])


def sqlite_revision(db: sqlite3.Connection) -> Optional[str]:
    """The schema revision of a SQLite file opened with sqlite3 (a backup's); None if it has none."""
    try:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:      # no such table: a database no lineguard made
        return None
    return None if row is None else row[0]


def hold_migration_lock(conn: Any, schema: Optional[str]) -> None:
    """Hold ``schema``'s migration lock (PostgreSQL) to the end of ``conn``'s transaction.
    The key is the schema's own (two-part, as the outbox's lines): stations on other schemas
    of the database migrate side by side. Under one key for the whole database, every station
    of a plant restarting after an upgrade waited for every other's migration in turn."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:schema))"),
                 {"k": LOCK_MIGRATIONS, "schema": schema or "public"})


def _normalise_url(url: str) -> str:
    # "postgresql://" means psycopg 3 here (the only PostgreSQL driver we install).
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


# What a station's database URL can be: SQLite (the file in --data, or sqlite:////path) or
# PostgreSQL (psycopg, installed with the server). Read here, before a station is made: a
# port that is not a number ended serve in a traceback, libpq's key=value words ended it
# naming SQLAlchemy's parser with the password in clear, and a mysql:// URL was refused
# only after the station's folder was made.
_BACKENDS = ("postgresql", "sqlite")
# libpq's key=value connection words, one pair (a value quoted, or up to the next space)
_LIBPQ_WORD = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)\s*")


def _libpq_words(text: str) -> Optional[dict[str, str]]:
    """``text`` read as libpq's ``host=db user=line dbname=plant`` words; None where it is not
    only such words."""
    words: dict[str, str] = {}
    at = 0
    while at < len(text):
        pair = _LIBPQ_WORD.match(text, at)
        if pair is None or pair.end() == at:
            return None
        value = pair.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        words[pair.group(1).lower()] = value
        at = pair.end()
    return words or None


def database_url_problem(url: str, given_as: str = "--db") -> Optional[str]:
    """Why ``url`` (given as ``given_as``: --db, LINEGUARD_DB) cannot be a station's
    database, in one sentence that says what to give and shows it without its password;
    None where its form is one (whether the server answers is the opening's to say)."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from .config import without_password
    example = "postgresql://user@host:5432/db"
    words = None if "://" in url else _libpq_words(url)
    if words is not None:
        shown = " ".join(f"{k}={'***' if k == 'password' else v}" for k, v in words.items())
        user = words.get("user", "user") + (":***" if "password" in words else "")
        host = words.get("host", "localhost")
        host = f"[{host}]" if ":" in host else host
        as_url = f"postgresql://{user}@{host}:{words.get('port', '5432')}/{words.get('dbname', 'db')}"
        return (f"{given_as} takes a URL ({example}), not libpq's key=value words: for `{shown}` give "
                f"{as_url}" + (" (the password as the README says for a URL: in LINEGUARD_DB in a file only the "
                               "station's account reads, or in PGPASSFILE)" if "password" in words else ""))
    try:
        parsed = make_url(_normalise_url(url))
    except ArgumentError:      # the text itself not shown: it may hold a password in a form not recognised
        return (f"{given_as} is not a database URL: write it like {example}, or sqlite:////path/to/lineguard.db")
    except ValueError:         # the port: "db:notaport", or an IPv6 address without its "]"
        shown = without_password(url)       # read off the shown text: never a piece of the password
        where = re.sub(r"^[^@/]*@", "", shown.split("://", 1)[-1]).split("/", 1)[0]
        return (f"{given_as} {shown}: its host and port ({where}) cannot be read: write "
                f"{example}, the port a number (an IPv6 address in brackets: [::1]:5432)")
    shown = without_password(url)
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return f"{given_as} {shown}: port {parsed.port} is not a TCP port (1..65535): PostgreSQL's is 5432"
    if parsed.get_backend_name() not in _BACKENDS:
        return (f"{given_as} {shown}: a station keeps its records in PostgreSQL ({example}) or SQLite (leave "
                f"{given_as} out: lineguard.db in --data), not {parsed.get_backend_name()}")
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        return (f"{given_as} {shown}: its driver {parsed.get_driver_name()} is not installed here: write "
                f"{parsed.get_backend_name()}://... with no driver named (PostgreSQL's is psycopg, installed with "
                "lineguard's server)")
    return None


@contextmanager
def _committing(s: Session) -> Iterator[Session]:
    """``s``, committed on success, rolled back on any error, closed."""
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


# A PostgreSQL server that takes a connection and then says nothing (its PC hung, a cable
# pulled, a firewall dropping packets) held a new connection 130 s (psycopg's default
# connect_timeout), and a query on an open one for TCP's retransmissions (15 min), while
# the parts behind it waited. Bounded, unless the database URL sets its own
# (?connect_timeout=30, say):
PG_LINK = {"connect_timeout": 10,               # s for the server's answer to a new connection
           # an idle pooled connection to a server gone is found in 60 s, not at its next use
           "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
           # ms that data sent may go unacknowledged (a long query's wait for rows is not that)
           "tcp_user_timeout": 30_000}


# After a new connection to a server that takes it and says nothing timed out, the next ones
# are refused at once for SILENT_REST_S; then one is tried (the others still refused while it
# waits), and the first that connects lets every one through again. Without it each part
# waited connect_timeout for its own try: at 4 parts a second that is 40 waiting at once, every
# one of the API's 40 threads, and /health and the pages stop answering with them.
SILENT_REST_S = 10.0


class SilentServerGuard:
    """A PostgreSQL station's new connections while its server is silent (:data:`SILENT_REST_S`)."""

    def __init__(self, rest_s: float = SILENT_REST_S, clock: Callable[[], float] = time.monotonic):
        self.rest_s = rest_s
        self.clock = clock
        self._lock = threading.Lock()
        self._refuse_until: Optional[float] = None     # None: the server answered its last try
        self._trying = False
        self._said = ""

    @property
    def silent(self) -> bool:
        """Whether the last new connection timed out (none has connected since)."""
        return self._refuse_until is not None

    def connect(self, connect: Callable[[], Any]) -> Any:
        """``connect()``'s connection, unless the server was found silent: then at most one
        try each SILENT_REST_S, and psycopg's ConnectionTimeout at once for the rest."""
        trial = False
        with self._lock:
            if self._refuse_until is not None:
                if self._trying or self.clock() < self._refuse_until:
                    import psycopg
                    raise psycopg.errors.ConnectionTimeout(
                        f"{self._said} (not tried again: the server took no connection within the timeout; "
                        f"one new try each {self.rest_s:g} s)")
                self._trying = trial = True
        try:
            conn = connect()
        except Exception as exc:
            if type(exc).__name__ == "ConnectionTimeout" and type(exc).__module__.startswith("psycopg"):
                with self._lock:
                    self._refuse_until = self.clock() + self.rest_s
                    self._said = str(exc).split("\n")[0]
            raise
        finally:
            if trial:
                with self._lock:
                    self._trying = False
        with self._lock:
            self._refuse_until = None
        return conn


# How long a statement waits for another writer's lock before it is refused (a refusal, see
# is_refusal: 503 storage_unavailable): SQLite's busy_timeout, PostgreSQL's lock_timeout. On
# PostgreSQL nothing was set, and a table locked by a maintenance job (or a psql left open in a
# transaction) held parts, the parts list and /health with no limit. A lock wait alone: a long
# month report is never cut (no statement_timeout).
LOCK_WAIT_MS = 30_000


class Database:
    """Engine + session factory for one station database."""

    def __init__(self, url: str, schema: Optional[str] = None, sqlite_synchronous: str = "NORMAL"):
        self.url = _normalise_url(url)
        self.schema = schema
        check_schema_name(schema, None)     # the settings refuse it first, naming the option or variable
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict = {"future": True}
        # The pool (8 + 16 = 24) is left smaller than anyio's 40 threads that run the API's
        # sync endpoints, and neither is sized to the other: 60 clients at once on a cheap
        # GET (/api/v1/inspections, /api/v1/lines/summary; 10-15 s each, measured 2026-12-06)
        # got no 503 of about 16,000 requests on SQLite or PostgreSQL with 40 threads, 24,
        # or a pool of 40, and p95 moved within run-to-run noise (1.2-3.2 s on a loaded
        # 2-core PC). A thread past the 24th waits milliseconds for a connection another
        # request frees; a 503 busy needs connections held the pool's whole 30 s (long
        # reports and exports, which ReportSlots caps), and 24 threads would then only move
        # that wait to the thread queue, where the health check and sign-ins wait too.
        if self.is_sqlite:
            if self.sqlite_file is not None:
                self.sqlite_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)    # its owner's alone
            # One connection per thread; the pool hands them out to request threads.
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": LOCK_WAIT_MS / 1000}
            kwargs["pool_size"] = 8
            kwargs["max_overflow"] = 16
        else:
            kwargs["pool_size"] = 8
            kwargs["max_overflow"] = 16
            kwargs["pool_pre_ping"] = True
            given = make_url(self.url).query
            kwargs["connect_args"] = {k: v for k, v in PG_LINK.items() if k not in given}
            # the URL's own ?options= kept, ours after it (one set there too is overridden)
            options = [given["options"]] if isinstance(given.get("options"), str) else []
            if schema:
                options.append(f"-csearch_path={schema}")
            options.append(f"-clock_timeout={int(LOCK_WAIT_MS)}")
            kwargs["connect_args"]["options"] = " ".join(options)
        self.engine: Engine = create_engine(self.url, **kwargs)
        self.silent_server: Optional[SilentServerGuard] = None
        if not self.is_sqlite:
            guard = self.silent_server = SilentServerGuard()

            @event.listens_for(self.engine, "do_connect")
            def _guarded(dialect, _record, cargs, cparams):  # noqa: ANN001
                return guard.connect(lambda: dialect.connect(*cargs, **cparams))
        if self.is_sqlite:
            sync = sqlite_synchronous.upper()
            if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
                raise ValueError(f"sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, not {sync!r}")

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
                cur = dbapi_conn.cursor()
                # WAL: readers never block the writer, and a crash never corrupts the file.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_MS)}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def sqlite_file(self) -> Optional[Path]:
        """The database's file on SQLite (None: in memory, or PostgreSQL)."""
        if not self.is_sqlite:
            return None
        path = self.url.split("///", 1)[-1].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None

    def revision(self) -> Optional[str]:
        """The schema revision the database is at; None for a new one (no alembic_version).
        Only reads."""
        from alembic.runtime.migration import MigrationContext
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def check_schema(self) -> Optional[str]:
        """The database's revision, refused (:class:`SchemaTooNew`) if a newer lineguard wrote it."""
        found = self.revision()
        check_schema_known(found, self._rollback_hint())
        return found

    def _rollback_hint(self) -> str:
        path = self.sqlite_file
        copies = sorted(path.parent.glob(path.name + BEFORE + "*")) if path is not None else []
        if not copies:
            return _ROLL_BACK
        # the upgraded database's write-ahead log left by a crash (-wal, -shm) is replayed onto
        # a copy put in its place: the older version then found it "upgraded" again
        where = f"--data {path.parent}" if path.name == "lineguard.db" else f"--db sqlite:///{path}"
        return (f"run that version, or go back to the copy taken before the upgrade ({copies[-1]}): stop every "
                f"station on it and run `lineguard undo-upgrade {where}`, or by hand "
                f"move {path.name} with its {path.name}-wal and {path.name}-shm into another folder "
                f"together (the upgraded database, with the parts recorded since the upgrade), then copy the copy "
                f"in place of {path.name}; or restore your backup folder")

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the tables to the newest schema (Alembic ``upgrade head``);
        ``revision`` stops at an older one (tests of a migration). A database a newer
        lineguard upgraded is refused (:class:`SchemaTooNew`); a SQLite database from an
        older one is copied beside itself first (:meth:`_copy_before`)."""
        found = self.check_schema()
        head = schema_revisions()[0]
        target = head if revision == "head" else revision
        if self.sqlite_file is not None and found != target:
            # Two processes starting together on an older (or a new) SQLite database: one
            # copies and migrates, the other waits and finds it done. Side by side, the
            # second's copy was taken halfway through the first's migration (each DDL
            # commits on its own in SQLite) and replaced the good one, so the plant's way
            # back held half a migration; or the second failed on a duplicate column.
            fd = hold_lock(self.sqlite_file.with_name(f".{self.sqlite_file.name}.upgrade-lock"))
            try:
                found = self.check_schema()
                self._migrate(found, target, revision)
            finally:
                os.close(fd)
        else:
            self._migrate(found, target, revision)

    def _migrate(self, found: Optional[str], target: str, revision: str) -> None:
        from alembic import command
        from alembic.config import Config

        if found is not None and found != target and self.sqlite_file is not None:
            self._copy_before(found)
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Two processes starting at once must not both create the tables, nor the
                # schema: CREATE SCHEMA IF NOT EXISTS is not safe run side by side (one of
                # two stations started together failed on pg_namespace's unique index).
                # The other's migration waited for as long as it takes (an index built on a
                # year of parts), not LOCK_WAIT_MS, as SQLite's upgrade lock waits.
                conn.execute(text("SET LOCAL lock_timeout = 0"))
                hold_migration_lock(conn, self.schema)
                if self.schema:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        if found is not None and found != target:
            if self.is_sqlite:
                log.warning("database migrated from schema %s to %s", found, target)
            else:
                # no copy can be taken of a PostgreSQL database from here: the plant's pg_dump is
                # the way back, and it had to be taken before this start
                log.warning("database migrated from schema %s to %s; lineguard versions before this one cannot run "
                            "on it now: to go back, restore the pg_dump taken before the upgrade (pg_dump before "
                            "starting a newer lineguard on a PostgreSQL station)", found, target)

    def _copy_before(self, found: str) -> None:
        """Copy the SQLite database, before migrating it from revision ``found``, to
        ``lineguard.db.before-<found>`` beside it: the older lineguard cannot start on the
        migrated one ("Can't locate revision"), and this copy is what the plant rolls back
        to. SQLite's online backup: consistent while other processes read or write it.
        Written under a temp name and renamed; only the newest such copy is kept. No room
        for it: the upgrade is refused (LINEGUARD_UPGRADE_WITHOUT_COPY=1 goes on without)."""
        path = self.sqlite_file
        assert path is not None
        if os.environ.get(UPGRADE_WITHOUT_COPY, "").strip() not in ("", "0"):
            log.warning("database %s migrated from schema %s without a copy first (%s is set): the older lineguard "
                        "cannot run on it, and no copy is kept to go back to", path, found, UPGRADE_WITHOUT_COPY)
            return
        final = path.with_name(path.name + BEFORE + found)
        tmp = path.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            need = path.stat().st_size
            wal = path.with_name(path.name + "-wal")
            if wal.exists():
                need += wal.stat().st_size
            free = shutil.disk_usage(path.parent).free
            if free < need:
                raise OSError(28, f"{free / 1e6:.0f} MB free, the copy needs {need / 1e6:.0f} MB")
            src, out = sqlite3.connect(path, timeout=30), sqlite3.connect(tmp)
            try:
                src.backup(out)
                # the copy in one file: its own write-ahead log would not travel with it
                out.execute("PRAGMA journal_mode=DELETE")
            finally:
                src.close()
                out.close()
            shutil.copymode(path, tmp)      # the users' password hashes: as private as the database
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except (OSError, sqlite3.Error) as exc:
            discard_database_file(tmp)
            raise StationError(
                f"the database {path} is at schema {found} and this lineguard would upgrade it to "
                f"{schema_revisions()[0]}, but it could not be copied to {final.name} first ({exc}); nothing was "
                f"changed. Free room on that disk and start again, or set {UPGRADE_WITHOUT_COPY}=1 to upgrade "
                "without the copy (then the older version cannot be gone back to)") from exc
        for older in path.parent.glob(path.name + BEFORE + "*"):
            if older != final and not older.name.endswith(".tmp"):
                try:
                    older.unlink()
                except OSError as exc:
                    log.warning("an older copy %s could not be removed: %s", older, exc)
        log.warning("database %s is at schema %s, from an older lineguard: copied to %s before upgrading it to %s. "
                    "To go back to the older version, stop every station on it and run `lineguard undo-upgrade` "
                    "(or by hand: move %s with its -wal and -shm files into another folder together, as they keep "
                    "the parts recorded after the upgrade, then put that copy in place of it)",
                    path, found, final, schema_revisions()[0], path.name)

    def drop_schema(self) -> None:
        """Remove everything (tests): the PostgreSQL schema, or all tables on SQLite."""
        with self.engine.begin() as conn:
            if self.schema and not self.is_sqlite:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            else:
                from .orm import Base
                Base.metadata.drop_all(conn)
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with _committing(self._sessions()) as s:
            yield s

    @contextmanager
    def quick_session(self, wait_ms: int = 250) -> Iterator[Session]:
        """As :meth:`session`, its statements waiting at most ``wait_ms`` for another
        writer's lock (LOCK_WAIT_MS otherwise), then refused (a refusal, see is_refusal): for a
        write on a path that must not stall, with somewhere else to keep what it writes."""
        ms = int(wait_ms)
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={ms}")
                conn.commit()      # the session's own transaction follows, and its commit is a commit
            try:
                with _committing(Session(bind=conn, expire_on_commit=False)) as s:
                    if not self.is_sqlite:
                        s.execute(text(f"SET LOCAL lock_timeout = '{ms}ms'"))
                    yield s
            finally:
                if self.is_sqlite:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={int(LOCK_WAIT_MS)}")     # the pool's, as it was

    def hold(self, s: Session, pg_key: int, sqlite_table: str) -> None:
        """Hold, until ``s`` commits, the lock of one kind of change across processes:
        PostgreSQL's advisory lock ``pg_key``; on SQLite the write lock, taken by a write
        of nothing to ``sqlite_table`` (a read first would let another process write in
        between, then refuse this one's write)."""
        if self.is_sqlite:
            s.execute(text(f"DELETE FROM {sqlite_table} WHERE 0"))
        else:
            s.execute(text(f"SELECT pg_advisory_xact_lock({int(pg_key)})"))

    def new_session(self) -> Session:
        return self._sessions()

    def dispose(self) -> None:
        if self.is_sqlite:
            # the write-ahead log into the database file, and the log emptied: a station
            # stopped cleanly left its last minutes of parts in lineguard.db-wal only (42
            # parts after a SIGTERM), lost to a backup or copy of lineguard.db alone
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except Exception as exc:  # noqa: BLE001 - closing goes on; the log still holds the parts
                log.warning("the database's write-ahead log could not be folded in at close: %s", exc)
        self.engine.dispose()
