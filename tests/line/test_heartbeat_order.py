"""A --server watcher's heartbeats kept in order (line.watchers.store_heartbeat).

The watcher waits 3 s for each; the station goes on working on one it gave up on. Its last
normal heartbeat worked on after its clean stop wrote its file again: a watcher stopped on
purpose was "stopped or hung" on /health for a day. And the 256-watcher cap was a count,
then a write: 400 heartbeats at once under new names left 257 files.
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lineguard.line import watchers


def _beat(sent: float, **over):
    return {"line": "L3", "station": "S3", "product": "cell", "host": "cam-pc", "folder": "/cam/in", "pid": 77,
            "running": True, "every_s": 5.0, "waiting": 4, "oldest_wait_s": 2.0, "behind": False,
            "station_taking_parts": True, "sent": sent, **over}


def _files(data):
    return sorted((data / "watchers").glob("heartbeat-*.json"))


def test_a_heartbeat_worked_on_after_the_clean_stop_does_not_bring_the_watcher_back(tmp_path):
    data, t = tmp_path / "data", 1_000_000.0
    assert watchers.store_heartbeat(data, _beat(t - 5), now=t - 5) is not None
    # the last normal heartbeat (sent at t) is still being worked on when the stop (t + 1) is done
    assert watchers.store_heartbeat(data, _beat(t + 1, running=False), now=t + 1) is None
    assert watchers.store_heartbeat(data, _beat(t, waiting=9), now=t + 2) is None        # late: not kept
    assert _files(data) == []
    # nothing on /health however long after
    assert watchers.watcher_faults(watchers.statuses(data), now=t + 3600) == {}
    # the same watcher started again (another process) is kept at once, whatever its clock says
    assert watchers.store_heartbeat(data, _beat(t - 60, pid=78), now=t + 3) is not None
    assert [json.loads(p.read_text())["pid"] for p in _files(data)] == [78]


def test_an_older_heartbeat_of_the_same_watcher_does_not_overwrite_a_newer_one(tmp_path):
    data, t = tmp_path / "data", 1_000_000.0
    path = watchers.store_heartbeat(data, _beat(t + 5, waiting=9, behind=True), now=t + 5)
    assert watchers.store_heartbeat(data, _beat(t, waiting=1), now=t + 6) == path     # still kept: the newer
    kept = json.loads(path.read_text())
    assert kept["waiting"] == 9 and kept["behind"] is True and kept["updated"] == t + 5
    # a newer one is kept as before
    watchers.store_heartbeat(data, _beat(t + 10, waiting=2), now=t + 10)
    assert json.loads(path.read_text())["waiting"] == 2


def test_a_watcher_pc_whose_clock_went_back_is_heard_again_soon(tmp_path):
    """A time sync that sets the watcher's clock back an hour: its heartbeats look older
    than the one kept, but they stop being taken as late after LATE_WITHIN_S, not in an hour."""
    data, t = tmp_path / "data", 1_000_000.0
    path = watchers.store_heartbeat(data, _beat(t, waiting=3), now=t)
    watchers.store_heartbeat(data, _beat(t - 3600 + 5, waiting=4), now=t + 5)
    assert json.loads(path.read_text())["waiting"] == 3
    watchers.store_heartbeat(data, _beat(t - 3600 + watchers.LATE_WITHIN_S + 1, waiting=5),
                             now=t + watchers.LATE_WITHIN_S + 1)
    assert json.loads(path.read_text())["waiting"] == 5
    assert watchers.watcher_faults(watchers.statuses(data), now=t + watchers.LATE_WITHIN_S + 2) == {}


def test_the_late_heartbeat_through_the_api_says_not_kept(tmp_path):
    from fastapi.testclient import TestClient

    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    from fake_inspector import FakeInspector
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)
    try:
        with st.db.session() as s:
            _row, key = create_key(s, "operator", "hot folder PC", by="test")
        client = TestClient(create_app(station=st), headers={"X-API-Key": key})
        t = time.time()
        assert client.post("/api/v1/watchers/heartbeat", json=_beat(t - 5)).json()["kept"] is True
        assert client.post("/api/v1/watchers/heartbeat", json=_beat(t, running=False)).json()["kept"] is False
        late = client.post("/api/v1/watchers/heartbeat", json=_beat(t - 1, behind=True))
        assert late.status_code == 200 and late.json()["kept"] is False
        assert _files(tmp_path / "data") == []
        assert not [f for f in client.get("/health").json()["faults"] if f.startswith("watcher ")]
    finally:
        st.close()


def test_the_cap_on_watchers_holds_when_heartbeats_come_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(watchers, "MAX_HEARTBEATS", 8)
    data = tmp_path / "data"
    replace = os.replace

    def slow_replace(src, dst, *args, **kwargs):
        # a busy disk: the write takes a while, time for other heartbeats to count the files
        if str(dst).startswith(str(data)):
            time.sleep(0.01)
        return replace(src, dst, *args, **kwargs)
    monkeypatch.setattr(watchers.os, "replace", slow_replace)
    start = threading.Barrier(16)

    def post(i: int) -> str:
        if i < 16:
            start.wait()
        try:
            watchers.store_heartbeat(data, _beat(time.time(), folder=f"/cam/in{i}"))
            return "kept"
        except watchers.TooManyWatchers:
            return "refused"
    with ThreadPoolExecutor(16) as pool:
        said = list(pool.map(post, range(64)))
    assert len(_files(data)) == 8 and said.count("kept") == 8 and said.count("refused") == 56

