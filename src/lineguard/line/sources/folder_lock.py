"""One watcher per hot folder: a lock file in the folder, held while the watcher runs.

Two watchers on one folder (``watch ./incoming --station S1`` and ``... --station S2``, or the
same command started twice) split its parts between them without a word: 200 parts went 121/79,
21 photos went to failed/ as "already recorded with station S2", 58 were "removed from the folder
while being inspected", the same station twice gave 180 verdict lines for 100 parts, and /health
said ok. The second watcher is refused at its start, naming the first (host, pid, station, since).

The lock is a POSIX record lock (``fcntl.lockf``) on ``LOCK_FILE`` in the hot folder: the kernel
drops it when its process ends, however it ends (killed, crashed, the PC off), so a lock file left
behind never blocks a new start; and it reaches the file server on an NFS or SMB share (flock may
stay on one client), where two PCs watching one share is the likely case. A POSIX lock is the
process's, not an open file's: a second watcher of the folder in the same process (a test's
restart, an embedding) shares the first's lock (``_HELD``), and the file is opened once per process
(closing any descriptor of it would drop the lock for the whole process).

The lock file holds who holds it (JSON: host, pid, station, line, since) for the refusal to name.
It is rewritten in place, never renamed over: a new file renamed in would be another inode, which
the next watcher could lock while the first still held the old one.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no POSIX locks (see FolderLock.acquire)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("lineguard.watch")

LOCK_FILE = ".lineguard-watch.lock"

# the folder (device, inode) -> [descriptor of its lock file, watchers of this process holding it]
_HELD: dict[tuple[int, int], list[int]] = {}
# reentrant: a watcher dropped is released by its weakref finalizer, which the garbage collector
# may run on any allocation, also one inside acquire() with this held: with a plain Lock that
# thread waited on itself for ever (a suite's hot-folder tests hung now and then)
_HELD_LOCK = threading.RLock()


class FolderInUse(RuntimeError):
    """Another watcher (another process, on this PC or another) watches the folder."""

    def __init__(self, folder: Path, holder: dict[str, Any]):
        self.folder = folder
        self.holder = holder
        super().__init__(refusal(folder, holder))


def refusal(folder: Path, holder: dict[str, Any]) -> str:
    """The words a second watcher of ``folder`` is refused with, naming the first (``holder``,
    what its lock file says; empty when it had not written it yet)."""
    who = []
    if holder.get("station"):
        who.append(f"station {holder['station']}" + (f" of line {holder['line']}" if holder.get("line") else ""))
    if holder.get("host") or holder.get("pid"):
        who.append(f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}")
    since = holder.get("since")
    if isinstance(since, (int, float)):
        who.append("since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)))
    named = f" ({', '.join(who)})" if who else ""
    return (f"{folder} is already watched by another watcher{named}: two watchers on one folder split its parts "
            f"between them (each part judged by whichever takes it first, some twice, some moved away under the "
            f"other). Stop that watcher first, or give each watcher a folder of its own (one folder per camera "
            f"and station); the lock is {folder / LOCK_FILE}, released when that watcher stops")


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw.decode("utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}      # being written at this moment, or not by a watcher: refused all the same


class FolderLock:
    """The lock on one hot folder, taken by :meth:`acquire`, given back by :meth:`release`."""

    def __init__(self, folder: Path, info: Optional[dict[str, Any]] = None):
        self.folder = Path(folder)
        self.info = dict(info or {})
        self._key: Optional[tuple[int, int]] = None

    def acquire(self) -> bool:
        """Take the folder: FolderInUse when another process holds it. False when it cannot be
        marked at all (a folder mounted read-only, no POSIX locks: Windows): the watcher runs
        unguarded, as before, and says so."""
        if fcntl is None:  # pragma: no cover - Windows
            log.info("%s: this OS gives no file locks the watcher uses, so a second watcher on this folder is not "
                     "refused; run one watcher per folder", self.folder)
            return False
        st = os.stat(self.folder)         # FileNotFoundError: the folder gone (the caller tries again)
        key = (st.st_dev, st.st_ino)
        with _HELD_LOCK:
            held = _HELD.get(key)
            if held is not None:
                held[1] += 1        # this process holds it already (see the module's notes)
                self._key = key
                return True
            path = self.folder / LOCK_FILE
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileNotFoundError:
                raise
            except OSError as exc:
                log.warning("%s cannot be made or opened for writing (%s): a second watcher on %s would not be "
                            "refused; run one watcher per folder (make the folder writable: its parts go to done/ "
                            "and failed/ then too)", path, exc, self.folder)
                return False
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise FolderInUse(self.folder, holder) from None
                log.warning("%s cannot be locked (%s): a second watcher on %s would not be refused; run one "
                            "watcher per folder", path, exc, self.folder)
                return False
            body = json.dumps({**self.info, "host": socket.gethostname() or "?", "pid": os.getpid(),
                               "since": time.time(), "folder": os.path.abspath(self.folder)}) + "\n"
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, body.encode("utf-8"), 0)
            except OSError as exc:
                # held all the same; a refused watcher names no one
                log.debug("%s: who holds it could not be written (%s)", path, exc)
            _HELD[key] = [fd, 1]
            self._key = key
            return True

    def release(self) -> None:
        """Give the folder back (the last watcher of it in this process): its lock file stays,
        unlocked, and says who held it last."""
        key, self._key = self._key, None
        if key is None:
            return
        with _HELD_LOCK:
            held = _HELD.get(key)
            if held is None:
                return
            held[1] -= 1
            if held[1] <= 0:
                del _HELD[key]
                os.close(held[0])     # drops the POSIX lock
