"""/health's status for a plant monitor and a load balancer: a fault of the station's
housekeeping alone leaves the line running (degraded, 200); one that stops parts is a 503;
/metrics shows each fault while it stands."""
from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
import time

import pytest
from sqlalchemy import event, select, text

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
@pytest.mark.one_database
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
            assert s.scalars(select(WriteCheck)).all() == []               # the probe's rows went again
            assert s.scalars(select(Inspection.part_id)).all() == []      # the refused part left no record
        # and the parts are stored again
        st.inspect(png_bytes(60, seed=2), Part(part_id="after", line="L1", station="S1", product="cell"))


def _a_part_and_an_operator(spc_station):
    """A station with one part recorded, and an operator's key header for its API."""
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    rec = st.inspect(png_bytes(60, seed=3), Part(part_id="p1", line="L1", station="S1", product="cell")).record
    with st.db.session() as s:
        key = {"X-API-Key": create_key(s, "operator", name="op")[1]}
    return st, rec, key


def test_a_request_the_database_refuses_is_a_503_to_send_again(spc_station):
    # not the 500 of the station's own failure: what it wrote was rolled back, the client may retry
    st, rec, key = _a_part_and_an_operator(spc_station)
    with client(st) as c:
        with _read_only(st):
            r = c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"}, headers=key)
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "storage_unavailable" and "try again" in err["message"]
            assert "INSERT" not in err["message"]
        with st.db.session() as s:
            assert s.get(Inspection, rec.id).reviewed is False
        assert c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"}, headers=key).status_code == 200


def _on_checkout(st, pragma):
    def run(dbapi_conn, _record, _proxy):
        cur = dbapi_conn.cursor()
        cur.execute(pragma(cur))
        cur.close()
    event.listen(st.db.engine, "checkout", run)
    return run


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_database_too_full_for_a_part_keeps_its_fault(spc_station):
    # a small row rewritten in place still goes through on a database too full for a part:
    # cleared on that, the station would go back into service to refuse the next parts
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.inspect(png_bytes(60, seed=4), Part(part_id="before", line="L1", station="S1", product="cell"))
    st.check_storage()
    full = _on_checkout(st, lambda cur: "PRAGMA max_page_count=%d" % cur.execute("PRAGMA page_count").fetchone()[0])
    def part(i):
        return st.inspect(png_bytes(60, seed=10 + i), Part(part_id=f"full-{i}", line="L1", station="S1",
                                                            product="cell"))
    with client(st) as c:
        i = 0
        with pytest.raises(StorageUnavailable, match="database or disk is full"):
            while i < 100:           # the last pages' room taken, then refused
                part(i)
                i += 1
        for j in range(3):           # each probe, each refused part: the fault stands
            h = c.get("/health")
            assert h.status_code == 503 and "database or disk is full" in h.json()["faults"]["database"], h.text
            with pytest.raises(StorageUnavailable, match="database or disk is full"):
                part(i + 1 + j)
            h = c.get("/health")
            assert h.status_code == 503 and "database or disk is full" in h.json()["faults"]["database"], h.text
        event.remove(st.db.engine, "checkout", full)
        _on_checkout(st, lambda cur: "PRAGMA max_page_count=1073741823")     # room again
        assert c.get("/health").status_code == 200
    st.inspect(png_bytes(60, seed=20), Part(part_id="after", line="L1", station="S1", product="cell"))


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_locked_database_s_probe_answers_without_waiting_a_part_s_wait(spc_station):
    st = spc_station()
    st.faults["database"] = "the database cannot be written (database is locked); ..."
    other = sqlite3.connect(st.config.sqlite_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")          # another writer holds the lock (a long VACUUM, a script)
    answers = []
    with client(st) as c:
        probe = threading.Thread(target=lambda: answers.append(c.get("/health")))
        probe.start()
        probe.join(timeout=20)                # a part waits 30 s for a lock; the probe 1 s
        assert not probe.is_alive() and answers[0].status_code == 503
        assert "database is locked" in answers[0].json()["faults"]["database"]
        other.execute("ROLLBACK")
        other.close()
        assert c.get("/health").status_code == 200


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_the_station_s_own_database_mistake_is_a_500_not_a_fault_to_wait_out(spc_station):
    # a table missing is no refusal to send again: hidden as a 503, it would never be fixed
    st, rec, key = _a_part_and_an_operator(spc_station)
    with st.db.session() as s:
        s.execute(text("ALTER TABLE reviews RENAME TO reviews_gone"))
    with client(st) as c:
        r = c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"}, headers=key)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
        assert "reviews" not in r.text                     # no SQL to the client
        assert c.get("/health").json()["status"] == "ok"


def test_a_station_that_wrote_nothing_for_a_while_proves_its_database_takes_writes(spc_station, monkeypatch):
    """A database turned read-only during a break (a failover to a standby): /health says
    so before the first part after the break is refused, not after."""
    import lineguard.line.station as station_module
    st = spc_station()
    with client(st) as c:
        with _read_only(st):
            assert c.get("/health").status_code == 200         # wrote a moment ago (started): not checked yet
            monkeypatch.setattr(station_module, "WRITE_CHECK_IDLE_S", 0.0)
            h = c.get("/health")
            assert h.status_code == 503 and "cannot be written" in h.json()["faults"]["database"]
        h = c.get("/health")
        assert (h.status_code, h.json()["faults"]) == (200, {})
        with st.db.session() as s:
            assert s.scalars(select(WriteCheck)).all() == []


def test_an_idle_write_check_that_meets_a_busy_database_is_no_fault(spc_station, monkeypatch, caplog):
    """Another writer held the lock past the check's 1 s wait (a deletion of old records,
    the hot folder's watcher): parts wait 30 s and are stored, so the station must not say
    its database refuses writes. And a check that fails for a reason of its own runs again
    only a minute later, not at every call."""
    import threading
    import lineguard.line.station as station_module
    st = spc_station()
    if st.db.engine.dialect.name != "sqlite":
        pytest.skip("the writer's lock is SQLite's here")
    monkeypatch.setattr(station_module, "WRITE_CHECK_IDLE_S", 0.0)
    held, release = threading.Event(), threading.Event()

    def other_writer():
        import sqlite3
        conn = sqlite3.connect(st.config.sqlite_path, timeout=5)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(10)
        conn.rollback()
        conn.close()
    t = threading.Thread(target=other_writer)
    t.start()
    try:
        assert held.wait(10)
        assert st.check_storage() == {}                  # busy: not proven either way, no fault
    finally:
        release.set()
        t.join()
    assert st.check_storage() == {}
    # a check failing for its own reason (its table gone): logged once a minute, not at each call
    with st.db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE write_checks")
    monkeypatch.setattr(station_module, "WRITE_CHECK_IDLE_S", 60.0)
    st._last_write -= 120
    for _ in range(3):
        st.check_storage()
    assert len([r for r in caplog.records if "write check failed" in r.getMessage()]) == 1


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_health_calls_do_not_write_to_the_data_disk_each_time(spc_station, monkeypatch):
    """/health and /metrics are open: each call wrote a 64 KiB probe file (200 calls from
    anyone on the network: 13 MiB on the line's disk). The image folder is probed at most
    every IMAGE_PROBE_EVERY_S while it works, and at every call while it has a fault."""
    import tempfile

    from lineguard.line import station as station_module
    st = spc_station()
    probes, disk = [], {"full": False}
    real = tempfile.NamedTemporaryFile

    def probe(*a, **kw):
        probes.append(kw.get("suffix"))
        if disk["full"]:
            raise OSError(28, "No space left on device")
        return real(*a, **kw)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", probe)
    for _ in range(20):
        assert st.check_storage() == {}
    assert probes.count(".probe") == 1
    disk["full"] = True                                    # found by a part's refusal meanwhile
    st.faults["images"] = "the data folder cannot be written"
    for _ in range(3):                                     # with a fault, every call looks again
        assert "images" in st.check_storage()
    assert probes.count(".probe") == 4
    disk["full"] = False
    assert st.check_storage() == {} and st.check_storage() == {}     # works again: cleared, then quiet
    assert probes.count(".probe") == 5
    monkeypatch.setattr(station_module, "IMAGE_PROBE_EVERY_S", 0.0)
    st.check_storage()
    assert probes.count(".probe") == 6


def test_a_sink_retrying_for_a_minute_makes_health_degraded(tmp_path, monkeypatch):
    """A webhook down all weekend: /health said "ok" (its sinks' states only in the body),
    so a plant monitor that reads the status never saw the MES getting no results."""
    from lineguard.line.config import StationConfig
    from lineguard.line.sinks import WebhookSink
    from lineguard.line.station import Station
    from lineguard.server.routers import system
    dead = WebhookSink("http://127.0.0.1:9/hook", timeout_s=0.5, retries=0, backoff_s=0.01)
    st = Station(StationConfig(data_dir=tmp_path / "data", timezone="UTC", open_reads=True),
                 loader=FakeInspector.load, sinks=[dead])
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        st.inspect(png_bytes(30, seed=1), Part("h-1", "L1", "S1", "cell"))
        with client(st) as c:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and c.get("/health").json()["sinks"][dead.label]["state"] != "retrying":
                time.sleep(0.05)
            monkeypatch.setattr(system, "SINK_LATE_S", 3600.0)     # a blip: not said
            h = c.get("/health")
            assert h.json()["sinks"][dead.label]["state"] == "retrying"
            assert (h.status_code, h.json()["status"], h.json()["faults"]) == (200, "ok", {})
            monkeypatch.setattr(system, "SINK_LATE_S", 0.0)        # retrying longer than the bound
            h = c.get("/health")
            assert (h.status_code, h.json()["status"]) == (200, "degraded"), h.json()
            said = h.json()["faults"][f"sink {dead.label}"]
            assert "result message(s) not delivered for" in said and "failed after 1 tries" in said, said
    finally:
        st.close()


def test_a_station_stopped_by_sigterm_closes_itself_and_exits_0(tmp_path):
    """uvicorn raised SIGTERM again after its shutdown: the process died before the station
    was closed (exit -15; maps in flight lost, the last parts left in lineguard.db-wal)."""
    import signal

    from .conftest import post_part, start_fake_station
    data = tmp_path / "data"
    srv = start_fake_station(data)
    try:
        with srv.client(srv.keys["operator"]) as c:
            for i in range(5):
                assert post_part(c, png_bytes(40 + i, seed=900 + i), f"t-{i}").status_code == 201
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=60) == 0, srv.log.read_text()[-2000:]
    finally:
        srv.stop()
    wal = data / "lineguard.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.one_database
def test_an_active_model_that_cannot_judge_parts_is_a_fault_from_the_start(spc_station):
    # a restore that lost or damaged the active version's file: every part is refused, and
    # /health said "ok" until then
    before = spc_station()
    before.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    with before.db.session() as s:
        key = create_key(s, "operator", "line")[1]
    (mv,) = [m for m in before.models.list() if m.active]
    path = before.models.store.path(mv.file_key)
    good = path.read_bytes()
    with client(before) as c:
        assert c.get("/health").json()["status"] == "ok"
    before.close()
    path.unlink()
    st = spc_station()                                     # started again on the folder
    with client(st) as c:
        h = c.get("/health")
        assert h.status_code == 503 and h.json()["status"] == "fault"
        assert "missing from the station's models folder" in h.json()["faults"]["model cell/* v1"]
        assert 'lineguard_station_fault{fault="model cell/* v1"} 1.0' in c.get("/metrics").text
        c.headers["X-API-Key"] = key
        assert "model cell/* v1" in c.get("/api/v1/lines/summary").json()["faults"]     # the line view's
        path.write_bytes(b"not a model")                   # damaged: found by the load
        assert list(st.load_active_models()) == ["cell/* v1"]      # as `serve` does at its start
        r = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=1), "image/png")},
                   data={"part_id": "P-1", "line": "L1", "station": "S1", "product": "cell"})
        assert r.status_code == 503
        h = c.get("/health")
        assert h.status_code == 503 and "failed to load" in h.json()["faults"]["model cell/* v1"]
        path.write_bytes(good)                             # put back: the next part loads it
        r = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=2), "image/png")},
                   data={"part_id": "P-2", "line": "L1", "station": "S1", "product": "cell"})
        assert r.status_code == 201, r.text
        h = c.get("/health")
        assert (h.status_code, h.json()["status"]) == (200, "ok")


@contextlib.contextmanager
def _receiver(code: list):
    """A local webhook receiver answering every POST with ``code[0]`` (changed by the
    test as it goes); the bodies it took (2xx) are in ``code[1:]``."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            if code[0] < 300:
                code.append(json.loads(body))
            self.send_response(code[0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    finally:
        srv.shutdown()
        srv.server_close()      # left listening, a station torn down after it waits out a webhook timeout


def test_messages_a_receiver_refuses_make_health_degraded(tmp_path):
    """A receiver refusing every message (400: a schema changed at the MES, a proxy): all
    were dropped for good, the backlog stayed 0 and /health said "ok"."""
    from lineguard.line.config import StationConfig
    from lineguard.line.sinks import WebhookSink
    from lineguard.line.station import Station, stops_parts
    answer = [400]
    with _receiver(answer) as url:
        sink = WebhookSink(url, timeout_s=5, retries=0)
        st = Station(StationConfig(data_dir=tmp_path / "data", timezone="UTC", open_reads=True),
                     loader=FakeInspector.load, sinks=[sink])
        try:
            st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
            st.inspect(png_bytes(30, seed=1), Part("h-1", "L1", "S1", "cell"))
            assert st.sinks.flush(10)
            with client(st) as c:
                h = c.get("/health")
                assert (h.status_code, h.json()["status"]) == (200, "degraded"), h.json()
                name = f"sink {sink.label} refused"
                said = h.json()["faults"][name]
                assert not stops_parts(name)
                assert said.startswith("2 message(s) refused") and "HTTP 400" in said and "kept" in said, said
                assert h.json()["sinks"][sink.label]["backlog"] == 0
                # the receiver fixed: an engineer sends them again, in order
                answer[0] = 200
                with st.db.session() as s:
                    key = create_key(s, "engineer", "eng")[1]
                r = c.post("/api/v1/sinks/resend-refused", params={"sink": "nosuch"}, headers={"X-API-Key": key})
                assert r.status_code == 404 and sink.label in r.text
                r = c.post("/api/v1/sinks/resend-refused", headers={"X-API-Key": key})
                assert r.status_code == 200 and r.json() == {"resent": 2}
                assert st.sinks.flush(10)
                assert [(m["event"], m["outbox_id"]) for m in answer[1:]] == [("model", 1), ("inspection", 2)]
                assert c.get("/health").json()["status"] == "ok"
        finally:
            st.close()


def test_a_sink_whose_oldest_message_is_late_makes_health_degraded_after_a_restart(tmp_path):
    """Degraded went by how long this process had been failing: a station restarted more
    often than once a minute never said it, however old the results it owed."""
    from lineguard.line.config import StationConfig
    from lineguard.line.orm import OutboxEvent
    from lineguard.line.sinks import WebhookSink
    from lineguard.line.station import Station
    cfg = StationConfig(data_dir=tmp_path / "data", timezone="UTC", open_reads=True)
    dead = WebhookSink("http://127.0.0.1:9/hook", timeout_s=0.5, retries=0, backoff_s=0.01)
    st = Station(cfg, loader=FakeInspector.load, sinks=[dead])
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        st.inspect(png_bytes(30, seed=1), Part("h-1", "L1", "S1", "cell"))
    finally:
        st.close()
    with st.db.session() as s:        # an hour of restarts later
        for row in s.scalars(select(OutboxEvent)):
            row.created_at = row.created_at - dt.timedelta(hours=1)
    dead = WebhookSink("http://127.0.0.1:9/hook", timeout_s=0.5, retries=0, backoff_s=0.01)
    st = Station(cfg, loader=FakeInspector.load, sinks=[dead])     # started again: failing for seconds
    try:
        with client(st) as c:
            h = c.get("/health")
            sink = h.json()["sinks"][dead.label]
            assert sink["backlog"] == 2 and (sink["failing_for_s"] or 0) < 60, sink
            assert (h.status_code, h.json()["status"]) == (200, "degraded"), h.json()
            said = h.json()["faults"][f"sink {dead.label}"]
            assert said.startswith("2 result message(s) not delivered for 36") and "the oldest owed" in said, said
    finally:
        st.close()
