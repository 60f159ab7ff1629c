"""One PostgreSQL station database, one data folder (line.data_folders). A second station
started with a folder of its own on the same database broke the first: a model uploaded
on one stopped every part on the other (its folder lacked the file: 503), and one
station's disk keeper cleared the photo links of every other station's parts."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import PG_URL, pg_reachable
from fake_inspector import FakeInspector


@pytest.fixture
def schema():
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    import uuid
    from lineguard.line.db import Database
    name = f"lg_test_{uuid.uuid4().hex[:10]}"
    yield name
    db = Database(PG_URL, schema=name)
    db.drop_schema()
    db.dispose()


def _station(folder, schema):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    return Station(StationConfig(data_dir=folder, db_url=PG_URL, db_schema=schema), loader=FakeInspector.load)


def test_a_second_data_folder_on_one_database_is_refused_at_start(tmp_path, schema, monkeypatch):
    from lineguard.line.data_folders import OtherDataFolder
    from lineguard.server.app import StartupError, open_station
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    first = _station(tmp_path / "s1", schema)
    try:
        # another process on the same folder (a hot folder's watcher) shares it
        _station(tmp_path / "s1", schema).close()
        with pytest.raises(OtherDataFolder) as refused:
            _station(tmp_path / "s2", schema)
        said = refused.value.message
        assert str((tmp_path / "s1").resolve()) in said and "--db-schema" in said and "network share" in said
        assert "LINEGUARD_LET_GO_OF_FOLDER=" + first.folder in said
        from lineguard.line.config import StationConfig
        with pytest.raises(StartupError, match="another data folder"):
            open_station(StationConfig(data_dir=tmp_path / "s2", db_url=PG_URL, db_schema=schema),
                         loader=FakeInspector.load)
    finally:
        first.close()


def test_a_folder_gone_for_good_is_let_go_of_by_name(tmp_path, schema, monkeypatch):
    from lineguard.line.data_folders import OtherDataFolder
    old = _station(tmp_path / "old-pc", schema)
    gone = old.folder
    old.close()
    monkeypatch.setenv("LINEGUARD_LET_GO_OF_FOLDER", gone)
    new = _station(tmp_path / "new-pc", schema)
    new.close()
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER")
    with pytest.raises(OtherDataFolder):        # the old folder, back, is now the other one
        _station(tmp_path / "old-pc", schema)


def test_a_folder_unused_for_a_week_no_longer_holds_the_database(tmp_path, schema, monkeypatch):
    from lineguard.line.data_folders import KEPT_DAYS, claim
    from lineguard.line.db import Database
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    _station(tmp_path / "s1", schema).close()
    db = Database(PG_URL, schema=schema)
    try:
        later = dt.datetime.utcnow() + dt.timedelta(days=KEPT_DAYS + 1)
        assert claim(db, tmp_path / "s2", now=later)
    finally:
        db.dispose()


def test_a_damaged_folder_id_is_said_not_replaced(tmp_path):
    from lineguard.line.data_folders import ID_FILE, OtherDataFolder, folder_id
    (tmp_path / ID_FILE).write_text("not an id")
    with pytest.raises(OtherDataFolder, match="is damaged"):
        folder_id(tmp_path)
    assert (tmp_path / ID_FILE).read_text() == "not an id"
