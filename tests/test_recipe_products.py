"""`serve --recipe ID=PRODUCT` naming a product the station has no model of: said at start
on stderr with the products it knows; one close to a known product (a typo: "tiel" beside
"tile") ends the start (exit 2) saying the one meant, unless the station has no model yet.
It started as usual before, with only an INFO line ("not warmed up: unknown product")."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector  # noqa: E402


@pytest.fixture
def serve_with(monkeypatch, tmp_path, serve_ports_anywhere):
    """``serve(products, *args)``: `lineguard serve` on an in-process station that knows
    ``products`` (fake models), its PLC link, camera and web server stand-ins; the result
    and whether the PLC link was made."""
    import lineguard.cli.station as cli_station
    import lineguard.server.app as server_app
    from lineguard.cli import app
    from lineguard.line import plc_modbus
    from lineguard.line.config import StationConfig
    from lineguard.line.sources import frames
    from lineguard.line.station import Station
    for var in [v for v in __import__("os").environ if v.upper().startswith("LINEGUARD_")]:
        monkeypatch.delenv(var)
    linked: list = []

    class Link:
        def __init__(self, station, images, recipes, **kw):
            linked.append(recipes)
            self.hs = None

        def start(self, hold=False):
            return self

        def begin_stop(self):     # serve's stop: every link first drops TriggerReady
            pass

        def close(self, deadline=None):
            pass

    class Grabber:
        kind = "url"        # a live camera: started at once (a file or folder plays from ready)

        def __init__(self, *a, **kw):
            pass

        def start(self):
            return self

        def image_source(self):
            return None

        def close(self):
            pass

    monkeypatch.setattr(frames, "FrameGrabber", Grabber)
    monkeypatch.setattr(plc_modbus, "ModbusStation", Link)
    monkeypatch.setattr(server_app, "run_server", lambda *a, **kw: None)
    monkeypatch.setattr(server_app, "create_app", lambda *a, **kw: None)
    monkeypatch.setattr(cli_station, "_release_plcs_when_up", lambda *a, **kw: None)

    def serve(products, *args):
        linked.clear()
        data = tmp_path / f"st{len(list(tmp_path.iterdir()))}"     # a station of its own each time
        st = Station(StationConfig(data_dir=data), loader=FakeInspector.load)
        for p in products:
            st.add_model(FakeInspector(0.5, p).to_bytes(), p, activate=True)
        st.load_active_models = lambda: {}
        monkeypatch.setattr(server_app, "open_station", lambda cfg, *a, **kw: st)
        r = CliRunner().invoke(app, ["serve", "--data", str(data), "--modbus-port", "48170",
                                     "--line", "L1", "--plc-camera", "rtsp://cam/1", *args])
        return r, bool(linked)
    return serve


def test_a_recipe_close_to_a_known_product_ends_the_start_saying_the_one_meant(serve_with):
    r, linked = serve_with(["coat", "tile"], "--recipe", "1=coat", "--recipe", "2=tiel")
    said = " ".join(r.stderr.split())
    assert r.exit_code == 2, r.output
    assert "--recipe 2=tiel" in said and "did you mean 'tile'?" in said and "coat, tile" in said, said
    assert not linked                   # refused before the PLC link listens
    # a fresh station (no model yet) is never refused: its recipes may come before its models
    r, linked = serve_with([], "--recipe", "1=tiel")
    assert r.exit_code == 0 and linked, r.output
    assert "tiel" not in r.stderr, r.stderr


def test_a_recipe_of_a_product_like_no_other_is_a_warning_only(serve_with):
    r, linked = serve_with(["coat", "tile"], "--recipe", "1=coat", "--recipe", "2=bracket")
    said = " ".join(r.stderr.split())
    assert r.exit_code == 0, r.output
    assert "warning: --recipe 2=bracket: the station has no model for product 'bracket'" in said, said
    assert "coat, tile" in said and "did you mean" not in said and linked, said
    # a sibling's name (a letter in another's place) is no typo: said with the close name, not refused
    r, linked = serve_with(["cell-a"], "--recipe", "1=cell-a", "--recipe", "2=cell-b")
    said = " ".join(r.stderr.split())
    assert r.exit_code == 0 and linked, r.output
    assert "warning: --recipe 2=cell-b" in said and "did you mean 'cell-a'?" in said, said



def test_a_recipe_id_given_twice_for_two_products_ends_the_start(serve_with):
    """--recipe 1=cell --recipe 1=frame started with recipes {1: 'frame'} without a word: the
    product that had a model was left with no recipe."""
    r, linked = serve_with(["cell"], "--recipe", "1=cell", "--recipe", "1=frame")
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "recipe 1 given twice (1=cell and 1=frame)" in said and not linked, said
    r, linked = serve_with(["cell"], "--recipe", "1=cell", "--recipe", "1=cell")     # the same again: harmless
    assert r.exit_code == 0 and linked, r.output
