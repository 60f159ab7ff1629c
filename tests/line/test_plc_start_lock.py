"""A PLC link started while line_signals is locked listens anyway (walk: a station restarted
during a `LOCK TABLE line_signals IN ACCESS EXCLUSIVE MODE` or a long CREATE INDEX served no
PLC until the lock ended, and said nothing: it waited on the read of the last recorded
trigger, which the trigger numbers reserved on the disk already cover)."""
from __future__ import annotations

import logging
import threading

import pytest

pytest.importorskip("pymodbus")

from lineguard.line.plc_modbus import ModbusStation  # noqa: E402

from .conftest import FakeInspector, png_bytes  # noqa: E402
from .test_plc_journal import _answer  # noqa: E402
from .test_plc_modbus import Plc, _free_port  # noqa: E402
from conftest import PG_URL  # noqa: E402


def _link(st, seed):
    return ModbusStation(st, lambda: (png_bytes(30, seed=seed), "p.png"), {1: "cell"}, line="L1", station_name="S1",
                         port=_free_port(), window_ms=60_000, verify_every_s=3600)


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_a_link_started_while_line_signals_is_locked_listens_and_goes_on_from_the_reserved_numbers(
        station_factory, db_backend, caplog):
    import psycopg
    st = station_factory()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    first = _link(st, 71).start()
    plc = Plc(first.port)
    seq = _answer(plc)(70)                         # recorded, and its number reserved on the disk
    plc.close()
    first.close()

    lock = psycopg.connect(PG_URL, autocommit=False)
    lock.execute(f'SET search_path TO "{db_backend[1]}"')
    lock.execute("LOCK TABLE line_signals IN ACCESS EXCLUSIVE MODE")     # held until rolled back
    second = _link(st, 72)
    started = threading.Event()
    thread = threading.Thread(target=lambda: (second.start(), started.set()), daemon=True)
    caplog.set_level(logging.WARNING, logger="lineguard.plc")
    try:
        thread.start()
        assert started.wait(60), "the link did not listen while line_signals was locked"
        plc = Plc(second.port)
        plc.trigger(tag=71)
        plc.wait("valid", timeout=30)              # served, the lock still held
        assert plc.regs()["tag"] == 71 and plc.regs()["seq"] > seq, plc.regs()
        plc.pulse(1)
        plc.close()
        said = [r.getMessage() for r in caplog.records if "last recorded trigger could not be read" in r.getMessage()]
        assert len(said) == 1 and "locked" in said[0] and ".seq" in said[0], said
    finally:
        lock.rollback()
        lock.close()
        thread.join(60)
        second.close()
