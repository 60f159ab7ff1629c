"""PostgreSQL schemas for the tests' ``db_backend``, kept at the head revision and emptied
between tests instead of migrated anew for each one and dropped.

Migrating a new schema (35 migrations) took 0.3 s of a test's time on a quiet machine and
up to 1.5 s under the suite's load; the PostgreSQL twins' processes took 148 s of CPU that
way and 118 s with this (-k postgresql, 4 workers, 2026-12-06), and each run created and
dropped some 10,000 tables, which grew the server's catalog (pg_attribute: 185 MB after a
few runs). A schema a test leaves
is used again only when it is exactly as the migrations made it (the revision, every
table, column, default, index, constraint, trigger, function, view and grant, compared with
a schema this worker migrated for that purpose and no test touches); then its rows go and
its ids start from 1 again (the migrations insert no rows). Anything else, a migration
test's older revision, an index a test dropped, a lock a test's process still holds, and the
schema is dropped as before. A test marked ``new_schema`` gets one that does not exist yet (a
migration from an older revision, a command that must not create it);
LINEGUARD_TEST_MIGRATE_ALL=1 gives every test a new schema.
"""
from __future__ import annotations

import uuid
from typing import Optional

# one row per thing a schema holds, its name and how it is defined; the schema's own name,
# which appears in defaults and index definitions, is put back as the same placeholder
SHAPE_SQL = """
SELECT 'column', c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text
       || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = %(s)s AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'relation', c.relname, c.relkind::text || ' ' || coalesce(c.relacl::text, '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s
UNION ALL
SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s
UNION ALL
SELECT 'constraint', c.relname || '.' || co.conname, pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
  LEFT JOIN pg_class c ON c.oid = co.conrelid WHERE n.nspname = %(s)s
UNION ALL
SELECT 'trigger', c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(s)s AND NOT t.tgisinternal
UNION ALL
SELECT 'function', p.proname, coalesce(p.prosrc, '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s
UNION ALL
SELECT 'schema', nspname, coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = %(s)s
"""


def _shape(conn, schema: str) -> Optional[frozenset]:
    """What ``schema`` holds, without its name; None where it has no alembic revision."""
    rows = conn.execute(SHAPE_SQL, {"s": schema}).fetchall()
    try:
        revision = conn.execute(f'SELECT version_num FROM "{schema}".alembic_version').fetchall()
    except Exception:  # noqa: BLE001 - no such table (or schema): not a station schema now
        conn.rollback()
        return None
    return frozenset((kind, name.replace(schema, "{schema}"), definition.replace(schema, "{schema}"))
                     for kind, name, definition in rows) \
        | {("revision", "", ",".join(sorted(r[0] for r in revision)))}


def _emptying(conn, schema: str) -> str:
    """SQL that deletes every row of ``schema`` (but its revision) and numbers its ids from 1
    again. DELETE, not TRUNCATE: a test's few rows go in a millisecond, where TRUNCATE gave
    every table and index a new file (0.1 s, and the catalog churn this module avoids); the
    foreign keys' checks are off meanwhile (replica role), so the order does not matter."""
    tables = [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> 'alembic_version'", (schema,))]
    sequences = [r[0] for r in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = %s", (schema,))]
    return ("SET session_replication_role = replica; "
            + " ".join(f'DELETE FROM "{schema}"."{t}";' for t in tables)
            + " ".join(f"""SELECT setval('"{schema}"."{q}"', 1, false);""" for q in sequences)
            + " SET session_replication_role = DEFAULT;")


class SchemaPool:
    """This worker's emptied head-revision schemas (see the module's docstring)."""

    def __init__(self, url: str, reuse: bool = True):
        self.url = url
        self.reuse = reuse
        self.free: list[str] = []
        self.reference: Optional[str] = None
        self.reference_shape: Optional[frozenset] = None

    def take(self, new: bool = False) -> str:
        """A schema name for a test: an emptied one at the head revision, or (``new``, or
        none kept) the name of a schema that does not exist yet."""
        if self.free and not new:
            return self.free.pop()
        return f"lg_test_{uuid.uuid4().hex[:10]}"

    def _reference_shape(self) -> frozenset:
        if self.reference_shape is None:
            from lineguard.line.db import Database
            self.reference = f"lg_test_ref_{uuid.uuid4().hex[:8]}"
            db = Database(self.url, schema=self.reference)
            try:
                db.upgrade()
            finally:
                db.dispose()
            import psycopg
            with psycopg.connect(self.url, autocommit=True) as conn:
                self.reference_shape = _shape(conn, self.reference)
        assert self.reference_shape is not None
        return self.reference_shape

    def give_back(self, schema: str) -> None:
        """Empty ``schema`` for the next test where it is as the migrations made it; else drop it."""
        import psycopg
        kept = False
        if self.reuse:
            try:
                reference = self._reference_shape()
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    # a process of the test still holding a table: dropped below, not waited for here
                    conn.execute("SET lock_timeout = '2s'")
                    if _shape(conn, schema) == reference:
                        conn.execute(_emptying(conn, schema))
                        kept = True
            except Exception:  # noqa: BLE001 - not kept: dropped below as before
                kept = False
        if kept:
            self.free.append(schema)
        else:
            self.drop(schema)

    def drop(self, schema: str) -> None:
        from lineguard.line.db import Database
        db = Database(self.url, schema=schema)
        try:
            db.drop_schema()
        finally:
            db.dispose()

    def close(self) -> None:
        """At the worker's end: every schema it kept, and its reference, dropped."""
        for schema in self.free + ([self.reference] if self.reference else []):
            try:
                self.drop(schema)
            except Exception:  # noqa: BLE001 - the server gone: nothing left to tidy
                pass
