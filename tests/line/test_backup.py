"""A backup is a whole station folder: every record, and every file the records name."""
from __future__ import annotations

import os
import shutil

import pytest

from lineguard.line.backup import BackupError, backup_station
from lineguard.line.config import StationConfig
from lineguard.line.station import Part, Station

from .conftest import FakeInspector, png_bytes


def _inspect(st, n: int, start: int = 0) -> list[int]:
    ids = [st.inspect(png_bytes(60 if i % 3 else 200, seed=i), Part(f"p{i}", "L1", "S1", "cell")).record.id
           for i in range(start, start + n)]
    st.maps.flush()
    return ids


def _open(folder):
    return Station(StationConfig(data_dir=folder, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)


def _other_station(tmp_path, parts: int):
    """The folder of another station with ``parts`` parts of its own (closed)."""
    other = _open(tmp_path / "other-station")
    other.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    _inspect(other, parts, start=40)
    other.close()
    return tmp_path / "other-station"


def _named(st) -> set[str]:
    from sqlalchemy import select

    from lineguard.line.orm import Inspection
    with st.db.session() as s:
        rows = s.execute(select(Inspection.image_key, Inspection.heatmap_key, Inspection.overlay_key))
        return {k for row in rows for k in row if k}


def test_a_backup_holds_every_record_and_file_and_the_next_copies_only_what_is_new(sqlite_station, tmp_path):
    # restoring it and running the copy as a station: tests/line/test_restore.py
    st = sqlite_station(min_free_gb=0)
    ids = _inspect(st, 6)
    st.review(ids[0], "defect", "maria", "scratch")
    dest = tmp_path / "backup"
    report = backup_station(st.config.data_dir, dest)      # while the station runs
    assert report.parts == 6 and report.files_copied == len(_named(st)) + 1 and report.models == 1
    assert all((dest / "images" / key).read_bytes() == st.images.get(key) for key in _named(st))
    # the next backup copies only what is new
    more = _inspect(st, 3, start=6)
    again = backup_station(st.config.data_dir, dest)
    new_files = {k for i in more for k in (st.get(i).image_key, st.get(i).heatmap_key) if k}
    assert again.files_copied == len(new_files) and again.files_there == report.files_copied
    assert again.parts == 9


def test_a_file_the_station_deleted_meanwhile_is_not_kept_in_the_backup(sqlite_station, tmp_path):
    # the disk keeper deleted it between the database copy and the file copy: the
    # backup's record says the image is not kept, the station's record is untouched
    st = sqlite_station(min_free_gb=0)
    ids = _inspect(st, 3)
    gone = st.get(ids[1])
    os.unlink(st.images.path(gone.image_key))
    report = backup_station(st.config.data_dir, tmp_path / "backup")
    assert report.gone == 1
    shutil.copytree(tmp_path / "backup", tmp_path / "restored")
    copy = _open(tmp_path / "restored")
    try:
        rec = copy.get(ids[1])
        assert rec.image_key is None and rec.heatmap_key is None and rec.verdict == gone.verdict
        assert all(copy.images.exists(k) for k in _named(copy))
    finally:
        copy.close()
    assert st.get(ids[1]).image_key == gone.image_key


def test_a_backup_into_the_station_folder_or_of_no_station_is_refused(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    with pytest.raises(BackupError, match="another folder"):
        backup_station(st.config.data_dir, st.config.data_dir / "backup")
    with pytest.raises(BackupError, match="no station database"):
        backup_station(tmp_path / "nothing", tmp_path / "backup")
    assert not (tmp_path / "backup").exists()
    (tmp_path / "station2").mkdir()
    (tmp_path / "station2" / "lineguard.db").write_bytes(b"another station's records")
    with pytest.raises(BackupError, match="no backup made"):
        backup_station(st.config.data_dir, tmp_path / "station2")
    assert (tmp_path / "station2" / "lineguard.db").read_bytes() == b"another station's records"


def test_a_backup_stopped_half_way_leaves_the_previous_one_whole(sqlite_station, tmp_path, monkeypatch):
    import lineguard.line.backup as backup_module
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 3)
    dest = tmp_path / "backup"
    backup_station(st.config.data_dir, dest)
    before = (dest / "lineguard.db").read_bytes()
    _inspect(st, 3, start=3)
    real = backup_module.shutil.copyfile
    calls = []

    def failing(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(backup_module.shutil, "copyfile", failing)
    with pytest.raises(OSError):
        backup_station(st.config.data_dir, dest)
    assert (dest / "lineguard.db").read_bytes() == before
    assert not list(dest.glob(".lineguard.db.*")) and not list((dest / "images" / ".staging").glob("*.tmp"))


def test_a_backup_opened_as_a_station_or_another_stations_is_not_overwritten(sqlite_station, tmp_path,
                                                                             station_factory):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    dest = tmp_path / "backup"
    backup_station(st.config.data_dir, dest)
    # run as a station where it lies: the parts recorded there would be lost
    there = _open(dest)
    there.inspect(png_bytes(60, seed=50), Part("made-on-the-backup", "L1", "S1", "cell"))
    with pytest.raises(BackupError, match="open as a station"):
        backup_station(st.config.data_dir, dest)
    there.close()
    with pytest.raises(BackupError, match="changed since the backup made it"):
        backup_station(st.config.data_dir, dest)
    # another station's backups into one folder
    dest2 = tmp_path / "backup2"
    backup_station(st.config.data_dir, dest2)
    with pytest.raises(BackupError, match="another station"):
        backup_station(_other_station(tmp_path, parts=1), dest2)


def test_a_file_cut_short_in_the_backup_is_copied_again(sqlite_station, tmp_path):
    # a power cut on the backup disk: a short file under its key must not be trusted
    st = sqlite_station(min_free_gb=0)
    ids = _inspect(st, 2)
    dest = tmp_path / "backup"
    backup_station(st.config.data_dir, dest)
    key = st.get(ids[0]).image_key
    (dest / "images" / key).write_bytes(b"")
    assert backup_station(st.config.data_dir, dest).files_copied == 1
    assert (dest / "images" / key).read_bytes() == st.images.get(key)


def test_a_first_backup_that_stops_before_its_manifest_is_taken_up_again(sqlite_station, tmp_path,
                                                                                 monkeypatch):
    import lineguard.line.backup as backup_module
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    dest = tmp_path / "backup"
    real = backup_module.atomic_write_bytes

    def out_of_room(path, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(backup_module, "atomic_write_bytes", out_of_room)     # no manifest
    with pytest.raises(OSError):
        backup_station(st.config.data_dir, dest)
    monkeypatch.setattr(backup_module, "atomic_write_bytes", real)
    assert backup_station(st.config.data_dir, dest).parts == 2


def _wait(cond, timeout=20.0) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return cond()


def test_a_station_backs_itself_up_and_a_failed_backup_is_a_fault(sqlite_station, tmp_path):
    from lineguard.line.backup import BackupSchedule
    st = sqlite_station(min_free_gb=0, backup_to=tmp_path / "bk")
    assert st.backups.status()["to"] == str(tmp_path / "bk") and st.backups.status()["last"] is None
    _inspect(st, 2)
    schedule = BackupSchedule(st.config.data_dir, tmp_path / "bk", 3600, st.faults, first_after_s=0).start()
    try:
        assert _wait(lambda: schedule.last is not None), schedule.error
        assert schedule.last["parts"] == 2 and (tmp_path / "bk" / "lineguard.db").exists()
    finally:
        schedule.close()
    # the backup disk is gone (a file where the folder should be): a fault until one works
    (tmp_path / "unplugged").write_text("not a folder")
    broken = BackupSchedule(st.config.data_dir, tmp_path / "unplugged", 3600, st.faults)
    broken.run_once()
    assert "backup" in st.faults and "check the backup disk" in st.faults["backup"] and broken.error
    broken.dest = tmp_path / "bk2"
    broken.run_once()
    assert "backup" not in st.faults and broken.error is None and broken.last["parts"] == 2
    # the next backup waits for the last one's age, not for a restart
    again = BackupSchedule(st.config.data_dir, tmp_path / "bk2", 3600, st.faults, first_after_s=0)
    assert 3500 < again.first_wait() <= 3600


def test_backups_are_for_sqlite_stations_and_every_positive_hours(tmp_path):
    from lineguard.line.config import StationConfig
    with pytest.raises(ValueError, match="pg_dump"):
        StationConfig(data_dir=tmp_path, db_url="postgresql://x@h/db", backup_to=tmp_path / "bk")
    with pytest.raises(ValueError, match="backup_every_h"):
        StationConfig(data_dir=tmp_path, backup_every_h=0)


def test_a_restored_copy_run_beside_its_station_cannot_back_up_over_its_backups(sqlite_station, tmp_path):
    """Restored from the station's backup and run as a second station, the copy has the same
    first part: each one's backup into the shared folder replaced the other's, and the parts
    only the copy made were lost from it (their record ids clash with the station's too)."""
    from lineguard.line.restore import restore_station
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 3)
    dest = tmp_path / "backup"
    backup_station(st.config.data_dir, dest)
    restore_station(dest, tmp_path / "copy")
    copy = _open(tmp_path / "copy")
    _inspect(copy, 2, start=20)                      # the copy's own parts, record ids 4 and 5
    copy.close()
    _inspect(st, 4, start=30)                        # the station's, ids 4 to 7
    backup_station(st.config.data_dir, dest)
    with pytest.raises(BackupError, match="another copy of this station"):
        backup_station(tmp_path / "copy", dest)
    assert backup_station(st.config.data_dir, dest).parts == 7      # the folder stays the station's
    # the other way round: the copy backed up first, the station is refused
    dest2 = tmp_path / "backup2"
    backup_station(tmp_path / "copy", dest2)
    with pytest.raises(BackupError, match="another copy of this station"):
        backup_station(st.config.data_dir, dest2)
    # a station restored to replace the one that died goes on backing up where it did
    restore_station(dest, tmp_path / "replacement")
    again = _open(tmp_path / "replacement")
    _inspect(again, 1, start=50)
    again.close()
    assert backup_station(tmp_path / "replacement", dest).parts == 8


def test_backups_go_on_after_the_record_keeper_deleted_the_first_parts(sqlite_station, tmp_path):
    """--keep-records-days deletes the oldest records; the first part named the station, so
    every backup after the first deletion was refused as another station's, for good."""
    from sqlalchemy import delete

    from lineguard.line.orm import Inspection
    st = sqlite_station(min_free_gb=0)
    ids = _inspect(st, 4)
    dest = tmp_path / "backup"
    backup_station(st.config.data_dir, dest)
    _inspect(st, 2, start=10)
    with st.db.session() as s:                       # the daily run deleted the two oldest
        s.execute(delete(Inspection).where(Inspection.id.in_(ids[:2])))
    assert backup_station(st.config.data_dir, dest).parts == 4
    # and after backups failed longer than records are kept (the folder's newest rotated out too)
    with st.db.session() as s:
        s.execute(delete(Inspection).where(Inspection.id.in_(ids[2:] + [ids[-1] + 1])))
    _inspect(st, 1, start=20)
    assert backup_station(st.config.data_dir, dest).parts == 2
    # another station is still refused
    with pytest.raises(BackupError, match="another station"):
        backup_station(_other_station(tmp_path, parts=3), dest)


def test_a_killed_backup_s_database_copy_is_removed_by_a_later_one(sqlite_station, tmp_path):
    """Each backup killed mid-run (kill -9, a power cut) left a whole database copy in the
    backup folder for ever, one more at each crash, until the backup disk was full."""
    import time as _time
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    dest = tmp_path / "backup"
    assert backup_station(st.config.data_dir, dest).same_disk     # tmp_path: the station's own disk
    old = dest / ".lineguard.db.4242.tmp"
    old.write_bytes(b"SQLite format 3\0" + b"\0" * 4096)
    young = dest / ".lineguard.db.4343.tmp"             # maybe another backup's, running now
    young.write_bytes(b"x")
    hour_ago = _time.time() - 2 * 3600
    os.utime(old, (hour_ago, hour_ago))
    backup_station(st.config.data_dir, dest)
    assert not old.exists() and young.exists()


def test_a_first_backup_that_fails_does_not_speak_of_a_previous_one(sqlite_station, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line import backup as backup_module
    st = sqlite_station(min_free_gb=0)

    def full(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup_module, "backup_station", full)
    r = CliRunner().invoke(app, ["backup", "--data", str(st.config.data_dir), "--to", str(tmp_path / "b")])
    assert r.exit_code == 1 and "there is no backup in the folder yet" in r.output, r.output
    assert "previous backup" not in r.output


def test_a_postgresql_station_is_told_to_copy_its_whole_data_folder_after_pg_dump(tmp_path):
    """Following the message to the letter (pg_dump and images/) lost models/, the active
    model's file, and .lineguard-folder, the folder's id the database names."""
    from click.testing import CliRunner

    from lineguard.cli import app
    r = CliRunner().invoke(app, ["backup", "--data", str(tmp_path / "station"), "--db", "postgresql://x@h/db",
                                 "--to", str(tmp_path / "b")])
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    for needed in ("pg_dump", "images/", "models/", ".lineguard-folder", "cp -a", "same order"):
        assert needed in out, out
    assert not (tmp_path / "b").exists()


def test_the_manifest_records_the_schema_revision_it_holds(sqlite_station, tmp_path):
    import json

    from lineguard.line.db import schema_revisions
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    backup_station(st.config.data_dir, tmp_path / "backup")
    assert json.loads((tmp_path / "backup" / "backup.json").read_text())["schema"] == schema_revisions()[0]
