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
