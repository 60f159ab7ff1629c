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
import ssl
import sys
import time
import uuid
from typing import Any, Optional
from urllib.parse import parse_qsl, urlparse, urlsplit

from .outbox import Refused

log = logging.getLogger("lineguard.sinks")


class Sink:
    name = "sink"
    key = "sink"      # the receiver, e.g. "mqtt:127.0.0.1:1883"
    # outbox events this receiver is never sent: the outbox marks their rows skipped for it
    # (not delivered, not in its backlog) and never holds a line back on one
    not_carried: tuple[str, ...] = ()

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

    2xx is delivered; 400, 413, 415 and 422 mean the receiver refuses this message for
    good (:class:`Refused`), except an alarm's (event ``alarm``): an alarm is never given
    up, it is retried like any failure (a refused alarm was a stop no pager or andon ever
    showed). Every other answer (5xx, 404 of a wrong URL, 401 of a missing token, 429)
    is retried, so a misconfigured receiver holds results instead of losing them.
    307 and 308 are followed (they keep the method and the body); 301, 302 and 303 are
    not (a client would turn the POST into a GET): the error names where they point.

    The outbox calls :meth:`send_once`: one try, and its own per-line backoff after a
    failure, so a line whose receiver fails or hangs costs the other lines at most one
    ``timeout_s`` per look. :meth:`send` (a direct call) adds ``retries`` quick tries
    after a refused connection or an error answer, never after a read timeout or a
    connection lost after the request went: the receiver may have it, and a slow one was
    sent each message again and again (the 4 tries of every outbox attempt).
    """

    name = "webhook"
    # a station's state written again for MQTT's retained messages: nothing new for a webhook
    not_carried = ("alarm_state",)
    _REFUSED = (400, 413, 415, 422)
    _FOLLOWED = (307, 308)          # same method, same body
    _NOT_FOLLOWED = (301, 302, 303)  # a POST becomes a GET there: never followed
    _MAX_HOPS = 5

    def __init__(self, url: str, timeout_s: float = 10.0, retries: int = 3, backoff_s: float = 0.5):
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
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        # httpx logs every request with its whole URL at INFO ("HTTP Request: POST
        # http://user:password@host/hook?token=..."): into the station's log, which names a
        # webhook by its label only. Left to whoever configured httpx's logger on purpose.
        httpx_log = logging.getLogger("httpx")
        if httpx_log.level == logging.NOTSET:
            httpx_log.setLevel(logging.WARNING)

    @property
    def label(self) -> str:
        return self._label

    def send(self, payload: dict[str, Any]) -> None:
        """Deliver with up to ``retries`` quick tries more (see the class docstring)."""
        self._send(payload, self.retries)

    def send_once(self, payload: dict[str, Any]) -> None:
        """Deliver with one try (the outbox's way: it backs off per line itself)."""
        self._send(payload, 0)

    def _send(self, payload: dict[str, Any], retries: int) -> None:
        if payload.get("event") in self.not_carried:
            return      # not posted (the outbox marks such rows skipped without calling here)
        last: Optional[str] = None
        tries = 0
        for attempt in range(retries + 1):
            tries += 1
            try:
                self._post_once(payload)
                return
            except Refused:
                raise
            except _MaybeTaken as exc:
                last = str(exc)
                break           # the receiver may have it: the outbox tries again after its backoff
            except Exception as exc:  # noqa: BLE001 - network errors and error answers of every kind
                last = str(exc)
            if attempt < retries:
                time.sleep(self.backoff_s * (2 ** attempt))
        raise RuntimeError(f"webhook {self.shown} failed after {tries} tries ({last})")

    def _post_once(self, payload: dict[str, Any]) -> None:
        """One delivery (following 307/308); raises Refused, _MaybeTaken or RuntimeError."""
        import httpx

        headers = {"Idempotency-Key": str(payload.get("message_id", ""))}
        url = self.url
        for _ in range(self._MAX_HOPS + 1):
            try:
                r = self._client.post(url, json=payload, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise RuntimeError(self._said(exc, url)) from exc     # never reached it: safe to try again
            except httpx.TransportError as exc:
                # a read timeout or a connection lost after the request went: it may be taken
                raise _MaybeTaken(self._said(exc, url)) from exc
            if 200 <= r.status_code < 300:
                return
            location = r.headers.get("location")
            if r.status_code in self._FOLLOWED and location:
                url = str(r.request.url.join(location))
                continue
            if r.status_code in self._NOT_FOLLOWED:
                where = self._redirect_target(str(r.request.url.join(location))) if location else "nowhere"
                raise RuntimeError(f"HTTP {r.status_code} redirect to {where}, not followed for a POST "
                                   "(it would become a GET): give the webhook URL it points to")
            if r.status_code in self._REFUSED:
                if payload.get("event") == "alarm":
                    # an alarm is never given up: kept and retried (with its line's later messages)
                    raise RuntimeError(f"HTTP {r.status_code} for an alarm (an alarm is never dropped, "
                                       f"it is retried): {r.text[:200]}")
                raise Refused(f"HTTP {r.status_code}: {r.text[:200]}")
            raise RuntimeError(f"HTTP {r.status_code}")
        raise RuntimeError(f"more than {self._MAX_HOPS} redirects")

    def _redirect_target(self, target: str) -> str:
        """Where a 301/302/303 points, as its error says it (/health, open to anyone who
        reaches the station): scheme, host, port and path, so the URL can be given, without
        a user or password, with each query value masked (a token goes there). A path that
        is this webhook's own (an http URL moved to https) is said so, not spelled out: it
        may hold the webhook's token, which /health never shows."""
        t, own = urlsplit(target), urlsplit(self.url)
        where = t.netloc.rpartition("@")[2]
        path = t.path or "/"
        if own.path.strip("/") and path.rstrip("/") == own.path.rstrip("/"):
            path = "/<this webhook's path>" + ("/" if path.endswith("/") and not own.path.endswith("/") else "")
        query = "&".join(f"{k}=***" for k, _ in parse_qsl(t.query, keep_blank_values=True))
        return f"{t.scheme}://{where}{path}" + (f"?{query}" if query else "")

    def _said(self, exc: Exception, url: str) -> str:
        from .config import without_secrets
        text = f"{type(exc).__name__}: {exc}".replace(self.url, self.shown)
        return text.replace(url, without_secrets(url, "http") or "(a redirect)") if url != self.url else text

    def close(self) -> None:
        self._client.close()


class _MaybeTaken(Exception):
    """The request went out and no answer came (a read timeout, a connection lost): the
    receiver may have taken it, so it is not sent again at once."""


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
    ``.../review`` (an operator's review), ``.../signal`` (an answer to the PLC, event
    ``line_signal``), ``.../alarm`` (a line alarm raised or
    acknowledged) or ``lineguard/<line>/_/model`` (a model change; line ``_all`` for a
    model of every line, but the line itself for one given back to it). With each alarm message the station's active alarms go,
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
        self.tls = tls
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
        # why the last try to connect failed, where it says more than "not connected" (a TLS
        # handshake with a plain broker); None once connected
        self._connect_failure: Optional[str] = None
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        # Async connect + network thread: a broker that is down at start-up is retried.
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if not getattr(reason_code, "is_failure", False):
            self._connect_failure = None
            self.connections += 1

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this inside its handler of the connection's OSError (and passes it no
        # error): the error in hand is the one. A plain broker's port answered a TLS
        # handshake with a protocol error and a closed connection, and /health said only
        # "not connected", as of a broker that is down.
        exc = sys.exc_info()[1]
        self._connect_failure = _tls_failure(exc) if self.tls and exc is not None else None

    def _state_topic(self, payload: dict[str, Any]) -> str:
        return self.topic({**payload, "event": "alarm"}).rsplit("/", 1)[0] + "/alarm_state"

    def topic(self, payload: dict[str, Any]) -> str:
        event = payload.get("event", "inspection")
        if event == "model":
            # a line given back to the model of every line (``for_line``) is news for that
            # line: on _all, a subscriber to lineguard/L1/# never heard that L1 changed model
            line = payload.get("for_line") or payload.get("line") or "_all"
            return f"{self.topic_prefix}/{_topic_level(line)}/_/model"
        line = _topic_level(payload.get("line") or "unknown")
        station = _topic_level(payload.get("station") or "unknown")
        # a PLC answer (event line_signal) has its own leaf: /result is the parts' verdicts only
        leaf = event if event in ("review", "alarm") else "signal" if event == "line_signal" else "result"
        return f"{self.topic_prefix}/{line}/{station}/{leaf}"

    def send(self, payload: dict[str, Any], timeout_s: float = 5.0) -> None:
        # Not handed to paho while disconnected: it would queue the message in memory,
        # where a crash loses it; the outbox row is the queue and is retried instead.
        if not self._client.is_connected():
            why = self._connect_failure
            raise ConnectionError(f"MQTT broker {self.host}:{self.port} is not connected" + (f": {why}" if why else ""))
        if payload.get("event") == "alarm_state":     # a station's state written again after a connection
            self._publish(self._state_topic(payload), _state_message(payload, payload.get("change"),
                                                                     message_id=payload.get("message_id")),
                          timeout_s, retain=True)
            return
        self._publish(self.topic(payload), payload, timeout_s)
        if payload.get("event") == "alarm" and "station_active" in payload:
            # the state after the event, retained; both in the one outbox row, so a
            # state that failed is sent again with its event (a subscriber may see the
            # event twice: its id and change tell). A state sent again late can replace
            # a newer one at the broker until the next change: "as_of" tells them apart.
            self._publish(self._state_topic(payload), _state_message(payload, payload.get("change"),
                                                                     payload.get("id"),
                                                                     _state_id(payload.get("message_id"))),
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


def _tls_failure(exc: BaseException) -> Optional[str]:
    """What a failed connection to an mqtts:// broker says, where its TLS handshake failed
    (None: it failed before, the broker down or unreachable)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS handshake failed, the broker's certificate was not accepted ({exc.verify_message or exc}): "
                "check the broker's certificate and the host name in --mqtt")
    tb = exc.__traceback__
    in_handshake = isinstance(exc, ssl.SSLError)
    while tb is not None and not in_handshake:
        # a plain broker may reset the connection instead: told by where it failed
        in_handshake = tb.tb_frame.f_code.co_name in ("_ssl_wrap_socket", "do_handshake")
        tb = tb.tb_next
    if not in_handshake:
        return None
    return (f"TLS handshake failed ({type(exc).__name__}: {exc}): is the broker's port a TLS one? "
            "mqtt:// for a plain port")


def _state_id(alarm_message_id: Any) -> Optional[str]:
    """The ``message_id`` of the state published with an alarm message: its own (a consumer
    keeping the ids it has seen across topics took the state for the alarm seen already),
    the same each time that row goes again (derived from the alarm's)."""
    if not alarm_message_id:
        return None
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lineguard:alarm_state:{alarm_message_id}"))


def _state_message(state: dict[str, Any], change: Optional[str], after_alarm: Optional[int] = None,
                   message_id: Optional[str] = None) -> dict[str, Any]:
    """The retained ``.../alarm_state`` message, from an alarm event or a station's state;
    with ``message_id`` and ``outbox_id`` like every message (the row that carried it)."""
    return {"line": state.get("line"), "station": state.get("station"), "active": state["station_active"],
            "alarm_code": state.get("station_alarm_code", 0), "after_alarm": after_alarm, "change": change,
            "as_of": state.get("station_state_as_of"), "message_id": message_id,
            "outbox_id": state.get("outbox_id")}


def sinks_from_config(webhook_url: Optional[str], mqtt_url: Optional[str], timeout_s: float = 10.0,
                      retries: int = 3) -> list[Sink]:
    out: list[Sink] = []
    if webhook_url:
        out.append(WebhookSink(webhook_url, timeout_s=timeout_s, retries=retries))
    if mqtt_url:
        out.append(MqttSink(mqtt_url))
    return out
