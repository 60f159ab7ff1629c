"""A line or product name the station refuses on every part is refused at start.

`serve --line <150 characters> --modbus-port ...` started, then answered every PLC trigger NG
code 15 ("image refused: line is longer than 100 characters"). StationConfig checks the names
now, so serve, `python -m lineguard.server` and the LINEGUARD_* variables all refuse them, by
the limits a part's names have (line.station.Part.checked)."""
from __future__ import annotations

import os

import pytest
from click.testing import CliRunner


@pytest.mark.parametrize("field, value, named", [
    ("line", "L" * 150, "--line"),
    ("plc_line", "P" * 101, "--plc-line"),
    ("product", "t" * 101, "--product"),
    ("line", "L3\x00", "--line"),
    ("product", "tile\u200b", "--product"),
    ("product", "   ", "--product"),
])
def test_station_config_refuses_a_name_every_part_would_be_refused_for(tmp_path, field, value, named):
    from lineguard.line.config import StationConfig
    with pytest.raises(ValueError) as exc:
        StationConfig(data_dir=tmp_path, **{field: value})
    assert named in str(exc.value)


def test_names_a_part_may_have_are_taken(tmp_path):
    from lineguard.line.config import StationConfig
    cfg = StationConfig(data_dir=tmp_path, line="L" * 100, plc_line=" L3 ", product="tile")
    assert (cfg.line, cfg.plc_line, cfg.product) == ("L" * 100, " L3 ", "tile")
    assert StationConfig(data_dir=tmp_path).line == ""        # no --line: every line


def test_the_variable_is_named_when_the_name_comes_from_the_environment(tmp_path):
    from lineguard.line.config import EnvSettingError, StationConfig
    with pytest.raises(EnvSettingError, match="LINEGUARD_LINE"):
        StationConfig.from_env({"LINEGUARD_DATA": str(tmp_path), "LINEGUARD_LINE": "L" * 150})


@pytest.fixture
def opened(monkeypatch):
    for var in [v for v in os.environ if v.upper().startswith("LINEGUARD_")]:
        monkeypatch.delenv(var)
    import lineguard.server.app as server_app
    seen = []

    def open_station(cfg, *args, **kw):
        seen.append(cfg)
        raise server_app.StartupError("stopped before the station opens")

    monkeypatch.setattr(server_app, "open_station", open_station)
    return seen


@pytest.mark.parametrize("args, named", [
    (["--line", "L" * 150], "--line"),
    (["--line", "L3", "--plc-line", "P" * 120], "--plc-line"),
    (["--line", "L3", "--product", "t" * 150], "--product"),
    (["--line", "L3", "--recipe", "1=tile", "--recipe", "2=" + "x" * 150], "--recipe 2="),
    (["--line", "L3\x1b"], "--line"),
])
def test_serve_with_a_plc_link_refuses_the_name_at_start(tmp_path, opened, args, named):
    from lineguard.cli import app
    cam = tmp_path / "cam"
    cam.mkdir()
    base = ["serve", "--data", str(tmp_path / "st"), "--modbus-port", "48160", "--plc-images", str(cam)]
    if "--product" not in args:
        base += ["--product", "tile"]
    r = CliRunner().invoke(app, base + args)
    assert r.exit_code == 2 and named in r.output, r.output
    assert not opened, "refused before the station opened"
