"""`lineguard line-sim`, the simulated PLC, against a real station's PLC servers on loopback."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("pymodbus")
pytest.importorskip("asyncua")

from fake_inspector import FakeInspector  # noqa: E402

from .conftest import png_bytes  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _line_sim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lineguard", "line-sim", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


@pytest.fixture
def plc_station(sqlite_station, tmp_path):
    """A station with fake model 'cell' (NG above brightness 0.5) and a PLC server of the protocol asked."""
    from lineguard.line.plc_handshake import newest_image_source
    made = []

    def make(protocol: str, window_ms: float = 5000.0, delay_s: float = 0.0):
        st = sqlite_station()
        product = "cell"
        if delay_s:
            product = "slow"
            st.add_model(FakeInspector(0.5, delay_s=delay_s).to_bytes(), product, activate=True)
        cam = tmp_path / f"cam-{protocol}"
        cam.mkdir()
        if protocol == "modbus":
            from lineguard.line.plc_modbus import ModbusStation as cls
        else:
            from lineguard.line.plc_opcua import OpcUaStation as cls
        srv = cls(st, newest_image_source(cam), {1: product}, line="L1", station_name="S1", port=_free_port(),
                  window_ms=window_ms).start()
        made.append(srv)
        return st, srv, cam

    yield make
    for srv in made:
        srv.close()


def _parts(folder, values):
    folder.mkdir()
    for i, v in enumerate(values):
        (folder / f"p{i:02d}.png").write_bytes(png_bytes(v, seed=100 + i))
    return folder


@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
def test_line_sim_triggers_feeds_acknowledges_and_reports(plc_station, tmp_path, protocol):
    from sqlalchemy import select
    from lineguard.line.orm import LineSignal
    st, srv, cam = plc_station(protocol)
    images = _parts(tmp_path / "parts", [30, 230, 30])          # OK, NG, OK, then again from the start
    out = tmp_path / "sim.json"
    r = _line_sim("--protocol", protocol, "--port", str(srv.port), "--parts", "5", "--rate", "4",
                  "--plc-images", str(cam), "--images", str(images), "--first-part-id", "500", "--window-ms", "5000",
                  "--json", str(out), "--verbose")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(out.read_text())
    assert rep["answered"] == 5 and rep["mismatched"] == 0 and rep["missed_windows"] == 0
    assert rep["result_codes"] == {"NG": 2, "OK": 3}
    lat = rep["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert "p99" in r.stdout and "missed windows" in r.stdout
    with st.db.session() as s:
        sigs = list(s.scalars(select(LineSignal).order_by(LineSignal.trigger_seq)))
    assert [g.part_tag for g in sigs] == [500, 501, 502, 503, 504]
    assert [g.signal for g in sigs] == ["OK", "NG", "OK", "OK", "NG"]
    assert all(g.protocol == protocol for g in sigs)
    # each trigger judged the image fed for it, not an older one
    assert [round(st.get(g.inspection_id).score, 1) for g in sigs] == [0.1, 0.9, 0.1, 0.1, 0.9]
    assert not list(cam.glob("sim-*")), "the simulator leaves no part images behind"
    assert srv.snapshot()["trigger_ready"], "every answer was acknowledged"


def test_line_sim_counts_missed_windows(plc_station, tmp_path):
    from lineguard.line import plc_sim
    st, srv, cam = plc_station("modbus", window_ms=100, delay_s=0.3)
    images = _parts(tmp_path / "parts", [30])
    link = plc_sim.connect("modbus", "127.0.0.1", srv.port)
    try:
        rep = plc_sim.run(link, 3, 2.0, plc_sim.ImageFeeder(images, cam), window_ms=100)
    finally:
        link.close()
    s = rep.summary()
    assert s["answered"] == 3 and s["timeouts"] == 3 and s["missed_windows"] == 3
    assert s["result_codes"] == {"TIMEOUT": 3} and s["mismatched"] == 0


def test_line_sim_says_what_to_do_when_the_station_is_not_there(tmp_path):
    images = _parts(tmp_path / "parts", [30])
    port = _free_port()
    r = _line_sim("--protocol", "modbus", "--port", str(port), "--parts", "1", "--plc-images", str(images))
    assert r.returncode != 0 and f"--modbus-port {port}" in r.stderr
    r = _line_sim("--protocol", "opcua", "--port", str(port), "--parts", "1", "--plc-images", str(images))
    assert r.returncode != 0 and f"--opcua-port {port}" in r.stderr
    r = _line_sim("--protocol", "modbus", "--port", str(port))
    assert r.returncode == 2 and "--plc-images" in r.stderr
    # part images with nowhere to put them: the station's first trigger would latch NO_IMAGE
    r = _line_sim("--protocol", "modbus", "--port", str(port), "--images", str(images))
    assert r.returncode == 2 and "beside --images" in r.stderr
    r = _line_sim("--protocol", "modbus", "--port", str(port), "--images", str(images), "--no-feed")
    assert r.returncode == 2 and "leave out --images" in r.stderr


def test_line_sim_drives_a_station_that_takes_its_own_photos(plc_station, tmp_path):
    st, srv, cam = plc_station("modbus")
    (cam / "frame.png").write_bytes(png_bytes(30, seed=9))       # what its camera sees at each trigger
    r = _line_sim("--protocol", "modbus", "--port", str(srv.port), "--parts", "2", "--rate", "4", "--no-feed")
    assert r.returncode == 0 and "answered 2/2" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
def test_line_sim_clears_a_latched_error_first_when_asked(plc_station, tmp_path, protocol):
    """A station left in Error (a trigger with no image) refused every later run, and line-sim
    had no way to clear it: the PLC's reset was written by hand."""
    from lineguard.line import plc_sim
    st, srv, cam = plc_station(protocol)
    link = plc_sim.connect(protocol, "127.0.0.1", srv.port)
    try:
        link.trigger(1)                        # no image in the camera folder: NO_IMAGE, Error latched
        deadline = time.monotonic() + 10
        while not link.result_valid() and time.monotonic() < deadline:
            time.sleep(0.02)
        link.ack()
        time.sleep(0.2)
        assert not link.ready()
    finally:
        link.close()
    images = _parts(tmp_path / "parts", [30])
    r = _line_sim("--protocol", protocol, "--port", str(srv.port), "--parts", "2", "--rate", "4",
                  "--plc-images", str(cam), "--images", str(images), "--clear-error")
    assert r.returncode == 0 and "answered 2/2" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
def test_line_sim_says_the_line_alarm_a_run_left(plc_station, tmp_path, protocol):
    """Eight NG parts raised the NG-run alarm; line-sim said results {'NG': 8} and nothing of
    it (a walk read the Alarm bit and AlarmCode with a Modbus client of its own)."""
    st, srv, cam = plc_station(protocol)
    images = _parts(tmp_path / "parts", [230])
    out = tmp_path / "sim.json"
    r = _line_sim("--protocol", protocol, "--port", str(srv.port), "--parts", "6", "--rate", "10",
                  "--plc-images", str(cam), "--images", str(images), "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "line alarm at the station: AlarmCode 1 (ng_run): acknowledge it" in r.stdout, r.stdout
    assert json.loads(out.read_text())["alarm_code"] == 1


def test_after_a_wrong_recipe_the_recipe_is_written_before_the_clear_error(plc_station, tmp_path):
    """After `--recipe 7` (no such recipe: ErrorCode 14 latched), `--recipe 1 --clear-error`
    sent ClearError first, which the station refuses while RecipeId is 7: the run said
    "line-sim --clear-error clears it first" again, and only a second run recovered (a walk)."""
    st, srv, cam = plc_station("modbus")
    images = _parts(tmp_path / "parts", [30])
    run = ("--protocol", "modbus", "--port", str(srv.port), "--parts", "1", "--rate", "4",
           "--plc-images", str(cam), "--images", str(images))
    wrong = _line_sim(*run, "--recipe", "7")
    assert wrong.returncode == 2 and "recipe 7 was not taken" in wrong.stderr, wrong.stdout + wrong.stderr
    alone = _line_sim(*run, "--clear-error")          # RecipeId still 7: said what clears it
    assert alone.returncode == 1 and "ErrorCode 14: RecipeId names no recipe" in alone.stderr, alone.stderr
    assert "line-sim --recipe ID --clear-error" in alone.stderr, alone.stderr
    r = _line_sim(*run, "--recipe", "1", "--clear-error")
    assert r.returncode == 0 and "answered 1/1" in r.stdout, r.stdout + r.stderr
    assert "line alarm at the station: none (AlarmCode 0)" in r.stdout, r.stdout
    # one part to a ready station is no overrun (the simulator's own first steps counted one)
    assert "overruns 0 (parts that came while the station was not ready for them" in r.stdout, r.stdout


def test_a_run_stopped_by_the_station_going_away_reports_its_parts_so_far(plc_station, tmp_path):
    """The station stopped mid-run: line-sim ended in a traceback (pymodbus's own error) and
    wrote no summary or JSON for the parts already answered."""
    st, srv, cam = plc_station("modbus")
    images = _parts(tmp_path / "parts", [30] * 40)
    out = tmp_path / "run.json"
    sim = subprocess.Popen([sys.executable, "-m", "lineguard", "line-sim", "--protocol", "modbus", "--port",
                            str(srv.port), "--parts", "40", "--rate", "10", "--plc-images", str(cam), "--images",
                            str(images), "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(st.query(limit=10)) < 3:
        time.sleep(0.05)
    srv.close()                                 # the station goes away mid-run
    stdout, stderr = sim.communicate(timeout=120)
    assert sim.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr and "line-sim: stopped after" in stderr, stderr
    summary = json.loads(out.read_text())
    # the station had stored 3 parts; the last one's answer may not have been read when it went
    assert summary["stopped"] and 2 <= summary["answered"] < 40, summary
    assert f"answered {summary['answered']}/40" in stdout


def test_two_simulators_on_one_folder_never_write_the_same_file_name(tmp_path):
    """Two line-sims (a Modbus line and an OPC UA line) feeding one folder both wrote
    sim-0000001.png, one overwriting the other's part: each process's names are its own."""
    import subprocess
    import sys
    from lineguard.line import plc_sim
    images = _parts(tmp_path / "parts", [30])
    cam = tmp_path / "cam"
    cam.mkdir()
    mine = plc_sim.ImageFeeder(images, cam, protocol="modbus")
    mine.feed()
    # the other simulator is another process, as on the line
    other = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from lineguard.line import plc_sim; "
                            "f = plc_sim.ImageFeeder(Path(sys.argv[1]), Path(sys.argv[2]), protocol='opcua'); "
                            "f.feed()", str(images), str(cam)], capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    names = sorted(p.name for p in cam.iterdir())
    assert len(names) == 2 and all(n.startswith("sim-") for n in names), names
    assert any("modbus" in n for n in names) and any("opcua" in n for n in names), names
    mine.cleanup()
    assert len(list(cam.iterdir())) == 1, "a simulator removes only its own files"
