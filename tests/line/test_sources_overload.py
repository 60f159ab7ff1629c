"""A hot folder and a recorded camera source sending to a station that is overloaded
(every database connection in use past the pool's wait) wait it out as an outage: the
file is not set aside as failing on it, the frame not given up after FRAME_TRIES.

The station answered that overload 500 internal_error, which both sources take for a
failure on that part; it answers 503 busy now (tests/server/test_overload_503.py), which
both take for "the station cannot take parts now". The station runs here in this process
behind a real HTTP server, so the test holds its pool's connections while the sources post.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from lineguard.line.sources import SubmitFailed, remote_submitter
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes, until

OK_PHOTO = 30


@pytest.fixture(autouse=True)
def short_retry_after(monkeypatch):
    """The station's Retry-After (busy: 5 s) is honoured (tests/line/test_sources_retry_after.py);
    here it is bounded to 0.05 s so seven busy answers do not take 35 s."""
    import lineguard.line.sources as sources
    monkeypatch.setattr(sources, "RETRY_AFTER_MAX_S", 0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(st) -> Iterator[tuple[str, str]]:
    """``st`` behind uvicorn on a loopback port, in a thread of this process: its URL and an
    operator key."""
    import uvicorn
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        _row, key = create_key(s, "operator", "overload source test", by="test")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(station=st), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="overload-test-server", daemon=True)
    thread.start()
    until(lambda: server.started, "the test's station server to start")
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class PoolHeld:
    """Every connection of the station's database pool, held by the test until ``free()``; a
    request asking for one meanwhile waits ``wait_s`` (the pool's 30 s, shortened)."""

    def __init__(self, st, wait_s: float = 0.2):
        st.db.engine.pool._timeout = wait_s
        self._held = []
        self._lock = threading.Lock()
        try:
            while True:
                self._held.append(st.db.engine.connect())
        except PoolTimeout:
            pass
        self.taken = len(self._held)
        assert self.taken >= 24

    def free(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()


def counting(submit, pool: PoolHeld, busy_tries: int, answers: list):
    """``submit``, the pool freed once the station answered ``busy_tries`` failures; each
    failure's code kept in ``answers``."""
    def send(image, part_id, name):
        try:
            return submit(image, part_id, name)
        except SubmitFailed as exc:
            answers.append(exc.code or str(exc)[:40])
            if len(answers) >= busy_tries:
                pool.free()
            raise
    return send


def test_a_recorded_camera_source_waits_out_an_overloaded_station_and_gives_no_frame_up(sqlite_station,
                                                                                       tmp_path, caplog):
    cv2 = pytest.importorskip("cv2")
    from lineguard.line.sources.camera import FRAME_TRIES, CameraSource
    import numpy as np
    caplog.set_level(logging.INFO, logger="lineguard.camera")
    st = sqlite_station()
    frames = tmp_path / "recorded"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((64, 64, 3), 20 + i, np.uint8))
    answers: list = []
    with served(st) as (url, key):
        # a first part through: the key is known, the model loaded
        assert remote_submitter(url, key, "L1", "CAM", "cell")(png_bytes(OK_PHOTO, seed=9300), "warm", "w.png")
        pool = PoolHeld(st)
        try:
            send = counting(remote_submitter(url, key, "L1", "CAM", "cell", timeout_s=20.0), pool,
                            FRAME_TRIES + 2, answers)
            cam = CameraSource(str(frames), send, station_name="CAM", mode="free", max_fps=50.0,
                               retry_s=(0.02, 0.05))
            cam.run_free()
            cam.close()
        finally:
            pool.free()
    assert (cam.inspected, cam.given_up, cam.lost, cam.errors) == (2, 0, 0, 0), cam.summary()
    assert answers == ["busy"] * (FRAME_TRIES + 2), answers
    msgs = [r.getMessage() for r in caplog.records if r.name == "lineguard.camera"]
    assert [m for m in msgs if "cannot take frames (HTTP 503: the station is busy" in m], msgs
    assert not [m for m in msgs if "not inspected" in m], msgs     # "... failed on it 5 times; given up" before


def test_a_hot_folder_takes_an_overloaded_station_for_an_outage_not_the_files_fault(sqlite_station, tmp_path,
                                                                                    caplog):
    caplog.set_level(logging.INFO, logger="lineguard")
    st = sqlite_station()
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    answers: list = []
    with served(st) as (url, key):
        assert remote_submitter(url, key, "L1", "S1", "cell")(png_bytes(OK_PHOTO, seed=9400), "warm", "w.png")
        (inbox / "part-1.png").write_bytes(png_bytes(OK_PHOTO, seed=9401))
        pool = PoolHeld(st)
        try:
            w = FolderWatcher(inbox, counting(remote_submitter(url, key, "L1", "S1", "cell", timeout_s=20.0),
                                              pool, 3, answers), settle_s=0.02, poll_s=0.01)
            deadline = time.monotonic() + 60
            while not (inbox / "done" / "part-1.png").exists() and time.monotonic() < deadline:
                w.poll_once()
                time.sleep(0.02)
        finally:
            pool.free()
    assert (inbox / "done" / "part-1.png").exists(), sorted(p.name for p in inbox.rglob("*"))
    assert answers == ["busy"] * 3, answers
    assert w.counts["done"] == 1 and not w.counts.get("failed"), w.counts
    msgs = [r.getMessage() for r in caplog.records if r.name == "lineguard.watch"]
    assert [m for m in msgs if "cannot take parts (HTTP 503: the station is busy" in m], msgs
    assert not [m for m in msgs if "fails on this file" in m], msgs
    assert [r.part_id for r in st.query(line="L1") if r.part_id == "part-1"] == ["part-1"]


def test_an_in_process_camera_waits_out_an_overloaded_station(sqlite_station, tmp_path, caplog):
    """Through local_submitter (a camera in the station's process, `serve --plc-camera`) the
    same overload is a SubmitFailed 503 busy: waited out, not the frame's own error."""
    cv2 = pytest.importorskip("cv2")
    import numpy as np
    from lineguard.line.camera_frame import CameraFrame
    from lineguard.line.sources import local_submitter
    from lineguard.line.sources.camera import CameraSource
    caplog.set_level(logging.INFO, logger="lineguard.camera")
    st = sqlite_station()
    frames = tmp_path / "recorded"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((64, 64, 3), 20 + i, np.uint8))
    submit = local_submitter(st, "L1", "CAM", "cell", "camera")
    submit(CameraFrame(np.full((64, 64, 3), 9, np.uint8)), "warm", "w.png")     # the model loaded
    answers: list = []
    pool = PoolHeld(st)
    try:
        cam = CameraSource(str(frames), counting(submit, pool, 3, answers), station_name="CAM", mode="free",
                           max_fps=50.0, retry_s=(0.02, 0.05))
        cam.run_free()
        cam.close()
    finally:
        pool.free()
    assert (cam.inspected, cam.lost, cam.errors) == (2, 0, 0), cam.summary()
    assert answers == ["busy"] * 3, answers
