"""Hot folder and camera sources with real files and a real video."""
from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest

from lineguard.line.sources import local_submitter
from lineguard.line.sources.camera import CameraSource
from lineguard.line.sources.folder import JOURNAL, FolderWatcher

from .conftest import png_bytes


def _settle(w: FolderWatcher, rounds: int = 3) -> None:
    for _ in range(rounds):
        w.poll_once()
        time.sleep(w.settle_s + 0.02)
    w.poll_once()


def test_folder_inspects_each_new_file_once_and_moves_it(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    (inbox / "a-001.png").write_bytes(png_bytes(30, seed=1))
    (inbox / "a-002.png").write_bytes(png_bytes(230, seed=2))
    (inbox / "notes.txt").write_text("not a part")
    (inbox / ".hidden.png").write_bytes(png_bytes(30, seed=3))
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.05, poll_s=0.01)
    _settle(w)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["a-001.png", "a-002.png"]
    recs = {r.part_id: r for r in st.query(line="L1")}
    assert set(recs) == {"a-001", "a-002"} and recs["a-002"].verdict == "NG" and recs["a-001"].source == "folder"
    assert (inbox / "notes.txt").exists() and (inbox / ".hidden.png").exists()
    _settle(w)
    assert len(st.query()) == 2


def test_folder_skips_half_written_files(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    data = png_bytes(40, seed=4, size=128)
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.3, poll_s=0.01)
    path = inbox / "slow.png"
    with open(path, "wb") as fh:
        for i in range(0, len(data), 2000):   # a slow writer: a chunk per poll
            fh.write(data[i:i + 2000])
            fh.flush()
            w.poll_once()
            time.sleep(0.05)
    assert st.query() == [] and path.exists()
    time.sleep(0.35)
    w.poll_once()
    w.poll_once()
    time.sleep(0.35)
    w.poll_once()
    assert [r.part_id for r in st.query()] == ["slow"]
    assert st.images.get(st.query()[0].image_key) == data


def test_folder_rejects_bad_files_with_a_reason(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "broken.png").write_bytes(png_bytes(40, seed=5)[:100])
    # a truncated PNG is first taken for one still being written; refused once it stays so
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.05,
                      incomplete_after_s=0.1)
    _settle(w)
    assert (inbox / "failed" / "broken.png").exists()
    reason = (inbox / "failed" / "broken.png.reason.txt").read_text()
    assert "corrupt" in reason
    assert st.query() == []


def test_folder_survives_restart_without_double_inspection(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(40, seed=6))
    calls = []
    submit = local_submitter(st, "L1", "S1", "cell", "folder")

    def counting(data, pid, name):
        calls.append(pid)
        return submit(data, pid, name)

    w = FolderWatcher(inbox, counting, settle_s=0.05)
    # crash after the inspection and journal entry but before the move: simulate by moving it back
    _settle(w)
    os.replace(inbox / "done" / "p1.png", inbox / "p1.png")
    stat = (inbox / "p1.png").stat()
    assert json.loads((inbox / JOURNAL).read_text().splitlines()[0])["status"] == "done"
    w2 = FolderWatcher(inbox, counting, settle_s=0.05)   # a restarted watcher reads the journal
    os.utime(inbox / "p1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _settle(w2)
    assert calls == ["p1"] and (inbox / "done" / "p1.png").exists() and not (inbox / "p1.png").exists()
    assert len(st.query()) == 1
    # and a crash before the journal entry: the station's idempotency answers with the old record
    (inbox / "p1.png").write_bytes(png_bytes(40, seed=6))
    w3 = FolderWatcher(inbox, counting, settle_s=0.05)
    _settle(w3)
    assert calls == ["p1", "p1"] and len(st.query()) == 1
    assert len(list((inbox / "done").iterdir())) == 2


def _write_video(path, frames: int = 30, size=(96, 80)) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    assert vw.isOpened()
    for i in range(frames):
        v = 30 if i < frames // 2 else 230   # first half good parts, second half "defects"
        vw.write(np.full((size[1], size[0], 3), v, np.uint8))
    vw.release()


def test_camera_free_run_is_rate_limited(sqlite_station, tmp_path):
    st = sqlite_station()
    video = tmp_path / "line.avi"
    _write_video(video, frames=60)
    cam = CameraSource(str(video), local_submitter(st, "L1", "CAM1", "cell", "camera"), station_name="CAM1",
                       mode="free", max_fps=1000.0)
    cam.run_free()
    cam.close()
    assert cam.frames_read == 60 and cam.inspected >= 1
    recs = st.query(station="CAM1", limit=1000)
    assert len(recs) == cam.inspected and all(r.source == "camera" for r in recs)
    # a low rate drops frames: 60 frames read as fast as the file gives them, at most 2/s
    st2_count = len(recs)
    cam = CameraSource(str(video), local_submitter(st, "L1", "CAM2", "cell", "camera"), station_name="CAM2",
                       mode="free", max_fps=2.0)
    t0 = time.monotonic()
    cam.run_free()
    elapsed = time.monotonic() - t0
    cam.close()
    assert cam.frames_read == 60 and 1 <= cam.inspected <= 2 + 2 * elapsed
    assert st2_count > cam.inspected


def test_camera_trigger_mode(sqlite_station, tmp_path):
    st = sqlite_station()
    video = tmp_path / "line.avi"
    _write_video(video, frames=60)      # 2 s at 30 fps: the first second good parts, then defects
    got = []
    cam = CameraSource(str(video), local_submitter(st, "L1", "CAM3", "cell", "camera"), station_name="CAM3",
                       mode="trigger", on_result=got.append)
    cam.start_grabbing()
    time.sleep(1.2)   # the file plays at its recorded rate: the trigger takes the frame after it
    r = cam.trigger()
    assert r is not None and r["verdict"] == "NG" and got == [r]
    assert len(st.query(station="CAM3")) == 1
    time.sleep(1.2)   # the file ran out: a trigger now has no frame newer than itself
    from lineguard.line.sources.camera import NoFrame
    with pytest.raises(NoFrame, match="end"):
        cam.trigger(timeout_s=0.5)
    cam.close()
    assert len(st.query(station="CAM3")) == 1 and cam.no_frame == 1
    with pytest.raises(RuntimeError, match="cannot open camera"):
        CameraSource(str(tmp_path / "missing.avi"), lambda *a: {}, mode="trigger")


def test_folder_part_in_the_review_band_is_recorded_and_shown_as_review(sqlite_station, tmp_path):
    from fake_inspector import FakeInspector
    st = sqlite_station()
    st.add_model(FakeInspector(0.5, review_threshold=0.3).to_bytes(), "band", activate=True)
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    (inbox / "r-001.png").write_bytes(png_bytes(100, seed=9))
    shown = []
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "band", "folder"), settle_s=0.05, poll_s=0.01,
                      on_result=lambda path, r: shown.append((path.name, r["verdict"])))
    _settle(w)
    assert shown == [("r-001.png", "REVIEW")]
    assert [r.verdict for r in st.query(product="band")] == ["REVIEW"]
    assert (inbox / "done" / "r-001.png").exists()


def test_camera_max_parts_counts_refused_frames_too(tmp_path):
    """Every frame refused (a product the station does not know): --max-parts counted
    inspected frames only, so the run went on through every frame (a live camera: for ever)."""
    from lineguard.line.sources import SubmitRefused
    video = tmp_path / "line.avi"
    _write_video(video, frames=10)

    def refuse(image, part_id, name):
        raise SubmitRefused("no_active_model: unknown product 'CELL'")

    cam = CameraSource(str(video), refuse, mode="free", max_fps=1000.0)
    cam.run_free(max_parts=2)
    cam.close()
    assert (cam.frames_read, cam.taken, cam.inspected, cam.refused) == (2, 2, 0, 2)
    assert cam.summary() == "2 frames read, 0 inspected, 0 skipped by --max-fps, 2 refused"


def test_camera_says_how_many_frames_max_fps_skipped(sqlite_station, tmp_path):
    """A 6-frame video at the default 2 fps: 2 inspected, 4 never judged, and nothing said."""
    st = sqlite_station()
    video = tmp_path / "line.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 6.0, (96, 80))   # 1 s of line
    for _ in range(6):
        vw.write(np.full((80, 96, 3), 30, np.uint8))
    vw.release()
    cam = CameraSource(str(video), local_submitter(st, "L1", "CAM5", "cell", "camera"), station_name="CAM5",
                       mode="free", max_fps=2.0)
    cam.run_free()
    cam.close()
    assert cam.frames_read == 6 and cam.inspected + cam.skipped == 6 and cam.skipped >= 3
    line = cam.summary()
    assert line.startswith(f"6 frames read, {cam.inspected} inspected, {cam.skipped} skipped by --max-fps, 0 refused")
    assert "skipped by design" in line and "--max-fps 6 to inspect every frame" in line
