"""The line view's PLC panel: each link by its protocol (an OPC UA link was labelled
"PLC (Modbus :port)"), a part in inspection as such (OPC UA's snapshot had no `busy`: "not
ready"), and in plain words a result the PLC has not acknowledged, recent parts rejected
without a verdict and answers not yet recorded, the dot amber or red for them (it stayed
green while every part timed out). Against a real `lineguard serve` with a Modbus and an OPC
UA link."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pymodbus")
pytest.importorskip("asyncua")

from server.conftest import ServerProc, free_port, make_keys  # noqa: E402

from .conftest import expect, png_bytes  # noqa: E402


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """`lineguard serve` with both PLC links, each its own camera folder; no model for 'tile'
    (a trigger is answered NG with a model fault)."""
    folder = tmp_path_factory.mktemp("plc-panel")
    data = folder / "data"
    keys = make_keys(data)
    cams = {p: folder / f"cam-{p}" for p in ("modbus", "opcua")}
    for cam in cams.values():
        cam.mkdir()
    ports = {"modbus": free_port(), "opcua": free_port()}
    srv = ServerProc(data, python_args=["-m", "lineguard", "serve"],
                     extra=["--product", "tile", "--line", "L3", "--modbus-port", str(ports["modbus"]),
                            "--opcua-port", str(ports["opcua"]), "--plc-images", f"modbus={cams['modbus']}",
                            "--plc-images", f"opcua={cams['opcua']}"]).start()
    srv.keys, srv.plc_ports, srv.cams = keys, ports, cams
    yield srv
    srv.stop()


def _links_ready(srv) -> None:
    deadline = time.monotonic() + 60
    with srv.client(srv.keys["operator"]) as c:
        while time.monotonic() < deadline:
            links = c.get("/api/v1/lines/summary").json()["plc"]
            if all(link["trigger_ready"] for link in links):
                return
            time.sleep(0.2)
    raise AssertionError("the PLC links did not go ready")


def test_each_link_by_its_protocol_and_in_plain_words(pages, station):
    _links_ready(station)
    p = pages(role="operator")
    page = p.open("/app/", "#plc-opcua")
    modbus, opcua = page.locator("#plc-modbus"), page.locator("#plc-opcua")
    expect(modbus).to_contain_text(f"PLC (Modbus line L3 :{station.plc_ports['modbus']})")
    expect(opcua).to_contain_text(f"PLC (OPC UA line L3 :{station.plc_ports['opcua']})")
    expect(opcua).not_to_contain_text("Modbus")
    expect(modbus).to_contain_text("ready for a trigger")
    expect(modbus).to_have_attribute("data-state", "ok")
    # a PLC triggers part 31337 and is restarted before it acknowledges the answer
    from lineguard.line import plc_sim
    (station.cams["modbus"] / "part.png").write_bytes(png_bytes(30, seed=3))
    link = plc_sim.connect("modbus", "127.0.0.1", station.plc_ports["modbus"])
    try:
        link.trigger(31337)
        deadline = time.monotonic() + 20
        while not link.result_valid() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.result_valid()
    finally:
        link.close()
    # read again by the page itself (no event comes for a link's state)
    expect(modbus).to_contain_text("waiting for the PLC to acknowledge part 31337", timeout=30_000)
    expect(modbus).to_contain_text("answered NG without a verdict")
    expect(modbus).to_have_attribute("data-state", "bad")     # the model fault is latched: Error
    expect(modbus.locator(".dot.bad")).to_have_count(1)
    expect(opcua).to_have_attribute("data-state", "ok")
    p.shot("plc-panel-waiting-for-ack")


def test_a_part_in_inspection_timeouts_and_unrecorded_answers(pages, station):
    """The states a live station shows only for a moment or after a fault, given to the page
    by holding its summary read and changing what it answers (the Modbus link's Error and
    unacknowledged result of the test above are answered away)."""
    p = pages(role="operator")
    page = p.page
    changes: dict = {}

    def answer(route):
        response = route.fetch()
        body = response.json()
        for link in body["plc"]:
            link.update(changes.get(link["protocol"], {}))
        route.fulfill(response=response, json=body)

    page.route("**/api/v1/lines/summary*", answer)
    changes.update({
        "opcua": {"busy": True, "trigger_ready": False, "part_in_inspection": 55, "error": False, "error_code": 0},
        "modbus": {"error": False, "error_code": 0, "results_valid": False, "ack_late": False,
                   "recent": {"minutes": 15, "answers": 10, "timeouts": 3, "not_inspected": 1,
                              "other_no_verdict": 0}, "spooled_answers": 2},
    })
    p.open("/app/", "#plc-opcua")
    opcua, modbus = page.locator("#plc-opcua"), page.locator("#plc-modbus")
    expect(opcua).to_contain_text("inspecting part 55")
    expect(opcua).not_to_contain_text("not ready")
    expect(opcua).to_have_attribute("data-state", "ok")
    expect(modbus).to_contain_text("3 part(s) in the last 15 min got no verdict in time")
    expect(modbus).to_contain_text("1 part(s) in the last 15 min were triggered while the station was not ready")
    expect(modbus).to_contain_text("2 answer(s) to the PLC are not recorded yet")
    expect(modbus).to_have_attribute("data-state", "warn")
    # most recent parts rejected without a verdict: good parts are being scrapped, red
    changes["modbus"]["recent"] = {"minutes": 15, "answers": 10, "timeouts": 9, "not_inspected": 0,
                                   "other_no_verdict": 0}
    page.reload()
    page.wait_for_selector("#plc-modbus")
    expect(modbus).to_contain_text("9 part(s) in the last 15 min got no verdict in time")
    expect(modbus).to_have_attribute("data-state", "bad")
    p.shot("plc-panel-timeouts")
