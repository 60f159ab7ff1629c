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


def test_processes_starting_together_on_a_new_folder_share_one_id(tmp_path, schema, monkeypatch):
    """A station and its watcher started together on a new folder each made an id; the last
    write won, one was refused, and the other then refused its own restarts for a week."""
    import multiprocessing as mp
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    from ._folder_claim import claim_at_once
    ctx = mp.get_context("spawn")          # not fork: see _folder_claim
    from lineguard.line.db import Database
    for trial in range(4):                 # a new folder on a new database (schema) each time
        folder, where = tmp_path / f"new-{trial}", f"{schema}_{trial}"
        folder.mkdir()
        start = ctx.Barrier(4)
        results = ctx.Queue()
        procs = [ctx.Process(target=claim_at_once, args=(PG_URL, folder, where, start, results)) for _ in range(4)]
        for p in procs:
            p.start()
        try:
            got = [results.get(timeout=120) for _ in procs]
        finally:
            for p in procs:
                p.join(60)
            db = Database(PG_URL, schema=where)
            db.drop_schema()
            db.dispose()
        on_disk = (folder / ".lineguard-folder").read_text().strip()
        assert got == [on_disk] * 4, (got, on_disk)


def test_a_folder_whose_id_file_was_lost_is_still_itself(tmp_path, schema, monkeypatch):
    """A folder copied back without its dot-files made a new id and was refused against
    its own claim: "another data folder, host:/path ... not /path"."""
    from lineguard.line.data_folders import ID_FILE
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    first = _station(tmp_path / "s1", schema)
    old = first.folder
    first.close()
    (tmp_path / "s1" / ID_FILE).unlink()
    again = _station(tmp_path / "s1", schema)
    try:
        assert again.folder != old
    finally:
        again.close()


def test_a_watcher_inspects_into_its_station_s_own_schema(tmp_path, schema, monkeypatch):
    """`watch --data --db` had no --db-schema (LINEGUARD_DB_SCHEMA was not read either): a
    watcher of a station in a schema of its own migrated and claimed `public` instead."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from fake_inspector import png_bytes
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    folder = tmp_path / "station"
    st = _station(folder, schema)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.close()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "w-1.png").write_bytes(png_bytes(30, seed=3))
    fake_cli = Path(__file__).resolve().parents[1] / "scale" / "fake_rescore.py"     # the CLI on fake models
    env = {k: v for k, v in os.environ.items() if k != "LINEGUARD_DB_SCHEMA"}
    proc = subprocess.Popen([sys.executable, str(fake_cli), "watch", str(inbox), "--line", "L1", "--product", "cell",
                             "--data", str(folder), "--db", PG_URL, "--db-schema", schema, "--poll", "0.1",
                             "--settle", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (inbox / "done" / "w-1.png").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (inbox / "done" / "w-1.png").exists(), err
    again = _station(folder, schema)
    try:
        assert [r.part_id for r in again.query()] == ["w-1"]
    finally:
        again.close()
