"""`lineguard line-sim` given the wrong port or a recipe the station refuses (a README walk).

- `--protocol modbus --port P`, P the station's OPC UA port, ended in a 40-line traceback
  (pymodbus's ModbusIOException, "No response received after 3 retries"), exit 1, where
  the OPC UA side said one line and exit 2; and `--protocol opcua` on a Modbus port said
  "no OPC UA server at 127.0.0.1:P ()", the brackets empty.
- `--recipe 9` over OPC UA said only "One or more arguments are invalid.(BadInvalidArgument)"
  while the station's LastRefusal said which recipes there are.
"""
from __future__ import annotations

import pytest

pytest.importorskip("pymodbus")
pytest.importorskip("asyncua")

from cli_runner import run_in_process  # noqa: E402

from .test_line_sim import _parts, plc_station  # noqa: E402,F401 - the station fixture of line-sim's tests


def _line_sim_on_the_other_port(plc_station, tmp_path, served: str, asked: str):
    """line-sim speaking ``asked`` to the port of a station's ``served`` PLC link: refused."""
    _st, srv, cam = plc_station(served)
    images = _parts(tmp_path / "parts", [30])
    r = run_in_process("line-sim", "--protocol", asked, "--port", srv.port, "--parts", "1",
                       "--plc-images", cam, "--images", images)
    assert r.returncode == 2, r.stdout + r.stderr
    return srv, r


def test_modbus_on_the_stations_opcua_port_is_one_line_saying_which_port_it_is(plc_station, tmp_path):
    srv, r = _line_sim_on_the_other_port(plc_station, tmp_path, "opcua", "modbus")
    assert "Traceback" not in r.stderr and "ModbusIOException" not in r.stderr, r.stderr
    said = r.stderr.strip()
    assert len(said.splitlines()) == 1, said
    assert said.startswith(f"error: no Modbus server answering at 127.0.0.1:{srv.port}"), said
    assert "gave no Modbus answer in 5 s" in said and "retries" not in said, said
    assert "--opcua-port" in said and f"--modbus-port {srv.port}" in said, said


def test_opcua_on_the_stations_modbus_port_says_why_and_never_empty_brackets(plc_station, tmp_path):
    srv, r = _line_sim_on_the_other_port(plc_station, tmp_path, "modbus", "opcua")
    said = r.stderr.strip()
    assert said.startswith(f"error: no OPC UA server at 127.0.0.1:{srv.port}"), said
    assert "()" not in said, said
    assert "no OPC UA answer in 5 s" in said and "--modbus-port" in said, said
    assert f"start the station with --opcua-port {srv.port}" in said, said


def test_a_recipe_refused_over_opcua_is_said_in_the_stations_words(plc_station, tmp_path):
    _st, srv, cam = plc_station("opcua")
    images = _parts(tmp_path / "parts", [30])
    r = run_in_process("line-sim", "--protocol", "opcua", "--port", srv.port, "--parts", "1",
                       "--plc-images", cam, "--images", images, "--recipe", "9")
    assert r.returncode == 2, r.stdout + r.stderr
    assert ("error: recipe 9 was not taken: SelectRecipe 9 refused: not a recipe of this station (known: [1]) "
            "(BadInvalidArgument)") in r.stderr, r.stderr
    assert srv.snapshot()["recipe"] == 1
