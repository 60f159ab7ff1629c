"""/health's status for a plant monitor and a load balancer: a fault of the station's
housekeeping alone leaves the line running (degraded, 200); one that stops parts is a 503;
/metrics shows each fault while it stands."""
from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import event, select

from lineguard.line.auth import create_key
from lineguard.line.errors import StorageUnavailable
from lineguard.line.orm import Inspection, WriteCheck
from lineguard.line.station import Part

from .conftest import png_bytes
from .fake_inspector import FakeInspector
from .test_spc_api import client


@pytest.mark.parametrize("fault, status, code", [
    ("backup", "degraded", 200), ("records", "degraded", 200), ("records_image", "degraded", 200),
    ("store_sweep", "degraded", 200), ("disk", "degraded", 200),
    ("plc", "fault", 503), ("camera", "fault", 503)])
def test_health_says_whether_the_line_still_runs(spc_station, fault, status, code):
    st = spc_station()
    st.faults[fault] = "what is wrong"
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


@contextlib.contextmanager
def _read_only(st):
    """The station's database refuses every write, as a full disk, a read-only file or a
    standby server after a failover would: each pooled connection is made read-only."""
    sqlite = st.db.engine.dialect.name == "sqlite"

    def set_mode(on: bool):
        def on_checkout(dbapi_conn, _record, _proxy):
            cur = dbapi_conn.cursor()
            if sqlite:
                cur.execute(f"PRAGMA query_only={int(on)}")
            else:                                # for the next transaction: commit the SET's own
                cur.execute(f"SET default_transaction_read_only = {'on' if on else 'off'}")
                dbapi_conn.commit()
            cur.close()
        return on_checkout

    refuse, allow = set_mode(True), set_mode(False)
    event.listen(st.db.engine, "checkout", refuse)
    try:
        yield
    finally:
        event.remove(st.db.engine, "checkout", refuse)
        event.listen(st.db.engine, "checkout", allow)     # the pooled connections are set back


def test_a_database_that_takes_writes_again_clears_its_fault_without_a_part(spc_station):
    # A load balancer drains a station on the 503 of a refused write; no part reaches it,
    # so only the probe's own write can show that the database is back.
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    with client(st) as c:
        with _read_only(st):
            with pytest.raises(StorageUnavailable, match="the database cannot be written"):
                st.inspect(png_bytes(60, seed=1), Part(part_id="refused", line="L1", station="S1", product="cell"))
            h = c.get("/health")                 # still refused: the fault stands
            assert h.status_code == 503 and "cannot be written" in h.json()["faults"]["database"]
            assert 'lineguard_station_fault{fault="database"} 1.0' in c.get("/metrics").text
        h = c.get("/health")
        assert (h.status_code, h.json()["status"], h.json()["faults"]) == (200, "ok", {})
        assert 'lineguard_station_fault{fault="database"} 0.0' in c.get("/metrics").text
        with st.db.session() as s:
            assert s.get(WriteCheck, 1) is not None
            assert s.scalars(select(Inspection.part_id)).all() == []      # the refused part left no record
        # and the parts are stored again
        st.inspect(png_bytes(60, seed=2), Part(part_id="after", line="L1", station="S1", product="cell"))


def test_a_request_the_database_refuses_is_a_503_to_send_again(spc_station):
    # not the 500 of the station's own failure: nothing was changed, the client may retry
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    rec = st.inspect(png_bytes(60, seed=3), Part(part_id="p1", line="L1", station="S1", product="cell")).record
    with st.db.session() as s:
        key = {"X-API-Key": create_key(s, "operator", name="op")[1]}
    with client(st) as c:
        with _read_only(st):
            r = c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"}, headers=key)
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "storage_unavailable" and "nothing was changed" in err["message"]
            assert "try again" in err["message"] and "INSERT" not in err["message"]
        with st.db.session() as s:
            assert s.get(Inspection, rec.id).reviewed is False
        assert c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"}, headers=key).status_code == 200
