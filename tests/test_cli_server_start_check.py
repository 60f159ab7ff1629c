"""watch and camera sending to a station server (--server) that refuses every part they
would send: the walk's `camera --source frames --product CELL --server ... --api-key ...`
said "the station cannot take frames (HTTP 404: unknown product 'CELL': did you mean
'cell'?)", "the recorded source waits for it", and repeated it every minute for ever, as it
did for a key the station does not keep (401); the same slip with --data ends at once,
exit 2. A refusal no waiting mends ends the command at start, saying the product meant; a
station that does not answer is still waited for."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from server.conftest import start_fake_station

SRC = Path(__import__("lineguard").__file__).resolve().parents[1]
# a guard against the old behaviour (waiting for ever), not a timing: a refused start ends in
# a second or two
HUNG = 90


@pytest.fixture(scope="module")
def station_server(tmp_path_factory):
    srv = start_fake_station(tmp_path_factory.mktemp("station") / "data")
    yield srv
    srv.stop()


def _frames(folder: Path) -> Path:
    import cv2
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((32, 32, 3), 40, np.uint8))
    return folder


def _lineguard(*args, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "lineguard", *map(str, args)], cwd=cwd, capture_output=True,
                              text=True, timeout=HUNG, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC)})
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the command still ran after {HUNG} s: a refused start was waited on ({exc.stderr!r})")


def _source(verb: str, tmp_path: Path) -> list:
    if verb == "camera":
        return ["camera", "--source", _frames(tmp_path / "frames"), "--station", "cam"]
    (tmp_path / "in").mkdir()
    return ["watch", tmp_path / "in", "--station", "S1"]


@pytest.mark.parametrize("verb", ["camera", "watch"])
def test_a_product_in_the_wrong_case_at_a_station_server_ends_the_start_naming_the_product_meant(
        tmp_path, station_server, verb):
    r = _lineguard(*_source(verb, tmp_path), "--line", "L1", "--product", "CELL", "--server", station_server.url,
                   "--api-key", station_server.keys["operator"], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Did you mean --product cell?" in r.stderr, r.stderr
    assert "waits for it" not in r.stderr, "the refusal was taken for an outage"


def test_a_key_the_station_does_not_keep_ends_the_camera_at_start(tmp_path, station_server):
    r = _lineguard(*_source("camera", tmp_path), "--line", "L1", "--product", "cell", "--server",
                   station_server.url, "--api-key", "lg_bad", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "refuses the operator key" in r.stderr and "keys create --role operator" in r.stderr, r.stderr


def test_a_station_that_does_not_answer_at_start_is_waited_for_not_refused():
    from lineguard.cli.station import _check_station_takes
    with socket.socket() as s:       # a port nothing listens on: the station PC off, restarting
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # returns: the parts wait for the station, as they did (a refusal would be SystemExit)
    _check_station_takes(f"http://127.0.0.1:{port}", "lg_some_key", "L1", "cell")


def test_with_server_the_commands_own_log_says_its_info_lines():
    """A live camera coming back, a heartbeat working again: said at INFO by the sources, and
    dropped with --server, where --data said them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import logging\n"
            "from lineguard.cli.station import _submitter\n"
            f"_submitter('folder', 'L1', 'S1', 'cell', 'http://127.0.0.1:{port}', 'lg_key', None, None)\n"
            "logging.getLogger('lineguard.watch').info(\"the watcher's heartbeat works again\")\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HUNG,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC)})
    assert r.returncode == 0, r.stderr
    assert "heartbeat works again" in r.stderr, r.stderr


def test_a_line_typed_in_another_case_is_the_stations_line_at_the_start_check():
    # the station finds "l1" as its L1 (a part's line is matched in any case); the start
    # check refused `--line l1` for a model active on L1, "no active model for it on line 'l1'"
    from lineguard.cli.station import _product_refused
    assert _product_refused([("cell", "L1", True)], "cell", "l1", "http://st:8000") is None
    said = _product_refused([("cell", "L2", True)], "cell", "l1", "http://st:8000")
    assert said is not None and "no active model for it on line 'l1'" in said
