"""A mistyped --db-schema on a PostgreSQL database that holds several stations (walk J:
stations in hd_a, hd_b, hd_c of one database).

`serve --data st_a --db-schema hd_aa` (station A is in hd_a) started a new, empty station
without a word, on A's data folder, and A's line then got 401 "(a new data folder?): check
the station's --data". `LINEGUARD_DB_SCHEMA=hd_zz rescore --station-db ...` (rescore had no
--db-schema) exited 0 having built a 31-table schema hd_zz for its results. Now serve says
a new station in a schema, and refuses one whose name is a slip of a station's schema or
whose folder is another schema's station's, unless --new; rescore takes --db-schema and
refuses a schema (or database) that holds no station, naming those that do.
"""
from __future__ import annotations

import uuid

import pytest

from conftest import PG_URL, pg_reachable
from fake_inspector import FakeInspector, png_bytes

from cli_runner import run_in_process

pytest.importorskip("fastapi")


def _schemas_named(prefix: str) -> set[str]:
    import psycopg
    with psycopg.connect(PG_URL) as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                           (prefix.replace("_", r"\_") + "%",))}


@pytest.fixture
def plant(tmp_path, monkeypatch):
    """Station A in schema <p>a (folder st_a) and station B in <p>b (folder st_b), each
    started once; every schema named <p>... dropped afterwards (the typos' too)."""
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.station import Station
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    prefix = f"hj_{uuid.uuid4().hex[:8]}_"
    folders = {"a": tmp_path / "st_a", "b": tmp_path / "st_b"}
    try:
        for name, folder in folders.items():
            Station(StationConfig(data_dir=folder, db_url=PG_URL, db_schema=prefix + name),
                    loader=FakeInspector.load).close()
        yield prefix, folders
    finally:
        for name in _schemas_named(prefix):
            db = Database(PG_URL, schema=name)
            db.drop_schema()
            db.dispose()


@pytest.fixture
def serve(monkeypatch, serve_ports_anywhere):
    """`lineguard serve ...` in the test process; its web server never runs (run_server replaced)."""
    import lineguard.server.app as server_app
    monkeypatch.setattr(server_app, "run_server", lambda *a, **k: None)

    def run(*args: str):
        r = run_in_process("serve", "--min-free-gb", "0", "--db", PG_URL, *args)
        return r, " ".join((r.stdout + r.stderr).split())
    return run


def test_serve_refuses_a_schema_one_letter_off_a_stations_then_makes_it_with_new(plant, serve, tmp_path):
    prefix, folders = plant
    typo = prefix + "aa"
    r, out = serve("--data", str(tmp_path / "st_new"), "--db-schema", typo)
    assert r.returncode == 2, out
    assert f"schema {typo} of this database holds no station, but schema {prefix}a holds one" in out
    assert f"start with --db-schema {prefix}a" in out and "add --new" in out and "Traceback" not in out
    assert typo not in _schemas_named(prefix)                 # nothing made for the typo
    # asked for by name: made, and said
    r, out = serve("--data", str(tmp_path / "st_new"), "--db-schema", typo, "--new")
    assert r.returncode == 0, out
    assert f"new station in schema {typo} of {PG_URL}" in out
    assert "this database holds stations in:" in out and f"{prefix}a" in out and f"{prefix}b" in out
    assert typo in _schemas_named(prefix)
    # its second start is no news
    r, out = serve("--data", str(tmp_path / "st_new"), "--db-schema", typo)
    assert r.returncode == 0 and "new station" not in out, out


def test_serve_refuses_a_new_schema_on_another_schemas_stations_folder(plant, serve):
    prefix, folders = plant
    other = prefix + "zz"                 # no slip of a station's name: the folder gives it away
    r, out = serve("--data", str(folders["a"]), "--db-schema", other)
    assert r.returncode == 2, out
    assert f"the data folder {folders['a'].resolve()} is the station's in schema {prefix}a" in out
    assert f"start with --db-schema {prefix}a" in out and "--data of its own" in out
    assert other not in _schemas_named(prefix)
    # the station's own schema starts as ever, with no new-station note
    r, out = serve("--data", str(folders["a"]), "--db-schema", prefix + "a")
    assert r.returncode == 0 and "new station" not in out, out


def test_serve_says_a_new_station_in_a_schema_and_names_the_others(plant, serve, tmp_path):
    prefix, _folders = plant
    r, out = serve("--data", str(tmp_path / "st_d"), "--db-schema", prefix + "d")   # a sibling: not a slip
    assert r.returncode == 0, out
    assert f"new station in schema {prefix}d of {PG_URL}; this database holds stations in:" in out
    assert f"{prefix}a" in out and f"{prefix}b" in out
    assert f"lineguard keys create --role admin --db {PG_URL} --db-schema {prefix}d" in out


def test_a_key_refused_by_a_station_with_no_keys_in_a_schema_names_the_schema(plant, tmp_path):
    from fastapi.testclient import TestClient

    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    prefix, _folders = plant
    st = Station(StationConfig(data_dir=tmp_path / "st_e", db_url=PG_URL, db_schema=prefix + "e"),
                 loader=FakeInspector.load)
    try:
        with TestClient(create_app(station=st)) as c:
            r = c.get("/api/v1/inspections", headers={"X-API-Key": "lg_0123456789abcdef"})
        assert r.status_code == 401, r.text
        said = r.json()["error"]["message"]
        assert f"schema {prefix}e" in said and "--db-schema" in said, said
    finally:
        st.close()


# ------------------------------------------------------------------------------ rescore

@pytest.fixture
def rescore_args(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scale"))
    from fake_rescore import load_fake

    from lineguard.vision.inspector import Inspector
    monkeypatch.setattr(Inspector, "load", staticmethod(load_fake))
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(3):
        (archive / f"part-{i}.png").write_bytes(png_bytes(60, seed=i))
    model = tmp_path / "m.json"
    model.write_bytes(FakeInspector(0.2, "rescore-v2").to_bytes())
    out = tmp_path / "r.parquet"
    return ["rescore", "--model", model, "--images", archive, "--out", out], out


def _results(schema: str) -> int:
    from sqlalchemy import func, select

    from lineguard.line.db import Database
    from lineguard.line.orm import RescoreResult
    db = Database(PG_URL, schema=schema)
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(RescoreResult))
    finally:
        db.dispose()


def test_rescore_takes_db_schema_and_refuses_a_schema_with_no_station(plant, rescore_args):
    prefix, _folders = plant
    args, out = rescore_args
    typo = prefix + "zz"
    for how in ({"args": ["--db-schema", typo]}, {"env": {"LINEGUARD_DB_SCHEMA": typo}}):
        r = run_in_process(*args, "--station-db", PG_URL, *how.get("args", []), env=how.get("env"))
        assert r.returncode == 2, r.stderr
        assert f"holds no station in schema {typo}; this database holds stations in:" in r.stderr, r.stderr
        assert f"{prefix}a" in r.stderr and "Traceback" not in r.stderr
        assert typo not in _schemas_named(prefix) and not out.exists()     # nothing made, nothing scored
    # into the station's own schema, by the option
    r = run_in_process(*args, "--station-db", PG_URL, "--db-schema", prefix + "a")
    assert r.returncode == 0, r.stderr
    assert _results(prefix + "a") == 3


def test_rescore_refuses_a_sqlite_station_db_that_is_not_there(rescore_args, tmp_path):
    args, out = rescore_args
    missing = tmp_path / "no-such" / "lineguard.db"
    r = run_in_process(*args, "--station-db", f"sqlite:///{missing}")
    assert r.returncode == 2 and f"no station database at {missing}" in r.stderr, r.stderr
    assert not missing.exists() and not missing.parent.exists() and not out.exists()
