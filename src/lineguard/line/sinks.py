"""Line signal out: every result to a webhook and/or an MQTT broker.

A sink sends one message and returns only once the receiver acknowledged it (HTTP
2xx, MQTT PUBACK); anything else raises, and the outbox worker that called it (see
:mod:`.outbox`) keeps the message and tries again later. A sink never queues on its
own: the outbox table is the queue, so a dead receiver costs disk rows, not results.
``key`` names the receiver (kind and address, no credentials): deliveries are marked
per key, so pointing a station at a new broker starts a new delivery record. ``label`` is
how the open /health and /metrics name it: a webhook's key holds its URL's path, and a
Slack, Teams or plant-system webhook carries its token there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Optional
from urllib.parse import urlparse

from .outbox import Refused

log = logging.getLogger("lineguard.sinks")


class Sink:
    name = "sink"
    key = "sink"      # the receiver, e.g. "mqtt:127.0.0.1:1883"

    @property
    def label(self) -> str:
        """The receiver as anyone who reaches the station may read it (no secret in it)."""
        return self.key

    def send(self, payload: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class WebhookSink(Sink):
    """POST the result as JSON with an ``Idempotency-Key`` header (the message id).

    A few quick retries ride out a blip; after them the outbox worker backs off. 2xx is
    delivered; 400, 413, 415 and 422 mean the receiver refuses this message for good
    (:class:`Refused`); every other answer (5xx, 404 of a wrong URL, 401 of a missing
    token, 429) is retried, so a misconfigured receiver holds results instead of
    losing them.
    """

    name = "webhook"
    _REFUSED = (400, 413, 415, 422)

    def __init__(self, url: str, timeout_s: float = 2.0, retries: int = 3, backoff_s: float = 0.5):
        import httpx

        from .config import without_secrets
        self.url = url
        # the URL as errors say it (/health, the line view, the log: read by anyone who
        # reaches the station): a user, password, path or query may hold the receiver's secret
        self.shown = without_secrets(url, "http") or "(no URL)"
        u = urlparse(url)
        where = f"webhook:{u.hostname}:{u.port or (443 if u.scheme == 'https' else 80)}"
        self.key = f"{where}{u.path}"
        # two receivers on one host told apart by a digest of the path, never the path itself
        self._label = (f"{where} #{hashlib.sha256(u.path.encode()).hexdigest()[:8]}"
                       if u.path.strip("/") else where)
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = httpx.Client(timeout=timeout_s)

    @property
    def label(self) -> str:
        return self._label

    def send(self, payload: dict[str, Any]) -> None:
        if payload.get("event") == "alarm_state":
            return      # a state written again for MQTT's retained messages: nothing new for a webhook
        last: Optional[str] = None
        headers = {"Idempotency-Key": str(payload.get("message_id", ""))}
        for attempt in range(self.retries + 1):
            try:
                r = self._client.post(self.url, json=payload, headers=headers)
                if 200 <= r.status_code < 300:
                    return
                if r.status_code in self._REFUSED:
                    raise Refused(f"HTTP {r.status_code}: {r.text[:200]}")
                last = f"HTTP {r.status_code}"
            except Refused:
                raise
            except Exception as exc:  # noqa: BLE001 - network errors of every kind
                last = f"{type(exc).__name__}: {exc}".replace(self.url, self.shown)
            if attempt < self.retries:
                time.sleep(self.backoff_s * (2 ** attempt))
        raise RuntimeError(f"webhook {self.shown} failed after {self.retries + 1} tries ({last})")

    def close(self) -> None:
        self._client.close()


def mqtt_address(url: str) -> tuple[str, int, bool]:
    """(host, port, TLS) of a broker URL; ValueError for a scheme that is not MQTT's.

    mqtts:// (or ssl://) is TLS with the system's certificate authorities, port 8883 by
    default: it was read as plain MQTT, and results went in clear text to a broker meant to
    be reached over TLS."""
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    scheme = u.scheme.lower()
    if scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise ValueError(f"MQTT broker {u.scheme}://...: give mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS")
    tls = scheme in ("mqtts", "ssl")
    return u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883), tls


# characters a topic level cannot hold: the level separator and the wildcards, which paho
# refuses to publish ("Line #3" kept its line's messages retrying for ever, and with them,
# once it owed a batch, every line's)
_NOT_IN_TOPIC = str.maketrans({"/": "_", "#": "_", "+": "_", "\0": "_"})


def _topic_level(name: Any) -> str:
    return str(name).translate(_NOT_IN_TOPIC)


class MqttSink(Sink):
    """Publish with QoS 1 to ``lineguard/<line>/<station>/result`` (a part's verdict),
    ``.../review`` (an operator's review), ``.../alarm`` (a line alarm raised or
    acknowledged) or ``lineguard/<line>/_/model`` (a model change; line ``_all`` for a
    model of every line). With each alarm message the station's active alarms go,
    retained, to ``.../alarm_state``: an andon board that (re)connects is told at once
    what is active, and an empty list once all are acknowledged. After each connection
    to the broker (a broker restarted without persistence has forgotten them) the
    station writes every station's state to the outbox again (event ``alarm_state``,
    see :attr:`connections` and line.outbox), published here retained like the others."""

    name = "mqtt"

    def __init__(self, url: str, client_id: str = "", topic_prefix: str = "lineguard"):
        import paho.mqtt.client as mqtt
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        self.host, self.port, tls = mqtt_address(url)
        self.topic_prefix = topic_prefix
        self.key = f"mqtt:{self.host}:{self.port}"
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if tls:
            self._client.tls_set()
        if u.username:
            self._client.username_pw_set(u.username, u.password)
        self._client.reconnect_delay_set(1, 30)
        # connections made so far (paho's network thread counts; the outbox's worker reads)
        self.connections = 0
        self._client.on_connect = self._on_connect
        # Async connect + network thread: a broker that is down at start-up is retried.
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if not getattr(reason_code, "is_failure", False):
            self.connections += 1

    def _state_topic(self, payload: dict[str, Any]) -> str:
        return self.topic({**payload, "event": "alarm"}).rsplit("/", 1)[0] + "/alarm_state"

    def topic(self, payload: dict[str, Any]) -> str:
        event = payload.get("event", "inspection")
        if event == "model":
            return f"{self.topic_prefix}/{_topic_level(payload.get('line') or '_all')}/_/model"
        line = _topic_level(payload.get("line") or "unknown")
        station = _topic_level(payload.get("station") or "unknown")
        leaf = event if event in ("review", "alarm") else "result"
        return f"{self.topic_prefix}/{line}/{station}/{leaf}"

    def send(self, payload: dict[str, Any], timeout_s: float = 5.0) -> None:
        # Not handed to paho while disconnected: it would queue the message in memory,
        # where a crash loses it; the outbox row is the queue and is retried instead.
        if not self._client.is_connected():
            raise ConnectionError(f"MQTT broker {self.host}:{self.port} is not connected")
        if payload.get("event") == "alarm_state":     # a station's state written again after a connection
            self._publish(self._state_topic(payload), _state_message(payload, payload.get("change")), timeout_s,
                          retain=True)
            return
        self._publish(self.topic(payload), payload, timeout_s)
        if payload.get("event") == "alarm" and "station_active" in payload:
            # the state after the event, retained; both in the one outbox row, so a
            # state that failed is sent again with its event (a subscriber may see the
            # event twice: its id and change tell). A state sent again late can replace
            # a newer one at the broker until the next change: "as_of" tells them apart.
            self._publish(self._state_topic(payload), _state_message(payload, payload.get("change"),
                                                                     payload.get("id")),
                          timeout_s, retain=True)

    def _publish(self, topic: str, message: dict[str, Any], timeout_s: float, retain: bool = False) -> None:
        info = self._client.publish(topic, json.dumps(message), qos=1, retain=retain)
        try:
            info.wait_for_publish(timeout=timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise ConnectionError(f"MQTT publish to {self.host}:{self.port} failed: {exc}") from exc
        if not info.is_published():
            raise TimeoutError(f"MQTT broker {self.host}:{self.port} did not acknowledge within {timeout_s} s")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _state_message(state: dict[str, Any], change: Optional[str], after_alarm: Optional[int] = None) -> dict[str, Any]:
    """The retained ``.../alarm_state`` message, from an alarm event or a station's state."""
    return {"line": state.get("line"), "station": state.get("station"), "active": state["station_active"],
            "alarm_code": state.get("station_alarm_code", 0), "after_alarm": after_alarm, "change": change,
            "as_of": state.get("station_state_as_of")}


def sinks_from_config(webhook_url: Optional[str], mqtt_url: Optional[str], timeout_s: float = 2.0,
                      retries: int = 3) -> list[Sink]:
    out: list[Sink] = []
    if webhook_url:
        out.append(WebhookSink(webhook_url, timeout_s=timeout_s, retries=retries))
    if mqtt_url:
        out.append(MqttSink(mqtt_url))
    return out
