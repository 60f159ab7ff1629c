"""What a station's hot-folder watchers say of themselves, for its /health and /metrics.

A watcher with ``--data`` (line.sources.folder) rewrites a status file in the station's
data folder (``watchers/``) every few seconds: files waiting, the oldest's wait, whether it
is behind the line, whether the station takes its parts. The station reads them here: at
20 parts/s on a busy 2-core PC photos had waited 11 minutes in the folder while /health
said "ok" and the line view's latency (the model's time) looked fine. A watcher that stopped
on purpose says so in its file (``running`` false) and is no fault; one killed or hung
stops rewriting it and is, after SILENT_AFTER_S.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

WATCHERS_DIR = "watchers"
SILENT_AFTER_S = 60.0        # a running watcher's file not rewritten for this long: stopped or hung
FAULT_PREFIX = "watcher "    # /health's fault names: housekeeping (the station itself judges parts)


# each watcher's status file and what it holds
Statuses = list[tuple[Path, dict[str, Any]]]


def statuses(data_dir: Path) -> Statuses:
    """The watchers' status files in the data folder, each as written (unreadable ones skipped:
    a file is renamed into place whole, so one that does not parse is not a watcher's)."""
    folder = Path(data_dir) / WATCHERS_DIR
    out = []
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            out.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return out


def watcher_faults(found: Statuses, now: Optional[float] = None) -> dict[str, str]:
    """``watcher LINE/STATION`` -> what is wrong, for each running watcher (of ``found``,
    :func:`statuses`) that is behind the line, whose station cannot take its parts, or
    that has gone silent."""
    now = time.time() if now is None else now
    faults: dict[str, str] = {}
    for path, st in found:
        if not st.get("running"):
            continue
        name = f"{FAULT_PREFIX}{st.get('line', '?')}/{st.get('station', '?')}"
        if name in faults:          # two folders for one line and station: told apart by the file
            name = f"{name} ({path.stem})"
        age = now - float(st.get("updated") or 0)
        silent_after = max(SILENT_AFTER_S, 3 * float(st.get("every_s") or 0))
        if age > silent_after:
            faults[name] = (f"its status ({path}) has not been written for {age:.0f} s: the watcher of "
                            f"{st.get('folder')} is stopped or hung (pid {st.get('pid')}); start `lineguard watch` "
                            "again, or delete the file if this watcher is gone for good")
        elif not st.get("station_taking_parts", True):
            faults[name] = (f"the station does not take its parts since {_clock(st.get('station_down_since'))} "
                            f"({st.get('station_error')}); {st.get('waiting', 0)} file(s) wait in {st.get('folder')}")
        elif st.get("behind"):
            faults[name] = (f"behind the line: {st.get('waiting', 0)} file(s) wait in {st.get('folder')}, the oldest "
                            f"for {float(st.get('oldest_wait_s') or 0):.0f} s; the PC does not keep up with the "
                            "parts (a faster model profile, an exported model, or fewer parts per second)")
    return faults


def backlogs(found: Statuses) -> list[dict[str, Any]]:
    """(line, station, files waiting, the oldest's wait in s) of each running watcher of
    ``found`` (:func:`statuses`), for /metrics."""
    return [{"line": str(st.get("line", "")), "station": str(st.get("station", "")),
             "waiting": int(st.get("waiting") or 0), "oldest_wait_s": float(st.get("oldest_wait_s") or 0)}
            for _path, st in found if st.get("running")]


def _clock(wall: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(wall)))
    except (TypeError, ValueError):
        return "?"
