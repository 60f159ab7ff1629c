"""A walk of the README's PLC sections: the OPC UA ResultReady event's fields, Halt in Error,
StartSingleJob calls of the wrong shape, a Modbus RecipeId naming no recipe, and what
line-sim says of the line alarm after a run that stopped."""
from __future__ import annotations

import functools
import hashlib
import json

import pytest

pytest.importorskip("pymodbus")
pytest.importorskip("asyncua")

from lineguard.line.plc_handshake import ResultCode  # noqa: E402

from .conftest import png_bytes, until  # noqa: E402
from . import test_plc_modbus, test_plc_opcua  # noqa: E402
from .test_plc_opcua import Plc, _free_port  # noqa: E402

# their stations and PLC clients, as fixtures here too
plc_cell = test_plc_modbus.plc_cell
ua_cell = test_plc_opcua.ua_cell


def test_the_result_ready_event_carries_reason_as_the_result_variables_do(ua_cell):
    """README: ResultReadyEventType is "fired after the result variables are written, with the
    same fields"; Reason, why a part was answered NG without a verdict, was left out."""
    st, srv, plc = ua_cell([LookupError("camera lost")])
    plc.subscribe()
    plc.start_job(21)
    res = plc.wait_valid()
    assert res["ResultCode"] == ResultCode.NO_IMAGE and "camera lost" in res["Reason"], res
    plc.wait(lambda: plc.events, "ResultReady event")
    ev = plc.events[0]
    assert "Reason" in ev, sorted(ev)
    assert ev["Reason"].Value == res["Reason"]
    assert set(Plc.RESULT) - {"ResultsValid"} <= set(ev), sorted(ev)


def test_halt_in_error_goes_to_halted_and_start_follows(ua_cell):
    """Halt() in Error answered Good and changed nothing (CurrentState stayed Error, and a
    later Reset went to Preoperational, never Halted); the README's table: Halt() -> Halted."""
    st, srv, plc = ua_cell([LookupError("camera lost"), png_bytes(30, seed=4)])
    plc.start_job(21)
    plc.wait_valid()
    plc.wait(lambda: plc.state()[0] == "Error", "state Error")
    plc.ack()
    plc.call(plc.sm, "Halt")
    plc.wait(lambda: plc.state() == ("Halted", ""), "Halted after Halt in Error", timeout=5)
    assert plc.read(plc.diag, "ErrorCode") == 0 and "plc" not in st.faults
    assert srv.snapshot()["state"] == "Halted"
    plc.call(plc.sm, "Start")
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Operational after Start")
    plc.start_job(23)
    assert plc.wait_valid()["Verdict"] == "OK"


def test_a_start_single_job_of_the_wrong_shape_is_no_trigger_and_owes_no_photo(sqlite_station, tmp_path):
    """No PartId or two PartIds: each refused, "nothing is done", yet each was counted a
    trigger owed a photo, and the next real part (its photo there) was NO_IMAGE, Error 11:
    "1 photo(s) came for 2 earlier trigger(s) without one". One PartId of the wrong type (a
    Double, a String, a Null: a PLC variable of the wrong type fires a camera wired to the
    call all the same) stays a refused trigger whose photo is set aside."""
    from asyncua import ua
    from lineguard.line.plc_handshake import CameraFolder
    from lineguard.line.plc_opcua import OpcUaStation
    st = sqlite_station()
    cam = tmp_path / "cam"
    cam.mkdir()
    srv = OpcUaStation(st, CameraFolder(cam, wait_s=2.0), {1: "cell"}, line="L1", station_name="S1",
                       port=_free_port(), window_ms=10_000).start()
    plc = Plc(srv.endpoint)
    try:
        plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Operational/Ready")
        u32 = functools.partial(ua.Variant, VariantType=ua.VariantType.UInt32)
        wrong = [((), "BadArgumentsMissing"), ((u32(1), u32(2)), "BadTooManyArguments")]
        refusals = []
        for args, status in wrong:
            with pytest.raises(ua.UaStatusCodeError, match=status):
                plc.call(plc.sm, "StartSingleJob", *args)
            refusals.append(plc.read(plc.diag, "LastRefusal"))
        own = png_bytes(30, seed=140)
        assert plc.start_job(42) == 1
        (cam / "42.png").write_bytes(own)
        res = plc.wait_valid()
        assert (res["PartId"], res["Verdict"], res["ResultCode"]) == (42, "OK", ResultCode.OK), res
        assert st.get(res["InspectionId"]).image_sha256 == hashlib.sha256(own).hexdigest()
        assert plc.state()[0] == "Operational" and srv.snapshot()["triggers"] == 1
        for refusal in refusals:
            assert ("no part triggered; no photo is set aside for it (a call with another number of arguments is "
                    "no part's trigger)") in refusal, refusal
        # one PartId of the wrong type: a refused trigger, its photo (the camera fired) set aside
        with pytest.raises(ua.UaStatusCodeError, match="BadTypeMismatch"):
            plc.call(plc.sm, "StartSingleJob", ua.Variant(3.7, ua.VariantType.Double))
        assert "no photo is set aside" not in plc.read(plc.diag, "LastRefusal")
    finally:
        plc.close()
        srv.close()


def test_a_trigger_while_recipe_id_names_no_recipe_says_what_clears_it_and_records_that_id(plc_cell):
    """RecipeId 7 (unknown): Error 14, then a trigger was recorded with the reason "the
    station is in error (raise ClearError first)", a ClearError the station refuses while
    RecipeId is 7, and with recipe_id 1 (the recipe in effect), not the 7 the PLC wrote."""
    from sqlalchemy import select
    from lineguard.line.orm import LineSignal
    st, srv, plc = plc_cell([png_bytes(30, seed=1)], recipes={1: "cell"}, verify_every_s=3600)
    assert not plc.c.write_register(0, 7, slave=1).isError()
    plc.wait("error")
    plc.trigger(tag=801)
    plc.wait("valid")
    assert plc.regs()["code"] == ResultCode.UNKNOWN_RECIPE

    def signals():
        with st.db.session() as s:
            return [(r.part_tag, r.recipe_id, r.product, r.reason) for r in s.scalars(select(LineSignal))]
    ((tag, recipe_id, product, reason),) = until(signals, "the trigger's line signal stored")
    assert (tag, recipe_id, product) == (801, 7, None)
    assert "raise ClearError first" not in reason, reason
    assert "RecipeId 7 names no recipe: write a known RecipeId (or 0 to keep recipe 1), then ClearError" in reason, \
        reason
    assert reason.startswith("the station is in error 14"), reason


def test_line_sim_says_the_line_alarm_after_a_run_that_stopped(plc_station, tmp_path, monkeypatch):
    """A station in Error 11: the run stopped (exit 1) with no "line alarm at the station"
    line, and `"alarm_code": null` in --json, though the README says it prints the line alarm
    the run left at the station (its AlarmCode and kinds, or none)."""
    from click.testing import CliRunner
    from lineguard.cli.plc import line_sim
    from lineguard.line import plc_sim
    st, srv, cam = plc_station("modbus")
    srv.hs.fault(ResultCode.NO_IMAGE, "no new photo (a walk's station)")
    # the simulator waits 10 s for TriggerReady before it gives up: a moment is enough here
    monkeypatch.setattr(plc_sim, "run", functools.partial(plc_sim.run, patience_s=0.3))
    images = tmp_path / "parts"
    images.mkdir()
    (images / "p.png").write_bytes(png_bytes(30, seed=3))
    out = tmp_path / "sim.json"
    r = CliRunner().invoke(line_sim, ["--protocol", "modbus", "--port", str(srv.port), "--parts", "1",
                                      "--plc-images", str(cam), "--images", str(images), "--json", str(out)])
    assert r.exit_code == 1, r.output
    assert "line-sim: stopped after 0 of 1 parts" in r.output and "ErrorCode 11" in r.output, r.output
    assert "line alarm at the station: none (AlarmCode 0)" in r.output, r.output
    assert json.loads(out.read_text())["alarm_code"] == 0


@pytest.fixture
def plc_station(sqlite_station, tmp_path):
    """A station with fake model 'cell' and a Modbus server on a camera folder."""
    from lineguard.line.plc_handshake import newest_image_source
    from lineguard.line.plc_modbus import ModbusStation
    made = []

    def make(protocol: str):
        assert protocol == "modbus"
        st = sqlite_station()
        cam = tmp_path / "cam"
        cam.mkdir()
        srv = ModbusStation(st, newest_image_source(cam), {1: "cell"}, line="L1", station_name="S1",
                            port=_free_port(), window_ms=5000).start()
        made.append(srv)
        return st, srv, cam

    yield make
    for srv in made:
        srv.close()
