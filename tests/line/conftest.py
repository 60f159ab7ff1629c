"""Fixtures for the production layer: a station in-process on SQLite or PostgreSQL."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402,F401

@pytest.fixture
def station_factory(db_backend, tmp_path):
    """Build stations (fake models) on each backend (``db_backend``: SQLite, PostgreSQL)."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station

    db_url, schema = db_backend
    made = []

    def make(sinks=None, **kw):
        cfg = StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema, **kw)
        st = Station(cfg, loader=FakeInspector.load, trainer=FakeInspector.fit, sinks=sinks)
        made.append(st)
        return st

    make.backend = "postgresql" if db_url else "sqlite"
    yield make
    for st in made:
        st.close()


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


def until(pred, what: str, timeout: float = 30.0):
    """Wait for ``pred()`` to be truthy and return it; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen in {timeout} s")


def index_comes_and_goes(station, index: str, down_to: str) -> None:
    """``index`` is on the inspections table at the head revision, gone after a downgrade to
    ``down_to`` (the revision before the one that adds it), and back after the upgrade, which
    ends at the head revision (an index migration's round trip on the test's database)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect as sa_inspect, text
    from lineguard.line import db as db_mod
    from lineguard.line.db import schema_revisions

    def indexes():
        return {ix["name"] for ix in sa_inspect(station.db.engine).get_indexes("inspections",
                                                                                schema=station.db.schema)}
    assert index in indexes()
    cfg = Config()
    cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
    with station.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, down_to)
    assert index not in indexes()
    station.db.upgrade()
    assert index in indexes()
    with station.db.session() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema_revisions()[0]
