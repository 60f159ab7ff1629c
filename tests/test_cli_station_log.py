"""`lineguard watch --data` and `lineguard camera --data` log the station in their process as
serve logs it.

A walk: a hot folder inspecting here took P-0002.png, then P-0002.png again with another photo
(a part back from rework), and printed only "P-0002.png OK score=17.23 id=13": the station's
line saying the part was inspected again, which the README promises "whatever sent the part
(API, hot folder, camera)", never reached the screen. Only serve set up the log; in watch's
and camera's process every INFO line of the station was dropped.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time

import pytest
from cli_runner import run_in_process


@contextlib.contextmanager
def _log_of_a_new_process():
    """The logging a fresh `lineguard` process starts with (no handler, the root logger at
    WARNING), for the command in the test process: pytest's own capture handlers would
    otherwise stand in for the set-up the command must do itself. Put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    alembic = logging.getLogger("alembic")
    alembic_level = alembic.level
    root.handlers = []
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for h in root.handlers:        # the command's own, on the runner's closed stream
            h.close()
        root.handlers = handlers
        root.setLevel(level)
        alembic.setLevel(alembic_level)


def _station_with_model(tmp_path, fitted_model_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    data = tmp_path / "station"
    st = Station(StationConfig(data_dir=data, min_free_gb=0))
    st.ensure_model(fitted_model_path, "cell")
    st.close()
    return data


def test_hot_folder_inspecting_here_logs_a_part_inspected_again_with_another_photo(
        tmp_path, fitted_model_path, synth_category, monkeypatch):
    pytest.importorskip("torch")
    from lineguard.line.sources.folder import FolderWatcher
    data = _station_with_model(tmp_path, fitted_model_path)
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    first, rework = sorted((synth_category / "test" / "good").glob("*.png"))[:2]
    (inbox / "P-0002.png").write_bytes(first.read_bytes())
    run = FolderWatcher.run

    def run_until_the_part_is_back(self, stop_after=None):
        # the part comes back from rework (another photo, the same id) once its first photo
        # is judged; stopped once both are (or after a minute), as Ctrl-C would
        def feed_then_stop():
            deadline = time.monotonic() + 60
            while self.counts["done"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            (inbox / "P-0002.png").write_bytes(rework.read_bytes())
            while self.counts["done"] + self.counts["failed"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stop()
        threading.Thread(target=feed_then_stop, daemon=True).start()
        run(self, stop_after=90)

    monkeypatch.setattr(FolderWatcher, "run", run_until_the_part_is_back)
    with _log_of_a_new_process():
        r = run_in_process("watch", inbox, "--line", "L1", "--station", "S1", "--product", "cell", "--data", data,
                           "--settle", "0.05", "--poll", "0.05", "--min-free-gb", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    judged = [x for x in r.stdout.splitlines() if x.startswith("P-0002.png\t")]
    assert len(judged) == 2, r.stdout + r.stderr
    # before: nothing said the second verdict was the same part's second inspection
    assert "part 'P-0002' on line L1 station S1 inspected again with another photo (source folder)" in r.stderr, \
        r.stderr
    # as serve's log: the migration library's start-up lines stay out of the operator's screen
    assert "alembic" not in r.stderr, r.stderr


def test_camera_inspecting_here_logs_the_station_as_serve_does(tmp_path, fitted_model_path, synth_category):
    pytest.importorskip("torch")
    data = _station_with_model(tmp_path, fitted_model_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    good = sorted((synth_category / "test" / "good").glob("*.png"))[0]
    (frames / "0001.png").write_bytes(good.read_bytes())
    # a webhook new to the station: its outbox says at INFO from which result on the
    # receiver is owed (nothing listens on port 9: delivery fails, the part is stored)
    with _log_of_a_new_process():
        r = run_in_process("camera", "--source", frames, "--line", "L1", "--product", "cell", "--data", data,
                           "--max-parts", "1", "--max-fps", "50", "--min-free-gb", "0",
                           "--webhook", "http://127.0.0.1:9/hook", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\tid=" in r.stdout, r.stdout            # the frame was judged and stored
    # before: the station's INFO lines in the camera's process were dropped
    assert "new, owes the outbox rows after id" in r.stderr, r.stderr
    assert "alembic" not in r.stderr, r.stderr
