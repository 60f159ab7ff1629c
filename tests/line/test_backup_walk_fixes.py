"""What a walk through backups and restores found, each kept fixed.

- a station file cut short on the station's disk (its size differs from the backup's
  copy) was copied over the backup's good copy, never checked against its name;
- a restore wrote every file with the restore's time, so a station started at once on a
  nearly full disk found every image "stored in the last minute": its disk keeper cleared
  the links of every part and deleted no file;
- a failed `serve --backup-to` waited a whole --backup-every-h (a day) to be tried again,
  and a backup made by hand into the folder did not end its fault;
- a command given a backup folder as --data (`keys list`, ...) switched its database to a
  write-ahead log, and the next backup into the folder refused;
- the PostgreSQL refusal of --backup-to named neither the option nor what to back up;
- `backup --to` a file failed (exit 1, "check the backup disk") instead of being refused;
- the damaged-files fault stayed a day after the file was put back and a backup by hand
  worked; an old backup on a disk plugged back in ended the failed-backup fault.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time

from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.backup import BackupSchedule, backup_station
from lineguard.line.restore import check_backup, restore_station

from .test_backup import _inspect, _named


def _backed_up(sqlite_station, tmp_path, n=4):
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    ids = _inspect(st, n)
    backup_station(st.config.data_dir, tmp_path / "bk")
    return st, ids, tmp_path / "bk"


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_station_image_cut_short_never_replaces_the_backups_good_copy(sqlite_station, tmp_path):
    st, ids, bk = _backed_up(sqlite_station, tmp_path)
    part = st.get(ids[1])
    good = (bk / "images" / part.image_key).read_bytes()
    with open(st.images.path(part.image_key), "r+b") as fh:      # cut short on the station's disk
        fh.truncate(len(good) // 2)
    report = backup_station(st.config.data_dir, bk)
    assert (bk / "images" / part.image_key).read_bytes() == good     # the good copy stays
    assert report.files_copied == 0 and report.damaged_at_station == 1 and report.kept_good_copy == 1
    assert report.damaged_files == [{"key": f"images/{part.image_key}", "why": "its bytes changed",
                                     "backup_whole": True}]
    assert check_backup(bk).whole
    manifest = json.loads((bk / "backup.json").read_text())
    assert manifest["damaged_files"][0]["key"] == f"images/{part.image_key}"
    # the command says which file, that the backup keeps it whole, and how to put it back (exit 1)
    r = _run(["backup", "--data", st.config.data_dir, "--to", bk])
    out = " ".join(r.output.split())
    assert r.exit_code == 1, r.output
    assert part.image_key in out and "keeps a whole copy" in out and "lineguard restore" in out, out
    assert (bk / "images" / part.image_key).read_bytes() == good


def test_a_station_model_file_cut_short_never_replaces_the_backups_good_copy(sqlite_station, tmp_path):
    st, _ids, bk = _backed_up(sqlite_station, tmp_path)
    key = st.models.list("cell")[0].file_key
    good = (bk / "models" / key).read_bytes()
    (st.config.data_dir / "models" / key).write_bytes(good[:len(good) // 2])
    report = backup_station(st.config.data_dir, bk)
    assert (bk / "models" / key).read_bytes() == good
    assert report.damaged_at_station == 1 and report.kept_good_copy == 1


def test_a_stations_own_backup_says_its_damaged_files_as_a_fault(sqlite_station, tmp_path):
    st, ids, bk = _backed_up(sqlite_station, tmp_path)
    key = st.get(ids[0]).image_key
    with open(st.images.path(key), "r+b") as fh:
        fh.truncate(100)
    faults: dict[str, str] = {}
    schedule = BackupSchedule(st.config.data_dir, bk, 3600, faults)
    schedule.run_once()
    assert schedule.error is None and schedule.last["damaged_at_station"] == 1
    assert key in faults["backup"] and "keeps a whole copy" in faults["backup"]
    st.images.path(key).write_bytes((bk / "images" / key).read_bytes())     # put back, as the fault says
    schedule.run_once()
    assert "backup" not in faults


def test_a_backup_keeps_each_files_time(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    _inspect(st, 3)
    stored_at = time.time() - 7200          # the parts' files were stored two hours ago
    for key in _named(st):
        os.utime(st.images.path(key), (stored_at, stored_at))
    backup_station(st.config.data_dir, tmp_path / "bk")
    for key in _named(st):
        assert (tmp_path / "bk" / "images" / key).stat().st_mtime_ns == st.images.path(key).stat().st_mtime_ns, key


def test_a_restore_keeps_each_files_time(sqlite_station, tmp_path):
    st, _ids, bk = _backed_up(sqlite_station, tmp_path)
    held_at = time.time() - 7200            # as the backup holds them (a backup made hours ago)
    for key in _named(st):
        os.utime(bk / "images" / key, (held_at, held_at))
    restore_station(bk, tmp_path / "restored")
    for key in _named(st):
        assert (tmp_path / "restored" / "images" / key).stat().st_mtime_ns == \
            (bk / "images" / key).stat().st_mtime_ns, key


def test_the_disk_keeper_never_clears_the_link_of_a_file_it_keeps_for_being_young(sqlite_station, tmp_path):
    """Files that young (a folder restored a moment ago) are kept by the store; their parts
    kept their links cleared, so their images were lost to the app and no room was freed."""
    from lineguard.line.disk import DiskKeeper
    from lineguard.line.imagestore import ContentStore
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    ids = _inspect(st, 4)
    linked = {i: st.get(i).image_key for i in ids}
    # another process on the folder (a station started on it just now): this one's store
    # has not stored the files itself, it sees their times alone
    keeper = DiskKeeper(st.db, ContentStore(st.images.root), {}, min_free_bytes=10 ** 15,
                        free_bytes=lambda: 0, min_age_s=0)
    later = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(minutes=5)
    keeper.check(now=later)
    assert {i: st.get(i).image_key for i in ids} == linked
    assert all(st.images.path(k).exists() for k in linked.values())
    # once older than a minute they go, links first: the keeper started again where it left
    old = time.time() - 3600
    for key in _named(st):
        os.utime(st.images.path(key), (old, old))
    keeper.check(now=later)
    assert all(st.get(i).image_key is None for i in ids)
    assert not any(st.images.path(k).exists() for k in linked.values())


def test_a_failed_station_backup_is_tried_again_within_the_hour(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    (tmp_path / "unplugged").write_text("not a folder")
    faults: dict[str, str] = {}
    broken = BackupSchedule(st.config.data_dir, tmp_path / "unplugged", 24 * 3600, faults)
    wait = broken._tick()
    assert broken.error and "tried again at" in faults["backup"]
    assert wait <= 3600 and broken.retry_at <= time.time() + 3600
    # until then the thread only looks at the folder: nothing is tried
    os.unlink(tmp_path / "unplugged")
    assert broken._tick() <= 3600 and not (tmp_path / "unplugged").exists() and broken.error
    broken.retry_at = time.time() - 1          # the hour has passed: tried again, and it works
    assert broken._tick() == 24 * 3600
    assert broken.error is None and "backup" not in faults and broken.last["parts"] == 2


def test_a_backup_by_hand_into_the_folder_ends_the_stations_backup_fault(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    dest = tmp_path / "bk"
    dest.write_text("not a folder yet")
    faults: dict[str, str] = {}
    schedule = BackupSchedule(st.config.data_dir, dest, 24 * 3600, faults)
    schedule.run_once()
    assert "backup" in faults
    os.unlink(dest)
    r = _run(["backup", "--data", st.config.data_dir, "--to", dest])
    assert r.exit_code == 0, r.output
    status = schedule.status()          # /health reads it
    assert status["error"] is None and status["last"]["parts"] == 2 and "backup" not in faults


def test_a_backup_folder_given_as_data_is_refused_and_left_unchanged(sqlite_station, tmp_path):
    st, _ids, bk = _backed_up(sqlite_station, tmp_path)
    st.close()
    before = (bk / "lineguard.db").read_bytes()
    for args in (["keys", "list"], ["users", "list"], ["alarm-rules", "list"], ["sweep", "--dry-run"],
                 ["old-records", "--keep-days", "30"]):
        r = _run([*args, "--data", bk])
        out = " ".join(r.output.split())
        assert r.exit_code == 2, (args, r.output)
        assert "is a backup made by `lineguard backup`" in out and f"lineguard restore --from {bk}" in out, out
    assert (bk / "lineguard.db").read_bytes() == before
    assert not (bk / "lineguard.db-wal").exists()
    con = sqlite3.connect(f"{(bk / 'lineguard.db').as_uri()}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        con.close()
    # and the next backup into the folder goes on
    assert _run(["backup", "--data", st.config.data_dir, "--to", bk]).exit_code == 0


def test_serve_refuses_a_backup_folder_before_opening_it(sqlite_station, tmp_path):
    from lineguard.line.data_folders import BackupFolderAsData, refuse_backup_folder
    st, _ids, bk = _backed_up(sqlite_station, tmp_path)
    try:
        refuse_backup_folder(bk)
        raise AssertionError("a backup folder was taken as a station's")
    except BackupFolderAsData as exc:
        assert "lineguard restore" in exc.message
    refuse_backup_folder(st.config.data_dir)                 # a station folder is one
    try:
        refuse_backup_folder(tmp_path / "elsewhere", db_file=bk / "lineguard.db")   # a SQLite --db in it
        raise AssertionError("a backup's database was taken as a station's")
    except BackupFolderAsData:
        pass


def test_the_postgresql_refusal_of_backup_to_names_the_option_and_what_to_back_up(tmp_path):
    from lineguard.line.config import StationConfig
    try:
        StationConfig(data_dir=tmp_path, db_url="postgresql://x@h/db", backup_to=tmp_path / "bk")
        raise AssertionError("a PostgreSQL station took --backup-to")
    except ValueError as exc:
        said = " ".join(str(exc).split())
    for needed in ("--backup-to", "LINEGUARD_BACKUP_TO", "pg_dump -Fc", "-n SCHEMA", "images/", "models/",
                   ".lineguard-folder", "pg_restore"):
        assert needed in said, said


def test_backup_to_a_file_is_refused_saying_to_give_a_folder(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 1)
    (tmp_path / "bk.txt").write_text("a file")
    r = _run(["backup", "--data", st.config.data_dir, "--to", tmp_path / "bk.txt"])
    assert r.exit_code == 2, r.output
    assert "is a file: give a folder" in " ".join(r.output.split())
    assert (tmp_path / "bk.txt").read_text() == "a file"


def test_a_backup_by_hand_after_damaged_files_are_put_back_ends_the_fault(sqlite_station, tmp_path):
    """The damaged-files fault stayed until the next scheduled backup (a day), the file put
    back and a backup by hand exit 0 meanwhile."""
    st, ids, bk = _backed_up(sqlite_station, tmp_path)
    key = st.get(ids[0]).image_key
    good = st.images.path(key).read_bytes()
    with open(st.images.path(key), "r+b") as fh:
        fh.truncate(100)
    faults: dict[str, str] = {}
    schedule = BackupSchedule(st.config.data_dir, bk, 24 * 3600, faults)
    wait = schedule._tick()                            # the scheduled backup
    assert key in faults["backup"]
    st.images.path(key).write_bytes(good)              # put back, as the fault says
    r = _run(["backup", "--data", st.config.data_dir, "--to", bk])
    assert r.exit_code == 0, r.output
    status = schedule.status()                         # /health reads it
    assert "backup" not in faults and status["error"] is None and status["last"]["damaged_at_station"] == 0
    assert wait <= 60                                  # while the fault stood, the folder was looked at every minute
    assert schedule._tick() > 23 * 3600                 # the next scheduled one, a day on


def test_a_backup_by_hand_that_finds_the_files_still_damaged_keeps_the_fault(sqlite_station, tmp_path):
    st, ids, bk = _backed_up(sqlite_station, tmp_path)
    key = st.get(ids[0]).image_key
    with open(st.images.path(key), "r+b") as fh:
        fh.truncate(100)
    faults: dict[str, str] = {}
    schedule = BackupSchedule(st.config.data_dir, bk, 24 * 3600, faults)
    schedule.run_once()
    assert _run(["backup", "--data", st.config.data_dir, "--to", bk]).exit_code == 1
    schedule.status()
    assert key in faults["backup"] and "keeps a whole copy" in faults["backup"]


def test_an_old_backup_coming_back_does_not_end_the_failed_backup_fault(sqlite_station, tmp_path):
    """The backup disk away at the failure (no manifest to compare), plugged back in with
    its backup of an hour ago: that backup ended the fault, none having worked since."""
    st, _ids, bk = _backed_up(sqlite_station, tmp_path)
    manifest = json.loads((bk / "backup.json").read_text())
    manifest["made_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    (bk / "backup.json").write_text(json.dumps(manifest))
    os.rename(bk, tmp_path / "away")
    bk.write_text("the mount point, the disk away")
    faults: dict[str, str] = {}
    schedule = BackupSchedule(st.config.data_dir, bk, 24 * 3600, faults)
    schedule.run_once()
    assert "backup" in faults
    bk.unlink()
    os.rename(tmp_path / "away", bk)                  # plugged back in
    status = schedule.status()
    assert status["error"] and "backup" in faults
    # a backup that works now ends it
    assert _run(["backup", "--data", st.config.data_dir, "--to", bk]).exit_code == 0
    assert schedule.status()["error"] is None and "backup" not in faults
