"""A judged part's answer survives a full data disk and then a kill, and its trigger number
is never handed out again (line.signal_spool's AnswerJournal, line.plc_handshake).

The journal's appends on a full disk were only logged: a kill while the recorder lagged
then lost judged parts' answers, and the trigger mark (.seq) the disk refused let a
restart hand the PLC's numbers out again. Both now take room from the link's one spool
reserve; with that used up too, a judged part is answered as a storage fault is (the PLC
is never told what a kill would lose). The disk is simulated as in
test_plc_spool_full_disk: only the link's folder is full (the database and photos are
elsewhere), and a kill is the link's descriptors closed with nothing more written.
"""
from __future__ import annotations

import os
import sys
import threading

import pytest
from sqlalchemy import select

from lineguard.line import signal_spool
from lineguard.line.orm import LineSignal
from lineguard.line.plc_handshake import Handshake, ResultCode

from .conftest import png_bytes, until
from .test_plc_spool_full_disk import _Disk

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a write's file in /proc")


class _Held:
    """The link's recorder held (a locked table): what it was given runs only when told."""

    def __init__(self):
        self.calls = []

    def submit(self, fn, *args, **kwargs):
        self.calls.append((fn, args, kwargs))

    def run(self):
        calls, self.calls = self.calls, []
        for fn, args, kwargs in calls:
            fn(*args, **kwargs)

    def shutdown(self, wait: bool = True) -> None:
        return None


def _link(st, source=None, window_ms=60_000):
    """A started link (its spool, journal and trigger count read) whose recorder is held."""
    seeds = iter(range(1, 10_000))
    hs = Handshake(st, source or (lambda: (png_bytes(30, seed=next(seeds)), "frame.png")), {1: "cell"}, "L1", "S1",
                   window_ms, "modbus", verify_every_s=3600)
    hs.open_spool()
    hs.prepare()
    hs._recorder = _Held()
    return hs


def _answer(hs, tag):
    """A part triggered and judged; the answer the PLC read."""
    answers = []
    hs.answered = answers.append
    assert hs.trigger(tag) is not None
    until(lambda: answers, f"part {tag}'s answer")
    return answers[0]


def _killed(hs):
    """A kill -9: nothing more written, the link's descriptors (and the spool's lock) go with it."""
    os.close(hs._spool._held)
    hs._spool._held = None
    hs._journal.close()
    hs._pool.shutdown(wait=False)


def _folder(st):
    return st.config.data_dir / "plc-unrecorded"


def test_judged_answers_on_a_full_disk_are_on_it_after_a_kill(sqlite_station, monkeypatch):
    st = sqlite_station()
    _folder(st).mkdir(parents=True, exist_ok=True)
    disk = _Disk(_folder(st), monkeypatch)
    hs = _link(st)
    disk.fill(leave=900)        # room for one answer and part of the next: written half, then refused
    told = []
    for tag in range(101, 131):
        ans = _answer(hs, tag)
        told.append((ans.trigger.key, ans.signal, ans.inspection_id))
        hs.ack()                # marked in the journal too: replayed as told, not delivery_unknown
    assert all(inspection for _k, _s, inspection in told), "each part judged (none answered as a fault)"
    _killed(hs)                 # the recorder had written none of them
    again = _link(st)
    kept = again._spool.taken()
    assert [(k, row["signal"], row["inspection_id"]) for k, row, _e in kept] == told, \
        "a judged part's answer the PLC read was lost to the kill"
    assert not [k for k, row, _e in kept if row["reason"]], "an acknowledged answer replayed as delivery_unknown"
    # one reserve per link: the journal took its room from the spool's, no second one made
    assert [f.name for f in _folder(st).glob("*.reserve")] == [again._spool.reserve_path.name]
    assert again._spool.reserve_used
    again._show_reserve()
    assert st.faults["plc_disk_signals"].startswith("the data disk is full: PLC answers are kept in the reserve")
    again.close()


def test_a_judged_part_the_disk_cannot_keep_is_answered_as_a_storage_fault(sqlite_station, monkeypatch):
    # a reserve of two blocks: used up after a few parts while the recorder lags
    monkeypatch.setattr(signal_spool, "RESERVE_BYTES", 8192)
    monkeypatch.setattr(signal_spool, "RESERVE_STEP", 4096)
    st = sqlite_station()
    _folder(st).mkdir(parents=True, exist_ok=True)
    disk = _Disk(_folder(st), monkeypatch)
    hs = _link(st)
    disk.fill()
    judged = []
    for tag in range(201, 241):
        ans = _answer(hs, tag)
        if ans.code == ResultCode.STORAGE_FAULT:
            break
        judged.append(ans.trigger.key)
        hs.ack()
    else:
        pytest.fail("40 judged parts were put up with the disk and its reserve full: a kill loses their answers")
    assert 3 <= len(judged) < 39, len(judged)        # the reserve's room was used first
    assert hs.error_code == ResultCode.STORAGE_FAULT and not hs.ready
    assert "could not be kept on the disk before the PLC read it" in st.faults["plc"]
    assert ans.inspection_id == 0 and ans.signal == "NG"
    hs._show_reserve()
    assert "judged parts are answered with a storage fault" in st.faults["plc_disk_signals"]
    with st.db.session() as s:       # committed before the PLC read it, as a storage fault is
        row = s.scalars(select(LineSignal).where(LineSignal.part_tag == tag)).one()
        assert (row.signal, row.result_code, row.late_inspection_id) == ("NG", ResultCode.STORAGE_FAULT, None)
    # the late verdict goes to the recorder after the PLC has its answer (the signal's row
    # first): on a busy machine the answer is read before that hand-over
    until(lambda: any(fn == hs._record_late for fn, _a, _k in list(hs._recorder.calls)),
          f"part {tag}'s late verdict handed to the recorder")
    hs._recorder.run()                 # the recorder catches up: the part's verdict linked, never sent
    with st.db.session() as s:
        row = s.scalars(select(LineSignal).where(LineSignal.part_tag == tag)).one()
    assert row.late_inspection_id and st.get(row.late_inspection_id).serial == str(tag)
    assert hs.backlog()["unrecorded_answers"] == 0       # the parts before it recorded as told
    hs.close()


def test_the_journal_compacted_on_a_full_disk_keeps_only_the_answers_waiting(sqlite_station, monkeypatch):
    # the rewrite needs a whole copy beside the old file: lent by the reserve, given back after
    monkeypatch.setattr(signal_spool, "JOURNAL_COMPACT_BYTES", 8192)
    st = sqlite_station()
    _folder(st).mkdir(parents=True, exist_ok=True)
    disk = _Disk(_folder(st), monkeypatch)
    hs = Handshake(st, lambda: (png_bytes(30, seed=1), "frame.png"), {1: "cell"}, "L1", "S1", 60_000, "modbus",
                   verify_every_s=3600)
    hs.open_spool()
    journal = hs._journal
    keys = [f"{n}@2026-12-04T10:00:{n % 60:02d}" for n in range(1, 61)]
    for n, key in enumerate(keys, 1):
        journal.add(key, {"protocol": "modbus", "line": "L1", "station": "S1", "trigger_seq": n, "part_tag": n,
                          "recipe_id": 1, "product": "cell", "inspection_id": n, "signal": "OK", "result_code": 1,
                          "reason": None, "triggered_at": None, "answered_at": None}, {"trigger_seq": n})
    disk.fill()
    for key in keys[:-5]:            # recorded at last; the five newest still wait
        journal.done(key)
    assert journal.path.stat().st_size < 8192, "the journal was not compacted on the full disk"
    _killed(hs)
    again = signal_spool.AnswerJournal(_folder(st), journal.path.name[:-len(".journal.jsonl")])
    left = [k for k, _r, _e, _d in again.open()]
    # rewritten with those waiting at its last compaction: the newest, the five still waiting last
    assert len(left) < len(keys) and left == keys[-len(left):], left
    again.close()


def test_trigger_numbers_reserved_on_a_full_disk_are_not_handed_out_again_after_a_kill(sqlite_station, monkeypatch):
    from lineguard.line import plc_handshake
    st = sqlite_station()
    _folder(st).mkdir(parents=True, exist_ok=True)
    disk = _Disk(_folder(st), monkeypatch)

    def atomic(path, data):          # the mark's whole copy beside the old one, on the same full disk
        if len(data) > disk.free():
            raise OSError(28, "No space left on device")
        return real(path, data)
    real = signal_spool.atomic_write_bytes
    monkeypatch.setattr(plc_handshake, "atomic_write_bytes", atomic, raising=False)
    photo = threading.Event()        # the camera never delivers: the part stays in inspection

    def camera():
        photo.wait(30)
        raise LookupError("camera lost")
    hs = _link(st, source=camera)
    disk.fill()
    try:
        trig = hs.trigger(301)       # the PLC has trigger number 1 (TriggerSeq) for this part
        assert trig is not None and trig.seq == 1
        _killed(hs)                  # killed mid-inspection: no answer, no record, no journal line
        again = _link(st)
        assert again.seq >= trig.seq, f"trigger number {trig.seq} will be handed out again (count at {again.seq})"
        again.close()
    finally:
        photo.set()
        hs._pool.shutdown(wait=True)
        if hs.pending is not None and hs.pending.timer is not None:
            hs.pending.timer.cancel()
