"""Frames for a PLC trigger: next frame after the trigger, recorded rate, image folders, reconnects."""
from __future__ import annotations

import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from lineguard.line.camera_frame import CameraFrame  # noqa: E402
from lineguard.line.sources.frames import FrameGrabber  # noqa: E402


def _frame(i: int) -> np.ndarray:
    return np.full((32, 32, 3), i % 256, np.uint8)


def _video(path, n: int, fps: float) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 32))
    for i in range(n):
        vw.write(_frame(i * 20))
    vw.release()


def test_a_video_file_plays_at_its_recorded_rate(tmp_path):
    video = tmp_path / "line.avi"
    _video(video, 8, 10.0)
    g = FrameGrabber(str(video))
    assert g.fps == pytest.approx(10.0)
    t0 = time.monotonic()
    g.start()
    try:
        deadline = time.monotonic() + 20
        while not g.ended and time.monotonic() < deadline:
            time.sleep(0.02)
        took = time.monotonic() - t0
    finally:
        g.close()
    assert g.ended and g.frames == 8
    # 8 frames at 10 fps take 0.7 s from the first to the last; decoding alone takes milliseconds
    assert took >= 0.65


def test_a_trigger_takes_the_next_frame_not_an_older_one(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"f{i}.png"), _frame(i * 40))
    g = FrameGrabber(str(folder), fps=5.0).start()
    try:
        first = g.next_frame(timeout_s=10)
        n_at_trigger = g.frames
        time.sleep(0.5)                      # frames keep coming between triggers
        before = g.frames
        second = g.next_frame(timeout_s=10)
        assert g.frames == before + 1 > n_at_trigger
        # the frame judged is the one read after the trigger (frame number `before`, 0-based)
        assert int(second[0, 0, 0]) == (before * 40) % 256 != int(first[0, 0, 0])
        frame, name = g.image_source(timeout_s=10)()
        # handed to the station as pixels; a PNG is made only for an image it keeps
        assert isinstance(frame, CameraFrame) and name.endswith(".png")
        assert frame.png().startswith(b"\x89PNG")
    finally:
        g.close()
    with pytest.raises(LookupError, match="end"):
        g2 = FrameGrabber(str(folder), fps=50.0).start()
        try:
            time.sleep(0.6)
            g2.next_frame(timeout_s=1)
        finally:
            g2.close()


class _FlakyCamera:
    """A stream that delivers ``good`` frames, then stops, as a camera whose cable is pulled."""

    def __init__(self, good: int, opens: list):
        self.left = good
        opens.append(self)

    def get(self, prop):
        return 0.0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.01)
        return True, _frame(self.left)

    def release(self):
        pass


def test_a_folder_of_16bit_photos_gives_16bit_frames(tmp_path):
    # a 12-bit camera's photos: the frame sent to the station keeps every bit, so the model
    # scales it by its camera depth as it does the same photo sent as a file
    import io

    from PIL import Image
    folder = tmp_path / "mono12"
    folder.mkdir()
    photo = (np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) * 2) % 4096
    Image.fromarray(photo).save(folder / "a.png")
    g = FrameGrabber(str(folder), fps=20.0, loop=True).start()
    try:
        frame, _ = g.image_source(timeout_s=10)()
    finally:
        g.close()
    assert frame.photo().pixels.dtype == np.uint16
    with Image.open(io.BytesIO(frame.png())) as frame:
        assert frame.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(frame), photo)


def test_a_lost_stream_is_a_fault_and_reconnects(tmp_path):
    opens: list = []
    plan = iter([5, None, 10_000])          # 5 frames, then the reopen fails once, then it is back
    faults: list = []

    def opener():
        good = next(plan, 10_000)
        return None if good is None else _FlakyCamera(good, opens)

    g = FrameGrabber("rtsp://camera.local/line1", opener=opener, reconnect_s=(0.05, 0.1),
                     on_fault=faults.append).start()
    try:
        deadline = time.monotonic() + 20
        while not (faults and faults[-1] is None and g.reconnects >= 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(f and "lost stream" in f for f in faults), faults
        assert faults[-1] is None and g.lost is None, "the fault clears when frames come again"
        assert g.reconnects >= 2 and len(opens) == 2
        assert g.next_frame(timeout_s=10) is not None
    finally:
        g.close()


def test_a_trigger_while_the_camera_is_lost_is_refused_with_the_reason():
    g = FrameGrabber("rtsp://camera.local/line2", opener=lambda: _FlakyCamera(0, []), reconnect_s=(0.05, 0.1))
    g.start()
    try:
        time.sleep(0.2)
        with pytest.raises(LookupError, match="lost stream"):
            g.image_source(timeout_s=0.3)()
    finally:
        g.close()


def test_an_unopenable_source_says_what_to_check(tmp_path):
    with pytest.raises(RuntimeError, match="cannot open camera source"):
        FrameGrabber(str(tmp_path / "missing.avi"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="no images"):
        FrameGrabber(str(empty))


def test_camera_and_plc_make_a_station_a_trigger_judges_the_next_frame(sqlite_station, tmp_path):
    """PLC trigger -> next camera frame -> verdict to the PLC, with a camera that plays a folder."""
    import socket
    from lineguard.line.plc_modbus import ModbusStation
    from lineguard.line.plc_sim import ModbusLink
    folder = tmp_path / "cam"
    folder.mkdir()
    # frame i has brightness 20 + 5 i; 40 frames at 4 a second last 10 s, so a trigger that a
    # loaded machine delays still has a next frame (8 had played out before it: no verdict)
    for i in range(40):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), np.full((32, 32, 3), 20 + 5 * i, np.uint8))
    st = sqlite_station()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = FrameGrabber(str(folder), fps=4.0).start()
    srv = ModbusStation(st, g.image_source(timeout_s=5), {1: "cell"}, line="L1", station_name="S1", port=port,
                        window_ms=5000).start()
    link = ModbusLink("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 60                        # a lost trigger fails, never hangs the run
        while g.frames < 2:                                     # frames 0 and 1 have gone by
            assert time.monotonic() < deadline, "the camera folder played no frame in 60 s"
            time.sleep(0.01)
        shown = g.frames
        link.trigger(7)
        while not link.result_valid():
            assert time.monotonic() < deadline, "no ResultsValid within 60 s of the trigger"
            time.sleep(0.01)
        res = link.read_result()
        assert res["inspection_id"], f"no part was judged: {res}"
        rec = st.get(res["inspection_id"])
        assert res["part_id"] == 7 and rec.source == "plc"
        judged = round((rec.score * 255 - 20) / 5)             # which frame the station judged
        assert judged >= shown, f"frame {judged} was shown before the trigger (after {shown} frames)"
    finally:
        link.close()
        srv.close()
        g.close()


def test_serve_takes_plc_images_or_plc_camera_not_both(tmp_path):
    from cli_runner import run_serve_refusal
    r = run_serve_refusal("--data", tmp_path / "d", "--product", "cell", "--line", "L1", "--modbus-port", "15020",
                          "--plc-images", tmp_path, "--plc-camera", "0")
    assert r.returncode == 2 and "not both" in r.stderr


def test_the_camera_verb_plays_a_video_file_at_its_recorded_rate(sqlite_station, tmp_path):
    """`lineguard camera` free-running on a file: parts come at the file's rate, not the decoder's."""
    from lineguard.line.sources import local_submitter
    from lineguard.line.sources.camera import CameraSource
    st = sqlite_station()
    video = tmp_path / "line.avi"
    _video(video, 8, 10.0)                                   # 0.8 s of line
    cam = CameraSource(str(video), local_submitter(st, "L1", "CAM9", "cell", "camera"), station_name="CAM9",
                       mode="free", max_fps=2.0)
    t0 = time.monotonic()
    cam.run_free()
    took = time.monotonic() - t0
    cam.close()
    assert cam.frames_read == 8 and took >= 0.65
    # at 2 parts/s over 0.8 s of video two frames are inspected (decoded at once, only the first was)
    assert cam.inspected == 2


@pytest.mark.parametrize("kind", ["mono", "colour", "mono16", "grey2d"])
def test_a_camera_frame_reaches_the_station_as_the_same_pixels_and_a_mono_one_as_grey(kind):
    # The camera sources' PNG: a mono camera's frame (three equal channels from OpenCV)
    # goes as one grey channel (a third of the bytes to write and read), and the station
    # reads every kind back as the pixels the camera gave.
    import io

    from PIL import Image

    from lineguard.line.png import encode_frame
    from lineguard.vision.imageio import load_photo
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    frame = {"mono": np.repeat(grey[:, :, None], 3, axis=2),
             "colour": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
             "mono16": np.repeat((grey.astype(np.uint16) * 16)[:, :, None], 3, axis=2),
             "grey2d": grey}[kind]
    data = encode_frame(frame)
    with Image.open(io.BytesIO(data)) as png:
        assert png.format == "PNG"
        assert png.mode == {"mono": "L", "colour": "RGB", "mono16": "I;16", "grey2d": "L"}[kind]
    got = load_photo(data, keep_depth=True).pixels
    if kind == "colour":
        np.testing.assert_array_equal(got, frame[:, :, ::-1])      # BGR from OpenCV, RGB for the model
    elif kind == "mono16":
        np.testing.assert_array_equal(got, frame[:, :, 0])          # kept 16-bit for the model to scale
    else:
        np.testing.assert_array_equal(got, np.repeat(grey[:, :, None], 3, axis=2))
