"""The outbox: results that are never lost, against real receivers on loopback.

Brokers here are our own ``mosquitto`` processes on free ports (never the shared one on
1883), so they can be stopped and started; the webhook receiver is a local HTTP server
that fails on demand.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lineguard.line.sinks import MqttSink, WebhookSink
from lineguard.line.station import Part

from .conftest import png_bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Receiver:
    """A webhook receiver that honours the idempotency key, and can be told to fail."""

    def __init__(self, port: int = 0):
        self.raw: list[dict] = []          # every POST that was answered 2xx
        self.headers: list[str] = []
        self.failing_lines: set[str] = set()
        self.fail_all = False
        self.fail_after_accept = 0         # accept, then answer 503: the sender must send again
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if rec.fail_all or body.get("line") in rec.failing_lines:
                    self.send_response(503)
                    self.end_headers()
                    return
                rec.raw.append(body)
                rec.headers.append(self.headers.get("Idempotency-Key", ""))
                if rec.fail_after_accept > 0:
                    rec.fail_after_accept -= 1
                    self.send_response(503)
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.port = self.srv.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def unique(self, event: str = "inspection") -> list[dict]:
        """What a consumer acting once per idempotency key acts on, in arrival order."""
        seen, out = set(), []
        for m in self.raw:
            if m["message_id"] not in seen:
                seen.add(m["message_id"])
                if m["event"] == event:
                    out.append(m)
        return out

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_webhook_receiver_that_fails_then_recovers_gets_every_part_in_order_per_line(station_factory, receiver):
    sink = WebhookSink(receiver.url, timeout_s=2, retries=0)
    st = station_factory(sinks=[sink])
    st.add_model(__import__("fake_inspector").FakeInspector(0.5).to_bytes(), "cell", activate=True)
    receiver.failing_lines = {"LA"}
    for i in range(4):
        st.inspect(png_bytes(30 + i, seed=100 + i), Part(f"a-{i}", "LA", "S1", "cell"))
        st.inspect(png_bytes(30 + i, seed=200 + i), Part(f"b-{i}", "LB", "S1", "cell"))
    # line LB flows while the receiver refuses line LA; LA waits, none of it lost
    assert _wait(lambda: len(receiver.unique()) == 4, 15)
    assert [m["part_id"] for m in receiver.unique()] == ["b-0", "b-1", "b-2", "b-3"]
    key = sink.label
    # (b-3 may be received and not yet marked delivered for a moment)
    assert _wait(lambda: st.sinks.status()[key]["backlog"] == 4, 10), st.sinks.status()
    status = st.sinks.status()[key]
    assert status["state"] == "retrying" and "503" in status["last_error"]
    receiver.failing_lines = set()
    assert st.sinks.flush(20)
    got = receiver.unique()
    assert [m["part_id"] for m in got if m["line"] == "LA"] == ["a-0", "a-1", "a-2", "a-3"]
    assert [m["part_id"] for m in got if m["line"] == "LB"] == ["b-0", "b-1", "b-2", "b-3"]
    # the idempotency key is in the body and the header, one per message
    assert receiver.headers == [m["message_id"] for m in receiver.raw]
    assert len({m["message_id"] for m in got}) == 8
    assert st.sinks.status()[key]["state"] == "ok"


def test_a_line_that_owes_a_whole_batch_does_not_hold_the_other_lines(station_factory, receiver):
    """Once a failing line owed a batch's worth of rows (200), every batch read was that
    line's rows, all skipped: no other line's result, alarm or escalation went out, for
    every line of the plant, while /health said ok."""
    st = station_factory(sinks=[WebhookSink(receiver.url, timeout_s=2, retries=0)])
    st.add_model(__import__("fake_inspector").FakeInspector(0.5).to_bytes(), "cell", activate=True)
    assert st.sinks.flush(10)                         # the model change's message out of the way
    st.sinks.batch = 3                                # a batch is 3 rows: LA owes more than one
    receiver.failing_lines = {"LA"}
    for i in range(5):
        st.inspect(png_bytes(30 + i, seed=300 + i), Part(f"a-{i}", "LA", "S1", "cell"))
    for i in range(3):
        st.inspect(png_bytes(30 + i, seed=400 + i), Part(f"b-{i}", "LB", "S1", "cell"))
    assert _wait(lambda: len(receiver.unique()) == 3, 15), receiver.unique()
    assert [m["part_id"] for m in receiver.unique()] == ["b-0", "b-1", "b-2"]
    receiver.failing_lines = set()
    assert st.sinks.flush(30)
    assert [m["part_id"] for m in receiver.unique() if m["line"] == "LA"] == [f"a-{i}" for i in range(5)]


class _DownOnce:
    """A receiver whose first delivery fails (connection refused), then takes everything."""
    key = "down-once"

    def __init__(self):
        self.got: list[dict] = []
        self.failed = False

    def send(self, message: dict) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("receiver down")
        self.got.append(message)

    def close(self) -> None:
        pass


class _HeldMetrics:
    """The station's metrics, except that counting a delivery waits until ``release``: it holds
    the sender between marking its last row delivered and ending its batch."""

    def __init__(self, metrics):
        self._metrics = metrics
        self.release = threading.Event()
        held = self

        class _Counter:
            def labels(self, *a):
                return self

            def inc(self, *a):
                held.release.wait(20)

        self.outbox_delivered = _Counter()

    def __getattr__(self, name):
        return getattr(self._metrics, name)


def test_a_sink_that_recovered_reads_ok_as_soon_as_nothing_is_owed(station_factory):
    # CI once saw flush() return with the sink still "retrying": the sender clears its failing
    # state when the batch ends, a moment after the last row is marked delivered.
    sink = _DownOnce()
    st = station_factory(sinks=[sink])
    held = st.sinks.metrics = _HeldMetrics(st.sinks.metrics)
    try:
        st.add_model(__import__("fake_inspector").FakeInspector(0.5).to_bytes(), "cell", activate=True)
        assert st.sinks.flush(20)
        assert sink.failed and len(sink.got) == 1
        status = st.sinks.status()["down-once"]
        assert (status["state"], status["backlog"], status["failing_for_s"]) == ("ok", 0, None)
    finally:
        held.release.set()


def test_a_message_sent_twice_is_acted_on_once_by_its_key(sqlite_station, receiver):
    # The receiver takes the message but its answer is lost (503 after accepting): the
    # outbox must send it again, and the key lets the consumer drop the second copy.
    receiver.fail_after_accept = 2
    st = sqlite_station(sinks=[WebhookSink(receiver.url, timeout_s=2, retries=0)])
    for i in range(3):
        st.inspect(png_bytes(40 + i, seed=300 + i), Part(f"d-{i}", "L1", "S1", "cell"))
    assert st.sinks.flush(20)
    ids = [m["message_id"] for m in receiver.raw]
    assert len(ids) > len(set(ids))                       # at least once: something came twice
    assert [m["part_id"] for m in receiver.unique()] == ["d-0", "d-1", "d-2"]   # exactly once by key


def test_reviews_and_model_changes_go_out_with_their_records(sqlite_station, receiver):
    from fake_inspector import FakeInspector
    st = sqlite_station(sinks=[WebhookSink(receiver.url, timeout_s=2, retries=0)])
    rec = st.inspect(png_bytes(230, seed=7), Part("r-1", "L1", "S1", "cell")).record
    st.review(rec.id, "good", "ann", "dust on the lens")
    st.add_model(FakeInspector(0.6, "v-b").to_bytes(), "cell", activate=True)
    st.rollback_model("cell", "")
    assert st.sinks.flush(15)
    assert [m["part_id"] for m in receiver.unique()] == ["r-1"]
    # the station's first model, the new one, then the rollback to the first
    assert [(m["action"], m["product"], m["version"]) for m in receiver.unique(event="model")] == [
        ("activated", "cell", 1), ("activated", "cell", 2), ("activated", "cell", 1)]
    review = receiver.unique(event="review")
    assert [(m["id"], m["review"]["label"], m["review"]["reviewer"]) for m in review] == [(rec.id, "good", "ann")]


def test_a_part_sent_again_is_not_signalled_again(sqlite_station, receiver):
    st = sqlite_station(sinks=[WebhookSink(receiver.url, timeout_s=2, retries=0)])
    img = png_bytes(60, seed=9)
    assert st.inspect(img, Part("same", "L1", "S1", "cell")).created
    assert not st.inspect(img, Part("same", "L1", "S1", "cell")).created
    assert st.sinks.flush(10)
    assert [m["part_id"] for m in receiver.raw if m["event"] == "inspection"] == ["same"]


def test_delivered_rows_are_pruned_after_retention_owed_rows_never(sqlite_station, receiver):
    from sqlalchemy import func, select
    from lineguard.line.orm import OutboxEvent
    st = sqlite_station(sinks=[WebhookSink(receiver.url, timeout_s=2, retries=0)])
    st.inspect(png_bytes(50, seed=11), Part("p-1", "L1", "S1", "cell"))
    assert st.sinks.flush(10)
    receiver.fail_all = True
    st.inspect(png_bytes(51, seed=12), Part("p-2", "L1", "S1", "cell"))
    later = dt.datetime.utcnow() + dt.timedelta(hours=st.config.outbox_retention_h + 1)
    assert st.sinks.prune(now=later) >= 1
    with st.db.session() as s:
        left = list(s.scalars(select(OutboxEvent.payload)))
    assert [p.get("part_id") for p in left] == ["p-2"]    # the undelivered part survives any age
    receiver.fail_all = False
    assert st.sinks.flush(15)
    assert [m["part_id"] for m in receiver.unique()] == ["p-1", "p-2"]
    assert st.sinks.prune(now=later + dt.timedelta(hours=1)) == 1
    with st.db.session() as s:
        assert s.scalar(select(func.count(OutboxEvent.id))) == 0


def test_another_process_on_the_database_keeps_the_rows_a_sink_of_the_station_owes(sqlite_station, receiver):
    """A hot folder's watcher (no sinks) on the station's database pruned the results the
    station's webhook, down for a weekend, still owed: lost, and /health said ok."""
    from sqlalchemy import select

    from lineguard.line.orm import OutboxEvent
    from lineguard.line.outbox import OTHER_SINKS_KEPT_S, Outbox
    receiver.fail_all = True
    st = sqlite_station(sinks=[WebhookSink(receiver.url, timeout_s=2, retries=0)])
    st.inspect(png_bytes(50, seed=21), Part("w-1", "L1", "S1", "cell"))
    watcher = Outbox(st.db, [])                           # the other process: no sinks of its own
    try:
        later = dt.datetime.utcnow() + dt.timedelta(hours=st.config.outbox_retention_h + 48)
        watcher.prune(now=later)
        with st.db.session() as s:
            assert "w-1" in [p.get("part_id") for p in s.scalars(select(OutboxEvent.payload))]
        # a sink no process has used for longer holds nothing for ever
        gone = later + dt.timedelta(seconds=OTHER_SINKS_KEPT_S)
        assert watcher.prune(now=gone) >= 1
    finally:
        watcher.close()


# -- MQTT across a broker outage --------------------------------------------------------

class Broker:
    """Our own mosquitto on a free port, with persistence, so it can be stopped and started."""

    def __init__(self, tmp_path):
        if shutil.which("mosquitto") is None:
            pytest.skip("mosquitto is not installed (run `make services`)")
        self.port = _free_port()
        self.dir = tmp_path / f"mosq-{self.port}"
        self.dir.mkdir()
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {self.dir}/\nautosave_interval 1\n")
        self.proc = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        assert _wait(up, 10), "mosquitto did not start"
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()       # SIGTERM: mosquitto saves its sessions first
            self.proc.wait(timeout=10)
        self.proc = None


class Subscriber:
    """A persistent-session subscriber: messages published while it is away are kept for it."""

    def __init__(self, port: int, topic: str):
        import paho.mqtt.client as mqtt
        self.got: list[dict] = []
        self.subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}",
                             clean_session=False)
        self.c.on_message = lambda c, u, m: self.got.append(json.loads(m.payload))
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.c.reconnect_delay_set(0.2, 0.5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.subscribed.wait(10)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_mqtt_results_survive_a_broker_outage(sqlite_station, tmp_path):
    broker = Broker(tmp_path).start()
    sub = Subscriber(broker.port, "lineguard/+/+/result")
    try:
        broker.stop()   # the subscriber's session is saved; now the station has no broker at all
        st = sqlite_station(sinks=[MqttSink(f"mqtt://127.0.0.1:{broker.port}")])
        for i in range(3):
            st.inspect(png_bytes(30 + 90 * i, seed=400 + i), Part(f"q-{i}", "LQ", "S1", "cell"))
        st.inspect(png_bytes(35, seed=410), Part("r-0", "LR", "S1", "cell"))
        time.sleep(1.0)
        status = st.sinks.status()[f"mqtt:127.0.0.1:{broker.port}"]
        assert status["backlog"] >= 4 and status["state"] == "retrying"
        assert not sub.got
        broker.start()
        assert st.sinks.flush(45), st.sinks.status()
        assert _wait(lambda: len({m["message_id"] for m in sub.got}) >= 4, 20)
    finally:
        sub.close()
        broker.stop()
    unique = list({m["message_id"]: m for m in sub.got}.values())
    assert [m["part_id"] for m in unique if m["line"] == "LQ"] == ["q-0", "q-1", "q-2"]
    assert [m["part_id"] for m in unique if m["line"] == "LR"] == ["r-0"]
    assert all(m["event"] == "inspection" and m["outbox_id"] > 0 for m in unique)


def test_a_delivery_not_marked_for_a_moment_does_not_end_the_worker(sqlite_station, monkeypatch):
    """The database away for the moment a delivered row was marked: the worker thread died
    (min() of no held lines), and nothing more reached that receiver until a restart."""
    from lineguard.line.outbox import Outbox, record_event

    class Sink:
        key = "marks"

        def __init__(self):
            self.got = []

        def send(self, message):
            self.got.append(message["n"])

        def close(self):
            pass

    st = sqlite_station()
    sink = Sink()
    box = Outbox(st.db, [sink], poll_s=0.05)
    real = box._mark
    fails = {"left": 1}

    def flaky(state, row_id, status, error):
        if fails["left"]:
            fails["left"] -= 1
            raise RuntimeError("server closed the connection unexpectedly")
        return real(state, row_id, status, error)

    monkeypatch.setattr(box, "_mark", flaky)
    try:
        with st.db.session() as s:
            record_event(s, "inspection", "L1", {"line": "L1", "n": 1})
        box.wake()
        assert _wait(lambda: fails["left"] == 0, 10)
        with st.db.session() as s:
            for n in (2, 3, 4):
                record_event(s, "inspection", "L1", {"line": "L1", "n": n})
        box.wake()
        assert box.flush(15), box.status()
        assert sorted(set(sink.got)) == [1, 2, 3, 4] and all(t.is_alive() for t in box._threads[:1])
    finally:
        box.close()
