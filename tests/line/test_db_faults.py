"""A plant's PostgreSQL as the stations meet it: several started at the same moment on a
new schema, a server that does not answer, and what each is called."""
from __future__ import annotations

import threading
import uuid

import pytest

from conftest import PG_URL, pg_reachable


def test_stations_starting_together_on_a_new_schema_all_start():
    """One of four failed at start with "duplicate key value violates unique constraint
    pg_namespace_nspname_index", told to check --db."""
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    from lineguard.line.db import Database
    failures: list[str] = []
    for _ in range(3):                   # the race is narrow: a few rounds of eight
        schema = f"lg_test_race_{uuid.uuid4().hex[:8]}"
        dbs = [Database(PG_URL, schema=schema) for _ in range(8)]
        start = threading.Barrier(len(dbs))

        def upgrade(db):
            start.wait()
            try:
                db.upgrade()
            except Exception as exc:  # noqa: BLE001 - each failure is what the test reports
                failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

        threads = [threading.Thread(target=upgrade, args=(db,)) for db in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        try:
            assert not failures, failures
        finally:
            dbs[0].drop_schema()
            for db in dbs:
                db.dispose()


def _read_error(db) -> BaseException:
    """What one read of ``db`` raised (it must raise)."""
    from sqlalchemy import text
    with pytest.raises(Exception) as down:
        with db.session() as s:
            s.execute(text("SELECT 1"))
    return down.value


def _read_refused(url: str) -> BaseException:
    """What one read of the database at ``url`` raised (it must raise)."""
    from lineguard.line.db import Database
    db = Database(url)
    try:
        return _read_error(db)
    finally:
        db.dispose()


def test_a_database_server_that_does_not_answer_is_said_unreachable_not_unwritable():
    """A PostgreSQL outage answered parts "the database cannot be written ... check disk space
    and permissions": an operator checked the disk of a server that was simply down."""
    import socket

    from lineguard.line.db import is_refusal, is_unreachable
    from lineguard.line.station import Station
    with socket.socket() as s:             # a port nothing listens on: the server is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _read_refused(f"postgresql://postgres@127.0.0.1:{port}/test")
    assert is_refusal(down) and is_unreachable(down)
    said = Station._fault_message("database", down)
    assert said.startswith("the database is not reachable") and "database server is up" in said, said
    assert "disk space" not in said


class _SilentServer:
    """A port that takes connections and never says a word: a database server whose PC hung."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list = []
        threading.Thread(target=self._take, daemon=True).start()

    def _take(self):
        try:
            while True:
                self.held.append(self.sock.accept()[0])
        except OSError:
            pass            # closed: the test is over

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_a_database_server_that_takes_the_connection_and_says_nothing_is_given_up_on_in_seconds():
    """The first connection held the station 130 s (psycopg's default connect_timeout), and a
    part's record behind it; a URL's own connect_timeout still counts."""
    import time

    from lineguard.line.db import PG_LINK, is_refusal, is_unreachable
    silent = _SilentServer()
    try:
        for query, most_s in (("", PG_LINK["connect_timeout"] + 5), ("?connect_timeout=2", 2 + 3)):
            began = time.monotonic()
            down = _read_refused(f"postgresql://postgres@127.0.0.1:{silent.port}/test{query}")
            took = time.monotonic() - began
            assert took < most_s, (query, took)
            assert is_refusal(down) and is_unreachable(down), down
    finally:
        silent.close()


def test_a_full_or_read_only_sqlite_database_is_still_said_unwritable(tmp_path):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from lineguard.line.db import is_unreachable
    from lineguard.line.station import Station
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    exc = OperationalError("INSERT", {}, full)
    assert not is_unreachable(exc)
    assert Station._fault_message("database", exc).startswith("the database cannot be written (database or disk")


def test_a_silent_server_is_tried_once_each_rest_not_by_every_part():
    """Each part's record waited the connect timeout for a connection of its own to a silent
    server: at a few parts a second every API thread was held, /health's too. After one try
    timed out the others are refused at once, said as that timeout, until the next try."""
    from lineguard.line.db import SILENT_REST_S, Database, is_unreachable
    from lineguard.line.station import Station
    silent = _SilentServer()
    db = Database(f"postgresql://postgres@127.0.0.1:{silent.port}/test?connect_timeout=2")
    now = [0.0]
    db.silent_server.clock = lambda: now[0]
    try:
        first = _read_error(db)
        assert type(first.orig).__name__ == "ConnectionTimeout" and db.silent_server.silent
        tried = len(silent.held)
        assert tried >= 1
        for _ in range(5):      # the parts behind it: no connection of their own
            again = _read_error(db)
            assert is_unreachable(again) and type(again.orig).__name__ == "ConnectionTimeout", again
            assert "not tried again" in str(again.orig)
        assert len(silent.held) == tried
        assert Station._fault_message("database", again).startswith("the database is not reachable (ConnectionTimeout)")
        now[0] += SILENT_REST_S + 0.1           # the rest over: one new try
        _read_error(db)
        assert len(silent.held) > tried
    finally:
        db.dispose()
        silent.close()


def test_the_silent_server_guard_lets_one_try_through_and_opens_when_it_connects():
    import psycopg

    from lineguard.line.db import SilentServerGuard
    now, calls, got = [0.0], [], []
    guard = SilentServerGuard(rest_s=10, clock=lambda: now[0])

    def refused():
        raise psycopg.OperationalError("connection refused")

    def timed_out():
        raise psycopg.errors.ConnectionTimeout("connection timeout expired")
    with pytest.raises(psycopg.OperationalError):
        guard.connect(refused)          # refused at once: nothing to wait out, nothing held back
    assert not guard.silent and guard.connect(lambda: "c0") == "c0"
    with pytest.raises(psycopg.errors.ConnectionTimeout):
        guard.connect(timed_out)
    with pytest.raises(psycopg.errors.ConnectionTimeout, match="not tried again"):
        guard.connect(lambda: calls.append("early"))
    now[0] = 10.5
    trying, answer = threading.Event(), threading.Event()

    def slow():
        trying.set()
        assert answer.wait(10)
        return "c1"
    trial = threading.Thread(target=lambda: got.append(guard.connect(slow)))
    trial.start()
    assert trying.wait(10)
    with pytest.raises(psycopg.errors.ConnectionTimeout):      # one try at a time
        guard.connect(lambda: calls.append("beside the trial"))
    answer.set()
    trial.join(10)
    assert got == ["c1"] and not guard.silent and calls == []
    assert guard.connect(lambda: "c2") == "c2"
