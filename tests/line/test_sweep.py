"""Files no part's record names (left by a crash between two steps) are swept from the
image store; every file a record names, or is about to, stays."""
from __future__ import annotations

import os
import threading
import time

from sqlalchemy import update

from lineguard.line.disk import DiskKeeper
from lineguard.line.imagestore import ContentStore, sha256_hex
from lineguard.line.mapwriter import map_key
from lineguard.line.orm import Inspection
from lineguard.line.station import Part
from lineguard.line.sweep import StoreSweep, SweepSchedule

from .conftest import png_bytes

HOUR_AGO = time.time() - 2 * 3600


def _age(st, *keys: str) -> None:
    """Files stored two hours ago (the sweep leaves younger ones alone)."""
    st.images.recent_s = 0
    for key in keys or _all_keys(st):
        os.utime(st.images.path(key), (HOUR_AGO, HOUR_AGO))


def _all_keys(st) -> list[str]:
    root = st.images.root
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts]


def _parts(st) -> dict[str, int]:
    made = {}
    for name, value, seed in (("ok1", 60, 1), ("ng1", 200, 2), ("ok2", 60, 3), ("dup", 60, 1)):
        made[name] = st.inspect(png_bytes(value, seed=seed), Part(name, "L1", "S1", "cell")).record.id
    st.maps.flush()
    return made


def _leaks(st, made) -> dict[str, str]:
    """The files each way of leaking leaves: name -> key."""
    leaks = {}
    # killed between the disk keeper's two steps: ok2's record no longer names its files
    ok2 = st.get(made["ok2"])
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id == ok2.id)
                  .values(image_key=None, heatmap_key=None, overlay_key=None))
    leaks["cleared image"], leaks["cleared map"] = ok2.image_key, ok2.heatmap_key
    # a map stored for a part whose image was cleared meanwhile (never linked)
    leaks["late map"] = st.images.put(b"map", key=map_key(st.images, ok2.image_sha256, "other-model"))
    # an image stored for a part whose record never came (a resend answered by the first record)
    lost = png_bytes(90, seed=99)
    leaks["orphan image"] = st.images.put(lost, ".png")
    return leaks


def test_a_sweep_deletes_the_files_no_record_names_and_keeps_every_named_one(station):
    st = station      # on SQLite and PostgreSQL
    made = _parts(st)
    named = {name: st.get(i) for name, i in made.items()}
    leaks = _leaks(st, made)
    # an early station's overlay, stored under the picture's own SHA-256, named by its record
    overlay = b"an overlay picture"
    old_overlay = st.images.put(overlay, ".png")
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id == made["ng1"]).values(overlay_key=old_overlay))
    # a part whose map is on its way: the file is stored, the record not linked yet
    ng1 = named["ng1"]
    pending_map = map_key(st.images, ng1.image_sha256, "next-model")
    st.images.put(b"map to be linked", key=pending_map)
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id == made["ng1"]).values(model_id="next-model"))
    # not the store's to judge: a temp file being written, a file someone put there by hand
    (st.images.root / ".staging").mkdir(exist_ok=True)
    (st.images.root / ".staging" / "x.tmp").write_bytes(b"half")
    (st.images.root / "README.txt").write_text("keep me")
    _age(st)
    before = set(_all_keys(st))

    dry = StoreSweep(st.db, st.images).run(dry_run=True)
    assert (dry.unnamed, dry.deleted) == (4, 0) and set(_all_keys(st)) == before
    report = StoreSweep(st.db, st.images, batch=2).run()
    assert (report.unnamed, report.deleted, report.young) == (4, 4, 0)
    assert report.unnamed_bytes == dry.unnamed_bytes > 0
    left = set(_all_keys(st))
    assert left == before - set(leaks.values())
    for name in ("ok1", "ng1", "dup"):
        rec = st.get(made[name])
        assert rec.image_key in left and (rec.heatmap_key is None or rec.heatmap_key in left)
    assert {named["ok1"].heatmap_key, named["ng1"].heatmap_key, old_overlay, pending_map} <= left
    assert (st.images.root / ".staging" / "x.tmp").exists() and (st.images.root / "README.txt").exists()
    assert StoreSweep(st.db, st.images).run().unnamed == 0      # nothing left to find


def test_young_files_are_left_to_the_record_that_is_about_to_name_them(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    made = _parts(st)
    leaks = _leaks(st, made)
    _age(st, *[k for k in _all_keys(st) if k != leaks["orphan image"]])
    report = StoreSweep(st.db, st.images).run()
    assert (report.unnamed, report.young) == (3, 1) and st.images.exists(leaks["orphan image"])
    # an old file stored again for a new part is as young as a new one: another process
    # on the same data folder (a second ContentStore) sweeping now must not take it
    ok1 = st.get(made["ok1"])
    _age(st, ok1.image_key)
    with st.db.session() as s:       # ok1's record is cleared; the new part's not committed yet
        s.execute(update(Inspection).where(Inspection.image_sha256 == ok1.image_sha256)
                  .values(image_key=None))
    st.images.put(st.images.get(ok1.image_key), ".png")
    other = StoreSweep(st.db, ContentStore(st.images.root))
    assert other.run().unnamed == 0 and st.images.exists(ok1.image_key)


def test_a_full_disk_with_nothing_left_to_delete_sweeps_at_once(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    made = _parts(st)
    leaks = _leaks(st, made)
    _age(st)
    with st.db.session() as s:    # every image left is retraining's: nothing the keeper may delete
        s.execute(update(Inspection).values(reviewed=True))
    sweep = SweepSchedule(StoreSweep(st.db, st.images), every_s=24 * 3600, first_after_s=24 * 3600)
    keeper = DiskKeeper(st.db, st.images, st.faults, 100, free_bytes=lambda: 10, sweep=sweep).start()
    try:
        keeper.check()
        assert "disk" in st.faults
        deadline = time.monotonic() + 20
        while sweep.last is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sweep.last is not None and sweep.last.deleted == 4
        assert not any(st.images.exists(k) for k in leaks.values())
        status = keeper.status()["store_sweep"]
        assert status["files_deleted"] == 4 and status["last"]["unnamed"] == 4 and status["every_h"] == 24
        first = sweep.last
        keeper.check()                                 # swept in the last hour: not again
        time.sleep(0.3)
        assert sweep.last is first
    finally:
        keeper.close()


def test_a_station_sweeps_its_store_and_its_disk_status_says_so(sqlite_station):
    st = sqlite_station()
    assert st.disk.sweep._thread.is_alive() and st.disk.status()["store_sweep"]["last"] is None
    import pytest
    from lineguard.line.config import StationConfig
    with pytest.raises(ValueError, match="store_sweep_h"):
        StationConfig(store_sweep_h=-1)


def test_a_sweep_of_a_store_with_stray_names_ignores_them(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    digest = sha256_hex(b"x")
    # folders and names the store never writes: a wrong folder for the name, upper-case hex
    for rel in (f"00/00/{digest}.png", f"{digest[:2]}/{digest[2:4]}/{digest.upper()}.png", "ab/notes.png"):
        p = st.images.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        os.utime(p, (HOUR_AGO, HOUR_AGO))
    report = StoreSweep(st.db, st.images).run()
    assert (report.files, report.unnamed) == (0, 0)
    assert all((st.images.root / r).exists() for r in ("00/00", "ab/notes.png"))


def test_a_database_that_names_none_of_the_files_deletes_nothing_and_says_so(sqlite_station, tmp_path):
    # a station moved to another database (or given the wrong --db) with its old images
    from lineguard.line.db import Database
    st = sqlite_station(min_free_gb=0)
    _parts(st)
    _age(st)
    before = set(_all_keys(st))
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.upgrade()
    faults: dict = {}
    schedule = SweepSchedule(StoreSweep(other, st.images), every_s=0, faults=faults)
    report = schedule.run_once()
    assert report.deleted == 0 and report.unnamed == len(before) and set(_all_keys(st)) == before
    assert "holds no part" in faults["store_sweep"] and "Nothing was deleted" in faults["store_sweep"]
    schedule.sweep.db = st.db            # back on its own database: the fault clears
    assert schedule.run_once().unnamed == 0 and "store_sweep" not in faults
    other.dispose()


def test_a_database_restored_from_an_older_backup_deletes_nothing(sqlite_station, tmp_path):
    # the images stored since the backup are named by no record it holds: they are the
    # newest parts' images, not a crash's leftovers
    import datetime as dt
    import sqlite3

    from lineguard.line.db import Database
    from lineguard.line.orm import utcnow
    st = sqlite_station(min_free_gb=0)
    _parts(st)
    earlier = utcnow() - dt.timedelta(hours=3)
    with st.db.session() as s:
        s.execute(update(Inspection).values(created_at=earlier))
    _age(st)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(st.config.database_url.split("///", 1)[1]) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    for i in range(30):        # the parts since the backup: 60 files, under the share rule's 100
        st.inspect(png_bytes(60, seed=100 + i), Part(f"new{i}", "L1", "S1", "cell"))
    st.maps.flush()
    _age(st, *[k for k in _all_keys(st) if os.stat(st.images.path(k)).st_mtime > HOUR_AGO + 1])
    before = set(_all_keys(st))
    restored = Database(f"sqlite:///{backup}")
    report = StoreSweep(restored, st.images).run()
    restored.dispose()
    assert report.unnamed == 60 and report.deleted == 0 and "older backup" in report.refused
    assert set(_all_keys(st)) == before


def test_a_new_stations_few_leftovers_are_swept_not_taken_for_a_wrong_database(sqlite_station):
    import datetime as dt

    from lineguard.line.orm import utcnow
    st = sqlite_station(min_free_gb=0)
    st.inspect(png_bytes(60, seed=1), Part("only", "L1", "S1", "cell"))
    st.maps.flush()
    leftovers = [st.images.put(b"left %d" % i, ".png") for i in range(3)]
    with st.db.session() as s:      # the part was recorded before its leftovers were stored
        s.execute(update(Inspection).values(created_at=utcnow() - dt.timedelta(hours=3)))
    _age(st)
    report = StoreSweep(st.db, st.images).run()
    assert report.refused is None and report.deleted == 3
    assert not any(st.images.exists(k) for k in leftovers)


def test_closing_a_station_mid_sweep_does_not_wait_for_the_next_day(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    started = threading.Event()

    class SlowSweep(StoreSweep):
        def run(self, dry_run=False, stop=lambda: False):
            started.set()
            while not stop():
                time.sleep(0.01)
            return super().run(dry_run, stop)
    schedule = SweepSchedule(SlowSweep(st.db, st.images), every_s=24 * 3600, first_after_s=0).start()
    assert started.wait(10)
    t = time.monotonic()
    schedule.close()
    assert time.monotonic() - t < 5 and not schedule._thread.is_alive()


def test_a_file_another_process_stores_again_while_it_is_deleted_stays(sqlite_station, monkeypatch):
    # no lock spans processes: the file is moved aside first, and its time read there
    import lineguard.line.imagestore as store_module
    st = sqlite_station(min_free_gb=0)
    other = ContentStore(st.images.root)          # a second process on the same data folder
    data = png_bytes(90, seed=7)
    real_rename = os.rename
    for when in ("before the move", "after the move"):
        key = st.images.put(data, ".png")
        _age(st, key)
        st.images._stored_at.clear()

        def rename(src, dst, when=when):
            if when == "before the move":
                other.put(data, ".png")           # found there: its time renewed, no copy written
            real_rename(src, dst)
            if when == "after the move":
                other.put(data, ".png")           # not there any more: its own copy written
        monkeypatch.setattr(store_module.os, "rename", rename)
        assert st.images.delete_unnamed(key, unless_newer_than_s=3600) is (when == "after the move")
        monkeypatch.setattr(store_module.os, "rename", real_rename)
        assert st.images.get(key) == data, when
        assert not list((st.images.root / ".staging").glob("*.tmp"))
    # an old file nobody stores again goes
    _age(st, key)
    assert st.images.delete_unnamed(key, unless_newer_than_s=3600) and not st.images.exists(key)


def test_a_file_moved_aside_by_a_process_killed_mid_delete_is_put_back(sqlite_station, monkeypatch):
    # killed between moving a file aside and deciding: it may be one another process
    # stored again that moment, so the next start puts it back (a sweep deletes it later
    # if no record names it)
    st = sqlite_station(min_free_gb=0)
    data = png_bytes(90, seed=8)
    key = st.images.put(data, ".png")
    staging = st.images.root / ".staging"
    staging.mkdir(exist_ok=True)
    aside = staging / f"{key.split('/')[-1]}.4242.17.tmp"
    os.rename(st.images.path(key), aside)
    (staging / "tmpabc123.tmp").write_bytes(b"a write in progress")     # a StagedFile's: not touched
    store = ContentStore(st.images.root)              # restarted within the minute: too young yet
    assert aside.exists() and not st.images.exists(key)
    store.sweep_staging(aside_older_than_s=0)         # the next start, or the next store sweep
    assert st.images.get(key) == data and not aside.exists()
    assert (staging / "tmpabc123.tmp").exists()
    # the store sweep looks too (a station restarted within the minute, then left running)
    os.rename(st.images.path(key), aside)
    real = ContentStore.sweep_staging
    monkeypatch.setattr(ContentStore, "sweep_staging", lambda self, **kw: real(self, aside_older_than_s=0))
    assert StoreSweep(st.db, st.images).run().deleted == 0
    assert st.images.get(key) == data and not aside.exists()


def test_a_new_station_with_the_file_of_a_first_part_never_recorded_is_told_so(sqlite_station):
    # one stray file on a station with no part yet (stopped before its first record): "it is
    # not the database these images were stored with" read as a wrong database, not a crash
    st = sqlite_station(min_free_gb=0)
    key = st.images.put(png_bytes(90, seed=98), ".png")
    _age(st, key)
    faults: dict = {}
    report = SweepSchedule(StoreSweep(st.db, st.images), every_s=0, faults=faults).run_once()
    assert report.deleted == 0 and report.unnamed == 1 and st.images.path(key).exists()
    assert "holds no part yet, and 1 file is in the image store" in faults["store_sweep"]
    assert "left by a first part" in faults["store_sweep"] and "Nothing was deleted" in faults["store_sweep"]
