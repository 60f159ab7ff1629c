"""A camera in the station's process hands over its frames as pixels: judged as the PNG
would have been, and encoded as PNG only for parts whose image the station keeps."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from lineguard.line import camera_frame  # noqa: E402
from lineguard.line.camera_frame import CameraFrame  # noqa: E402
from lineguard.line.errors import CorruptImage, ImageTooLarge  # noqa: E402
from lineguard.line.png import encode_frame  # noqa: E402
from lineguard.line.station import Part  # noqa: E402
from lineguard.vision.imageio import load_photo  # noqa: E402


def _frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    return {"mono": np.repeat(grey[:, :, None], 3, axis=2),          # OpenCV's view of a mono camera
            "colour": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
            "mono16": np.repeat((grey.astype(np.uint16) * 16)[:, :, None], 3, axis=2),
            "colour16": rng.integers(0, 4096, (48, 64, 3), dtype=np.uint16),
            "grey2d": grey,
            "bgra": rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)}


@pytest.mark.parametrize("kind", list(_frames()))
def test_a_frame_gives_the_model_what_its_png_would_and_the_same_png(kind):
    frame = _frames()[kind]
    png = encode_frame(frame)
    got = CameraFrame(frame).photo()
    want = load_photo(png, keep_depth=True)
    assert got.size_hw == want.size_hw and got.pixels.dtype == want.pixels.dtype
    np.testing.assert_array_equal(got.pixels, want.pixels)
    assert CameraFrame(frame).png() == png


class _CountedEncodes:
    def __init__(self, monkeypatch):
        self.n = 0
        real = camera_frame.encode_png

        def counted(arr):
            self.n += 1
            return real(arr)
        monkeypatch.setattr(camera_frame, "encode_png", counted)


def _part(pid: str) -> Part:
    return Part(pid, "L1", "CAM1", "cell")


def _frame(value: int, seed: int = 0) -> np.ndarray:
    # the fake model scores a part by its brightness: NG over 0.5 (value > ~128)
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(value, 4, (40, 56, 3)), 0, 255).astype(np.uint8)


def test_a_kept_frame_is_stored_and_recorded_as_the_png_a_camera_would_send(sqlite_station, monkeypatch):
    st = sqlite_station()
    encodes = _CountedEncodes(monkeypatch)
    frame = _frame(200)
    out = st.inspect(CameraFrame(frame), _part("p1"), source="camera")
    png = encode_frame(frame)
    rec = out.record
    assert out.created and rec.verdict == "NG" and encodes.n == 1
    assert rec.image_sha256 == hashlib.sha256(png).hexdigest()
    assert st.images.get(rec.image_key) == png and rec.image_key.endswith(".png")
    assert (rec.image_width, rec.image_height) == (56, 40)
    # the same frame sent as its PNG (a remote camera) is the same image and the same verdict
    as_file = st.inspect(png, _part("p2"), source="camera").record
    assert (as_file.image_sha256, as_file.image_key, as_file.score) == (rec.image_sha256, rec.image_key, rec.score)


def test_a_frame_whose_image_is_not_kept_is_never_encoded(sqlite_station, monkeypatch):
    from lineguard.line.config import RetentionPolicy
    st = sqlite_station(retention=RetentionPolicy(ok_sample_rate=0.0), audit_sample_rate=0.0)
    encodes = _CountedEncodes(monkeypatch)
    ok_frame = CameraFrame(_frame(60))
    rec = st.inspect(ok_frame, _part("ok1"), source="camera").record
    assert rec.verdict == "OK" and rec.image_key is None and encodes.n == 0
    assert rec.image_sha256 == ok_frame.sha256()       # named by its pixels: there is no file
    assert list((st.config.data_dir / "images").rglob("*.png")) == []
    # an NG frame is kept, so encoded once the verdict says so
    ng = st.inspect(CameraFrame(_frame(200)), _part("ng1"), source="camera").record
    assert ng.verdict == "NG" and encodes.n == 1 and st.images.exists(ng.image_key)
    assert ng.heatmap_key is not None
    assert not list((st.images.root / ".staging").glob("*.tmp"))


def test_a_frame_sent_twice_is_answered_with_its_record(sqlite_station):
    from lineguard.line.config import RetentionPolicy
    st = sqlite_station(retention=RetentionPolicy(ok_sample_rate=0.0), audit_sample_rate=0.0)
    ok, ng = _frame(60), _frame(200)
    first = {pid: st.inspect(CameraFrame(f), _part(pid), source="camera").record.id
             for pid, f in (("a", ok), ("b", ng))}
    for pid, f in (("a", ok), ("b", ng)):
        again = st.inspect(CameraFrame(f.copy()), _part(pid), source="camera")
        assert not again.created and again.record.id == first[pid]
    # a second station on the same data (a restart: nothing in memory): the database's
    # unique (part, image) index answers
    st2 = sqlite_station(retention=RetentionPolicy(ok_sample_rate=0.0), audit_sample_rate=0.0)
    for pid, f in (("a", ok), ("b", ng)):
        again = st2.inspect(CameraFrame(f), _part(pid), source="camera")
        assert not again.created and again.record.id == first[pid]
    assert len(st2.query(station="CAM1")) == 2


@pytest.mark.parametrize("pixels, error, says", [
    (np.zeros((40, 56, 3), np.float32), CorruptImage, "float32 pixels"),
    (np.zeros((40, 56, 2), np.uint8), CorruptImage, "layout"),
    (np.zeros((4, 56, 3), np.uint8), CorruptImage, "too small"),
    (np.zeros((1100, 1000), np.uint8), ImageTooLarge, "over the limit of 1"),
])
def test_a_bad_frame_is_refused_with_the_reason_and_nothing_stored(sqlite_station, pixels, error, says):
    st = sqlite_station(max_image_pixels=1_000_000)
    with pytest.raises(error, match=says) as exc:
        st.inspect(CameraFrame(pixels), _part("bad"), source="camera")
    assert "the camera frame" in exc.value.message
    assert st.query(station="CAM1") == []


def test_the_camera_verb_hands_an_in_process_station_its_frames_unencoded(sqlite_station, tmp_path, monkeypatch):
    from lineguard.line.config import RetentionPolicy
    from lineguard.line.sources import local_submitter
    from lineguard.line.sources.camera import CameraSource
    st = sqlite_station(retention=RetentionPolicy(ok_sample_rate=0.0), audit_sample_rate=0.0)
    video = tmp_path / "dark.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (64, 48))
    for _ in range(5):
        vw.write(np.full((48, 64, 3), 40, np.uint8))              # good (dark) parts
    vw.release()
    encodes = _CountedEncodes(monkeypatch)
    cam = CameraSource(str(video), local_submitter(st, "L1", "CAM1", "cell", "camera"), station_name="CAM1",
                       mode="free", max_fps=1000.0)
    cam.run_free()
    cam.close()
    recs = st.query(station="CAM1")
    assert cam.inspected == len(recs) >= 1 and all(r.verdict == "OK" and r.image_key is None for r in recs)
    assert encodes.n == 0


def test_a_frame_whose_png_cannot_be_written_leaves_nothing_in_staging(sqlite_station, monkeypatch):
    import os
    import tempfile

    from lineguard.line import imagestore
    from lineguard.line.errors import StorageUnavailable
    st = sqlite_station()

    def disk_full(self, data):
        fd, self.tmp = tempfile.mkstemp(dir=self.store._staging, suffix=".tmp")   # half-written, then ENOSPC
        os.close(fd)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(imagestore.StagedFile, "_write", disk_full)
    with pytest.raises(StorageUnavailable, match="No space left"):
        st.inspect(CameraFrame(_frame(200)), _part("full"), source="camera")
    assert list((st.images.root / ".staging").glob("*.tmp")) == []
    assert st.query(station="CAM1") == []
