"""What a station's hot-folder watchers say of themselves, for its /health and /metrics.

A watcher with ``--data`` (line.sources.folder) rewrites a status file in the station's
data folder (``watchers/``) every few seconds: files waiting, the oldest's wait, whether it
is behind the line, whether the station takes its parts. The station reads them here: at
20 parts/s on a busy 2-core PC photos had waited 11 minutes in the folder while /health
said "ok" and the line view's latency (the model's time) looked fine. A watcher that stopped
on purpose says so in its file (``running`` false) and is no fault; one killed or hung
stops rewriting it and is, after SILENT_AFTER_S, saying when it was last seen; its backlog
is then no longer reported to /metrics (a kill -9 left the last count there for ever).
Its fault ends when a watcher of the same folder (``host`` and ``folder_path`` in the file)
writes a newer status, or once it has been silent FORGET_AFTER_S and no image waits in its
folder: it stood until someone deleted the file, also after the watcher was restarted under
another station name.

A watcher with ``--server`` (another PC, no shared data folder) sends the same status to
the station it posts parts to, its heartbeat (``POST /api/v1/watchers/heartbeat``, with its
own key): :func:`store_heartbeat` keeps it as a file of the same folder, named
``heartbeat-*.json``, stamped with the station's clock when it came, so both kinds are read
alike, in the order the watcher sent them (``sent``: one worked on late is not kept over
a newer one, nor after the clean stop). A clean stop removes it; one not renewed for FORGET_AFTER_S (a watcher PC taken off
the line without a clean stop) is no longer shown and is deleted at the next heartbeat.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

WATCHERS_DIR = "watchers"
SILENT_AFTER_S = 60.0        # a running watcher's file not rewritten for this long: stopped or hung
FAULT_PREFIX = "watcher "    # /health's fault names: housekeeping (the station itself judges parts)
HEARTBEAT_PREFIX = "heartbeat-"   # the status files the station keeps of its --server watchers
# a --server watcher silent this long is forgotten (its fault cleared, its file deleted):
# a day of "stopped or hung" is seen by anyone; a PC taken off the line for good is not a
# fault for ever on a station nobody can tell the watcher was retired
FORGET_AFTER_S = 24 * 3600.0
# most --server watchers one station keeps: a key holder sending made-up folders cannot
# fill the data folder
MAX_HEARTBEATS = 256
# A heartbeat may be worked on after the next one (its sender waits 3 s, the station goes
# on): the last normal one of a watcher, kept after its clean stop, brought it back as
# "stopped or hung" for FORGET_AFTER_S. So each is ordered by its ``sent`` (the watcher's
# clock) against the newest of the same watcher process (its pid): an older one is not
# kept. Only for this long after the newest came (by this station's clock): a watcher
# PC's clock set back (a time sync) must not stop its heartbeats for as long as it went
# back; a stop is remembered for STOPPED_KEPT_S for the same reason.
LATE_WITHIN_S = 30.0
STOPPED_KEPT_S = 600.0
MAX_STOPPED = 4096           # stops remembered at most (the oldest go first)
# A file a watcher gave up (moved to failed/ after timing out on every try: a part not judged)
# is a /health fault this long after the latest, as a sink's refusals are (outbox.REFUSED_SHOWN_S):
# only the watcher's own status file said it, and a monitor polling /health never learned of it
GIVEN_UP_SHOWN_S = 600.0
# A file a watcher refused (moved to failed/ at once: truncated, zero-byte, a 16-bit TIFF the
# station cannot read, a part id in conflict) is a part not inspected too: a /health fault this
# long after the latest. Only the watcher's log and its status file's counts.failed said it;
# /health stayed "ok" and the line view showed nothing. When the latest refusal was is the
# status's ``refused_last`` where the watcher writes it; else when this station first saw the
# count grow (a watcher writing only counts.failed; a count already there when the station
# first read the file is shown, but no fault: when those files failed is unknown).
REFUSED_SHOWN_S = GIVEN_UP_SHOWN_S
# One station process keeps the heartbeats (serve runs one); in it, the count against
# MAX_HEARTBEATS and the write, and the order check and the write, are one step: 400
# heartbeats at once under new names left 257 files.
_heartbeats_lock = threading.Lock()
# heartbeat file -> (pid, sent, this station's clock) of its watcher's clean stop
_stopped: dict[Path, tuple[Any, float, float]] = {}
# status file -> (its watcher's pid, files refused as last read, when this station saw the count
# grow, by its clock; None: not seen growing) for a status without ``refused_last``
_refusals_lock = threading.Lock()
_refusals: dict[Path, tuple[Any, int, Optional[float]]] = {}


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
            st = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(st, dict):
            out.append((path, st))
    return out


def silent_after(st: dict[str, Any]) -> float:
    """How long a running watcher's status may go unrenewed before it is taken as stopped or hung."""
    try:
        every = float(st.get("every_s") or 0)
    except (TypeError, ValueError):
        every = 0.0
    return max(SILENT_AFTER_S, 3 * every)


def _age(st: dict[str, Any], now: float) -> float:
    try:
        return now - float(st.get("updated") or 0)
    except (TypeError, ValueError):
        return float("inf")


def _heartbeat(path: Path) -> bool:
    return path.name.startswith(HEARTBEAT_PREFIX)


def _folder_key(path: Path, st: dict[str, Any]) -> Optional[str]:
    """``host:absolute folder`` of a watcher's hot folder: what tells two watchers of one
    folder apart from two of one line and station. A heartbeat's ``folder`` is that already
    (store_heartbeat); a local status file's is its ``host`` and ``folder_path`` (None for a
    watcher older than them: never taken for another's)."""
    if _heartbeat(path):
        folder = st.get("folder")
        return folder if isinstance(folder, str) and folder else None
    host, folder = st.get("host"), st.get("folder_path")
    if isinstance(host, str) and host and isinstance(folder, str) and folder:
        return f"{host}:{folder}"
    return None


def _superseded(found: Statuses, now: float) -> set[Path]:
    """The silent watchers (stopped or hung) of a folder that a watcher started since has
    written of (running, or stopped cleanly): that folder is watched, or was left on
    purpose, so the dead one's fault is over (a watcher restarted under another station
    name left the old one's fault on /health for ever)."""
    newest: dict[str, tuple[float, Path]] = {}
    for path, st in found:
        key = _folder_key(path, st)
        if key is None:
            continue
        updated = now - _age(st, now)
        if key not in newest or updated > newest[key][0]:
            newest[key] = (updated, path)
    gone = set()
    for path, st in found:
        key = _folder_key(path, st)
        if key is not None and newest[key][1] != path and _age(st, now) > silent_after(st):
            gone.add(path)
    return gone


# A dead watcher's hot folder is looked into at most this often (/health and /metrics ask at
# every poll), and for at most LOOK_WAIT_S: the look runs on a thread of its own, as a folder
# on a share that stopped answering blocks the call for good, and /health's thread with it
# (a monitor polling every 10 s took all 40 of the server's threads in minutes, part uploads
# with them). A look not back in time counts as "images wait": the fault stays shown.
LOOK_EVERY_S = 60.0
LOOK_WAIT_S = 0.5
_looks_lock = threading.Lock()
_looks: dict[str, tuple[float, bool]] = {}                 # folder -> (when looked, images wait)
_looking: dict[str, threading.Thread] = {}                  # a look under way (one per folder)


def _images_wait(st: dict[str, Any]) -> bool:
    """Whether an image the watcher would take waits in a local watcher's hot folder, as far
    as this PC can look: False where the folder is on another PC or gone (nothing to see),
    True where it cannot be read or does not answer in time (a dead watcher's outage is not
    hidden on a guess)."""
    import socket
    host = st.get("host")
    if host is not None and host != (socket.gethostname() or "?"):
        return False
    folder = st.get("folder_path") or st.get("folder")
    if not isinstance(folder, str) or not os.path.isabs(folder):
        return False
    now = time.monotonic()
    with _looks_lock:
        seen = _looks.get(folder)
        if seen is not None and now - seen[0] < LOOK_EVERY_S:
            return seen[1]
        look = _looking.get(folder)
        if look is None:
            look = threading.Thread(target=_look, args=(folder,), name="lineguard-watcher-folder-look", daemon=True)
            _looking[folder] = look
            look.start()
    look.join(LOOK_WAIT_S)
    with _looks_lock:
        seen = _looks.get(folder)
        # still looking (a hung share): a second thread is never started for it meanwhile
        return seen[1] if seen is not None and not look.is_alive() else True


def _look(folder: str) -> None:
    found = _folder_has_images(folder)
    with _looks_lock:
        _looks[folder] = (time.monotonic(), found)
        _looking.pop(folder, None)
        if len(_looks) > MAX_HEARTBEATS * 4:          # folders of watchers long gone
            for old in sorted(_looks, key=lambda f: _looks[f][0])[:len(_looks) // 2]:
                _looks.pop(old, None)


def _folder_has_images(folder: str) -> bool:
    from .sources.folder import WATCH_SUFFIXES
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if (not entry.name.startswith(".") and os.path.splitext(entry.name)[1].lower() in WATCH_SUFFIXES
                        and entry.is_file(follow_symlinks=False)):
                    return True
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def _forgotten(path: Path, st: dict[str, Any], now: float) -> bool:
    """Whether a watcher silent past FORGET_AFTER_S is no longer shown: a --server one always
    (the station cannot see its PC); one of this station's data folder unless images wait
    in its folder (the line's parts are not judged: a real outage, shown until it is put
    right, however long ago the watcher died)."""
    if _age(st, now) <= FORGET_AFTER_S:
        return False
    return _heartbeat(path) or not _images_wait(st)


def _shown(found: Statuses, now: float) -> Statuses:
    """The running watchers of ``found``, less those forgotten (:func:`_forgotten`) and those
    superseded by a newer watcher of their folder (:func:`_superseded`)."""
    gone = _superseded(found, now)
    return [(path, st) for path, st in found
            if st.get("running") and path not in gone and not _forgotten(path, st, now)]


def watcher_faults(found: Statuses, now: Optional[float] = None) -> dict[str, str]:
    """``watcher LINE/STATION`` -> what is wrong, for each running watcher (of ``found``,
    :func:`statuses`) that is behind the line, whose station cannot take its parts, or
    that has gone silent."""
    now = time.time() if now is None else now
    faults: dict[str, str] = {}
    for path, st in _shown(found, now):
        name = f"{FAULT_PREFIX}{st.get('line', '?')}/{st.get('station', '?')}"
        if name in faults:          # two folders for one line and station: told apart by the file
            name = f"{name} ({path.stem})"
        age = _age(st, now)
        if age > silent_after(st):
            seen = f"last seen {_clock(st.get('updated'))}, {_ago(age)} ago"
            if _heartbeat(path):
                faults[name] = (f"no heartbeat from the watcher of {st.get('folder')} (pid {st.get('pid')}) since "
                                f"it was {seen}: it is stopped or hung, or its PC cannot reach this station; its "
                                f"backlog is no longer known. Start `lineguard watch` there again (this fault "
                                f"clears after {_ago(FORGET_AFTER_S)} without one, or delete {path})")
            else:
                faults[name] = (f"its status ({path}) is not rewritten, {seen}: the watcher of "
                                f"{st.get('folder')} is stopped or hung (pid {st.get('pid')}) and its backlog is no "
                                "longer known; start `lineguard watch` on that folder again (this fault clears "
                                f"then, or after {_ago(FORGET_AFTER_S)} once no image waits in the folder), or "
                                "delete the file if this watcher is gone for good")
        elif not st.get("station_taking_parts", True):
            faults[name] = (f"the station does not take its parts since {_clock(st.get('station_down_since'))} "
                            f"({st.get('station_error')}); {st.get('waiting', 0)} file(s) wait in {st.get('folder')}")
        elif st.get("only_set_aside"):
            # every file left is set aside and failing again, no part answered: said before "behind",
            # which blamed the PC for files the station fails on (an outage only suspected)
            n = int(st.get("waiting") or 0) + int(st.get("set_aside") or 0)
            faults[name] = (f"every file left in {st.get('folder')} ({n}) is set aside and the station failed on "
                            f"each at its last try ({st.get('set_aside_error')}), since "
                            f"{_clock(st.get('only_set_aside_since'))}: either no part comes or the station fails "
                            "on every part; see the station's log for these parts (a new part failing too is said "
                            "as the station not taking parts)")
        elif st.get("moves_refused"):
            # its done/ or failed/ is a link or a file: no file is taken, and "behind" blamed the PC
            faults[name] = (f"no file taken since {_clock(st.get('moves_refused_since'))}: {st['moves_refused']}; "
                            f"{st.get('waiting', 0)} file(s) wait in {st.get('folder')}")
        elif st.get("behind"):
            faults[name] = (f"behind the line: {st.get('waiting', 0)} file(s) wait in {st.get('folder')}, the oldest "
                            f"for {float(st.get('oldest_wait_s') or 0):.0f} s; the PC does not keep up with the "
                            "parts (a faster model profile, an exported model, or fewer parts per second)")
        elif _set_aside(st):
            # files the station fails on alone, the other parts on time: not "behind" (a watcher before
            # set_aside counted them as waiting, and /health blamed the PC for as long as they stayed)
            n, names = _set_aside(st)
            shown = ", ".join(names) + (f" and {n - len(names)} more" if n > len(names) else "")
            faults[name] = (f"{n} file(s) set aside in {st.get('folder')}: the station fails on them ({shown}), "
                            "they are tried again on their own and the other parts go on; see the station's log "
                            "for these parts, then fix the model or move the files out of the folder")
        given_up = _given_up(st, now)
        if given_up is not None:
            n, names, last = given_up
            faults[f"{name} given up"] = (
                f"{n} file(s) of {st.get('folder')} given up since the watcher started, the latest at "
                f"{_clock(last)} ({', '.join(names)}): the station gave no answer on them in time, try after try, "
                "while it took other parts, so they were moved to failed/ uninspected (each with its "
                ".reason.txt); see the station's log for these parts, then put them back into the folder to have "
                f"them inspected (this fault clears {_ago(GIVEN_UP_SHOWN_S)} after the latest)")
        refused = _refused(path, st, now)
        if refused is not None and refused["last"] is not None and now - refused["last"] <= REFUSED_SHOWN_S:
            latest = ", ".join(refused["files"][-3:])
            if latest and refused["reason"]:
                latest = f"{latest}: {refused['reason']}"
            when = ("at " if refused["last_from"] == "watcher" else "seen by this station at ") + _clock(refused["last"])
            faults[f"{name} refused"] = (
                f"{refused['n']} file(s) of {st.get('folder')} refused since the watcher started, uninspected "
                f"(moved to failed/, or left in the folder under a new file of the name), the latest {when}" + (f" ({latest})" if latest else "") + ": a truncated "
                "or empty file, an image the station cannot read (a 16-bit TIFF), or a part id in conflict. Each "
                "file's reason is beside it in failed/ (NAME.reason.txt) and in the watcher's log; put right what "
                "it says, then drop the file into the folder again to have the part inspected (this fault clears "
                f"{_ago(REFUSED_SHOWN_S)} after the latest)")
    return faults


def _refused(path: Path, st: dict[str, Any], now: float) -> Optional[dict[str, Any]]:
    """The files a watcher refused (moved to failed/ at once; the ones it gave up have their
    own fields and fault): ``n`` since it started (its counts.failed less given_up), ``last``
    (when the latest was; None: unknown), ``last_from`` ("watcher": its status's
    ``refused_last``; "station": when this station saw the count grow), and, where the status
    holds them, the newest names (``files``) and the latest's ``reason``. None for a status
    without counts (a watcher before them)."""
    counts = st.get("counts")
    if not isinstance(counts, dict):
        return None
    try:
        n = max(0, int(counts.get("failed") or 0) - int(st.get("given_up") or 0))
    except (TypeError, ValueError):
        return None
    files = st.get("refused_files")
    files = [str(x) for x in files][-10:] if isinstance(files, list) else []
    reason = st.get("refused_last_reason")
    reason = str(reason)[:500] if reason else None
    last = st.get("refused_last")
    if isinstance(last, (int, float)) and not isinstance(last, bool) and last > 0:
        _seen_refusals(path, st.get("pid"), n, now)
        return {"n": n, "last": float(last), "last_from": "watcher", "files": files, "reason": reason}
    seen = _seen_refusals(path, st.get("pid"), n, now)
    return {"n": n, "last": seen, "last_from": "station" if seen is not None else None, "files": files,
            "reason": reason}


def _seen_refusals(path: Path, pid: Any, n: int, now: float) -> Optional[float]:
    """When this station saw the refusals of the watcher writing ``path`` grow to ``n`` (by its
    clock), from what it read before; None when it has not (the count was there when it first
    read the file: when those files failed is unknown)."""
    with _refusals_lock:
        before = _refusals.get(path)
        if before is None:
            seen = None
        elif before[0] != pid:
            # a watcher restarted: its counts start at 0, so any refusal came since the last read
            seen = now if n > 0 else None
        elif n > before[1]:
            seen = now
        else:
            seen = before[2]
        _refusals[path] = (pid, n, seen)
        if len(_refusals) > MAX_HEARTBEATS * 4:     # status files long gone
            for old in [p for p in _refusals if p != path][:len(_refusals) // 2]:
                _refusals.pop(old, None)
        return seen


def _given_up(st: dict[str, Any], now: float) -> Optional[tuple[int, list[str], float]]:
    """(how many since the watcher started, the newest names, when the latest was) of the files
    a watcher's status says it gave up, when the latest was within GIVEN_UP_SHOWN_S; None
    otherwise, and for a status without ``given_up_last`` (a watcher before it: its count is
    still in /health's ``watchers``)."""
    try:
        n, last = int(st.get("given_up") or 0), float(st.get("given_up_last") or 0)
    except (TypeError, ValueError):
        return None
    if n <= 0 or not last or now - last > GIVEN_UP_SHOWN_S:
        return None
    names = st.get("given_up_files")
    return n, ([str(x) for x in names][-10:] if isinstance(names, list) else []), last


def summaries(found: Statuses, now: Optional[float] = None) -> list[dict[str, Any]]:
    """What /health shows of each running watcher (of ``found``, :func:`statuses`): its backlog,
    its set-aside files, the files it gave up and those it refused (a monitor reading /health
    learns a file was moved to failed/ uninspected; only the watcher's own status file said
    it). A watcher's status from before a field reads as none of it."""
    now = time.time() if now is None else now
    out = []
    for path, st in _shown(found, now):
        def num(key: str, kind: type = int) -> Any:
            try:
                return kind(st.get(key) or 0)
            except (TypeError, ValueError):
                return kind(0)

        def num_in(key: str, field: str) -> int:
            got = st.get(key)
            try:
                return int(got.get(field) or 0) if isinstance(got, dict) else 0
            except (TypeError, ValueError):
                return 0

        def names(key: str) -> list[str]:
            got = st.get(key)
            return [str(x) for x in got][:10] if isinstance(got, list) else []

        last = st.get("given_up_last")
        refused = _refused(path, st, now) or {"n": 0, "last": None, "files": [], "reason": None}
        out.append({"watcher": f"{st.get('line', '?')}/{st.get('station', '?')}", "folder": st.get("folder"),
                    "via": "heartbeat" if _heartbeat(path) else "status file",
                    "updated": st.get("updated"), "silent": _age(st, now) > silent_after(st),
                    "waiting": num("waiting"), "oldest_wait_s": num("oldest_wait_s", float),
                    "behind": bool(st.get("behind")), "station_taking_parts": bool(st.get("station_taking_parts", True)),
                    "set_aside": num("set_aside"), "set_aside_files": names("set_aside_files"),
                    "only_set_aside": bool(st.get("only_set_aside")),
                    "given_up": num("given_up"), "given_up_files": names("given_up_files")[-10:],
                    "given_up_last": float(last) if isinstance(last, (int, float)) else None,
                    # every file moved to failed/ since the watcher started (refused and given up),
                    # and the refused ones: the latest's time, the newest names and its reason
                    # (names and reason only where the watcher's status holds them)
                    "failed": num_in("counts", "failed"), "refused": refused["n"],
                    "refused_last": refused["last"], "refused_files": refused["files"],
                    "refused_last_reason": refused["reason"]})
    return out


def _set_aside(st: dict[str, Any]) -> Optional[tuple[int, list[str]]]:
    """(how many, the first names) of the files a watcher's status says are set aside (the
    station fails on them alone); None when none is, or for a status from before set_aside."""
    try:
        n = int(st.get("set_aside") or 0)
    except (TypeError, ValueError):
        return None
    names = st.get("set_aside_files")
    names = [str(x) for x in names][:10] if isinstance(names, list) else []
    return (n, names) if n > 0 else None


def backlogs(found: Statuses, now: Optional[float] = None) -> list[dict[str, Any]]:
    """(line, station, files waiting, the oldest's wait in s) of each running watcher of
    ``found`` (:func:`statuses`) heard from lately, for /metrics. A watcher silent past
    :func:`silent_after` (killed with kill -9: its file says "running" for ever) has a
    backlog nobody knows: its last count is not reported as if it were now's (its
    /health fault says when it was last seen)."""
    now = time.time() if now is None else now
    return [{"line": str(st.get("line", "")), "station": str(st.get("station", "")),
             "waiting": int(st.get("waiting") or 0), "oldest_wait_s": float(st.get("oldest_wait_s") or 0)}
            for _path, st in _shown(found, now) if _age(st, now) <= silent_after(st)]


# -- --server watchers' heartbeats ------------------------------------------------------
def heartbeat_path(data_dir: Path, line: str, station: str, host: str, folder: str) -> Path:
    """The file the station keeps a --server watcher's status in: one per line, station,
    watcher PC and folder (the name from a digest: nothing a sender writes picks a path)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{line}-{station}")[:80]
    digest = hashlib.sha256(json.dumps([line, station, host, folder]).encode("utf-8", "replace")).hexdigest()[:12]
    return Path(data_dir) / WATCHERS_DIR / f"{HEARTBEAT_PREFIX}{safe}-{digest}.json"


class TooManyWatchers(Exception):
    """MAX_HEARTBEATS --server watchers are kept already."""


def store_heartbeat(data_dir: Path, status: dict[str, Any], now: Optional[float] = None) -> Optional[Path]:
    """Keep a --server watcher's status (``line``, ``station``, ``host``, ``folder`` and what
    its status file holds) as its status file here; a clean stop (``running`` false)
    removes it (returns None). ``updated`` is this station's clock when it came; the
    watcher's own times (``behind_since``, ``station_down_since``) are moved by the gap
    between its clock (``sent``) and this one, so a PC whose clock is off still reads right.
    A heartbeat older (by ``sent``) than one already kept of the same watcher process, or
    than its clean stop, came late and is not kept (see LATE_WITHIN_S): the path of the
    newer one kept is returned, None after a stop. Also deletes the heartbeats forgotten
    (silent past FORGET_AFTER_S)."""
    now = time.time() if now is None else now
    path = heartbeat_path(data_dir, status["line"], status["station"], status["host"], status["folder"])
    sent = status.get("sent")
    sent = float(sent) if sent is not None else None
    with _heartbeats_lock:
        forget_old(data_dir, now)
        _forget_stops(now)
        if _late(path, status.get("pid"), sent, now):
            return path if path.exists() else None
        if not status.get("running"):
            _stopped.pop(path, None)
            if sent is not None:
                _stopped[path] = (status.get("pid"), sent, now)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return None
        _stopped.pop(path, None)          # this watcher runs again (restarted, or newer than its stop)
        held = dict(status)
        held.pop("sent", None)
        skew = now - sent if sent is not None else 0.0
        for key in ("behind_since", "station_down_since", "given_up_last", "only_set_aside_since", "refused_last"):
            if held.get(key) is not None:
                held[key] = float(held[key]) + skew
        held["folder"] = f"{status['host']}:{status['folder']}"
        held.update(updated=now, via="heartbeat", sent=sent)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() and len(list(path.parent.glob(f"{HEARTBEAT_PREFIX}*.json"))) >= MAX_HEARTBEATS:
            raise TooManyWatchers(f"this station keeps the heartbeats of {MAX_HEARTBEATS} watchers already; stop "
                                  "the ones no longer used (a clean stop removes theirs) or delete their files in "
                                  f"{path.parent}")
        # a new file renamed over the old: /health never reads half of one
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            tmp.write_text(json.dumps(held) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path


def _late(path: Path, pid: Any, sent: Optional[float], now: float) -> bool:
    """Whether a heartbeat of watcher process ``pid`` sent at ``sent`` (its clock) is older
    than the newest kept of that process at ``path``, or than its clean stop. A watcher
    that sends no ``sent`` (an older lineguard) cannot be ordered: never late."""
    if sent is None:
        return False
    stop = _stopped.get(path)
    if stop is not None and stop[0] == pid and sent < stop[1]:
        return True
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(kept, dict) or kept.get("pid") != pid or kept.get("sent") is None:
        return False                      # another process (a restart): its own clock and order
    try:
        newer, came = float(kept["sent"]), float(kept.get("updated") or 0)
    except (TypeError, ValueError):
        return False
    return sent < newer and now - came < LATE_WITHIN_S


def _forget_stops(now: float) -> None:
    """Forget the clean stops older than STOPPED_KEPT_S, and the oldest past MAX_STOPPED."""
    for path in [p for p, (_pid, _sent, at) in _stopped.items() if now - at > STOPPED_KEPT_S]:
        del _stopped[path]
    while len(_stopped) > MAX_STOPPED:
        del _stopped[next(iter(_stopped))]     # the oldest stored first


def forget_old(data_dir: Path, now: Optional[float] = None) -> None:
    """Delete the --server watchers' status files silent past FORGET_AFTER_S."""
    now = time.time() if now is None else now
    for path, st in statuses(data_dir):
        if _heartbeat(path) and _age(st, now) > FORGET_AFTER_S:
            try:
                path.unlink()
            except OSError:
                pass


def _ago(seconds: float) -> str:
    """A span as a person reads it: 45 s, 12 min, 3 h 12 min, 2 d 5 h."""
    s = int(max(0.0, seconds)) if seconds != float("inf") else None
    if s is None:
        return "an unknown time"
    if s < 120:
        return f"{s} s"
    m = s // 60
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _clock(wall: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(wall)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"
