"""Hot folder fed odd files (issue #11 item 1): the watcher never dies and never takes a
file it should not."""
from __future__ import annotations

import os
import time

from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes


def _settle(w: FolderWatcher, rounds: int = 3) -> None:
    for _ in range(rounds):
        w.poll_once()
        time.sleep(w.settle_s + 0.02)
    w.poll_once()


def _watcher(st, inbox, **kw):
    kw.setdefault("settle_s", 0.05)
    kw.setdefault("poll_s", 0.01)
    return FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), **kw)


def test_a_refused_file_with_a_very_long_name_does_not_stop_the_watcher(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    long_name = "x" * 245 + ".png"   # fits the file system, but not with ".reason.txt" added
    (inbox / long_name).write_bytes(b"not an image at all")
    (inbox / "zz-good.png").write_bytes(png_bytes(40, seed=11))
    w = _watcher(st, inbox)
    _settle(w)   # before the fix: OSError (file name too long) out of poll_once
    assert (inbox / "failed" / long_name).exists() and not (inbox / long_name).exists()
    reasons = [p for p in (inbox / "failed").iterdir() if p.name.endswith(".reason.txt")]
    assert len(reasons) == 1 and long_name in reasons[0].read_text()   # says which file it explains
    assert [r.part_id for r in st.query()] == ["zz-good"]


def test_symlinks_are_not_followed(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(40, seed=12))
    os.symlink(secret, inbox / "link.png")
    w = _watcher(st, inbox)
    _settle(w)
    assert st.query() == []
    assert (inbox / "failed" / "link.png").is_symlink()            # the link moved, not its target
    assert "symbolic link" in (inbox / "failed" / "link.png.reason.txt").read_text()
    assert secret.exists()


def test_zero_byte_files_are_refused_once_they_stay_empty(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "empty.png").write_bytes(b"")
    w = _watcher(st, inbox, incomplete_after_s=0.6)
    w.poll_once()
    _settle(w)
    assert (inbox / "empty.png").exists()     # a writer may be about to fill it: not yet
    time.sleep(0.6)
    _settle(w)
    assert not (inbox / "empty.png").exists()
    assert "empty" in (inbox / "failed" / "empty.png.reason.txt").read_text()
    assert w.counts["failed"] == 1 and st.query() == []


def test_a_writer_that_pauses_longer_than_the_settle_time_is_not_cut_short(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    data = png_bytes(40, seed=13, size=128)
    path = inbox / "paused.png"
    w = _watcher(st, inbox, settle_s=0.05, incomplete_after_s=30.0)
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        _settle(w)              # the writer pauses for several settle times
        assert st.query() == [] and path.exists() and not (inbox / "failed").exists()
        fh.write(data[len(data) // 2:])
    _settle(w)
    assert [r.part_id for r in st.query()] == ["paused"]
    assert st.images.get(st.query()[0].image_key) == data


def test_a_file_that_stays_incomplete_is_refused_in_the_end(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "cut.png").write_bytes(png_bytes(40, seed=14, size=128)[:300])
    w = _watcher(st, inbox, settle_s=0.05, incomplete_after_s=0.2)
    _settle(w, rounds=6)
    assert (inbox / "failed" / "cut.png").exists() and st.query() == []
    assert "corrupt" in (inbox / "failed" / "cut.png.reason.txt").read_text()


def test_an_unexpected_error_on_one_file_does_not_stop_the_others(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.png").write_bytes(png_bytes(40, seed=15))
    (inbox / "b.png").write_bytes(png_bytes(40, seed=16))
    w = _watcher(st, inbox)
    real_move = w._move

    def move(path, folder):
        if path.name == "a.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_move(path, folder)

    w._move = move
    _settle(w)
    assert "b" in {r.part_id for r in st.query()}


def test_a_part_first_created_empty_and_filled_later_is_inspected(sqlite_station, tmp_path):
    """A camera that creates its file and writes the photo seconds later: the empty file
    was refused after the settle time and the photo written on into failed/."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    path = inbox / "hf-late.png"
    path.write_bytes(b"")
    w = _watcher(st, inbox, incomplete_after_s=30.0)
    _settle(w, rounds=6)          # empty for many settle times
    assert path.exists() and not (inbox / "failed").exists()
    data = png_bytes(40, seed=21)
    path.write_bytes(data)
    _settle(w)
    assert [r.part_id for r in st.query()] == ["hf-late"] and st.images.get(st.query()[0].image_key) == data
    assert (inbox / "done" / "hf-late.png").exists() and not (inbox / "failed").exists()


def test_a_file_over_the_upload_limit_is_refused_from_its_size_unread(sqlite_station, tmp_path):
    """A 400 MB ".png" (a signature, then zeros) was read whole at every poll while it
    looked incomplete (1.1 GB peak) and refused only by the station."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    with open(inbox / "huge.png", "wb") as fh:       # sparse: quick to make, 33 MB to read
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.truncate(33 * 1024 * 1024)
    (inbox / "small.png").write_bytes(png_bytes(40, seed=22))
    w = _watcher(st, inbox)                          # the station's default limit, 32 MB
    reads = []
    real_read = w._read
    w._read = lambda path: reads.append(path.name) or real_read(path)
    _settle(w)
    assert "huge.png" not in reads
    assert (inbox / "failed" / "huge.png").exists()
    reason = (inbox / "failed" / "huge.png.reason.txt").read_text()
    assert "33.0 MiB, over the station's upload limit of 32 MiB" in reason and "--max-upload-mb" in reason
    assert [r.part_id for r in st.query()] == ["small"]
    # a limit of its own (watch --max-upload-mb)
    (inbox / "mid.png").write_bytes(png_bytes(40, seed=23, size=128))
    w = _watcher(st, inbox, max_bytes=1000)
    _settle(w)
    assert (inbox / "failed" / "mid.png").exists() and len(st.query()) == 1


def test_a_file_that_looks_incomplete_is_not_read_whole_at_every_poll(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    data = png_bytes(40, seed=24, size=128)
    path = inbox / "paused.png"
    path.write_bytes(data[: len(data) // 2])
    w = _watcher(st, inbox, incomplete_after_s=30.0)
    reads = []
    real_read = w._read
    w._read = lambda p: reads.append(p.name) or real_read(p)
    _settle(w, rounds=5)
    assert reads == [] and path.exists()            # only its ends looked at
    with open(path, "ab") as fh:
        fh.write(data[len(data) // 2:])
    _settle(w)
    assert reads == ["paused.png"] and [r.part_id for r in st.query()] == ["paused"]


def test_gif_parts_are_taken_and_other_files_are_said_once(sqlite_station, tmp_path, caplog):
    """The station takes GIF; the watcher left .gif files (and files with no suffix) in the
    folder for ever without a word."""
    import io
    import logging

    import numpy as np
    from PIL import Image

    from lineguard.line.imagestore import media_type_for
    from lineguard.line.sources.folder import WATCH_SUFFIXES
    from lineguard.vision.imageio import IMAGE_SUFFIXES
    # what the watcher takes is what the station stores and serves; training's list unchanged
    assert all(media_type_for("x" + s) != "application/octet-stream" for s in WATCH_SUFFIXES)
    assert ".gif" in WATCH_SUFFIXES and ".gif" not in IMAGE_SUFFIXES
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    buf = io.BytesIO()
    Image.fromarray(np.full((48, 48, 3), 40, np.uint8)).save(buf, format="GIF")
    (inbox / "g-001.GIF").write_bytes(buf.getvalue())
    (inbox / "cam-0002").write_bytes(png_bytes(40, seed=25))       # no suffix
    (inbox / "cam-0003.raw").write_bytes(b"raw sensor data")
    (inbox / ".part.png.tmp").write_bytes(b"a copy tool's temporary file")
    w = _watcher(st, inbox)
    with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
        _settle(w)
        _settle(w)
    assert [r.part_id for r in st.query()] == ["g-001"] and (inbox / "done" / "g-001.GIF").exists()
    said = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(said) == 2, said                                       # once per file, however many polls
    assert any(m.startswith("cam-0002 ignored: it has no suffix") for m in said)
    assert any(m.startswith("cam-0003.raw ignored: its suffix '.raw'") and ".gif" in m for m in said)
    assert w.counts["ignored"] == 2
    assert (inbox / "cam-0002").exists() and (inbox / "cam-0003.raw").exists()   # left for whoever wrote them
