"""Storage of a station on SQLite and on a real PostgreSQL: same tests, both backends."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import inspect as sa_inspect, text

from lineguard.line.db import schema_revisions
from lineguard.line.auth import create_key, revoke_key, role_allows, verify_key
from lineguard.line.config import RetentionPolicy
from lineguard.line.errors import Conflict, CorruptImage, NoActiveModel, NotAnImage, UploadTooLarge
from lineguard.line.orm import ApiKey, Inspection
from lineguard.line.station import Part

from fake_inspector import FakeInspector, png_bytes


def part(pid: str, **kw) -> Part:
    return Part(part_id=pid, line=kw.pop("line", "L1"), station=kw.pop("station", "S1"),
                product=kw.pop("product", "cell"), **kw)


def test_migrations_create_every_table_and_are_repeatable(station):
    names = set(sa_inspect(station.db.engine).get_table_names(schema=station.db.schema))
    assert {"inspections", "model_versions", "model_activations", "api_keys", "jobs", "alembic_version", "outbox",
            "outbox_deliveries", "outbox_sinks", "line_signals", "alarms", "sign_in_failures", "data_folders"} <= names
    indexes = {ix["name"] for ix in sa_inspect(station.db.engine).get_indexes("inspections", schema=station.db.schema)}
    assert "ix_inspections_image_sha256" in indexes     # the disk keeper finds a file's records by it
    station.db.upgrade()   # a restart runs upgrade head again: a no-op
    with station.db.session() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema_revisions()[0]
    if station.db.is_sqlite:
        with station.db.session() as s:
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_migration_0025_adds_the_lot_and_defect_type_indexes_and_takes_them_back(station):
    from alembic import command
    from alembic.config import Config
    from lineguard.line import db as db_mod

    def indexes():
        return {ix["name"] for ix in sa_inspect(station.db.engine).get_indexes("inspections",
                                                                                schema=station.db.schema)}
    new = {"ix_inspections_lot_id", "ix_inspections_defect_type_id"}
    assert new <= indexes()
    cfg = Config()
    cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
    with station.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0024")
    assert not new & indexes()
    station.db.upgrade()
    assert new <= indexes()
    with station.db.session() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema_revisions()[0]


def test_inspection_is_recorded_with_model_and_files(station):
    out = station.inspect(png_bytes(220, seed=1), part("p1", lot="A", serial="7"))
    assert out.created
    rec = station.get(out.record.id)
    assert rec.verdict == "NG" and rec.lot == "A" and rec.serial == "7" and rec.registry_version == 1
    assert rec.model_version == "v-a" and rec.regions and rec.timings_ms["station_model"] >= 0
    assert station.images.get(rec.image_key) == png_bytes(220, seed=1)
    assert rec.heatmap_key and rec.overlay_key is None and rec.image_sha256 in rec.image_key


def test_idempotent_on_part_and_image_even_concurrently(station):
    img = png_bytes(40, seed=2)
    results = []

    def go():
        results.append(station.inspect(img, part("same")))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.created for o in results) == 1
    assert len({o.record.id for o in results}) == 1
    assert len(station.query(part_id="same")) == 1


def test_bad_input_raises_and_stores_nothing(station_factory):
    st = station_factory(max_upload_bytes=10_000)
    st.add_model(FakeInspector().to_bytes(), "cell", activate=True)
    with pytest.raises(NotAnImage):
        st.inspect(b"hello world, not an image", part("x1"))
    with pytest.raises(CorruptImage):
        st.inspect(png_bytes(50, seed=3)[:300], part("x2"))
    with pytest.raises(UploadTooLarge):
        st.inspect(png_bytes(50, seed=3, size=256), part("x3"))
    with pytest.raises(NoActiveModel):
        st.inspect(png_bytes(50, seed=3), part("x4", product="ghost"))
    assert st.query() == []
    assert not any(p.is_file() for p in st.images.root.rglob("*"))


def test_query_filters_and_cursor(station):
    for i in range(5):
        station.inspect(png_bytes(20 + i, seed=10 + i), part(f"q{i}", line="LA" if i % 2 else "LB"))
    station.inspect(png_bytes(230, seed=30), part("q-ng", line="LA", station="S7"))
    assert [r.part_id for r in station.query(line="LA")] == ["q-ng", "q3", "q1"]
    assert [r.part_id for r in station.query(verdict="NG")] == ["q-ng"]
    assert [r.part_id for r in station.query(station="S7")] == ["q-ng"]
    page1 = station.query(limit=4)
    page2 = station.query(limit=4, before_id=page1[-1].id)
    assert len(page1) == 4 and len(page2) == 2 and not {r.id for r in page1} & {r.id for r in page2}
    now = dt.datetime.now(dt.timezone.utc)
    assert len(station.query(since=now - dt.timedelta(minutes=1))) == 6
    assert station.query(until=now - dt.timedelta(minutes=1)) == []
    station.review(page1[0].id, "defect", "anna", "confirmed crack")
    assert [r.id for r in station.query(reviewed=True)] == [page1[0].id]
    assert len(station.query(reviewed=False)) == 5


def test_registry_versions_activate_rollback(station):
    station.add_model(FakeInspector(0.2, "v-b").to_bytes(), "cell")
    station.add_model(FakeInspector(0.3, "v-c").to_bytes(), "cell", line="L5")
    vs = station.models.list("cell")
    assert [(m.line, m.version, m.active) for m in vs] == [("", 1, True), ("", 2, False), ("L5", 1, False)]
    station.activate_model("cell", "", 2)
    assert station.models.active_for("cell", "L1").version == 2
    station.activate_model("cell", "L5", 1)
    assert station.models.active_for("cell", "L5").model_version == "v-c"     # line-specific wins
    assert station.rollback_model("cell", "").version == 1
    assert station.models.active_for("cell", "L1").model_version == "v-a"
    # L5's first own model rolls back to the model of every line, which judged it before
    back = station.rollback_model("cell", "L5")
    assert (back.line, back.version) == ("", 1)
    assert station.models.active_for("cell", "L5").model_version == "v-a"
    with pytest.raises(Conflict):       # and nothing before that
        station.rollback_model("cell", "L5")


def test_api_keys_hashed_roles_revocation(station):
    with station.db.session() as s:
        row, key = create_key(s, "engineer", "eng")
    with station.db.session() as s:
        stored = s.get(ApiKey, row.id)
        assert key not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
        assert verify_key(s, key).role == "engineer"
        assert verify_key(s, key + "x") is None and verify_key(s, "garbage") is None
        revoke_key(s, row.id)
    with station.db.session() as s:
        assert verify_key(s, key) is None
    assert role_allows("admin", "operator") and role_allows("engineer", "engineer")
    assert not role_allows("operator", "engineer")


def test_retention_keeps_ng_and_samples_ok(station_factory):
    st = station_factory(retention=RetentionPolicy(keep_ng=True, ok_sample_rate=0.0))
    st.add_model(FakeInspector().to_bytes(), "cell", activate=True)
    ok = st.inspect(png_bytes(30, seed=40), part("r-ok")).record
    ng = st.inspect(png_bytes(230, seed=41), part("r-ng")).record
    assert ok.image_key is None and ok.heatmap_key is None and ng.image_key is not None
    half = RetentionPolicy(ok_sample_rate=0.5)
    kept = sum(half.keep(False, f"{i:08x}" * 8) for i in range(0, 2 ** 32 - 1, 2 ** 32 // 400))
    assert 150 < kept < 250
    assert half.keep(True, "f" * 64)


def test_records_survive_a_new_station_process(station_factory):
    st = station_factory()
    st.add_model(FakeInspector().to_bytes(), "cell", activate=True)
    rid = st.inspect(png_bytes(30, seed=50), part("persist")).record.id
    st.close()
    st2 = station_factory()
    assert st2.get(rid).part_id == "persist"
    assert st2.models.active_for("cell", "L1").version == 1


def test_map_is_linked_only_once_its_file_is_stored(station, monkeypatch):
    # A crash between the answer and the map write must leave a record without a map,
    # never one naming a file that is not there. (The writer's store is held until the
    # database has been read: a linger of 2 s still ran out first on a loaded CI machine.)
    import threading
    read = threading.Event()
    put = station.maps.store.put

    def held_put(*a, **kw):
        if ".map-" in str(kw.get("key")):       # the map's write, not the part's image
            read.wait(30)
        return put(*a, **kw)
    monkeypatch.setattr(station.maps.store, "put", held_put)
    out = station.inspect(png_bytes(220, seed=60), part("map-later"))
    assert out.record.heatmap_key                       # the answer links the map ...
    with station.db.session() as s:
        row = s.get(Inspection, out.record.id)
        assert row.heatmap_key is None and row.heatmap_scale   # ... the database not yet
    assert not station.images.exists(out.record.heatmap_key)
    read.set()
    rec = station.get(out.record.id)                    # reads wait for the map in flight
    assert rec.heatmap_key == out.record.heatmap_key and station.images.exists(rec.heatmap_key)
    again = station.inspect(png_bytes(220, seed=60), part("map-later"))
    assert not again.created and again.record.heatmap_key == rec.heatmap_key


def test_maps_in_flight_are_stored_on_close(station_factory):
    st = station_factory()
    st.add_model(FakeInspector().to_bytes(), "cell", activate=True)
    st.maps.linger_s = 0.2
    rid = st.inspect(png_bytes(220, seed=61), part("map-close")).record.id
    st.close()
    st2 = station_factory()
    rec = st2.get(rid)
    assert rec.heatmap_key and st2.images.exists(rec.heatmap_key)


def test_sqlite_durability_setting(station_factory):
    if station_factory.backend != "sqlite":
        pytest.skip("SQLite only")
    st = station_factory()
    with st.db.session() as s:     # NORMAL (1) in WAL: survives kill -9, the default
        assert s.execute(text("PRAGMA synchronous")).scalar() == 1
    st.close()
    st = station_factory(sqlite_synchronous="FULL")
    with st.db.session() as s:
        assert s.execute(text("PRAGMA synchronous")).scalar() == 2


def test_key_cache_forgets_revoked_keys(station):
    from lineguard.line.auth import KeyCache
    cache = KeyCache(ttl_s=60)
    with station.db.session() as s:
        row, key = create_key(s, "operator", "op")
    gen = cache.generation()
    with station.db.session() as s:
        cache.put(key, verify_key(s, key), gen)
    assert cache.get(key)[1] == "operator" and cache.get(key + "x") is None
    cache.clear()                       # what revoking through the API does
    assert cache.get(key) is None
    with station.db.session() as s:     # a read that raced with a revocation is not cached
        found = verify_key(s, key)
    cache.clear()
    cache.put(key, found, gen)
    assert cache.get(key) is None


def test_active_model_cache_follows_activation(station):
    assert station.models.active_for("cell", "L1").version == 1
    station.add_model(FakeInspector(0.5, "v-b").to_bytes(), "cell", activate=True)
    assert station.models.active_for("cell", "L1").version == 2
    station.rollback_model("cell", "")
    assert station.models.active_for("cell", "L1").version == 1


def test_stale_staging_files_of_a_killed_station_are_swept(tmp_path):
    import os
    import time
    from lineguard.line.imagestore import ContentStore
    staging = tmp_path / "images" / ".staging"
    staging.mkdir(parents=True)
    (staging / "old.tmp").write_bytes(b"half")
    os.utime(staging / "old.tmp", (time.time() - 7200, time.time() - 7200))
    (staging / "new.tmp").write_bytes(b"being written by another process")
    ContentStore(tmp_path / "images")
    assert not (staging / "old.tmp").exists() and (staging / "new.tmp").exists()


def test_old_resubmission_after_restart_is_answered_with_the_existing_record(station_factory):
    st = station_factory()
    st.add_model(FakeInspector().to_bytes(), "cell", activate=True)
    first = st.inspect(png_bytes(220, seed=70), part("again-later")).record
    st.close()
    st2 = station_factory()        # a new process: the part is not in its memory
    again = st2.inspect(png_bytes(220, seed=70), part("again-later"))
    assert not again.created and again.record.id == first.id
    assert len(st2.query(part_id="again-later")) == 1


def test_review_verdict_is_stored_queried_counted_and_kept_out_of_retraining(station_factory):
    # retention keeps no OK images: a REVIEW part must keep its image like an NG part
    st = station_factory(retention=RetentionPolicy(keep_ng=True, ok_sample_rate=0.0))
    st.add_model(FakeInspector(0.5, "v-band", review_threshold=0.3).to_bytes(), "cell", activate=True)
    ok = st.inspect(png_bytes(30, seed=60), part("b-ok")).record
    rv = st.inspect(png_bytes(100, seed=61), part("b-review")).record      # score ~0.39: in the band
    ng = st.inspect(png_bytes(230, seed=62), part("b-ng")).record
    assert (ok.verdict, rv.verdict, ng.verdict) == ("OK", "REVIEW", "NG")
    stored = st.get(rv.id)
    assert stored.verdict == "REVIEW" and stored.review_threshold == pytest.approx(0.3)
    assert stored.image_key is not None
    assert [r.part_id for r in st.query(verdict="REVIEW")] == ["b-review"]
    from lineguard.line.station import inspection_to_dict
    assert inspection_to_dict(stored)["review_threshold"] == pytest.approx(0.3)
    assert 'verdict="REVIEW"' in st.metrics.render().decode()
    # retraining learns from parts a person labelled good, never from an unreviewed
    # REVIEW part (nor an unreviewed OK one: see test_model_lifecycle)
    ok2 = st.inspect(png_bytes(35, seed=63), part("b-ok2", serial="x")).record
    keys = [k for k, _why in st.jobs.good_part_keys("cell", "", 100)]
    assert rv.image_key not in keys and ng.image_key not in keys and ok2.image_key is None
    st.review(rv.id, "good", "anna", "just a stain")
    assert st.jobs.good_part_keys("cell", "", 100) == [(rv.image_key, "confirmed")]
    # a good part whose photo was unlike the good ones (a dim lamp) is never learnt: it would
    # widen the photo check to accept the fault
    from sqlalchemy import update
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id == rv.id).values(photo_issues=["too dark: ..."]))
    assert st.jobs.good_part_keys("cell", "", 100) == []


@pytest.mark.new_schema
def test_a_0001_database_migrates_keeps_its_records_and_then_holds_review(db_backend, tmp_path):
    from sqlalchemy.exc import DBAPIError

    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.station import Station

    db_url, schema = db_backend
    backend = "postgresql" if db_url else "sqlite"
    cfg = StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema)
    old = Database(cfg.database_url, schema=schema)
    old.upgrade("0001")                                 # a station database from before review bands
    row = dict(part_id="old-1", line="L1", station="S1", product="cell", source="api", verdict="NG", score=0.9,
               threshold=0.5, pixel_threshold=0.5, model_id="m", model_version="v", image_sha256="a" * 64,
               image_width=8, image_height=8, created_at=dt.datetime(2026, 1, 1), reviewed=False)
    insert = text(f"INSERT INTO inspections ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})")
    st = None
    try:
        with old.engine.begin() as conn:
            conn.execute(insert, row)
        if backend == "postgresql":                     # the old column cannot hold the new verdict
            with pytest.raises(DBAPIError, match="too long"):
                with old.engine.begin() as conn:
                    conn.execute(insert, dict(row, part_id="old-2", verdict="REVIEW"))
        old.dispose()
        st = Station(cfg, loader=FakeInspector.load, trainer=FakeInspector.fit)    # upgrades at start-up
        with st.db.session() as s:
            assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema_revisions()[0]
        (before,) = st.query(part_id="old-1")
        assert before.verdict == "NG" and before.score == 0.9 and before.review_threshold is None
        st.add_model(FakeInspector(0.5, review_threshold=0.3).to_bytes(), "cell", activate=True)
        rec = st.inspect(png_bytes(100, seed=70), part("new-1")).record
        assert st.get(rec.id).verdict == "REVIEW"
        assert [r.part_id for r in st.query(verdict="REVIEW")] == ["new-1"]
    finally:
        if st is not None:
            st.close()


def test_a_photo_with_nothing_off_stores_sql_null_and_issues_round_trip(station):
    """Photo issues (vision.photo_check) are a JSON list, and none is SQL NULL, as on records
    from before the column: a filter on IS NULL (retraining's) sees both alike."""
    from sqlalchemy import select, update
    plain = station.inspect(png_bytes(60, seed=3), part("plain-1")).record
    doubted = station.inspect(png_bytes(60, seed=4), part("dim-1")).record
    with station.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id == doubted.id)
                  .values(photo_issues=["too dark: brightness 0.1, good photos 0.3-0.4"]))
        nulls = s.scalars(select(Inspection.id).where(Inspection.photo_issues.is_(None))).all()
    assert nulls == [plain.id]
    from lineguard.line.station import inspection_to_dict
    assert inspection_to_dict(station.get(plain.id))["photo_issues"] == []
    assert inspection_to_dict(station.get(doubted.id))["photo_issues"][0].startswith("too dark")


@pytest.mark.new_schema
def test_alarms_escalated_before_repeated_escalation_are_not_escalated_again(db_backend, tmp_path):
    """Migration 0018: escalate_at became the next due time; an alarm escalated under 0017
    (escalated_at set, escalate_at still its first due time) has none after the upgrade."""
    import datetime as dt
    from sqlalchemy import DateTime, bindparam, text
    from lineguard.line.alarms import AlarmRules, AlarmWatch
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    db_url, schema = db_backend
    cfg = StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema)
    db = Database(cfg.database_url, schema=schema)
    db.upgrade("0017")
    t = dt.datetime(2026, 12, 1, 8, 0)
    insert = text("INSERT INTO alarms (line, station, product, kind, message, raised_at, inspection_id, "
                  "first_inspection_id, parts, rejected, escalate_at, escalated_at) VALUES "
                  "(:line, :station, 'cell', 'ng_run', 'm', :t, 1, 1, 5, 5, :due, :done)").bindparams(
        *(bindparam(k, type_=DateTime) for k in ("t", "due", "done")))     # stored as the station stores times
    try:
        with db.engine.begin() as conn:
            conn.execute(insert, dict(line="L1", station="S1", t=t, due=t + dt.timedelta(minutes=10),
                                      done=t + dt.timedelta(minutes=10)))
            conn.execute(insert, dict(line="L1", station="S2", t=t, due=t + dt.timedelta(minutes=10), done=None))
        db.upgrade()
        watch = AlarmWatch(db, AlarmRules())
        (due,) = watch.escalate_due(now=t + dt.timedelta(hours=1))      # only the one never escalated
        assert (due["station"], due["level"], due["escalate_at"]) == ("S2", 1, None)
        first = [a for a in watch.history() if a["station"] == "S1"][0]
        assert (first["escalations"], first["escalate_at"]) == (1, None)
    finally:
        db.dispose()


class _RefusingDatabase:
    """The station's database as the map writer sees it, refusing while ``down``."""

    def __init__(self, db):
        self.db, self.down = db, True

    def session(self):
        if self.down:
            from sqlalchemy.exc import OperationalError
            raise OperationalError("UPDATE inspections", {}, Exception("the database refuses connections"))
        return self.db.session()


def test_a_map_whose_link_the_database_refused_is_linked_once_it_is_back(station, monkeypatch, caplog):
    """A database outage as a map was linked: the map file was stored and the link
    logged and dropped, so the NG part's reviewer never saw where the defect was."""
    import logging
    import time
    from lineguard.line.mapwriter import MapWriter
    caplog.set_level(logging.INFO, logger="lineguard.station")
    monkeypatch.setattr(MapWriter, "RETRY_FIRST_S", 0.05)
    refusing = _RefusingDatabase(station.db)
    station.maps.db = refusing
    out = station.inspect(png_bytes(220, seed=62), part("map-outage"))
    station.maps.flush()
    assert station.images.exists(out.record.heatmap_key)
    with station.db.session() as s:
        assert s.get(Inspection, out.record.id).heatmap_key is None
    assert station.maps.unlinked() == 1
    refusing.down = False
    deadline = time.monotonic() + 10
    while station.maps.unlinked() and time.monotonic() < deadline:
        time.sleep(0.05)
    with station.db.session() as s:
        assert s.get(Inspection, out.record.id).heatmap_key == out.record.heatmap_key
    assert "trying again" in caplog.text and "linked 1 anomaly maps the database had refused" in caplog.text


def test_a_station_closed_cleanly_leaves_every_part_in_its_database_file(station_factory, tmp_path):
    """A clean stop left the last minutes of parts in lineguard.db-wal only: a copy of
    lineguard.db alone (the usual "stop the service, copy the file") lacked them."""
    import shutil
    import sqlite3
    if station_factory.backend != "sqlite":
        import pytest
        pytest.skip("SQLite's write-ahead log")
    st = station_factory()
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    for i in range(20):
        st.inspect(png_bytes(40 + i, seed=700 + i), part(f"wal-{i}"))
    db_file = st.config.data_dir / "lineguard.db"
    # another connection still open (a hot folder's watcher on the folder, a connection a
    # thread still held): SQLite folds its log in only when the last one closes
    other = sqlite3.connect(db_file)
    other.execute("SELECT count(*) FROM inspections").fetchone()
    try:
        st.close()
        wal = db_file.with_name("lineguard.db-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        copy = tmp_path / "copy.db"
        shutil.copy(db_file, copy)                  # the database file alone
    finally:
        other.close()
    with sqlite3.connect(copy) as c:
        assert c.execute("SELECT count(*) FROM inspections").fetchone()[0] == 20
