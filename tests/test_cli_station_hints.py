"""The next-step commands `keys create` and serve print name the station the admin gave.

`lineguard keys create --data ./station-old --role operator` ended with "`lineguard keys
revoke 4` ends it": copied as printed, it revoked key 4 of the default ./station, the line's
running station, instead. The hints are run here as printed, so a hint that names the wrong
station is caught by what it does, not by its words.
"""
from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import pytest

from cli_runner import run_in_process
from conftest import PG_URL, pg_reachable


def _hint(stderr: str, verb: str) -> list[str]:
    """The command in backquotes that starts `lineguard keys VERB`, as the shell would split it."""
    found = re.search(rf"`(lineguard keys {verb}[^`]*)`", stderr)
    assert found, stderr
    return shlex.split(found.group(1))[1:]


def _keys(*where: str, cwd: Path) -> dict[str, str]:
    """Key id -> status (active or revoked) of the station at ``where``."""
    r = run_in_process("keys", "list", *where, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return {row.split("\t")[0]: row.split("\t")[-1] for row in r.stdout.splitlines()[1:]}


def test_the_revoke_hint_of_a_key_made_for_another_station_revokes_that_stations_key(tmp_path):
    # the line's station in ./station with key 1, and an old station beside it, its folder
    # name with a space (the hint must survive the shell too)
    r = run_in_process("keys", "create", "--role", "admin", "--data", "station", "--new", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_in_process("keys", "create", "--role", "admin", "--data", "station old", "--new", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_in_process("keys", "create", "--role", "operator", "--data", "station old", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    revoke = _hint(r.stderr, "revoke")
    assert revoke[:3] == ["keys", "revoke", "2"], revoke
    done = run_in_process(*revoke, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # the old station's operator key went; the line's station keeps its keys (its key 2 was never made,
    # so a hint sent there would have failed: its key 1 is checked too)
    assert _keys("--data", "station old", cwd=tmp_path) == {"1": "active", "2": "revoked"}
    assert _keys("--data", "station", cwd=tmp_path) == {"1": "active"}
    # the list hint shows the old station's keys, not the line's
    listed = run_in_process(*_hint(r.stderr, "list"), cwd=tmp_path)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3, listed.stdout + listed.stderr


def test_the_hint_of_a_station_found_by_lineguard_data_names_it(tmp_path):
    # nothing given, nothing repeated: the default station's hint stays as short as the command was
    r = run_in_process("keys", "create", "--role", "admin", "--new", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _hint(r.stderr, "revoke") == ["keys", "revoke", "1"]
    # a shell with LINEGUARD_DATA set: copied into another shell, the hint must still reach the station
    env = {"LINEGUARD_DATA": str(tmp_path / "srv" / "line3")}
    r = run_in_process("keys", "create", "--role", "admin", "--new", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert _hint(r.stderr, "revoke") == ["keys", "revoke", "1", "--data", str(tmp_path / "srv" / "line3")]


@pytest.fixture
def hints_schema():
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    schema = f"lg_test_fix2_{uuid.uuid4().hex[:8]}"
    yield schema
    from lineguard.line.db import Database
    db = Database(PG_URL, schema=schema)
    try:
        db.drop_schema()
    finally:
        db.dispose()


def test_the_hint_of_a_postgresql_station_names_its_database_and_schema_but_never_the_password(tmp_path, hints_schema):
    # the test server trusts every connection: any password is taken, so the hint can be run
    secret = "l1ne-pw-77"
    url = PG_URL.replace("postgres@", f"postgres:{secret}@")
    where = ["--db", url, "--db-schema", hints_schema, "--data", "line2"]
    r = run_in_process("keys", "create", "--role", "admin", *where, "--new", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_in_process("keys", "create", "--role", "operator", *where, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert secret not in r.stderr
    assert "with the database password where *** stands" in r.stderr
    revoke = [a.replace("***", secret) for a in _hint(r.stderr, "revoke")]
    assert "--db-schema" in revoke and hints_schema in revoke
    done = run_in_process(*revoke, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _keys(*where, cwd=tmp_path) == {"1": "active", "2": "revoked"}
