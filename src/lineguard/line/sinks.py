"""Line signal out: every result to a webhook and/or an MQTT broker.

Delivery runs on one background thread per sink with a bounded queue, so a slow or
dead receiver never slows the inspection path; when a queue is full the oldest
behaviour is kept (new results are dropped and counted in the metrics).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any, Optional
from urllib.parse import urlparse

log = logging.getLogger("lineguard.sinks")


class Sink:
    name = "sink"

    def send(self, payload: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class WebhookSink(Sink):
    """POST the result as JSON; retries with exponential backoff on errors and 5xx."""

    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 2.0, retries: int = 3, backoff_s: float = 0.5):
        import httpx
        self.url = url
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = httpx.Client(timeout=timeout_s)

    def send(self, payload: dict[str, Any]) -> None:
        last: Optional[str] = None
        for attempt in range(self.retries + 1):
            try:
                r = self._client.post(self.url, json=payload)
                if r.status_code < 500:
                    if r.status_code >= 400:
                        log.warning("webhook %s refused result: HTTP %s", self.url, r.status_code)
                    return
                last = f"HTTP {r.status_code}"
            except Exception as exc:  # noqa: BLE001 - network errors of every kind
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff_s * (2 ** attempt))
        raise RuntimeError(f"webhook {self.url} failed after {self.retries + 1} tries ({last})")

    def close(self) -> None:
        self._client.close()


class MqttSink(Sink):
    """Publish to ``lineguard/<line>/<station>/result`` with QoS 1."""

    name = "mqtt"

    def __init__(self, url: str, client_id: str = "", topic_prefix: str = "lineguard"):
        import paho.mqtt.client as mqtt
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 1883
        self.topic_prefix = topic_prefix
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if u.username:
            self._client.username_pw_set(u.username, u.password)
        self._client.reconnect_delay_set(1, 30)
        # Async connect + network thread: a broker that is down at start-up is retried.
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def topic(self, payload: dict[str, Any]) -> str:
        line = str(payload.get("line") or "unknown").replace("/", "_")
        station = str(payload.get("station") or "unknown").replace("/", "_")
        return f"{self.topic_prefix}/{line}/{station}/result"

    def send(self, payload: dict[str, Any]) -> None:
        info = self._client.publish(self.topic(payload), json.dumps(payload), qos=1)
        # paho queues QoS 1 messages while disconnected; wait briefly for the ack so the
        # delivery counter means something, but never forever.
        info.wait_for_publish(timeout=5.0)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class SinkDispatcher:
    """Fan results out to sinks on background threads."""

    def __init__(self, sinks: list[Sink], metrics: Any = None, maxsize: int = 10000):
        self.sinks = sinks
        self.metrics = metrics
        self._queues: list[queue.Queue] = []
        self._threads: list[threading.Thread] = []
        for sink in sinks:
            q: queue.Queue = queue.Queue(maxsize=maxsize)
            t = threading.Thread(target=self._run, args=(sink, q), name=f"sink-{sink.name}", daemon=True)
            t.start()
            self._queues.append(q)
            self._threads.append(t)

    def publish(self, payload: dict[str, Any]) -> None:
        for sink, q in zip(self.sinks, self._queues):
            try:
                q.put_nowait(payload)
            except queue.Full:
                log.error("%s sink queue full; result of part %s dropped", sink.name, payload.get("part_id"))
                if self.metrics is not None:
                    self.metrics.sink_dropped.labels(sink.name).inc()
        self._update_gauge()

    def _update_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.sink_queue.set(sum(q.qsize() for q in self._queues))

    def _run(self, sink: Sink, q: queue.Queue) -> None:
        while True:
            payload = q.get()
            if payload is None:
                q.task_done()
                return
            try:
                sink.send(payload)
            except Exception as exc:  # noqa: BLE001 - a sink failure must not kill the thread
                log.error("%s sink: %s", sink.name, exc)
                if self.metrics is not None:
                    self.metrics.sink_dropped.labels(sink.name).inc()
            finally:
                q.task_done()
                self._update_gauge()

    def flush(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        for q in self._queues:
            while q.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.02)
        return all(q.unfinished_tasks == 0 for q in self._queues)

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join(timeout=timeout_s)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001
                pass


def sinks_from_config(webhook_url: Optional[str], mqtt_url: Optional[str], timeout_s: float = 2.0,
                      retries: int = 3) -> list[Sink]:
    out: list[Sink] = []
    if webhook_url:
        out.append(WebhookSink(webhook_url, timeout_s=timeout_s, retries=retries))
    if mqtt_url:
        out.append(MqttSink(mqtt_url))
    return out
