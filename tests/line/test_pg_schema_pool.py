"""The tests' PostgreSQL schemas used again (tests/pg_schemas.py): a test gets one emptied at
the head revision, never one with an earlier test's rows or an earlier test's changes to it."""
from __future__ import annotations

import psycopg
import pytest

from pg_schemas import SchemaPool
from lineguard.line.db import Database, schema_revisions

from conftest import PG_URL, pg_reachable

pytestmark = pytest.mark.skipif(not pg_reachable(), reason="PostgreSQL is not reachable at 127.0.0.1:5432")


@pytest.fixture
def pool():
    p = SchemaPool(PG_URL)      # used again whatever LINEGUARD_TEST_MIGRATE_ALL says: the pool's own test
    yield p
    p.close()


def _migrated(schema: str) -> None:
    db = Database(PG_URL, schema=schema)
    try:
        db.upgrade()
    finally:
        db.dispose()


def _exists(schema: str) -> bool:
    with psycopg.connect(PG_URL) as conn:
        return conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()[0] == 1


def test_a_schema_used_again_is_at_head_with_no_rows_and_ids_from_1(pool):
    schema = pool.take()
    _migrated(schema)
    add = (f'INSERT INTO "{schema}".change_log (at, action, subject, details) '
           "VALUES (now(), 'key.created', 'key 1', '{}') RETURNING id")
    with psycopg.connect(PG_URL) as conn:
        assert [conn.execute(add).fetchone()[0] for _ in range(3)] == [1, 2, 3]
    pool.give_back(schema)
    assert pool.take(new=True) != schema              # a test that needs a schema not made yet
    assert pool.take() == schema
    with psycopg.connect(PG_URL) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        assert len(tables) > 20
        rows = {t: conn.execute(f'SELECT count(*) FROM "{schema}"."{t}"').fetchone()[0] for t in tables}
        assert {t: n for t, n in rows.items() if n} == {"alembic_version": 1}
        assert conn.execute(f'SELECT version_num FROM "{schema}".alembic_version').fetchone()[0] == schema_revisions()[0]
        assert conn.execute(add).fetchone()[0] == 1         # numbered afresh, as in a new schema
    pool.give_back(schema)                                  # as db_backend does: the pool drops it at its end


def test_a_schema_a_test_changed_or_took_back_a_revision_is_dropped_not_used_again(pool):
    changed, older = pool.take(), pool.take()
    _migrated(changed)
    with psycopg.connect(PG_URL) as conn:
        index = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'inspections' "
                             "AND indexname LIKE 'ix_%%' LIMIT 1", (changed,)).fetchone()[0]
        conn.execute(f'DROP INDEX "{changed}"."{index}"')
    db = Database(PG_URL, schema=older)
    try:
        db.upgrade("0020")
    finally:
        db.dispose()
    pool.give_back(changed)
    pool.give_back(older)
    assert pool.free == []
    assert not _exists(changed) and not _exists(older)
    assert pool.take() not in (changed, older)
