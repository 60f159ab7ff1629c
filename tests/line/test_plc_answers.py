"""What the PLC is told in the corner cases a plant hit: the database away, a trigger
while the last result is unread, the OPC UA ResultId past 65535."""
from __future__ import annotations

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select  # noqa: E402

from lineguard.line.orm import LineSignal  # noqa: E402
from lineguard.line.plc_modbus import ResultCode  # noqa: E402

from .conftest import png_bytes  # noqa: E402
from .test_plc_modbus import plc_cell  # noqa: E402,F401 - the fixture
from .test_plc_signal_durability import _until  # noqa: E402


def _signals(st):
    with st.db.session() as s:
        return list(s.scalars(select(LineSignal).order_by(LineSignal.id)))


def test_the_database_unreachable_is_a_storage_fault_not_a_model_fault(plc_cell, monkeypatch):  # noqa: F811
    """The active model is read from the database before the part is judged: with the
    server down that raised a raw OperationalError, answered MODEL_FAULT (12), and the
    line's maintenance looked at the model while the database was down."""
    import psycopg
    from sqlalchemy.exc import OperationalError
    st, srv, plc = plc_cell([png_bytes(30, seed=31), png_bytes(30, seed=32)])

    def down(*_a, **_k):
        raise OperationalError("SELECT model_versions", {}, psycopg.OperationalError("connection refused"))

    monkeypatch.setattr(st.models, "active_for", down)
    plc.trigger(tag=41)
    bits = plc.wait("valid", timeout=10)
    regs = plc.regs()
    assert bits["ng"] and not bits["ok"] and bits["error"]
    assert regs["code"] == ResultCode.STORAGE_FAULT and regs["error_code"] == ResultCode.STORAGE_FAULT, regs
    assert "database" in srv.hs.error and "ClearError" in srv.hs.error


def test_an_overloaded_station_is_a_storage_fault_not_a_bad_image(plc_cell, monkeypatch):  # noqa: F811
    """No database connection in the pool's whole wait (other clients, exports) is the
    station's 503 busy: the handshake answered it as any refused image, BAD_IMAGE with no
    fault bit, and the line's maintenance looked at the camera."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout
    st, srv, plc = plc_cell([png_bytes(30, seed=35), png_bytes(30, seed=36)])

    def busy(*_a, **_k):
        raise PoolTimeout("QueuePool limit of size 8 overflow 16 reached, connection timed out, timeout 30.00")

    monkeypatch.setattr(st.models, "active_for", busy)
    plc.trigger(tag=42)
    bits = plc.wait("valid", timeout=10)
    regs = plc.regs()
    assert bits["ng"] and not bits["ok"] and bits["error"], bits
    assert regs["code"] == ResultCode.STORAGE_FAULT and regs["error_code"] == ResultCode.STORAGE_FAULT, regs
    assert "busy" in srv.hs.error, srv.hs.error


def test_a_trigger_while_the_result_is_unread_drops_ok_and_is_recorded_as_refused(plc_cell):  # noqa: F811
    """Part 6000's OK not acknowledged, then part 6001 triggered: OK and ResultsValid stayed
    high with 6000's tag, 6001 got no answer and no record, and a trigger number went by
    silently. A PLC that does not check PartTag passed 6001 uninspected."""
    st, srv, plc = plc_cell([png_bytes(30, seed=33), png_bytes(30, seed=34)], verify_every_s=3600)
    plc.trigger(tag=6000)
    assert plc.wait("valid")["ok"]
    seq = plc.regs()["seq"]
    plc.trigger(tag=6001)
    bits = plc.wait("error")
    assert not bits["ok"] and not bits["ng"], bits               # Error 20 is 6001's answer, no OK
    assert plc.regs()["error_code"] == ResultCode.NOT_READY
    assert _until(lambda: [r.part_tag for r in _signals(st)] == [6000, 6001])
    refused = _signals(st)[1]
    assert (refused.result_code, refused.signal, refused.inspection_id, refused.trigger_seq) == (20, "NG", None, 0)
    assert "not inspected" in refused.reason
    plc.pulse(1)                                                  # ResultsAck
    plc.pulse(2)                                                  # ClearError
    plc.wait("ready")
    plc.trigger(tag=6002)
    plc.wait("valid")
    assert plc.regs()["seq"] == seq + 1, "the refused trigger took no number"


def test_a_refused_trigger_drops_ok_whatever_error_was_latched_before_it(plc_cell):  # noqa: F811
    """An unknown recipe (Error 14) latched while part 7000's OK was unread, then part 7001
    triggered: Error 20 was never set (another error stood), so OK stayed high and a PLC that
    does not check PartTag passed 7001 on 7000's OK (found by a review)."""
    import time
    st, srv, plc = plc_cell([png_bytes(30, seed=35), png_bytes(30, seed=36)], verify_every_s=3600)
    plc.trigger(tag=7000)
    assert plc.wait("valid")["ok"]
    assert not plc.c.write_registers(0, [9], slave=1).isError()      # a RecipeId the station does not know
    assert _until(lambda: plc.regs()["error_code"] != 0)
    plc.trigger(tag=7001)
    assert _until(lambda: [r.part_tag for r in _signals(st)] == [7000, 7001])
    time.sleep(0.2)
    bits = plc.bits()
    assert not bits["ok"] and not bits["ng"], bits
    plc.pulse(1)                                                  # ResultsAck
    plc.pulse(2)                                                  # ClearError


def test_the_opc_ua_result_id_carries_the_full_trigger_count_past_65535(sqlite_station):
    """TriggerSeq wrapped at 65536 and ResultId with it: ResultIds repeated every ~55 min at
    20 parts a second (an MES keyed on them overwrote parts)."""
    pytest.importorskip("asyncua")
    import time

    from lineguard.line.plc_opcua import OpcUaStation
    st = sqlite_station()
    srv = OpcUaStation(st, lambda: (png_bytes(30, seed=35), "p.png"), {1: "cell"}, line="L1", station_name="S1",
                       port=1)
    got = []
    srv._put = got.append                        # what the server would write, without a server
    try:
        srv.hs.seq = 65535
        trig = srv.hs.trigger(9, fault_if_not_ready=False)
        assert trig is not None and trig.seq == 65536
        deadline = time.monotonic() + 30
        while not any(k == "result" for k, _v in got) and time.monotonic() < deadline:
            time.sleep(0.02)
        (values,) = [v for k, v in got if k == "result"]
        assert (values["ResultId"], values["TriggerSeq"]) == ("S1-65536", 65536)
    finally:
        srv.hs.close()


def test_an_opc_ua_link_held_at_start_is_preoperational_until_released(sqlite_station):
    pytest.importorskip("asyncua")
    from lineguard.line.plc_opcua import OpcUaStation
    st = sqlite_station()
    srv = OpcUaStation(st, lambda: (png_bytes(30, seed=36), "p.png"), {1: "cell"}, line="L1", station_name="S1",
                       port=1)
    try:
        srv.hs.hold()
        assert srv.state() == ("Preoperational", "") and not srv.snapshot()["trigger_ready"]
        assert srv.hs.trigger(3, fault_if_not_ready=False) is None        # StartSingleJob refused: BadInvalidState
        srv.hs.release()
        assert srv.state() == ("Operational", "Ready") and srv.snapshot()["trigger_ready"]
    finally:
        srv.hs.close()


def test_the_modbus_register_keeps_16_bits_while_the_record_keeps_the_full_count(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=37)], verify_every_s=3600)
    srv.hs.seq = 65535
    plc.trigger(tag=42)
    plc.wait("valid")
    assert plc.regs()["seq"] == 0                      # the documented uint16 register, wrapped
    assert _until(lambda: [(r.part_tag, r.trigger_seq) for r in _signals(st)] == [(42, 65536)])
