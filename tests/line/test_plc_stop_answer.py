"""A station stopped (SIGTERM) while a part is being judged: the PLC gets that part's answer
before the link closes, or the part's line signal says its delivery is not known (walk:
line-sim stopped with "Connection unexpectedly closed" after part 6030, yet part 6031 was
recorded NG 44 ms after the link closed, with an empty reason, and both sinks got it as an
ordinary answer: an MES counted a part the PLC had handled as unanswered)."""
from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select  # noqa: E402

from lineguard.line import plc_handshake  # noqa: E402
from lineguard.line.orm import LineSignal, OutboxEvent  # noqa: E402

from .conftest import png_bytes, until  # noqa: E402
from .test_plc_modbus import plc_cell  # noqa: E402,F401 - the fixture


def _judge_held_until_the_stop(st, srv, monkeypatch):
    """The part's verdict comes only once the station has begun to stop: the part is in
    inspection when SIGTERM arrives, as part 6031 was in the walk."""
    real = st.inspect

    def held(*args, **kwargs):
        srv.hs._closing.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "inspect", held)


def _generous_stop(monkeypatch, answer_s=60.0, ack_s=60.0):
    # the stop's own bounds far above a loaded machine's judging time: what is checked is the
    # order of answer and close, not how fast the station judges
    monkeypatch.setattr(plc_handshake, "STOP_WAIT_S", answer_s, raising=False)
    monkeypatch.setattr(plc_handshake, "STOP_ACK_S", ack_s, raising=False)


def _ack(plc) -> None:
    """ResultsAck raised and lowered; a stop waiting for the acknowledgement may close the
    link as soon as it is raised, before the PLC lowers it (seen on a loaded machine)."""
    plc.coil(1, True)
    try:
        plc.coil(1, False)
    except Exception:  # noqa: BLE001 - the link closed once acknowledged: what the stop is for
        pass


def _plc_reads_the_answer(plc, ack: bool = True, timeout: float = 60.0):
    """What a PLC program does after a trigger: polls ResultsValid, reads the result and
    acknowledges it. None when the link closed under it first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            bits = plc.bits()
            if bits["valid"]:
                regs = plc.regs()
                if ack:
                    _ack(plc)
                return regs
        except Exception:  # noqa: BLE001 - the link closed: the PLC never got an answer
            return None
        time.sleep(0.005)
    return None


def _signal(st, tag):
    with st.db.session() as s:
        rows = list(s.scalars(select(LineSignal).where(LineSignal.part_tag == tag)))
    assert len(rows) == 1, f"part {tag} should have one line signal, found {len(rows)}"
    return rows[0]


def _last_event(st, tag):
    """The newest line_signal event of the part: what an MES keyed on the part holds last."""
    with st.db.session() as s:
        events = [e.payload for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "line_signal")
                                               .order_by(OutboxEvent.id)) if e.payload["part_tag"] == tag]
    assert events, f"part {tag} sent no line_signal event to the outbox"
    return events[-1]


def _says_delivery_unknown(st, tag):
    row, event = _signal(st, tag), _last_event(st, tag)
    assert row.reason and row.reason.startswith("delivery_unknown"), (
        f"part {tag}'s answer may never have reached the PLC (put up after the link closed, or never "
        f"acknowledged), yet its line signal is recorded as an answer the PLC "
        f"had (reason {row.reason!r}): an MES counts it while the PLC handled the part as unanswered")
    assert event.get("delivery") == "unknown" and event["reason"].startswith("delivery_unknown"), (
        f"part {tag}'s outbox event does not say its delivery is unknown: {event}")


def test_a_part_in_inspection_at_a_stop_is_answered_before_the_link_closes(plc_cell, monkeypatch):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=81)], window_ms=60_000, verify_every_s=3600)
    _generous_stop(monkeypatch)
    _judge_held_until_the_stop(st, srv, monkeypatch)
    plc.trigger(tag=6031)
    plc.wait("busy")
    stopper = threading.Thread(target=srv.close, name="sigterm")
    stopper.start()
    got = _plc_reads_the_answer(plc)
    stopper.join(90)
    assert not stopper.is_alive(), "the station did not stop"
    assert got is not None and got["tag"] == 6031, (
        "the PLC link closed before the part in inspection was answered: the PLC never got part 6031's answer")
    # the PLC read and acknowledged it: recorded as told, one event, no doubt about delivery
    row = _signal(st, 6031)
    assert row.inspection_id == got["inspection_id"], (row.inspection_id, got)
    assert not (row.reason or "").startswith("delivery_unknown"), row.reason
    assert "delivery" not in _last_event(st, 6031)


def test_a_part_judged_after_the_plc_went_away_is_recorded_as_delivery_unknown(plc_cell, monkeypatch):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=82)], window_ms=60_000, verify_every_s=3600)
    _generous_stop(monkeypatch)
    _judge_held_until_the_stop(st, srv, monkeypatch)
    plc.trigger(tag=6032)
    plc.wait("busy")
    plc.close()                     # the PLC is gone (its connection dropped) before the verdict
    until(lambda: not srv._server.active_connections, "the station seeing the PLC's connection close")
    srv.close()
    _says_delivery_unknown(st, 6032)
    # the part was judged: its inspection record stays, and the row still points at it
    assert st.get(_signal(st, 6032).inspection_id) is not None


def test_an_answer_the_plc_read_but_never_acknowledged_at_a_stop_is_delivery_unknown(
        plc_cell, monkeypatch):  # noqa: F811
    # a PLC that stopped its program with the result up: no ResultsAck ever comes, so the stop's
    # short wait for it runs out and the link closes on an answer that may not have been taken
    st, srv, plc = plc_cell([png_bytes(30, seed=83)], window_ms=60_000, verify_every_s=3600)
    _generous_stop(monkeypatch, ack_s=0.2)
    _judge_held_until_the_stop(st, srv, monkeypatch)
    plc.trigger(tag=6033)
    plc.wait("busy")
    stopper = threading.Thread(target=srv.close, name="sigterm")
    stopper.start()
    _plc_reads_the_answer(plc, ack=False)
    stopper.join(90)
    assert not stopper.is_alive(), "the station did not stop"
    _says_delivery_unknown(st, 6033)
