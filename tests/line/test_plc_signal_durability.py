"""A reject the model never judged is on record before the PLC can read it (issue #10)."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select, text  # noqa: E402

from lineguard.line.orm import LineSignal, OutboxEvent  # noqa: E402
from lineguard.line.plc_modbus import ResultCode  # noqa: E402

from .conftest import png_bytes  # noqa: E402
from .test_plc_modbus import plc_cell  # noqa: E402,F401 - the fixture


class _Stalled:
    """A background recorder that never gets to run: what a crash right after the answer looks like."""

    def submit(self, *_a, **_k):
        return None

    def shutdown(self, wait: bool = True) -> None:
        return None


def _signals(st):
    with st.db.session() as s:
        return list(s.scalars(select(LineSignal)))


@pytest.mark.parametrize("case", ["timeout", "no_image"])
def test_a_reject_without_a_verdict_is_recorded_before_results_valid(plc_cell, case):  # noqa: F811
    if case == "timeout":
        st, srv, plc = plc_cell([png_bytes(30, seed=11)], delay_s=0.6, window_ms=150)
    else:
        st, srv, plc = plc_cell([LookupError("camera lost")])
    srv.hs._recorder = _Stalled()
    plc.trigger(tag=7)
    bits = plc.wait("valid", timeout=10)
    assert bits["ng"] and not bits["ok"]
    # the instant ResultsValid is high, the reject and its reason are committed
    (sig,) = _signals(st)
    want = ResultCode.TIMEOUT if case == "timeout" else ResultCode.NO_IMAGE
    assert (sig.signal, sig.result_code, sig.part_tag, sig.inspection_id) == ("NG", want, 7, None)
    assert sig.reason


def test_a_judged_part_keeps_the_line_signal_off_the_answer_path(plc_cell):  # noqa: F811
    # its inspection record is committed before the answer; the line signal follows it
    st, srv, plc = plc_cell([png_bytes(30, seed=12)])
    srv.hs._recorder = _Stalled()
    plc.trigger(tag=8)
    plc.wait("valid", timeout=10)
    assert _signals(st) == []
    assert st.get(plc.regs()["inspection_id"]).verdict == "OK"


def _refuse_signals(st, refuse: bool) -> None:
    # the database refuses the answers' rows (the parts' records still go in, so a late
    # verdict can be stored and linked); the handshake takes any failure the same way
    with st.db.session() as s:
        s.execute(text("CREATE TRIGGER refuse_signals BEFORE INSERT ON line_signals "
                       "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END") if refuse
                  else text("DROP TRIGGER refuse_signals"))


def _until(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _spooled_lines(st):
    return [line for f in (st.config.data_dir / "plc-unrecorded").glob("*.jsonl") for line in f.read_text().splitlines()]


def test_answers_the_database_refused_are_kept_and_recorded_in_order_once_it_takes_them(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=21), png_bytes(30, seed=22)], delay_s=0.6, window_ms=150,
                            verify_every_s=0.2)
    _refuse_signals(st, True)
    for tag in (7, 8):                                   # two rejects without a verdict: their only trace
        plc.trigger(tag=tag)
        bits = plc.wait("valid", timeout=10)
        assert bits["ng"] and plc.regs()["code"] == ResultCode.TIMEOUT      # the PLC has its answer all the same
        plc.pulse(1)
        plc.wait("ready", timeout=10)
    assert _until(lambda: len(st.query(limit=10)) == 2)      # the late verdicts, stored
    assert _until(lambda: len(_spooled_lines(st)) == 4)      # two answers, two late verdicts: in the data folder
    assert _signals(st) == [] and "2 answers to the PLC (modbus) are not recorded yet" in st.faults["plc_signals"]
    from lineguard.line.station import stops_parts
    assert not stops_parts("plc_signals")                    # the line runs on: degraded, not a 503
    _refuse_signals(st, False)
    assert _until(lambda: len(_signals(st)) == 2)
    rows = sorted(_signals(st), key=lambda r: r.id)
    assert [(r.part_tag, r.result_code, r.signal) for r in rows] == [(7, ResultCode.TIMEOUT, "NG"),
                                                                     (8, ResultCode.TIMEOUT, "NG")]
    assert sorted(r.late_inspection_id for r in rows) == sorted(r.id for r in st.query(limit=10))
    assert _spooled_lines(st) == [] and "plc_signals" not in st.faults
    with st.db.session() as s:
        sent = [e.payload["part_tag"] for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "line_signal")
                                                         .order_by(OutboxEvent.id))]
    assert sent == [7, 8]                                     # and out through the outbox, in order


def test_answers_kept_when_the_station_stopped_are_recorded_at_its_next_start(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([LookupError("camera lost")])
    _refuse_signals(st, True)
    plc.trigger(tag=9)
    plc.wait("valid", timeout=10)
    plc.close()
    srv.close()                                           # stopped before the database took it
    assert len(_spooled_lines(st)) == 1 and _signals(st) == []
    _refuse_signals(st, False)
    st2, _srv2, _plc2 = plc_cell([png_bytes(30, seed=23)])     # the next start, on the same data folder
    assert _until(lambda: len(_signals(st2)) == 1)
    (sig,) = _signals(st2)
    assert (sig.part_tag, sig.result_code, sig.reason) == (9, ResultCode.NO_IMAGE, "no image for the trigger: camera lost")
    assert _spooled_lines(st2) == []
