"""The commands that look after a station check, as `serve` does, that the database they
were given belongs to the --data folder (line.data_folders.check, read only).

Station A in the public schema of a PostgreSQL database, station B in schema ``plantb`` of
the same one: with --db-schema forgotten, `keys create --data B` made B's key in A (exit
0), `users add` added the user to A, `parts` wrote A's parts, while `serve --data B` was
refused naming A's folder. A folder that holds no claim (a station made before claims, a
new one) is let through as before.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineguard.cli import app

from conftest import pg_reachable

pytestmark = pytest.mark.skipif(not pg_reachable(), reason="PostgreSQL is not reachable at 127.0.0.1:5432")

SERVER = "postgresql://postgres@127.0.0.1:5432"


def _run(args: list[str], stdin: str | None = None):
    return CliRunner().invoke(app, args, input=stdin)


@pytest.fixture
def plant(tmp_path, monkeypatch):
    """A database of the test's own (station A has its public schema) with A and B started
    once each (their folders claimed); run from a working folder of its own."""
    import psycopg

    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    name = f"lg_admin_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER}/{name}"
    try:
        folders = {"A": tmp_path / "stA", "B": tmp_path / "stB"}
        for station, schema in (("A", None), ("B", "plantb")):
            Station(StationConfig(data_dir=folders[station], db_url=url, db_schema=schema)).close()
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        yield url, folders
    finally:
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _names(url: str, schema, what: str) -> set:
    from sqlalchemy import select

    from lineguard.line.db import Database
    from lineguard.line.orm import ApiKey, User
    db = Database(url, schema=schema)
    try:
        with db.session() as s:
            if what == "keys":
                return set(s.scalars(select(ApiKey.name)))
            return set(s.scalars(select(User.username)))
    finally:
        db.dispose()


def test_keys_users_and_parts_for_station_b_without_its_schema_are_refused_not_done_on_a(plant):
    url, folders = plant
    b = str(folders["B"])
    made = _run(["keys", "create", "--data", b, "--db", url, "--role", "operator", "--name", "x"])
    assert made.exit_code == 2, made.output
    # what is wrong, whose files the database keeps, and the fix: B's own schema
    assert str(folders["A"].resolve()) in made.stderr and str(folders["B"].resolve()) in made.stderr
    assert "--db-schema plantb" in made.stderr and "Nothing was changed" in made.stderr
    assert "x" not in _names(url, None, "keys") | _names(url, "plantb", "keys")

    added = _run(["users", "add", "bob", "--role", "operator", "--data", b, "--db", url, "--password-stdin"],
                 stdin="bob-password-1\n")
    assert added.exit_code == 2, added.output
    assert "--db-schema plantb" in added.stderr
    assert "bob" not in _names(url, None, "users")

    out = Path("b.csv")
    parts = _run(["parts", "--data", b, "--db", url, "--out", str(out)])
    assert parts.exit_code == 2, parts.output
    assert "--db-schema plantb" in parts.stderr and not out.exists()

    # read-only ones too: a key list of A shown as B's is as wrong
    listed = _run(["keys", "list", "--data", b, "--db", url])
    assert listed.exit_code == 2 and "--db-schema plantb" in listed.stderr

    # with its schema, each works on B
    made = _run(["keys", "create", "--data", b, "--db", url, "--db-schema", "plantb", "--role", "operator",
                 "--name", "x"])
    assert made.exit_code == 0, made.output
    assert "x" in _names(url, "plantb", "keys") and "x" not in _names(url, None, "keys")
    added = _run(["users", "add", "bob", "--role", "operator", "--data", b, "--db", url, "--db-schema", "plantb",
                  "--password-stdin"], stdin="bob-password-1\n")
    assert added.exit_code == 0, added.output
    assert "bob" in _names(url, "plantb", "users")
    parts = _run(["parts", "--data", b, "--db", url, "--db-schema", "plantb", "--out", str(out)])
    assert parts.exit_code == 0, parts.output and out.is_file()


def test_station_a_folder_with_b_schema_is_told_to_leave_the_schema_out(plant):
    url, folders = plant
    r = _run(["users", "list", "--data", str(folders["A"]), "--db", url, "--db-schema", "plantb"])
    assert r.exit_code == 2, r.output
    assert "public schema" in r.stderr and "leave out --db-schema" in r.stderr
    ok = _run(["users", "list", "--data", str(folders["A"]), "--db", url])
    assert ok.exit_code == 0, ok.output


def test_a_folder_that_holds_no_claim_still_works(plant, tmp_path):
    url, folders = plant
    # a station's folder from before claims (no id file), or an admin on another PC giving --db
    old = tmp_path / "before-claims"
    old.mkdir()
    r = _run(["keys", "create", "--data", str(old), "--db", url, "--role", "operator", "--name", "old-pc"])
    assert r.exit_code == 0, r.output
    assert "old-pc" in _names(url, None, "keys")
    assert not (old / ".lineguard-folder").exists()          # read only: nothing claimed, no id made
    # a new station in its own schema, its first key before its first start
    new = _run(["keys", "create", "--data", str(tmp_path / "stC"), "--db", url, "--db-schema", "plantc",
                "--role", "admin", "--name", "c-first", "--new"])
    assert new.exit_code == 0, new.output
    assert "c-first" in _names(url, "plantc", "keys")
