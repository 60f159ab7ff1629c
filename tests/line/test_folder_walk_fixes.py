"""Hot folder and camera folder source, found walking the README (walk F2): file names that
forged log lines, done/ and failed/ followed as symbolic links out of the hot folder, a long
name's reason file no one could find, a stuck file's wait starting again at every retry, and
a camera folder that skipped GIFs silently and read links through."""
from __future__ import annotations

import json
import logging
import os
import time

import pytest

from lineguard.line.sources import SubmitRefused
from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources.folder import FolderWatcher, shown_name

from .conftest import png_bytes

STATUS = ".lineguard-watch-status.json"


def _ok(data, part_id, name):
    return {"verdict": "OK", "score": 1.0, "id": 1}


def _station_refusing_control_characters(data, part_id, name):
    # as the station answers a part id holding a control or invisible character
    if not part_id.isprintable():
        raise SubmitRefused("invalid_request: part_id holds a control or invisible character", code="invalid_request")
    return _ok(data, part_id, name)


def _settle(w: FolderWatcher, rounds: int = 3) -> None:
    for _ in range(rounds):
        w.poll_once()
        time.sleep(w.settle_s + 0.02)
    w.poll_once()


def _inbox(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    return inbox


def _said(caplog, logger="lineguard.watch"):
    return [r.getMessage() for r in caplog.records if r.name == logger]


# -- A: a file name never forges a log line ------------------------------------------------------
FORGED = "x\nB-999.png\tOK\tscore=1.0\tid=999\ny.png"


def test_a_file_name_is_shown_escaped_control_invisible_and_bidi_characters_too():
    assert shown_name("B-001.png") == "B-001.png"
    assert shown_name(FORGED) == "x\\nB-999.png\\tOK\\tscore=1.0\\tid=999\\ny.png"
    assert shown_name("rlo\u202egnp.png") == "rlo\\u202egnp.png"
    assert shown_name("esc\x1b[31mred.png") == "esc\\x1b[31mred.png"
    assert shown_name("zero\u200bwidth.png") == "zero\\u200bwidth.png"
    assert shown_name("bad\udcffutf.png") == "bad\\xffutf.png"       # undecodable bytes, as before
    assert shown_name("Prüfteil-ß.png") == "Prüfteil-ß.png"          # printable text stays as it is


def test_a_name_with_a_newline_and_tabs_prints_no_forged_verdict_line(tmp_path, caplog):
    """`lineguard watch` printed `B-999.png<TAB>OK<TAB>score=1.0<TAB>id=999` on a line of its own,
    and RLO and ESC raw."""
    inbox = _inbox(tmp_path)
    for name in (FORGED, "rlo\u202egnp.png", "esc\x1b[31mred.png"):
        (inbox / name).write_bytes(png_bytes(40, seed=1))
    w = FolderWatcher(inbox, _station_refusing_control_characters, settle_s=0.05, poll_s=0.01)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _settle(w)
    said = _said(caplog)
    assert len([m for m in said if "refused" in m]) == 3, said
    for m in said:
        assert m.isprintable(), m                      # no newline, tab, ESC or RLO in any line
    assert any(m.startswith("x\\nB-999.png\\tOK\\tscore=1.0\\tid=999\\ny.png refused: ") for m in said), said
    assert any("rlo\\u202egnp.png refused" in m for m in said) and any("esc\\x1b[31mred.png refused" in m
                                                                      for m in said)


def test_a_name_in_a_not_handled_line_is_escaped(tmp_path, caplog):
    inbox = _inbox(tmp_path)
    (inbox / FORGED).write_bytes(png_bytes(40, seed=2))

    def failing(data, part_id, name):
        raise ValueError("the model failed on this image")
    w = FolderWatcher(inbox, failing, settle_s=0.05, poll_s=0.01)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _settle(w)
    said = _said(caplog)
    assert said and all(m.isprintable() for m in said), said


def test_the_camera_folder_source_shows_a_file_name_escaped(tmp_path, caplog):
    from lineguard.line.sources.camera import FolderCapture
    cam = tmp_path / "cam"
    cam.mkdir()
    (cam / "01.png").write_bytes(png_bytes(40, seed=3))
    (cam / "02\nFAKE-OK\tOK\tscore=1.0\tid=1\nx.png").write_bytes(b"junk!")
    with caplog.at_level(logging.INFO, logger="lineguard.camera"):
        cap = FolderCapture(cam, fps=100)
        while cap.read()[0]:
            pass
    said = _said(caplog, "lineguard.camera")
    assert cap.unreadable == 1
    assert any("02\\nFAKE-OK\\tOK\\tscore=1.0\\tid=1\\nx.png" in m for m in said), said
    assert all(m.isprintable() for m in said), said


# -- B: done/ and failed/ are never followed out of the hot folder ---------------------------------
def test_a_done_folder_that_is_a_symbolic_link_is_refused_not_followed(tmp_path, caplog):
    """`ln -s /elsewhere hot/done`: every part went to /elsewhere."""
    inbox = _inbox(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, inbox / "done")
    (inbox / "SYM-1.png").write_bytes(png_bytes(40, seed=4))
    sent = []

    def submit(data, part_id, name):
        sent.append(part_id)
        return _ok(data, part_id, name)
    w = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _settle(w, rounds=4)
    assert list(elsewhere.iterdir()) == [] and (inbox / "SYM-1.png").exists()
    assert sent == []                            # not judged only to be stuck after it
    said = [m for m in _said(caplog) if "symbolic link" in m]
    assert len(said) == 1, _said(caplog)         # said once, not at every poll
    assert "No file is taken meanwhile" in said[0] and "remove the link" in said[0]
    assert not any("done ignored" in m for m in _said(caplog))   # not taken for a file without a suffix
    status = json.loads((inbox / STATUS).read_text())
    assert "symbolic link" in status["moves_refused"] and status["moves_refused_since"]
    # fixed: a real folder, the file taken
    (inbox / "done").unlink()
    (inbox / "done").mkdir()
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _settle(w)
    assert sent == ["SYM-1"] and (inbox / "done" / "SYM-1.png").exists()
    assert any("take files again" in m for m in _said(caplog))
    assert json.loads((inbox / STATUS).read_text())["moves_refused"] is None


def test_a_failed_folder_that_is_a_symbolic_link_gets_no_refused_file_nor_reason(tmp_path):
    inbox = _inbox(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, inbox / "failed")
    (inbox / "evil.png").write_bytes(b"not an image")
    w = FolderWatcher(inbox, _ok, settle_s=0.05, poll_s=0.01)
    _settle(w, rounds=4)
    assert list(elsewhere.iterdir()) == [] and (inbox / "evil.png").exists()


def test_a_link_swapped_in_for_done_after_the_look_is_not_followed(tmp_path):
    inbox = _inbox(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inbox / "p.png").write_bytes(png_bytes(40, seed=5))
    w = FolderWatcher(inbox, _ok, settle_s=0.05, poll_s=0.01)
    os.symlink(elsewhere, inbox / "done")         # between the look at the folder and the move
    with pytest.raises(OSError, match="symbolic link"):
        w._move(inbox / "p.png", w.done_dir)
    assert list(elsewhere.iterdir()) == [] and (inbox / "p.png").exists()


def test_a_link_planted_under_a_reason_files_name_is_not_written_through(tmp_path):
    inbox = _inbox(tmp_path)
    (inbox / "failed").mkdir()
    victim = tmp_path / "victim.conf"
    victim.write_text("keep me\n")
    os.symlink(victim, inbox / "failed" / "evil.png.reason.txt")
    (inbox / "evil.png").write_bytes(b"not an image")

    def refusing(data, part_id, name):
        raise SubmitRefused("not_an_image: the upload is not an image", code="not_an_image")
    w = FolderWatcher(inbox, refusing, settle_s=0.05, poll_s=0.01)
    _settle(w)
    assert victim.read_text() == "keep me\n"
    reason = inbox / "failed" / "evil.png.reason.txt"
    assert not reason.is_symlink() and "not_an_image" in reason.read_text()


# -- C: a long name's reason is found, and said where ------------------------------------------------
def test_a_long_names_reason_is_beside_it_under_its_first_letters_and_the_log_says_where(tmp_path, caplog):
    inbox = _inbox(tmp_path)
    name = "M" * 247 + ".png"                       # 251 bytes: no room for ".reason.txt"
    (inbox / name).write_bytes(b"not an image")

    def refusing(data, part_id, name):
        raise SubmitRefused("bad_request: part_id is longer than 200 characters", code="bad_request")
    w = FolderWatcher(inbox, refusing, settle_s=0.05, poll_s=0.01)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _settle(w)
    failed = inbox / "failed"
    reasons = [p.name for p in failed.iterdir() if p.name.endswith(".reason.txt")]
    assert len(reasons) == 1 and (failed / name).exists()
    reason = reasons[0]
    # recognisably that file's: its name cut short, a short hash, .reason.txt
    assert reason.startswith("M" * 200) and "~" in reason and len(os.fsencode(reason)) <= 255
    assert name in (failed / reason).read_text()
    refused = [m for m in _said(caplog) if "refused" in m]
    assert len(refused) == 1 and f"the reason is in failed/{reason}" in refused[0], refused


def test_a_long_name_refused_twice_keeps_both_files_and_reasons(tmp_path):
    """The second file of a name already in failed/ gets the time added to its name: past 255
    bytes the move failed at every poll."""
    inbox = _inbox(tmp_path)
    name = "N" * 247 + ".png"

    def refusing(data, part_id, name):
        raise SubmitRefused("bad_request: part_id is longer than 200 characters", code="bad_request")
    w = FolderWatcher(inbox, refusing, settle_s=0.05, poll_s=0.01)
    for i in range(2):
        (inbox / name).write_bytes(b"not an image %d" % i)
        _settle(w)
        assert not (inbox / name).exists()
    failed = sorted(p.name for p in (inbox / "failed").iterdir())
    images = [n for n in failed if n.endswith(".png")]
    assert len(images) == 2 and len([n for n in failed if n.endswith(".reason.txt")]) == 2, failed
    assert all(len(os.fsencode(n)) <= 255 for n in failed)


# -- D: a file's wait counts from when it was first ready, across retries ----------------------------
@pytest.fixture
def quick_backlog(monkeypatch):
    monkeypatch.setattr(folder_mod, "BACKLOG_AFTER_S", 0.3, raising=False)
    monkeypatch.setattr(folder_mod, "STATUS_EVERY_S", 0.0, raising=False)


def _run_for(w: FolderWatcher, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        w.poll_once()
        time.sleep(0.01)


def test_a_file_stuck_behind_a_done_that_is_a_file_makes_the_watcher_behind(tmp_path, caplog, quick_backlog):
    """`echo x > hot/done`: 35 s later the status still said one file waited 0.5 s, not behind."""
    inbox = _inbox(tmp_path)
    (inbox / "done").write_text("x\n")
    (inbox / "W2-3.png").write_bytes(png_bytes(40, seed=6))
    w = FolderWatcher(inbox, _ok, settle_s=0.05, poll_s=0.01)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _run_for(w, 0.6)
    status = json.loads((inbox / STATUS).read_text())
    assert status["waiting"] == 1 and status["oldest_wait_s"] >= 0.4 and status["behind"] is True, status
    assert "is a file, not a folder" in status["moves_refused"]
    behind = [m for m in _said(caplog) if "falling behind" in m]
    assert len(behind) == 1 and "is a file, not a folder" in behind[0], behind   # the cause it sees


def test_a_files_wait_goes_on_across_its_retries(tmp_path, quick_backlog):
    """A file tried again after an error (its submit raising, its move failing) waited from its
    latest retry: never behind, however long it stayed."""
    inbox = _inbox(tmp_path)
    (inbox / "p.png").write_bytes(png_bytes(40, seed=7))
    tries = []

    def failing(data, part_id, name):
        tries.append(part_id)
        raise ValueError("the model failed on this image")
    w = FolderWatcher(inbox, failing, settle_s=0.05, poll_s=0.01)
    _run_for(w, 0.6)
    assert len(tries) >= 2                       # tried again, more than once
    status = json.loads((inbox / STATUS).read_text())
    assert status["oldest_wait_s"] >= 0.4 and status["behind"] is True, status


# -- E: the camera folder source says what it skips, and refuses links -------------------------------
def _camera_folder(tmp_path):
    from PIL import Image
    cam = tmp_path / "cam"
    cam.mkdir()
    (cam / "01.png").write_bytes(png_bytes(40, seed=8))
    Image.new("RGB", (16, 16), (90, 90, 90)).save(cam / "06.gif")
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes(40, seed=9))
    os.symlink(outside, cam / "07.png")
    (cam / "notes.txt").write_text("camera log\n")
    (cam / "sub").mkdir()
    (cam / ".hidden.png").write_bytes(png_bytes(40, seed=10))
    return cam


@pytest.mark.parametrize("source", ["camera", "frames"])
def test_a_camera_folder_refuses_links_and_says_once_what_it_skips(tmp_path, caplog, source):
    from lineguard.line.sources.camera import FolderCapture
    from lineguard.line.sources.frames import FrameGrabber, reads_gif
    cam = _camera_folder(tmp_path)
    with caplog.at_level(logging.INFO, logger="lineguard.camera"):
        files = FolderCapture(cam, fps=100).files if source == "camera" else FrameGrabber(str(cam))._files
    names = [p.name for p in files]
    assert "07.png" not in names                  # a link: never read through
    assert names == (["01.png", "06.gif"] if reads_gif() else ["01.png"])
    said = [m for m in _said(caplog, "lineguard.camera") if "not played" in m]
    assert len(said) == 1, _said(caplog, "lineguard.camera")
    assert "07.png" in said[0] and "symbolic link" in said[0]
    assert "notes.txt" in said[0] and "sub" in said[0] and ".hidden.png" not in said[0]
    if not reads_gif():
        assert "06.gif" in said[0] and "GIF" in said[0]


def test_a_camera_folder_plays_a_gif_it_can_read(tmp_path):
    from lineguard.line.sources.camera import FolderCapture
    from lineguard.line.sources.frames import reads_gif
    if not reads_gif():
        pytest.skip("this OpenCV does not read GIF (said, tested above)")
    cam = _camera_folder(tmp_path)
    cap = FolderCapture(cam, fps=100)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 2 and frames[1].shape[:2] == (16, 16) and cap.unreadable == 0


def test_a_camera_folder_file_swapped_for_a_link_is_not_read_through(tmp_path):
    from lineguard.line.sources.camera import FolderCapture
    cam = tmp_path / "cam"
    cam.mkdir()
    (cam / "01.png").write_bytes(png_bytes(40, seed=11))
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes(40, seed=12))
    cap = FolderCapture(cam, fps=100)
    (cam / "01.png").unlink()
    os.symlink(outside, cam / "01.png")           # after the listing, before the read
    assert cap.read() == (False, None) and cap.unreadable == 1


def test_a_move_across_disks_cut_short_leaves_no_part_copy_in_done(tmp_path, monkeypatch):
    """Review: a copy to done/ on another disk that failed half-way (the disk full) stayed
    there as a photo done, one more under a new name at each retry."""
    import errno
    import shutil as shutil_mod

    from lineguard.line.sources import folder as folder_mod
    src, dst = tmp_path / "in", tmp_path / "done"
    src.mkdir()
    dst.mkdir()
    (src / "P-1.png").write_bytes(b"x" * 5000)

    def full(a, b, n=0):
        b.write(a.read(100))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(shutil_mod, "copyfileobj", full)
    s_fd, d_fd = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            folder_mod._copy_across("P-1.png", s_fd, "P-1.png", d_fd)
    finally:
        os.close(s_fd)
        os.close(d_fd)
    assert list(dst.iterdir()) == [] and (src / "P-1.png").stat().st_size == 5000
