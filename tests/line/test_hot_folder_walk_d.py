"""Hot folder, found walking the README's "Bad input, faults and limits" (walk D): a photo made at
its full size first (a Windows/SMB copy) sent unfilled and moved to failed/ under its writer, two
watchers on one folder splitting its parts unsaid, a read-only done/ said as the whole folder
read-only, a camera's temporary names warned about part by part, a slow file's wait unreported,
and a photo dropped again answered with the old record's id without a word."""
from __future__ import annotations

import errno
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lineguard.line.sources.folder import FolderWatcher, file_looks_complete

from .conftest import png_bytes

SRC = str(Path(__file__).resolve().parents[2] / "src")


class _Station:
    """A station that records what it is sent and judges every part OK."""

    def __init__(self):
        self.sent: list[tuple[str, bytes]] = []

    def __call__(self, data, part_id, name):
        self.sent.append((name, data))
        return {"verdict": "OK", "score": 1.0, "id": len(self.sent), "created": True}


def _polls(w: FolderWatcher, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        w.poll_once()
        time.sleep(0.02)
    w.poll_once()


def _said(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "lineguard.watch"]


def _bmp_bytes() -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (90, 120, 150)).save(buf, format="BMP")
    return buf.getvalue()


# -- 1: a file made at its full size first is waited for, never sent unfilled ---------------------
@pytest.mark.parametrize("name,photo", [("prezero.png", png_bytes(60, seed=3)), ("prezero.bmp", _bmp_bytes())])
def test_a_photo_made_at_its_full_size_first_is_waited_for_and_taken_once_filled(tmp_path, name, photo):
    """A Windows/SMB copy sets the final size first: the file was all zero bytes after the settle
    time, sent, refused "not_an_image" and moved to failed/ while the writer went on writing."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    station = _Station()
    w = FolderWatcher(inbox, station, settle_s=0.05, poll_s=0.01, incomplete_after_s=30)
    target = inbox / name
    with open(target, "wb") as fh:
        fh.truncate(len(photo))
    assert file_looks_complete(target, len(photo)) is False
    _polls(w, 0.6)
    assert station.sent == [] and target.exists(), "an unfilled file was sent or moved"
    assert not (inbox / "failed").exists() or not any((inbox / "failed").iterdir())
    with open(target, "r+b") as fh:
        fh.write(photo)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10_000_000))   # a clock that moved on
    _polls(w, 0.6)
    assert [n for n, _d in station.sent] == [name] and station.sent[0][1] == photo
    assert (inbox / "done" / name).read_bytes() == photo


def test_a_photo_never_filled_goes_to_failed_after_the_wait_unsent_saying_re_capture(tmp_path, caplog):
    inbox = tmp_path / "in"
    inbox.mkdir()
    station = _Station()
    w = FolderWatcher(inbox, station, settle_s=0.05, poll_s=0.01, incomplete_after_s=0.4)
    with open(inbox / "never.png", "wb") as fh:
        fh.truncate(5000)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _polls(w, 0.2)
        assert (inbox / "never.png").exists() and station.sent == []
        _polls(w, 0.6)
    assert station.sent == [], "the station was sent a file of zero bytes"
    reason = (inbox / "failed" / "never.png.reason.txt").read_text()
    assert "zero bytes" in reason and "re-capture" in reason, reason
    assert "not_an_image" not in " ".join(_said(caplog))


# -- 2: one watcher per folder --------------------------------------------------------------------
_HOLDER = """
import sys, time
sys.path.insert(0, {src!r})
from lineguard.line.sources.folder import FolderWatcher
w = FolderWatcher({folder!r}, lambda d, p, n: {{}}, status_info={{"line": "L1", "station": "S1"}})
w.poll_once()
print("ready", flush=True)
sys.stdin.readline()
"""


def test_a_second_watcher_on_a_folder_is_refused_naming_the_first_and_a_dead_ones_lock_does_not_block(tmp_path):
    from lineguard.line.sources.folder_lock import LOCK_FILE, FolderInUse
    inbox = tmp_path / "in"
    inbox.mkdir()
    first = subprocess.Popen([sys.executable, "-c", _HOLDER.format(src=SRC, folder=str(inbox))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "ready"
        (inbox / "P1.png").write_bytes(png_bytes(60, seed=4))
        station = _Station()
        second = FolderWatcher(inbox, station, settle_s=0.0, poll_s=0.01, status_info={"line": "L1", "station": "S2"})
        with pytest.raises(FolderInUse) as refused:
            second.run(stop_after=0.3)
        assert station.sent == [] and (inbox / "P1.png").exists()     # refused before it took a part
        said = str(refused.value)
        assert "already watched" in said and "station S1" in said and f"pid {first.pid}" in said, said
        assert "since " in said and "host " in said and "folder of its own" in said, said
    finally:
        first.kill()          # as a crash or kill -9 ends it: no clean release
        first.wait(10)
    assert (inbox / LOCK_FILE).exists()                    # left behind by the dead watcher
    w = FolderWatcher(inbox, _Station(), status_info={"line": "L1", "station": "S2"})
    w.poll_once()
    holder = json.loads((inbox / LOCK_FILE).read_text())
    assert holder["station"] == "S2" and holder["pid"] == os.getpid()
    w.close()


def test_the_watchers_lock_file_is_never_taken_for_a_part_nor_said(tmp_path, caplog):
    from lineguard.line.sources.folder_lock import LOCK_FILE
    inbox = tmp_path / "in"
    inbox.mkdir()
    station = _Station()
    w = FolderWatcher(inbox, station, settle_s=0.05, poll_s=0.01, incomplete_after_s=0.2)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _polls(w, 0.6)
    assert (inbox / LOCK_FILE).exists() and station.sent == []
    assert not any(LOCK_FILE in m for m in _said(caplog)), _said(caplog)
    assert w.status()["waiting"] == 0


# -- 3: a read-only done/ is named, and the journal said as it is ---------------------------------
def test_a_read_only_done_folder_is_named_and_the_journal_said_written(tmp_path, caplog, monkeypatch):
    """"ro1.png: judged and stored (id 408, OK), but incoming is read-only: it can be neither moved
    to done/ nor recorded in the watcher's journal" while incoming/ took the journal's entry."""
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    station = _Station()
    w = FolderWatcher(inbox, station, settle_s=0.05, poll_s=0.01)
    real_move = FolderWatcher._move

    def move(self, path, folder):
        if folder == self.done_dir:          # done/ on a disk mounted read-only
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))
        return real_move(self, path, folder)

    monkeypatch.setattr(FolderWatcher, "_move", move)
    (inbox / "ro1.png").write_bytes(png_bytes(60, seed=8))
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _polls(w, 0.4)
    assert len(station.sent) == 1 and (inbox / "ro1.png").exists()
    errors = [m for m in _said(caplog) if m.startswith("ro1.png: judged and stored")]
    assert errors, _said(caplog)
    said = errors[0]
    assert f"{inbox / 'done'} is read-only" in said, said
    assert f"{inbox} is read-only" not in said and "nor recorded in the watcher's journal" not in said, said
    assert "recorded in the watcher's journal" in said, said
    journal = [json.loads(line) for line in (inbox / ".lineguard-watch.jsonl").read_text().splitlines()]
    assert [e["name"] for e in journal] == ["ro1.png"]


# -- 4: a camera's temporary names are waited for unsaid, and said once if they stay -------------
def test_a_cameras_temporary_names_are_not_warned_part_by_part_and_one_left_is_said_once(tmp_path, caplog):
    """T48.png.tmp -> T48.png logged "ignored: its suffix '.tmp' is not an image" for every part,
    and ~P1.png or a file named just .png were skipped with no word at all."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    station = _Station()
    w = FolderWatcher(inbox, station, settle_s=0.05, poll_s=0.01, incomplete_after_s=0.5)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        for i in range(3):
            tmp = inbox / f"T{i}.png.tmp"
            tmp.write_bytes(png_bytes(60, seed=20 + i))
            w.poll_once()
            os.replace(tmp, inbox / f"T{i}.png")
        _polls(w, 0.3)
        assert sorted(n for n, _d in station.sent) == ["T0.png", "T1.png", "T2.png"]
        assert not any(".tmp" in m for m in _said(caplog)), _said(caplog)
        (inbox / "~P1.png").write_bytes(png_bytes(60, seed=30))
        (inbox / ".png").write_bytes(png_bytes(60, seed=31))
        (inbox / "stuck.png.part").write_bytes(b"half a photo")
        _polls(w, 0.2)
        assert w.status()["waiting"] == 2 and w.status()["writing"] == 2, w.status()   # ~P1.png, stuck.png.part
        assert not any("~P1.png" in m or "stuck.png.part" in m for m in _said(caplog))
        _polls(w, 0.8)
    said = _said(caplog)
    for name in ("~P1.png", ".png", "stuck.png.part"):
        assert len([m for m in said if m.startswith(f"{name} has stayed")]) == 1, (name, said)
    assert any(m.startswith("~P1.png has stayed") and "rename it without the leading '~'" in m for m in said), said
    assert w.counts["ignored"] == 3


# -- 7: files still being written count as waiting -----------------------------------------------
def test_files_still_being_written_count_as_waiting_in_the_status(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    w = FolderWatcher(inbox, _Station(), settle_s=0.05, poll_s=0.01, incomplete_after_s=30)
    whole = png_bytes(60, seed=9)
    (inbox / "slow1.png").write_bytes(whole[: len(whole) // 2])       # a paused copy
    (inbox / "slow2.png").write_bytes(b"")                              # created, not yet filled
    _polls(w, 0.5)
    w._look_behind([p.name for p in w._candidates()], time.monotonic())
    status = w.status()
    assert status["waiting"] == 2 and status["writing"] == 2, status
    assert sorted(status["writing_files"]) == ["slow1.png", "slow2.png"]
    assert status["behind"] is False          # being written is not the watcher falling behind
    w.run(stop_after=0.05)
    assert w.waiting == 2                     # what the stop's summary says waits for the next start


# -- 8: a photo dropped again is said to be a repeat ---------------------------------------------
def test_the_same_photo_dropped_again_is_said_to_be_a_repeat_not_counted_again(sqlite_station, tmp_path, caplog):
    from lineguard.line.sources import local_submitter
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    lines = []
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.05, poll_s=0.01,
                      on_result=lambda p, r: lines.append(r))
    photo = png_bytes(60, seed=11)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        (inbox / "same.png").write_bytes(photo)
        _polls(w, 0.3)
        (inbox / "same.png").write_bytes(photo)
        _polls(w, 0.3)
    assert len(lines) == 2 and lines[0]["id"] == lines[1]["id"]
    said = [m for m in _said(caplog) if "same photo as part id same" in m]
    assert len(said) == 1 and f"record id {lines[0]['id']}" in said[0] and "not counted again" in said[0], said


def test_watch_refused_by_another_watchers_lock_exits_2_with_its_words(tmp_path, monkeypatch):
    """The CLI's end of the lock: the refusal in one line, exit 2, not a traceback."""
    from click.testing import CliRunner

    import lineguard.cli.station as station_cli
    from lineguard.cli import app
    from lineguard.line.sources.folder_lock import FolderInUse
    monkeypatch.setattr(station_cli, "_submitter", lambda *a, **k: ((lambda *a, **k: None), None))

    def taken(self, stop_after=None):
        raise FolderInUse(self.folder, {"host": "pc7", "pid": 4242, "station": "S1", "line": "L1",
                                        "since": "2026-12-08T06:00:00Z"})
    monkeypatch.setattr(FolderWatcher, "run", taken)
    (tmp_path / "in").mkdir()
    r = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--line", "L1", "--product", "cell", "--data",
                                  str(tmp_path / "data")])
    assert r.exit_code == 2, r.output
    assert "already watched" in r.output and "pid 4242" in r.output and "Traceback" not in r.output, r.output


def test_a_watcher_released_by_the_collector_during_another_ones_acquire_does_not_hang(tmp_path, monkeypatch):
    """A dropped watcher's lock is released by its finalizer, which the garbage collector may
    run inside another watcher's acquire() in the same thread: with a plain lock around the
    held folders that thread waited on itself for ever."""
    import threading as th

    from lineguard.line.sources import folder_lock
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    dropped = folder_lock.FolderLock(first)
    assert dropped.acquire()
    real_open = folder_lock.os.open

    def open_then_collected(path, *args, **kw):      # the collector runs the dropped one's finalizer here
        dropped.release()
        return real_open(path, *args, **kw)
    monkeypatch.setattr(folder_lock.os, "open", open_then_collected)
    other = folder_lock.FolderLock(second)
    done = []
    t = th.Thread(target=lambda: done.append(other.acquire()), daemon=True)
    t.start()
    t.join(10)
    assert done == [True], "acquire() waited on the lock its own thread held"
    monkeypatch.undo()
    other.release()
