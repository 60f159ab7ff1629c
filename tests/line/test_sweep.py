"""Files no part's record names (left by a crash between two steps) are swept from the
image store; every file a record names, or is about to, stays."""
from __future__ import annotations

import os
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
    assert "not the one these images were stored with" in faults["store_sweep"]
    schedule.sweep.db = st.db            # back on its own database: the fault clears
    assert schedule.run_once().unnamed == 0 and "store_sweep" not in faults
    other.dispose()
