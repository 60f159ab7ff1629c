"""Results across a broker outage: a station publishing to MQTT while its broker is stopped.

    python -m benchmarks.outage_bench [--rate 10] [--seconds 60] [--outage-s 30] [--work DIR]

A `lineguard serve` with the exported default model (made and cached as in
:mod:`benchmarks.plc_latency_bench`) takes parts from the simulated PLC over Modbus at
``--rate`` parts/s for ``--seconds`` and publishes every result to a mosquitto of our own
(a free port, with persistence, never the shared one on 1883). In the middle the broker
is stopped (SIGTERM, so it saves its sessions) for ``--outage-s`` and then started again.

A consumer with a persistent MQTT session (QoS 1, clean_session off) takes every message
on ``lineguard/#`` and acts once per idempotency key (``message_id``). After the run the
station's outbox table is read: every row written after the sink registered must have
reached the consumer. Reported: rows owed and received, rows missing, raw duplicates
(allowed by at-least-once, dropped by the key), what the consumer acted on twice (must be
0), and the delivery lag (outbox row committed -> consumer received) for rows written
before, during and after the outage. The PLC's answers are reported too: the outage must
not slow the line. Results go to benchmarks/results/outage.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .plc_latency_bench import RESULTS, _free_port, distribution, make_model, start_station


class Broker:
    """Our own mosquitto with persistence, so it can be stopped and started under load."""

    def __init__(self, work: Path):
        if shutil.which("mosquitto") is None:
            raise SystemExit("mosquitto is not installed (run `make services`)")
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(dir=work, prefix="mosq-"))
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {self.dir}/\nautosave_interval 1\n"
                             "max_queued_messages 0\n")   # 0: no cap on what is kept for the consumer
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def _result_of(body: dict) -> tuple:
    """What a message is about: a part's inspection, the PLC answer to a trigger, or else itself."""
    event = body.get("event")
    if event == "inspection":
        return (event, body.get("id"))
    if event == "line_signal":
        return (event, body.get("station"), body.get("trigger_seq"), body.get("part_tag"))
    return (event, body.get("message_id"))


class Consumer:
    """Acts once per idempotency key; keeps every raw arrival with its wall-clock time."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt
        self.raw: list[tuple[float, dict]] = []
        self.keys: set[str] = set()               # idempotency keys seen
        self.acted: dict[tuple, int] = {}         # result -> times acted on (must stay 1)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"outage-{uuid.uuid4().hex[:8]}",
                             clean_session=False)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("lineguard/#", qos=1)
        self.c.reconnect_delay_set(0.2, 1.0)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self.subscribed.wait(10):
            raise SystemExit("the consumer could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001 - paho's callback
        at = time.time()
        body = json.loads(msg.payload)
        with self.lock:
            self.raw.append((at, body))
            key = body.get("message_id")
            if key in self.keys:
                return                   # a raw duplicate (at least once): dropped by its key
            self.keys.add(key)
            # acting on it: counted per result, so a result sent again under a new key shows up
            self.acted[_result_of(body)] = self.acted.get(_result_of(body), 0) + 1

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _owed_rows(db: Path, sink: str) -> list[tuple[str, str, dt.datetime]]:
    """(key, event, created_at UTC) of every outbox row the MQTT sink owes."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        since = con.execute("SELECT since_id FROM outbox_sinks WHERE sink = ?", (sink,)).fetchone()
        if since is None:
            raise SystemExit(f"the station never registered sink {sink}")
        rows = con.execute("SELECT key, event, created_at FROM outbox WHERE id > ? ORDER BY id", (since[0],))
        return [(k, e, dt.datetime.fromisoformat(c).replace(tzinfo=dt.timezone.utc)) for k, e, c in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=10.0, help="parts per second from the simulated PLC")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the PLC sends parts")
    ap.add_argument("--outage-s", type=float, default=30.0, help="how long the broker is down, in the middle")
    ap.add_argument("--window-ms", type=float, default=1000.0, help="the station's inspection window")
    ap.add_argument("--drain-s", type=float, default=120.0, help="the most to wait for delivery after the run")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lineguard-plc-bench")
    ap.add_argument("--out", type=Path, default=RESULTS / "outage.json")
    a = ap.parse_args()
    from lineguard.line import plc_sim

    a.work.mkdir(parents=True, exist_ok=True)
    model, feed = make_model(a.work)
    broker = Broker(a.work)
    broker.start()
    consumer = Consumer(broker.port)
    proc, ports = start_station(a.work, model, a.window_ms, extra=("--mqtt", f"mqtt://127.0.0.1:{broker.port}"))
    db = ports["cam"].parent / "data" / "lineguard.db"
    parts = int(round(a.rate * a.seconds))
    outage_at = (a.seconds - a.outage_s) / 2
    marks: dict[str, float] = {}
    load_before = os.getloadavg()
    try:
        link = plc_sim.connect("modbus", "127.0.0.1", ports["modbus"])
        feeder = plc_sim.ImageFeeder(feed, ports["cam"])
        plc_sim.run(link, 5, 5.0, feeder, a.window_ms, first_part_id=1)    # loads the model: counted as owed too

        def outage() -> None:
            time.sleep(outage_at)
            marks["broker_stopped"] = time.time()
            broker.stop()
            time.sleep(a.outage_s)
            broker.start()
            marks["broker_started"] = time.time()

        marks["run_started"] = time.time()
        t = threading.Thread(target=outage, daemon=True)
        t.start()
        rep = plc_sim.run(link, parts, a.rate, feeder, a.window_ms, first_part_id=100, protocol="modbus")
        marks["run_ended"] = time.time()
        t.join()
        feeder.cleanup()
        link.close()
        owed = _owed_rows(db, f"mqtt:127.0.0.1:{broker.port}")
        deadline = time.monotonic() + a.drain_s
        while time.monotonic() < deadline:
            with consumer.lock:
                got = set(consumer.keys)
            if all(k in got for k, _, _ in owed):
                break
            time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        consumer.close()
        broker.stop()
    load_after = os.getloadavg()

    first_seen: dict[str, float] = {}
    for at, body in consumer.raw:
        first_seen.setdefault(body.get("message_id"), at)
    raw_dups = len(consumer.raw) - len(first_seen)
    acted_twice = sum(1 for n in consumer.acted.values() if n > 1)
    missing = [(k, e) for k, e, _ in owed if k not in first_seen]
    stray = len(set(first_seen) - {k for k, _, _ in owed})
    phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for k, _, created in owed:
        if k not in first_seen:
            continue
        c = created.timestamp()
        phase = "before" if c < marks["broker_stopped"] else ("during" if c < marks["broker_started"] else "after")
        phases[phase].append(first_seen[k] - c)
    events: dict[str, int] = {}
    for _, e, _ in owed:
        events[e] = events.get(e, 0) + 1
    plc = rep.summary()
    out = {
        "what": "MQTT delivery across a broker outage: outbox rows committed -> received by a consumer "
                "that honours the idempotency key (persistent session, QoS 1)",
        "model": "default profile, exported to ONNX, synthetic product 256 px; parts from line-sim over Modbus",
        "rate_per_s": a.rate, "seconds": a.seconds, "outage_s": a.outage_s,
        "outage_from_s": round(marks["broker_stopped"] - marks["run_started"], 2),
        "outage_to_s": round(marks["broker_started"] - marks["run_started"], 2),
        "owed": len(owed), "owed_by_event": events, "received_unique": len(owed) - len(missing),
        "missing": len(missing), "raw_duplicates": raw_dups, "acted_on_twice": acted_twice,
        "stray_messages": stray,
        "delivery_lag_s": {p: distribution(v, 3) for p, v in phases.items()},
        "delivery_lag_s_all": distribution([x for v in phases.values() for x in v], 3),
        # the last row written before the broker came back, received: the outage's backlog is gone
        "backlog_cleared_s_after_broker_returned": round(max(
            (first_seen[k] for k, _, c in owed if k in first_seen and c.timestamp() < marks["broker_started"]),
            default=marks["broker_started"]) - marks["broker_started"], 2),
        "plc": {k: plc[k] for k in ("parts", "answered", "latency_ms", "missed_windows", "timeouts", "late",
                                    "no_answer", "mismatched", "overruns", "achieved_rate_per_s")},
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in load_after],
        "cpu_count": os.cpu_count(), "machine": platform.platform(), "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps({k: out[k] for k in ("owed", "owed_by_event", "received_unique", "missing", "raw_duplicates",
                                          "acted_on_twice", "delivery_lag_s", "backlog_cleared_s_after_broker_returned")},
                     indent=2))
    print(f"PLC: {plc['answered']}/{plc['parts']} answered, p99 {plc['latency_ms']['p99']} ms, "
          f"missed windows {plc['missed_windows']}; load {out['load_avg_before'][0]} -> {out['load_avg_after'][0]}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=a.out.parent, prefix=".outage-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh, indent=2)
    os.replace(tmp, a.out)
    print(f"written {a.out}")
    if missing or acted_twice:
        raise SystemExit(f"{len(missing)} result(s) never delivered, {acted_twice} acted on twice")


if __name__ == "__main__":
    main()
