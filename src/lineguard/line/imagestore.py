"""Content-addressed files under the data directory (part images, anomaly maps, models).

A file's key is the sha256 of its bytes plus a suffix, split into two folder levels
(``ab/cd/abcd….png``) so no folder grows past a few thousand entries. Writing the same
bytes twice is a no-op, which makes retries and resubmissions free.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Union

from ..vision.atomic import atomic_write_bytes

# A part's record commits within this of its files being stored (the model has run by
# then): the disk keeper leaves a file stored this recently, which a record may be about
# to name (the same image sent again while its old part's files are being cleared).
RECENT_S = 60.0

# a file moved aside to be deleted: <its name>.<pid>.<thread>.tmp (see delete_unnamed)
_ASIDE = re.compile(r"([0-9a-f]{64}(?:\.[^/]*)?)\.\d+\.\d+\.tmp")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_dir(folder: Union[str, os.PathLike]) -> None:
    """Make a rename or a new entry in ``folder`` durable: a file's own fsync does not
    cover its directory entry, so after a power cut the record could point at nothing."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    def __init__(self, root: Union[str, os.PathLike], power_safe: bool = False):
        self.root = Path(root)
        # power_safe: fsync the folders a file is renamed into (``--power-safe``); a
        # crash of the station alone never needs it, the kernel keeps the rename.
        self.power_safe = power_safe
        self.root.mkdir(parents=True, exist_ok=True)
        self._staging = self.root / ".staging"
        self._writer: Optional[ThreadPoolExecutor] = None
        self._writer_lock = threading.Lock()
        # held while a file is found there or put in place for a part, and while the disk
        # keeper deletes one: a file is never deleted between a part finding it and the
        # part's record naming it (see :meth:`delete_unnamed`)
        self._names = threading.Lock()
        self._stored_at: dict[str, float] = {}
        self._prune_at = 4096
        self.recent_s = RECENT_S
        self.sweep_staging()

    def sweep_staging(self, older_than_s: float = 3600.0, aside_older_than_s: float = 60.0) -> None:
        """Clear the temp files of a station killed mid-write, at start and at each store
        sweep (a station restarted within the minute leaves its files moved aside)."""
        # Only old ones: another process on the same folder (a hot-folder watcher) may be
        # writing right now.
        if not self._staging.is_dir():
            return
        now = time.time()
        for p in self._staging.glob("*.tmp"):
            try:
                st = p.stat()
                m = _ASIDE.fullmatch(p.name)
                if m:
                    # moved aside to be deleted by a process killed before it decided
                    # (see delete_unnamed): put back, so no file a record may name is
                    # lost; the store sweep deletes it if no record does. The move set
                    # its change time; a younger one may be another process's, now.
                    if st.st_ctime < now - aside_older_than_s:
                        self._put_back(p, m.group(1))
                elif st.st_mtime < now - older_than_s:
                    p.unlink()
            except OSError:
                pass

    def _put_back(self, aside: Path, name: str) -> None:
        target = self.root / name[:2] / name[2:4] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(aside, target)
        except FileExistsError:
            pass             # stored again since: the same bytes
        os.unlink(aside)

    def _executor(self) -> ThreadPoolExecutor:
        # Long-lived writer threads: starting a thread per part costs milliseconds on a
        # busy line PC, more than the write itself.
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._staging.mkdir(exist_ok=True)
                    self._writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lg-store")
        return self._writer

    def close(self) -> None:
        """Wait for staged writes to finish and stop the writer threads."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def key_for(self, digest: str, suffix: str) -> str:
        suffix = suffix if suffix.startswith(".") or not suffix else "." + suffix
        return f"{digest[:2]}/{digest[2:4]}/{digest}{suffix.lower()}"

    def put(self, data: bytes, suffix: str = "", digest: str | None = None, key: str | None = None) -> str:
        """Store bytes (atomically, fsynced) and return their key.

        ``key`` stores under a key the caller derived from the inputs (e.g. the anomaly
        map of one image under one model), so the key is known before the bytes are.
        """
        key = key or self.key_for(digest or sha256_hex(data), suffix)
        path = self.path(key)
        with self._names:
            self._stored(key)
            there = _touch(path)
        if not there:
            new_dirs = self._new_dirs(path.parent)
            atomic_write_bytes(path, data)
            self._sync_dirs(path.parent, new_dirs)
        return key

    def _stored(self, key: str) -> None:
        # with self._names held
        now = time.monotonic()
        self._stored_at[key] = now
        if len(self._stored_at) > self._prune_at:
            self._stored_at = {k: t for k, t in self._stored_at.items() if now - t < self.recent_s}
            self._prune_at = max(4096, 2 * len(self._stored_at))

    def stored_here_recently(self, key: str) -> bool:
        """Whether a part of this process stored ``key`` in the last ``recent_s``: its
        record names the file, or is about to."""
        with self._names:
            at = self._stored_at.get(key)
            return at is not None and time.monotonic() - at < self.recent_s

    def delete_unnamed(self, key: str, unless_newer_than_s: Optional[float] = None) -> bool:
        """Delete the file of ``key``, which the caller found no record naming, unless a
        part stored it in the last ``recent_s`` (its record may be committing right
        now) or, with ``unless_newer_than_s``, any process stored it that recently (by
        its modification time, which storing an existing file again renews); True if
        it is gone."""
        with self._names:
            at = self._stored_at.get(key)
            if at is not None and time.monotonic() - at < self.recent_s:
                return False
            path = self.path(key)
            if unless_newer_than_s is None:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                return True
            # Another process cannot take this lock: the file is first moved aside, so a
            # process storing it from now on finds it gone and writes its own copy, and
            # its time is read there; one renewed just before the move is put back.
            self._staging.mkdir(exist_ok=True)
            aside = self._staging / f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                return True
            if aside.stat().st_mtime <= time.time() - unless_newer_than_s:
                os.unlink(aside)
                return True
            try:
                os.link(aside, path)
            except FileExistsError:
                pass          # stored again meanwhile: that copy holds the same bytes
            except OSError:   # a file system without hard links
                os.replace(aside, path)
                return False
            os.unlink(aside)
            return False

    def _new_dirs(self, folder: Path) -> list[Path]:
        # the key's folders that do not exist yet: their entries in their parents need
        # an fsync too when power_safe
        if not self.power_safe:
            return []
        out = []
        while folder != self.root and not folder.exists():
            out.append(folder)
            folder = folder.parent
        return out

    def _sync_dirs(self, folder: Path, new_dirs: list[Path]) -> None:
        if not self.power_safe:
            return
        fsync_dir(folder)
        for d in new_dirs:
            fsync_dir(d.parent)

    def stage(self, data: Union[bytes, Callable[[], bytes]]) -> "StagedFile":
        """Start writing bytes to a temporary file in the background (see :class:`StagedFile`);
        a callable makes them there (a camera frame's PNG, encoded while the model runs)."""
        return StagedFile(self, data)

    def path(self, key: str) -> Path:
        # Keys come from our own database, but refuse anything that could leave the root.
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"invalid store key {key!r}")
        return self.root / key

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()


def _touch(path: Path) -> bool:
    """Whether ``path`` is there; if so its modification time becomes now: a file stored
    again for a new part is as young as a new one to the store sweep (see
    :mod:`.sweep`), also when another process on the data folder judges it."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return path.exists()   # a read-only copy of a store: there, only not touched


class StagedFile:
    """Bytes written and fsynced to a temp file on a store writer thread.

    The write overlaps other work (the model); :meth:`commit` waits for it and renames
    the file to its key (atomic), :meth:`discard` removes it.
    """

    def __init__(self, store: ContentStore, data: Union[bytes, Callable[[], bytes]]):
        self.store = store
        self.tmp: Optional[str] = None
        self._made_sha256: Optional[str] = None
        self._future: Future = store._executor().submit(self._write, data)

    def _write(self, data: Union[bytes, Callable[[], bytes]]) -> None:
        if callable(data):
            data = data()
            self._made_sha256 = sha256_hex(data)
        fd, self.tmp = tempfile.mkstemp(dir=self.store._staging, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def made_sha256(self) -> str:
        """The SHA-256 of the bytes a callable made (waits for the write; raises its error)."""
        self._future.result()
        assert self._made_sha256 is not None, "staged from bytes: the caller knows their hash"
        return self._made_sha256

    def commit(self, key: str) -> str:
        try:
            self._future.result()
        except BaseException:
            self.discard()
            raise
        target = self.store.path(key)
        with self.store._names:
            self.store._stored(key)
            there = _touch(target)
            if not there:
                new_dirs = self.store._new_dirs(target.parent)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.tmp, target)
        if there:
            self.discard()
        else:
            self.store._sync_dirs(target.parent, new_dirs)
        return key

    def discard(self) -> None:
        try:
            self._future.result()
        except BaseException:  # noqa: BLE001 - the write failed; still clean up below
            pass
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", ".png", "image/png"),
    (b"\xff\xd8\xff", ".jpg", "image/jpeg"),
    (b"BM", ".bmp", "image/bmp"),
    (b"II*\x00", ".tif", "image/tiff"),
    (b"MM\x00*", ".tif", "image/tiff"),
    (b"GIF87a", ".gif", "image/gif"),
    (b"GIF89a", ".gif", "image/gif"),
]


def sniff_image(data: bytes) -> tuple[str, str]:
    """(suffix, media type) of image bytes from their magic number; ('', '') if unknown."""
    for magic, suffix, media in _MAGIC:
        if data.startswith(magic):
            return suffix, media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp", "image/webp"
    return "", ""


def media_type_for(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp",
            ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp", ".gif": "image/gif"}.get(
        suffix, "application/octet-stream")
