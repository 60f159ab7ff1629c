"""The Modbus RecipeId: a part is judged with the recipe the PLC names, never with the one
before an unknown RecipeId; 0 (a PLC's power-up value) names none and keeps the recipe."""
from __future__ import annotations


import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select  # noqa: E402

from fake_inspector import FakeInspector  # noqa: E402
from lineguard.line.orm import LineSignal  # noqa: E402
from lineguard.line.plc_modbus import ResultCode  # noqa: E402

from .conftest import png_bytes, until  # noqa: E402
from .test_plc_modbus import plc_cell  # noqa: E402,F401 - the fixture


def _recipe(plc, rid):
    assert not plc.c.write_register(0, rid, slave=1).isError()


def test_clear_error_does_not_make_the_station_ready_while_recipe_id_names_no_recipe(plc_cell):  # noqa: F811
    """RecipeId 7 (not in the table): Error 14, then ClearError raised TriggerReady with
    RecipeId still 7, and the next part was judged, and passed, as recipe 1."""
    st, srv, plc = plc_cell([png_bytes(30, seed=1), png_bytes(30, seed=2)], recipes={1: "cell", 2: "band"},
                            verify_every_s=3600)
    st.add_model(FakeInspector(0.5, "band-v").to_bytes(), "band", activate=True)
    _recipe(plc, 7)
    assert plc.wait("error")["ready"] is False
    assert plc.regs()["error_code"] == ResultCode.UNKNOWN_RECIPE
    plc.pulse(2)                                             # ClearError, RecipeId still 7 (taken before the
    bits = plc.bits()                                        # write is answered: no wait)
    assert bits["error"] and not bits["ready"], bits
    assert plc.regs()["error_code"] == ResultCode.UNKNOWN_RECIPE
    assert "ClearError refused" in st.faults["plc"] and "RecipeId 7" in st.faults["plc"], st.faults
    plc.trigger(tag=801)                                     # a PLC that triggers anyway
    bits = plc.wait("valid")
    regs = plc.regs()
    assert (regs["tag"], regs["code"], regs["inspection_id"]) == (801, ResultCode.UNKNOWN_RECIPE, 0), regs
    assert bits["ng"] and not bits["ok"], bits
    assert st.query() == [], "no part judged while RecipeId names no recipe"
    plc.pulse(1)                                             # ResultsAck
    _recipe(plc, 2)                                          # the PLC writes a known recipe
    plc.pulse(2)                                             # ClearError
    plc.wait("ready")
    assert plc.regs()["recipe"] == 2
    plc.trigger(tag=802)
    plc.wait("valid")
    rec = st.get(plc.regs()["inspection_id"])
    assert (rec.product, rec.serial) == ("band", "802")


def test_recipe_id_0_keeps_the_recipe_in_effect(plc_cell):  # noqa: F811
    """A PLC powers up with its registers at 0 and writes them: RecipeId 0 latched Error 14
    and stopped the line before the first part."""
    st, srv, plc = plc_cell([png_bytes(30, seed=3), png_bytes(30, seed=4)], recipes={1: "cell", 2: "band"},
                            verify_every_s=3600)
    st.add_model(FakeInspector(0.5, "band-v").to_bytes(), "band", activate=True)
    _recipe(plc, 2)
    assert until(lambda: plc.regs()["recipe"] == 2, "ActiveRecipe 2", 10.0)
    assert not plc.c.write_registers(0, [0, 0, 901], slave=1).isError()    # RecipeId 0, PartTag 901
    assert not plc.bits()["error"] and plc.regs()["recipe"] == 2, (plc.bits(), srv.hs.error)
    plc.pulse(0)                                             # Trigger
    assert plc.wait("valid")["ok"]
    rec = st.get(plc.regs()["inspection_id"])
    assert (rec.product, rec.serial) == ("band", "901")

    def recipes_signalled():
        with st.db.session() as s:
            return s.scalars(select(LineSignal.recipe_id)).all()
    # the recorder thread stores the signal after the PLC has its answer: on a loaded machine later
    assert until(recipes_signalled, "the part's line signal stored") == [2]


def test_a_recipe_0_in_the_table_is_a_recipe(plc_cell):  # noqa: F811
    st, srv, plc = plc_cell([png_bytes(30, seed=5)], recipes={0: "band", 1: "cell"}, initial_recipe=1,
                            verify_every_s=3600)
    st.add_model(FakeInspector(0.5, "band-v").to_bytes(), "band", activate=True)
    _recipe(plc, 0)
    assert until(lambda: plc.regs()["recipe"] == 0, "ActiveRecipe 0", 10.0)
    plc.trigger(tag=5)
    plc.wait("valid")
    assert st.get(plc.regs()["inspection_id"]).product == "band"
