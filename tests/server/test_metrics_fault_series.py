"""/metrics' fault series (lineguard_station_fault) stay bounded.

Every fault name ever seen kept its series at 0 for good: anyone with an operator key could
post a hot-folder heartbeat "behind" under a new line name, let /metrics be scraped, then a
clean stop, and repeat; 2000 rounds grew /metrics from 5 KB to 480 KB, never shrinking. The
station's own faults (disk, database, PLC...) keep their series at 0 (an alert on them
resolves); a watcher's, or any other name, goes once Prometheus has seen it at 0 for a while.
"""
from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient

from lineguard.line import metrics as metrics_mod
from lineguard.line.metrics import StationMetrics

from .fake_inspector import FakeInspector

HEARTBEAT = "/api/v1/watchers/heartbeat"


def _series(text: str) -> dict[str, float]:
    """fault -> value of each lineguard_station_fault series in a /metrics text."""
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^lineguard_station_fault\{fault="([^"]*)"\} (\S+)$', text, re.M)}


def _beat(line: str, **over):
    return {"line": line, "station": "S1", "host": "junk-pc", "folder": "/in", "pid": 5, "running": True,
            "every_s": 5.0, "waiting": 9, "oldest_wait_s": 40.0, "behind": True, "sent": time.time(), **over}


def test_watcher_faults_posted_under_new_names_leave_metrics_once_cleared(tmp_path, monkeypatch):
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    monkeypatch.setattr(metrics_mod, "FAULT_CLEARED_KEPT_S", 0.0, raising=False)   # the scrapes alone decide
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)
    try:
        with st.db.session() as s:
            _row, key = create_key(s, "operator", "a key holder", by="test")
        client = TestClient(create_app(station=st), headers={"X-API-Key": key})
        before = len(client.get("/metrics").content)
        for i in range(40):
            assert client.post(HEARTBEAT, json=_beat(f"junk-{i}")).status_code == 200
            assert _series(client.get("/metrics").text)[f"watcher junk-{i}/S1"] == 1
            assert client.post(HEARTBEAT, json=_beat(f"junk-{i}", running=False)).json()["kept"] is False
            # just cleared: said at 0, so an alert on it resolves
            assert _series(client.get("/metrics").text)[f"watcher junk-{i}/S1"] == 0
        for _ in range(getattr(metrics_mod, "FAULT_CLEARED_SCRAPES", 3)):
            text = client.get("/metrics").text
        assert not [name for name in _series(text) if name.startswith("watcher ")], _series(text)
        assert len(text.encode()) < before + 2000             # 40 rounds left nothing behind
    finally:
        st.close()


def test_the_stations_own_faults_stay_at_zero_others_go_after_their_time_and_scrapes():
    m = StationMetrics()
    m.set_faults({"disk": "full", "plc-modbus": "no link", "watcher L1/S1": "behind", "model cell/L1 v2": "lost"},
                 now=1000.0)
    assert _series(m.render().decode()) == {"disk": 1, "plc-modbus": 1, "watcher L1/S1": 1, "model cell/L1 v2": 1}
    m.set_faults({}, now=1001.0)                               # all cleared
    for t in (1002.0, 1003.0, 1004.0, 1100.0):                 # many scrapes, too soon: kept at 0
        assert _series(m.render().decode()) == {"disk": 0, "plc-modbus": 0, "watcher L1/S1": 0,
                                                "model cell/L1 v2": 0}
        m.set_faults({}, now=t)
    m.set_faults({}, now=1001.0 + metrics_mod.FAULT_CLEARED_KEPT_S)
    assert _series(m.render().decode()) == {"disk": 0, "plc-modbus": 0}
    # back again: 1, and a fresh time at 0 once it clears
    m.set_faults({"watcher L1/S1": "behind"}, now=5000.0)
    m.set_faults({}, now=5001.0)
    assert _series(m.render().decode())["watcher L1/S1"] == 0


def test_fault_series_have_a_hard_cap_standing_ones_past_it_counted_in_one(monkeypatch):
    monkeypatch.setattr(metrics_mod, "MAX_FAULT_SERIES", 5)
    m = StationMetrics()
    standing = {f"watcher L{i}/S1": "behind" for i in range(8)}
    m.set_faults({"database": "down", **standing}, now=0.0)
    got = _series(m.render().decode())
    assert got.pop("database") == 1                            # the station's own are not counted in the cap
    assert len(got) == 5 and got[metrics_mod.MORE_FAULTS] == 4, got
    assert sum(1 for name, v in got.items() if name.startswith("watcher ") and v == 1) == 4
    # 3 still stand: the 4th and the count cleared, at 0 (the others never had a series)
    m.set_faults({name: "behind" for name in list(standing)[:3]}, now=1.0)
    got = _series(m.render().decode())
    got.pop("database")
    assert len(got) == 5 and sorted(got.values()) == [0, 0, 1, 1, 1], got
    # never more than the cap however many names come and go
    for i in range(100):
        m.set_faults({f"watcher junk-{i}/S1": "behind"}, now=2.0 + i)
        assert len(_series(m.render().decode())) <= 5 + 1
