"""`lineguard watch` and `lineguard camera` inspecting here (--data) with a database server
started after them: they wait for it as `serve` does, then start.

A hot folder or camera PC is switched on with the line, its station's PostgreSQL server
(another PC) minutes later. Inspecting in their own process, watch and camera ended at once
with a traceback and exit 1 ("psycopg.OperationalError ... Connection refused"), and the
line's hot folder or camera stayed down until someone typed the command again. They now
wait as serve does (the same helper, the same --db-wait, exit 75 where it runs out, SIGTERM
ends the wait), and a refusal no waiting mends ends them at once (exit 2) in one line.

The database server is tests/test_serve_db_wait.py's Gate: a port answering as a
PostgreSQL server starting up, then a proxy to the test PostgreSQL.
"""
from __future__ import annotations

import shutil
import threading
import uuid

import pytest

from cli_runner import run_in_process
from test_serve_db_wait import PG_HOST, PG_PORT, SECRET, Gate, Served, _free_port, needs_pg, schema  # noqa: F401

pytest.importorskip("fastapi")


def _hot_folder_and_frames(tmp_path, synth_category=None):
    """A hot folder for watch and a folder of frames for camera (one good part's photo)."""
    hot, frames = tmp_path / "hot", tmp_path / "frames"
    hot.mkdir()
    frames.mkdir()
    if synth_category is not None:
        photo = sorted((synth_category / "test" / "good").iterdir())[0]
        shutil.copy(photo, frames / f"part-001{photo.suffix}")
    return hot, frames


def _inspecting_here(verb: str, hot, frames, *args):
    where = [str(hot)] if verb == "watch" else ["--source", str(frames), "--max-parts", "1", "--max-fps", "50"]
    # inspecting here: a test machine's disk may be nearly full (with --server: the station's setting)
    here = ["--min-free-gb", "0"] if "--data" in args else []
    return [verb, *where, "--line", "L1", "--product", "cell", *here, *args]


@needs_pg
def test_camera_inspecting_here_waits_for_a_database_server_starting_up_then_inspects(
        tmp_path, schema, fitted_model_path, synth_category):
    from lineguard.line.config import StationConfig
    from lineguard.server.app import open_station
    # the station, with its model active, on the real server (made once, as serve would)
    data = tmp_path / "st"
    open_station(StationConfig(data_dir=data, db_url=f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test",
                               db_schema=schema, min_free_gb=0), str(fitted_model_path), "cell").close()
    hot, frames = _hot_folder_and_frames(tmp_path, synth_category)
    db_port = _free_port()
    gate = Gate(db_port, ("57P03", "the database system is starting up"))

    def up_after_two_tries():
        # the first open and one try again see the server starting up; then it is up
        for _ in range(2):
            if not gate.knocked.wait(120):
                return
            gate.knocked.clear()
        gate.answer = None
    threading.Thread(target=up_after_two_tries, daemon=True).start()
    try:
        # no --db-wait: for as long as it takes, as a unit started at boot runs it
        r = run_in_process(*_inspecting_here("camera", hot, frames, "--data", data, "--db",
                                             f"postgresql://postgres:{SECRET}@127.0.0.1:{db_port}/test",
                                             "--db-schema", schema), cwd=tmp_path)
    finally:
        gate.close()
    said = r.stdout + r.stderr
    assert r.returncode == 0, said
    assert r.stderr.count("does not take connections yet") == 1, said
    waiting = next(ln for ln in r.stderr.splitlines() if ln.startswith("waiting:"))
    assert f"127.0.0.1:{db_port} (database test)" in waiting and "the database system is starting up" in waiting
    assert "the camera is opened once the station has started" in waiting, waiting
    assert "took the connection" in r.stderr and gate.knocks >= 3, said
    (part,) = [ln for ln in r.stdout.splitlines() if "id=" in ln]
    assert "\tOK\t" in part or "\tNG\t" in part or "\tREVIEW\t" in part, part
    assert SECRET not in said and "Traceback" not in said, said


@pytest.mark.parametrize("verb", ["watch", "camera"])
def test_inspecting_here_gives_up_when_db_wait_runs_out_and_db_wait_0_fails_at_once(tmp_path, verb):
    hot, frames = _hot_folder_and_frames(tmp_path)
    db_port = _free_port()           # nothing listens there
    url = f"postgresql://lg:{SECRET}@127.0.0.1:{db_port}/plant"
    r = run_in_process(*_inspecting_here(verb, hot, frames, "--data", tmp_path / "st", "--db", url, "--db-wait", "2"),
                       cwd=tmp_path)
    assert r.returncode == 75, r.stderr
    assert "waiting:" in r.stderr and "for up to 2 s" in r.stderr and "Connection refused" in r.stderr, r.stderr
    assert f"127.0.0.1:{db_port} (database plant) did not take connections in 2 s" in r.stderr, r.stderr
    assert SECRET not in r.stderr + r.stdout and "Traceback" not in r.stderr, r.stderr
    # 0: not waited for, one line and exit 2 (a traceback and exit 1 before)
    r = run_in_process(*_inspecting_here(verb, hot, frames, "--data", tmp_path / "st", "--db", url, "--db-wait", "0"),
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot use the database"), r.stderr
    assert SECRET not in r.stderr + r.stdout


def test_sigterm_while_watch_waits_for_its_database_ends_it_cleanly(tmp_path):
    hot, _frames = _hot_folder_and_frames(tmp_path)
    watched = Served(str(hot), "--line", "L1", "--product", "cell", "--data", str(tmp_path / "st"),
                     "--db", f"postgresql://lg:{SECRET}@127.0.0.1:{_free_port()}/plant", cwd=tmp_path, verb="watch")
    try:
        waiting = watched.wait_for("waiting:")
    finally:
        code = watched.stop()
    said = "\n".join(watched.output())
    assert "the files dropped in the hot folder wait there" in waiting, said
    assert code == 0, said
    assert "watch stopped while waiting for the database server" in said and "did not start" in said, said
    assert "Traceback" not in said and "Aborted" not in said and SECRET not in said, said


@needs_pg
def test_a_refusal_no_waiting_mends_ends_watch_at_once(tmp_path):
    """Given a long --db-wait, a missing database still ends watch at once (exit 2) saying
    why: had it waited, it would end after the wait (exit 75)."""
    hot, frames = _hot_folder_and_frames(tmp_path)
    url = f"postgresql://postgres:{SECRET}@{PG_HOST}:{PG_PORT}/lg_no_such_db_{uuid.uuid4().hex[:6]}"
    r = run_in_process(*_inspecting_here("watch", hot, frames, "--data", tmp_path / "st", "--db", url,
                                         "--db-wait", "20"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "does not exist" in r.stderr and r.stderr.startswith("error: cannot use the database"), r.stderr
    assert "waiting" not in r.stderr and SECRET not in r.stderr + r.stdout, r.stderr


@pytest.mark.parametrize("verb", ["watch", "camera"])
def test_db_wait_with_server_is_refused_naming_serve(tmp_path, verb):
    """A remote station waits for its own database: --db-wait given to a watcher of one
    would do nothing, and is said so, not taken silently."""
    hot, frames = _hot_folder_and_frames(tmp_path)
    r = run_in_process(*_inspecting_here(verb, hot, frames, "--server", "http://127.0.0.1:1", "--api-key", "k",
                                         "--db-wait", "60"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "with --server the station waits for its database itself" in r.stderr and "serve" in r.stderr, r.stderr
