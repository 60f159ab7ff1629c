"""A station with two PLC links (Modbus and OPC UA side by side, two lines' cameras): the line
view's data call answered 500 (`'list' object has no attribute 'snapshot'`), as serve kept
the two links as a list and the summary read it as one link. Each link is now shown by its
protocol, with the part it is inspecting, the result waiting for the PLC's acknowledgement,
and its recent rejects without a verdict."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pymodbus")
pytest.importorskip("asyncua")

from .conftest import ServerProc, free_port, make_keys, png_bytes  # noqa: E402


def _until(pred, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    return None


def test_serve_with_modbus_and_opcua_links_shows_each_in_the_line_summary(tmp_path):
    from lineguard.line import plc_sim
    data = tmp_path / "data"
    keys = make_keys(data)
    cam1, cam2 = tmp_path / "cam-modbus", tmp_path / "cam-opcua"
    cam1.mkdir()
    cam2.mkdir()
    modbus_port, opcua_port = free_port(), free_port()
    srv = ServerProc(data, python_args=["-m", "lineguard", "serve"],
                     extra=["--product", "tile", "--line", "L3", "--modbus-port", str(modbus_port),
                            "--opcua-port", str(opcua_port), "--plc-images", f"modbus={cam1}",
                            "--plc-images", f"opcua={cam2}"]).start()
    try:
        with srv.client(keys["operator"]) as c:
            r = c.get("/api/v1/lines/summary")
            assert r.status_code == 200, r.text
            links = r.json()["plc"]
            assert sorted(link["protocol"] for link in links) == ["modbus", "opcua"]
            by = {link["protocol"]: link for link in links}
            assert by["modbus"]["port"] == modbus_port and by["opcua"]["port"] == opcua_port
            assert all(link["line"] == "L3" and link["busy"] is False for link in links)
            # a part triggered on the Modbus link (no model for 'tile': answered NG, a fault),
            # its result left unacknowledged: the summary names the part it waits on
            link = plc_sim.connect("modbus", "127.0.0.1", modbus_port)
            try:
                assert _until(link.ready), "the link went ready once the station was up"
                (cam1 / "part.png").write_bytes(png_bytes(30, seed=3))
                link.trigger(31337)
                assert _until(link.result_valid)
            finally:
                link.close()

            def waiting():
                got = {x["protocol"]: x for x in c.get("/api/v1/lines/summary").json()["plc"]}["modbus"]
                return got if got["ack_late"] else None
            mb = _until(waiting)
            assert mb is not None, "a result unread for seconds is the PLC's trouble"
            assert mb["results_valid"] and mb["result_part"] == 31337 and mb["result_waiting_s"] >= 2
            assert mb["recent"]["answers"] == 1 and mb["recent"]["other_no_verdict"] == 1
            op = {x["protocol"]: x for x in c.get("/api/v1/lines/summary").json()["plc"]}["opcua"]
            assert not op["results_valid"] and op["recent"]["answers"] == 0 and op["result_part"] is None
            # /health keeps each link under its protocol too
            health = c.get("/health").json()
            assert set(health["plc"]) == {"modbus", "opcua"}
    finally:
        srv.stop()
