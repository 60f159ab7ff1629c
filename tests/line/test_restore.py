"""A restore brings a station back from its backup whole, or says exactly what is lost."""
from __future__ import annotations

import os
import stat

import pytest

from lineguard.line.backup import backup_station
from lineguard.line.config import StationConfig
from lineguard.line.restore import RestoreError, _one_restore_at_a_time, check_backup, restore_station
from lineguard.line.station import Part, Station
from lineguard.line.sweep import StoreSweep

from .conftest import FakeInspector, png_bytes
from .test_backup import _inspect, _named, _open


def _backed_up(sqlite_station, tmp_path, n=6):
    st = sqlite_station(min_free_gb=0)
    ids = _inspect(st, n)
    backup_station(st.config.data_dir, tmp_path / "backup")
    return st, ids, tmp_path / "backup"


def _flip_a_byte(path, at=None):
    # bit rot: the bytes change, the file's size and time do not
    st = path.stat()
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x55
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_restored_station_has_every_record_and_file_and_backs_up_into_the_same_folder(sqlite_station,
                                                                                        tmp_path):
    st, ids, backup = _backed_up(sqlite_station, tmp_path)
    st.review(ids[0], "defect", "maria", "scratch")
    backup_station(st.config.data_dir, backup)
    checked = check_backup(backup)
    assert checked.whole and checked.parts == 6 and checked.models == 1
    assert checked.files == len(_named(st)) + 1          # every image and map, and the model
    report = restore_station(backup, tmp_path / "restored")
    assert report.whole and report.files == checked.files and report.parts_without_image == 0
    assert not (tmp_path / ".restored.restoring").exists()
    assert not (backup / "lineguard.db-wal").exists()    # the backup is never opened for writing
    copy = _open(tmp_path / "restored")
    try:
        for i in ids:
            a, b = st.get(i), copy.get(i)
            assert (b.verdict, b.score, b.image_key, b.heatmap_key, b.reviewed) == \
                   (a.verdict, a.score, a.image_key, a.heatmap_key, a.reviewed)
            assert copy.images.get(b.image_key) == st.images.get(a.image_key)
        assert copy.inspect(png_bytes(200, seed=99), Part("after", "L1", "S1", "cell")).record.verdict == "NG"
        assert StoreSweep(copy.db, copy.images, min_age_s=0).run(dry_run=True).unnamed == 0
    finally:
        copy.close()
    # the restored station is the same station: its backups go on into the same folder
    assert backup_station(tmp_path / "restored", backup).parts == 7


def test_damaged_and_missing_files_are_found_and_their_parts_come_back_without_them(sqlite_station, tmp_path):
    st, ids, backup = _backed_up(sqlite_station, tmp_path)
    rotten, deleted = st.get(ids[1]), st.get(ids[2])
    mapped = next(st.get(i) for i in ids[3:] if st.get(i).heatmap_key)
    assert mapped.heatmap_key.endswith(".png") and ".map-" in mapped.heatmap_key
    _flip_a_byte(backup / "images" / rotten.image_key)
    os.unlink(backup / "images" / deleted.image_key)
    _flip_a_byte(backup / "images" / mapped.heatmap_key, at=40)      # inside the map's first chunk
    before = {p: p.read_bytes() for p in backup.rglob("*") if p.is_file()}

    checked = check_backup(backup)
    assert (checked.missing, checked.damaged, checked.parts_without_image) == (1, 2, 2) and not checked.whole
    assert any(rotten.image_key in e and "bytes changed" in e for e in checked.examples)
    assert any(mapped.heatmap_key in e and "checksum" in e for e in checked.examples)
    report = restore_station(backup, tmp_path / "restored")
    assert (report.missing, report.damaged, report.parts_without_image) == (1, 2, 2)
    assert {p: p.read_bytes() for p in backup.rglob("*") if p.is_file()} == before   # the backup untouched
    copy = _open(tmp_path / "restored")
    try:
        for lost in (rotten, deleted):
            rec = copy.get(lost.id)
            assert rec.image_key is None and rec.heatmap_key is None and rec.verdict == lost.verdict
        rec = copy.get(mapped.id)
        assert rec.image_key == mapped.image_key and rec.heatmap_key is None     # the image is still good
        assert all(copy.images.exists(k) for k in _named(copy))
    finally:
        copy.close()


def test_a_missing_model_file_is_named_by_its_version(sqlite_station, tmp_path):
    st, _ids, backup = _backed_up(sqlite_station, tmp_path, n=1)
    (model,) = [p for p in (backup / "models").rglob("*") if p.is_file() and ".staging" not in p.parts]
    _flip_a_byte(model)
    report = check_backup(backup)
    assert report.models_damaged == ["cell v1"] and not report.whole


def test_a_restore_never_writes_into_a_used_folder_nor_from_a_folder_that_is_no_whole_backup(sqlite_station,
                                                                                            tmp_path):
    st, _ids, backup = _backed_up(sqlite_station, tmp_path, n=2)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("the old station's")
    with pytest.raises(RestoreError, match="not empty"):
        restore_station(backup, tmp_path / "used")
    with pytest.raises(RestoreError, match="lies in it"):
        restore_station(backup, backup / "restored")
    with pytest.raises(RestoreError, match="not a backup"):
        restore_station(st.config.data_dir, tmp_path / "r1")
    with pytest.raises(RestoreError, match="no backup in"):
        restore_station(tmp_path / "nowhere", tmp_path / "r1")
    (backup / "lineguard.db-wal").write_bytes(b"")
    with pytest.raises(RestoreError, match="open as a station"):
        check_backup(backup)
    (backup / "lineguard.db-wal").unlink()
    with _one_restore_at_a_time(tmp_path):          # another restore beside it is running
        with pytest.raises(RestoreError, match="another restore"):
            restore_station(backup, tmp_path / "r1")
    assert not (tmp_path / "r1").exists() and (tmp_path / "used" / "notes.txt").exists()


def test_a_backup_copied_without_its_file_times_is_restored_with_a_note(sqlite_station, tmp_path):
    # carried off the dead line PC with cp -r, tar or a USB stick: the database's time differs
    _st, ids, backup = _backed_up(sqlite_station, tmp_path, n=3)
    db = backup / "lineguard.db"
    os.utime(db, ns=(db.stat().st_atime_ns, db.stat().st_mtime_ns + 10**9))
    report = restore_station(backup, tmp_path / "restored")
    assert report.whole and report.parts == 3 and "differs from what the backup wrote" in report.notes[0]


def _rot(db, at: int, new: bytes) -> None:
    st = db.stat()
    data = bytearray(db.read_bytes())
    data[at:at + len(new)] = new
    db.write_bytes(bytes(data))
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("where", ["a table page", "an index entry"])
def test_a_backup_whose_database_rotted_is_refused(sqlite_station, tmp_path, where):
    import sqlite3
    _st, _ids, backup = _backed_up(sqlite_station, tmp_path, n=20)
    db = backup / "lineguard.db"
    if where == "a table page":
        _rot(db, 4096 + 8, b"\xff" * 192)        # a page's header and cell pointers overwritten
    else:
        # one character of one part's image hash in its index: the table is whole (a quick
        # check passes) but looking the part up by its image finds nothing
        con = sqlite3.connect(db)
        page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'ix_inspections_image_sha256'").fetchone()[0]
        sha = con.execute("SELECT min(image_sha256) FROM inspections").fetchone()[0]
        con.close()
        at = db.read_bytes().find(sha.encode(), (page - 1) * 4096, page * 4096)
        assert at > 0
        _rot(db, at + 63, b"0" if sha[63] != "0" else b"1")
    with pytest.raises(RestoreError, match="damaged|cannot be read"):
        restore_station(backup, tmp_path / "restored")
    assert not (tmp_path / "restored").exists() and not (tmp_path / ".restored.restoring").exists()


class _FillsUp:
    """The restore's disk: full after a few files."""

    def __init__(self, real_open, after: int):
        self.real_open, self.after, self.opened = real_open, after, 0

    def __call__(self, path, mode="r", *a, **kw):
        fh = self.real_open(path, mode, *a, **kw)
        self.opened += 1
        if self.opened > self.after:
            def full(data):
                raise OSError(28, "No space left on device")
            fh.write = full
        return fh


def test_a_restore_stopped_by_a_full_disk_puts_nothing_in_place_and_the_next_one_works(sqlite_station, tmp_path,
                                                                                       monkeypatch):
    import builtins

    import lineguard.line.restore as restore_module
    _st, _ids, backup = _backed_up(sqlite_station, tmp_path, n=3)
    # a full disk is the restore's failure, never the backup's damage
    monkeypatch.setattr(restore_module, "open", _FillsUp(builtins.open, 2), raising=False)
    with pytest.raises(OSError, match="No space"):
        restore_station(backup, tmp_path / "new")
    assert not (tmp_path / "new").exists() and not (tmp_path / ".new.restoring").exists()
    # into an empty folder made for it (a disk of its own mounted there): built inside it
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "lost+found").mkdir()
    with pytest.raises(OSError, match="No space"):
        restore_station(backup, tmp_path / "disk")
    assert {p.name for p in (tmp_path / "disk").iterdir()} == {"lost+found"}
    monkeypatch.delattr(restore_module, "open")
    assert restore_station(backup, tmp_path / "disk").whole
    assert (tmp_path / "disk" / "lineguard.db").exists() and not (tmp_path / "disk" / ".lineguard-restoring").exists()


def test_a_restore_killed_while_moving_into_its_folder_is_started_again(sqlite_station, tmp_path):
    _st, _ids, backup = _backed_up(sqlite_station, tmp_path, n=3)
    target = tmp_path / "disk"
    (target / ".lineguard-restoring" / "models").mkdir(parents=True)     # what a kill left: the
    (target / "images" / "ab").mkdir(parents=True)                       # images moved, not the database
    assert restore_station(backup, target).whole
    assert {p.name for p in target.iterdir()} == {"lineguard.db", "images", "models"}
    (target / "lineguard.db").unlink()
    (target / "notes.txt").write_text("someone's")                         # not a restore's leftovers
    with pytest.raises(RestoreError, match="not empty"):
        restore_station(backup, target)


def test_a_model_lost_in_the_backup_is_put_back_by_serve_model(sqlite_station, tmp_path):
    from .conftest import FakeInspector
    _st, _ids, backup = _backed_up(sqlite_station, tmp_path, n=1)
    (model,) = [p for p in (backup / "models").rglob("*") if p.is_file() and ".staging" not in p.parts]
    model.unlink()
    assert restore_station(backup, tmp_path / "restored").models_damaged == ["cell v1"]
    bundle = tmp_path / "cell.lgm"
    bundle.write_bytes(FakeInspector(0.5).to_bytes())        # the same bundle, kept by the plant
    copy = _open(tmp_path / "restored")
    try:
        mv = copy.ensure_model(bundle, "cell")
        assert mv.version == 1 and copy.models.store.exists(mv.file_key)
        assert copy.inspect(png_bytes(200, seed=5), Part("p", "L1", "S1", "cell")).record.verdict == "NG"
    finally:
        copy.close()


def test_links_pipes_and_odd_keys_in_a_backup_are_damage_never_followed(sqlite_station, tmp_path):
    import sqlite3
    st, ids, backup = _backed_up(sqlite_station, tmp_path, n=4)
    piped, linked, odd = (st.get(i) for i in ids[:3])
    os.unlink(backup / "images" / piped.image_key)
    os.mkfifo(backup / "images" / piped.image_key)           # read, it would wait for ever
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not the station's")
    os.unlink(backup / "images" / linked.image_key)
    os.symlink(secret, backup / "images" / linked.image_key)
    con = sqlite3.connect(backup / "lineguard.db")
    con.execute("UPDATE inspections SET image_key = ? WHERE id = ?", ("ab/\x00cd.png", odd.id))
    con.commit()
    con.close()
    report = check_backup(backup)
    assert (report.damaged, report.missing, report.parts_without_image) == (2, 1, 3)
    assert any("not a plain file" in e for e in report.examples) and any("a link" in e for e in report.examples)


def test_a_verifying_backup_copies_rotten_files_again(sqlite_station, tmp_path):
    st, ids, backup = _backed_up(sqlite_station, tmp_path, n=4)
    rotten = st.get(ids[1])
    _flip_a_byte(backup / "images" / rotten.image_key)
    # a plain backup trusts a file of the right size: the rot stays
    assert backup_station(st.config.data_dir, backup).files_copied == 0 and not check_backup(backup).whole
    report = backup_station(st.config.data_dir, backup, verify=True)
    assert (report.verified, report.repaired, report.damaged_at_station) == (len(_named(st)) + 1, 1, 0)
    assert check_backup(backup).whole
    # the station's own file rotted too: copied again, still not whole, and said
    _flip_a_byte(st.images.path(rotten.image_key))
    _flip_a_byte(backup / "images" / rotten.image_key, at=10)
    assert backup_station(st.config.data_dir, backup, verify=True).damaged_at_station == 1


def test_the_stations_own_backups_read_back_what_they_hold_weekly(sqlite_station, tmp_path):
    import json

    from lineguard.line.backup import BackupSchedule
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 3)
    schedule = BackupSchedule(st.config.data_dir, tmp_path / "bk", 3600, st.faults)
    schedule.run_once()
    assert schedule.last["verified"] == 0          # a first backup copies every file
    schedule.run_once()
    assert schedule.last["verified"] > 0           # never verified yet: due
    schedule.run_once()
    assert schedule.last["verified"] == 0          # verified just now: not for a week
    assert schedule.status()["verified_at"]        # the line view shows when
    manifest = json.loads((tmp_path / "bk" / "backup.json").read_text())
    manifest["verified_at"] = "2026-01-01T00:00:00Z"
    (tmp_path / "bk" / "backup.json").write_text(json.dumps(manifest))
    schedule.run_once()
    assert schedule.last["verified"] > 0


def test_a_new_data_folder_its_backup_and_its_restore_are_their_owner_s_alone(tmp_path):
    # the photos and, on SQLite, every user's password hash: made with the usual umask,
    # any account on the line PC could read them
    old = os.umask(0o022)
    try:
        st = Station(StationConfig(data_dir=tmp_path / "plant" / "station", min_free_gb=0, store_sweep_h=0),
                     loader=FakeInspector.load)
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        st.close()
        backup_station(tmp_path / "plant" / "station", tmp_path / "backup")
        restore_station(tmp_path / "backup", tmp_path / "restored")
    finally:
        os.umask(old)
    for folder in ("plant/station", "backup", "restored"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((tmp_path / "plant").stat().st_mode) == 0o755     # a folder above: as the user made it


def test_a_backup_from_a_newer_lineguard_is_refused_before_anything_is_written(sqlite_station, tmp_path):
    """This version cannot run on a newer one's tables: restoring that backup gave a station
    whose `serve` failed on Alembic's "Can't locate revision"; refused first, nothing written."""
    import sqlite3

    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line.db import schema_revisions
    st, _ids, backup = _backed_up(sqlite_station, tmp_path)
    db = sqlite3.connect(backup / "lineguard.db")
    db.execute("UPDATE alembic_version SET version_num = '0025_future'")    # as a newer lineguard's backup
    db.commit()
    db.close()
    with pytest.raises(RestoreError, match=r"newer lineguard \(schema 0025_future; this version knows up to "
                       + schema_revisions()[0]):
        restore_station(backup, tmp_path / "restored")
    with pytest.raises(RestoreError, match="0025_future"):
        check_backup(backup)
    r = CliRunner().invoke(app, ["restore", "--from", str(backup), "--data", str(tmp_path / "restored")])
    assert r.exit_code == 2 and "0025_future" in r.output and "Nothing was written" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "data"]     # no folder made, not even staging


def test_reference_photos_are_backed_up_and_restored_and_a_lost_one_is_not_kept(sqlite_station, tmp_path):
    """The good photos a retrain learns beside the stored parts (line.reference) were in no
    backup: a station restored after its disk died retrained from its stored parts alone."""
    from lineguard.line.reference import of_station
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    ref = of_station(st)
    _, new = ref.add("cell", png_bytes(90, seed=501), "good-1.png", by="jonas")
    ref.add("cell", png_bytes(95, seed=502), "good-2.png", by="jonas")
    assert new and len(ref.for_training("cell", "")) == 2
    backup = tmp_path / "backup"
    backup_station(st.config.data_dir, backup)
    stored = [p for p in (backup / "reference").rglob("*") if p.is_file() and ".staging" not in p.parts]
    assert len(stored) == 2
    next(p for p in stored if p.read_bytes() == png_bytes(95, seed=502)).unlink()
    report = restore_station(backup, tmp_path / "restored")
    assert report.missing == 1 and any("missing" in e for e in report.examples), report
    copy = _open(tmp_path / "restored")
    try:
        ((_, key),) = of_station(copy).for_training("cell", "")     # the lost one is not kept
        assert (tmp_path / "restored" / "reference" / key).read_bytes() == png_bytes(90, seed=501)
    finally:
        copy.close()
