"""Content-addressed files under the data directory (part images, anomaly maps, models).

A file's key is the sha256 of its bytes plus a suffix, split into two folder levels
(``ab/cd/abcd….png``) so no folder grows past a few thousand entries. Writing the same
bytes twice is a no-op, which makes retries and resubmissions free.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

from ..vision.atomic import atomic_write_bytes


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ContentStore:
    def __init__(self, root: Union[str, os.PathLike]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def key_for(self, digest: str, suffix: str) -> str:
        suffix = suffix if suffix.startswith(".") or not suffix else "." + suffix
        return f"{digest[:2]}/{digest[2:4]}/{digest}{suffix.lower()}"

    def put(self, data: bytes, suffix: str = "", digest: str | None = None) -> str:
        """Store bytes (atomically, fsynced) and return their key."""
        key = self.key_for(digest or sha256_hex(data), suffix)
        path = self.path(key)
        if not path.exists():
            atomic_write_bytes(path, data)
        return key

    def stage(self, data: bytes) -> "StagedFile":
        """Start writing bytes to a temporary file in the background (see :class:`StagedFile`)."""
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


class StagedFile:
    """Bytes written and fsynced to a temp file on a background thread.

    The write overlaps other work (the model); :meth:`commit` waits for it and renames
    the file to its key (atomic), :meth:`discard` removes it.
    """

    def __init__(self, store: ContentStore, data: bytes):
        import tempfile
        import threading
        tmp_dir = store.root / ".staging"
        tmp_dir.mkdir(exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".tmp")
        self.store = store
        self._error: BaseException | None = None

        def write() -> None:
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except BaseException as exc:  # noqa: BLE001 - re-raised in commit()
                self._error = exc

        self._thread = threading.Thread(target=write, daemon=True)
        self._thread.start()

    def commit(self, key: str) -> str:
        self._thread.join()
        if self._error is not None:
            self.discard()
            raise self._error
        target = self.store.path(key)
        if target.exists():
            self.discard()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, target)
        return key

    def discard(self) -> None:
        self._thread.join()
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
            ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp"}.get(
        suffix, "application/octet-stream")
