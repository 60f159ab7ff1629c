"""LINEGUARD_PLC_IMAGES naming two camera folders with no link's name (/cam/a:/cam/b) read as
one folder named "a:/cam/b" (a piece naming no link goes on the folder before it, so that a
share mounted at /mnt/line:2 keeps its ':'), and serve stopped with "/cam/a:/cam/b is not a
folder: give --plc-images DIR", naming an option nobody gave and neither folder meant. A
value that reads two ways now stops the start with one line: the variable, the folders it
read, and the forms it takes with an example."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.config import EnvSettingError, StationConfig

pytestmark = pytest.mark.skipif(os.pathsep != ":", reason="the ':' of a folder name is the separator on POSIX only")

FORMS = "write one camera folder for one PLC link (/cam/line1), or each link's as LINK=DIR separated by ':' " \
        "(modbus=/cam/line1:opcua=/cam/line2)"


@pytest.fixture
def cams(tmp_path):
    """Two camera folders that exist, as at a station with two lines."""
    made = {name: tmp_path / "cams" / name for name in ("line1", "line2")}
    for folder in made.values():
        folder.mkdir(parents=True)
    return made


@pytest.fixture
def opened(serve_opens):
    return serve_opens


def _serve(tmp_path: Path, env: dict[str, str]):
    return CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st")],
                              env={"LINEGUARD_LINE": "L2", "LINEGUARD_PRODUCT": "cell", **env})


@pytest.mark.parametrize("ports", [
    {"LINEGUARD_MODBUS_PORT": "15020"},
    {"LINEGUARD_MODBUS_PORT": "15020", "LINEGUARD_OPCUA_PORT": "14840"},
])
def test_two_unnamed_folders_stop_the_start_with_one_line_showing_the_forms(tmp_path, cams, opened, ports):
    value = f"{cams['line1']}:{cams['line2']}"
    r = _serve(tmp_path, {**ports, "LINEGUARD_PLC_IMAGES": value})
    assert r.exit_code == 2 and opened == [], r.output
    errors = [line for line in r.output.splitlines() if line.startswith(("error", "Error"))]
    assert errors == [f"error: LINEGUARD_PLC_IMAGES={value!r}: {str(cams['line1'])!r} and {str(cams['line2'])!r} "
                      "read as two camera folders, neither naming its PLC link, and a link takes one folder: "
                      + FORMS], r.output
    assert "--plc-images" not in r.output, r.output        # an option nobody gave


@pytest.mark.parametrize("value, says", [
    # a named folder, then one with no name
    ("modbus={line1}:{line2}", "'modbus={line1}' and '{line2}' read as two camera folders, and the second names "
                               "no PLC link: "),
    ("modbus={line1}:~/cam", "'modbus={line1}' and '~/cam' read as two camera folders"),
    # one with no name beside a named one: either link's
    ("{line1}:opcua={line2}", "'{line1}' names no PLC link beside 'opcua={line2}': with more than one folder, "
                              "each names its link; "),
    ("{line1}::{line2}", "'{line1}' names no PLC link beside '{line2}'"),
])
def test_a_value_that_reads_two_ways_is_refused_saying_the_forms(cams, value, says):
    value, says = (s.format(**{k: str(v) for k, v in cams.items()}) for s in (value, says))
    with pytest.raises(EnvSettingError) as refused:
        StationConfig.from_env({"LINEGUARD_PLC_IMAGES": value})
    message = str(refused.value)
    assert message.startswith(f"LINEGUARD_PLC_IMAGES={value!r}: ") and says in message, message
    assert message.endswith(FORMS) and "\n" not in message, message


def test_a_second_folder_is_told_from_a_folder_with_a_colon_in_its_name(tmp_path, cams, monkeypatch):
    """Pieces are joined at all for a share mounted at /mnt/line:2: a piece goes on the
    folder before it unless that whole path is no folder and the piece is one of its own."""
    monkeypatch.chdir(cams["line1"].parent)
    with pytest.raises(EnvSettingError, match="'line2' read as two camera folders"):     # relative, but there
        StationConfig.from_env({"LINEGUARD_PLC_IMAGES": f"{cams['line1']}:line2"})
    share = tmp_path / "line:" / "mnt" / "cam"      # its name goes on as an absolute path after the ':'
    share.mkdir(parents=True)
    for value in (str(share), f"modbus={share}"):
        assert StationConfig.from_env({"LINEGUARD_PLC_IMAGES": value}).plc_images == (value,)
    cam = tmp_path / "line:2" / "cam"               # pieces '.../line' and '2/cam': no folder of its own
    assert StationConfig.from_env({"LINEGUARD_PLC_IMAGES": str(cam)}).plc_images == (str(cam),)


def test_a_value_refused_here_stops_no_process_that_does_not_use_it(cams, tmp_path):
    """The refusal is serve's alone: a watcher (which never opens a PLC link) sharing serve's
    environment file started with it before and still does, and a serve given its folder on
    the command line is not stopped by the variable the option overrides."""
    env = {"LINEGUARD_PLC_IMAGES": f"{cams['line1']}:{cams['line2']}"}
    with pytest.raises(EnvSettingError, match="LINEGUARD_PLC_IMAGES"):
        StationConfig.from_env(env, data_dir=tmp_path / "d")
    watcher = StationConfig.from_env(env, serve=False, data_dir=tmp_path / "w")
    assert watcher.plc_images == ()
    given = f"modbus={cams['line1']}"
    served = StationConfig.from_env(env, data_dir=tmp_path / "s", plc_images=(given,))
    assert served.plc_images == (given,)


def test_a_watcher_sharing_serves_environment_is_told_its_settings_not_stopped(cams, tmp_path, monkeypatch, capsys):
    """`watch --data` names the settings its environment gave before it starts: it parsed
    every variable, so a LINEGUARD_PLC_IMAGES only serve refuses ended the watcher there."""
    from lineguard.cli.station import _say_environment
    monkeypatch.setenv("LINEGUARD_PLC_IMAGES", f"{cams['line1']}:{cams['line2']}")
    monkeypatch.setenv("LINEGUARD_OK_SAMPLE_RATE", "0.5")
    cfg = StationConfig.from_env(serve=False, data_dir=tmp_path / "w")
    _say_environment(cfg, set(), serve=False)
    said = capsys.readouterr().err
    assert "settings from the environment: LINEGUARD_OK_SAMPLE_RATE" in said and "PLC_IMAGES" not in said, said
