"""A file the hot folder's watcher gives up (moved to failed/ after timing out on every try: a
part not inspected) reaches the station's /health, for a watcher with --data (its status file)
and one with --server (its heartbeat): before, only the watcher's own status file had it, the
heartbeat's schema dropped it, and a monitor polling /health never learned of it (helper C)."""
from __future__ import annotations

import json
import time

import httpx
from fastapi.testclient import TestClient

from lineguard.line.sources.folder import FolderWatcher

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


def test_a_file_given_up_by_a_local_watcher_is_on_health(tmp_path):
    from lineguard.server.app import create_app
    st, _key = _station(tmp_path)
    client = TestClient(create_app(station=st))
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(2):
        (inbox / f"K-{i:04d}.png").write_bytes(png_bytes(40, seed=i, size=32))

    def submit(data, part_id, name):
        if part_id == "K-0000":
            raise httpx.ReadTimeout("timed out")          # a model hanging on this photo
        return {"id": 1, "verdict": "OK"}
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.01, timeouts_max=1,
                      status_path=tmp_path / "data" / "watchers" / "L1-S1.json",
                      status_info={"line": "L1", "station": "S1", "product": "cell", "inspects": "here"})
    w._running = True
    for _ in range(3):
        w.poll_once()
    assert (inbox / "failed" / "K-0000.png").exists() and w.status()["given_up"] == 1
    w._write_status(time.monotonic(), force=True)
    r = client.get("/health")
    assert r.status_code == 200, r.text                      # housekeeping: the station judges parts
    body = r.json()
    assert body["status"] == "degraded", body
    fault = body["faults"]["watcher L1/S1 given up"]
    assert "1 file(s)" in fault and "K-0000.png" in fault and "failed/" in fault, fault
    [shown] = body["watchers"]
    assert shown["watcher"] == "L1/S1" and shown["given_up"] == 1 and shown["given_up_files"] == ["K-0000.png"]
    assert shown["given_up_last"] is not None and shown["via"] == "status file"
    # and on the operator app's line view (its summary's faults): /health had it, the app not
    summary = client.get("/api/v1/lines/summary", headers={"X-API-Key": _key})
    assert summary.status_code == 200, summary.text
    assert "K-0000.png" in summary.json()["faults"]["watcher L1/S1 given up"]


def test_a_file_given_up_by_a_server_watcher_is_kept_from_its_heartbeat_and_on_health(tmp_path):
    from lineguard.server.app import create_app
    st, key = _station(tmp_path)
    client = TestClient(create_app(station=st))
    now = time.time()
    beat = {"line": "L3", "station": "S3", "product": "cell", "host": "cam-pc", "folder": "/cam/in", "pid": 77,
            "running": True, "every_s": 5.0, "waiting": 0, "oldest_wait_s": 0.0, "behind": False,
            "station_taking_parts": True, "counts": {"done": 10, "failed": 1, "skipped": 0, "ignored": 0},
            "sent": now, "given_up": 2, "given_up_files": ["P-7.png", "P-9.png"], "given_up_last": now - 5}
    r = client.post(HEARTBEAT, json=beat, headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["kept"] is True, r.text
    [kept] = [json.loads(p.read_text()) for p in (tmp_path / "data" / "watchers").glob("heartbeat-*.json")]
    assert kept["given_up"] == 2 and kept["given_up_files"] == ["P-7.png", "P-9.png"], kept
    body = client.get("/health").json()
    fault = body["faults"]["watcher L3/S3 given up"]
    assert "2 file(s)" in fault and "P-9.png" in fault, fault
    assert body["watchers"][0]["given_up"] == 2 and body["watchers"][0]["via"] == "heartbeat"
    # an older watcher's heartbeat (no given_up at all) is still taken and reads as none given up
    old = {k: v for k, v in beat.items() if not k.startswith("given_up")}
    r = client.post(HEARTBEAT, json={**old, "sent": time.time()}, headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["kept"] is True, r.text
    body = client.get("/health").json()
    assert "watcher L3/S3 given up" not in body["faults"] and body["watchers"][0]["given_up"] == 0, body


def test_a_give_up_long_ago_is_no_fault_but_its_count_stays(tmp_path):
    from lineguard.line import watchers
    st = {"line": "L1", "station": "S1", "running": True, "updated": time.time(), "folder": "/in",
          "given_up": 1, "given_up_files": ["K-0000.png"], "given_up_last": time.time() - watchers.GIVEN_UP_SHOWN_S - 60}
    found = [(tmp_path / "L1-S1.json", st)]
    assert watchers.watcher_faults(found) == {}
    assert watchers.summaries(found)[0]["given_up"] == 1
