"""Hot folder and camera sources, as a walk through a plant found them (walk B):
a dead camera's last frame judged again, storage faults sending parts to failed/ for
good, half-written TIFF/BMP/JPEG files taken early, a camera that drops ending the
run, --max-fps dropping frames it should take, an unbounded journal, subfolders and
lasting faults said at every poll, SIGTERM without the summary."""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from lineguard.line.sources import SubmitRefused, local_submitter  # noqa: E402
from lineguard.line.sources import folder as folder_mod  # noqa: E402
from lineguard.line.sources.camera import CameraSource  # noqa: E402
from lineguard.line.sources.folder import JOURNAL, FolderWatcher  # noqa: E402

from .conftest import png_bytes  # noqa: E402
from .test_folder_hardening import _settle  # noqa: E402


def _watcher(submit, inbox, **kw):
    kw.setdefault("settle_s", 0.05)
    kw.setdefault("poll_s", 0.01)
    return FolderWatcher(inbox, submit, **kw)


def _ok(calls=None):
    def submit(data, part_id, name):
        if calls is not None:
            calls.append((part_id, data))
        return {"id": 1, "verdict": "OK", "score": 0.1, "part_id": part_id}
    return submit


# -- a stand-in camera (cv2.VideoCapture) --------------------------------------------------
class _Cam:
    """A live stream: delivers frames while ``state['up']``; when it goes down it stays
    down for this capture (a reopen gets a new one, opened only while the camera is up)."""

    def __init__(self, state):
        self.state = state
        self.opened = state["up"]
        state["opens"] += 1
        self.dead = False

    def isOpened(self):
        return self.opened

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def read(self):
        time.sleep(0.01)
        if not self.opened or self.dead or not self.state["up"]:
            self.dead = True
            return False, None
        self.state["n"] += 1
        return True, np.full((16, 16, 3), self.state["n"] % 256, np.uint8)

    def release(self):
        pass


@pytest.fixture
def fake_camera(monkeypatch):
    state = {"up": True, "opens": 0, "n": 0}
    monkeypatch.setattr(cv2, "VideoCapture", lambda src: _Cam(state))
    return state


def test_a_trigger_in_front_of_a_dead_camera_is_refused_not_judged_on_its_last_frame(fake_camera):
    calls = []
    cam = CameraSource("rtsp://cam.test/line1", _ok(calls), mode="trigger")
    cam.start_grabbing()
    try:
        time.sleep(0.2)
        assert cam.trigger(timeout_s=2) is not None and len(calls) == 1
        fake_camera["up"] = False                     # the cable is pulled
        time.sleep(0.3)
        for _ in range(3):
            with pytest.raises(LookupError):          # before: 3 parts judged on the same last frame
                cam.trigger(timeout_s=0.3)
        assert len(calls) == 1
        fake_camera["up"] = True                      # back: the grabber reopened it
        before = fake_camera["n"]
        assert cam.trigger(timeout_s=10) is not None and len(calls) == 2
        pid, frame = calls[-1]
        assert int(frame.pixels[0, 0, 0]) > before % 256 or before > 200   # a frame newer than the trigger
        assert fake_camera["opens"] >= 2
        assert cam.summary().endswith("3 triggers without a frame newer than the trigger (not inspected)")
    finally:
        cam.close()


def test_a_trigger_on_a_video_file_takes_the_frame_after_it_at_the_recorded_rate(tmp_path):
    video = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    for i in range(20):                               # 2 s of line, each frame its own grey
        vw.write(np.full((32, 32, 3), 10 * i, np.uint8))
    vw.release()
    calls = []
    cam = CameraSource(str(video), _ok(calls), mode="trigger")
    cam.start_grabbing()
    try:
        time.sleep(0.3)
        cam.trigger(timeout_s=2)
        time.sleep(0.5)
        cam.trigger(timeout_s=2)
    finally:
        cam.close()
    first, second = (int(f.pixels[0, 0, 0]) for _, f in calls)
    # before: the grab loop read the file as fast as it decodes: both got its last frame (190)
    assert first < 150 and second - first >= 30


def test_free_run_on_a_live_camera_reconnects_when_it_drops(fake_camera):
    cam = CameraSource("rtsp://cam.test/line1", _ok(), mode="free", max_fps=1000.0)
    t = threading.Thread(target=cam.run_free, kwargs={"max_parts": 10}, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while cam.taken < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    fake_camera["up"] = False
    time.sleep(0.3)
    fake_camera["up"] = True
    t.join(15)
    alive = t.is_alive()
    cam.close()
    assert not alive and cam.taken == 10, cam.summary()       # before: the run ended at the drop, exit 0
    assert fake_camera["opens"] >= 2


def test_free_run_gives_up_only_when_told_and_says_so(fake_camera):
    from lineguard.line.sources.camera import CameraLost
    fake_camera["up"] = True
    cam = CameraSource("rtsp://cam.test/line1", _ok(), mode="free", max_fps=1000.0, give_up_after_s=0.5,
                       reconnect_s=(0.05, 0.1))
    fake_camera["up"] = False
    with pytest.raises(CameraLost, match="gave up"):
        cam.run_free()
    cam.close()


def test_max_fps_at_the_files_rate_inspects_every_frame_even_after_a_slow_first_part(tmp_path):
    video = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    for i in range(12):
        vw.write(np.full((32, 32, 3), 10 * i, np.uint8))
    vw.release()
    first = []

    def slow_first(image, part_id, name):
        if not first:
            first.append(1)
            time.sleep(0.5)                           # the model's first load
        return {"verdict": "OK", "score": 0.1}
    cam = CameraSource(str(video), slow_first, mode="free", max_fps=10.0)
    cam.run_free()
    cam.close()
    # before: 2-8 of 12 (next due from the late read time; frames read late skipped)
    assert (cam.frames_read, cam.inspected, cam.skipped) == (12, 12, 0), cam.summary()
    assert "to inspect every frame" not in cam.summary()


def test_camera_part_ids_are_utc_and_unique_across_processes(tmp_path):
    video = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    vw.write(np.full((32, 32, 3), 10, np.uint8))
    vw.release()
    ids = []
    for _ in range(2):     # two processes starting in the same second on one station name
        cam = CameraSource(str(video), _ok(), station_name="CAM1")
        ids.append(cam._part_id())
        cam.close()
    assert ids[0] != ids[1] and all(i.startswith("CAM1-") and "Z-" in i for i in ids), ids


# -- storage faults are transient ----------------------------------------------------------
def test_a_storage_fault_or_no_model_keeps_the_file_and_retries_it(sqlite_station, tmp_path, monkeypatch):
    from lineguard.line.errors import NoActiveModel, StorageUnavailable
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(40, seed=31))
    real = st.inspect
    faults = [StorageUnavailable("the data folder cannot be written: No space left on device"),
              NoActiveModel("no active model for product 'cell'")]

    def inspect(*a, **k):
        if faults:
            raise faults.pop(0)
        return real(*a, **k)
    monkeypatch.setattr(st, "inspect", inspect)
    w = _watcher(local_submitter(st, "L1", "S1", "cell", "folder"), inbox)
    _settle(w, rounds=2)
    # before: failed/ for good, journalled failed, never retried once space came back
    assert not (inbox / "failed").exists()
    _settle(w, rounds=4)
    assert (inbox / "done" / "p1.png").exists() and [r.part_id for r in st.query()] == ["p1"]
    statuses = [json.loads(x)["status"] for x in (inbox / JOURNAL).read_text().splitlines()]
    assert statuses == ["done"]


# -- files still being written ---------------------------------------------------------------
def _image(fmt: str, **kw) -> bytes:
    from PIL import Image
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(20, 60, (120, 160, 3), dtype=np.uint8)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _jpeg_with_thumbnail() -> tuple[bytes, int]:
    """A JPEG with an EXIF thumbnail (itself a JPEG, with its own end marker); and the
    offset just past the thumbnail."""
    from PIL import Image
    small = io.BytesIO()
    Image.new("RGB", (16, 12), (40, 40, 40)).save(small, format="JPEG")
    thumb = small.getvalue()
    # TIFF (little endian): IFD0 with Orientation, IFD1 with the thumbnail's offset and length
    ifd0 = (1).to_bytes(2, "little") + (274).to_bytes(2, "little") + (3).to_bytes(2, "little") + \
        (1).to_bytes(4, "little") + (1).to_bytes(4, "little")
    ifd1_at = 8 + len(ifd0) + 4
    ifd0 += ifd1_at.to_bytes(4, "little")
    thumb_at = ifd1_at + 2 + 2 * 12 + 4
    ifd1 = (2).to_bytes(2, "little")
    for tag, value in ((513, thumb_at), (514, len(thumb))):
        ifd1 += tag.to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little") + \
            value.to_bytes(4, "little")
    ifd1 += (0).to_bytes(4, "little")
    tiff = b"II*\x00" + (8).to_bytes(4, "little") + ifd0 + ifd1 + thumb
    app1 = b"Exif\x00\x00" + tiff
    main = _image("JPEG", quality=90)
    data = main[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + main[2:]
    return data, 2 + 4 + len(app1)


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG-thumbnail"])
def test_a_slow_writer_of_a_tiff_or_a_jpeg_paused_after_its_thumbnail_is_waited_for(sqlite_station, tmp_path, fmt):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    if fmt == "TIFF":
        data, cut, name = _image("TIFF"), None, "slow.tif"
        cut = len(data) // 2
    else:
        (data, cut), name = _jpeg_with_thumbnail(), "thumb.jpg"
    from PIL import Image
    assert Image.open(io.BytesIO(data)).size == (160, 120)
    path = inbox / name
    w = _watcher(local_submitter(st, "L1", "S1", "cell", "folder"), inbox, incomplete_after_s=30.0)
    with open(path, "wb") as fh:
        fh.write(data[:cut])
        fh.flush()
        _settle(w, rounds=4)      # paused for many settle times
        # before: refused as corrupt (TIFF: taken as whole; JPEG: the thumbnail's end marker)
        assert path.exists() and not (inbox / "failed").exists() and st.query() == []
        fh.write(data[cut:])
    _settle(w)
    assert (inbox / "done" / name).exists() and st.images.get(st.query()[0].image_key) == data


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_a_copy_that_sets_the_size_first_is_not_judged_half_filled(sqlite_station, tmp_path, fmt):
    """Windows CopyFile / SMB: the final size is set first, then filled; the header says
    whole while the rest is zeros."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    data = _image(fmt)
    path = inbox / f"pre.{fmt.lower()}"
    w = _watcher(local_submitter(st, "L1", "S1", "cell", "folder"), inbox, incomplete_after_s=30.0)
    with open(path, "wb") as fh:
        fh.truncate(len(data))
        fh.write(data[: len(data) * 2 // 5])
        fh.flush()
        _settle(w, rounds=4)
        # before: judged on a half-zero image, the whole file then sitting in done/
        assert path.exists() and st.query() == []
        fh.write(data[len(data) * 2 // 5:])
    _settle(w)
    assert (inbox / "done" / path.name).exists() and st.images.get(st.query()[0].image_key) == data


def test_a_file_refused_as_corrupt_while_it_may_still_be_written_is_waited_for(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    path = inbox / "p.png"
    path.write_bytes(png_bytes(40, seed=32))
    answers = ["corrupt", "ok"]
    calls = []

    def submit(data, part_id, name):
        calls.append(part_id)
        if answers[0] == "corrupt":
            raise SubmitRefused("corrupt_image: the image cannot be decoded", "corrupt_image")
        return {"id": 1, "verdict": "OK", "score": 0.1}
    w = _watcher(submit, inbox, incomplete_after_s=30.0)
    _settle(w, rounds=4)
    assert path.exists() and not (inbox / "failed").exists() and calls == ["p"]   # sent once, not at every poll
    answers.pop(0)
    path.write_bytes(png_bytes(41, seed=32))       # the writer finished it
    _settle(w)
    assert (inbox / "done" / "p.png").exists() and calls == ["p", "p"]
    # and one that stays corrupt is refused once --incomplete-after has passed
    path = inbox / "q.png"
    path.write_bytes(png_bytes(40, seed=33))
    answers.insert(0, "corrupt")
    w = _watcher(submit, inbox, incomplete_after_s=0.3)
    _settle(w, rounds=8)
    assert (inbox / "failed" / "q.png").exists()


# -- the journal stays bounded -----------------------------------------------------------------
def test_the_journal_is_compacted_at_start_keeping_the_files_still_there(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_mod, "JOURNAL_KEEP", 100, raising=False)
    inbox = tmp_path / "in"
    inbox.mkdir()
    kept = inbox / "p-still-here.png"
    kept.write_bytes(png_bytes(40, seed=34))
    st = kept.stat()
    lines = [json.dumps({"name": f"old-{i}.png", "size": 10, "mtime_ns": i, "status": "done"}) for i in range(5000)]
    lines.insert(10, json.dumps({"name": kept.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                 "status": "done"}))
    (inbox / JOURNAL).write_text("\n".join(lines) + "\n")
    calls = []
    w = _watcher(_ok(calls), inbox)
    n = len((inbox / JOURNAL).read_text().splitlines())
    assert n <= 101, n                                  # before: 5001 lines, read whole, kept for ever
    _settle(w)
    assert calls == [] and (inbox / "done" / kept.name).exists()   # handled before: only moved


# -- what is said ------------------------------------------------------------------------------
def test_subfolders_are_said_once_not_silently_ignored(tmp_path, caplog):
    inbox = tmp_path / "in"
    (inbox / "2026-12-05").mkdir(parents=True)
    (inbox / "2026-12-05" / "p.png").write_bytes(png_bytes(40, seed=35))
    (inbox / "p0.png").write_bytes(png_bytes(40, seed=36))
    w = _watcher(_ok(), inbox)
    with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
        _settle(w)
        _settle(w)
    said = [r.getMessage() for r in caplog.records if "subfolder" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("2026-12-05/ is a subfolder: it is not watched"), said
    assert (inbox / "done" / "p0.png").exists()


def test_a_lasting_fault_is_said_once_not_at_every_poll(tmp_path, caplog):
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.png").write_bytes(png_bytes(40, seed=37))
    w = _watcher(_ok(), inbox)

    def move(path, folder):
        raise PermissionError(13, "Permission denied", str(folder))
    w._move = move                                   # done/ not writable
    with caplog.at_level(logging.ERROR, logger="lineguard.watch"):
        w.run(stop_after=1.0)
    said = [r for r in caplog.records if r.name == "lineguard.watch" and "a.png" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    caplog.clear()
    gone = tmp_path / "gone"
    gone.mkdir()
    w = _watcher(_ok(), gone)
    gone.rmdir()                                     # the share went away
    with caplog.at_level(logging.ERROR, logger="lineguard.watch"):
        w.run(stop_after=0.5)
    assert len([r for r in caplog.records if "scanning" in r.getMessage()]) == 1


def test_sigterm_ends_watch_with_its_summary(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "lineguard", "watch", str(inbox), "--line", "L1", "--product",
                             "cell", "--server", "http://127.0.0.1:19517", "--api-key", "lg_x", "--poll", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        for line in proc.stderr:
            if "watching" in line:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)      # a service stopped (systemd, docker stop)
        out, err = proc.communicate(timeout=30)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    # before: killed by the signal (-15), no summary, the station not closed
    assert proc.returncode == 0 and "done: 0, failed: 0" in err, (proc.returncode, err)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_a_dark_photo_ending_in_zeros_is_taken_once_it_stays_unchanged(sqlite_station, tmp_path, monkeypatch, fmt):
    """A part on a black conveyor (a BMP's top rows, a TIFF's bottom ones: their last 4 KB
    all zero) looked like a copy not yet filled and waited the whole --incomplete-after."""
    from PIL import Image

    monkeypatch.setattr(folder_mod, "ZERO_TAIL_SETTLE_S", 0.3)
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    arr = np.full((64, 64, 3), 120, np.uint8)
    if fmt == "BMP":
        arr[:40] = 0            # BMP rows are stored bottom-up: its top rows end the file
    else:
        arr[-40:] = 0           # an uncompressed TIFF ends with its bottom rows
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    data = buf.getvalue()
    assert not data[-4096:].strip(b"\x00")         # the case: a tail of zeros
    path = inbox / f"dark.{fmt.lower()}"
    path.write_bytes(data)
    w = _watcher(local_submitter(st, "L1", "S1", "cell", "folder"), inbox, incomplete_after_s=30.0)
    deadline = time.monotonic() + 20            # a wait for a state: loaded machines are slow
    while path.exists() and time.monotonic() < deadline:
        w.poll_once()
        time.sleep(0.05)
    assert (inbox / "done" / path.name).exists() and st.images.get(st.query()[0].image_key) == data
