"""A hot folder on a share or disk mounted read-only: a walk found both parts judged and
stored by the station, yet the watcher said "RO-1.png: not handled (OSError: [Errno 30]
Read-only file system: 'rofs/.lineguard-watch.jsonl'); will retry", printed no verdict line,
ended "done: 0, waiting in the folder for the next start: 2", and sent each part to the
station again at every retry (the journal's error came before the part was kept as
handled). The folder is made read-only here by having every write into it fail as the
kernel fails it (EROFS): a read-only mount cannot be made in a test, nor a chmod stop root."""
from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes
from .test_folder_hardening import _settle


def _mount_read_only(monkeypatch, folder: Path) -> None:
    """Every write into ``folder`` fails with EROFS: the journal's append, the status file,
    done/ made, a file renamed into it. Reads go on as on a read-only mount."""
    inside = str(folder)

    def under(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(inside)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

    real_open, real_mkdir, real_rename, real_replace = open, os.mkdir, os.rename, os.replace
    real_write_text = Path.write_text

    def ro_open(path, mode="r", *a, **k):
        if under(path) and any(c in mode for c in "wax+"):
            refuse(path)
        return real_open(path, mode, *a, **k)

    def ro_mkdir(path, *a, **k):
        if under(path):
            refuse(path)
        return real_mkdir(path, *a, **k)

    def ro_move(real):
        def move(src, dst, *a, src_dir_fd=None, dst_dir_fd=None, **k):
            # the watcher renames through the opened folders (names relative to them)
            if under(src) or under(dst) or src_dir_fd is not None or dst_dir_fd is not None:
                refuse(src)
            return real(src, dst, *a, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, **k)
        return move

    def ro_write_text(self, *a, **k):
        if under(self):
            refuse(self)
        return real_write_text(self, *a, **k)

    monkeypatch.setattr(folder_mod, "open", ro_open, raising=False)
    monkeypatch.setattr(os, "mkdir", ro_mkdir)
    monkeypatch.setattr(os, "rename", ro_move(real_rename))
    monkeypatch.setattr(os, "replace", ro_move(real_replace))
    monkeypatch.setattr(Path, "write_text", ro_write_text)


def test_a_read_only_folder_judges_each_part_once_and_says_why_it_stays(sqlite_station, tmp_path, monkeypatch,
                                                                         caplog):
    st = sqlite_station()
    inbox = tmp_path / "rofs"
    inbox.mkdir()
    (inbox / "RO-1.png").write_bytes(png_bytes(40, seed=81))
    (inbox / "RO-2.png").write_bytes(png_bytes(220, seed=82))
    _mount_read_only(monkeypatch, inbox)
    station_submit = local_submitter(st, "L1", "RO", "cell", "folder")
    sent, printed = [], []

    def submit(data, part_id, name):
        sent.append(part_id)
        return station_submit(data, part_id, name)

    w = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01,
                      on_result=lambda path, r: printed.append((path.name, r["verdict"], r["id"])))
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        for _ in range(4):
            _settle(w)          # many retries of the moves
    said = [r.getMessage() for r in caplog.records if r.name == "lineguard.watch"]
    # each part sent once: a retry of its move is no new inspection
    assert sorted(sent) == ["RO-1", "RO-2"], sent
    records = {r.part_id: r for r in st.query()}
    assert sorted(records) == ["RO-1", "RO-2"]
    # the verdict lines, and the parts counted as judged, not as waiting for the next start
    assert sorted(printed) == sorted((f"{p}.png", r.verdict, r.id) for p, r in records.items()), printed
    assert w.counts["done"] == 2 and w.waiting == 0 and sorted(w.not_moved) == ["RO-1.png", "RO-2.png"]
    assert not any("not handled" in m for m in said), said
    # said once, with what became of the part and why it stays
    errors = [r.getMessage() for r in caplog.records if r.name == "lineguard.watch" and r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    first = records["RO-1"]
    assert errors[0].startswith(f"RO-1.png: judged and stored (id {first.id}, {first.verdict})"), errors[0]
    assert "read-only" in errors[0] and "not sent again" in errors[0], errors[0]
    assert (inbox / "RO-1.png").exists() and (inbox / "RO-2.png").exists()

    # a minute later it is said again, once, with how many are left
    caplog.clear()
    w._faults.clock = lambda: time.monotonic() + 61
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _settle(w)
    again = [r.getMessage() for r in caplog.records if r.name == "lineguard.watch" and r.levelno >= logging.ERROR]
    assert len(again) == 1, again
    assert again[0].startswith("still 2 files judged but left in the folder (RO-1.png, RO-2.png): "), again
    assert "read-only" in again[0], again[0]

    # the folder writable again: the parts go to done/, none sent again
    monkeypatch.undo()
    w._faults.clock = time.monotonic
    _settle(w)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["RO-1.png", "RO-2.png"]
    assert sorted(sent) == ["RO-1", "RO-2"] and w.not_moved == {}


def test_a_status_file_not_written_with_a_heartbeat_says_the_station_still_hears_of_the_backlog(tmp_path, caplog):
    """With --server the watcher's status also goes to the station (the heartbeat): "the
    station's /health does not see this watcher's backlog" was false there."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    beats = []
    for heartbeat in (beats.append, None):
        caplog.clear()
        w = FolderWatcher(inbox, lambda *a: {}, settle_s=0.05, poll_s=0.01,
                          status_path=blocker / "status.json", heartbeat=heartbeat)
        with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
            w.poll_once()
        said = [r.getMessage() for r in caplog.records if "status file" in r.getMessage()]
        assert len(said) == 1, said
        if heartbeat is not None:
            assert beats, "the heartbeat was not given the status"
            assert "hears of this watcher's backlog through its heartbeat" in said[0], said[0]
            assert "does not see" not in said[0], said[0]
        else:
            assert "the station's /health does not see this watcher's backlog" in said[0], said[0]
