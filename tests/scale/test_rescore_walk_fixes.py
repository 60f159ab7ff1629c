"""rescore on Ray as the README's walk found it: --chunk-rows sets the rows of each Parquet
part in whole batches, as in one process (on Ray every part was 4 batches or more:
--batch-size 2 --chunk-rows 2 wrote 8 rows a part, more for a killed run to redo); a
SIGTERM to the command's whole group is an interrupt, exit 130, as Ctrl-C is; --db-schema
with a SQLite station is refused, as by every station verb. And serve-ray says a new
station in a PostgreSQL schema, as serve does (it made one without a word)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_in_process
from conftest import PG_URL

from .conftest import make_archive, ray_or_skip

pq = pytest.importorskip("pyarrow.parquet")


@pytest.mark.ray
def test_ray_parts_hold_chunk_rows_in_whole_batches(ray_session, exported_model, synth_category, tmp_path):
    ray_or_skip()
    from lineguard.line.scale.rescore import rescore
    archive = make_archive(tmp_path / "archive", synth_category)
    out = tmp_path / "ray.parquet"
    summary = rescore(exported_model, archive, out, ray_address=ray_session, concurrency=1, batch_size=2,
                      chunk_rows=3)
    rows = [pq.read_metadata(part).num_rows for part in sorted(out.glob("part-*.parquet"))]
    assert sum(rows) == summary.scored and summary.parts_written == len(rows)
    # 3 rows in whole batches of 2: 4 a part, the last one whatever is left
    assert rows[:-1] == [4] * (len(rows) - 1) and 1 <= rows[-1] <= 4, rows


def _ray_children(pid: int) -> dict[int, tuple[str, int]]:
    """{pid: (name, process group)} of the Ray processes ``pid`` started (from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:         # ended meanwhile
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(rest[1]) == pid and name in ("gcs_server", "raylet"):
            found[int(stat.parent.name)] = (name, int(rest[2]))
    return found


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the processes from /proc")
def test_a_sigterm_to_the_whole_group_while_ray_starts_is_an_interrupt(exported_model, synth_category, tmp_path):
    """A SIGTERM to the command's group (`timeout`, `kill -TERM -- -PGID`) reaches the command
    alone, not the private Ray it starts (whose monitor's traceback and exit 1 it was), and
    one while Ray starts stops it as Ctrl-C does: exit 130, said (Ray's own handler ended it
    with exit 15 and not a word)."""
    ray_or_skip()
    archive = make_archive(tmp_path / "archive", synth_category)
    cmd = [sys.executable, "-m", "lineguard", "rescore", "--model", str(exported_model), "--images", str(archive),
           "--out", str(tmp_path / "r.parquet"), "--ray", "local", "--concurrency", "1", "--batch-size", "2"]
    # a session of its own: the group signal must not reach pytest
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, ray = time.monotonic() + 120, {}
        while not ray and p.poll() is None and time.monotonic() < deadline:
            ray = _ray_children(p.pid)
            time.sleep(0.05)
        assert ray, "no Ray process started"
        os.killpg(p.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert all(group != p.pid for _, group in ray.values()), ray
    assert p.returncode == 130, out
    assert "interrupted" in out and "run the same command again" in out and "Traceback" not in out, out


def test_rescore_refuses_a_schema_with_a_sqlite_station(tmp_path, fake_models):
    from fake_inspector import FakeInspector, png_bytes

    from lineguard.line.db import Database
    station = tmp_path / "station"
    station.mkdir()
    db = Database(f"sqlite:///{station / 'lineguard.db'}")
    db.upgrade()
    db.dispose()
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "part-1.png").write_bytes(png_bytes(60, seed=1))
    model = tmp_path / "m.json"
    model.write_bytes(FakeInspector(0.2, "rescore-v2").to_bytes())
    r = run_in_process("rescore", "--model", model, "--images", tmp_path / "archive", "--out", tmp_path / "r.parquet",
                       "--data", station, "--db-schema", "line_x")
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, out
    assert "--db-schema line_x is a PostgreSQL station's schema" in out and "Traceback" not in out
    assert not (tmp_path / "r.parquet").exists()


@pytest.mark.new_schema
@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_serve_ray_says_a_new_station_in_a_schema(db_backend, tmp_path, monkeypatch):
    pytest.importorskip("ray.serve")
    import lineguard.server.ray_serve as ray_serve
    from server.conftest import free_port
    url, schema = db_backend
    started = []
    # no Ray here: what matters is said before it starts
    monkeypatch.setattr(ray_serve, "run_station", lambda config, **kw: started.append(config))
    r = run_in_process("serve-ray", "--db", url, "--db-schema", schema, "--data", tmp_path / "data",
                       "--port", free_port())
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0 and len(started) == 1, out
    assert f"new station in schema {schema} of {PG_URL}" in out
    assert f"lineguard keys create --role admin --db {PG_URL} --db-schema {schema}" in out
