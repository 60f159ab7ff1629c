"""Is the disk or share a station copies to really there, before it writes.

Backups and the record archive go to another disk or a share the plant backs up,
usually mounted on a folder of the station PC. When that share is not mounted (left
unmounted at boot by ``nofail``, a network away, mounted by hand and not again after a
restart) its mount point is still an empty folder of the station's own disk: a backup
written there fills the disk it should protect, and archived records written there are
hidden under the share once it is mounted again, while the station deletes them as
archived. Two checks, before anything is written:

- **/etc/fstab**: the nearest folder at or above the target that fstab mounts (other than
  ``/``) must be mounted now (``/proc/self/mountinfo`` says so: a bind mount from the same
  disk is no mount point to ``os.path.ismount``); paths compared with their links resolved;
- **the folder's mark**: the first write to a folder leaves a mark file in it (backups
  ``.lineguard-backup``, the archive ``.lineguard-archive``) and the station's data folder
  remembers it (``.lineguard-copy-folders``); a remembered folder without its mark is not
  the one written before (not mounted, or another disk): refused, saying how to start
  afresh there. This covers shares fstab does not list, from their first write on (a
  share mounted by hand and away at the very first write is not told from a new folder).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from ..vision.atomic import atomic_write_bytes, hold_lock

log = logging.getLogger("lineguard.mounted")

FSTAB = Path("/etc/fstab")
MOUNTINFO = Path("/proc/self/mountinfo")     # what is mounted now, bind mounts included (Linux)
REMEMBERED = ".lineguard-copy-folders"     # in the station's data folder: {mark: [folders]}


class FolderAway(OSError):
    """The folder to copy to is not the disk or share it should be: nothing written."""


def _unescape(field: str) -> str:
    # fstab and mountinfo write a space as \040, a tab as \011...
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def fstab_mount_points(fstab: Optional[Path] = None) -> list[str]:
    """The folders fstab mounts (swap and ``/`` left out), escapes undone; none where there
    is no readable fstab. Only a line starting with ``#`` is a comment (fstab(5))."""
    try:
        lines = (fstab or FSTAB).read_text(errors="replace").splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#") or fields[2] == "swap" or not fields[1].startswith("/"):
            continue
        point = _unescape(fields[1]).rstrip("/")
        if point:
            points.append(point)
    return points


def mounted_now(mountinfo: Optional[Path] = None) -> Optional[set[str]]:
    """Every folder something is mounted on now, or None where the system does not say
    (not Linux): then ``os.path.ismount`` decides."""
    try:
        lines = (mountinfo or MOUNTINFO).read_text(errors="replace").splitlines()
    except OSError:
        return None
    return {_unescape(fields[4]) for fields in (line.split() for line in lines) if len(fields) > 4}


def unmounted_fstab_point(folder: Path, fstab: Optional[Path] = None,
                          mountinfo: Optional[Path] = None) -> Optional[Path]:
    """The folder fstab mounts at or above ``folder`` when it is not mounted now, else None."""
    points = {os.path.realpath(p) for p in fstab_mount_points(fstab)}
    if not points:
        return None
    here = Path(os.path.realpath(folder))
    for p in (here, *here.parents):
        if str(p) in points:
            mounted = mounted_now(mountinfo)
            return None if (str(p) in mounted if mounted is not None else os.path.ismount(p)) else p
    return None


class CopyFolders:
    """The folders a station's data folder has copied to (backups, the archive), with the
    mark each holds; see the module's doc."""

    def __init__(self, data_dir: Path, fstab: Optional[Path] = None):
        self.data_dir = Path(data_dir)
        self.fstab = fstab

    def _remembered(self) -> dict[str, list[str]]:
        """{mark: [folders that got it]}; an unreadable memory guards nothing (fstab still does)."""
        try:
            known = json.loads((self.data_dir / REMEMBERED).read_text())
            return {str(k): [str(f) for f in v] for k, v in known.items()} if isinstance(known, dict) else {}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def check(self, folder: Path, mark: str, what: str) -> None:
        """Refuse (:class:`FolderAway`) a folder whose disk or share is not there; ``what``
        names the copy in the message ("backups", "the record archive")."""
        where = Path(os.path.realpath(folder))
        away = unmounted_fstab_point(where, self.fstab)
        if away is not None:
            raise FolderAway(f"{away} is not mounted (/etc/fstab mounts it there), so {what} in {where} would go "
                             f"to the station's own disk: mount it (`mount {shlex.quote(str(away))}`), then they "
                             "go on")
        if str(where) not in self._remembered().get(mark, []) or (where / mark).exists():
            return
        if not where.exists():
            raise FolderAway(f"{where}, where the station wrote {what} before, is not there: the disk or share "
                             f"is not mounted. Mount it; to start {what} afresh there, make the folder and an "
                             f"empty {mark} file in it")
        raise FolderAway(f"{where} has no {mark} file, which the station left there when it first wrote "
                         f"{what} to it: the disk or share is not mounted there, or another one is. Mount the "
                         f"right one; to start {what} afresh in this folder, create an empty {mark} file in it")

    def mark(self, folder: Path, mark: str) -> None:
        """Leave ``mark`` in ``folder`` (made already) and remember the folder: later
        writes check it is still there. Best effort for the memory (a data folder
        this process cannot write still gets its copy; it is only not guarded)."""
        where = Path(os.path.realpath(folder))
        if not (where / mark).exists():
            (where / mark).write_bytes(b"")
        if str(where) in self._remembered().get(mark, []):
            return
        try:
            with self._one_writer():     # the station's threads and a CLI command: no update lost
                known = self._remembered()
                if str(where) not in known.setdefault(mark, []):
                    known[mark].append(str(where))
                    atomic_write_bytes(self.data_dir / REMEMBERED, json.dumps(known, indent=1).encode())
        except OSError as exc:
            log.warning("could not remember %s in %s (%s): a later unmounted share there is seen only by "
                        "/etc/fstab", where, self.data_dir, exc)

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        """The data folder locked while the memory is read and replaced (POSIX; elsewhere
        unlocked)."""
        fd = hold_lock(self.data_dir)
        try:
            yield
        finally:
            os.close(fd)        # closing releases the lock
