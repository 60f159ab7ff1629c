"""A station stopping while its PLC link is still open (the stop waits for the part in
inspection): a part triggered in that wait is answered and recorded as any part the station
was not ready for; the correction of an answer the PLC never acknowledged names the event it
corrects; with two links, both stop taking parts before either is drained."""
from __future__ import annotations

import logging
import threading
import time

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select  # noqa: E402

from lineguard.line import plc_handshake  # noqa: E402
from lineguard.line.orm import LineSignal, OutboxEvent  # noqa: E402
from lineguard.line.plc_handshake import ResultCode  # noqa: E402
from lineguard.line.plc_modbus import ModbusStation  # noqa: E402

from .conftest import png_bytes, until  # noqa: E402
from .test_plc_stop_answer import _ack, _generous_stop, _plc_reads_the_answer  # noqa: E402
from .test_plc_modbus import Plc, _free_port, plc_cell  # noqa: E402,F401 - the fixture


def _rows(st):
    with st.db.session() as s:
        return [(r.part_tag, r.result_code, r.reason or "")
                for r in s.scalars(select(LineSignal).order_by(LineSignal.id))]


def _events(st, tag):
    with st.db.session() as s:
        return [(e.id, e.payload) for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "line_signal")
                                                     .order_by(OutboxEvent.id)) if e.payload["part_tag"] == tag]


def test_a_part_triggered_while_the_stop_waits_for_the_acknowledgement_is_answered_and_recorded(
        plc_cell, monkeypatch, caplog):  # noqa: F811
    # the reviewer's case: part 101 answered, the stop begins, and before acknowledging 101 the
    # PLC triggers part 102 (the line does not know the station is stopping). The link is still
    # open: part 102 must get Error 20 and its line signal, as before the stop waited; it was
    # dropped with no row, no fault, not counted, while the PLC waited for an answer
    st, srv, plc = plc_cell([png_bytes(30, seed=141)], window_ms=60_000, verify_every_s=3600)
    _generous_stop(monkeypatch)
    plc.trigger(tag=101)
    plc.wait("valid")
    until(lambda: any(r[0] == 101 for r in _rows(st)), "part 101's line signal written")
    stopper = threading.Thread(target=srv.close, name="sigterm")
    caplog.set_level(logging.INFO, logger="lineguard.plc")
    stopper.start()
    until(srv.hs._closing.is_set, "the stop beginning (TriggerReady dropped, the link held open)")
    plc.trigger(tag=102)    # taken or refused before the write returns (the server's own thread)
    refused, error_code = plc.bits(), plc.regs()["error_code"]
    _ack(plc)               # the PLC acknowledges part 101: the stop goes on
    stopper.join(90)
    assert refused["error"] and error_code == ResultCode.NOT_READY, (
        f"part 102, triggered while the stop waited with the link open, got no Error 20: {refused}, error code "
        f"{error_code}; the PLC waits for a ResultsValid that never comes")
    assert not refused["ok"] and not refused["ng"], (
        f"part 102 came while part 101's result was unread: OK/NG beside ResultsValid is 101's, not 102's: {refused}")
    assert not stopper.is_alive(), "the station did not stop"
    rows = _rows(st)
    part_102 = [r for r in rows if r[0] == 102]
    assert len(part_102) == 1, (
        f"part 102, triggered while the stop waited with the link open, left no line signal (rows {rows}): the shift "
        "report and the MES never learn of a part the PLC handled as unanswered")
    assert part_102[0][1] == ResultCode.NOT_READY and "stopping" in part_102[0][2], part_102
    assert srv.hs.counts["triggers"] == 2, f"part 102 not counted as a trigger: {srv.hs.counts}"
    said = [r.getMessage() for r in caplog.records if "102" in r.getMessage()]
    assert said and not any("link is closed" in m for m in said), (
        f"the log says the PLC link is closed while it was still open and answering: {said}")


def test_the_correction_of_an_answer_never_acknowledged_names_the_event_it_corrects(
        plc_cell, monkeypatch):  # noqa: F811
    # part 301's answer is up and recorded as told; the PLC never acknowledges it before the
    # link closes, so a second line_signal event says its delivery is unknown. A consumer keyed
    # on message_id (as the README tells it) must be able to tell it corrects the first one,
    # not a second answer for the part
    st, srv, plc = plc_cell([png_bytes(30, seed=142)], window_ms=60_000, verify_every_s=3600)
    _generous_stop(monkeypatch, ack_s=0.2)
    plc.trigger(tag=301)
    plc.wait("valid")
    until(lambda: _events(st, 301), "part 301's line_signal event written")
    srv.close()
    events = _events(st, 301)
    assert len(events) == 2, f"part 301 should have its answer and one correction, found {events}"
    (first_id, first), (_second_id, second) = events
    assert second.get("delivery") == "unknown", second
    assert second.get("change") == "delivery_unknown", (
        f"the second event of part 301 does not say what it changes: {second}")
    assert second.get("corrects_outbox_id") == first_id and second.get("corrects_message_id") == first["message_id"], (
        f"the correction of part 301 does not name the event it corrects (outbox id {first_id}, message id "
        f"{first['message_id']}): {second}")
    assert second["message_id"] != first["message_id"]


def _held_part(st, srv, monkeypatch, release: threading.Event):
    """The part in inspection gets its verdict only once the test says so."""
    real = st.inspect

    def held(*args, **kwargs):
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "inspect", held)


def test_two_plc_links_both_stop_taking_parts_before_either_is_drained(plc_cell, monkeypatch, request):  # noqa: F811
    # two lines on one station: line A has a part in inspection at the stop, line B is idle.
    # Closed one after the other, B kept TriggerReady high, and took parts, all the while A was
    # drained. The stop's first step on every link drops TriggerReady on both at once
    st_a, srv_a, plc_a = plc_cell([png_bytes(30, seed=143)], window_ms=60_000, verify_every_s=3600)
    # line B's link on the same station, as serve makes a second link (its own line and name)
    st_b = st_a
    srv_b = ModbusStation(st_b, lambda: (png_bytes(30, seed=144), "frame.png"), {1: "cell"}, line="L2",
                          station_name="S2", port=_free_port(), window_ms=60_000, verify_every_s=3600).start()
    plc_b = Plc(srv_b.port)
    request.addfinalizer(srv_b.close)
    request.addfinalizer(plc_b.close)
    _generous_stop(monkeypatch)
    release = threading.Event()
    _held_part(st_a, srv_a, monkeypatch, release)
    plc_a.trigger(tag=201)
    plc_a.wait("busy")
    for srv in (srv_a, srv_b):
        srv.begin_stop()
    assert not plc_b.bits()["ready"], "line B still TriggerReady while the station stops"
    plc_b.trigger(tag=202)           # B's PLC did not look: the part is answered not ready, and recorded
    answer = plc_b.wait("valid")
    assert answer["error"] and not answer["ok"], f"line B took a part while the station was stopping: {answer}"
    part_202 = until(lambda: [r for r in _rows(st_b) if r[0] == 202], "line B's part 202 recorded")
    assert part_202[0][1] == ResultCode.NOT_READY and "stopping" in part_202[0][2], part_202
    _ack(plc_b)
    deadline = plc_handshake.stop_deadline()      # one wait for every link of the stop
    release.set()
    closing_a = threading.Thread(target=srv_a.close, kwargs={"deadline": deadline}, name="sigterm-a")
    closing_a.start()
    got = _plc_reads_the_answer(plc_a)
    closing_a.join(90)
    srv_b.close(deadline=deadline)
    assert not closing_a.is_alive(), "line A's link did not close"
    assert got is not None and got["tag"] == 201, "line A's part in inspection was not answered before its link closed"


class _NoSleepHere:
    """time, except that a sleep on the test's own thread is an error: a stop whose shared
    deadline has passed must not wait on."""

    def __init__(self, real, thread):
        self._real, self._thread = real, thread

    def __getattr__(self, name):
        return getattr(self._real, name)

    def sleep(self, s):
        if threading.current_thread() is self._thread:
            raise AssertionError("the stop waited for the part in inspection past the stop's shared deadline")
        self._real.sleep(s)


def test_a_link_closed_after_the_shared_deadline_does_not_wait_its_own_bound(plc_cell, monkeypatch):  # noqa: F811
    # the second link of a stop closed once the deadline shared by both has passed: waiting its
    # own full bound again doubled the stop (a service manager kills it past its timeout)
    st, srv, plc = plc_cell([png_bytes(30, seed=145)], window_ms=60_000, verify_every_s=3600)
    _generous_stop(monkeypatch)
    release = threading.Event()
    _held_part(st, srv, monkeypatch, release)
    plc.trigger(tag=401)
    plc.wait("busy")
    monkeypatch.setattr(plc_handshake, "time", _NoSleepHere(time, threading.current_thread()))
    try:
        drained = srv.hs.drain(deadline=time.monotonic() - 1)
    finally:
        monkeypatch.setattr(plc_handshake, "time", time)
        release.set()
    assert drained is False, "the part in inspection was not answered, yet the stop said nothing is left unanswered"
