"""Stations started at the same moment on a new PostgreSQL schema (--db-schema): one of
four failed at start with "duplicate key value violates unique constraint
pg_namespace_nspname_index", told to check --db."""
from __future__ import annotations

import threading
import uuid

import pytest

from conftest import PG_URL, pg_reachable


def test_stations_starting_together_on_a_new_schema_all_start():
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
