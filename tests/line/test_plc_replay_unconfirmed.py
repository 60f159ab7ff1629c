"""An answer replayed from the journal that the PLC never acknowledged is not recorded as
told (walk: after a kill -9 between a part's record and ResultsValid, the replay wrote
line_signals rows with answered_at for triggers 1040 / tag 70 "NG" and 6020 / tag 493 "OK"
and sent them through the outbox: an MES counted part 493 as passed while the PLC handled
it as unanswered). No real kill here: the journal is left behind by a stalled recorder, as
tests/line/test_plc_journal.py does."""
from __future__ import annotations

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select  # noqa: E402

from lineguard.line.orm import LineSignal, OutboxEvent  # noqa: E402

from .conftest import png_bytes  # noqa: E402
from .test_plc_journal import _answer, _journal_lines  # noqa: E402
from .test_plc_modbus import plc_cell  # noqa: E402,F401 - the fixture
from .test_plc_signal_durability import _Stalled, _until  # noqa: E402


def _rows(st):
    with st.db.session() as s:
        return {r.part_tag: (r.signal, r.reason, r.inspection_id) for r in s.scalars(select(LineSignal))}


def _events(st):
    with st.db.session() as s:
        return {e.payload["part_tag"]: e.payload for e in s.scalars(
            select(OutboxEvent).where(OutboxEvent.event == "line_signal"))}


def test_an_answer_the_plc_never_acknowledged_is_replayed_as_delivery_unknown(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=s) for s in (61, 62)], window_ms=60_000, verify_every_s=3600)
    srv.hs._recorder = _Stalled()                  # nothing recorded before the stop: all in the journal
    _answer(plc)(70)                               # read and acknowledged by the PLC
    plc.trigger(tag=493)
    plc.wait("valid", timeout=30)                  # put up, then the station stops before any ResultsAck
    told = plc.regs()
    assert told["tag"] == 493
    plc.close()
    srv.close()
    assert len(_journal_lines(st)) >= 2
    st2, _srv2, _plc2 = plc_cell([png_bytes(30, seed=63)], window_ms=60_000, verify_every_s=3600)
    assert _until(lambda: set(_rows(st2)) == {70, 493} and set(_events(st2)) == {70, 493}), _rows(st2)
    rows, events = _rows(st2), _events(st2)
    # acknowledged: recorded as told, as before
    assert rows[70][1] is None and "delivery" not in events[70], (rows[70], events[70])
    # never acknowledged: the record and the event say its delivery is not known
    assert rows[493][1] and rows[493][1].startswith("delivery_unknown"), rows[493]
    assert events[493]["delivery"] == "unknown" and events[493]["reason"].startswith("delivery_unknown")
    # the part was judged: its inspection record stays, and the row still points at it
    assert rows[493][2] == told["inspection_id"] and st2.get(told["inspection_id"]) is not None
    assert _until(lambda: _journal_lines(st2) == [])


def test_the_acknowledgement_mark_survives_the_journals_compaction(tmp_path, monkeypatch):
    from lineguard.line import signal_spool
    monkeypatch.setattr(signal_spool, "JOURNAL_COMPACT_BYTES", 256)
    row = {"protocol": "modbus", "line": "L1", "station": "S1", "part_tag": 1, "recipe_id": 1, "product": "cell",
           "inspection_id": 1, "signal": "OK", "result_code": 1, "reason": None, "triggered_at": None,
           "answered_at": None}
    rewrites = []
    real = signal_spool.atomic_write_bytes
    monkeypatch.setattr(signal_spool, "atomic_write_bytes", lambda p, d: (rewrites.append(d), real(p, d)))
    journal = signal_spool.AnswerJournal(tmp_path, "modbus-L1-S1")
    journal.open()
    for n in range(1, 9):
        journal.add(f"{n}@t", dict(row, trigger_seq=n, note="x" * 40), {"event": "line_signal"})
    journal.delivered("7@t")
    for n in range(1, 7):                          # recorded: the file is rewritten with those waiting
        journal.done(f"{n}@t")
    journal.close()
    assert rewrites, "the journal was compacted"
    left = {key: delivered for key, _row, _event, delivered in
            signal_spool.AnswerJournal(tmp_path, "modbus-L1-S1").open()}
    assert left["7@t"] is True and left["8@t"] is False, left
