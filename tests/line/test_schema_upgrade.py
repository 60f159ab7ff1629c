"""A database's schema is migrated only by `serve`, with a copy kept to go back to; a
database a newer lineguard upgraded is refused in one line, never with Alembic's traceback.

A `keys list` run from another PC with --db migrated a plant's database under its running
stations (the older ones then could not start: "Can't locate revision identified by
'0024'"), and nothing was kept to go back to.
"""
from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.config import StationConfig
from lineguard.line.db import Database, schema_revisions
from lineguard.line.errors import StationError
from lineguard.line.station import Station

from conftest import PG_URL, pg_reachable

HEAD = schema_revisions()[0]      # this lineguard's schema
OLD = "0020"          # a station database from an older lineguard
FUTURE = "0025_future"


def _revision(path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        db.close()


def _old_station(folder, revision=OLD):
    """A station folder whose database an older lineguard wrote (with one user, to read back)."""
    db = Database(f"sqlite:///{folder / 'lineguard.db'}")
    db.upgrade(revision)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO users (username, password_hash, role, disabled, created_at) "
                             "VALUES ('maria', 'x', 'admin', 0, '2026-01-01 00:00:00')")
    db.dispose()
    return folder / "lineguard.db"


def _pg_revision(db) -> str:
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _from_the_future(path) -> None:
    db = sqlite3.connect(path)
    db.execute("UPDATE alembic_version SET version_num = ?", (FUTURE,))
    db.commit()
    db.close()


# --- the access commands never migrate ---------------------------------------------------------

@pytest.mark.parametrize("args, stdin", [
    (["keys", "list"], None),
    (["users", "list"], None),
    (["keys", "create", "--role", "admin"], None),
    (["users", "add", "anna", "--role", "operator", "--password-stdin"], "a long password 123\n"),
])
def test_access_commands_leave_an_older_database_as_it_is(tmp_path, args, stdin):
    data = tmp_path / "station"
    path = _old_station(data)
    r = CliRunner().invoke(app, [*args, "--data", str(data)], input=stdin)
    assert r.exit_code == 2, r.output                             # refused, nothing done
    assert f"database at schema {OLD}, this lineguard at {HEAD}" in r.output
    assert "lineguard serve" in r.output
    assert _revision(path) == OLD                                 # not migrated
    assert not list(data.glob("lineguard.db.before-*"))           # nor copied: nothing happened to it


@pytest.mark.parametrize("args", [["parts", "--out", "{tmp}/parts.csv"], ["sweep", "--dry-run"],
                                  ["old-records", "--keep-days", "30"]])
@pytest.mark.parametrize("newer", [False, True])
def test_commands_that_read_a_station_say_its_schema_is_another_lineguard_s(tmp_path, args, newer):
    # they read the tables as this version's: a column missing or new failed in a traceback
    data = tmp_path / "station"
    path = _old_station(data, HEAD if newer else OLD)
    (data / "images").mkdir()
    if newer:
        _from_the_future(path)
    r = CliRunner().invoke(app, [*(a.format(tmp=tmp_path) for a in args), "--data", str(data)])
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    says = f"schema {FUTURE}; this version knows up to {HEAD}" if newer else f"database at schema {OLD}, this " \
        f"lineguard at {HEAD}"
    assert says in r.output, r.output
    assert _revision(path) == (FUTURE if newer else OLD)
    assert not (tmp_path / "parts.csv").exists()


def test_a_new_station_s_database_is_still_made_by_keys_create_new(tmp_path):
    data = tmp_path / "station"
    r = CliRunner().invoke(app, ["keys", "create", "--role", "admin", "--data", str(data), "--new"])
    assert r.exit_code == 0, r.output
    assert _revision(data / "lineguard.db") == HEAD
    r = CliRunner().invoke(app, ["keys", "list", "--data", str(data)])
    assert r.exit_code == 0 and "admin" in r.output, r.output


@pytest.mark.skipif(not pg_reachable(), reason="PostgreSQL is not reachable at 127.0.0.1:5432")
def test_keys_list_from_another_pc_neither_migrates_a_postgresql_database_nor_makes_a_folder(tmp_path,
                                                                                             monkeypatch):
    schema = f"lg_test_{uuid.uuid4().hex[:10]}"
    db = Database(PG_URL, schema=schema)
    try:
        db.upgrade(OLD)
        monkeypatch.chdir(tmp_path)            # `--data` left at its default, ./station
        for args in (["keys", "list"], ["users", "list"], ["keys", "create", "--role", "admin"]):
            r = CliRunner().invoke(app, [*args, "--db", PG_URL, "--db-schema", schema])
            assert r.exit_code == 2 and f"database at schema {OLD}" in r.output, r.output
            assert _pg_revision(db) == OLD
        assert not (tmp_path / "station").exists()
    finally:
        db.drop_schema()
        db.dispose()


# --- serve copies an older SQLite database before migrating it ---------------------------------

def test_serve_copies_an_older_database_before_migrating_it(tmp_path, caplog):
    data = tmp_path / "station"
    path = _old_station(data)
    (data / "lineguard.db.before-0010").write_bytes(b"an older upgrade's copy")
    with caplog.at_level(logging.WARNING, logger="lineguard.station"):
        st = Station(StationConfig(data_dir=data))
    st.close()
    assert _revision(path) == HEAD
    copy = data / f"lineguard.db.before-{OLD}"
    assert _revision(copy) == OLD                       # what the older version runs on again
    db = sqlite3.connect(copy)
    assert db.execute("SELECT username FROM users").fetchall() == [("maria",)]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"     # one file: no log beside it
    db.close()
    # only the newest copy is kept, and no temp file is left
    assert sorted(p.name for p in data.iterdir() if "before" in p.name) == [copy.name]
    said = [r.getMessage() for r in caplog.records if str(copy) in r.getMessage()]
    assert len(said) == 1 and "To go back" in said[0]
    # started again at the new schema: no new copy, the old one stays
    Station(StationConfig(data_dir=data)).close()
    assert sorted(p.name for p in data.iterdir() if "before" in p.name) == [copy.name]


def test_a_new_database_is_not_copied(tmp_path):
    Station(StationConfig(data_dir=tmp_path / "station")).close()
    assert not list((tmp_path / "station").glob("*before*"))


def test_no_room_for_the_copy_refuses_the_upgrade(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    data = tmp_path / "station"
    path = _old_station(data)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 1000))
    with pytest.raises(StationError, match="LINEGUARD_UPGRADE_WITHOUT_COPY=1") as err:
        Station(StationConfig(data_dir=data))
    assert "Free room" in err.value.message
    assert _revision(path) == OLD and not list(data.glob("*before*"))
    monkeypatch.setenv("LINEGUARD_UPGRADE_WITHOUT_COPY", "1")
    Station(StationConfig(data_dir=data)).close()
    assert _revision(path) == HEAD and not list(data.glob("*before*"))


@pytest.mark.skipif(not pg_reachable(), reason="PostgreSQL is not reachable at 127.0.0.1:5432")
def test_a_postgresql_upgrade_is_logged_from_and_to(caplog):
    schema = f"lg_test_{uuid.uuid4().hex[:10]}"
    db = Database(PG_URL, schema=schema)
    try:
        db.upgrade(OLD)
        with caplog.at_level(logging.WARNING, logger="lineguard.station"):
            db.upgrade()
        assert _pg_revision(db) == HEAD
        said = [r.getMessage() for r in caplog.records]
        assert any(f"database migrated from schema {OLD} to {HEAD}" in m and "pg_dump" in m for m in said), said
    finally:
        db.drop_schema()
        db.dispose()


# --- a database a newer lineguard upgraded ----------------------------------------------------

def test_a_database_from_a_newer_lineguard_is_refused_in_one_line(tmp_path):
    data = tmp_path / "station"
    path = _old_station(data, HEAD)
    _from_the_future(path)
    with pytest.raises(StationError, match=f"newer lineguard \\(schema {FUTURE}; this version knows up to {HEAD}\\)"):
        Station(StationConfig(data_dir=data))
    for args in (["keys", "list"], ["users", "add", "x", "--role", "admin", "--password-stdin"]):
        r = CliRunner().invoke(app, [*args, "--data", str(data)], input="a long password 123\n")
        assert r.exit_code == 2 and f"schema {FUTURE}" in r.output, r.output
    served = subprocess.run([sys.executable, "-m", "lineguard", "serve", "--data", str(data), "--port", "1"],
                            capture_output=True, text=True, timeout=120)
    assert served.returncode != 0
    assert "Traceback" not in served.stderr and "Can't locate revision" not in served.stderr, served.stderr
    assert f"upgraded by a newer lineguard (schema {FUTURE}" in served.stderr
    assert _revision(path) == FUTURE


@pytest.mark.skipif(not pg_reachable(), reason="PostgreSQL is not reachable at 127.0.0.1:5432")
def test_a_postgresql_database_from_a_newer_lineguard_is_refused(tmp_path):
    schema = f"lg_test_{uuid.uuid4().hex[:10]}"
    db = Database(PG_URL, schema=schema)
    try:
        db.upgrade()
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{FUTURE}'")
        with pytest.raises(StationError, match=f"schema {FUTURE}"):
            Station(StationConfig(data_dir=tmp_path / "data", db_url=PG_URL, db_schema=schema))
    finally:
        db.drop_schema()
        db.dispose()


def test_two_processes_upgrading_one_older_database_take_turns(tmp_path, monkeypatch):
    # side by side, the second's copy was taken halfway through the first's migration and
    # replaced the good one (the way back held half a migration), or it failed on a
    # duplicate column (found by a review)
    import threading
    import time

    data = tmp_path / "station"
    path = _old_station(data)
    copies = []
    real = Database._copy_before

    def slow_copy(self, found):
        copies.append(found)
        real(self, found)
        time.sleep(0.5)             # the other process reads the revision meanwhile
    monkeypatch.setattr(Database, "_copy_before", slow_copy)
    errors = []

    def start():
        try:
            db = Database(f"sqlite:///{path}")
            db.upgrade()
            db.dispose()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    both = [threading.Thread(target=start) for _ in range(2)]
    for t in both:
        t.start()
    for t in both:
        t.join(60)
    assert errors == [] and copies == [OLD], (errors, copies)
    assert _revision(path) == HEAD and _revision(path.with_name(f"lineguard.db.before-{OLD}")) == OLD
