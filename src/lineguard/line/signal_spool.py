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
skipped. Where the data folder cannot be written either (the same full disk), the
answers are kept in memory only, and the log says so.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional

from ..vision.atomic import atomic_write_bytes, fsync_dir

log = logging.getLogger("lineguard.plc")

FOLDER = "plc-unrecorded"
_TIMES = ("triggered_at", "answered_at")


class SignalSpool:
    """The answers of one PLC link not yet in the database, oldest first."""

    def __init__(self, folder: Optional[Path], name: str):
        self.path = Path(folder) / f"{name}.jsonl" if folder is not None else None
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._on_disk = True
        if self.path is not None and self.path.exists():
            self._entries = _read(self.path)
            if self._entries:
                log.warning("%d answers to the PLC from before the last stop were not recorded yet (%s): written "
                            "once the database takes them", self.answers(), self.path)

    def answers(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries if "answer" in e)

    def holds(self, key: str) -> bool:
        with self._lock:
            return any(e.get("answer") == key for e in self._entries)

    def add_answer(self, key: str, row: dict[str, Any], event: dict[str, Any]) -> None:
        stored = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}
        self._append({"answer": key, "row": stored, "event": event})

    def add_late(self, key: str, inspection_id: int) -> None:
        self._append({"late": key, "inspection_id": int(inspection_id)})

    def taken(self) -> tuple[int, list[tuple[str, dict[str, Any], dict[str, Any]]]]:
        """(how many entries, the answers they hold): each answer's row with its times
        parsed and a late verdict linked, for one transaction; :meth:`written` with the
        count once it committed."""
        with self._lock:
            entries = list(self._entries)
        answers: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for e in entries:
            if "answer" in e:
                row = dict(e["row"])
                for k in _TIMES:
                    if row.get(k):
                        row[k] = dt.datetime.fromisoformat(row[k])
                answers[e["answer"]] = (row, e["event"])
            elif e.get("late") in answers:
                answers[e["late"]][0]["late_inspection_id"] = e["inspection_id"]
        return len(entries), [(k, row, event) for k, (row, event) in answers.items()]

    def written(self, n: int) -> None:
        """The first ``n`` entries are in the database: forget them (the file rewritten
        with the rest, or removed)."""
        with self._lock:
            del self._entries[:n]
            if self.path is None:
                return
            try:
                if self._entries:
                    atomic_write_bytes(self.path, b"".join(_line(e) for e in self._entries))
                else:
                    self.path.unlink(missing_ok=True)
                    fsync_dir(self.path.parent)
            except OSError as exc:     # recorded twice after a restart at worst: the rows say so by their ids
                log.error("the PLC's recorded answers could not be cleared from %s (%s)", self.path, exc)

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)
            if self.path is None:
                return
            try:
                made = not self.path.parent.exists()
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if made:
                    fsync_dir(self.path.parent.parent)
                with open(self.path, "ab") as f:
                    f.write(_line(entry))
                    f.flush()
                    os.fsync(f.fileno())
                self._on_disk = True
            except OSError as exc:
                if self._on_disk:
                    log.error("answers to the PLC not recorded are kept in memory only: %s cannot be written (%s)",
                              self.path, exc)
                self._on_disk = False


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, separators=(",", ":")) + "\n").encode()


def _read(path: Path) -> list[dict[str, Any]]:
    entries = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        log.error("answers to the PLC not recorded before the last stop cannot be read from %s (%s)", path, exc)
        return []
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            if i < len(lines) - 1:
                log.error("a damaged line %d in %s is skipped", i + 1, path)
            continue     # the last one: cut short by a crash mid-append
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
