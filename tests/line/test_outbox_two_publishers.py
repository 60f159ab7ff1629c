"""Two processes on one database with the same receiver: each message goes out once.

Two stations on one PostgreSQL database, both started with the same --mqtt broker (or a
server and a hot folder's watcher on one SQLite file), each ran a publisher that read the
whole shared outbox: 192 of 570 message_ids reached the broker twice with nothing wrong.
Now the publisher holding the sink's claim sends; a second one sends only when the first
stops, or dies and its claim runs out, and then only what the first had not marked sent.
"""
from __future__ import annotations

import collections
import json
import socket
import threading
import time
import uuid

import pytest

from lineguard.line.outbox import Outbox, record_event
from lineguard.line.sinks import MqttSink

from .conftest import until

LINES = ("L1", "L2", "L3")


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=2):
            return True
    except OSError:
        return False


class Subscriber:
    """Every message under ``prefix``, as received (a second delivery counted twice)."""

    def __init__(self, prefix: str):
        import paho.mqtt.client as mqtt
        self.got: list[dict] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")

        def on_message(c, u, m):
            with self.lock:
                self.got.append(json.loads(m.payload))

        self.c.on_message = on_message
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"{prefix}/#", qos=1)
        self.c.connect("127.0.0.1", 1883)
        self.c.loop_start()
        assert subscribed.wait(10), "the test's subscriber could not subscribe at 127.0.0.1:1883"

    def ids(self) -> collections.Counter:
        with self.lock:
            return collections.Counter(m["message_id"] for m in self.got)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _write_burst(db, n: int) -> list[str]:
    """``n`` rows over three lines committed at once (a backlog after a broker outage):
    both publishers look at the same rows. Their message ids, in id order."""
    rows = []
    with db.session() as s:
        for i in range(n):
            line = LINES[i % len(LINES)]
            rows.append(record_event(s, "inspection", line, {"line": line, "station": "S1", "n": i}))
        s.flush()
        return [r.key for r in rows]


def test_two_stations_with_one_mqtt_broker_publish_each_message_once(station_factory):
    if not _broker_up():
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (run `make services`)")
    prefix = f"lg-test-{uuid.uuid4().hex[:8]}"     # the shared broker: topics of this test alone
    sub = Subscriber(prefix)
    a = station_factory(sinks=[MqttSink("mqtt://127.0.0.1:1883", topic_prefix=prefix)])
    b = station_factory(sinks=[MqttSink("mqtt://127.0.0.1:1883", topic_prefix=prefix)])   # the other station
    try:
        written = _write_burst(a.db, 150)
        a.sinks.wake()
        b.sinks.wake()
        assert a.sinks.flush(30) and b.sinks.flush(30), (a.sinks.status(), b.sinks.status())
        until(lambda: set(written) <= set(sub.ids()), "every message at the subscriber")
    finally:
        a.close()        # each publisher finishes what it was sending
        b.close()
    time.sleep(0.5)      # a second delivery on its way through the broker
    sub.close()
    received = sub.ids()
    twice = sorted(k for k, n in received.items() if n > 1)
    assert len(twice) == 0, f"{len(twice)} of {len(written)} messages were published twice by the two stations"
    assert sorted(received) == sorted(written)
    by_line = collections.defaultdict(list)
    for m in sub.got:
        by_line[m["line"]].append(m["outbox_id"])
    assert all(ids == sorted(ids) for ids in by_line.values()), "a line's messages out of order"


class _Receiver:
    """A sink both publishers send to (the same key): what it was given, in order. One
    publisher's copy can be made to hang in the middle of a message, as a station that
    lost its power mid-send (nothing marked, its claim never renewed)."""

    key = "receiver-of-both"

    def __init__(self, got: list, hang_at: int = 0):
        self.got = got
        self.hang_at = hang_at
        self.release = threading.Event()

    def send(self, message: dict) -> None:
        time.sleep(0.002)          # a receiver's answer takes a moment: the publishers' looks overlap
        self.got.append((id(self), message["n"]))
        if self.hang_at and len([1 for who, _ in self.got if who == id(self)]) == self.hang_at:
            self.release.wait(60)
            raise ConnectionError("the station went down mid-send")

    def close(self) -> None:
        self.release.set()


def test_a_publisher_that_dies_mid_send_is_taken_over_and_nothing_is_lost(station_factory):
    a_station, b_station = station_factory(), station_factory()     # two processes' connections
    got: list = []
    dying = _Receiver(got, hang_at=5)
    first = Outbox(a_station.db, [dying], poll_s=0.05, claim_s=1.0)
    second = None
    try:
        with a_station.db.session() as s:
            for n in range(20):
                record_event(s, "inspection", "L1", {"line": "L1", "n": n})
        first.wake()
        until(lambda: len(got) == 5, "the first publisher sending its fifth message")
        taking_over = _Receiver(got)
        second = Outbox(b_station.db, [taking_over], poll_s=0.05, claim_s=1.0)
        # the first holds the claim until it runs out; then the second sends what was not marked
        assert second.flush(30), second.status()
        firsts = [n for who, n in got if who == id(dying)]
        seconds = [n for who, n in got if who == id(taking_over)]
        assert firsts == [0, 1, 2, 3, 4]
        # at least once: the message the first was sending when it died goes again, nothing else twice
        assert seconds == list(range(4, 20)), seconds
    finally:
        dying.release.set()
        first.close(timeout_s=2)
        if second is not None:
            second.close(timeout_s=2)


def test_a_publisher_that_stops_hands_its_receiver_over_at_once(station_factory):
    a_station, b_station = station_factory(), station_factory()
    got: list = []
    first = Outbox(a_station.db, [_Receiver(got)], poll_s=0.05)      # claims of 30 s
    second = Outbox(b_station.db, [_Receiver(got)], poll_s=0.05)
    try:
        with a_station.db.session() as s:
            for n in range(30):
                record_event(s, "inspection", LINES[n % 3], {"line": LINES[n % 3], "n": n})
        first.wake()
        second.wake()
        assert first.flush(10) and second.flush(10)
        first.close()          # stopped cleanly: the other sends from now on, not when the claim runs out
        with a_station.db.session() as s:
            for n in range(30, 40):
                record_event(s, "inspection", "L1", {"line": "L1", "n": n})
        second.wake()
        assert second.flush(10), second.status()
        sent = collections.Counter(n for _, n in got)
        assert [n for n, times in sent.items() if times > 1] == [], "messages sent by both publishers"
        assert sorted(sent) == list(range(40))
    finally:
        first.close()
        second.close()


def test_a_station_restarted_after_a_crash_sends_at_once_not_when_its_old_claim_runs_out(station_factory):
    import datetime as dt
    import subprocess
    import sys

    from lineguard.line.orm import OutboxSink
    st = station_factory()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()[:60]}:{int(gone.stdout)}:killed00"     # the station before it was killed
    with st.db.session() as s:
        s.add(OutboxSink(sink=_Receiver.key, since_id=0, created_at=dt.datetime(2026, 12, 1),
                         claimed_by=dead, claimed_until=4e9))                # held for decades by its own clock
        record_event(s, "inspection", "L1", {"line": "L1", "n": 0})
    got: list = []
    restarted = Outbox(st.db, [_Receiver(got)], poll_s=0.05)
    try:
        restarted.wake()
        assert restarted.flush(10), "the restarted station waited for the claim of the process it replaced"
        assert [n for _, n in got] == [0]
    finally:
        restarted.close()
