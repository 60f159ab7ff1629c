"""A part written again under the same name while the one before is being inspected (a
camera that always writes ``image.bmp``; walk J): before, the new photo went to done/ (or
to failed/ with the reason of the one before) without being inspected, with no record and
no log line. The submit here is slow on purpose: the camera writes the next part while the
station judges the first, as a watcher's first part (model load) or a slow --server gives
it seconds to do in a plant."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

import pytest

from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import JOURNAL, FolderWatcher

from .conftest import png_bytes
from .test_folder_hardening import _settle


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _camera_writes_again_while_judged(submit, path, new: bytes, how: str):
    """A submit during which the camera writes ``new`` under ``path``'s name: ``in place``
    (the same file truncated and written, as ``cat b > image.png``) or ``new file`` (written
    aside and renamed over it: a new inode, here even with the old file's time)."""
    sent = []

    def slow(data, part_id, name):
        sent.append(_sha(data))
        if len(sent) == 1:
            before = path.stat().st_mtime_ns
            if how == "in place":
                with open(path, "r+b") as fh:
                    fh.truncate(0)
                    fh.write(new)
                # a later time, as the plant's camera wrote it 2.5 s later (not left to
                # the file system's clock granularity)
                os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))
            else:
                tmp = path.with_name(".next.tmp")
                tmp.write_bytes(new)
                os.utime(tmp, ns=(before, before))
                os.replace(tmp, path)
        return submit(data, part_id, name)
    return slow, sent


@pytest.mark.parametrize("how", ["in place", "new file"])
def test_a_part_written_again_while_the_one_before_is_judged_is_inspected_not_moved(sqlite_station, tmp_path,
                                                                                    caplog, how):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    a, b = png_bytes(40, seed=51), png_bytes(40, seed=52)
    path = inbox / "image.png"
    path.write_bytes(a)
    submit, sent = _camera_writes_again_while_judged(local_submitter(st, "L1", "S1", "cell", "folder"), path, b,
                                                     how)
    w = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01)
    with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
        _settle(w, rounds=5)
    # before: one record (A's), and done/ held B's bytes: a photo never judged beside A's verdict
    assert sent == [_sha(a), _sha(b)]
    assert sorted(r.image_sha256 for r in st.query()) == sorted([_sha(a), _sha(b)])
    done = sorted((inbox / "done").iterdir())
    assert [p.read_bytes() for p in done] == [b]             # A's bytes were overwritten by the camera
    assert not path.exists() and w.counts["done"] == 2
    said = [r.getMessage() for r in caplog.records if "written again" in r.getMessage()]
    assert len(said) == 1 and "image.png" in said[0] and "new part" in said[0]
    journal = [json.loads(x) for x in (inbox / JOURNAL).read_text().splitlines()]
    assert [e["sha256"] for e in journal] == [_sha(a), _sha(b)]
    # a restart (kill -9 after all this) inspects nothing again
    w2 = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01)
    _settle(w2)
    assert len(sent) == 2 and w2.counts["done"] == 0


def test_a_part_written_again_while_the_one_before_is_refused_is_not_moved_to_failed(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    broken = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200 + b"IEND\xaeB`\x82"   # looks whole, does not decode
    good = png_bytes(40, seed=53)
    path = inbox / "image.png"
    path.write_bytes(broken)
    submit, sent = _camera_writes_again_while_judged(local_submitter(st, "L1", "S1", "cell", "folder"), path,
                                                     good, "in place")
    # refused at once (not waited for as a file still being written)
    w = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01, incomplete_after_s=0.0)
    _settle(w, rounds=5)
    # before: the good part went to failed/ with the broken one's reason, never judged
    assert sent == [_sha(broken), _sha(good)]
    assert [r.image_sha256 for r in st.query()] == [_sha(good)]
    assert [p.read_bytes() for p in (inbox / "done").iterdir()] == [good]
    assert not (inbox / "failed").exists() or not any((inbox / "failed").iterdir())
    assert w.counts == {"done": 1, "failed": 1, "skipped": 0, "ignored": 0}


def _bmp(seed: int) -> bytes:
    """A 48x40 BMP of noise: every BMP of one resolution is the same number of bytes, as a
    camera's are."""
    import cv2
    import numpy as np
    ok, buf = cv2.imencode(".bmp", np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _renamed_over(path, new: bytes) -> None:
    """The camera's next photo, written aside and renamed over ``path`` (a new inode) with
    the same time as the one before (FAT, exFAT and SMB keep times to 1-2 s; a copy tool
    may keep them exactly)."""
    before = path.stat().st_mtime_ns
    tmp = path.with_name(".next.tmp")
    tmp.write_bytes(new)
    os.utime(tmp, ns=(before, before))
    os.replace(tmp, path)


@pytest.fixture(params=["inode numbers", "a share without inode numbers"])
def share(request, monkeypatch):
    """Each test on a file system with inode numbers, and on one that gives 0 for every file
    (some SMB shares): there the SHA-256 tells the files apart."""
    if request.param != "inode numbers":
        monkeypatch.setattr(FolderWatcher, "_ino", staticmethod(lambda st: None), raising=False)
    return request.param


def test_a_new_photo_of_the_same_size_and_time_written_while_the_one_before_is_judged_is_inspected(
        sqlite_station, tmp_path, caplog, share):
    """Review: a camera writing image.bmp renamed over the one being judged, the new photo
    the same size (fixed-size BMP) and the same time: said "inspected as a new part", then
    moved to done/ on the next poll with no record and no verdict (an escape), counted as
    skipped, because name, size and time were those of the part handled."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    a, b = _bmp(61), _bmp(62)
    assert len(a) == len(b) and a != b
    path = inbox / "image.bmp"
    path.write_bytes(a)
    submit = local_submitter(st, "L1", "S1", "cell", "folder")
    sent = []

    def slow(data, part_id, name):
        sent.append(_sha(data))
        if len(sent) == 1:
            _renamed_over(path, b)
        return submit(data, part_id, name)
    w = FolderWatcher(inbox, slow, settle_s=0.05, poll_s=0.01)
    with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
        _settle(w, rounds=5)
    # before: sent == [A] and done/ held B's bytes, never judged
    assert sent == [_sha(a), _sha(b)]
    assert sorted(r.image_sha256 for r in st.query()) == sorted([_sha(a), _sha(b)])
    assert [p.read_bytes() for p in (inbox / "done").iterdir()] == [b]
    assert w.counts == {"done": 2, "failed": 0, "skipped": 0, "ignored": 0}
    said = [r.getMessage() for r in caplog.records if "written again" in r.getMessage()]
    assert len(said) == 1 and "new part" in said[0]
    # a restart (kill -9 after all this) inspects nothing again
    w2 = FolderWatcher(inbox, slow, settle_s=0.05, poll_s=0.01)
    _settle(w2)
    assert len(sent) == 2 and w2.counts["done"] == 0


def test_after_a_restart_a_new_photo_under_a_handled_name_size_and_time_is_inspected_the_old_one_never_twice(
        sqlite_station, tmp_path, share):
    """kill -9 between the journal entry and the move leaves the part handled in the folder:
    the restart finishes its move without inspecting it again. A new photo there under the
    same name, size and time (the camera's next part) is told from it by its SHA-256 and
    inspected; before, it went to done/ unjudged."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    a, b = _bmp(71), _bmp(72)
    path = inbox / "image.bmp"
    sent = []
    submit = local_submitter(st, "L1", "S1", "cell", "folder")

    def counting(data, part_id, name):
        sent.append(_sha(data))
        return submit(data, part_id, name)

    def crash_before_the_move():
        """A watcher that inspects and journals ``path`` and is killed before it moves it."""
        w = FolderWatcher(inbox, counting, settle_s=0.05, poll_s=0.01)
        stat = path.stat()
        _settle(w)
        os.replace(inbox / "done" / path.name, path)   # as if the move never happened
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    path.write_bytes(a)
    crash_before_the_move()
    assert sent == [_sha(a)]
    # the same file after the restart: its move finished, not inspected twice
    w2 = FolderWatcher(inbox, counting, settle_s=0.05, poll_s=0.01)
    _settle(w2)
    assert sent == [_sha(a)] and w2.counts["skipped"] == 1 and not path.exists()
    assert [p.read_bytes() for p in (inbox / "done").iterdir()] == [a]
    # killed again before the move, and meanwhile the camera wrote its next photo there,
    # same size, same time
    shutil.rmtree(inbox / "done")
    path.write_bytes(a)
    os.utime(path, ns=(json.loads((inbox / JOURNAL).read_text().splitlines()[0])["mtime_ns"],) * 2)
    w3 = FolderWatcher(inbox, counting, settle_s=0.05, poll_s=0.01)
    _settle(w3)
    assert sent == [_sha(a)] and w3.counts["skipped"] == 1
    shutil.rmtree(inbox / "done")
    path.write_bytes(a)
    os.utime(path, ns=(json.loads((inbox / JOURNAL).read_text().splitlines()[0])["mtime_ns"],) * 2)
    _renamed_over(path, b)
    w4 = FolderWatcher(inbox, counting, settle_s=0.05, poll_s=0.01)
    _settle(w4)
    # before: sent == [A], B in done/ with no record
    assert sent == [_sha(a), _sha(b)]
    assert w4.counts == {"done": 1, "failed": 0, "skipped": 0, "ignored": 0}
    assert sorted(r.image_sha256 for r in st.query()) == sorted([_sha(a), _sha(b)])
    assert [p.read_bytes() for p in (inbox / "done").iterdir()] == [b]


def test_a_part_whose_move_fails_is_not_inspected_again_and_a_new_photo_there_is(sqlite_station, tmp_path,
                                                                                share):
    """done/ not writable for a while: the part handled is not inspected again at each poll
    (only its move is retried), and a new photo of the same size and time written there
    meanwhile is inspected, not moved to done/ unjudged once done/ takes files again."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    a, b = _bmp(81), _bmp(82)
    path = inbox / "image.bmp"
    path.write_bytes(a)
    sent = []
    submit = local_submitter(st, "L1", "S1", "cell", "folder")

    def counting(data, part_id, name):
        sent.append(_sha(data))
        return submit(data, part_id, name)
    w = FolderWatcher(inbox, counting, settle_s=0.05, poll_s=0.01)
    # the move fails (done/ not writable). A file where done/ should be no longer does: no file
    # is taken while done/ cannot be used (test_folder_walk_fixes)
    real_move, unwritable = w._move, [True]

    def move(path, folder):
        if unwritable:
            raise PermissionError(13, "Permission denied", str(folder))
        return real_move(path, folder)
    w._move = move
    _settle(w, rounds=4)
    assert sent == [_sha(a)] and path.exists()
    _renamed_over(path, b)
    _settle(w, rounds=4)
    assert sent == [_sha(a), _sha(b)]
    unwritable.clear()
    _settle(w)
    # before: sent == [A] only, B moved to done/ as if it were A
    assert sent == [_sha(a), _sha(b)] and not path.exists()
    assert [p.read_bytes() for p in (inbox / "done").iterdir()] == [b]
    assert sorted(r.image_sha256 for r in st.query()) == sorted([_sha(a), _sha(b)])
