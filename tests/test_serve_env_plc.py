"""`lineguard serve`'s PLC settings from the environment, as README says every serve setting
can be: LINEGUARD_MODBUS_PORT, _OPCUA_PORT, _PLC_IMAGES, _INSPECTION_WINDOW_MS, _PLC_IMAGE_WAIT_MS,
_LINE (and _PRODUCT, _PLC_LINE). Each was "not a lineguard setting and is ignored": a station set
up that way started without its PLC link. These run serve in-process up to the PLC links it would
start (the links are stand-ins that record what they were given)."""
from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from lineguard.cli import app


@pytest.fixture
def links(monkeypatch, tmp_path, serve_ports_anywhere):
    """The PLC links serve starts, as (protocol, camera folder, wait_s, recipes, line, port, window_ms);
    the station is a stand-in and nothing listens."""
    from serve_stand_ins import serve_without_a_station

    from lineguard.line import plc_modbus, plc_opcua
    serve_without_a_station(monkeypatch)
    made: list = []

    class Link:
        protocol = "fake"
        station_names: list = []          # the station each link records its parts at

        def __init__(self, station, images, recipes, line, station_name, host, port, window_ms):
            made.append((self.protocol, getattr(images, "folder", None), getattr(images, "wait_s", None),
                         recipes, line, port, window_ms))
            Link.station_names.append(station_name)
            self.hs = type("HS", (), {})()

        def start(self, hold=False):
            return self

        def begin_stop(self):     # serve's stop: every link first drops TriggerReady
            pass

        def close(self, deadline=None):
            pass

    monkeypatch.setattr(plc_modbus, "ModbusStation", type("Modbus", (Link,), {"protocol": "modbus"}))
    monkeypatch.setattr(plc_opcua, "OpcUaStation", type("OpcUa", (Link,), {"protocol": "opcua"}))
    return made


def _serve(tmp_path, *args, env=None):
    return CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st"), *args], env=env)


def test_serve_starts_its_plc_links_from_the_environment(tmp_path, links):
    cam1, cam2 = tmp_path / "cam1", tmp_path / "cam2"
    cam1.mkdir()
    cam2.mkdir()
    env = {"LINEGUARD_MODBUS_PORT": "48150", "LINEGUARD_OPCUA_PORT": "48151",
           "LINEGUARD_PLC_IMAGES": f"modbus={cam1}{os.pathsep}opcua={cam2}",
           "LINEGUARD_INSPECTION_WINDOW_MS": "800", "LINEGUARD_PLC_IMAGE_WAIT_MS": "100",
           "LINEGUARD_LINE": "L7", "LINEGUARD_PRODUCT": "tile"}
    r = _serve(tmp_path, env=env)
    assert r.exit_code == 0, r.output
    assert "is not a lineguard setting" not in r.output, r.output
    assert "LINEGUARD_MODBUS_PORT" in r.output and "LINEGUARD_PLC_IMAGES" in r.output  # said where they came from
    assert sorted(links) == [("modbus", cam1, pytest.approx(0.1), {1: "tile"}, "L7", 48150, 800.0),
                             ("opcua", cam2, pytest.approx(0.1), {1: "tile"}, "L7", 48151, 800.0)]


def test_a_plc_line_of_its_own_and_one_folder_for_one_link(tmp_path, links):
    cam = tmp_path / "cam"
    cam.mkdir()
    r = _serve(tmp_path, env={"LINEGUARD_OPCUA_PORT": "48152", "LINEGUARD_PLC_IMAGES": str(cam),
                              "LINEGUARD_PRODUCT": "tile", "LINEGUARD_PLC_LINE": "L9"})
    assert r.exit_code == 0, r.output
    assert links == [("opcua", cam, pytest.approx(0.25), {1: "tile"}, "L9", 48152, 1000.0)]


def test_the_plc_links_record_their_parts_at_the_station_named(tmp_path, links):
    """PLC-triggered parts were station "plc" whatever the line called it, and no option
    named another: alarm rules for the README's S1 were refused, and a second link on the
    same line could not be given its own station."""
    from lineguard.line import plc_modbus
    cam1, cam2 = tmp_path / "cam1", tmp_path / "cam2"
    cam1.mkdir()
    cam2.mkdir()
    names = plc_modbus.ModbusStation.station_names
    r = _serve(tmp_path, "--modbus-port", "48155", "--plc-images", str(cam1), "--product", "tile", "--line", "L1")
    assert r.exit_code == 0 and names == ["plc"], r.output                       # as before
    names.clear()
    r = _serve(tmp_path, "--modbus-port", "48156", "--plc-images", str(cam1), "--product", "tile", "--line", "L1",
               "--plc-station", "S1")
    assert r.exit_code == 0 and names == ["S1"], r.output
    names.clear()
    r = _serve(tmp_path, "--product", "tile", "--line", "L1", env={
        "LINEGUARD_MODBUS_PORT": "48157", "LINEGUARD_OPCUA_PORT": "48158", "LINEGUARD_PLC_STATION": "cam",
        "LINEGUARD_PLC_IMAGES": f"modbus={cam1}{os.pathsep}opcua={cam2}"})
    assert r.exit_code == 0 and names == ["cam-modbus", "cam-opcua"], r.output
    names.clear()
    r = _serve(tmp_path, "--modbus-port", "48159", "--plc-images", str(cam1), "--product", "tile", "--line", "L1",
               "--plc-station", "S" * 101)
    assert r.exit_code == 2 and "--plc-station" in r.output and not names, r.output


def test_the_command_line_wins_over_the_plc_variables(tmp_path, links):
    cam, other = tmp_path / "cam", tmp_path / "other"
    cam.mkdir()
    other.mkdir()
    env = {"LINEGUARD_MODBUS_PORT": "48153", "LINEGUARD_PLC_IMAGES": str(other), "LINEGUARD_LINE": "L7",
           "LINEGUARD_PRODUCT": "tile", "LINEGUARD_INSPECTION_WINDOW_MS": "800"}
    r = _serve(tmp_path, "--modbus-port", "48154", "--plc-images", str(cam), "--line", "L8",
               "--inspection-window-ms", "1000", env=env)
    assert r.exit_code == 0, r.output
    assert links == [("modbus", cam, pytest.approx(0.25), {1: "tile"}, "L8", 48154, 1000.0)]


@pytest.mark.parametrize("var, value", [
    ("LINEGUARD_MODBUS_PORT", "70000"), ("LINEGUARD_MODBUS_PORT", "five"), ("LINEGUARD_OPCUA_PORT", "0"),
    ("LINEGUARD_INSPECTION_WINDOW_MS", "0"), ("LINEGUARD_PLC_IMAGE_WAIT_MS", "9000"),
    ("LINEGUARD_LINE", "L" * 150),
])
def test_a_bad_plc_variable_ends_the_start_naming_it(tmp_path, links, var, value):
    cam = tmp_path / "cam"
    cam.mkdir()
    env = {"LINEGUARD_PLC_IMAGES": str(cam), "LINEGUARD_PRODUCT": "tile", "LINEGUARD_LINE": "L1", var: value}
    if var != "LINEGUARD_MODBUS_PORT":
        env["LINEGUARD_MODBUS_PORT"] = "48155"
    r = _serve(tmp_path, env=env)
    assert r.exit_code == 2 and var in r.output, r.output
    assert not links


def test_serve_help_names_each_plc_variable():
    r = CliRunner().invoke(app, ["serve", "--help"], terminal_width=400)
    text = " ".join(r.output.split())
    for var in ("LINEGUARD_MODBUS_PORT", "LINEGUARD_OPCUA_PORT", "LINEGUARD_PLC_IMAGES",
                "LINEGUARD_INSPECTION_WINDOW_MS", "LINEGUARD_PLC_IMAGE_WAIT_MS", "LINEGUARD_LINE",
                "LINEGUARD_PRODUCT", "LINEGUARD_PLC_LINE"):
        assert f"[env: {var}" in text, var
