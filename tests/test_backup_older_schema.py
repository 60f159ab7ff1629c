"""`lineguard backup` of a station an older lineguard made, right before its upgrade.

Backing up is the natural thing to do before starting a newer lineguard on a station. A
station still at schema 0031 (no reference_photos table yet: 0032) stopped the backup with
"OperationalError: no such table: reference_photos ... check the backup disk (mounted, room
left)", exit 1, a half-filled backup folder left behind. Such a station is backed up whole
now, and its restore is upgraded by `serve` like the station itself; an error of the
station's database is never blamed on the backup disk, and a database no backup can read is
refused before the backup folder is made.
"""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402

from cli_runner import run_in_process  # noqa: E402

OLD = "0031"       # the schema of the station the walk found: the last one before reference_photos


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def _revision(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        db.close()


def _open(folder: Path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    return Station(StationConfig(data_dir=folder, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)


def _older_station(folder: Path, parts: int = 5) -> dict:
    """A station folder with ``parts`` parts (images, maps, a model), its database taken back
    to schema OLD as an older lineguard left it; {record id: (verdict, image bytes)}."""
    from alembic import command
    from alembic.config import Config

    from lineguard.line import db as db_mod
    from lineguard.line.station import Part
    st = _open(folder)
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        made = {}
        for i in range(parts):
            rec = st.inspect(png_bytes(60 if i % 2 else 200, seed=i), Part(f"p{i}", "L1", "S1", "cell")).record
            made[rec.id] = (rec.verdict, st.images.get(rec.image_key))
        st.maps.flush()
    finally:
        st.close()          # before the downgrade: its close writes to this version's tables
    path = folder / "lineguard.db"
    db = db_mod.Database(f"sqlite:///{path}")
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, OLD)
    finally:
        db.dispose()
    assert _revision(path) == OLD and "reference_photos" not in _tables(path)
    return made


def test_an_older_station_is_backed_up_whole_and_its_restore_is_upgraded_by_serve(tmp_path):
    data, backup, restored = tmp_path / "station", tmp_path / "backup", tmp_path / "restored"
    made = _older_station(data)
    r = run_in_process("backup", "--data", data, "--to", backup)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check the backup disk" not in r.stdout + r.stderr
    assert f"backed up {len(made)} parts and 1 new model file to" in r.stdout, r.stdout
    manifest = json.loads((backup / "backup.json").read_text())
    assert manifest["schema"] == OLD and manifest["parts"] == len(made)
    assert _revision(data / "lineguard.db") == OLD          # a backup never upgrades the station
    assert _revision(backup / "lineguard.db") == OLD

    r = run_in_process("restore", "--from", backup, "--data", restored)
    assert r.returncode == 0, r.stdout + r.stderr
    # serve's start upgrades the restored station, keeping the copy to go back to
    st = _open(restored)
    try:
        assert _revision(restored / "lineguard.db") != OLD
        assert (restored / f"lineguard.db.before-{OLD}").is_file()
        for rid, (verdict, image) in made.items():
            rec = st.get(rid)
            assert rec.verdict == verdict and st.images.get(rec.image_key) == image
        assert st.models.list("cell")
    finally:
        st.close()
    assert "reference_photos" in _tables(restored / "lineguard.db")
    # the upgraded station's backups go on into the same folder
    r = run_in_process("backup", "--data", restored, "--to", backup)
    assert r.returncode == 0, r.stdout + r.stderr


def _no_station(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (x TEXT)")
    db.commit()
    db.close()


@pytest.mark.parametrize("kind", ["no station's tables", "not a database"])
def test_a_database_no_backup_can_read_is_refused_before_the_backup_folder_is_made(tmp_path, kind):
    data, backup = tmp_path / "station", tmp_path / "backup"
    data.mkdir()
    if kind == "not a database":
        (data / "lineguard.db").write_bytes(b"this is no SQLite file, but long enough to be read as one" * 40)
    else:
        _no_station(data / "lineguard.db")
    r = run_in_process("backup", "--data", data, "--to", backup)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "nothing was written" in out and "backup disk" not in out, out
    assert not backup.exists()          # no half-filled folder, not even its marker


def test_the_scheduled_backup_of_an_unreadable_database_does_not_blame_the_backup_disk(tmp_path):
    """serve --backup-to's own backups: the refusal said the database cannot be read, then
    "check the backup disk" after it."""
    from lineguard.line.backup import BackupSchedule
    data = tmp_path / "station"
    data.mkdir()
    (data / "lineguard.db").write_bytes(b"this is no SQLite file, but long enough to be read as one" * 40)
    faults: dict[str, str] = {}
    BackupSchedule(data, tmp_path / "backup", 24 * 3600, faults).run_once()
    assert "cannot be read" in faults["backup"] and "not of the backup disk" in faults["backup"], faults
    assert "check the backup disk" not in faults["backup"]


def test_an_error_of_the_station_s_database_mid_backup_is_not_blamed_on_the_backup_disk(tmp_path, monkeypatch):
    from lineguard.line import backup as backup_mod
    data, backup = tmp_path / "station", tmp_path / "backup"
    _older_station(data, parts=2)

    def column_gone(*_a, **_k):
        raise sqlite3.OperationalError("no such column: overlay_key")
    monkeypatch.setattr(backup_mod, "_copy_part_files", column_gone)
    r = run_in_process("backup", "--data", data, "--to", backup)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "no such column: overlay_key" in out and "not of the backup disk" in out, out
    assert "check the backup disk" not in out
    assert not (backup / "lineguard.db").exists()


def test_a_full_backup_disk_is_still_said_to_be_the_disk(tmp_path, monkeypatch):
    from lineguard.line import backup as backup_mod
    data, backup = tmp_path / "station", tmp_path / "backup"
    _older_station(data, parts=2)

    def full(*_a, **_k):
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(backup_mod, "_copy_part_files", full)
    r = run_in_process("backup", "--data", data, "--to", backup)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "check the backup disk (mounted, room left)" in out, out


def test_the_way_back_after_an_upgrade_says_to_remove_the_write_ahead_log_and_it_works_after_a_crash(tmp_path):
    """The README's and the refusal's way back (put lineguard.db.before-0031 in place) failed
    after a crash: the upgraded database's write-ahead log, left beside it, was replayed onto
    the copy, and the older lineguard refused it as "upgraded by a newer lineguard" again."""
    import shutil

    from lineguard.line.db import Database, SchemaTooNew
    data = tmp_path / "station"
    _older_station(data, parts=2)
    path = data / "lineguard.db"
    mode = sqlite3.connect(path)
    assert mode.execute("PRAGMA journal_mode").fetchone()[0] == "wal"     # as a station runs it
    mode.close()
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()          # as serve's start, which then crashed: the upgrade still in the log
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        for f in data.glob("lineguard.db*"):     # the folder as a power cut leaves it
            shutil.copy2(f, crashed / f.name)
    finally:
        db.dispose()
    assert (crashed / "lineguard.db-wal").stat().st_size > 0
    before = crashed / f"lineguard.db.before-{OLD}"
    # the older lineguard's view: this one's refusal of a database a newer one upgraded
    newer = tmp_path / "newer"
    shutil.copytree(crashed, newer)
    raw = sqlite3.connect(newer / "lineguard.db")
    raw.execute("UPDATE alembic_version SET version_num = '9999_future'")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaTooNew) as refused:
        Database(f"sqlite:///{newer / 'lineguard.db'}").check_schema()
    hint = refused.value.message
    assert "lineguard.db-wal" in hint and "lineguard.db-shm" in hint and "into another folder together" in hint, hint
    # the copy put in place alone (the README before): the log left by the crash is replayed onto it
    naive = tmp_path / "naive"
    shutil.copytree(crashed, naive)
    shutil.copyfile(naive / before.name, naive / "lineguard.db")
    assert _revision(naive / "lineguard.db") != OLD
    # following it: the upgraded database moved aside whole (its parts kept there), then the copy put in place
    aside = tmp_path / "upgraded"
    aside.mkdir()
    for end in ("", "-wal", "-shm"):
        shutil.move(crashed / f"lineguard.db{end}", aside / f"lineguard.db{end}")
    shutil.copyfile(before, crashed / "lineguard.db")
    assert _revision(crashed / "lineguard.db") == OLD
    assert _revision(aside / "lineguard.db") != OLD          # the upgraded one, whole, with its last writes
