"""The station's /health and /metrics see its hot folders' watchers (line.watchers): a
watcher behind the line (photos had waited 11 minutes while /health said "ok"), one whose
station cannot take its parts, and one gone silent (killed or hung) are faults, housekeeping
ones: the station itself still judges parts."""
from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import FolderWatcher

from .fake_inspector import FakeInspector, png_bytes


def _station(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    return st


def test_a_watcher_behind_its_line_is_a_health_fault_and_its_backlog_a_metric(tmp_path, monkeypatch):
    from lineguard.server.app import create_app
    monkeypatch.setattr(folder_mod, "BACKLOG_AFTER_S", 0.2, raising=False)
    monkeypatch.setattr(folder_mod, "STATUS_EVERY_S", 0.0, raising=False)
    st = _station(tmp_path)
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(6):
        (inbox / f"p{i}.png").write_bytes(png_bytes(40, seed=i, size=32))
    status = tmp_path / "data" / "watchers" / "L1-S1.json"
    inspect = local_submitter(st, "L1", "S1", "cell", "folder")
    seen = {}
    client = TestClient(create_app(station=st))

    def slow(data, part_id, name):
        time.sleep(0.1)                     # slower than the line: files wait
        if part_id == "p4":                 # a station operator's look while it is behind
            seen["health"] = client.get("/health")
            seen["metrics"] = client.get("/metrics").text
        return inspect(data, part_id, name)

    w = FolderWatcher(inbox, slow, settle_s=0.05, poll_s=0.01, status_path=status,
                      status_info={"line": "L1", "station": "S1", "product": "cell", "inspects": "here"})
    w._running = True
    w.poll_once()
    time.sleep(0.1)
    w.poll_once()
    r = seen["health"]
    assert r.status_code == 200, r.text                      # housekeeping: parts are still judged
    body = r.json()
    assert body["status"] == "degraded" and "behind the line" in body["faults"]["watcher L1/S1"]
    assert 'lineguard_hot_folder_waiting{line="L1",station="S1"}' in seen["metrics"]
    assert 'lineguard_station_fault{fault="watcher L1/S1"} 1.0' in seen["metrics"]
    w.poll_once()                                            # caught up: the fault clears
    assert "watcher L1/S1" not in client.get("/health").json()["faults"]
    st.close()


def test_a_silent_watcher_is_a_fault_and_one_stopped_on_purpose_is_not(tmp_path):
    from lineguard.server.app import create_app
    st = _station(tmp_path)
    folder = tmp_path / "data" / "watchers"
    folder.mkdir(parents=True)
    base = {"line": "L2", "station": "S9", "folder": "/cam/in", "pid": 4242, "every_s": 5.0, "waiting": 3,
            "oldest_wait_s": 1.0, "behind": False, "station_taking_parts": True}
    (folder / "killed.json").write_text(json.dumps({**base, "running": True, "updated": time.time() - 600}))
    (folder / "stopped.json").write_text(json.dumps({**base, "station": "S8", "running": False,
                                                      "updated": time.time() - 600}))
    (folder / "down.json").write_text(json.dumps({**base, "station": "S7", "running": True, "updated": time.time(),
                                                   "station_taking_parts": False, "station_error": "disk full",
                                                   "station_down_since": time.time() - 30}))
    faults = TestClient(create_app(station=st)).get("/health").json()["faults"]
    assert "stopped or hung" in faults["watcher L2/S9"] and "4242" in faults["watcher L2/S9"]
    assert "watcher L2/S8" not in faults
    assert "does not take its parts" in faults["watcher L2/S7"] and "disk full" in faults["watcher L2/S7"]
    st.close()
