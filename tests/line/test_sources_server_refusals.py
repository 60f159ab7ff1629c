"""What the camera and the station link say, from a walk: a live camera that came back was
never said with --server (INFO, which the command does not show there; its loss is said),
an empty folder played as a camera was refused "(what it holds instead is said above)"
with nothing said above, and a station that refuses the key or the product in the middle of
a run was said as "HTTP 401: ..." alone, the parts waiting without a word of what to do."""
from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from lineguard.line.sources import SubmitFailed, remote_submitter
from lineguard.line.sources.frames import FolderCapture, FrameGrabber

from .test_sources_retry_after import answering  # noqa: F401 - the fixture: a local station's stand-in


class _Camera:
    """A stream that delivers a frame, drops out for two reads, then delivers again."""

    def __init__(self, reads):
        self.reads = reads

    def read(self):
        ok = self.reads.pop(0) if self.reads else True
        return (True, np.zeros((4, 4, 3), np.uint8)) if ok else (False, None)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_a_live_camera_coming_back_is_said_as_loudly_as_its_loss(caplog):
    reads = [True, False, False, True]
    cam = _Camera(reads)
    back = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record):
            if "delivers frames again" in record.getMessage():
                back.set()
    seen = Seen()
    logging.getLogger("lineguard.camera").addHandler(seen)
    caplog.set_level(logging.WARNING, logger="lineguard.camera")
    g = FrameGrabber("rtsp://cam/s1", opener=lambda: cam, reconnect_s=(0.01, 0.02)).start()
    try:
        assert back.wait(30), "the camera never came back in the test's stand-in"
    finally:
        g.close()
        logging.getLogger("lineguard.camera").removeHandler(seen)
    said = [r for r in caplog.records if "delivers frames again" in r.getMessage()]
    assert said and said[0].levelno >= logging.WARNING, (
        "the camera's return was logged below WARNING: `camera --server` shows its loss and never its return")


def test_an_empty_folder_played_as_a_camera_is_said_empty(tmp_path):
    with pytest.raises(RuntimeError) as refused:
        FolderCapture(tmp_path, fps=2.0)
    assert "it is empty" in str(refused.value), str(refused.value)
    assert "said above" not in str(refused.value), "nothing was said above for an empty folder"


def test_a_folder_of_hidden_files_alone_is_said_so(tmp_path):
    (tmp_path / ".part.png.tmp").write_bytes(b"x")
    with pytest.raises(RuntimeError) as refused:
        FolderCapture(tmp_path, fps=2.0)
    assert "hidden or temporary" in str(refused.value), str(refused.value)


@pytest.mark.parametrize("status, body, said", [
    (401, b'{"error": {"code": "unauthorized", "message": "unknown API key"}}', "no longer takes this key"),
    (404, b'{"error": {"code": "no_active_model", "message": "unknown product \'CELL\'"}}',
     "no active model for this product now"),
])
def test_a_key_or_product_refused_mid_run_says_what_to_do_while_the_parts_wait(answering, status, body, said):
    answering.answers = [(status, {"Content-Type": "application/json"}, body)] * 3    # the same at every try
    submit = remote_submitter(f"http://127.0.0.1:{answering.server_address[1]}", "lg_key", "L1", "S1", "CELL")
    with pytest.raises(SubmitFailed) as waited:     # waited for, not refused part by part into failed/
        submit(b"\x89PNG", "p1", "p1.png")
    assert said in str(waited.value) and "start this command again" in str(waited.value), str(waited.value)
