"""The PLC's answers the database refused survive a full data disk and then a kill (line.signal_spool).

A full disk refuses the database and the spool's file at once; the answers were then kept
in memory only, and a kill -9 or a power cut lost them: for a reject without a verdict,
the only trace of the part and why it was rejected. The disk here is simulated (no test
may fill a real one): every write into the spool's folder takes room from ``_Disk.free``
and is refused with ENOSPC past it, part of it written first as the kernel does.
"""
from __future__ import annotations

import builtins
import datetime as dt
import errno
import io
import os
import sys
from pathlib import Path

import pytest

from lineguard.line import signal_spool
from lineguard.line.signal_spool import SignalSpool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a write's file in /proc")


class _Disk:
    """The data disk under ``folder``: ``capacity`` bytes, of which ``elsewhere`` are taken
    by the rest of the station (photos, database) and the rest by the folder's files."""

    def __init__(self, folder: Path, monkeypatch, capacity: int = 64 * 1024 ** 2):
        self.folder = folder.resolve()
        self.capacity = capacity
        self.elsewhere = 0
        real_write, real_fallocate, real_statvfs = os.write, os.posix_fallocate, os.statvfs
        real_atomic = signal_spool.atomic_write_bytes

        def write(fd, data):
            if not self._ours(fd):
                return real_write(fd, data)
            room = self.free()
            if room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, bytes(data)[:room])      # what fits, as the kernel writes it

        def fallocate(fd, offset, length):
            if self._ours(fd) and offset + length - os.fstat(fd).st_size > self.free():
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_fallocate(fd, offset, length)

        def statvfs(path):
            if not Path(path).resolve().is_relative_to(self.folder):
                return real_statvfs(path)
            return os.statvfs_result((4096, 4096, self.capacity // 4096, self.free() // 4096,
                                      self.free() // 4096, 0, 0, 0, 0, 255))

        def atomic(path, data):      # a whole copy beside the old file, then the rename
            if len(data) > self.free():
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_atomic(path, data)

        def open_(path, mode="r", *args, **kwargs):
            # the spool's own files opened for writing: buffered as a real file is, its bytes
            # going through the disk's write
            if not any(c in mode for c in "wa") or not Path(path).resolve().is_relative_to(self.folder):
                return builtins.open(path, mode, *args, **kwargs)
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
            return io.BufferedWriter(_Raw(os.open(path, flags, 0o644)))

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(signal_spool, "open", open_, raising=False)
        monkeypatch.setattr(os, "posix_fallocate", fallocate)
        monkeypatch.setattr(os, "statvfs", statvfs)
        monkeypatch.setattr(signal_spool, "atomic_write_bytes", atomic)

    def _ours(self, fd: int) -> bool:
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(self.folder)
        except OSError:
            return False

    def used(self) -> int:
        return sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())

    def free(self) -> int:
        return max(0, self.capacity - self.elsewhere - self.used())

    def fill(self, leave: int = 0) -> None:
        """Something else on the line PC fills the disk, ``leave`` bytes left."""
        self.elsewhere = self.capacity - self.used() - leave


class _Raw(io.RawIOBase):
    """A file descriptor whose writes go through ``os.write`` (the disk's)."""

    def __init__(self, fd: int):
        self.fd = fd

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        return os.write(self.fd, data)

    def seek(self, pos: int, whence: int = 0) -> int:
        return os.lseek(self.fd, pos, whence)

    def truncate(self, size=None) -> int:
        size = self.seek(0, 1) if size is None else size
        os.ftruncate(self.fd, size)
        return size

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


_T0 = dt.datetime(2026, 12, 4, 10, 0, 0)


def _reject(n: int) -> tuple[str, dict, dict]:
    at = _T0 + dt.timedelta(seconds=n)
    row = dict(protocol="modbus", line="L1", station="S1", trigger_seq=n, part_tag=1000 + n, recipe_id=1,
               product="cell", inspection_id=None, signal="NG", result_code=13,
               reason="storage fault: the part's record could not be written (database or disk is full)",
               triggered_at=at, answered_at=at + dt.timedelta(milliseconds=180))
    event = {"line": "L1", "station": "S1", "protocol": "modbus", "trigger_seq": n, "part_tag": 1000 + n,
             "signal": "NG", "result_code": 13, "result": "STORAGE", "reason": row["reason"]}
    return f"{n}@{at.isoformat()}", row, event


def _killed_and_started_again(spool: SignalSpool, folder: Path) -> SignalSpool:
    # a kill -9: nothing more is written, the lock goes with the process
    os.close(spool._held)
    spool._held = None
    again = SignalSpool(folder, "modbus-x")
    again.open()
    return again


def test_rejects_on_a_full_disk_are_in_the_spool_after_a_kill(tmp_path, monkeypatch):
    folder = tmp_path / "plc-unrecorded"
    folder.mkdir()
    disk = _Disk(folder, monkeypatch)
    spool = SignalSpool(folder, "modbus-x")
    spool.open()
    disk.fill(leave=900)       # room for one answer and part of the next: written half, then refused
    sent = [_reject(n) for n in range(1, 41)]
    for key, row, event in sent:
        spool.add_answer(key, row, event)
    spool.add_late(sent[4][0], 77)      # a verdict that came late for the fifth
    again = _killed_and_started_again(spool, folder)
    kept = again.taken()
    assert [k for k, _r, _e in kept] == [k for k, _r, _e in sent]
    assert kept[4][1]["late_inspection_id"] == 77
    assert [(r, e) for _k, r, e in kept[:4]] == [(r, e) for _k, r, e in sent[:4]]
    # given back a step at a time: what other writers could take meanwhile is one step
    assert disk.free() <= signal_spool.RESERVE_STEP + 4096
    # still short after the restart: /health goes on saying so, and how many more it keeps
    assert again.reserve_used and 0 < again.reserve_answers_left() < signal_spool.RESERVE_BYTES // 600
    again.close()


def test_the_spool_rewritten_after_a_replay_on_a_full_disk_keeps_only_those_not_recorded(tmp_path, monkeypatch):
    # the rewrite needs a whole copy beside the old file: lent by the reserve, given back after
    folder = tmp_path / "plc-unrecorded"
    folder.mkdir()
    disk = _Disk(folder, monkeypatch)
    spool = SignalSpool(folder, "modbus-x")
    spool.open()
    sent = [_reject(n) for n in range(1, 31)]
    for key, row, event in sent:
        spool.add_answer(key, row, event)
    disk.fill()
    spool.remove({k for k, _r, _e in sent[:20]})          # recorded once the database took them
    spool.add_late(sent[25][0], 91)
    again = _killed_and_started_again(spool, folder)
    kept = again.taken()
    assert [k for k, _r, _e in kept] == [k for k, _r, _e in sent[20:]]
    assert kept[5][1]["late_inspection_id"] == 91
    again.close()


def test_the_reserve_is_made_again_once_the_disk_has_room(tmp_path, monkeypatch):
    folder = tmp_path / "plc-unrecorded"
    folder.mkdir()
    disk = _Disk(folder, monkeypatch)
    spool = SignalSpool(folder, "modbus-x")
    spool.open()
    disk.fill()
    for key, row, event in [_reject(n) for n in range(1, 6)]:
        spool.add_answer(key, row, event)
    reserve = folder / "modbus-x.reserve"
    assert reserve.stat().st_size < signal_spool.RESERVE_BYTES and spool.reserve_used
    # a few MB freed: not taken back, the station's photos and database need them first
    disk.elsewhere -= signal_spool.RESERVE_BYTES
    assert not spool.keep_reserve() and spool.reserve_used
    disk.elsewhere = 0          # the disk cleared
    assert spool.keep_reserve() and not spool.reserve_used
    assert reserve.stat().st_size == signal_spool.RESERVE_BYTES
    assert len(spool.taken()) == 5
    spool.close()


def test_an_append_the_disk_cut_short_leaves_no_half_line(tmp_path, monkeypatch):
    # the reserve used up: the answer is refused whole (kept in memory), the file as it was
    folder = tmp_path / "plc-unrecorded"
    folder.mkdir()
    disk = _Disk(folder, monkeypatch)
    monkeypatch.setattr(signal_spool, "RESERVE_BYTES", 0, raising=False)     # no reserve: the disk alone
    spool = SignalSpool(folder, "modbus-x")
    spool.open()
    first, second = _reject(1), _reject(2)
    spool.add_answer(*first)
    before = (folder / "modbus-x.jsonl").read_bytes()
    disk.fill(leave=300)
    spool.add_answer(*second)
    assert not spool.on_disk
    assert (folder / "modbus-x.jsonl").read_bytes() == before
    spool.close()


try:      # the link's test needs pymodbus; the spool's above do not
    from lineguard.line.plc_modbus import ResultCode

    from .test_plc_modbus import plc_cell  # noqa: F401 - the fixture
    from .test_plc_signal_durability import _answer, _Refusing, _until
    _MODBUS = True
except pytest.skip.Exception:
    _MODBUS = False


@pytest.mark.skipif(not _MODBUS, reason="pymodbus is not installed")
def test_health_says_the_disk_is_full_and_how_many_answers_the_reserve_keeps(plc_cell, monkeypatch):  # noqa: F811
    st, srv, plc = plc_cell([LookupError("camera lost"), LookupError("camera lost")])
    folder = st.config.data_dir / "plc-unrecorded"
    disk = _Disk(folder, monkeypatch)
    _Refusing(st)             # the same full disk refuses the database
    disk.fill()
    assert _answer(plc, 4) == ResultCode.NO_IMAGE
    said = st.faults["plc_disk_signals"]
    assert said.startswith("the data disk is full: PLC answers are kept in the reserve, ")
    left = int(said.split("reserve, ")[1].split()[0])
    assert 0 < left < signal_spool.RESERVE_BYTES // 600
    assert "kept in memory only" not in st.faults["plc_signals"]
    disk.elsewhere = 0        # the disk cleared: the reserve made whole, the fault gone
    assert _until(lambda: "plc_disk_signals" not in st.faults, timeout=10)
    assert next(folder.glob("*.reserve")).stat().st_size == signal_spool.RESERVE_BYTES
