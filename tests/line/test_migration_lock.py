"""Stations on other schemas of one PostgreSQL database migrate side by side; two processes
on the same schema still take turns (one creates the tables, the other finds them made)."""
from __future__ import annotations

import threading
import uuid

import pytest

from conftest import PG_URL, pg_reachable


def _upgrade_in_thread(schema: str) -> tuple[threading.Thread, list]:
    from lineguard.line.db import Database
    done: list = []

    def run():
        db = Database(PG_URL, schema=schema)
        try:
            db.upgrade()
            done.append(db.revision())
        finally:
            db.dispose()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, done


@pytest.fixture
def schemas():
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    names = [f"lg_test_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    yield names
    from lineguard.line.db import Database
    for name in names:
        db = Database(PG_URL, schema=name)
        db.drop_schema()
        db.dispose()


def _hold_migration_lock(schema: str):
    """A connection holding ``schema``'s migration lock as a station halfway through its
    migration holds it (the caller rolls back to let go)."""
    from sqlalchemy import create_engine

    from lineguard.line.db import hold_migration_lock
    conn = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://")).connect()
    conn.begin()
    hold_migration_lock(conn, schema)
    return conn


def test_a_station_on_another_schema_migrates_while_one_is_migrating(schemas):
    busy, other = schemas
    from lineguard.line.db import schema_revisions
    held = _hold_migration_lock(busy)
    try:
        t, done = _upgrade_in_thread(other)
        t.join(60)
        # under one key for the whole database it waited here for the other schema's migration
        assert done == [schema_revisions()[0]], "the other schema's migration waited for this one"
    finally:
        held.rollback()
        held.close()
        held.engine.dispose()


def test_two_starts_on_one_schema_take_turns(schemas):
    schema = schemas[0]
    from lineguard.line.db import schema_revisions
    held = _hold_migration_lock(schema)
    try:
        t, done = _upgrade_in_thread(schema)
        t.join(2)
        assert t.is_alive() and done == [], "a second start migrated the schema while the first held it"
    finally:
        held.rollback()
        held.close()
        held.engine.dispose()
    t.join(60)
    assert done == [schema_revisions()[0]]
