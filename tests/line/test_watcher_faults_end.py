"""Each hot-folder watcher's lasting fault has an end:

- a clean stop's heartbeat that does not get through at once (the station restarting) is
  tried again, and one that never gets through is said at the stop, with what the station
  shows meanwhile (before: sent once; the station showed "stopped or hung" for a day, unsaid);
- a dead local watcher's /health fault ends when a watcher of the same folder writes a newer
  status, or after FORGET_AFTER_S once no image waits in its folder (before: only when
  someone deleted its status file);
- a watch run stopped during a station outage (or a backlog) says its end at the stop;
- the station's own fault names are the fixed ones of /metrics, the watchers' are not.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import time
from pathlib import Path

import httpx

from lineguard.line import watchers
from lineguard.line.metrics import fixed_fault
from lineguard.line.sources import SubmitFailed
from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes


class _Answer:
    def __init__(self, status_code: int):
        self.status_code, self.text = status_code, "{}"

    def json(self):
        return {"kept": True} if self.status_code == 200 else {"error": {"message": "no"}}


class _Station:
    """The watcher's HTTP client: takes running heartbeats; a stop's first ``stop_fails``
    tries meet a refused connection (``stop_fails`` None: every try), or ``stop_status``."""

    def __init__(self, stop_fails=None, stop_status=None):
        self.stop_fails, self.stop_status = stop_fails, stop_status
        self.tried: list[dict] = []
        self.taken: list[dict] = []

    def post(self, path, json):
        self.tried.append(json)
        if json["running"] is False:
            if self.stop_status is not None:
                return _Answer(self.stop_status)
            if self.stop_fails is None or len([b for b in self.tried if b["running"] is False]) <= self.stop_fails:
                raise httpx.ConnectError("[Errno 111] Connection refused")
        self.taken.append(json)
        return _Answer(200)


def _watch_then_stop(tmp_path, station):
    inbox = tmp_path / "in"
    inbox.mkdir(exist_ok=True)
    hb = folder_mod.StationHeartbeat("http://station:8000", client=station)
    w = FolderWatcher(inbox, lambda *a: {"id": 1, "verdict": "OK", "score": 0.1}, settle_s=0.0, poll_s=0.01,
                      heartbeat=hb, status_info={"line": "L1", "station": "S1", "product": "cell"})
    w._running = True
    assert hb.send(w.status())                          # the station saw the watcher running
    w.stop()
    w.run()                                             # the clean stop: "running": false handed over
    hb.close()
    return hb, inbox


def test_a_stop_heartbeat_that_meets_a_refused_connection_is_tried_again(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_mod, "STOP_RETRY_EVERY_S", 0.01, raising=False)
    station = _Station(stop_fails=2)                    # the station restarting as the watcher stops
    hb, _inbox = _watch_then_stop(tmp_path, station)
    # before: sent once; the station showed the watcher "stopped or hung" for FORGET_AFTER_S
    assert station.taken[-1]["running"] is False, station.tried
    assert len([b for b in station.tried if b["running"] is False]) == 3
    assert hb.stop_told is True


def test_a_stop_the_station_never_heard_is_said_with_what_the_station_shows(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(folder_mod, "STOP_RETRY_S", 0.05, raising=False)
    monkeypatch.setattr(folder_mod, "STOP_RETRY_EVERY_S", 0.01, raising=False)
    with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
        _hb, inbox = _watch_then_stop(tmp_path, _Station(stop_fails=None))
    said = [r.getMessage() for r in caplog.records if "not told that this watcher stopped" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "Connection refused" in said[0] and "'watcher L1/S1'" in said[0] and str(inbox.resolve()) in said[0]
    assert f"{watchers.FORGET_AFTER_S / 3600:.0f} h at most" in said[0]


def test_a_stop_refused_for_its_key_is_not_tried_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(folder_mod, "STOP_RETRY_EVERY_S", 0.01, raising=False)
    station = _Station(stop_status=403)                 # a retry does not cure a key taken back
    with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
        _watch_then_stop(tmp_path, station)
    assert len([b for b in station.tried if b["running"] is False]) == 1
    assert any("not told that this watcher stopped (HTTP 403" in r.getMessage() for r in caplog.records)


# -- a dead local watcher's fault ---------------------------------------------------------
def _local_watcher(data: Path, inbox: Path, station: str) -> FolderWatcher:
    """A --data watcher of ``inbox`` writing its status where the station reads it."""
    return FolderWatcher(inbox, lambda *a: {}, settle_s=60.0, poll_s=0.01,
                         status_path=data / watchers.WATCHERS_DIR / f"L1-{station}.json",
                         status_info={"line": "L1", "station": station, "product": "cell", "inspects": "here"})


def _kill(status_path: Path, seconds_ago: float) -> None:
    """The watcher writing ``status_path`` died ``seconds_ago`` (kill -9: still "running")."""
    st = json.loads(status_path.read_text())
    st["running"], st["updated"] = True, time.time() - seconds_ago
    status_path.write_text(json.dumps(st))


def test_a_new_watcher_of_the_same_folder_ends_a_dead_ones_fault(tmp_path):
    data, inbox = tmp_path / "data", tmp_path / "in"
    inbox.mkdir()
    old = _local_watcher(data, inbox, "S1")
    old.run(stop_after=0)
    _kill(old.status_path, 3600)
    assert "watcher L1/S1" in watchers.watcher_faults(watchers.statuses(data))
    new = _local_watcher(data, inbox, "S2")             # restarted under another station name
    new._running = True
    new._write_status(time.monotonic(), force=True)
    # before: the dead one's fault stood until someone deleted its status file
    assert watchers.watcher_faults(watchers.statuses(data)) == {}
    # a watcher of another folder ends nothing
    other = tmp_path / "other"
    other.mkdir()
    _kill(new.status_path, 3600)
    third = _local_watcher(data, other, "S3")
    third._running = True
    third._write_status(time.monotonic(), force=True)
    assert set(watchers.watcher_faults(watchers.statuses(data))) == {"watcher L1/S2"}


def _dead(folder: Path, seconds_ago: float) -> watchers.Statuses:
    return [(Path("/data/watchers/L1-S1.json"),
             {"line": "L1", "station": "S1", "folder": str(folder), "folder_path": str(folder),
              "host": socket.gethostname(), "pid": 4242, "running": True, "every_s": 5.0,
              "updated": time.time() - seconds_ago, "waiting": 0})]


def test_a_dead_watcher_is_forgotten_after_a_day_only_when_no_image_waits_in_its_folder(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / ".lineguard-watch.jsonl").write_text("")   # its own files are not parts
    (inbox / "notes.txt").write_text("")
    day = watchers.FORGET_AFTER_S
    # before: shown for ever
    assert watchers.watcher_faults(_dead(inbox, day + 60)) == {}
    assert watchers.watcher_faults(_dead(tmp_path / "gone", day + 60)) == {}
    fault = watchers.watcher_faults(_dead(inbox, day - 60))["watcher L1/S1"]
    assert "start `lineguard watch` on that folder again" in fault and "after 24 h once no image waits" in fault
    # a part waits: the line's parts are not judged, a real outage, still shown
    (inbox / "p1.png").write_bytes(png_bytes(40, seed=1, size=32))
    watchers._looks.clear()         # the folder was looked into a moment ago (kept LOOK_EVERY_S)
    assert "watcher L1/S1" in watchers.watcher_faults(_dead(inbox, day + 60))


def test_a_hot_folder_that_does_not_answer_never_holds_up_health(tmp_path, monkeypatch):
    """A dead watcher's folder on a share that stopped answering: the look into it blocked
    /health's thread for good (each poll one more, until the server had none for parts).
    It runs on its own thread now, one per folder, and counts as "images wait"."""
    import threading
    inbox = tmp_path / "share"
    inbox.mkdir()
    hung, looks = threading.Event(), []

    def hangs(folder):
        looks.append(folder)
        hung.wait(30)
        return False
    monkeypatch.setattr(watchers, "_folder_has_images", hangs)
    monkeypatch.setattr(watchers, "LOOK_WAIT_S", 0.05)
    watchers._looks.clear()
    dead = _dead(inbox, watchers.FORGET_AFTER_S + 60)
    for _ in range(3):              # three polls: each answers, the fault still shown
        assert "watcher L1/S1" in watchers.watcher_faults(dead)
    assert looks == [str(inbox)]    # one look under way, not one more per poll
    hung.set()
    for _ in range(200):
        if not watchers._looking:
            break
        threading.Event().wait(0.05)
    assert watchers.watcher_faults(dead) == {}     # it answered: no image waits, the fault is over


# -- a stop during an outage ----------------------------------------------------------------
def test_a_watch_stopped_while_the_station_is_down_says_the_outage_ended_with_it(tmp_path, caplog):
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(2):
        (inbox / f"p{i}.png").write_bytes(png_bytes(40, seed=i, size=32))

    def down(data, part_id, name):
        raise SubmitFailed("HTTP 503: the station's disk is full")

    w = FolderWatcher(inbox, down, settle_s=0.0, poll_s=0.01)
    w._running = True
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        w.poll_once()
        w.poll_once()                                   # the outage begins
        w.stop()                                        # Ctrl-C, SIGTERM
        w.run()
    said = [r.getMessage() for r in caplog.records]
    assert any("the station cannot take parts" in m for m in said), said
    # before: nothing after the outage's first line
    ended = [m for m in said if m.startswith("stopped while the station could not take parts")]
    assert len(ended) == 1, said
    assert "disk is full" in ended[0] and "2 files wait in" in ended[0], ended
    assert re.search(r"\d+ tries failed", ended[0]), ended


def test_a_watch_stopped_while_behind_the_line_says_so(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(folder_mod, "BACKLOG_AFTER_S", 0.0)
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(40, seed=1, size=32))
    w = FolderWatcher(inbox, lambda *a: {}, settle_s=3600.0, poll_s=0.01)   # never taken: it waits
    w._running = True
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        w.poll_once()
        w.poll_once()
        w.stop()
        w.run()
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("falling behind") for m in said), said
    assert len([m for m in said if m.startswith("stopped while behind the line")]) == 1, said


# -- fault names ------------------------------------------------------------------------------
def test_every_fault_name_the_station_sets_is_one_of_its_own_and_a_watchers_is_not():
    src = Path(__file__).resolve().parents[2] / "src" / "lineguard"
    named = set()
    for path in src.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        # faults["disk"] = ..., faults.pop("disk", None), self._storage_fault("images", exc)
        named |= set(re.findall(r"""faults(?:\[|\.pop\(|\.get\()\s*["']([^"']+)["']""", text))
        named |= set(re.findall(r"""_storage_fault\(\s*["']([^"']+)["']""", text))
    assert {"database", "images", "disk", "camera"} <= named, named     # the scan finds them
    missing = sorted(n for n in named if not fixed_fault(n))
    # a station fault missing from STATION_FAULTS loses its /metrics series an alert resolves on
    assert missing == [], missing
    for key in ("plc", "plc-modbus", "plc-opcua"):             # plc_handshake's fault_key and its suffixes
        assert all(fixed_fault(key + end) for end in ("", "_signals", "_backlog_signals"))
    # the watchers' (named by a key holder's heartbeat) are dropped once cleared, not kept for ever
    assert not fixed_fault(f"{watchers.FAULT_PREFIX}L1/S1")


def test_a_watcher_whose_done_folder_is_refused_says_so_on_health_not_behind(tmp_path):
    """Its done/ a symbolic link: no file is taken; /health said the watcher was behind
    because the PC does not keep up, the wrong cause (the folder walk)."""
    data, inbox = tmp_path / "data", tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (inbox / "done").symlink_to(tmp_path / "elsewhere")
    w = _local_watcher(data, inbox, "S1")
    w.run(stop_after=0)
    st = json.loads(w.status_path.read_text())
    st["running"], st["behind"], st["waiting"] = True, True, 3
    w.status_path.write_text(json.dumps(st))
    fault = watchers.watcher_faults(watchers.statuses(data))["watcher L1/S1"]
    assert fault.startswith("no file taken since ") and "symbolic link" in fault and "3 file(s) wait" in fault
