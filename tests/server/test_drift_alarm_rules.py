"""A station's own score-drift setting (``drift_parts``) through the alarm rules API: stored,
listed, counted by, and a value out of range refused with a sentence that says the range."""
from __future__ import annotations

from lineguard.line.auth import create_key

from .test_alarms import OK, _parts, _station
from .test_spc_api import client


def _engineer(st):
    with st.db.session() as s:
        return {"X-API-Key": create_key(s, "engineer", name="engineer-key")[1]}


def test_a_stations_drift_group_size_round_trips_through_the_rules_api(spc_station):
    st = _station(spc_station)
    keys = _engineer(st)
    _parts(st, OK)
    with client(st) as c:
        defaults = c.get("/api/v1/alarms/rules").json()["defaults"]
        assert (defaults["drift_parts"], defaults["drift_baseline_parts"]) == (100, 500)    # on by default
        r = c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S1", "drift_parts": 250}, headers=keys)
        assert r.status_code == 200, r.text
        assert r.json()["own"] == {"drift_parts": 250}
        assert (r.json()["rules"]["drift_parts"], r.json()["rules"]["drift_baseline_parts"]) == (250, 1250)
        (listed,) = c.get("/api/v1/alarms/rules").json()["stations"]
        assert listed["own"] == {"drift_parts": 250} and listed["rules"]["drift_parts"] == 250
        assert st.alarms.rules_for("L1", "S1").drift_parts == 250
        # off for this station alone
        r = c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S1", "drift_parts": 0}, headers=keys)
        assert r.status_code == 200 and r.json()["rules"]["drift_baseline_parts"] is None
        assert "drift" not in st.alarms.rules_for("L1", "S1").active_kinds
        # too few parts to tell a drift from chance, or not a whole number: refused, nothing changed
        for bad in (5, 10_001, -1):
            r = c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S1", "drift_parts": bad}, headers=keys)
            assert r.status_code == 422, (bad, r.text)
            assert "the score-drift alarm compares groups of 20 to 10000 parts (0: off)" in r.json()["detail"]
        assert c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S1", "drift_parts": "200"},
                     headers=keys).status_code == 422
        assert c.get("/api/v1/alarms/rules").json()["stations"][0]["own"] == {"drift_parts": 0}
