"""Camera and watch starts with --data: a camera refused at start (no such source, an empty
folder, --mode trig) left a run, and the line view said "camera L1/cam ... stopped and
started again" of a command that never ran; a watcher's run and status file named the line
as typed (`--line l1`) beside parts stored as L1/S1; a watcher's stop said nothing of the
parts judged but left in a read-only folder."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_runner import run_in_process
from fake_inspector import FakeInspector
from sqlalchemy import select

from lineguard.line.config import StationConfig
from lineguard.line.orm import StationRun
from lineguard.line.station import Part, Station


def _station(data: Path, part_on: tuple[str, str] | None = None) -> None:
    st = Station(StationConfig(data_dir=data), loader=FakeInspector.load)
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        if part_on:
            ok, png = cv2.imencode(".png", np.full((32, 32, 3), 40, np.uint8))
            st.inspect(png.tobytes(), Part("p-1", part_on[0], part_on[1], "cell"), source="api")
    finally:
        st.close()


def _runs(data: Path) -> list[str]:
    st = Station(StationConfig(data_dir=data), loader=FakeInspector.load)
    try:
        with st.db.session() as s:
            return [r.process for r in s.scalars(select(StationRun))]
    finally:
        st.close()


@pytest.mark.parametrize("source, extra", [("nothere", []), ("empty", []), ("frames", ["--mode", "trig"])])
def test_a_camera_refused_at_start_leaves_no_run(tmp_path, source, extra):
    _station(tmp_path / "station")
    (tmp_path / "empty").mkdir()
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "000.png"), np.full((32, 32, 3), 40, np.uint8))
    r = run_in_process("camera", "--source", tmp_path / source, "--line", "L1", "--product", "cell",
                       "--data", tmp_path / "station", *extra, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert _runs(tmp_path / "station") == [], ("a camera refused at start left a run: the line view says it "
                                               "stopped and started again")


def test_the_mode_is_refused_by_its_choices(tmp_path):
    r = run_in_process("camera", "--source", tmp_path, "--line", "L1", "--product", "cell", "--mode", "trig",
                       "--data", tmp_path / "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and "'free'" in r.stderr and "'trigger'" in r.stderr, r.stderr


def test_a_watchers_run_is_named_as_the_station_stores_the_line(tmp_path):
    from lineguard.cli.station import _submitter
    _station(tmp_path / "station", part_on=("L1", "S1"))
    _submit, st = _submitter("folder", "l1", "s1", "cell", None, None, tmp_path / "station", None)
    st.close()
    [run] = _runs(tmp_path / "station")
    assert run.startswith("watch L1/S1 on "), run


@pytest.fixture
def watcher_kept(monkeypatch):
    """The watcher watch makes, as it was given; it stops at once, with a part left behind in
    a folder it cannot move files out of."""
    from lineguard.line.sources import folder as folder_mod
    from lineguard.line.station import Station as RealStation
    made: list[dict] = []

    class Watcher:
        def __init__(self, folder, submit, **kw):
            made.append(kw)
            self.counts = {"done": 1, "failed": 0, "ignored": 0}
            self.waiting = 0
            self.not_moved = {"p-7.png": "judged OK"}

        def run(self):
            pass

        def stop(self):
            pass
    monkeypatch.setattr(folder_mod, "FolderWatcher", Watcher)
    # the fake model is not one the real loader reads: no warm-up in these tests
    monkeypatch.setattr(RealStation, "warm_up", lambda self, *a, **k: None)
    return made


def test_watch_names_its_status_file_by_the_stored_line_and_says_parts_left_in_the_folder(tmp_path, watcher_kept):
    _station(tmp_path / "station", part_on=("L1", "S1"))
    (tmp_path / "in").mkdir()
    r = run_in_process("watch", tmp_path / "in", "--line", "l1", "--station", "s1", "--product", "cell",
                       "--data", tmp_path / "station", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [kw] = watcher_kept
    assert kw["status_info"]["line"] == "L1" and kw["status_info"]["station"] == "S1", kw["status_info"]
    assert kw["status_path"].name.startswith("L1-S1-"), kw["status_path"]
    assert "judged but left in the folder (it cannot be moved: see the log): 1" in r.stderr, r.stderr
