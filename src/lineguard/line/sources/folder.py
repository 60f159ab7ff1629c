"""Hot folder: every new image file dropped into a folder is inspected exactly once.

Polling (portable: local disks, SMB/NFS shares, any OS). A file is taken only once
its size and modification time have stayed the same for ``settle_s`` (a camera or a
copy still writing it is left alone) *and* the image looks whole (a PNG ends with its
IEND chunk, a JPEG with its end marker): a writer that pauses longer than the settle
time (a network copy stalling) would otherwise be cut short. A file that stays
incomplete for ``incomplete_after_s`` is sent anyway and refused with its reason; an
empty file is waited for as long (a camera may create the file first and fill it later).
While a file looks incomplete only its first and last bytes are read, not the whole file.
After inspection a file moves to ``done/``; a file the station refuses moves to
``failed/`` with a ``<name>.reason.txt`` beside it (a shortened name when the file's own
name leaves no room). A file over the station's upload limit is refused from its size,
never read. Symbolic links are refused, never followed: a link could point anywhere on
the station PC. Files of a format the station does not take (by suffix) stay where they
are and are logged once each. An unexpected error on one file is logged and the file
retried later; it never stops the watcher.
A journal (``.lineguard-watch.jsonl`` in the folder) records every file handled, so a
restart never inspects a file twice; the station's idempotency (part id + image
hash) covers a crash between inspection and journal write.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ...vision.imageio import IMAGE_SUFFIXES
from ..config import StationConfig
from . import Submit, SubmitRefused

log = logging.getLogger("lineguard.watch")

JOURNAL = ".lineguard-watch.jsonl"

# What the station takes (line.station: PNG, JPEG, BMP, TIFF, WebP and GIF, known by their
# bytes): IMAGE_SUFFIXES plus GIF. IMAGE_SUFFIXES itself is what training reads from a
# folder of good parts, and stays as it is.
WATCH_SUFFIXES = frozenset(IMAGE_SUFFIXES) | {".gif"}

# The station's upload limit when none is given (its --max-upload-mb default)
DEFAULT_MAX_BYTES: int = StationConfig.max_upload_bytes


class FolderWatcher:
    def __init__(self, folder: os.PathLike | str, submit: Submit, settle_s: float = 0.5,
                 poll_s: float = 0.5, done_dir: Optional[os.PathLike | str] = None,
                 failed_dir: Optional[os.PathLike | str] = None,
                 on_result: Optional[Callable[[Path, dict[str, Any]], None]] = None,
                 part_id_from: Callable[[Path], str] = lambda p: p.stem,
                 incomplete_after_s: float = 60.0, max_bytes: int = DEFAULT_MAX_BYTES):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: the hot folder does not exist; create it or fix the path")
        self.submit = submit
        self.settle_s = settle_s
        self.poll_s = poll_s
        self.done_dir = Path(done_dir) if done_dir else self.folder / "done"
        self.failed_dir = Path(failed_dir) if failed_dir else self.folder / "failed"
        self.on_result = on_result
        self.part_id_from = part_id_from
        self.incomplete_after_s = incomplete_after_s
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive (the station's upload limit)")
        self.max_bytes = max_bytes
        self._journal_path = self.folder / JOURNAL
        self._handled: set[str] = set()
        self._seen: dict[str, tuple[int, int, float]] = {}   # name -> (size, mtime_ns, first seen same)
        self._ignored: set[str] = set()   # files of other formats present, already logged once
        self._stop = threading.Event()
        self.counts = {"done": 0, "failed": 0, "skipped": 0, "ignored": 0}
        self._load_journal()

    # -- journal -------------------------------------------------------------------
    def _entry_key(self, name: str, size: int, mtime_ns: int) -> str:
        return f"{name}|{size}|{mtime_ns}"

    def _load_journal(self) -> None:
        if not self._journal_path.exists():
            return
        for line in self._journal_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                e = json.loads(line)
                self._handled.add(self._entry_key(e["name"], e["size"], e["mtime_ns"]))
            except (ValueError, KeyError):
                continue   # a line cut short by a crash

    def _journal(self, entry: dict[str, Any]) -> None:
        with open(self._journal_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    # -- scanning ------------------------------------------------------------------
    def _candidates(self) -> list[Path]:
        out = []
        others = set()
        with os.scandir(self.folder) as it:
            for e in it:
                # hidden and ~ names are copy tools' and editors' temporary files: silently left
                if e.name.startswith(".") or e.name.startswith("~"):
                    continue
                # follow_symlinks=False: a link is listed as a link (and refused), never
                # read through to whatever it points at
                if not (e.is_symlink() or e.is_file(follow_symlinks=False)):
                    continue
                if Path(e.name).suffix.lower() not in WATCH_SUFFIXES:
                    others.add(e.name)
                    continue
                out.append(Path(e.path))
        self._note_ignored(others)
        return sorted(out, key=lambda p: p.name)

    def _note_ignored(self, names: set[str]) -> None:
        """Say once per file that a file of another format is left in the folder.

        Left, not moved to failed/: writers often write under a temporary name
        (``part.png.part``, ``part.tmp``) and rename when done, and a camera may drop a
        sidecar (``part.xml``) for another tool; moving those would lose the part or break
        that tool. A line that never hears of them, though, waits for parts that never
        come: hence the log line.
        """
        for name in sorted(names - self._ignored):
            suffix = Path(name).suffix
            what = f"its suffix {suffix!r} is not" if suffix else "it has no suffix, so it is not known as"
            log.warning("%s ignored: %s an image the station takes (%s); rename it with its format's suffix "
                        "to have it inspected, or move it out of the folder", name, what,
                        ", ".join(sorted(WATCH_SUFFIXES)))
            self.counts["ignored"] += 1
        self._ignored = names    # a name gone and back later is a new file, and said again

    def poll_once(self) -> int:
        """Handle every settled file once; returns how many were handled."""
        now = time.monotonic()
        handled = 0
        present = set()
        for path in self._candidates():
            present.add(path.name)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            prev = self._seen.get(path.name)
            if prev is None or prev[:2] != sig:
                self._seen[path.name] = (*sig, now)
                continue
            if now - prev[2] < self.settle_s:
                continue
            try:
                if self._take(path, sig, stable_s=now - prev[2]):
                    handled += 1
            except Exception as exc:  # noqa: BLE001 - one odd file must never stop the line's watcher
                log.error("%s: not handled (%s: %s); will retry", path.name, type(exc).__name__, exc)
                self._seen.pop(path.name, None)
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]
        return handled

    def _take(self, path: Path, sig: tuple[int, int], stable_s: float) -> bool:
        key = self._entry_key(path.name, *sig)
        if key in self._handled:
            # handled before a restart but not moved: finish the move only
            self._move(path, self.done_dir)
            self.counts["skipped"] += 1
            return False
        if path.is_symlink():
            self._refuse(path, sig, None, "the file is a symbolic link; the watcher does not "
                                          "follow links, copy the image itself into the folder")
            return True
        if sig[0] > self.max_bytes:
            # from the size alone: reading it whole (again at every poll while it looked
            # incomplete) took the watcher's memory, and the station refuses it anyway
            # in MiB, as --max-upload-mb counts: the limit reads back as it was given
            mib = 1024 * 1024
            self._refuse(path, sig, None, f"the file is {sig[0] / mib:.1f} MiB, over the station's upload limit "
                                          f"of {self.max_bytes / mib:g} MiB; send a smaller image, or raise "
                                          "--max-upload-mb (and the station's own, with --server)")
            return True
        waiting = stable_s < self.incomplete_after_s
        if sig[0] == 0:
            # a camera or copy step may create the file first and fill it later: waited
            # for like any incomplete file, never moved away under the writer
            if waiting:
                return False
            self._refuse(path, sig, None, f"the file is empty (0 bytes) and stayed empty for {stable_s:.0f} s; "
                                          "the camera or copy step may have failed, re-capture the part")
            return True
        if waiting:
            ends = self._peek(path, sig[0])
            if ends is None:
                self._seen.pop(path.name, None)   # gone or changed: wait for it to settle again
                return False
            if not _looks_complete(*ends, sig[0]):
                return False   # a paused writer: look again next poll (size and time still checked)
        data = self._read(path)
        if data is None or len(data) != sig[0]:
            self._seen.pop(path.name, None)   # changed under us: wait for it to settle again
            return False
        if not looks_complete(data) and waiting:
            return False   # rewritten between the look and the read: look again next poll
        self._handle(path, sig, data)
        return True

    @staticmethod
    def _open(path: Path) -> Optional[int]:
        # O_NOFOLLOW: a file swapped for a link between the listing and the read is
        # refused by the kernel, not read through
        try:
            return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None   # became a link: listed again next poll and refused as one
            raise

    @classmethod
    def _read(cls, path: Path) -> Optional[bytes]:
        fd = cls._open(path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    @classmethod
    def _peek(cls, path: Path, size: int) -> Optional[tuple[bytes, bytes]]:
        """The first and last bytes of a file (what :func:`looks_complete` looks at), or
        None when it is gone or no longer ``size`` bytes long."""
        fd = cls._open(path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as fh:
            head = fh.read(_HEAD)
            fh.seek(max(0, size - _TAIL))
            tail = fh.read(_TAIL + 1)
        return (head, tail) if len(tail) == min(size, _TAIL) else None

    def _refuse(self, path: Path, sig: tuple[int, int], data: Optional[bytes], reason: str) -> None:
        entry = {"name": path.name, "size": sig[0], "mtime_ns": sig[1], "part_id": None,
                 "sha256": hashlib.sha256(data).hexdigest() if data is not None else None, "at": time.time(),
                 "status": "failed", "reason": reason}
        self._journal(entry)
        self._handled.add(self._entry_key(path.name, *sig))
        target = self._move(path, self.failed_dir)
        self._write_reason(target, reason)
        self.counts["failed"] += 1
        log.warning("%s refused: %s", path.name, reason)

    @staticmethod
    def _write_reason(target: Path, reason: str) -> None:
        # <name>.reason.txt, unless the name leaves no room for the suffix (file names
        # are limited to 255 bytes): then a short name, and the file's name inside
        name = target.name + ".reason.txt"
        if len(os.fsencode(name)) > 255:
            digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:16]
            name = f"{digest}.reason.txt"
        (target.parent / name).write_text(f"{target.name}: {reason}\n", encoding="utf-8")

    def _handle(self, path: Path, sig: tuple[int, int], data: bytes) -> None:
        part_id = self.part_id_from(path)
        entry = {"name": path.name, "size": sig[0], "mtime_ns": sig[1], "part_id": part_id,
                 "sha256": hashlib.sha256(data).hexdigest(), "at": time.time()}
        try:
            result = self.submit(data, part_id, path.name)
        except SubmitRefused as exc:
            entry.update(status="failed", reason=str(exc))
            self._journal(entry)
            self._handled.add(self._entry_key(path.name, *sig))
            target = self._move(path, self.failed_dir)
            self._write_reason(target, str(exc))
            self.counts["failed"] += 1
            log.warning("%s refused: %s", path.name, exc)
            return
        except Exception as exc:  # noqa: BLE001 - station down, model not loadable: retry next poll
            log.error("%s not inspected yet (%s); will retry", path.name, exc)
            self._seen.pop(path.name, None)
            return
        entry.update(status="done", id=result.get("id"), verdict=result.get("verdict"))
        self._journal(entry)
        self._handled.add(self._entry_key(path.name, *sig))
        self._move(path, self.done_dir)
        self.counts["done"] += 1
        if self.on_result:
            self.on_result(path, result)

    def _move(self, path: Path, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        if target.exists():   # same name again later (camera counters reset): keep both
            target = folder / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
        shutil.move(str(path), str(target))
        return target

    def run(self, stop_after: Optional[float] = None) -> None:
        """Poll until :meth:`stop` (or ``stop_after`` seconds)."""
        t_end = None if stop_after is None else time.monotonic() + stop_after
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - e.g. the share went away for a moment
                log.error("scanning %s failed (%s: %s); trying again", self.folder, type(exc).__name__, exc)
            if t_end is not None and time.monotonic() >= t_end:
                break
            self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()


def file_looks_complete(path: os.PathLike | str, size: int) -> Optional[bool]:
    """Whether a file of ``size`` bytes ends where its format says it ends, from its first
    and last bytes alone (a camera's photo still being written is not read whole again
    and again). None when it cannot say: a format that does not tell (TIFF; a caller takes
    it once it stopped changing), or the file gone or no longer ``size`` bytes long."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
            fh.seek(max(0, size - _TAIL))
            tail = fh.read(_TAIL + 1)
    except OSError:
        return None
    tells = head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF87a", b"GIF89a", b"BM")) or \
        (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    if len(tail) != min(size, _TAIL) or not tells:
        return None
    return _looks_complete(head, tail, size)


def looks_complete(data: bytes) -> bool:
    """Whether image bytes end where their format says they end (cheap: no decoding).

    PNG ends with an IEND chunk, GIF with its trailer and JPEG with an EOI marker (some
    cameras pad after it); BMP and WebP state their length in the header. Other formats are taken as whole
    once settled: the station still refuses a truncated one.
    """
    return _looks_complete(data[:_HEAD], data[-_TAIL:], len(data))


_HEAD, _TAIL = 16, 4096   # the bytes looks_complete needs from a file's start and end


def _looks_complete(head: bytes, tail: bytes, size: int) -> bool:
    """:func:`looks_complete` from a file's first ``_HEAD`` and last ``_TAIL`` bytes."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return tail.endswith(b"IEND\xaeB`\x82")
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" in tail
    if head.startswith((b"GIF87a", b"GIF89a")):
        return tail.endswith(b";")   # the GIF trailer
    if head.startswith(b"BM") and len(head) >= 6:
        return int.from_bytes(head[2:6], "little") <= size
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    return True
