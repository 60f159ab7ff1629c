"""A PostgreSQL station's waits for another program's lock (walk 2): nothing was set, so a
table locked by a maintenance job (or a psql left in a transaction) held parts, the parts
list and even /health for as long as the lock stood; SQLite waits 30 s (busy_timeout), then
refuses with 503 storage_unavailable. PostgreSQL now waits as long (db.LOCK_WAIT_MS, made
short here), and /health's own read 1 s at most."""
from __future__ import annotations

import threading

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from conftest import PG_URL
from fake_inspector import FakeInspector, png_bytes

pytestmark = pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)

# how long the other connection holds its lock at most: far past the waits under test, so a
# call that came back meanwhile did not wait for the lock's end
HELD_S = 8.0


def _while_locked(schema: str, mode: str, call, table: str = "inspections") -> tuple[bool, dict]:
    """Run ``call()`` while another connection holds the inspections table in ``mode``:
    (whether it came back while the lock was still held, {"value": ...} or {"error": ...})."""
    out: dict = {}
    done = threading.Event()

    def run():
        try:
            out["value"] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome is the test's to judge
            out["error"] = exc
        finally:
            done.set()

    with psycopg.connect(PG_URL) as other:
        other.execute(f'LOCK TABLE "{schema}".{table} IN {mode} MODE')
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        came_back = done.wait(HELD_S)
        other.rollback()
    worker.join(60)
    return came_back, out


@pytest.fixture
def short_wait(monkeypatch):
    from lineguard.line import db
    monkeypatch.setattr(db, "LOCK_WAIT_MS", 300)


def _station(station_factory, **kw):
    st = station_factory(**kw)
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    return st


def test_a_part_waits_for_a_locked_table_only_so_long_then_503_and_nothing_stored(
        short_wait, station_factory, db_backend):
    from lineguard.line.errors import StorageUnavailable
    from lineguard.line.orm import Inspection
    from lineguard.line.station import Part
    st = _station(station_factory)
    photo, part = png_bytes(60, seed=31), Part("LOCKED-1", "L1", "S1", "cell")
    came_back, out = _while_locked(db_backend[1], "SHARE ROW EXCLUSIVE", lambda: st.inspect(photo, part))
    assert came_back and isinstance(out.get("error"), StorageUnavailable), out
    refused = out["error"]
    assert (refused.http_status, refused.code) == (503, "storage_unavailable")
    # a lock, not the disk: said so, with what to look for
    assert "held by another program" in refused.message and "disk space" not in refused.message
    with st.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Inspection)) == 0     # nothing half-written
    again = st.inspect(photo, part)               # sent again once the lock is gone: stored
    assert again.created and again.record.part_id == "LOCKED-1"


@pytest.mark.parametrize("table", ["inspections", "alarms"])
def test_health_answers_while_the_parts_table_is_locked(station_factory, db_backend, table):
    """The lock held longer than /health's 1 s and shorter than a part's whole wait (the
    default here): /health answers while it stands, not when it ends (its count of the
    alarms not acknowledged waited a part's 30 s on a locked alarms table)."""
    from lineguard.server.app import create_app
    st = _station(station_factory)
    st._newest_read = float("-inf")          # the newest part read from the database at this call
    with TestClient(create_app(station=st)) as c:
        came_back, out = _while_locked(db_backend[1], "ACCESS EXCLUSIVE", lambda: c.get("/health"), table)
    assert came_back, out
    assert out["value"].status_code == 200 and out["value"].json()["status"] == "ok", out["value"].text


def test_a_read_of_a_locked_table_past_the_wait_is_a_503(short_wait, station_factory, db_backend):
    from lineguard.server.app import create_app
    st = _station(station_factory, open_reads=True)
    with TestClient(create_app(station=st)) as c:
        came_back, out = _while_locked(db_backend[1], "ACCESS EXCLUSIVE", lambda: c.get("/api/v1/inspections"))
        assert came_back, out
        r = out["value"]
        assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable", r.text
        assert "locked" in r.json()["error"]["message"] and "disk space" not in r.json()["error"]["message"]
        assert c.get("/api/v1/inspections").status_code == 200     # the lock gone: answered again


def test_a_migration_still_waits_for_another_s_as_long_as_it_takes(short_wait, db_backend):
    """The lock wait is for the station's work: a station starting while another migrates
    the same schema (an index built on a year of parts) waits for it as before."""
    from lineguard.line.db import LOCK_MIGRATIONS, Database
    schema = db_backend[1] + "_m"
    db = Database(PG_URL, schema=schema)
    try:
        with psycopg.connect(PG_URL) as other:
            other.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_MIGRATIONS, schema))
            upgrading = threading.Thread(target=db.upgrade, daemon=True)
            upgrading.start()
            upgrading.join(1.5)               # five times the wait: refused by now, were it bounded
            assert upgrading.is_alive()
            other.rollback()
        upgrading.join(60)
        with db.session() as s:
            assert s.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        db.drop_schema()
        db.dispose()


# -- a refused start leaves the data folder as it was -------------------------------------

def _claimed_elsewhere(tmp_path, schema) -> None:
    """The schema's records point at another station's folder (that station stopped)."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    Station(StationConfig(data_dir=tmp_path / "st2", db_url=PG_URL, db_schema=schema),
            loader=FakeInspector.load).close()


def test_a_start_refused_for_another_folder_writes_no_id_into_this_one(tmp_path, db_backend, monkeypatch):
    """A folder holding files (images/ copied in) and refused: no .lineguard-folder written
    there, which made it another station's folder to the next start."""
    from lineguard.line.config import StationConfig
    from lineguard.line.data_folders import ID_FILE, OtherDataFolder
    from lineguard.line.station import Station
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    _claimed_elsewhere(tmp_path, db_backend[1])
    (tmp_path / "st2y" / "images").mkdir(parents=True)
    with pytest.raises(OtherDataFolder, match="another data folder"):
        Station(StationConfig(data_dir=tmp_path / "st2y", db_url=PG_URL, db_schema=db_backend[1]),
                loader=FakeInspector.load)
    assert sorted(p.name for p in (tmp_path / "st2y").iterdir()) == ["images"]
    assert not (tmp_path / "st2y" / ID_FILE).exists()


def test_serve_refused_for_another_folder_removes_the_folder_it_made(tmp_path, db_backend, monkeypatch,
                                                                    serve_ports_anywhere):
    from cli_runner import run_in_process
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    _claimed_elsewhere(tmp_path, db_backend[1])
    r = run_in_process("serve", "--data", tmp_path / "st2x", "--db", PG_URL, "--db-schema", db_backend[1],
                       "--db-wait", "0")
    assert r.returncode == 2 and "another data folder" in r.stderr, (r.stdout, r.stderr)
    assert not (tmp_path / "st2x").exists()       # exit 2: refused, nothing done
