"""A --server watcher's heartbeat (line.sources.folder.StationHeartbeat): sent from a thread of
its own, so a station slow or down never holds the folder's files; an older station (404) is
said once and the watcher goes on; a clean stop sends "running": false. And a file name whose
part id has spaces around it is not silently made the part of the name without them."""
from __future__ import annotations

import json
import logging
import threading

import httpx
import pytest

from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes


class _Answer:
    def __init__(self, status_code: int, body: dict):
        self.status_code, self._body, self.text = status_code, body, str(body)

    def json(self):
        return self._body


class _Station:
    """What the watcher's HTTP client reaches: answers ``status`` (or raises ``error``)."""

    def __init__(self, status: int = 200, error: Exception | None = None, hold: threading.Event | None = None):
        self.status, self.error, self.hold = status, error, hold
        self.bodies: list[dict] = []
        self.answered = 0
        self.arrived = threading.Event()

    def post(self, path, json):
        self.bodies.append(json)
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(30)
        self.answered += 1
        if self.error is not None:
            raise self.error
        return _Answer(self.status, {"kept": True} if self.status == 200 else {"detail": "Not Found"})


def _submit(data, part_id, name):
    return {"id": 1, "verdict": "OK", "score": 0.1, "part_id": part_id}


def test_a_station_that_does_not_answer_holds_no_file_and_a_clean_stop_is_sent_last(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_mod, "STATUS_EVERY_S", 0.0, raising=False)
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(40, seed=1, size=32))
    release = threading.Event()
    station = _Station(hold=release)                # its first answer does not come until released
    hb = folder_mod.StationHeartbeat("http://station:8000", client=station)
    w = FolderWatcher(inbox, _submit, settle_s=0.0, poll_s=0.01, heartbeat=hb,
                      status_info={"line": "L1", "station": "S1", "product": "cell", "inspects": "--server"})
    w._running = True
    w.poll_once()
    assert station.arrived.wait(30)                 # the first heartbeat is on its way, unanswered
    w.poll_once()
    w.run(stop_after=0)                             # a clean stop; each status handed over, none waited for
    # the watcher is through while the station has not answered its first heartbeat (sent
    # inline, that answer would have held the file and the stop)
    assert w.counts["done"] == 1 and len(station.bodies) == 1 and station.answered == 0
    release.set()
    hb.close()
    first, last = station.bodies[0], station.bodies[-1]
    assert first["running"] is True and last["running"] is False   # the clean stop is the last word
    assert last["counts"]["done"] == 1 and last["line"] == "L1" and last["station"] == "S1"
    assert last["folder"] == str(inbox.resolve()) and last["host"] and last["sent"] > 0
    assert len(station.bodies) == 2                 # only the newest waiting status is sent, not each


def test_ctrl_c_is_a_clean_stop_for_the_station_too(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(40, seed=1, size=32))
    station = _Station()
    hb = folder_mod.StationHeartbeat("http://station:8000", client=station)

    def interrupted(data, part_id, name):
        raise KeyboardInterrupt           # Ctrl-C while a part is sent

    w = FolderWatcher(inbox, interrupted, settle_s=0.0, poll_s=0.01, heartbeat=hb)
    with pytest.raises(KeyboardInterrupt):
        w.run()
    hb.close()
    # before: the last word was "running", so the station called it stopped or hung a minute on
    assert station.bodies[-1]["running"] is False
    assert json.loads((inbox / folder_mod.STATUS_FILE).read_text())["running"] is False


def test_an_older_station_without_heartbeats_is_said_once_and_the_watcher_goes_on(tmp_path, caplog, monkeypatch):
    inbox = tmp_path / "in"
    inbox.mkdir()
    old = _Station(status=404)
    hb = folder_mod.StationHeartbeat("http://old-station:8000", client=old)
    w = FolderWatcher(inbox, _submit, settle_s=0.0, poll_s=0.01, heartbeat=hb.send)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        for i in range(3):
            (inbox / f"p{i}.png").write_bytes(png_bytes(40, seed=i, size=32))
            w.poll_once()
            w._write_status(0.0, force=True)
            w.poll_once()
        assert w.counts["done"] == 3                          # parts go on as before
        assert len(old.bodies) == 1                           # not asked again before OLD_STATION_RETRY_S
        monkeypatch.setattr(folder_mod, "OLD_STATION_RETRY_S", 0.0)
        assert hb.send(w.status()) is False and len(old.bodies) == 2
        old.status = 200                                      # the station updated
        assert hb.send(w.status()) is True
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "does not take watcher heartbeats" in m]) == 1, said
    assert len([m for m in said if "takes this watcher's heartbeats again" in m]) == 1, said


def test_a_station_down_is_said_once_for_the_heartbeat_and_never_raised(tmp_path, caplog):
    inbox = tmp_path / "in"
    inbox.mkdir()
    down = _Station(error=httpx.ConnectError("[Errno 111] Connection refused"))
    hb = folder_mod.StationHeartbeat("http://station:8000", client=down)
    w = FolderWatcher(inbox, _submit, settle_s=0.0, poll_s=0.01)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        assert [hb.send(w.status()) for _ in range(3)] == [False, False, False]
    said = [r.getMessage() for r in caplog.records if "heartbeat" in r.getMessage()]
    assert len(said) == 1 and "Connection refused" in said[0], said


def test_a_part_id_with_spaces_around_it_is_refused_not_merged_with_the_part_without(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.png").write_bytes(png_bytes(40, seed=1, size=32))
    (inbox / " a.png").write_bytes(png_bytes(200, seed=2, size=32))     # another photo
    (inbox / "b .png").write_bytes(png_bytes(40, seed=3, size=32))
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.0, poll_s=0.01)
    w.poll_once()
    w.poll_once()
    # before: " a.png" was recorded as part "a" beside "a.png" (two photos, one part, no word)
    assert [r.part_id for r in st.query()] == ["a"]
    assert (inbox / "done" / "a.png").exists()
    assert (inbox / "failed" / " a.png").exists() and (inbox / "failed" / "b .png").exists()
    reason = (inbox / "failed" / " a.png.reason.txt").read_text()
    assert "begins or ends with a space" in reason and "'a.png'" in reason and "Rename" in reason
    assert w.counts == {"done": 1, "failed": 2, "skipped": 0, "ignored": 0}
