"""Results out: MQTT against the real mosquitto broker, webhook against a local HTTP server."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lineguard.line.sinks import MqttSink, WebhookSink
from lineguard.line.station import Part

from .conftest import png_bytes


def _subscribed(line: str):
    """A real MQTT subscriber to every station's results of ``line``; yields the list of
    (topic, message, qos) it receives."""
    return subscribed_to(f"lineguard/{line}/+/result")


@contextmanager
def subscribed_to(pattern: str):
    """A real MQTT subscriber to ``pattern``; yields the list of (topic, message, qos) it receives."""
    import paho.mqtt.client as mqtt
    got: list[tuple[str, dict, int]] = []
    subscribed = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload), m.qos))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe(pattern, qos=1)
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        yield got
    finally:
        sub.loop_stop()
        sub.disconnect()


def _wait_for(got: list, n: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=2):
            return True
    except OSError:
        return False


def test_mqtt_result_per_line_and_station(sqlite_station):
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    line = f"L-{uuid.uuid4().hex[:6]}"
    with _subscribed(line) as got:
        st = sqlite_station(sinks=[MqttSink("mqtt://127.0.0.1:1883")])
        st.inspect(png_bytes(230, seed=1), Part("m-1", line, "S2", "cell"))
        st.inspect(png_bytes(30, seed=2), Part("m-2", line, "S2", "cell"))
        assert st.sinks.flush(10)
        _wait_for(got, 2)
    assert [(t, d["part_id"], d["verdict"], q) for t, d, q in got] == [
        (f"lineguard/{line}/S2/result", "m-1", "NG", 1), (f"lineguard/{line}/S2/result", "m-2", "OK", 1)]
    assert got[0][1]["event"] == "inspection" and got[0][1]["model"]["registry_version"] == 1


class _Hook(BaseHTTPRequestHandler):
    fail_first = 0
    refuse_first = 0
    received: list = []
    hold = None     # a threading.Event: each delivery waits for it (a receiver that hangs)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        cls = type(self)
        if cls.hold is not None:
            cls.hold.wait(60)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        if cls.refuse_first > 0:
            cls.refuse_first -= 1
            self.send_response(422)
            self.end_headers()
            return
        cls.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):  # silence
        pass


@pytest.fixture
def hook():
    handler = type("Hook", (_Hook,), {"fail_first": 0, "refuse_first": 0, "received": [], "hold": None})
    srv = HTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    handler.url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
    yield handler
    srv.shutdown()
    srv.server_close()      # left listening, a station torn down after it waits out a webhook timeout


def test_a_line_or_station_named_with_a_wildcard_is_published(sqlite_station):
    """"Press #2" or "Cam +1": paho refuses a topic with a wildcard, the outbox retried the
    line's messages for ever (and once it owed a batch, every line's)."""
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    line = f"Press #{uuid.uuid4().hex[:6]}"
    level = line.replace("#", "_")
    with _subscribed(level) as got:
        st = sqlite_station(sinks=[MqttSink("mqtt://127.0.0.1:1883")])
        st.inspect(png_bytes(230, seed=1), Part("w-1", line, "Cam +1", "cell"))
        assert st.sinks.flush(10), st.sinks.status()
        _wait_for(got, 1)
    assert [(t, d["line"], d["station"]) for t, d, _ in got] == [(f"lineguard/{level}/Cam _1/result", line, "Cam +1")]


def test_webhook_retries_with_backoff(sqlite_station, hook):
    hook.fail_first = 2
    st = sqlite_station(sinks=[WebhookSink(hook.url, timeout_s=2, retries=3, backoff_s=0.05)])
    st.inspect(png_bytes(230, seed=3), Part("w-1", "L1", "S1", "cell"))
    assert st.sinks.flush(10)
    assert [d["part_id"] for d in hook.received if d["event"] == "inspection"] == ["w-1"]


def test_a_message_the_receiver_refuses_is_counted_refused_not_delivered(sqlite_station, hook):
    hook.refuse_first = 1              # the model change's message: 422, refused for good
    st = sqlite_station(sinks=[WebhookSink(hook.url, timeout_s=2, retries=0)])
    st.inspect(png_bytes(230, seed=3), Part("r-1", "L1", "S1", "cell"))
    assert st.sinks.flush(10)
    (state,) = st.sinks.status().values()
    assert (state["delivered"], state["refused"]) == (1, 1), state
    import re
    metrics = st.metrics.render().decode()
    assert re.search(r'lineguard_outbox_delivered_total\{sink="webhook:127\.0\.0\.1:\d+ #[0-9a-f]{8}"\} 1\.0', metrics)
    assert re.search(r'lineguard_outbox_refused_total\{sink="webhook:127\.0\.0\.1:\d+ #[0-9a-f]{8}"\} 1\.0', metrics)
    assert [d["part_id"] for d in hook.received if d["event"] == "inspection"] == ["r-1"]


def test_slow_or_dead_webhook_never_blocks_inspection(sqlite_station, hook):
    # The receiver hangs until the test lets it go (no time limit that a loaded machine
    # could miss): had an inspection waited for it, none would return while it hangs.
    hook.hold = threading.Event()
    dead = WebhookSink("http://127.0.0.1:9/nothing-listens", timeout_s=0.5, retries=1, backoff_s=0.05)
    st = sqlite_station(sinks=[WebhookSink(hook.url, timeout_s=120, retries=0), dead])
    judged = threading.Event()

    def line() -> None:
        for i in range(3):
            st.inspect(png_bytes(30, seed=10 + i), Part(f"w-{i}", "L1", "S1", "cell"))
        judged.set()

    threading.Thread(target=line, daemon=True).start()
    assert judged.wait(60), "an inspection waited for the hanging webhook"
    assert hook.received == []          # three parts judged while the receiver still hung
    hook.hold.set()
    deadline = time.monotonic() + 20
    while len(hook.received) < 4 and time.monotonic() < deadline:   # the model change, then 3 parts
        time.sleep(0.05)
    assert [d["part_id"] for d in hook.received if d["event"] == "inspection"] == ["w-0", "w-1", "w-2"]
    # the dead receiver loses nothing: all four messages wait for it in the outbox
    assert not st.sinks.flush(0.5)
    assert f'lineguard_outbox_backlog{{sink="{dead.label}"}} 4.0' in st.metrics.render().decode()
    dead_state = st.sinks.status()[dead.label]
    assert dead_state["backlog"] == 4 and dead_state["state"] == "retrying" and dead_state["last_error"]


def test_a_failing_webhook_never_shows_its_password_or_token(sqlite_station):
    """A receiver's URL with a user, password and token: its failures were stored and shown
    with the whole URL (on /health, open to anyone who reaches the station, the line view
    and the log)."""
    dead = WebhookSink("http://plant:Hunter2Secret@127.0.0.1:9/hook?token=TOPSECRET123", timeout_s=0.5, retries=0,
                       backoff_s=0.01)
    with pytest.raises(RuntimeError) as failed:
        dead.send({"event": "inspection", "message_id": "m-1"})
    assert "http://127.0.0.1:9" in str(failed.value)
    st = sqlite_station(sinks=[dead])
    st.inspect(png_bytes(30, seed=5), Part("s-1", "L1", "S1", "cell"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(v["last_error"] for v in st.sinks.status().values()):
        time.sleep(0.05)
    shown = json.dumps(st.sinks.status())
    assert "failed after 1 tries" in shown, shown
    assert "Hunter2Secret" not in shown and "TOPSECRET123" not in shown and "plant:" not in shown, shown


def test_a_webhook_token_in_the_url_path_is_not_shown_on_health_or_metrics(sqlite_station):
    """Slack, Teams and many plant systems put a webhook's secret in its path
    (https://hooks.slack.com/services/T0/B0/SECRET): the sink's name on the open /health
    and /metrics held the whole path."""
    dead = WebhookSink("http://127.0.0.1:9/services/T0/B0/PathSecret42", timeout_s=0.5, retries=0, backoff_s=0.01)
    other = WebhookSink("http://127.0.0.1:9/services/T0/B1/OtherSecret7", timeout_s=0.5, retries=0, backoff_s=0.01)
    st = sqlite_station(sinks=[dead, other])
    st.inspect(png_bytes(30, seed=5), Part("s-1", "L1", "S1", "cell"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(v["last_error"] for v in st.sinks.status().values()):
        time.sleep(0.05)
    status = st.sinks.status()
    assert len(status) == 2 and all(v["last_error"] and v["backlog"] for v in status.values()), status
    shown = json.dumps(status) + st.metrics.render().decode()
    assert "webhook:127.0.0.1:9" in shown
    assert "PathSecret42" not in shown and "OtherSecret7" not in shown and "/services" not in shown, shown
    # deliveries are still recorded per receiver (the path): pointing at a new one starts afresh
    assert dead.key != other.key and dead.label != other.label


def test_review_is_published_like_any_verdict(sqlite_station, hook):
    from fake_inspector import FakeInspector
    st = sqlite_station(sinks=[WebhookSink(hook.url, timeout_s=2, retries=0)])
    st.add_model(FakeInspector(0.5, review_threshold=0.3).to_bytes(), "band", activate=True)
    for pid, value in (("v-ok", 30), ("v-review", 100), ("v-ng", 230)):
        st.inspect(png_bytes(value, seed=value), Part(pid, "L1", "S1", "band"))
    assert st.sinks.flush(10)
    got = {d["part_id"]: d for d in hook.received if d["event"] == "inspection"}
    assert {p: d["verdict"] for p, d in got.items()} == {"v-ok": "OK", "v-review": "REVIEW", "v-ng": "NG"}
    assert got["v-review"]["review_threshold"] == pytest.approx(0.3) and got["v-review"]["event"] == "inspection"


def test_mqtt_publishes_review(sqlite_station):
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    from fake_inspector import FakeInspector
    line = f"L-{uuid.uuid4().hex[:6]}"
    with _subscribed(line) as received:
        st = sqlite_station(sinks=[MqttSink("mqtt://127.0.0.1:1883")])
        st.add_model(FakeInspector(0.5, review_threshold=0.3).to_bytes(), "band", activate=True)
        st.inspect(png_bytes(100, seed=5), Part("m-review", line, "S2", "band"))
        assert st.sinks.flush(10)
        _wait_for(received, 1)
    got = [d for _, d, _ in received]
    assert [(d["part_id"], d["verdict"]) for d in got] == [("m-review", "REVIEW")]


def _retained(topic: str, timeout_s: float = 5, n: int = 1) -> list:
    """What a subscriber connecting now is given on ``topic`` (the broker's retained message)."""
    import paho.mqtt.client as mqtt
    got: list = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload), m.retain))
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    try:
        _wait_for(got, n, timeout_s)
    finally:
        sub.loop_stop()
        sub.disconnect()
    return got


def test_mqtt_keeps_each_stations_active_alarms_retained_for_boards_that_connect_later(sqlite_station):
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    import paho.mqtt.publish as publish
    line = f"L-{uuid.uuid4().hex[:6]}"
    state = f"lineguard/{line}/S3/alarm_state"
    st = sqlite_station(sinks=[MqttSink("mqtt://127.0.0.1:1883")], alarm_ng_run=3, alarm_ng_rate=0)
    try:
        for i in range(3):
            st.inspect(png_bytes(230, seed=40 + i), Part(f"a-{i}", line, "S3", "cell"))
        assert st.sinks.flush(10)
        (topic, got, retained), = _retained(f"lineguard/{line}/+/alarm_state")     # an andon board, started now
        assert topic == state and retained and got["alarm_code"] == 1 and got["change"] == "raised"
        (alarm,) = got["active"]
        assert alarm["kind"] == "ng_run" and "3 parts in a row" in alarm["message"] and got["after_alarm"] == alarm["id"]
        assert got["as_of"] == alarm["raised_at"]
        st.alarms.acknowledge(alarm["id"], "maria (user)")
        assert st.sinks.flush(10)
        (_, got, retained), = _retained(state)
        assert retained and got["active"] == [] and got["alarm_code"] == 0 and got["change"] == "acknowledged"
        assert got["as_of"] == st.alarms.history()[0]["acked_at"]
    finally:
        publish.single(state, payload=None, retain=True, hostname="127.0.0.1", port=1883)   # the broker forgets it


def test_mqtt_publishes_the_alarm_states_again_after_reconnecting(sqlite_station):
    """A broker restarted without persistence forgets the retained states: the station
    publishes every station's state again once connected, before its next rows."""
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    import paho.mqtt.publish as publish
    line = f"L-{uuid.uuid4().hex[:6]}"
    topics = [f"lineguard/{line}/{s}/alarm_state" for s in ("S3", "S4")]
    sink = MqttSink("mqtt://127.0.0.1:1883")
    st = sqlite_station(sinks=[sink], alarm_ng_run=3, alarm_ng_rate=0)
    try:
        for station in ("S3", "S4"):
            for i in range(3):
                st.inspect(png_bytes(230, seed=50 + i), Part(f"r-{station}-{i}", line, station, "cell"))
        assert st.sinks.flush(10)
        acked = st.alarms.active(line=line, station="S4")[0]
        st.alarms.acknowledge(acked["id"], "maria (user)")
        assert st.sinks.flush(10)
        for topic in topics:        # the broker forgets them (restarted without persistence)
            publish.single(topic, payload=None, retain=True, hostname="127.0.0.1", port=1883)
        assert _retained(f"lineguard/{line}/+/alarm_state", timeout_s=1) == []
        sink._client.reconnect()    # the station's connection comes back
        deadline = time.monotonic() + 15
        got = []
        while len(got) < 2 and time.monotonic() < deadline:
            got = _retained(f"lineguard/{line}/+/alarm_state", timeout_s=1, n=2)
        got = _retained(f"lineguard/{line}/+/alarm_state", n=2)     # a board connecting now: kept by the broker
        by_station = {t.split("/")[2]: (m, r) for t, m, r in got}
        (s3, retained), (s4, _) = by_station["S3"], by_station["S4"]
        assert retained and s3["change"] == "restored" and s3["alarm_code"] == 1 and len(s3["active"]) == 1
        assert s4["active"] == [] and s4["alarm_code"] == 0            # acknowledged: an empty list, said again
    finally:
        for topic in topics:
            publish.single(topic, payload=None, retain=True, hostname="127.0.0.1", port=1883)


def test_alarm_states_written_again_for_mqtt_are_not_posted_to_webhooks(sqlite_station, hook):
    st = sqlite_station(sinks=[WebhookSink(hook.url, timeout_s=2, retries=0)], alarm_ng_run=2, alarm_ng_rate=0)
    for i in range(2):
        st.inspect(png_bytes(230, seed=70 + i), Part(f"w-{i}", "L1", "S1", "cell"))
    assert st.alarms.record_states() == 1
    assert st.sinks.flush(10)                       # delivered: taken, not posted
    events = [d["event"] for d in hook.received]
    assert "alarm" in events and "alarm_state" not in events


def test_an_mqtts_broker_is_reached_over_tls_and_another_scheme_refused_at_start():
    """--mqtt mqtts://host was read as plain MQTT: results went in clear text."""
    from lineguard.line.config import StationConfig
    from lineguard.line.sinks import mqtt_address
    assert mqtt_address("mqtts://broker") == ("broker", 8883, True)
    assert mqtt_address("ssl://broker:9000") == ("broker", 9000, True)
    assert mqtt_address("broker:1884") == ("broker", 1884, False)
    sink = MqttSink("mqtts://127.0.0.1:1")
    try:
        assert sink._client._ssl and sink.port == 1
    finally:
        sink.close()
    with pytest.raises(ValueError, match="give mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS"):
        StationConfig(mqtt_url="http://broker:1883")
