"""Part ids and recipe ids above 2**31 - 1: both protocols carry UInt32, so the stored
line signal must hold any of them, on SQLite and on PostgreSQL (where INTEGER is 32-bit
signed and a part id of 4,000,000,000 used to make the record fail)."""
from __future__ import annotations

import time

import pytest

from fake_inspector import FakeInspector

from .conftest import png_bytes

PART = 4_000_000_000          # a UInt32 part number past the signed 32-bit range
RECIPE = 4_000_000_001        # OPC UA recipe ids are UInt32 too (Modbus's register is 16 bits)


def _signal_rows(st, timeout: float = 10.0) -> list:
    """The line signals once the recorder (off the handshake path) has stored one."""
    from sqlalchemy import select
    from lineguard.line.orm import LineSignal
    deadline = time.monotonic() + timeout
    while True:
        with st.db.session() as s:
            rows = list(s.scalars(select(LineSignal)))
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _outbox_payloads(st) -> list[dict]:
    from sqlalchemy import select
    from lineguard.line.orm import OutboxEvent
    with st.db.session() as s:
        return [e.payload for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "line_signal"))]


def test_modbus_part_tag_past_int32_is_answered_and_recorded(station_factory):
    pytest.importorskip("pymodbus")
    from lineguard.line.plc_modbus import ModbusStation, ResultCode
    from .test_plc_modbus import Plc, _free_port

    st = station_factory()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    srv = ModbusStation(st, lambda: (png_bytes(30, seed=11), "frame.png"), {1: "cell"}, line="L1",
                        station_name="S1", port=_free_port(), window_ms=5000).start()
    plc = Plc(srv.port)
    try:
        plc.trigger(tag=PART)
        assert plc.wait("valid")["ok"]
        regs = plc.regs()
        assert regs["tag"] == PART and regs["code"] == ResultCode.OK
        rows = _signal_rows(st)
        assert [(r.part_tag, r.signal, r.inspection_id) for r in rows] == [(PART, "OK", regs["inspection_id"])], \
            f"the line signal of part {PART} was not stored on {station_factory.backend}"
        assert [p["part_tag"] for p in _outbox_payloads(st)] == [PART]
    finally:
        plc.close()
        srv.close()


def test_opcua_part_and_recipe_past_int32_are_answered_and_recorded(station_factory):
    pytest.importorskip("asyncua")
    from lineguard.line.plc_opcua import OpcUaStation
    from .test_plc_opcua import Plc, _free_port

    st = station_factory()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    srv = OpcUaStation(st, lambda: (png_bytes(230, seed=12), "frame.png"), {RECIPE: "cell"}, line="L1",
                       station_name="S1", port=_free_port(), window_ms=5000).start()
    plc = Plc(srv.endpoint)
    try:
        assert plc.read(plc.recipes, "ActiveRecipe") == RECIPE
        plc.start_job(PART)
        res = plc.wait_valid()
        assert (res["PartId"], res["RecipeId"], res["Verdict"]) == (PART, RECIPE, "NG")
        rows = _signal_rows(st)
        assert [(r.part_tag, r.recipe_id, r.signal, r.inspection_id) for r in rows] == \
            [(PART, RECIPE, "NG", res["InspectionId"])], \
            f"the line signal of part {PART} was not stored on {station_factory.backend}"
        assert [(p["part_tag"], p["recipe_id"]) for p in _outbox_payloads(st)] == [(PART, RECIPE)]
    finally:
        plc.close()
        srv.close()
