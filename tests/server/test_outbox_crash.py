"""kill -9 of a station whose receiver is down: every acknowledged part is published after the restart."""
from __future__ import annotations

import time

import pytest

from line.test_outbox import Receiver
from lineguard.line.sinks import WebhookSink

from .conftest import ServerProc, fake_model_bytes, free_port, make_keys, png_bytes, post_part


@pytest.mark.slow
def test_parts_acknowledged_before_kill9_are_published_after_restart(tmp_path):
    hook_port = free_port()
    hook_url = f"http://127.0.0.1:{hook_port}/hook"       # nothing listens there yet
    data = tmp_path / "data"
    keys = make_keys(data)
    shown = WebhookSink(hook_url).label        # how /health names the receiver
    srv = ServerProc(data, extra=["--webhook", hook_url]).start()
    receiver = None
    try:
        with srv.client(keys["engineer"]) as e:
            assert e.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes())},
                          data={"product": "cell", "activate": "true"}).status_code == 201
        acked = []
        with srv.client(keys["operator"]) as c:
            for i in range(5):
                r = post_part(c, png_bytes(40 + 30 * i, seed=500 + i), f"k-{i}", line="L9")
                assert r.status_code == 201
                acked.append(r.json()["id"])
            health = c.get("/health").json()
        sink = health["sinks"][shown]
        assert sink["backlog"] == 7   # the upload, its activation (tried first) and 5 parts wait for the receiver
        srv.kill9()
        receiver = Receiver(port=hook_port)
        srv = ServerProc(data, extra=["--webhook", hook_url]).start()
        deadline = time.monotonic() + 30
        while len(receiver.unique()) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        got = receiver.unique()
        assert [m["part_id"] for m in got] == [f"k-{i}" for i in range(5)]
        assert [m["id"] for m in got] == acked
        with srv.client() as c:
            deadline = time.monotonic() + 10
            while c.get("/health").json()["sinks"][shown]["backlog"] and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.get("/health").json()["sinks"][shown]["backlog"] == 0
            assert "lineguard_outbox_backlog" in c.get("/metrics").text
    finally:
        srv.stop()
        if receiver is not None:
            receiver.close()
