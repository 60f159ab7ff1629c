"""LINEGUARD_PLC_IMAGES takes a camera folder whose name holds ':' (a share mounted at
/mnt/line:2). Its items are separated as in PATH, so such a folder was cut in two and the
station refused to start with "two folders for the modbus link", naming two folders that
were never given. Only a piece naming a link (modbus=, opcua=) starts another folder now;
every value that started a station before reads as it did."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.config import StationConfig

pytestmark = pytest.mark.skipif(os.pathsep != ":", reason="the ':' of a folder name is the separator on POSIX only")


@pytest.fixture
def opened(serve_opens):
    return serve_opens


def _serve(tmp_path: Path, env: dict[str, str]):
    return CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st")], env={"LINEGUARD_LINE": "L2", "LINEGUARD_PRODUCT": "cell", **env})


def test_serve_takes_a_camera_folder_with_a_colon_in_its_name(tmp_path, opened):
    cam = tmp_path / "line:2" / "cam"
    cam.mkdir(parents=True)
    r = _serve(tmp_path, {"LINEGUARD_MODBUS_PORT": "15020", "LINEGUARD_PLC_IMAGES": str(cam)})
    assert r.exit_code == 2 and "stopped before the station opens" in r.output, r.output
    (cfg,) = opened
    assert cfg.plc_images == (str(cam),)


def test_two_links_with_colons_in_their_folders(tmp_path, opened):
    cams = {link: tmp_path / f"{link}:cam" for link in ("modbus", "opcua")}
    for cam in cams.values():
        cam.mkdir()
    r = _serve(tmp_path, {"LINEGUARD_MODBUS_PORT": "15020", "LINEGUARD_OPCUA_PORT": "14840",
                          "LINEGUARD_PLC_IMAGES": f"modbus={cams['modbus']}:opcua={cams['opcua']}"})
    assert r.exit_code == 2 and "stopped before the station opens" in r.output, r.output
    (cfg,) = opened
    assert cfg.plc_images == (f"modbus={cams['modbus']}", f"opcua={cams['opcua']}")


@pytest.mark.parametrize("value, items", [
    ("/cam/a", ("/cam/a",)),
    ("modbus=/cam/a:opcua=/cam/b", ("modbus=/cam/a", "opcua=/cam/b")),
    ("OPCUA=/cam/b: modbus=/cam/a", ("OPCUA=/cam/b", "modbus=/cam/a")),
    # a separator left over, as a shell's "$CAMS:/cam/a" with CAMS empty makes it
    (":/cam/a:", ("/cam/a",)),
    ("modbus=/cam/a::opcua=/cam/b", ("modbus=/cam/a", "opcua=/cam/b")),
    ("", ()),
])
def test_values_that_started_a_station_before_read_as_before(value, items):
    cfg = StationConfig.from_env({"LINEGUARD_PLC_IMAGES": value})
    assert cfg.plc_images == items


def test_a_colon_named_folder_beside_a_named_link():
    cfg = StationConfig.from_env({"LINEGUARD_PLC_IMAGES": "modbus=/mnt/line:1/cam:opcua=/mnt/line:2/cam"})
    assert cfg.plc_images == ("modbus=/mnt/line:1/cam", "opcua=/mnt/line:2/cam")
