"""Whose backup a folder holds, when its manifest cannot say, or its station has no part yet.

A walk found two ways one station's backup replaced another's without a word: a backup
folder whose backup.json was lost or damaged (a copy that skipped it, a bad sector) was
taken for a first backup killed half-way, so any station's backup replaced it; and a
station with no part yet (its first key made, its model added) had no lasting name, so
another station's backup replaced its keys and model. A restore told to "run `lineguard
backup` into it again" over such a folder was sent to the command that overwrites it.
"""
from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.backup import BackupError, backup_station
from lineguard.line.restore import check_backup, restore_station

from .test_backup import _inspect, _open, _other_station


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _parts(folder) -> int:
    with sqlite3.connect(folder / "lineguard.db") as db:
        return db.execute("SELECT count(*) FROM inspections").fetchone()[0]


def _backed_up(sqlite_station, tmp_path, n: int):
    """A station with ``n`` parts and its backup in tmp_path/bk."""
    st = sqlite_station(min_free_gb=0)
    _inspect(st, n)
    backup_station(st.config.data_dir, tmp_path / "bk")
    return st, tmp_path / "bk"


def test_a_backup_whose_manifest_is_lost_is_still_refused_to_another_station(sqlite_station, tmp_path):
    st, dest = _backed_up(sqlite_station, tmp_path, 3)
    (dest / "backup.json").unlink()
    with pytest.raises(BackupError, match="another station"):
        backup_station(_other_station(tmp_path, parts=2), dest)
    assert _parts(dest) == 3
    # damaged rather than gone: the same
    (dest / "backup.json").write_text("{\"made_at\": ")
    r = _run(["backup", "--data", tmp_path / "other-station", "--to", dest])
    assert r.exit_code == 2 and "another station" in r.output, r.output
    assert _parts(dest) == 3
    # the station's own next backup still goes on, and writes the manifest again
    _inspect(st, 1, start=10)
    assert backup_station(st.config.data_dir, dest).parts == 4
    assert json.loads((dest / "backup.json").read_text())["newest_part"]["part_id"] == "p10"


def test_a_copy_gone_its_own_way_is_refused_without_the_manifest_too(sqlite_station, tmp_path):
    st, dest = _backed_up(sqlite_station, tmp_path, 3)
    restore_station(dest, tmp_path / "copy")
    copy = _open(tmp_path / "copy")
    _inspect(copy, 2, start=20)
    copy.close()
    _inspect(st, 2, start=30)
    backup_station(st.config.data_dir, dest)
    (dest / "backup.json").unlink()
    with pytest.raises(BackupError, match="another copy of this station"):
        backup_station(tmp_path / "copy", dest)
    assert _parts(dest) == 5


def test_a_backup_with_no_manifest_and_an_unreadable_database_is_not_overwritten(sqlite_station, tmp_path):
    st, dest = _backed_up(sqlite_station, tmp_path, 2)
    (dest / "backup.json").unlink()
    (dest / "lineguard.db").write_bytes(b"not a database, of any size " * 200)
    r = _run(["backup", "--data", st.config.data_dir, "--to", dest])
    assert r.exit_code == 2, r.output
    assert "cannot be told" in r.output and "restore --from" in r.output, r.output
    assert (dest / "lineguard.db").read_bytes().startswith(b"not a database")


def test_the_backup_of_a_station_with_no_part_yet_is_not_another_stations_to_replace(tmp_path):
    # its first key made (a change in its change log), no part yet
    r = _run(["keys", "create", "--role", "admin", "--name", "first", "--data", tmp_path / "new-station", "--new"])
    assert r.exit_code == 0, r.output
    dest = tmp_path / "bk"
    assert backup_station(tmp_path / "new-station", dest).parts == 0
    r = _run(["backup", "--data", _other_station(tmp_path, parts=2), "--to", dest])
    assert r.exit_code == 2 and "another station" in r.output, r.output
    with sqlite3.connect(dest / "lineguard.db") as db:
        assert db.execute("SELECT name FROM api_keys").fetchall() == [("first",)]
    # the same station, with parts now, goes on backing up there
    again = _open(tmp_path / "new-station")
    from .conftest import FakeInspector
    again.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    _inspect(again, 2)
    again.close()
    assert backup_station(tmp_path / "new-station", dest).parts == 2


def test_a_backup_made_before_manifests_named_the_change_log_still_knows_its_station(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    dest = tmp_path / "bk"
    backup_station(st.config.data_dir, dest)          # no part: named by its change log alone
    manifest = json.loads((dest / "backup.json").read_text())
    assert manifest["station"] is None and manifest["first_change"]
    del manifest["first_change"]                      # as an older lineguard wrote it
    (dest / "backup.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="another station"):
        backup_station(_other_station(tmp_path, parts=1), dest)


def test_a_restore_without_the_manifest_restores_and_says_so(sqlite_station, tmp_path):
    _st, dest = _backed_up(sqlite_station, tmp_path, 3)
    (dest / "backup.json").unlink()
    report = check_backup(dest)
    assert report.whole and report.parts == 3 and report.made_at is None
    assert any("backup.json" in n for n in report.notes), report.notes
    r = _run(["restore", "--from", dest, "--data", tmp_path / "back"])
    assert r.exit_code == 0, r.output
    assert "backup.json" in r.output and "run `lineguard backup` into it" not in r.output, r.output
    assert _parts(tmp_path / "back") == 3
