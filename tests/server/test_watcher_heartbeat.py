"""A hot folder's watcher on another PC (`lineguard watch --server`) is seen by the station's
/health and /metrics through its heartbeat, as a local watcher is through its status file:
before, a --server watcher behind the line or dead left /health at "ok". And a watcher killed
with kill -9 no longer has its last backlog reported by /metrics for ever."""
from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from lineguard.line import watchers
from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources import local_submitter

from .fake_inspector import FakeInspector, png_bytes

HEARTBEAT = "/api/v1/watchers/heartbeat"


def _station(tmp_path):
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        _row, key = create_key(s, "operator", "hot folder PC", by="test")
    return st, key


def _beat(**over):
    base = {"line": "L3", "station": "S3", "product": "cell", "host": "cam-pc", "folder": "/cam/in", "pid": 77,
            "running": True, "every_s": 5.0, "waiting": 4, "oldest_wait_s": 2.0, "behind": False,
            "station_taking_parts": True, "counts": {"done": 10, "failed": 0, "skipped": 0, "ignored": 0},
            "sent": time.time()}
    return {**base, **over}


def _age_heartbeats(data_dir, seconds: float) -> None:
    """The station's clock moved on ``seconds`` with no heartbeat (the stored ones made older)."""
    for path in (data_dir / "watchers").glob("heartbeat-*.json"):
        st = json.loads(path.read_text())
        st["updated"] -= seconds
        path.write_text(json.dumps(st))


def test_a_server_watcher_behind_its_line_is_seen_by_the_station_and_forgotten_on_a_clean_stop(tmp_path,
                                                                                              monkeypatch):
    from lineguard.server.app import create_app
    monkeypatch.setattr(folder_mod, "BACKLOG_AFTER_S", 0.2, raising=False)
    monkeypatch.setattr(folder_mod, "STATUS_EVERY_S", 0.0, raising=False)
    st, key = _station(tmp_path)
    client = TestClient(create_app(station=st))
    inbox = tmp_path / "in"          # on the watcher's PC: its status file is not in the station's folder
    inbox.mkdir()
    for i in range(6):
        (inbox / f"p{i}.png").write_bytes(png_bytes(40, seed=i, size=32))
    inspect = local_submitter(st, "L1", "S1", "cell", "folder")
    hb = folder_mod.StationHeartbeat("http://station", client=TestClient(create_app(station=st),
                                                                         headers={"X-API-Key": key}))
    seen = {}

    def slow(data, part_id, name):
        time.sleep(0.1)                     # slower than the line: files wait
        if part_id == "p4":
            seen["health"] = client.get("/health").json()
            seen["metrics"] = client.get("/metrics").text
        return inspect(data, part_id, name)

    # hb.send: each status sent as it is written (the thread of hb() is covered in tests/line)
    w = folder_mod.FolderWatcher(inbox, slow, settle_s=0.05, poll_s=0.01, heartbeat=hb.send,
                                 status_info={"line": "L1", "station": "S1", "product": "cell",
                                              "inspects": "--server"})
    w._running = True
    w.poll_once()
    time.sleep(0.1)
    w.poll_once()
    # before: the station had no way to hear of this watcher; /health said "ok"
    assert hb.sent >= 1
    assert "behind the line" in seen["health"]["faults"]["watcher L1/S1"], seen["health"]
    assert str(inbox.resolve()) in seen["health"]["faults"]["watcher L1/S1"]
    assert 'lineguard_hot_folder_waiting{line="L1",station="S1"}' in seen["metrics"]
    w.poll_once()                                            # caught up: the fault clears
    assert "watcher L1/S1" not in client.get("/health").json()["faults"]
    assert list((tmp_path / "data" / "watchers").glob("heartbeat-*.json"))
    w.run(stop_after=0)                                      # a clean stop: running false is sent
    assert not list((tmp_path / "data" / "watchers").glob("heartbeat-*.json"))
    assert 'hot_folder_waiting{line="L1"' not in client.get("/metrics").text
    st.close()


def test_a_server_watcher_that_stops_sending_is_a_fault_saying_when_it_was_last_seen_then_forgotten(tmp_path):
    from lineguard.server.app import create_app
    st, key = _station(tmp_path)
    client = TestClient(create_app(station=st))
    data = tmp_path / "data"
    r = client.post(HEARTBEAT, json=_beat(), headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    assert r.json()["kept"] is True and r.json()["silent_after_s"] == watchers.SILENT_AFTER_S
    assert "watcher L3/S3" not in client.get("/health").json()["faults"]
    assert 'lineguard_hot_folder_waiting{line="L3",station="S3"} 4.0' in client.get("/metrics").text
    _age_heartbeats(data, 130)                   # killed, or its PC unplugged: no heartbeat for 130 s
    fault = client.get("/health").json()["faults"]["watcher L3/S3"]
    assert "no heartbeat" in fault and "cam-pc:/cam/in" in fault and "2 min ago" in fault, fault
    # its backlog is no longer known: not reported as if it were now's
    assert 'hot_folder_waiting{line="L3"' not in client.get("/metrics").text
    _age_heartbeats(data, watchers.FORGET_AFTER_S)   # a day on: a PC taken off the line is forgotten
    assert "watcher L3/S3" not in client.get("/health").json()["faults"]
    assert client.post(HEARTBEAT, json=_beat(station="S4"), headers={"X-API-Key": key}).status_code == 200
    kept = [json.loads(p.read_text())["station"] for p in (data / "watchers").glob("heartbeat-*.json")]
    assert kept == ["S4"]                        # the forgotten one's file deleted
    st.close()


def test_the_heartbeat_needs_a_key_and_sane_fields(tmp_path):
    from lineguard.server.app import create_app
    st, key = _station(tmp_path)
    client = TestClient(create_app(station=st))
    assert client.post(HEARTBEAT, json=_beat()).status_code == 401
    r = client.post(HEARTBEAT, json=_beat(waiting=-1, line=""), headers={"X-API-Key": key})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert not (tmp_path / "data" / "watchers").exists() or \
        not list((tmp_path / "data" / "watchers").glob("heartbeat-*.json"))
    st.close()


def test_a_killed_local_watchers_backlog_leaves_metrics_and_its_fault_says_when_it_was_last_seen(tmp_path):
    from lineguard.server.app import create_app
    st, _key = _station(tmp_path)
    folder = tmp_path / "data" / "watchers"
    folder.mkdir(parents=True)
    base = {"line": "L2", "station": "S9", "folder": "/cam/in", "pid": 4242, "every_s": 5.0, "waiting": 3,
            "oldest_wait_s": 1.0, "behind": False, "station_taking_parts": True, "running": True}
    (folder / "killed.json").write_text(json.dumps({**base, "updated": time.time() - 3 * 3600 - 600}))
    (folder / "alive.json").write_text(json.dumps({**base, "station": "S1", "updated": time.time()}))
    client = TestClient(create_app(station=st))
    metrics = client.get("/metrics").text
    # before: the killed watcher's 3 files were reported as waiting, 3 hours on
    assert 'lineguard_hot_folder_waiting{line="L2",station="S9"}' not in metrics
    assert 'lineguard_hot_folder_waiting{line="L2",station="S1"} 3.0' in metrics
    fault = client.get("/health").json()["faults"]["watcher L2/S9"]
    assert "last seen" in fault and "3 h 10 min ago" in fault and "4242" in fault, fault
    st.close()
