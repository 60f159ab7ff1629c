"""Is a stored file whole? Checked from its bytes alone, read a megabyte at a time.

Files of a station's stores are named by what they hold: a part image or a model file by
the SHA-256 of its bytes, a map by its part's image (``<sha>.map-<model>.png``), whose own
PNG chunk checksums say whether it is whole. Bit rot on a backup disk keeps a file's size
and time, so only reading it tells. Used by restores (every file, on its way into the new
station) and by backups that verify what they hold (``lineguard backup --verify``).
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Optional, Union

CHUNK = 1 << 20
# a store's key ends in a file named by the SHA-256 of its bytes (line.imagestore)
_CONTENT_NAME = re.compile(r"([0-9a-f]{64})(\.[^/]*)?")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def open_stored(path: Union[str, os.PathLike]) -> int:
    """A stored file opened for reading, never through a link (a store writes none) nor
    waiting on a pipe left under its name; OSError(ELOOP) for a link."""
    return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))


def link_or_unreadable(exc: OSError) -> str:
    return "a link" if exc.errno == errno.ELOOP else f"unreadable: {exc.strerror or exc}"


def read_stored(path: Union[str, os.PathLike], key: str,
                copy_to: Optional[BinaryIO] = None) -> tuple[Optional[str], Optional[int]]:
    """Read the file at ``path`` (stored under ``key``) through, writing it to ``copy_to``
    on the way: (why it is not whole or None, bytes read; None when it could not be
    opened: a link, or unreadable). FileNotFoundError if there is none; an error writing
    the copy (the copier's own disk) is raised as it is, never taken for damage."""
    try:
        fd = open_stored(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return link_or_unreadable(exc), None
    with os.fdopen(fd, "rb") as fin:
        if not stat.S_ISREG(os.fstat(fin.fileno()).st_mode):
            return "not a plain file", 0
        reader = Copying(fin, copy_to)
        try:
            why = damage(key, reader)
            reader.read_rest()
        except CopyFailed as exc:
            raise exc.__cause__ from None
        except OSError as exc:       # a bad sector is damage to this file
            why = f"unreadable: {exc.strerror or exc}"
        return why, reader.n


def file_damage(path: Union[str, os.PathLike], key: str) -> Optional[str]:
    """Why the file at ``path`` (stored under ``key``) is not whole, or None;
    FileNotFoundError if there is none."""
    return read_stored(path, key)[0]


class CopyFailed(Exception):
    """Writing the copy failed (its cause): the copier's own disk, not damage to the file read."""


class Copying:
    """Reads a stored file, writing what it reads to a copy (``fout``, or none)."""

    def __init__(self, fin: BinaryIO, fout: Optional[BinaryIO]):
        self.fin, self.fout, self.n = fin, fout, 0

    def read(self, size: int) -> bytes:
        data = self.fin.read(size)
        self.n += len(data)
        if self.fout is not None and data:
            try:
                self.fout.write(data)
            except OSError as exc:
                raise CopyFailed() from exc
        return data

    def read_rest(self) -> None:
        while self.read(CHUNK):
            pass


def damage(key: str, reader: Copying) -> Optional[str]:
    """Why the bytes under ``key`` are not the ones stored, if they are not. Images and
    models are named by the SHA-256 of their bytes; a map is named by its part's image,
    so its own PNG checksums (one per chunk) are checked instead. Read in pieces: a model
    file may be hundreds of megabytes."""
    name = _CONTENT_NAME.fullmatch(Path(key).name)
    if name is not None and not (name.group(2) or "").startswith(".map-"):
        digest = hashlib.sha256()
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
        return None if digest.hexdigest() == name.group(1) else "its bytes changed"
    if key.endswith(".png"):
        return png_damage(reader)
    return None


def png_damage(reader: Copying) -> Optional[str]:
    if reader.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
        return "not a PNG"
    while True:
        head = reader.read(8)
        if len(head) < 8:
            return "PNG cut short"
        length, kind = struct.unpack(">I4s", head)
        crc, left = zlib.crc32(kind), length
        while left:
            body = reader.read(min(left, CHUNK))
            if not body:
                return "PNG cut short"
            crc, left = zlib.crc32(body, crc), left - len(body)
        tail = reader.read(4)
        if len(tail) < 4:
            return "PNG cut short"
        if crc != struct.unpack(">I", tail)[0]:
            return f"PNG chunk {kind.decode('latin-1')} fails its checksum"
        if kind == b"IEND":
            return None
