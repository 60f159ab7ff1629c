"""New product and new station names, the leftovers of the typo checks.

- `serve --product cell-ba` beside a known cell-ab (two real products of the plant) was
  refused as a typo with no way to say it is new but an upload with new_product=true:
  now --new-product, named by the refusal (no variable: one start's word, as --new).
- `keys create --new` / `users add --new` with a --db-schema one slip from a station's
  schema (hd_aa for hd_a) made a new, empty station: refused as serve refuses it, unless
  --new-schema.
- `watch --data` / `camera --data` with such a --db-schema made the empty schema and only
  then ended on "no model": refused before anything is made, in serve's words.
- The plant view named its own row "this station" on every station's screen: now by its line.
"""
from __future__ import annotations

import re
import uuid

import pytest

from cli_runner import run_in_process
from conftest import PG_URL, pg_reachable
from fake_inspector import FakeInspector, png_bytes
from .test_schema_typos import _schemas_named


# ------------------------------------------------------------------ serve --new-product

@pytest.fixture
def known_station(tmp_path, monkeypatch, serve_ports_anywhere):
    """A SQLite station knowing products cell-ab and coat (fake models); ``serve(*args)``
    runs `lineguard serve` on it in the test process, its web server never run."""
    import lineguard.line.registry as registry
    import lineguard.server.app as server_app
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    monkeypatch.setattr(registry, "default_loader", FakeInspector.load)
    monkeypatch.setattr(server_app, "run_server", lambda *a, **k: None)
    data = tmp_path / "st"
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    for product in ("cell-ab", "coat"):
        st.add_model(FakeInspector(0.5, product).to_bytes(), product, activate=True)
    st.close()
    model = tmp_path / "cell-ba.json"
    model.write_bytes(FakeInspector(0.5, "cell-ba-1").to_bytes())

    def serve(*args: str, env: dict | None = None):
        r = run_in_process("serve", "--data", data, "--min-free-gb", "0", *args, env=env)
        return r, " ".join((r.stdout + r.stderr).split())
    return data, model, serve


def _products(data) -> set[str]:
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    try:
        return {mv.product for mv in st.models.list()}
    finally:
        st.close()


def test_serve_takes_a_product_one_slip_from_a_known_one_as_new_with_new_product(known_station):
    data, model, serve = known_station
    r, out = serve("--model", str(model), "--product", "cell-ba")
    assert r.returncode == 2, out
    assert "did you mean 'cell-ab'?" in out and "--new-product" in out and "Traceback" not in out, out
    assert _products(data) == {"cell-ab", "coat"}
    r, out = serve("--model", str(model), "--product", "cell-ba", "--new-product")
    assert r.returncode == 0, out
    assert _products(data) == {"cell-ab", "coat", "cell-ba"}


def test_a_recipe_one_slip_from_a_known_product_is_refused_naming_new_product_and_taken_with_it(
        known_station, monkeypatch, tmp_path):
    import lineguard.cli.station as cli_station
    from lineguard.line import plc_modbus

    class Link:                     # the PLC link stands in
        protocol = "modbus"

        def __init__(self, station, images, recipes, **kw):
            self.hs = None

        def start(self, hold=False):
            return self

        def begin_stop(self):     # serve's stop: every link first drops TriggerReady
            pass

        def close(self, deadline=None):
            pass
    monkeypatch.setattr(plc_modbus, "ModbusStation", Link)
    monkeypatch.setattr(cli_station, "_release_plcs_when_up", lambda *a, **kw: None)
    (tmp_path / "cam").mkdir()
    data, _model, serve = known_station
    args = ("--line", "L1", "--modbus-port", "18301", "--plc-images", str(tmp_path / "cam"),
            "--recipe", "1=coat", "--recipe", "2=cell-ba")
    r, out = serve(*args)
    assert r.returncode == 2, out
    assert "--recipe 2=cell-ba" in out and "did you mean 'cell-ab'?" in out and "--new-product" in out, out
    r, out = serve(*args, "--new-product")
    assert r.returncode == 0, out
    assert "warning: --recipe 2=cell-ba: the station has no model for product 'cell-ba'" in out, out


# ------------------------------------------- keys create / users add, watch / camera: schemas

@pytest.fixture
def plant(tmp_path, monkeypatch):
    """Station A in schema <p>a (folder st_a, product cell), started once; every schema named
    <p>... dropped afterwards (the typos' too)."""
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.station import Station
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    prefix = f"h3_{uuid.uuid4().hex[:8]}_"
    folder = tmp_path / "st_a"
    try:
        st = Station(StationConfig(data_dir=folder, db_url=PG_URL, db_schema=prefix + "a", min_free_gb=0),
                     loader=FakeInspector.load)
        st.add_model(FakeInspector(0.5, "cell-1").to_bytes(), "cell", activate=True)
        st.close()
        yield prefix, folder
    finally:
        for name in _schemas_named(prefix):
            db = Database(PG_URL, schema=name)
            db.drop_schema()
            db.dispose()


@pytest.mark.parametrize("verb", [("keys", "create", "--role", "admin"),
                                  ("users", "add", "ann", "--role", "admin", "--password-stdin")])
def test_a_new_station_in_a_schema_one_slip_from_a_stations_is_refused_unless_new_schema(plant, tmp_path, verb):
    prefix, _folder = plant
    typo = prefix + "aa"
    args = (*verb, "--new", "--db", PG_URL, "--db-schema", typo, "--data", tmp_path / "st_new")
    r = run_in_process(*args, input="a-long-enough-password\n")
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"schema {typo} of this database holds no station, but schema {prefix}a holds one" in said, said
    assert f"start with --db-schema {prefix}a" in said and "add --new-schema" in said and "Traceback" not in said
    assert typo not in _schemas_named(prefix)                 # nothing made for the typo
    r = run_in_process(*args, "--new-schema", input="a-long-enough-password\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert typo in _schemas_named(prefix)


def test_keys_create_new_on_another_schemas_stations_folder_is_refused(plant):
    prefix, folder = plant
    other = prefix + "zz"              # no slip of a station's name: the folder gives it away
    r = run_in_process("keys", "create", "--role", "admin", "--new", "--db", PG_URL, "--db-schema", other,
                       "--data", folder)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, said
    assert f"the data folder {folder.resolve()} is the station's in schema {prefix}a" in said, said
    assert other not in _schemas_named(prefix)


@pytest.mark.parametrize("verb", ["watch", "camera"])
def test_watch_and_camera_refuse_a_schema_one_slip_from_a_stations(plant, tmp_path, verb):
    prefix, folder = plant
    typo = prefix + "aa"
    hot = tmp_path / "in"
    hot.mkdir()
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "f1.png").write_bytes(png_bytes(60, seed=1))
    where = [str(hot)] if verb == "watch" else ["--source", str(frames), "--max-parts", "1", "--max-fps", "50"]
    r = run_in_process(verb, *where, "--line", "L1", "--product", "cell", "--data", folder, "--db", PG_URL,
                       "--db-schema", typo, "--min-free-gb", "0", "--db-wait", "0")
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"schema {typo} of this database holds no station, but schema {prefix}a holds one" in said, said
    assert f"start with --db-schema {prefix}a" in said and "Traceback" not in said, said
    assert typo not in _schemas_named(prefix)                 # no empty station made for the typo
    # a schema like no station's: refused all the same (no station there has a model), nothing made
    r = run_in_process(verb, *where, "--line", "L1", "--product", "cell", "--data", tmp_path / "st_z",
                       "--db", PG_URL, "--db-schema", prefix + "z", "--min-free-gb", "0", "--db-wait", "0")
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and f"schema {prefix}z of" in said and "holds no station" in said, said
    # among the stations listed (sorted: another worker's test may have one of its own that
    # sorts before this one's, and it did in a CI run)
    listed = re.search(r"this database holds stations in: ([^)]*)\)", said)
    assert listed and re.search(rf"(^|, ){re.escape(prefix)}a(,| and|$)", listed.group(1)), said
    assert prefix + "z" not in _schemas_named(prefix)


# ------------------------------------------------------------------------ the plant view

def _plant_rows(st) -> list[dict]:
    from fastapi.testclient import TestClient

    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        key = create_key(s, "operator", name="t-plant")[1]
    with TestClient(create_app(station=st)) as c:
        r = c.get("/api/v1/plant", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        return r.json()["stations"]


def test_the_plant_view_names_its_own_row_by_its_line_and_marks_it(tmp_path):
    import socket

    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    st = Station(StationConfig(data_dir=tmp_path / "a", min_free_gb=0, store_sweep_h=0, line="L2"),
                 loader=FakeInspector.load)
    try:
        (me,) = _plant_rows(st)
        assert me["name"] == "L2" and me["this_station"] is True, me
    finally:
        st.close()
    # no --line: the lines its parts are on; none yet: its PC's name
    st = Station(StationConfig(data_dir=tmp_path / "b", min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    try:
        (me,) = _plant_rows(st)
        assert me["name"] == socket.gethostname() and me["this_station"] is True, me
        st.add_model(FakeInspector(0.5, "cell-1").to_bytes(), "cell", activate=True)
        st.inspect(png_bytes(60, seed=2), Part(part_id="p1", line="L7", station="S1", product="cell"))
        (me,) = _plant_rows(st)
        assert me["name"] == "L7" and me["this_station"] is True, me
    finally:
        st.close()
