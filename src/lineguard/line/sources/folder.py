"""Hot folder: every new image file dropped into a folder is inspected exactly once.

Polling (portable: local disks, SMB/NFS shares, any OS). A file is taken only once
its size and modification time have stayed the same for ``settle_s`` (a camera or a
copy still writing it is left alone). After inspection it moves to ``done/``; a file
the station refuses moves to ``failed/`` with a ``<name>.reason.txt`` beside it.
A journal (``.lineguard-watch.jsonl`` in the folder) records every file handled, so a
restart never inspects a file twice; the station's idempotency (part id + image
hash) covers a crash between inspection and journal write.
"""
from __future__ import annotations

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
from . import Submit, SubmitRefused

log = logging.getLogger("lineguard.watch")

JOURNAL = ".lineguard-watch.jsonl"


class FolderWatcher:
    def __init__(self, folder: os.PathLike | str, submit: Submit, settle_s: float = 0.5,
                 poll_s: float = 0.5, done_dir: Optional[os.PathLike | str] = None,
                 failed_dir: Optional[os.PathLike | str] = None,
                 on_result: Optional[Callable[[Path, dict[str, Any]], None]] = None,
                 part_id_from: Callable[[Path], str] = lambda p: p.stem):
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
        self._journal_path = self.folder / JOURNAL
        self._handled: set[str] = set()
        self._seen: dict[str, tuple[int, int, float]] = {}   # name -> (size, mtime_ns, first seen same)
        self._stop = threading.Event()
        self.counts = {"done": 0, "failed": 0, "skipped": 0}
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
        with os.scandir(self.folder) as it:
            for e in it:
                if not e.is_file() or e.name.startswith(".") or e.name.startswith("~"):
                    continue
                if Path(e.name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                out.append(Path(e.path))
        return sorted(out, key=lambda p: p.name)

    def poll_once(self) -> int:
        """Handle every settled file once; returns how many were handled."""
        now = time.monotonic()
        handled = 0
        present = set()
        for path in self._candidates():
            present.add(path.name)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            prev = self._seen.get(path.name)
            if prev is None or prev[:2] != sig:
                self._seen[path.name] = (*sig, now)
                continue
            if st.st_size == 0 or now - prev[2] < self.settle_s:
                continue
            key = self._entry_key(path.name, *sig)
            if key in self._handled:
                # handled before a restart but not moved: finish the move only
                self._move(path, self.done_dir)
                self.counts["skipped"] += 1
                continue
            self._handle(path, sig)
            handled += 1
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]
        return handled

    def _handle(self, path: Path, sig: tuple[int, int]) -> None:
        data = path.read_bytes()
        if len(data) != sig[0]:
            self._seen.pop(path.name, None)   # changed under us: wait for it to settle again
            return
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
            (target.parent / (target.name + ".reason.txt")).write_text(str(exc) + "\n", encoding="utf-8")
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
            self.poll_once()
            if t_end is not None and time.monotonic() >= t_end:
                break
            self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
