"""`lineguard old-records` names the station meant when its --db-schema or --data is a slip.

`old-records --db postgresql://... --db-schema walkd_bot` (one letter off the station's
walkd_boot) said only "holds no station's records ... check --db and --db-schema", where serve
names the schema meant: the quality engineer looking at what a retention would delete had to
guess. It names it now in serve's words, as it names ./station for a mistyped ./Station.
"""
from __future__ import annotations

import uuid

import pytest

from cli_runner import run_in_process
from conftest import PG_URL, pg_reachable


@pytest.fixture
def station_schema():
    """A station's schema (migrated, as a station that started once has it), dropped after,
    with the slip of its name a test may have made."""
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    from lineguard.line.db import Database
    schema = f"lg_test_fix2_{uuid.uuid4().hex[:8]}_boot"
    db = Database(PG_URL, schema=schema)
    try:
        db.upgrade()
    finally:
        db.dispose()
    yield schema
    for name in (schema, schema.replace("_boot", "_bot")):
        db = Database(PG_URL, schema=name)
        try:
            db.drop_schema()
        finally:
            db.dispose()


def test_a_schema_one_letter_off_the_stations_is_named(tmp_path, station_schema):
    data = tmp_path / "line1"
    (data / "images").mkdir(parents=True)
    slip = station_schema.replace("_boot", "_bot")
    r = run_in_process("old-records", "--keep-days", "90", "--data", data, "--db", PG_URL, "--db-schema", slip,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"schema {station_schema} holds one (a mistyped --db-schema?): give --db-schema {station_schema}" \
        in r.stderr, r.stderr
    assert "would go" not in r.stdout


def test_a_data_folder_one_capital_off_the_stations_is_named(tmp_path):
    r = run_in_process("keys", "create", "--role", "admin", "--data", "station", "--new", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "station" / "images").mkdir()
    r = run_in_process("old-records", "--keep-days", "90", "--data", "Station", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{tmp_path / 'station'} beside it holds a station (a mistyped --data?)" in r.stderr, r.stderr
