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


def test_zero_byte_files_are_refused_after_settling(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "empty.png").write_bytes(b"")
    w = _watcher(st, inbox)
    w.poll_once()
    assert (inbox / "empty.png").exists()     # a writer may be about to fill it: not yet
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
