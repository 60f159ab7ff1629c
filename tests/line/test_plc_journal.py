"""Every answer to the PLC survives a kill of the station, and no trigger number is handed
out twice (issue: 61 of 149 answered parts lost, their numbers reused, after a kill -9
while a table lock held the recorder's writes)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select  # noqa: E402

from lineguard.line.orm import LineSignal, OutboxEvent  # noqa: E402

from .conftest import png_bytes  # noqa: E402
from .test_plc_modbus import Plc, _free_port, plc_cell  # noqa: E402,F401 - the fixture
from .test_plc_signal_durability import _Stalled, _until  # noqa: E402


def _signals(st):
    with st.db.session() as s:
        return [(r.part_tag, r.trigger_seq, r.signal) for r in s.scalars(select(LineSignal).order_by(LineSignal.id))]


def _sent(st):
    with st.db.session() as s:
        return [e.payload["part_tag"] for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "line_signal")
                                                         .order_by(OutboxEvent.id))]


def _journal_lines(st):
    return [line for f in (st.config.data_dir / "plc-unrecorded").glob("*.journal.jsonl")
            for line in f.read_text().splitlines() if line.strip()]


def _answer(plc):
    def one(tag):
        plc.trigger(tag=tag)
        plc.wait("valid", timeout=30)
        seq = plc.regs()["seq"]
        plc.pulse(1)                                   # ResultsAck
        plc.wait("ready", timeout=30)
        return seq
    return one


def test_answers_the_recorder_had_not_written_are_on_disk_and_recorded_once_at_the_next_start(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=s) for s in (51, 52, 53)], window_ms=60_000, verify_every_s=3600)
    srv.hs._recorder = _Stalled()                  # the recorder held (a locked table), then the station stops
    began = time.monotonic()
    seqs = [_answer(plc)(tag) for tag in (71, 72, 73)]
    assert _signals(st) == []
    assert len(_journal_lines(st)) == 3, "each answer was on the disk before ResultsValid"
    time.sleep(0.5)                                # the oldest answer has waited at least that long
    snap = srv.snapshot()
    assert snap["unrecorded_answers"] == 3
    assert 0.5 <= snap["unrecorded_oldest_s"] <= time.monotonic() - began + 0.1, snap
    plc.close()
    srv.close()
    st2, _srv2, plc2 = plc_cell([png_bytes(30, seed=54)], window_ms=60_000, verify_every_s=3600)
    assert _until(lambda: [t for t, _s, _g in _signals(st2)] == [71, 72, 73])
    assert [s for _t, s, _g in _signals(st2)] == seqs
    assert _sent(st2) == [71, 72, 73]
    assert _until(lambda: _journal_lines(st2) == [])
    assert _answer(plc2)(74) > max(seqs), "a number the PLC got is never handed out again"


def test_a_journal_left_after_its_answers_were_recorded_writes_nothing_twice(plc_cell, monkeypatch):  # noqa: F811
    from lineguard.line.signal_spool import AnswerJournal
    # recorded, then killed before the journal forgot them
    monkeypatch.setattr(AnswerJournal, "done", lambda self, key: None)
    st, srv, plc = plc_cell([png_bytes(30, seed=s) for s in (55, 56)], window_ms=60_000, verify_every_s=3600)
    for tag in (81, 82):
        _answer(plc)(tag)
    assert _until(lambda: len(_signals(st)) == 2)
    plc.close()
    srv.close()
    assert len(_journal_lines(st)) == 2
    monkeypatch.undo()
    st2, _srv2, _plc2 = plc_cell([png_bytes(30, seed=57)], verify_every_s=3600)
    assert _until(lambda: _journal_lines(st2) == [] and "plc_signals" not in st2.faults), st2.faults
    assert [t for t, _s, _g in _signals(st2)] == [81, 82] and _sent(st2) == [81, 82]


def test_a_recorder_that_lags_shows_on_health_and_past_a_while_as_a_housekeeping_fault(plc_cell):  # noqa: F811
    from lineguard.line.station import stops_parts
    st, srv, plc = plc_cell([png_bytes(30, seed=58)], window_ms=60_000, verify_every_s=3600)
    srv.hs._recorder = _Stalled()
    srv.hs.backlog_fault_s = 0.3
    _answer(plc)(91)
    assert srv.snapshot()["unrecorded_answers"] == 1
    assert _until(lambda: "plc_backlog_signals" in st.faults), st.faults
    assert "1 answers to the PLC (modbus) wait to be recorded" in st.faults["plc_backlog_signals"]
    assert not stops_parts("plc_backlog_signals")            # the line runs on


_STATION = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from fake_inspector import FakeInspector, png_bytes
    from lineguard.line.config import StationConfig
    from lineguard.line.plc_modbus import ModbusStation
    from lineguard.line.station import Station

    class Stalled:                       # the recorder held behind a locked table
        def submit(self, *a, **k):
            return None
        def shutdown(self, wait=True):
            return None

    st = Station(StationConfig(data_dir=Path(sys.argv[1])), loader=FakeInspector.load, trainer=FakeInspector.fit)
    if not st.models.list("cell"):
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    srv = ModbusStation(st, lambda: (png_bytes(30, seed=59), "p.png"), {1: "cell"}, line="L1", station_name="S1",
                        port=int(sys.argv[2]), window_ms=60000, verify_every_s=3600).start()
    srv.hs._recorder = Stalled()
    print("listening", flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("journal", ["kept", "lost"])
def test_answers_and_trigger_numbers_survive_a_kill_9_of_the_station(plc_cell, tmp_path, journal):  # noqa: F811
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__import__("lineguard").__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", _STATION, str(tmp_path / "data"), str(port),
                             str(Path(__file__).resolve().parents[1] / "server")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "listening" in line, line + proc.stdout.read() if proc.poll() is not None else line
        plc = Plc(port)
        seqs = [_answer(plc)(tag) for tag in (61, 62, 63)]
        plc.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        proc.stdout.close()
    if journal == "lost":
        # the answers gone (the journal deleted): their trigger numbers are still never reused
        for f in (tmp_path / "data" / "plc-unrecorded").glob("*.journal.jsonl"):
            f.unlink()
        st, _srv, plc2 = plc_cell([png_bytes(30, seed=60)], window_ms=60_000, verify_every_s=3600)
        assert _answer(plc2)(64) > max(seqs), "a number the PLC got is never handed out again"
        return
    st, _srv, plc2 = plc_cell([png_bytes(30, seed=60)], window_ms=60_000, verify_every_s=3600)
    assert _until(lambda: [t for t, _s, _g in _signals(st)] == [61, 62, 63], timeout=60), _signals(st)
    assert [s for _t, s, _g in _signals(st)] == seqs and _sent(st) == [61, 62, 63]
    assert _answer(plc2)(64) > max(seqs), "a number the PLC got is never handed out again"


def test_a_long_backlog_drains_without_rewriting_the_journal_at_every_answer(tmp_path, monkeypatch):
    """Past the compaction size, a backlog over it alone rewrote the whole journal (two
    fsyncs, under the lock the PLC's thread waits on) at every answer recorded: 1,007
    rewrites and 1.3 GB written to drain 3,000 answers (found by a review)."""
    from lineguard.line import signal_spool
    monkeypatch.setattr(signal_spool, "JOURNAL_COMPACT_BYTES", 4096)
    rewrites = []
    real = signal_spool.atomic_write_bytes
    monkeypatch.setattr(signal_spool, "atomic_write_bytes", lambda p, d: (rewrites.append(len(d)), real(p, d)))
    journal = signal_spool.AnswerJournal(tmp_path, "modbus-L1-S1")
    journal.open()
    keys = [f"{n}@t" for n in range(1, 401)]
    for k in keys:
        journal.add(k, {"trigger_seq": int(k.split("@")[0]), "note": "x" * 60}, {"event": "line_signal"})
    for k in keys[:-1]:
        journal.done(k)
    assert journal.backlog()[0] == 1
    assert len(rewrites) <= 12, len(rewrites)              # each rewrite at least halves the file
    assert (tmp_path / "modbus-L1-S1.journal.jsonl").stat().st_size < 4096
