"""Inside the station (issue #11 item 11): one active version per product/line in the
database, replaced models freed, and folders fsynced after renames under --power-safe."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from lineguard.line.orm import ModelVersion
from lineguard.line.station import Part

from fake_inspector import FakeInspector, png_bytes


def test_the_database_refuses_two_active_versions_of_one_product_line(station):
    station.add_model(FakeInspector(0.5, "v-b").to_bytes(), "cell")
    with pytest.raises(IntegrityError):
        with station.db.session() as s:
            s.execute(update(ModelVersion).where(ModelVersion.product == "cell").values(active=True))
    # the registry's own switch (deactivate, then activate) still works both ways
    station.activate_model("cell", "", 2)
    station.rollback_model("cell", "")
    with station.db.session() as s:
        assert [v for v in s.scalars(select(ModelVersion.version).where(ModelVersion.active.is_(True)))] == [1]


def test_migration_keeps_the_last_activated_of_two_active_versions(station_factory, tmp_path):
    from alembic import command
    from alembic.config import Config
    from lineguard.line import db as db_mod
    st = station_factory()
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    st.add_model(FakeInspector(0.6, "v-b").to_bytes(), "cell", activate=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
    with st.db.engine.begin() as conn:      # back to 0002 and the old race's result: both active
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
        conn.execute(update(ModelVersion).values(active=True))
    st.db.upgrade()
    with st.db.session() as s:
        assert list(s.scalars(select(ModelVersion.version).where(ModelVersion.active.is_(True)))) == [2]


@pytest.mark.one_database
def test_replaced_models_and_their_queues_are_freed(station):
    p = Part(f"p-{uuid.uuid4().hex[:6]}", "L1", "S1", "cell")
    station.inspect(png_bytes(40, seed=1), p)
    old_id = station.models.active_for("cell", "L1").model_id
    old_batcher = station._batchers[old_id]
    station.add_model(FakeInspector(0.7, "v-new").to_bytes(), "cell", activate=True)
    assert old_id not in station.models._cache and old_id not in station._batchers
    assert old_batcher.closed
    out = station.inspect(png_bytes(40, seed=2), Part("p-next", "L1", "S1", "cell"))
    assert out.record.model_version == "v-new"
    # an upload that is not activated is not kept loaded either
    station.add_model(FakeInspector(0.8, "v-idle").to_bytes(), "cell")
    assert len(station.models._cache) == 1


def test_power_safe_station_fsyncs_the_folders_it_renames_into(sqlite_station, monkeypatch):
    from lineguard.line import imagestore
    synced = []
    real = imagestore.fsync_dir
    monkeypatch.setattr(imagestore, "fsync_dir", lambda d: (synced.append(str(d)), real(d)))
    st = sqlite_station(sqlite_synchronous="FULL")
    rec = st.inspect(png_bytes(40, seed=3), Part("p-ps", "L1", "S1", "cell")).record
    image_dir = str(st.images.path(rec.image_key).parent)
    assert image_dir in synced                          # the rename's own folder
    assert str(st.images.root) in synced                # and the new ab/ folder's entry in its parent
    st.maps.flush()   # its anomaly map goes through the same store (fsynced too)
    synced.clear()
    st2 = sqlite_station()                               # the default (NORMAL) does not pay for it
    st2.inspect(png_bytes(40, seed=4), Part("p-nps", "L1", "S1", "cell"))
    assert synced == []


def test_large_parts_take_turns_while_small_ones_pass():
    import threading
    import time
    from lineguard.line.station import PixelBudget
    budget = PixelBudget(1000)
    inside, peak, lock = [0], [0], threading.Lock()

    def part(pixels):
        with budget.hold(pixels):
            with lock:
                inside[0] += pixels
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= pixels

    threads = [threading.Thread(target=part, args=(1000,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1000                # three maximum-size parts: one at a time
    # small parts together, not in turn: all five inside at once (each waits there for the
    # others; in turn, the first would wait for ever and the barrier break): counted, not timed
    together, broken = threading.Barrier(5, timeout=10), []

    def small_part():
        with budget.hold(100):
            try:
                together.wait()
            except threading.BrokenBarrierError:
                broken.append(True)

    threads = [threading.Thread(target=small_part) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert broken == []


def test_a_name_sent_in_another_spelling_is_looked_up_once(sqlite_station, monkeypatch):
    """Parts sent as l1/s1 where the records say L1/S1 read the line's names, and its day of
    station names, again for every part (on the PLC's one-second path)."""
    from lineguard.line import part_names
    st = sqlite_station()
    st.inspect(png_bytes(30, seed=1), Part("first", "L1", "S1", "cell"))
    reads = []
    stored = part_names.stored_names
    monkeypatch.setattr(part_names, "stored_names", lambda db, column: reads.append(column) or stored(db, column))
    for i in range(5):
        rec = st.inspect(png_bytes(30, seed=10 + i), Part(f"typed-{i}", "l1", "s1", "cell")).record
        assert (rec.line, rec.station) == ("L1", "S1")
    assert reads == ["line"]
