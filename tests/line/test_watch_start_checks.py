"""`lineguard watch` and `lineguard camera` refuse at start a --line, --station or --product
the station refuses on every part (empty, longer than a part's field, a control or invisible
character), as `serve` does: started with one, a hot folder moved every good part to failed/
and a camera dropped every frame, each part refused one by one."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from lineguard.cli import app

# nothing listens here: no part is ever sent in these tests (the sources are stand-ins)
SERVER = "http://127.0.0.1:18599"

BAD_NAMES = [
    ("--station", "S\u200b1", "invisible character (U+200B"),        # a zero-width space pasted in
    ("--station", "S" * 101, "101 characters, longer than the 100"),
    ("--line", "L1\x1b", "control or invisible character (U+001B"),  # a scanner's escape
    ("--line", "   ", "the line name is empty"),
    ("--product", "\ufeffcell", "invisible character (U+FEFF"),       # a BOM from a copied file
]


def _names(**over):
    names = {"--line": "L1", "--station": "S1", "--product": "cell"}
    names.update(over)
    return [x for pair in names.items() for x in pair]


@pytest.fixture
def started(monkeypatch):
    """What the watcher or camera started with; they return at once instead of running."""
    from lineguard.line.sources import camera as camera_mod
    from lineguard.line.sources import folder as folder_mod
    seen: dict = {}

    def run(self, stop_after=None):
        seen["watch"] = dict(self._status_info)

    class Camera:
        lost = 0

        def __init__(self, source, submit, station_name, **kw):
            seen["camera"] = station_name

        def run_free(self, max_parts=None):
            pass

        def close(self):
            pass

        def summary(self):
            return "0 frames"

    monkeypatch.setattr(folder_mod.FolderWatcher, "run", run)
    monkeypatch.setattr(camera_mod, "CameraSource", Camera)
    return seen


@pytest.mark.parametrize("option,value,said", BAD_NAMES)
def test_watch_refuses_at_start_a_name_every_part_would_be_refused_for(tmp_path, started, option, value, said):
    inbox = tmp_path / "in"
    inbox.mkdir()
    r = CliRunner().invoke(app, ["watch", str(inbox), *_names(**{option: value}), "--server", SERVER,
                                 "--api-key", "k"])
    # before: it started watching, and the station refused each part into failed/
    assert "watch" not in started, r.output
    assert r.exit_code == 2, r.output
    assert said in r.output and option in r.output, r.output


@pytest.mark.parametrize("option,value,said", BAD_NAMES)
def test_camera_refuses_at_start_a_name_every_frame_would_be_refused_for(tmp_path, started, option, value, said):
    r = CliRunner().invoke(app, ["camera", "--source", "0", *_names(**{option: value}), "--server", SERVER,
                                 "--api-key", "k"])
    assert "camera" not in started, r.output
    assert r.exit_code == 2, r.output
    assert said in r.output and option in r.output, r.output


def test_names_with_spaces_around_them_are_watched_as_the_station_stores_them(tmp_path, started):
    inbox = tmp_path / "in"
    inbox.mkdir()
    r = CliRunner().invoke(app, ["watch", str(inbox), *_names(**{"--line": " L1 ", "--station": "S1\t"}),
                                 "--server", SERVER, "--api-key", "k"])
    assert r.exit_code == 0, r.output
    # the station keeps part fields without surrounding spaces: the watcher's status (and its
    # heartbeat, /health's "watcher L1/S1") names them the same way
    assert started["watch"]["line"] == "L1" and started["watch"]["station"] == "S1"
    r = CliRunner().invoke(app, ["camera", "--source", "0", *_names(**{"--station": " cam2 "}), "--server", SERVER,
                                 "--api-key", "k"])
    assert r.exit_code == 0, r.output
    assert started["camera"] == "cam2"
