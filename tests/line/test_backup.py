"""A backup is a whole station folder: every record, and every file the records name."""
from __future__ import annotations

import os

import pytest

from lineguard.line.backup import BackupError, backup_station
from lineguard.line.config import StationConfig
from lineguard.line.station import Part, Station
from lineguard.line.sweep import StoreSweep

from .conftest import FakeInspector, png_bytes


def _inspect(st, n: int, start: int = 0) -> list[int]:
    ids = [st.inspect(png_bytes(60 if i % 3 else 200, seed=i), Part(f"p{i}", "L1", "S1", "cell")).record.id
           for i in range(start, start + n)]
    st.maps.flush()
    return ids


def _open(folder):
    return Station(StationConfig(data_dir=folder, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)


def _named(st) -> set[str]:
    from sqlalchemy import select

    from lineguard.line.orm import Inspection
    with st.db.session() as s:
        rows = s.execute(select(Inspection.image_key, Inspection.heatmap_key, Inspection.overlay_key))
        return {k for row in rows for k in row if k}


def test_a_backup_runs_as_a_station_with_every_record_and_file(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    ids = _inspect(st, 6)
    st.review(ids[0], "defect", "maria", "scratch")
    dest = tmp_path / "backup"
    report = backup_station(st.config.data_dir, dest)      # while the station runs
    assert report.parts == 6 and report.files_copied == len(_named(st)) + 1 and report.models == 1
    copy = _open(dest)
    try:
        for i in ids:
            a, b = st.get(i), copy.get(i)
            assert (b.verdict, b.score, b.image_key, b.heatmap_key, b.reviewed) == \
                   (a.verdict, a.score, a.image_key, a.heatmap_key, a.reviewed)
            assert copy.images.get(b.image_key) == st.images.get(a.image_key)
        # the restored station judges parts with the backed-up model, and nothing in it is unnamed
        assert copy.inspect(png_bytes(200, seed=99), Part("after", "L1", "S1", "cell")).record.verdict == "NG"
        assert StoreSweep(copy.db, copy.images, min_age_s=0).run(dry_run=True).unnamed == 0
    finally:
        copy.close()
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
    copy = _open(tmp_path / "backup")
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
