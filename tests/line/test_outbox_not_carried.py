"""Rows a sink does not carry, and the retained alarm state's ids. A webhook is not posted
the alarm states written again for MQTT's retained messages (event alarm_state), yet the
outbox counted each such row delivered to it (a station restarted with no part sent showed
the webhook at delivered: 1 while its receiver got nothing) and, while the receiver was
down, as a result message owed. The retained .../alarm_state carried no message_id or
outbox_id, which the README promises of each message. Real local webhook receivers and the
real mosquitto broker on 1883 (topics under fix6/, lines named fix6-...)."""
from __future__ import annotations

import contextlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from lineguard.line.orm import OutboxDelivery, OutboxEvent
from lineguard.line.sinks import MqttSink, WebhookSink
from lineguard.line.station import Part

from .conftest import png_bytes, until
from .test_sinks import _broker_up


class _Mes(BaseHTTPRequestHandler):
    """A plant system's webhook: answers ``server.code``; what it took (2xx) in ``server.took``."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.server.lock:
            if self.server.code < 300:
                self.server.took.append(body)
        self.send_response(self.server.code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def mes():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Mes)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.code, srv.took = 204, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/fix6-hook"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()      # left listening, a station torn down after it waits out a webhook timeout


def _station(tmp_path, sinks, **kw):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station

    from .conftest import FakeInspector
    st = Station(StationConfig(data_dir=tmp_path / "data", alarm_ng_run=2, alarm_ng_rate=0, **kw),
                 loader=FakeInspector.load, trainer=FakeInspector.fit, sinks=sinks)
    if not st.models.list("cell"):
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    return st


def _marks(st, key: str) -> dict[str, list[str]]:
    """Each outbox event's marks for sink ``key`` (its status per row), by event."""
    with st.db.session() as s:
        rows = s.execute(select(OutboxEvent.event, OutboxDelivery.status)
                         .join(OutboxDelivery, OutboxDelivery.outbox_id == OutboxEvent.id)
                         .where(OutboxDelivery.sink == key).order_by(OutboxEvent.id)).all()
    out: dict[str, list[str]] = {}
    for event, status in rows:
        out.setdefault(event, []).append(status)
    return out


@contextlib.contextmanager
def _retained(topic: str):
    """What an andon board subscribing to ``topic`` is given: (topic, message, retained) as they come."""
    import paho.mqtt.client as mqtt
    got: list = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload), m.retain)) if m.payload else None
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    try:
        yield got
    finally:
        sub.loop_stop()
        sub.disconnect()


def _forget(topics) -> None:
    import paho.mqtt.publish as publish
    for topic in topics:        # the broker forgets the retained states this test left
        publish.single(topic, payload=None, retain=True, hostname="127.0.0.1", port=1883)


def test_a_station_restarted_with_no_parts_counts_nothing_delivered_to_its_webhook(tmp_path, mes):
    """The walk: a station with a webhook and MQTT restarted, no part sent: /health showed
    the webhook at delivered: 1 (the alarm state written again for the broker) while the
    plant system got nothing."""
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    prefix, line = f"fix6/{uuid.uuid4().hex[:8]}", f"fix6-{uuid.uuid4().hex[:6]}"
    state = f"{prefix}/{line}/S1/alarm_state"
    first_mqtt = MqttSink("mqtt://127.0.0.1:1883", topic_prefix=prefix)
    st = _station(tmp_path, [WebhookSink(mes.url, timeout_s=5, retries=0), first_mqtt])
    try:
        until(first_mqtt._client.is_connected, "the station's connection to the broker", 10)
        for i in range(2):          # two NG parts in a row: an alarm the station keeps retained
            st.inspect(png_bytes(230, seed=60 + i), Part(f"fix6-ng-{i}", line, "S1", "cell"))
        assert st.sinks.flush(10), st.sinks.status()
    finally:
        st.close()
    took_before = len(mes.took)
    _forget([state])            # a broker restarted without persistence: the station says it again
    webhook = WebhookSink(mes.url, timeout_s=5, retries=0)
    st = _station(tmp_path, [webhook, MqttSink("mqtt://127.0.0.1:1883", topic_prefix=prefix)])
    try:
        with _retained(state) as got:       # an andon board: given the state once the station connected
            (_, restored, _), = until(lambda: [g for g in got if g[1]["change"] == "restored"],
                                      "the restored alarm state at the broker", 15)
        assert st.sinks.flush(10), st.sinks.status()
        assert len(mes.took) == took_before, mes.took[took_before:]      # nothing posted to the plant system
        shown = st.sinks.status()[webhook.label]
        assert (shown["delivered"], shown["backlog"], shown["refused"]) == (0, 0, 0), shown
        # in the database too: each such row is done for the webhook, and not as delivered
        # (its mark may come a moment after the broker had the state: waited for, under load it did)
        marks = until(lambda: _marks(st, webhook.key).get("alarm_state"), "the webhook's mark of the state row", 10)
        assert set(marks) == {"skipped"}, marks
        # the retained state carries the ids of the row that carried it, as every message does
        with st.db.session() as s:
            row = s.scalars(select(OutboxEvent).where(OutboxEvent.event == "alarm_state")
                            .order_by(OutboxEvent.id.desc()).limit(1)).one()
        assert (restored["message_id"], restored["outbox_id"]) == (row.key, row.id), restored
    finally:
        st.close()
        _forget([state])


def test_a_webhook_down_owes_only_the_messages_it_will_be_posted(tmp_path, mes):
    """While the plant system answered 503, /health said "21 result message(s) not
    delivered", one of them an alarm state it is never posted; once back, it takes every
    result in order and no line waits on such a row."""
    mes.code = 503
    webhook = WebhookSink(mes.url, timeout_s=5, retries=0)
    st = _station(tmp_path, [webhook])
    try:
        for i in range(2):
            st.inspect(png_bytes(230, seed=70 + i), Part(f"fix6-ng-{i}", "fix6-L1", "S1", "cell"))
        assert st.alarms.record_states() == 1       # as after MQTT's (re)connection
        st.inspect(png_bytes(30, seed=72), Part("fix6-ok-3", "fix6-L1", "S1", "cell"))
        with st.db.session() as s:
            events = list(s.scalars(select(OutboxEvent.event).order_by(OutboxEvent.id)))
        posted = [e for e in events if e != "alarm_state"]
        assert "alarm_state" in events and len(posted) == len(events) - 1, events
        until(lambda: st.sinks.status()[webhook.label]["last_error"], "a failed try to the plant system")
        shown = st.sinks.status()[webhook.label]
        assert shown["backlog"] == len(posted), (shown, events)
        mes.code = 204              # the plant system back
        assert st.sinks.flush(15), st.sinks.status()
        # every message but the alarm state (lines apart may come in either order)
        assert sorted(m["event"] for m in mes.took) == sorted(posted)
        assert [m["part_id"] for m in mes.took if m["event"] == "inspection"] == [
            "fix6-ng-0", "fix6-ng-1", "fix6-ok-3"]
        shown = st.sinks.status()[webhook.label]
        assert (shown["delivered"], shown["backlog"]) == (len(posted), 0), shown
    finally:
        st.close()


def test_the_retained_state_sent_with_an_alarm_carries_its_own_message_id_and_the_outbox_id(tmp_path):
    """A consumer that keeps the message ids it has seen, across topics, must not take the
    state for the alarm seen already: its id is its own, the same each time the row goes."""
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    prefix, line = f"fix6/{uuid.uuid4().hex[:8]}", f"fix6-{uuid.uuid4().hex[:6]}"
    state = f"{prefix}/{line}/S1/alarm_state"
    sink = MqttSink("mqtt://127.0.0.1:1883", topic_prefix=prefix)
    st = _station(tmp_path, [sink])
    try:
        with _retained(f"{prefix}/{line}/S1/#") as got:
            until(sink._client.is_connected, "the station's connection to the broker", 10)
            for i in range(2):
                st.inspect(png_bytes(230, seed=80 + i), Part(f"fix6-ng-{i}", line, "S1", "cell"))
            assert st.sinks.flush(10), st.sinks.status()
            until(lambda: {t.rsplit("/", 1)[1] for t, _, _ in got} >= {"alarm", "alarm_state"},
                  "the alarm and its retained state at the board", 10)
        (alarm,) = [m for t, m, _ in got if t.endswith("/alarm")]
        (shown,) = [m for t, m, _ in got if t == state]
        assert shown["outbox_id"] == alarm["outbox_id"] and isinstance(shown["outbox_id"], int), (shown, alarm)
        assert shown["message_id"] and shown["message_id"] != alarm["message_id"], (shown, alarm)
        assert uuid.UUID(shown["message_id"])
        # the row sent again (a delivery not acknowledged in time): the same state, the same id
        with st.db.session() as s:
            row = s.scalars(select(OutboxEvent).where(OutboxEvent.event == "alarm")).one()
        sink.send({**row.payload, "outbox_id": row.id})     # acknowledged: the broker keeps this one now
        with _retained(state) as again:
            (_, kept, retained), = until(lambda: list(again), "the state sent again, kept by the broker", 10)
        assert retained and kept["message_id"] == shown["message_id"], (kept, shown)
    finally:
        st.close()
        _forget([state])
