"""/health's status for a plant monitor and a load balancer: a fault of the station's
housekeeping alone leaves the line running (degraded, 200); one that stops parts is a 503;
/metrics shows each fault while it stands."""
from __future__ import annotations

import pytest

from .test_spc_api import client


@pytest.mark.parametrize("fault, status, code", [
    ("backup", "degraded", 200), ("records", "degraded", 200), ("records_image", "degraded", 200),
    ("store_sweep", "degraded", 200), ("disk", "degraded", 200),
    ("plc", "fault", 503), ("camera", "fault", 503), ("database", "fault", 503)])
def test_health_says_whether_the_line_still_runs(spc_station, fault, status, code):
    st = spc_station()
    st.faults[fault] = "the database cannot be written (disk I/O error)" if fault == "database" else "what is wrong"
    with client(st) as c:
        h = c.get("/health")
        assert (h.status_code, h.json()["status"]) == (code, status) and fault in h.json()["faults"]
        assert f'lineguard_station_fault{{fault="{fault}"}} 1.0' in c.get("/metrics").text
        st.faults.pop(fault)
        h = c.get("/health")
        assert (h.status_code, h.json()["status"]) == (200, "ok")
        assert f'lineguard_station_fault{{fault="{fault}"}} 0.0' in c.get("/metrics").text


def test_a_database_reachable_again_clears_its_fault(spc_station):
    st = spc_station()
    st.faults["database"] = "the database is not reachable (OperationalError); check --db"
    with client(st) as c:
        h = c.get("/health")            # the probe reaches it: a drained station comes back
        assert (h.status_code, h.json()["status"], h.json()["faults"]) == (200, "ok", {})
