"""What the PLC was told, kept while the database cannot take it (line.plc_handshake).

Every answer to the PLC is recorded in ``line_signals``; for a reject without a verdict
(the window missed, no image, a storage fault) that row is the only trace of the part and
why it was rejected. A database outage is what makes such rejects, and it is also what
refuses their rows: so an answer the database refuses is appended to a file of the
station's data folder (``plc-unrecorded/<link>.jsonl``, flushed and synced) and written
to the database, in the order the PLC got them, once it takes writes again (tried every
few seconds, and at the link's next start: a restart in between loses nothing). A
verdict that comes late for such an answer is appended too, and linked when it is written.

A line is JSON: ``{"answer": key, "row": {...}, "event": {...}}`` or ``{"late": key,
"inspection_id": n}``. A line cut short by a crash mid-append is the last one, and is
skipped.

A full disk refuses the database and this file at once, and an answer kept in memory
only is lost to a kill or a power cut. So the spool keeps room of its own beside it
(``<link>.reserve``, :data:`RESERVE_BYTES` allocated when the link starts): an append the
disk refuses (ENOSPC, EDQUOT) gives a step of it back and is made again, and /health
says so (:meth:`SignalSpool.reserve_answers_left`). It is made whole again once the disk
has room for it and as much again. Only where the reserve is used up too (or could not
be made) are the answers kept in memory only, and the log and /health say so. The link's
other files here, its answer journal and its trigger mark, are written with the same
reserve (:meth:`SignalSpool.lend`): one reserve per link.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Optional

from ..vision.atomic import atomic_write_bytes, fsync_dir, hold_lock

log = logging.getLogger("lineguard.plc")

FOLDER = "plc-unrecorded"
_TIMES = ("triggered_at", "answered_at")


# The spool's own room on a full disk. An answer's line takes 560 to 910 bytes (measured:
# a judged part's 560 to 630, a camera or timeout reject's 580 to 860, and a storage
# fault's, what a full disk answers, 850 to 910 with its error text), a late verdict's 67:
# 4 MiB keeps about 4,600 answers at the longest, over 75 minutes of a line answering a
# part a second with the database refusing every one: time for /health's fault to be seen
# and the disk cleared. Allocated (posix_fallocate), not sparse: held on the disk, not
# promised.
RESERVE_BYTES = 4 * 1024 ** 2
# given back a step at a time, not all at once: what is freed goes to the first writer on
# the disk, and a photo or a database page taking a step leaves the rest for the answers
RESERVE_STEP = 64 * 1024
ANSWER_LINE_BYTES = 900     # the answers left counted at the longest, not promised
_BLOCK = 4096
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))

_ROW_KEYS = ("protocol", "line", "station", "trigger_seq", "part_tag", "recipe_id", "product", "inspection_id",
             "signal", "result_code", "reason", "triggered_at", "answered_at")


class SpoolBusy(RuntimeError):
    """Another PLC link (this process or another) keeps the same spool file."""


class SignalSpool:
    """The answers of one PLC link not yet in the database, oldest first. One link keeps
    a spool file at a time (a lock beside it while the link runs)."""

    def __init__(self, folder: Optional[Path], name: str):
        self.path = Path(folder) / f"{name}.jsonl" if folder is not None else None
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._on_disk = True
        self._held: Optional[int] = None
        self._opened = False
        # room kept for answers on a full disk; "used" from the first step given back until whole again
        self.reserve_path = Path(folder) / f"{name}.reserve" if folder is not None else None
        self._reserve_size = 0
        self._reserve_used = False
        self._line_bytes = ANSWER_LINE_BYTES

    def open(self) -> None:
        """Take the spool file (:class:`SpoolBusy` when another link has it) and read what
        a previous run left; once, before the link listens."""
        if self._opened or self.path is None:
            return
        self._opened = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._held = hold_lock(self.path.with_suffix(".lock"), wait=False)
        except OSError as exc:
            log.error("answers to the PLC the database refuses can be kept in memory only: %s cannot be written "
                      "(%s)", self.path.parent, exc)
            self._on_disk = False
            return
        if self._held is None:
            self._opened = False
            raise SpoolBusy(f"another PLC link for the same line, station and protocol runs on this data folder "
                            f"({self.path.parent}): give each link its own station name or data folder")
        if self.path.exists():
            self._entries = _read(self.path)
            if self._entries:
                log.warning("%d answers to the PLC from before the last stop were not recorded yet (%s): written "
                            "once the database takes them", self.answers(), self.path)
        with self._lock:
            try:
                self._reserve_size = os.stat(self.reserve_path).st_size
                # left short (or used up) by a full disk before the stop: still in use, made
                # whole with room to spare as while running; a new one while the disk has room
                self._reserve_used = self._reserve_size < RESERVE_BYTES
            except OSError:
                self._reserve_size = 0
            if not self._refill(RESERVE_BYTES if self._reserve_used else 0, whole_only=not self._reserve_used) \
                    and not self._reserve_used:
                log.error("no room is kept for the PLC's answers in %s (the disk has not %d MiB free): on a full "
                          "disk they are kept in memory only, and a restart loses them", self.reserve_path,
                          RESERVE_BYTES // 1024 ** 2)

    @property
    def on_disk(self) -> bool:
        """Whether every answer waiting is in the file (a restart loses none)."""
        return self.path is not None and self._on_disk

    @property
    def reserve_used(self) -> bool:
        """Whether the disk was full and the reserve gave room (until it is whole again)."""
        return self._reserve_used

    def reserve_answers_left(self) -> int:
        """About how many more answers the reserve holds (by the lines written so far)."""
        return self._reserve_size // max(1, self._line_bytes)

    def keep_reserve(self) -> bool:
        """Make the reserve whole again once the disk has room for it and as much again
        for the rest of the station (called every second or so while it is short); whether
        it is whole."""
        if not self._reserve_used:
            return True
        with self._lock:
            return self._refill(headroom=RESERVE_BYTES)

    def lend(self, write: Any, size: int) -> None:
        """``write()`` of another of the link's files in this folder (the answer journal, the
        trigger mark), with this reserve's room where the disk is full: the disk's error
        raised where the reserve is used up too. Called only once a write was refused: the
        answer's path pays nothing while the disk has room."""
        with self._lock:
            self._with_reserve(write, size)

    def write_mark(self, path: Path, data: bytes) -> None:
        """A small file of the link's beside the spool (its trigger mark) written whole
        (temp file, rename); where the disk is full, with the reserve's room: a mark the
        disk refused let a restart hand out trigger numbers again."""
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            self.lend(lambda: atomic_write_bytes(path, data), len(data))

    def take_back(self) -> None:
        """Room freed beside the spool (the journal emptied or rewritten shorter): what it
        was lent taken back into the reserve, as the spool's own rewrite does."""
        if self._reserve_used:
            with self._lock:
                self._refill(headroom=0)

    def close(self) -> None:
        if self._held is not None:
            os.close(self._held)      # releases the lock
            self._held = None
        self._opened = False

    def answers(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries if "answer" in e)

    def holds(self, key: str) -> bool:
        with self._lock:
            return any(e.get("answer") == key for e in self._entries)

    def add_answer(self, key: str, row: dict[str, Any], event: dict[str, Any]) -> None:
        self._append({"answer": key, "row": _stored(row), "event": event})

    def add_answers(self, answers: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """Several answers at once (one append, one sync): those a journal left at a stop."""
        if not answers:
            return
        entries = [{"answer": key, "row": _stored(row), "event": event} for key, row, event in answers]
        self._append(entries[0], more=entries[1:])

    def add_late(self, key: str, inspection_id: int) -> None:
        self._append({"late": key, "inspection_id": int(inspection_id)})

    def taken(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """The answers waiting, oldest first, each (key, row with its times parsed and a
        late verdict linked, outbox event); :meth:`remove` their keys once written."""
        with self._lock:
            entries = list(self._entries)
        return _answers(entries)

    def remove(self, keys: set[str], set_aside: bool = False) -> None:
        """Forget these answers and their late verdicts (written, or with ``set_aside``
        refused for good: kept beside the spool, ``<name>.refused.jsonl``, for a person);
        the file rewritten with the rest, or removed."""
        with self._lock:
            gone = [e for e in self._entries if e.get("answer", e.get("late")) in keys]
            self._entries = [e for e in self._entries if e.get("answer", e.get("late")) not in keys]
            if self.path is None:
                return
            try:
                if set_aside and gone:
                    aside = b"".join(_line(e) for e in gone)
                    self._with_reserve(lambda: _append_synced(self.path.with_suffix(".refused.jsonl"), aside),
                                       len(aside))
                if self._entries:
                    # a whole copy before the rename: on a full disk lent by the reserve, which
                    # gets it back (and what the lines written took) once the old file is gone
                    data = b"".join(_line(e) for e in self._entries)
                    self._with_reserve(lambda: atomic_write_bytes(self.path, data), len(data))
                elif self.path.exists():
                    self.path.unlink()
                    fsync_dir(self.path.parent)
                if self._reserve_used:      # what the answers written took (and any lent) taken back
                    self._refill(headroom=0)
            except OSError as exc:     # written again at the next start: the link skips rows already there
                log.error("the PLC's recorded answers could not be cleared from %s (%s)", self.path, exc)

    def _append(self, entry: dict[str, Any], more: Optional[list[dict[str, Any]]] = None) -> None:
        with self._lock:
            self._entries.append(entry)
            self._entries.extend(more or [])
            if self.path is None:
                return
            lines = [_line(e) for e in [entry, *(more or [])]]
            if "answer" in entry:    # the reserve's answers left, by what answers take here
                self._line_bytes = max(ANSWER_LINE_BYTES, max(len(b) for b in lines))
            try:
                if not self._on_disk:    # some are in memory only: the file made whole again, or not at all
                    data = b"".join(_line(e) for e in self._entries)
                    self._with_reserve(lambda: atomic_write_bytes(self.path, data), len(data))
                    self._on_disk = True
                    log.warning("answers to the PLC not recorded are in %s again", self.path)
                    return
                data = b"".join(lines)
                self._with_reserve(lambda: _append_synced(self.path, data), len(data))
                self._on_disk = True
            except OSError as exc:
                if self._on_disk:
                    log.error("answers to the PLC not recorded are kept in memory only, a restart loses them: %s "
                              "cannot be written (%s)%s", self.path, exc,
                              "; the room kept for them on a full disk is used up" if self._reserve_used else "")
                self._on_disk = False

    def _with_reserve(self, write: Any, size: int) -> None:
        """``write()``, and where the disk is full, again with a step of the reserve given
        back, until it is written or the reserve is used up (the disk's error raised)."""
        while True:
            try:
                write()
                return
            except OSError as exc:
                if exc.errno not in _FULL or not self._give_back(size):
                    raise

    def _give_back(self, size: int) -> bool:
        """Free a step of the reserve (room for ``size`` bytes at least); whether any was left."""
        if self.reserve_path is None or self._reserve_size <= 0:
            return False
        step = max(RESERVE_STEP, -(-(size + _BLOCK) // _BLOCK) * _BLOCK)
        left = max(0, self._reserve_size - step)
        try:
            os.truncate(self.reserve_path, left)     # its blocks free at once, for the next write
        except OSError as exc:
            log.error("the room kept for the PLC's answers (%s) cannot be given back: %s", self.reserve_path, exc)
            return False
        if not self._reserve_used:
            log.error("the data disk is full: the PLC's answers not recorded are kept in the room reserved for "
                      "them (%s, about %d answers); free space on the disk", self.reserve_path,
                      self._reserve_size // self._line_bytes)
        self._reserve_size = left
        self._reserve_used = True
        return True

    def _refill(self, headroom: int, whole_only: bool = False) -> bool:
        """Grow the reserve back towards :data:`RESERVE_BYTES`, leaving ``headroom`` free on
        the disk for the station's photos and database (``whole_only``: all of it or none,
        as at the start, where a nearly full disk's last bytes are the database's); whether
        it is whole."""
        if self.reserve_path is None:
            return False
        missing = RESERVE_BYTES - self._reserve_size
        if missing <= 0:
            return True
        try:
            grow = min(missing, shutil.disk_usage(self.reserve_path.parent).free - headroom) // _BLOCK * _BLOCK
            if grow <= 0 or (whole_only and grow < missing):
                return False
            new = not self.reserve_path.exists()
            fd = os.open(self.reserve_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    if not hasattr(os, "posix_fallocate"):      # macOS, Windows
                        raise OSError(errno.EOPNOTSUPP, "no posix_fallocate")
                    os.posix_fallocate(fd, self._reserve_size, grow)
                except OSError as exc:
                    if exc.errno in _FULL:
                        os.ftruncate(fd, self._reserve_size)     # none of it half kept
                        return False
                    # a file system without fallocate: written, with bytes no compression shrinks
                    os.lseek(fd, self._reserve_size, os.SEEK_SET)
                    chunk = os.urandom(RESERVE_STEP)
                    done = 0
                    try:
                        while done < grow:
                            done += os.write(fd, chunk[:grow - done])
                    except OSError:
                        os.ftruncate(fd, self._reserve_size)
                        raise
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                fsync_dir(self.reserve_path.parent)
        except OSError as exc:
            log.warning("the room kept for the PLC's answers (%s) could not be made: %s", self.reserve_path, exc)
            return False
        self._reserve_size += grow
        if self._reserve_size >= RESERVE_BYTES and self._reserve_used:
            self._reserve_used = False
            log.warning("the data disk has room again: the room kept for the PLC's answers (%s) is whole",
                        self.reserve_path)
        return self._reserve_size >= RESERVE_BYTES


# a journal holding answers still being recorded is rewritten with those alone past this
# size (it is emptied, which costs nothing, whenever the recorder has caught up)
JOURNAL_COMPACT_BYTES = 1 << 20


class AnswerJournal:
    """Every judged part's answer, on the disk before the PLC can read it, until it is
    recorded (``plc-unrecorded/<link>.journal.jsonl``, the spool's line format).

    The recorder writes an answer's ``line_signals`` row and outbox event after the PLC has
    it. A kill -9 (or a crash) while the recorder lagged, a locked table holding its
    writes, lost 61 of 149 answered parts with no trace. Each answer is appended here in
    one write (in the OS's cache at once: a killed station loses none; synced to the disk
    too with ``sync``, as a power-safe station asks) and forgotten once recorded or in the
    spool; the file is emptied whenever nothing waits. At the next start what is left goes
    to the spool, whose writer skips an answer already recorded (same link, trigger number
    and trigger time): replayed once, never twice.

    The PLC's acknowledgement of an answer still waiting is appended beside it, its key a
    line (``<link>.journal.acks``, emptied and compacted with the journal): an answer left
    without one may never have reached the PLC (a kill between the part's record and
    ResultsValid), and its replay says so (line.plc_handshake). Not synced: a mark lost to a
    power cut only leaves an answer the PLC had as not known to be delivered, never the
    other way round.

    On a full disk its appends and rewrites take room from the link's spool reserve
    (``reserve``, :meth:`SignalSpool.lend`); once that is used up too :meth:`add` raises the
    disk's error and keeps nothing: the link does not put up an answer it cannot keep.
    """

    def __init__(self, folder: Optional[Path], name: str, sync: bool = False,
                 reserve: Optional[SignalSpool] = None):
        self.path = Path(folder) / f"{name}.journal.jsonl" if folder is not None else None
        self.acks_path = Path(folder) / f"{name}.journal.acks" if folder is not None else None
        self.sync = sync
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._acks_fd: Optional[int] = None
        self._acks_size = 0
        self._acked: set[str] = set()    # of the answers waiting, those the PLC acknowledged
        self._size = 0
        self._waiting_bytes = 0      # of _size, the lines of answers still waiting
        # key -> (when journaled, time.monotonic; its line): insertion order is answer order
        self._pending: dict[str, tuple[float, bytes]] = {}
        self._said_failed = False
        self._reserve = reserve

    def open(self) -> list[tuple[str, dict[str, Any], dict[str, Any], bool]]:
        """Open the journal (once, with the spool held); the answers a previous run left in
        it, recorded or not, each (key, row, event, whether the PLC acknowledged it)
        (:meth:`clear` them once they are in the spool)."""
        if self.path is None or self._fd is not None:
            return []
        left: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = []
        try:
            if self.path.exists():
                acks = self.acks_path.read_text(errors="replace") if self.acks_path.exists() else ""
                delivered = set(acks.split())
                left = [(key, row, event, key in delivered) for key, row, event in _answers(_read(self.path))]
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._size = os.fstat(self._fd).st_size
            self._acks_fd = os.open(self.acks_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._acks_size = os.fstat(self._acks_fd).st_size
        except OSError as exc:
            log.error("answers to the PLC cannot be journaled before they are sent: %s cannot be written (%s); a "
                      "kill of the station while the recorder lags loses them", self.path, exc)
        return left

    def clear(self) -> None:
        """Empty the file: what it held is in the spool now."""
        with self._lock:
            self._truncate()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._acks_fd is not None:
                os.close(self._acks_fd)
                self._acks_fd = None

    def add(self, key: str, row: dict[str, Any], event: dict[str, Any]) -> None:
        """Journal this answer before the PLC may read it. OSError where the disk refuses
        it, the reserve used up too: not kept, the caller answers otherwise."""
        line = _line({"answer": key, "row": _stored(row), "event": event})
        with self._lock:
            if self._fd is not None:
                try:
                    try:
                        # one write: whole or not at all for a killed process (inline: every
                        # part's path; a write in part or a sync checked in _written)
                        written = os.write(self._fd, line)
                        if written != len(line) or self.sync:
                            self._written(written, len(line))
                    except OSError as exc:
                        if exc.errno not in _FULL or self._reserve is None:
                            self._cut()
                            raise
                        self._reserve.lend(lambda: self._write_line(line), len(line))
                except OSError as exc:
                    if not self._said_failed:
                        self._said_failed = True
                        used_up = self._reserve is not None and exc.errno in _FULL
                        log.error("answers to the PLC cannot be journaled: %s cannot be written (%s)%s", self.path,
                                  exc, "; the room kept for them on a full disk is used up" if used_up else "")
                    raise
                self._size += len(line)
            self._pending[key] = (time.monotonic(), line)
            self._waiting_bytes += len(line)

    def _write_line(self, line: bytes) -> None:
        """The line written again, once refused (no part of it left)."""
        try:
            written = os.write(self._fd, line)
        except OSError:
            self._cut()
            raise
        self._written(written, len(line))

    def _written(self, written: int, size: int) -> None:
        """A write taken whole (and synced where asked), or cut off and refused."""
        try:
            if written != size:
                # the disk took part of it (the kernel writes what fits): refused as a whole
                raise OSError(errno.ENOSPC, f"No space left on device (of {size} bytes, {written} written)")
            if self.sync:
                os.fsync(self._fd)
        except OSError:
            self._cut()
            raise

    def _cut(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)      # no half line for the next one to join
        except OSError:
            pass

    def delivered(self, key: str) -> None:
        """The PLC acknowledged this answer (ResultsAck, AcknowledgeResult): marked while it
        still waits to be recorded (one write, kept through a compaction)."""
        with self._lock:
            if key not in self._pending:      # recorded already: nothing left to replay
                return
            self._acked.add(key)
            if self._acks_fd is None:
                return
            mark = f"\n{key}\n".encode()
            try:
                try:
                    self._write_ack(mark)
                except OSError as exc:
                    if exc.errno not in _FULL or self._reserve is None:
                        raise
                    self._reserve.lend(lambda: self._write_ack(mark), len(mark))
            except OSError:
                # not marked: that answer replays as not known to be delivered, the safe side
                pass

    def _write_ack(self, mark: bytes) -> None:
        written = os.write(self._acks_fd, mark)
        if written != len(mark):    # a full disk took part of it: cut off, given the reserve's room
            try:
                os.ftruncate(self._acks_fd, self._acks_size)
            except OSError:
                self._acks_size += written      # stays: its next mark begins on a line of its own
            raise OSError(errno.ENOSPC, "No space left on device")
        self._acks_size += written

    def done(self, key: str) -> None:
        """This answer is recorded (or in the spool): no longer the journal's."""
        with self._lock:
            gone = self._pending.pop(key, None)
            self._acked.discard(key)
            if gone is None:
                return
            self._waiting_bytes -= len(gone[1])
            if self._fd is None:
                return
            if not self._pending:
                self._truncate()
            elif self._size > JOURNAL_COMPACT_BYTES and self._size > 2 * self._waiting_bytes:
                # (past twice what still waits: a backlog over the limit alone rewrote the whole
                # file at every answer recorded, 1,007 rewrites to drain 3,000, the PLC's
                # thread waiting on each)
                # the recorder lags for long (a locked table): rewritten with those still waiting
                try:
                    data = b"".join(line for _t, line in self._pending.values())
                    # a whole copy before the rename: on a full disk lent by the reserve,
                    # which gets it back (and more) once the old file is gone
                    self._rewrite(self.path, data)
                    os.close(self._fd)
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
                    self._size = len(data)
                    if self._acks_fd is not None and self._acks_size:     # those still waiting's
                        acks = "".join(f"{k}\n" for k in self._acked).encode()
                        self._rewrite(self.acks_path, acks)
                        os.close(self._acks_fd)
                        self._acks_fd = os.open(self.acks_path, os.O_WRONLY | os.O_APPEND)
                        self._acks_size = len(acks)
                except OSError as exc:
                    log.error("the PLC's answer journal %s could not be compacted (%s)", self.path, exc)
                if self._reserve is not None:
                    self._reserve.take_back()

    def _rewrite(self, path: Path, data: bytes) -> None:
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            if exc.errno not in _FULL or self._reserve is None:
                raise
            self._reserve.lend(lambda: atomic_write_bytes(path, data), len(data))

    def backlog(self) -> tuple[int, float]:
        """Answers journaled and not yet recorded, and the oldest one's age in seconds."""
        with self._lock:
            if not self._pending:
                return 0, 0.0
            oldest = next(iter(self._pending.values()))[0]
            return len(self._pending), time.monotonic() - oldest

    def _truncate(self) -> None:
        if self._fd is None or not self._size:
            return
        try:
            if self._acks_fd is not None and self._acks_size:
                os.ftruncate(self._acks_fd, 0)
                self._acks_size = 0
            os.ftruncate(self._fd, 0)
            self._size = 0
        except OSError as exc:
            log.error("the PLC's answer journal %s could not be emptied (%s)", self.path, exc)
        if self._reserve is not None:      # what its lines took on a full disk, taken back
            self._reserve.take_back()


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


def _answers(entries: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Each answer (key, row with its times parsed and a late verdict linked, event), oldest first."""
    answers: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for e in entries:
        if "answer" in e:
            row = dict(e["row"])
            for k in _TIMES:
                row[k] = dt.datetime.fromisoformat(row[k]) if row.get(k) else None
            answers[e["answer"]] = (row, e["event"])
        elif e.get("late") in answers:
            answers[e["late"]][0]["late_inspection_id"] = e["inspection_id"]
    return [(k, row, event) for k, (row, event) in answers.items()]


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)


def _append_synced(path: Path, data: bytes) -> None:
    """Append these lines and sync them; on a failure the file is as it was. Unbuffered:
    a buffered file kept the bytes a full disk refused and wrote them at its close, and its
    truncate flushed first, so the half line it was to cut stayed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        # a line cut short by a crash before stays apart from this one
        view = memoryview((b"\n" if size and _last_byte(path, size) != b"\n" else b"") + data)
        try:
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)     # no half line left for the next one to join
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, separators=(",", ":")) + "\n").encode()


def _valid(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    if "late" in entry:
        return isinstance(entry["late"], str) and isinstance(entry.get("inspection_id"), int)
    row = entry.get("row")
    if not (isinstance(entry.get("answer"), str) and isinstance(entry.get("event"), dict) and isinstance(row, dict)
            and set(_ROW_KEYS) <= set(row)):
        return False
    try:
        for k in _TIMES:
            if row[k]:
                dt.datetime.fromisoformat(row[k])
    except (TypeError, ValueError):
        return False
    return True


def _read(path: Path) -> list[dict[str, Any]]:
    entries = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        log.error("answers to the PLC not recorded before the last stop cannot be read from %s (%s)", path, exc)
        return []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if _valid(entry):
            entries.append(entry)
        elif i < len(lines) - 1:
            log.error("line %d of %s is damaged and skipped: %r", i + 1, path, line[:500])
        # else the last one: cut short by a crash mid-append
    return entries
