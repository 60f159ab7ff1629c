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
