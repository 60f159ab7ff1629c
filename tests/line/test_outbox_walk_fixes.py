"""A walk of the README's outbox section: what the log, /health and a sink's errors say of a
webhook's secrets, where a redirect points, and an mqtts:// URL given for a plain port."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lineguard.line.sinks import MqttSink, WebhookSink
from lineguard.line.station import Part

from .conftest import png_bytes


class _Hook(BaseHTTPRequestHandler):
    """Answers every POST with ``server.answer(path) -> (code, headers)``."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["content-length"]))
        with self.server.lock:
            self.server.paths.append(self.path)
        code, headers = self.server.answer(self.path)
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def hook():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.paths = []
    srv.answer = lambda path: (204, {})
    srv.port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_the_log_names_a_new_webhook_by_its_label_and_httpx_logs_no_url(sqlite_station, hook, caplog):
    """`serve --webhook http://user:PASSW0RD@host/hook/SECRETTOKEN?token=QSECRET`: the outbox
    logged the sink's key (its path, the token in it) at registration, and httpx logged every
    POST's whole URL, password and query token included, at INFO."""
    caplog.set_level(logging.INFO)
    sink = WebhookSink(f"http://user:PASSW0RD@127.0.0.1:{hook.port}/hook/SECRETTOKEN?token=QSECRET",
                       timeout_s=5, retries=0)
    st = sqlite_station(sinks=[sink])
    st.inspect(png_bytes(30, seed=1), Part("w-1", "L1", "S1", "cell"))
    assert st.sinks.flush(20), st.sinks.status()
    assert hook.paths, "the receiver got the part"
    logged = caplog.text
    assert f"sink {sink.label}: new, owes the outbox rows" in logged, logged
    assert sink.label.startswith(f"webhook:127.0.0.1:{hook.port} #")
    for secret in ("PASSW0RD", "SECRETTOKEN", "QSECRET"):
        assert secret not in logged, logged


def _redirect_said(url: str) -> str:
    """What one delivery to ``url``, answered with a redirect not followed, fails with."""
    sink = WebhookSink(url, timeout_s=5, retries=0)
    try:
        with pytest.raises(RuntimeError) as failed:
            sink.send({"event": "inspection", "message_id": "m-1"})
    finally:
        sink.close()
    return str(failed.value)


def test_a_301_names_the_whole_target_without_its_secrets(hook):
    """A 301 to /moved was said as `redirect to http://127.0.0.1:PORT`: the path was dropped,
    so "give the webhook URL it points to" could not be followed."""
    hook.answer = lambda path: (301, {"Location": "/moved?token=QSECRET&site=3"})
    said = _redirect_said(f"http://user:PASSW0RD@127.0.0.1:{hook.port}/hook")
    assert f"HTTP 301 redirect to http://127.0.0.1:{hook.port}/moved?token=***&site=***, not followed" in said, said
    assert "give the webhook URL it points to" in said
    assert "PASSW0RD" not in said and "QSECRET" not in said and "user" not in said, said


def test_a_redirect_to_the_webhooks_own_path_does_not_spell_out_its_token(hook):
    """An http webhook moved to https keeps its path, the token in it: /health (open to
    anyone) names webhooks by a digest of the path, so the redirect names it in words."""
    hook.answer = lambda path: (308 if path.endswith("/") else 302,
                                {"Location": f"https://127.0.0.1:{hook.port}/services/T0/PathSecret42/"})
    said = _redirect_said(f"http://127.0.0.1:{hook.port}/services/T0/PathSecret42")
    assert f"HTTP 302 redirect to https://127.0.0.1:{hook.port}/<this webhook's path>/, not followed" in said, said
    assert "PathSecret42" not in said


def test_an_mqtts_url_for_a_plain_broker_says_the_tls_handshake_failed():
    """`--mqtt mqtts://host:PORT` pointed at a plain broker: /health said `MQTT broker ... is
    not connected`, as of a broker that is down, while the broker logged a protocol error."""
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    port = plain.getsockname()[1]

    def answer_as_a_plain_broker():
        # a plain MQTT broker reads the TLS ClientHello as a bad packet and drops the connection
        while True:
            try:
                conn, _ = plain.accept()
            except OSError:
                return
            conn.recv(4096)
            conn.close()

    threading.Thread(target=answer_as_a_plain_broker, daemon=True).start()
    sink = MqttSink(f"mqtts://127.0.0.1:{port}")
    said = ""
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "TLS" not in said:
            with pytest.raises(ConnectionError) as failed:
                sink.send({"event": "inspection", "line": "L1", "station": "S1"})
            said = str(failed.value)
            time.sleep(0.05)
    finally:
        sink.close()
        plain.close()
    assert f"MQTT broker 127.0.0.1:{port} is not connected: TLS handshake failed" in said, said
    assert "is the broker's port a TLS one? mqtt:// for a plain port" in said, said


def test_an_mqtts_broker_that_is_down_is_not_blamed_on_tls():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again: nothing listens there
    sink = MqttSink(f"mqtts://127.0.0.1:{port}")
    try:
        time.sleep(0.5)
        with pytest.raises(ConnectionError) as failed:
            sink.send({"event": "inspection", "line": "L1", "station": "S1"})
    finally:
        sink.close()
    assert str(failed.value) == f"MQTT broker 127.0.0.1:{port} is not connected"


def test_the_label_on_health_stays_free_of_the_redirect_target(sqlite_station, hook):
    """The redirect's error reaches /health (last_error): nothing of the secrets there."""
    hook.answer = lambda path: (303, {"Location": "http://other:8080/new/path?key=K3Y"})
    sink = WebhookSink(f"http://user:PASSW0RD@127.0.0.1:{hook.port}/hook/SECRETTOKEN", timeout_s=5, retries=0)
    st = sqlite_station(sinks=[sink])
    st.inspect(png_bytes(30, seed=2), Part("w-2", "L1", "S1", "cell"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(v["last_error"] for v in st.sinks.status().values()):
        time.sleep(0.05)
    shown = json.dumps(st.sinks.status())
    assert "redirect to http://other:8080/new/path?key=***" in shown, shown
    for secret in ("PASSW0RD", "SECRETTOKEN", "K3Y"):
        assert secret not in shown, shown
