"""Fixtures for the production layer: a station in-process on SQLite or PostgreSQL."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402,F401

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_reachable() -> bool:
    try:
        import psycopg
        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def station_factory(request, tmp_path):
    """Build stations (fake models) on the chosen backend; PostgreSQL gets a private schema."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station

    db_url = schema = None
    if request.param == "postgresql":
        if not _pg_reachable():
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
        db_url, schema = PG_URL, f"lg_test_{uuid.uuid4().hex[:10]}"
    made = []

    def make(sinks=None, **kw):
        cfg = StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema, **kw)
        st = Station(cfg, loader=FakeInspector.load, trainer=FakeInspector.fit, sinks=sinks)
        made.append(st)
        return st

    make.backend = request.param
    yield make
    for st in made:
        st.close()
    if schema:
        from lineguard.line.db import Database
        db = Database(db_url, schema=schema)
        db.drop_schema()
        db.dispose()


@pytest.fixture
def station(station_factory):
    st = station_factory()
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    return st


@pytest.fixture
def sqlite_station(tmp_path):
    """A station on SQLite with fake model 'cell' active (sources and sinks tests)."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    made = []

    def make(sinks=None, **kw):
        st = Station(StationConfig(data_dir=tmp_path / "data", **kw), loader=FakeInspector.load,
                     trainer=FakeInspector.fit, sinks=sinks)
        if not st.models.list("cell"):
            st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()
