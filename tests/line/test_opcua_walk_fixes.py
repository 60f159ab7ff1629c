"""What a walk of the README's OPC UA handshake and PLC camera sections found.

- SelectRecipe was refused while a part was being inspected, though the Modbus RecipeId is
  taken whenever it is written (and the docstring said "not while SingleExecution", yet a
  result up was taken): taken now in SingleExecution too, the part in inspection keeps
  the recipe of its trigger.
- StartSingleJob(0) recorded the part with no serial and a part id by time: a PLC counter
  starting at 0 lost that part's number. Over Modbus PartTag 0 stays "no part number".
- serve on a new folder with a camera it cannot open said "new station: ... created it. No
  keys or users yet: create them with ...", then its error, and removed the folder.
- An empty camera folder's error listed the formats played without .gif, which is played.
"""
from __future__ import annotations

import pytest

pytest.importorskip("asyncua")

from fake_inspector import FakeInspector  # noqa: E402
from test_serve_new_folder import serve  # noqa: E402,F401 - serve's start, its web server replaced

from .conftest import png_bytes  # noqa: E402
from .test_plc_opcua import ua_cell  # noqa: E402,F401 - a station with an OPC UA link and its PLC


def test_select_recipe_is_taken_while_a_part_is_inspected_and_that_part_keeps_its_recipe(ua_cell):
    st, srv, plc = ua_cell([png_bytes(30, seed=1), png_bytes(30, seed=2)], recipes={1: "slow", 2: "band"},
                           delay_s=1.5)
    st.add_model(FakeInspector(0.5, "band-v").to_bytes(), "band", activate=True)
    plc.start_job(41)
    plc.wait(lambda: srv.hs.busy, "part 41 in inspection")
    assert plc.state() == ("Operational", "SingleExecution")
    plc.select_recipe(2)                                   # refused before: BadInvalidState
    plc.wait(lambda: plc.read(plc.recipes, "ActiveRecipe") == 2, "ActiveRecipe 2")
    first = plc.wait_valid()
    assert first["PartId"] == 41 and first["RecipeId"] == 1        # judged as the recipe of its trigger
    assert st.get(first["InspectionId"]).product == "slow"
    plc.select_recipe(2)                                   # a result up, not acknowledged: taken too
    plc.ack()
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Ready")
    plc.start_job(42)
    second = plc.wait_valid()
    assert second["PartId"] == 42 and second["RecipeId"] == 2 and second["ModelVersion"] == "band-v"
    assert st.get(second["InspectionId"]).product == "band"


def test_select_recipe_refused_names_the_known_recipes_in_last_refusal(ua_cell):
    from asyncua import ua
    st, srv, plc = ua_cell([], recipes={1: "cell", 2: "cell"})
    with pytest.raises(ua.UaStatusCodeError, match="BadInvalidArgument"):
        plc.select_recipe(9)
    # written before the refusal is answered: read at once, it is this call's reason
    assert plc.read(plc.diag, "LastRefusal") == "SelectRecipe 9 refused: not a recipe of this station (known: [1, 2])"
    assert plc.read(plc.recipes, "ActiveRecipe") == 1


def test_part_id_0_over_opcua_is_no_part_number_and_others_are_the_serial(ua_cell):
    """A PLC program with no part counter sends StartSingleJob(0) for every part: a serial
    "0" would make the line one part, every earlier part its re-inspection."""
    st, srv, plc = ua_cell([png_bytes(30, seed=3), png_bytes(30, seed=4)])
    plc.start_job(0)
    res = plc.wait_valid()
    assert res["PartId"] == 0
    rec = st.get(res["InspectionId"])
    assert rec.serial is None and "-tag" not in rec.part_id, (rec.serial, rec.part_id)
    plc.ack()
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Ready")
    plc.start_job(4294967295)
    assert st.get(plc.wait_valid()["InspectionId"]).serial == "4294967295"


def test_part_tag_0_over_modbus_stays_no_part_number(sqlite_station):
    """The PartTag registers hold 0 from a PLC's power-up: a program that never writes them
    must not record every part under serial "0"."""
    pytest.importorskip("pymodbus")
    from .test_plc_modbus import Plc, _free_port
    from lineguard.line.plc_modbus import ModbusStation
    st = sqlite_station()
    srv = ModbusStation(st, lambda: (png_bytes(30, seed=5), "frame.png"), {1: "cell"}, line="L1", station_name="S1",
                        port=_free_port(), window_ms=8000.0).start()
    plc = Plc(srv.port)
    try:
        plc.trigger(tag=0)
        plc.wait("valid")
        rec = st.get(plc.regs()["inspection_id"])
        assert rec.serial is None and "-tag" not in rec.part_id, (rec.serial, rec.part_id)
    finally:
        plc.close()
        srv.close()


def test_serve_refused_for_its_camera_says_no_new_station_and_leaves_no_folder(serve, tmp_path):
    data = tmp_path / "st4"
    r, out = serve("--data", str(data), "--line", "L1", "--product", "cell", "--opcua-port", "4999", "--plc-camera",
                   str(tmp_path / "nonexist"))
    assert r.exit_code == 2, r.output
    assert "cannot open camera source" in out, out
    assert "new station" not in out and "No keys or users yet" not in out, out
    assert not data.exists()
    assert not serve.served


def test_an_empty_camera_folder_lists_the_formats_played_gif_too(tmp_path):
    from lineguard.line.sources.frames import IMAGE_SUFFIXES, FolderCapture, reads_gif
    (tmp_path / "emptycam").mkdir()
    with pytest.raises(RuntimeError) as refused:
        FolderCapture(tmp_path / "emptycam", fps=2.0)
    listed = str(refused.value).split("no images (", 1)[1].split(")", 1)[0]
    played = IMAGE_SUFFIXES | ({".gif"} if reads_gif() else set())     # folder_frames' own set
    assert listed == ", ".join(sorted(played)), str(refused.value)
