"""A reject the model never judged is on record before the PLC can read it (issue #10)."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import event, select, text  # noqa: E402

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
    # its inspection record is committed before the answer; the line signal follows it.
    # A window no loaded CI machine overruns: past it the part is a timeout reject, whose
    # signal is written before the answer (the test above), and this test failed under load
    st, srv, plc = plc_cell([png_bytes(30, seed=12)], window_ms=60_000)
    srv.hs._recorder = _Stalled()
    plc.trigger(tag=8)
    plc.wait("valid", timeout=10)
    assert _signals(st) == []
    assert st.get(plc.regs()["inspection_id"]).verdict == "OK"


class _Refusing:
    """The station's database refuses every write, as a full disk or a read-only file do
    (SQLite's own refusal: each pooled connection made query-only), until ``lift``."""

    def __init__(self, st):
        self.st = st
        self._set(True)

    def _set(self, on: bool):
        def checkout(dbapi_conn, _record, _proxy):
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA query_only={int(on)}")
            cur.close()
        if hasattr(self, "_listener"):
            event.remove(self.st.db.engine, "checkout", self._listener)
        self._listener = checkout
        event.listen(self.st.db.engine, "checkout", checkout)

    def lift(self):
        self._set(False)


def _until(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _spooled_lines(st, suffix=".jsonl"):
    return [line for f in (st.config.data_dir / "plc-unrecorded").glob("*" + suffix)
            if not f.name.endswith(".refused.jsonl") or suffix != ".jsonl"
            for line in f.read_text().splitlines()]


def _sent(st):
    with st.db.session() as s:
        return [e.payload["part_tag"] for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "line_signal")
                                                         .order_by(OutboxEvent.id))]


def _answer(plc, tag):
    plc.trigger(tag=tag)
    bits = plc.wait("valid", timeout=10)
    assert bits["ng"]                        # the PLC has its answer all the same
    code = plc.regs()["code"]
    plc.pulse(1)                             # ResultsAck
    if bits["error"]:
        plc.pulse(2)                         # ClearError (a camera fault holds the station in error)
    plc.wait("ready", timeout=10)
    return code


def test_answers_the_database_refused_are_kept_and_recorded_in_order_once_it_takes_them(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=21), png_bytes(30, seed=22)], delay_s=0.3, window_ms=100,
                            verify_every_s=0.2)
    refusing = _Refusing(st)
    assert [_answer(plc, 7), _answer(plc, 8)] == [ResultCode.TIMEOUT, ResultCode.TIMEOUT]   # their only trace
    assert len(_spooled_lines(st)) == 2 and _signals(st) == []      # in the data folder, synced
    assert "2 answers to the PLC (modbus) are not recorded yet" in st.faults["plc_signals"]
    assert "kept in " + str(st.config.data_dir) in st.faults["plc_signals"]
    from lineguard.line.station import stops_parts
    assert not stops_parts("plc_signals")                    # the line runs on: degraded, not a 503
    refusing.lift()
    assert _until(lambda: len(_signals(st)) == 2)
    rows = sorted(_signals(st), key=lambda r: r.id)
    assert [(r.part_tag, r.result_code, r.signal) for r in rows] == [(7, ResultCode.TIMEOUT, "NG"),
                                                                     (8, ResultCode.TIMEOUT, "NG")]
    # the spool emptied and the fault cleared just after the rows commit (waited for: a slow
    # machine checked in between)
    assert _until(lambda: _spooled_lines(st) == [] and "plc_signals" not in st.faults), st.faults
    assert _sent(st) == [7, 8]                                # and out through the outbox, in order


def test_a_late_verdict_of_a_kept_answer_is_linked_when_it_is_written(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=24)], delay_s=2.0, window_ms=100, verify_every_s=4)
    refusing = _Refusing(st)
    assert _answer(plc, 5) == ResultCode.TIMEOUT
    refusing.lift()                 # back before the late verdict (2 s): it is stored, and linked
    assert _until(lambda: len(_signals(st)) == 1 and len(st.query(limit=5)) == 1)
    (late,) = st.query(limit=5)
    assert _until(lambda: _signals(st)[0].late_inspection_id == late.id)


def test_an_answer_refused_for_a_reason_of_its_own_is_set_aside_not_holding_back_the_next(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([LookupError("camera lost"), png_bytes(30, seed=25)], verify_every_s=0.2)
    with st.db.session() as s:             # a row the database will never take (not a refusal to write)
        s.execute(text("CREATE TRIGGER no_tag_7 BEFORE INSERT ON line_signals WHEN NEW.part_tag = 7 "
                       "BEGIN SELECT RAISE(ABORT, 'part tag 7 refused'); END"))
    assert _answer(plc, 7) == ResultCode.NO_IMAGE
    assert _until(lambda: "plc_signals" not in st.faults)
    (aside,) = _spooled_lines(st, ".refused.jsonl")
    assert '"part_tag":7' in aside
    plc.trigger(tag=8)
    plc.wait("valid", timeout=10)
    assert _until(lambda: [r.part_tag for r in _signals(st)] == [8])


def test_answers_kept_when_the_station_stopped_are_recorded_at_its_next_start_once(plc_cell, monkeypatch):  # noqa: F811
    from lineguard.line.signal_spool import SignalSpool
    st, srv, plc = plc_cell([LookupError("camera lost")])
    refusing = _Refusing(st)
    _answer(plc, 9)
    plc.close()
    srv.close()                                           # stopped before the database took it
    assert len(_spooled_lines(st)) == 1 and _signals(st) == []
    refusing.lift()
    # the next start writes it; a crash right after its commit leaves it in the file too...
    monkeypatch.setattr(SignalSpool, "remove", lambda self, keys, set_aside=False: None)
    st2, srv2, _plc2 = plc_cell([png_bytes(30, seed=23)])
    assert _until(lambda: len(_signals(st2)) == 1)
    (sig,) = _signals(st2)
    assert (sig.part_tag, sig.result_code, sig.reason) == (9, ResultCode.NO_IMAGE, "no image for the trigger: camera lost")
    srv2.close()
    assert len(_spooled_lines(st2)) == 1
    monkeypatch.undo()
    st3, _srv3, _plc3 = plc_cell([png_bytes(30, seed=26)])     # ...and the start after that: not twice
    assert _until(lambda: _spooled_lines(st3) == [])
    assert len(_signals(st3)) == 1 and _sent(st3) == [9]


def test_a_second_link_like_a_running_one_is_refused_before_it_listens(plc_cell):  # noqa: F811
    from lineguard.line.plc_modbus import ModbusStation
    from lineguard.line.signal_spool import SpoolBusy
    st, srv, plc = plc_cell([png_bytes(30, seed=27)])
    with pytest.raises(SpoolBusy, match="own station name or data folder"):
        ModbusStation(st, lambda: (b"", ""), {1: "cell"}, line="L1", station_name="S1", port=srv.port + 1).start()


def test_answers_kept_in_memory_only_say_so(plc_cell, sqlite_station):  # noqa: F811
    st = sqlite_station()
    (st.config.data_dir / "plc-unrecorded").write_text("a file where the folder goes")     # cannot be written
    st, srv, plc = plc_cell([LookupError("camera lost")])
    _Refusing(st)
    _answer(plc, 4)
    assert "kept in memory only" in st.faults["plc_signals"] and "a restart now loses them" in st.faults["plc_signals"]


def test_an_answer_after_a_line_cut_short_stays_whole(tmp_path):
    # a crash (or a full disk) mid-append leaves half a line: the next answer must not join it
    import datetime as dt

    from lineguard.line.signal_spool import SignalSpool
    folder = tmp_path / "plc-unrecorded"
    folder.mkdir()
    (folder / "modbus-x.jsonl").write_bytes(b'{"answer":"1@2026-12-04T10:00:00","row":{"protoc')
    spool = SignalSpool(folder, "modbus-x")
    spool.open()
    assert spool.answers() == 0                                  # the cut line: skipped
    row = dict(protocol="modbus", line="L1", station="S1", trigger_seq=2, part_tag=5, recipe_id=1, product="cell",
               inspection_id=None, signal="NG", result_code=11, reason="camera lost",
               triggered_at=dt.datetime(2026, 12, 4, 10, 0, 1), answered_at=dt.datetime(2026, 12, 4, 10, 0, 2))
    spool.add_answer("2@x", row, {"part_tag": 5})
    spool.close()
    again = SignalSpool(folder, "modbus-x")
    again.open()                                                 # the next start reads it whole
    ((key, read, event),) = again.taken()
    assert (key, read, event) == ("2@x", row, {"part_tag": 5})
    again.close()
