"""Sources hear how long the station asks them to wait, and a camera stopped on purpose ends 0.

* The station answers a part it cannot take now with 503 and ``Retry-After`` (busy: 5 s; a
  part its model did not judge in time: 30 s). ``remote_submitter`` never read the header,
  and the hot folder and the camera tried again 0.5 to 5 s later whatever it said: a part
  sent 0.5 s after a model timeout joined the queue that had just timed out.
* A hot folder or camera inspecting in the station's process heard the model timeout in
  older words ("send the part again"), without the wait the HTTP answer gives.
* ``lineguard camera`` stopped by SIGTERM (``systemctl stop``) while a recorded source
  waited for the station ended with exit 1 ("1 frame was not inspected"), so systemd showed
  the unit as failed after a normal stop; Ctrl-C there left that frame out of every count.
  ``lineguard watch`` stopped in an outage said the files left waiting in the log alone.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from lineguard.line.sources import SubmitFailed, local_submitter, remote_submitter
from lineguard.line.sources.folder import STATION_DOWN, FolderWatcher

from model_stalls import stuck_model  # noqa: F401 - the fixture: a model that does not answer in time

from .conftest import png_bytes

cv2 = pytest.importorskip("cv2")

# the lineguard these tests import, for the command's own process too
SRC = Path(__import__("lineguard").__file__).resolve().parents[1]


# -- remote_submitter reads Retry-After ----------------------------------------------------
class _Answers(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, headers, body) of the server's ``answers``."""

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, body = self.server.answers.pop(0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def answering():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.answers = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _busy(retry_after=None, body_wait=None, status=503):
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    err = {"code": "busy", "message": "the station is busy"}
    if body_wait is not None:
        err["retry_after_s"] = body_wait
    import json
    return status, headers, json.dumps({"error": err}).encode()


def test_remote_submitter_hands_on_the_stations_retry_after_bounded(answering):
    answering.answers = [_busy("30"), _busy("3600"), _busy(formatdate(time.time() + 20, usegmt=True)),
                         _busy(None, body_wait=5), _busy("soon"), _busy(None), _busy("7", status=429)]
    submit = remote_submitter(f"http://127.0.0.1:{answering.server_port}", "lg_x", "L1", "S1", "cell",
                              timeout_s=10.0)
    waits = []
    for _ in range(7):
        with pytest.raises(SubmitFailed) as info:
            submit(png_bytes(30), "p1", "p1.png")
        waits.append(info.value.retry_after_s)
    assert waits[0] == 30            # the model timeout's
    assert waits[1] == 60            # an hour asked by a proxy: at most a minute
    assert 10 <= waits[2] <= 20      # an HTTP date, as a proxy may send it
    assert waits[3] == 5             # no header: the station's body
    assert waits[4] is None and waits[5] is None     # nothing readable: the source's own backoff
    assert waits[6] == 7             # 429 too
    assert str(info.value).startswith("HTTP 429")


# -- a model that does not answer in time, in the station's process -----------------------
def test_an_in_process_submit_hears_the_model_timeout_in_the_http_answers_words_and_wait(sqlite_station,
                                                                                       stuck_model):
    pytest.importorskip("fastapi")
    from lineguard.server.app import MODEL_TIMEOUT_RETRY_S, _model_timed_out
    st = sqlite_station()
    submit = local_submitter(st, "L1", "S1", "cell", "folder")
    stuck_model.armed.set()
    with pytest.raises(SubmitFailed) as info:
        submit(png_bytes(30), "late-1", "late-1.png")
    exc = info.value
    assert exc.code == "model_unavailable"
    assert exc.retry_after_s == MODEL_TIMEOUT_RETRY_S == 30
    # word for word what the station answers over HTTP for the same timeout
    http = _model_timed_out(exc.__cause__)
    assert str(exc) == f"model_unavailable: {http.message}", str(exc)
    assert "send the part again" not in str(exc) and "Nothing was stored for this part" in str(exc)


def test_a_hot_folder_in_the_stations_process_waits_a_model_timeout_out_as_an_outage(sqlite_station,
                                                                                     stuck_model, tmp_path,
                                                                                     caplog):
    caplog.set_level(logging.INFO, logger="lineguard.watch")
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "part-1.png").write_bytes(png_bytes(30, seed=51))
    (inbox / "part-2.png").write_bytes(png_bytes(30, seed=52))
    calls = []
    submit = local_submitter(st, "L1", "S1", "cell", "folder")

    def counted(data, part_id, name):
        calls.append(part_id)
        return submit(data, part_id, name)

    w = FolderWatcher(inbox, counted, settle_s=0.0, poll_s=0.01)
    stuck_model.armed.set()
    for _ in range(30):
        w.poll_once()
        time.sleep(0.01)
    # one try, then the 30 s the station asked: not one every 0.01 to 5 s
    assert calls == ["part-1"], calls
    assert w.status()["last_retry_in_s"] > 20, w.status()
    # an outage, not the file's own fault: nothing set aside, nothing in failed/
    assert not w._aside and not (inbox / "failed").exists()
    msgs = [r.getMessage() for r in caplog.records if r.name == "lineguard.watch"]
    said = [m for m in msgs if "cannot take parts (model_unavailable:" in m]
    assert len(said) == 1 and "send it again in 30 s" in said[0], msgs
    assert "after the 30 s the station asks" in said[0], said
    assert not [m for m in msgs if "fails on this file" in m], msgs
    # the model answers again and the 30 s are up: both parts judged, in the folder's order
    stuck_model.set()
    w._faults.get(STATION_DOWN)["retry_at"] = float("-inf")
    deadline = time.monotonic() + 30
    while w.counts["done"] < 2 and time.monotonic() < deadline:
        w.poll_once()
        time.sleep(0.01)
    assert w.counts["done"] == 2 and (inbox / "done" / "part-1.png").exists(), w.counts
    assert calls[-2:] == ["part-1", "part-2"], calls


# -- the camera honours Retry-After -----------------------------------------------------------
class _Waits:
    """A stand-in for the camera's stop event: records each wait, never sleeps."""

    def __init__(self):
        self.waits = []
        self._set = False

    def wait(self, timeout=None):
        self.waits.append(timeout)
        return self._set

    def is_set(self):
        return self._set

    def set(self):
        self._set = True


def _asks_once(wait_s, calls):
    def submit(image, part_id, name):
        calls.append(part_id)
        if len(calls) == 1:
            raise SubmitFailed("HTTP 503: the station is busy", "busy", retry_after_s=wait_s)
        return {"part_id": part_id, "verdict": "OK", "score": 0.1, "id": len(calls)}
    return submit


def test_a_recorded_camera_source_waits_what_the_station_asks(tmp_path, caplog):
    from lineguard.line.sources.camera import CameraSource
    caplog.set_level(logging.INFO, logger="lineguard.camera")
    frames = tmp_path / "recorded"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((32, 32, 3), 20 + i, np.uint8))
    calls = []
    cam = CameraSource(str(frames), _asks_once(30.0, calls), station_name="CAM", mode="free", max_fps=50.0)
    cam._stop = _Waits()
    cam.run_free()
    cam.close()
    assert (cam.inspected, cam.lost) == (2, 0), cam.summary()
    # the frame in hand tried again after the station's 30 s, not the 0.5 s backoff
    assert 30.0 in cam._stop.waits, cam._stop.waits
    msgs = [r.getMessage() for r in caplog.records if r.name == "lineguard.camera"]
    assert [m for m in msgs if "or after the 30 s the station asks" in m], msgs


class _LiveCamera:
    """A stream that delivers a frame every 10 ms for ever, as a camera does."""

    def __init__(self):
        self.n = 0

    def isOpened(self):  # noqa: N802
        return True

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return False

    def read(self):
        time.sleep(0.01)
        self.n += 1
        return True, np.full((40, 48, 3), self.n % 200, np.uint8)

    def release(self):
        pass


def test_a_live_camera_sends_no_frame_before_the_stations_retry_after(caplog):
    from lineguard.line.sources.camera import CameraSource
    caplog.set_level(logging.INFO, logger="lineguard.camera")
    calls = []
    cam = CameraSource("0", _asks_once(30.0, calls), station_name="CAM", mode="free", max_fps=1000.0,
                       opener=_LiveCamera)
    cam.run_free(max_parts=5)
    cam.close()
    # one frame sent, the four after it within the 30 s dropped unsent, each counted as lost
    assert len(calls) == 1, calls
    assert (cam.inspected, cam.lost, cam.outages) == (0, 5, 1), cam.summary()
    msgs = [r.getMessage() for r in caplog.records if r.name == "lineguard.camera"]
    assert [m for m in msgs if "none sent for the 30 s the station asks" in m], msgs
    # stopped in the outage: its end said with the frames it lost
    assert [m for m in msgs if m.startswith("stopped while the station could not take frames") and
            "5 frame(s) lost" in m], msgs


# -- the commands' stop ---------------------------------------------------------------------
def _dead_port() -> int:
    """A loopback port nothing listens on: a station that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stopped(cmd, cwd, err_path, outage_words, sig):
    """Run ``cmd``; once its stderr says the outage, send ``sig``: its exit code and stderr."""
    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               LINEGUARD_API_KEY="lg_op_test")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 120
        while outage_words not in err_path.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outage_words in err_path.read_text(), err_path.read_text()
        time.sleep(0.5)
        proc.send_signal(sig)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, err_path.read_text()


@pytest.mark.parametrize("sig, how", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_camera_stopped_while_a_recorded_source_waits_ends_0_and_says_the_frame_lost(tmp_path, sig, how):
    video = tmp_path / "line.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 4.0, (96, 80))
    for i in range(8):
        vw.write(np.full((80, 96, 3), 20 + i, np.uint8))
    vw.release()
    rc, err = _stopped([sys.executable, "-m", "lineguard", "camera", "--source", str(video), "--line", "L1",
                        "--product", "cell", "--server", f"http://127.0.0.1:{_dead_port()}"],
                       tmp_path, tmp_path / "camera.err", "cannot take frames", sig)
    # a stop asked for (systemctl stop) is not a failure: systemd showed the unit failed
    assert rc == 0, err
    lines = err.strip().splitlines()
    assert lines[-1] == f"stopped ({how}): 1 frame was not inspected: the station could not take it (see above)", err
    assert "1 not inspected: the station could not take it (1 outage" in err, err
    assert "stopped while the station could not take frames" in err and "1 frame(s) lost" in err, err
    assert "error:" not in err, err


def test_watch_stopped_in_an_outage_ends_0_and_says_the_files_left_waiting(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(3):
        (inbox / f"p{i}.png").write_bytes(png_bytes(30, seed=60 + i))
    rc, err = _stopped([sys.executable, "-m", "lineguard", "watch", str(inbox), "--line", "L1", "--product", "cell",
                        "--server", f"http://127.0.0.1:{_dead_port()}", "--settle", "0.1", "--poll", "0.1"],
                       tmp_path, tmp_path / "watch.err", "cannot take parts", signal.SIGTERM)
    assert rc == 0, err
    # the files are not lost: they wait in the folder, said in the last line as in the log
    assert err.strip().splitlines()[-1] == "done: 0, failed: 0, waiting in the folder for the next start: 3", err
    assert sorted(p.name for p in inbox.glob("*.png")) == ["p0.png", "p1.png", "p2.png"]
