"""Small leftovers from today's reviews, each shown failing before its fix.

- `reference add` on a PostgreSQL station warned of the old camera's photos and printed the
  remove command with --data only: run as printed, it was refused ("no station").
- The unknown-product answer behind Ray Serve was a station's words rewritten by a regex on
  their way out; the replicas' registry now says Serve's way to a model itself.
- `serve-ray --replicas 0 --ray ADDRESS` was only warned about and went on.
- `serve-ray` left its Ctrl-C/SIGTERM handlers in place after it returned.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector  # noqa: E402

from cli_runner import run_in_process  # noqa: E402
from test_camera_change_walk import _folder  # noqa: E402


@pytest.fixture
def pg_station(tmp_path):
    """A PostgreSQL station in a schema of its own (dropped afterwards) and its data folder."""
    from conftest import PG_URL, pg_reachable

    from lineguard.line.db import Database
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    schema = f"lg_test_{uuid.uuid4().hex[:10]}"
    db = Database(PG_URL, schema=schema)
    db.upgrade()
    data = tmp_path / "station"
    data.mkdir()
    try:
        yield PG_URL, schema, data
    finally:
        db.drop_schema()
        db.dispose()


def _remove_said(output: str) -> list[str]:
    """The warning's remove command, as the shell would split and expand it."""
    found = re.search(r"remove its photos: lineguard reference remove (.*?) \(", output)
    assert found, output
    return ["remove", *(os.path.expandvars(a) for a in shlex.split(found.group(1)))]


def _sizes(url: str, schema: str, data: Path) -> dict:
    from lineguard.line.db import Database
    from lineguard.line.reference import ReferencePhotos
    db = Database(url, schema=schema)
    try:
        return ReferencePhotos(db, data, 1 << 25, 26_000_000).sizes("cell")
    finally:
        db.dispose()


def test_reference_warning_on_a_postgresql_station_prints_a_remove_command_that_runs(tmp_path, pg_station,
                                                                                     monkeypatch):
    from lineguard.cli.reference import reference_app as app
    url, schema, data = pg_station
    typed = url.replace("postgres@", "postgres:s3cret@")      # trust auth: any password is taken
    where = ["--data", str(data), "--db", typed, "--db-schema", schema]
    run = CliRunner().invoke
    r = run(app, ["add", *where, "--product", "cell", str(_folder(tmp_path / "old", 64, 4, 0))])
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    r = run(app, ["add", *where, "--product", "cell", str(_folder(tmp_path / "new", 96, 3, 100))])
    assert r.exit_code == 0 and "another camera?" in r.output, r.output
    # the station as given, never its password: *** in its place, and said to give it there
    assert "s3cret" not in r.output
    assert (f"lineguard reference remove --data {data} --db 'postgresql://postgres:***@127.0.0.1:5432/test' "
            f"--db-schema {schema} --product cell --size 64x64") in r.output, r.output
    assert "password where *** stands" in r.output
    # run as printed (the admin typing the password back): the old camera's photos go, only those
    r = run(app, [a.replace("***", "s3cret") for a in _remove_said(r.output)])
    assert r.exit_code == 0, r.output
    assert "removed 4 reference photo(s)" in r.output
    assert _sizes(url, schema, data) == {(96, 96): 3}

    # the same station from LINEGUARD_DB and LINEGUARD_DB_SCHEMA: the command names the variable,
    # which the shell expands again, and no URL at all
    monkeypatch.setenv("LINEGUARD_DB", typed)
    monkeypatch.setenv("LINEGUARD_DB_SCHEMA", schema)
    r = run(app, ["add", "--data", str(data), "--product", "cell", str(_folder(tmp_path / "newer", 128, 2, 200))])
    assert r.exit_code == 0 and "another camera?" in r.output, r.output
    assert f'--data {data} --db "$LINEGUARD_DB" --db-schema {schema} --product cell --size 96x96' in r.output
    assert "s3cret" not in r.output and "127.0.0.1" not in r.output.split("warning:")[-1]
    monkeypatch.delenv("LINEGUARD_DB_SCHEMA")     # the command alone names the schema
    r = run(app, _remove_said(r.output))
    assert r.exit_code == 0, r.output
    assert "removed 3 reference photo(s)" in r.output
    assert _sizes(url, schema, data) == {(128, 128): 2}


def test_serve_replicas_registry_says_how_to_get_a_model_behind_serve(tmp_path):
    from fastapi.testclient import TestClient

    from lineguard.line.config import StationConfig
    from lineguard.line.errors import NoActiveModel
    from lineguard.line.registry import ModelRegistry
    from lineguard.server.ray_serve import serve_app
    cfg = StationConfig(data_dir=tmp_path / "data")
    with TestClient(serve_app(cfg, loader=FakeInspector.load, replica=lambda: "0")) as c:
        # the registry's own answer, as the scoring route and every other caller gets it, not
        # one rewritten by the HTTP error handler on its way out
        with pytest.raises(NoActiveModel) as said:
            c.app.state.station.models.active_for("cell", "")
    message = said.value.message
    assert message.startswith("unknown product 'cell': no model was ever uploaded for it.")
    assert "Models page" in message and "`lineguard serve-ray` takes no --model" in message
    assert "lineguard serve --model" not in message
    # a station started with `lineguard serve` keeps its words
    assert "`lineguard serve --model FILE.lgm --product NAME`" in ModelRegistry.no_model_hint


@pytest.fixture
def no_ray_start(monkeypatch):
    """serve-ray's run_station, recorded instead of started."""
    from lineguard.server import ray_serve
    started: list = []
    monkeypatch.setattr(ray_serve, "run_station", lambda config, **kw: started.append(kw))
    return started


def test_serve_ray_refuses_no_replicas_on_a_cluster_too(tmp_path, no_ray_start):
    r = run_in_process("serve-ray", "--ray", "10.0.0.5:6379", "--replicas", "0", "--data", tmp_path / "station",
                       "--port", "20301", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "'--replicas'" in r.stderr and "x>=1" in r.stderr, r.stderr
    assert no_ray_start == []


def test_run_station_refuses_no_replicas_before_ray_is_asked(tmp_path, monkeypatch):
    from lineguard.line.config import StationConfig
    from lineguard.server import ray_serve

    class RayAsked(Exception):
        pass

    def ray_asked():
        raise RayAsked("Ray was started for 0 replicas")
    monkeypatch.setattr(ray_serve, "require_ray", ray_asked)
    with pytest.raises(ValueError, match=r"--replicas 0: give at least 1"):
        ray_serve.run_station(StationConfig(data_dir=tmp_path / "station"), ray_address="10.0.0.5:6379",
                              port=20302, num_replicas=0, say=lambda _line: None)


def test_serve_ray_puts_back_the_signal_handlers_it_found(tmp_path, monkeypatch, no_ray_start):
    pytest.importorskip("ray")
    from lineguard.server import ray_serve

    def ours(signum, frame):
        pass

    found = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig in found:
            signal.signal(sig, ours)
        r = run_in_process("serve-ray", "--data", tmp_path / "station", "--port", "20303", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert len(no_ray_start) == 1
        assert signal.getsignal(signal.SIGINT) is ours and signal.getsignal(signal.SIGTERM) is ours

        def refused(config, **kw):
            raise ValueError("cannot listen on 127.0.0.1:20303: another program has that port")
        monkeypatch.setattr(ray_serve, "run_station", refused)
        r = run_in_process("serve-ray", "--data", tmp_path / "station", "--port", "20303", cwd=tmp_path)
        assert r.returncode == 2 and "another program has that port" in r.stderr, r.stderr
        assert signal.getsignal(signal.SIGINT) is ours and signal.getsignal(signal.SIGTERM) is ours
    finally:
        for sig, handler in found.items():
            signal.signal(sig, handler)
