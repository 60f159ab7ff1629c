"""Atomic file writes: temp file in the same folder, fsync, then rename.

Used for every artifact a user keeps (model files, reports, overlays) so a crash or a
full disk never leaves a half-written file under the final name.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Union


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes 0600 files; give the result the permissions a plain open()
        # would, so a station service account can read models and reports
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)     # the rename survives a power cut only once the folder is synced
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def fsync_dir(folder: Union[str, os.PathLike]) -> None:
    """Sync a folder, so a file just renamed (or linked) into it survives a power cut;
    quietly nothing where the folder cannot be synced (some network shares, Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Union[str, os.PathLike], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def hold_lock(path: Union[str, os.PathLike], wait: bool = True) -> Optional[int]:
    """An exclusive lock on ``path`` (a folder, or a file made if missing) for as long as
    the returned descriptor stays open (``os.close`` releases it); None when another
    holds it and ``wait`` is False. POSIX ``flock``; elsewhere nothing is locked."""
    folder = os.path.isdir(path)
    fd = os.open(path, os.O_RDONLY if folder else os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl
    except ImportError:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
