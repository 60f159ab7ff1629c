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


def test_a_database_server_that_does_not_answer_is_said_unreachable_not_unwritable():
    """A PostgreSQL outage answered parts "the database cannot be written ... check disk space
    and permissions": an operator checked the disk of a server that was simply down."""
    import socket

    from sqlalchemy import text

    from lineguard.line.db import Database, is_refusal, is_unreachable
    from lineguard.line.station import Station
    with socket.socket() as s:             # a port nothing listens on: the server is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = Database(f"postgresql://postgres@127.0.0.1:{port}/test")
    try:
        with pytest.raises(Exception) as down:
            with db.session() as s:
                s.execute(text("SELECT 1"))
    finally:
        db.dispose()
    assert is_refusal(down.value) and is_unreachable(down.value)
    said = Station._fault_message("database", down.value)
    assert said.startswith("the database is not reachable") and "database server is up" in said, said
    assert "disk space" not in said


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
