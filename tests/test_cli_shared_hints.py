"""The station commands name the station meant in one way, shared.

- `keys list` and `users list` with a --db-schema one keying slip off a station's schema
  said only "no station in ... check --db and --db-schema", where serve and old-records name
  the schema meant (walkd_boot for walkd_bot).
- `reference add`'s warning of an old camera's photos printed its remove command with its own
  copy of the station's place, which always added --data (the default folder too), where
  `keys create` repeats only what was given: one helper for both now.
"""
from __future__ import annotations

import pytest
from cli_runner import run_in_process
from conftest import PG_URL
from test_camera_change_walk import _folder
from test_cli_old_records_names import station_schema  # noqa: F401 - the fixture


@pytest.mark.parametrize("command", [["keys", "list"], ["users", "list"]])
def test_a_schema_one_letter_off_the_stations_is_named_by_keys_and_users(tmp_path, station_schema, command):
    slip = station_schema.replace("_boot", "_bot")
    r = run_in_process(*command, "--data", tmp_path / "line1", "--db", PG_URL, "--db-schema", slip, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    # before: "...: check --db and --db-schema", the admin left to guess which schema was meant
    assert f"schema {station_schema} holds one (a mistyped --db-schema?): give --db-schema {station_schema}" \
        in r.stderr, r.stderr


def test_the_old_cameras_remove_command_repeats_only_the_station_given(tmp_path):
    # a station in the default folder (./station), none named on the command lines
    r = run_in_process("keys", "create", "--role", "admin", "--new", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_in_process("reference", "add", "--product", "cell", _folder(tmp_path / "old", 64, 4, 0), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_in_process("reference", "add", "--product", "cell", _folder(tmp_path / "new", 96, 3, 100), cwd=tmp_path)
    assert r.returncode == 0 and "another camera?" in r.stdout, r.stdout + r.stderr
    # as keys create's hint: the default folder is not repeated (before: --data station)
    assert "remove its photos: lineguard reference remove --product cell --size 64x64 (docs/camera-change.md)" \
        in r.stdout, r.stdout
    # run as printed, the old camera's photos go, from the same station
    r = run_in_process("reference", "remove", "--product", "cell", "--size", "64x64", cwd=tmp_path)
    assert r.returncode == 0 and "removed 4 reference photo(s)" in r.stdout, r.stdout + r.stderr
