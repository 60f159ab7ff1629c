"""What an IT person's walk found, each kept fixed (the backup ones: tests/line/test_it_small_fixes_backup.py).

- serve's --plc-camera, --plc-camera-fps, --plc-host and --recipe had no LINEGUARD_*
  variable, while every other setting of the PLC link had one: a unit whose env file held
  the link's settings still needed these on its ExecStart= line;
- `python -m lineguard.server` (the container entry point) skipped the floor of free
  space `lineguard serve` checks: a --min-free-gb over the disk's size started there and
  deleted every part image it might;
- --db-schema's help did not say which names it takes (line.schema_names' rule): a name
  was first refused at start.
"""
from __future__ import annotations

import os
import re
import shutil
from collections import namedtuple

import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.schema_names import SCHEMA_NAME_RULE, schema_name_problem

GIB = 1024 ** 3
_Usage = namedtuple("_Usage", "total used free")


@pytest.fixture
def no_lineguard_env(monkeypatch):
    for var in [v for v in os.environ if v.upper().startswith("LINEGUARD_")]:
        monkeypatch.delenv(var)          # each test sets its own


# ---- the PLC link's camera, address and recipes from the environment -----------------------

@pytest.fixture
def started(monkeypatch, no_lineguard_env, serve_ports_anywhere):
    """What serve starts for its PLC link: ("link", protocol, host, port, recipes, line) and
    ("camera", source, fps); the station, the camera and the links are stand-ins."""
    from serve_stand_ins import serve_without_a_station

    from lineguard.line import plc_modbus, plc_opcua
    from lineguard.line.sources import frames
    serve_without_a_station(monkeypatch)
    made: list = []

    class Grabber:
        kind = "url"        # a live camera: started at once (a file or folder plays from ready)

        def __init__(self, source, fps=None, on_fault=None):
            made.append(("camera", source, fps))

        def start(self):
            return self

        def image_source(self):
            return None

        def close(self):
            pass

    class Link:
        protocol = "fake"

        def __init__(self, station, images, recipes, line, station_name, host, port, window_ms):
            made.append(("link", self.protocol, host, port, recipes, line))
            self.hs = type("HS", (), {})()

        def start(self, hold=False):
            return self

        def begin_stop(self):     # serve's stop: every link first drops TriggerReady
            pass

        def close(self, deadline=None):
            pass

    monkeypatch.setattr(frames, "FrameGrabber", Grabber)
    monkeypatch.setattr(plc_modbus, "ModbusStation", type("Modbus", (Link,), {"protocol": "modbus"}))
    monkeypatch.setattr(plc_opcua, "OpcUaStation", type("OpcUa", (Link,), {"protocol": "opcua"}))
    return made


def _serve(tmp_path, *args, env=None):
    return CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st"), *args], env=env)


def test_the_plc_links_camera_address_and_recipes_come_from_the_environment(tmp_path, started):
    env = {"LINEGUARD_MODBUS_PORT": "48160", "LINEGUARD_LINE": "L1", "LINEGUARD_PLC_CAMERA": "rtsp://cam1/stream",
           "LINEGUARD_PLC_CAMERA_FPS": "5", "LINEGUARD_PLC_HOST": "10.0.0.5",
           # a ',' not followed by ID= stays in the product's name
           "LINEGUARD_RECIPE": "1=cell, 2=frame, big"}
    r = _serve(tmp_path, env=env)
    assert r.exit_code == 0, r.output
    assert "is not a lineguard setting" not in r.output, r.output
    for var in ("LINEGUARD_PLC_CAMERA", "LINEGUARD_PLC_HOST", "LINEGUARD_RECIPE"):
        assert var in r.output, r.output                      # said where they came from
    assert started == [("camera", "rtsp://cam1/stream", 5.0),
                       ("link", "modbus", "10.0.0.5", 48160, {1: "cell", 2: "frame, big"}, "L1")]
    # the command line wins over each variable
    started.clear()
    r = _serve(tmp_path, "--plc-camera", "rtsp://cam2/stream", "--plc-camera-fps", "2", "--plc-host", "10.0.0.6",
               "--recipe", "3=lid", env=env)
    assert r.exit_code == 0, r.output
    assert started == [("camera", "rtsp://cam2/stream", 2.0),
                       ("link", "modbus", "10.0.0.6", 48160, {3: "lid"}, "L1")]


@pytest.mark.parametrize("value", ["cell", "1=", "x=cell", "70000=cell"])
def test_a_recipe_variable_that_is_no_recipe_ends_the_start_naming_it(tmp_path, started, value):
    env = {"LINEGUARD_MODBUS_PORT": "48161", "LINEGUARD_LINE": "L1", "LINEGUARD_PLC_CAMERA": "rtsp://cam1/stream",
           "LINEGUARD_RECIPE": value}
    r = _serve(tmp_path, env=env)
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "LINEGUARD_RECIPE=" in said and "is not a recipe" in said, said
    assert "ID=PRODUCT" in said and not started


def test_serve_help_names_the_plc_links_variables():
    text = " ".join(CliRunner().invoke(app, ["serve", "--help"], terminal_width=400).output.split())
    for var in ("LINEGUARD_PLC_CAMERA", "LINEGUARD_PLC_CAMERA_FPS", "LINEGUARD_PLC_HOST", "LINEGUARD_RECIPE"):
        assert f"[env: {var}]" in text, var


# ---- the floor of free space, whichever way the station starts ------------------------------

@pytest.fixture
def disk_252(monkeypatch):
    """The walk's data disk: 252 GB, 71.5 GB free."""
    usage = _Usage(252 * GIB, int(180.5 * GIB), int(71.5 * GIB))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    return usage


@pytest.fixture
def entry(monkeypatch, no_lineguard_env):
    """``python -m lineguard.server`` in-process; ``entry.served`` the settings it would serve."""
    import lineguard.server.__main__ as entry_point
    served: list = []
    monkeypatch.setattr(entry_point, "serve", lambda cfg, **kw: served.append(cfg))
    entry_point.served = served
    yield entry_point
    del entry_point.served


@pytest.mark.parametrize("args, env, named", [
    (["--min-free-gb", "500"], {}, "--min-free-gb 500 GB"),
    ([], {"LINEGUARD_MIN_FREE_GB": "300"}, "LINEGUARD_MIN_FREE_GB 300 GB"),
])
def test_the_container_entry_point_refuses_a_floor_the_disk_never_reaches(tmp_path, entry, disk_252, capsys,
                                                                        monkeypatch, args, env, named):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as end:
        entry.main(["--data", str(tmp_path / "st"), *args])
    err = capsys.readouterr().err
    assert end.value.code == 2, err
    assert f"{named} is not under the size of the data disk" in err and "252.0 GB in all" in err, err
    assert not entry.served and not (tmp_path / "st").exists()


def test_the_container_entry_point_says_a_floor_above_the_free_space_and_starts(tmp_path, entry, disk_252, capsys):
    entry.main(["--data", str(tmp_path / "st"), "--min-free-gb", "100"])
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("warning: --min-free-gb 100 GB")]
    assert len(warned) == 1 and "71.5 GB free" in warned[0], err
    assert len(entry.served) == 1 and entry.served[0].min_free_gb == 100.0


# ---- the schema names --db-schema takes, said in its help ------------------------------------

def _commands_with(option, group=app, path=()):
    import click
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands_with(option, cmd, (*path, name))
        elif any(p.name == option for p in cmd.params):
            yield (*path, name)


def _squeezed(text: str) -> str:
    return "".join(text.split())          # the help's line breaks (and one inside lower-case) aside


def _rule_holds(help_text: str) -> None:
    """The help states the rule, and what it states is what is refused."""
    assert _squeezed(SCHEMA_NAME_RULE) in _squeezed(help_text), help_text
    text = " ".join(help_text.replace("lower- case", "lower-case").split())
    longest = int(re.search(r"at most (\d+) characters", text).group(1))
    prefix = re.search(r"not starting with (\S+)", text).group(1)
    assert schema_name_problem("a" * longest) is None and schema_name_problem("a" * (longest + 1))
    assert schema_name_problem(f"{prefix}line") and schema_name_problem(f"x{prefix}line") is None
    assert schema_name_problem("Line2") and schema_name_problem("_l1") is None


SCHEMA_COMMANDS = list(_commands_with("db_schema"))


@pytest.mark.parametrize("words", SCHEMA_COMMANDS, ids=" ".join)
def test_every_db_schema_help_states_the_names_it_takes(words):
    r = CliRunner().invoke(app, [*words, "--help"], terminal_width=400)
    assert r.exit_code == 0, r.output
    option = r.output[r.output.index("--db-schema"):]
    _rule_holds(option[:option.index("\n  -", 1)])       # the option's own help, not the next one's


def test_the_container_entry_points_db_schema_help_states_them_too(capsys):
    import lineguard.server.__main__ as entry_point
    with pytest.raises(SystemExit):
        entry_point.main(["--help"])
    out = capsys.readouterr().out
    option = out[out.index("\n  --db-schema DB_SCHEMA"):]        # the option's entry, not the usage line
    _rule_holds(option[:option.index("\n  --", 1)])
