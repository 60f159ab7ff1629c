"""`lineguard line-sim` after a PLC restart mid-handshake: a result left up (ResultsValid high,
never acknowledged) is acknowledged and said, as a real PLC does after its restart; and a
station that stays not TriggerReady is said to be so for its actual reason. Before, the next
run waited 10 s and blamed an Error there was none of ("is it in Error? --clear-error")."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("pymodbus")
pytest.importorskip("asyncua")

from .conftest import png_bytes  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def plc_link(sqlite_station, tmp_path):
    """A station with fake model 'cell' and a PLC server of the protocol asked, its camera folder."""
    from lineguard.line.plc_handshake import newest_image_source
    made = []

    def make(protocol: str):
        st = sqlite_station()
        cam = tmp_path / f"cam-{protocol}"
        cam.mkdir()
        if protocol == "modbus":
            from lineguard.line.plc_modbus import ModbusStation as cls
        else:
            from lineguard.line.plc_opcua import OpcUaStation as cls
        srv = cls(st, newest_image_source(cam), {1: "cell"}, line="L1", station_name="S1", port=_free_port(),
                  window_ms=5000).start()
        made.append(srv)
        return st, srv, cam

    yield make
    for srv in made:
        srv.close()


def _wait(pred, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def _leave_a_result_up(protocol: str, port: int, cam, part_id: int) -> None:
    """A PLC that triggered, saw ResultsValid, and was killed before its acknowledgement."""
    from lineguard.line import plc_sim
    (cam / "part.png").write_bytes(png_bytes(30, seed=7))
    link = plc_sim.connect(protocol, "127.0.0.1", port)
    try:
        assert _wait(link.ready)
        link.trigger(part_id)
        assert _wait(link.result_valid), "the station answered the part"
    finally:
        link.close()          # no ResultsAck / AcknowledgeResult: the PLC is gone


@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
def test_line_sim_acknowledges_a_result_left_from_before_and_runs_on(plc_link, tmp_path, protocol):
    st, srv, cam = plc_link(protocol)
    _leave_a_result_up(protocol, srv.port, cam, part_id=4242)
    assert srv.snapshot()["results_valid"] and not srv.snapshot()["trigger_ready"]
    images = tmp_path / "parts"
    images.mkdir()
    (images / "p0.png").write_bytes(png_bytes(30, seed=100))
    r = subprocess.run([sys.executable, "-m", "lineguard", "line-sim", "--protocol", protocol,
                        "--port", str(srv.port), "--parts", "2", "--rate", "4", "--plc-images", str(cam),
                        "--images", str(images), "--first-part-id", "9000"],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "answered 2/2" in r.stdout, out
    assert "a result of part 4242 was waiting from before" in r.stderr and "acknowledged" in r.stderr, out
    assert "not TriggerReady" not in out
    assert srv.snapshot()["trigger_ready"], "every answer was acknowledged"


@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
def test_not_trigger_ready_names_the_actual_reason(plc_link, tmp_path, protocol):
    """The run's stop says why the station takes no trigger: a latched Error with its code."""
    from lineguard.line import plc_sim
    st, srv, cam = plc_link(protocol)
    link = plc_sim.connect(protocol, "127.0.0.1", srv.port)
    try:
        link.trigger(1)            # no photo in the camera folder: NO_IMAGE (11), Error latched
        assert _wait(link.result_valid)
        link.ack()
        assert _wait(lambda: not link.result_valid())
        rep = plc_sim.run(link, 1, 4.0, None, 1000, patience_s=0.5)
    finally:
        link.close()
    assert rep.stopped is not None and "not TriggerReady" in rep.stopped
    assert "in Error (ErrorCode 11" in rep.stopped and "--clear-error" in rep.stopped, rep.stopped


def test_not_trigger_ready_while_a_result_waits_says_so(plc_link, tmp_path):
    """A result up that this run did not find at its start (another client's trigger): the stop
    says it waits for its acknowledgement, not that the station is in Error."""
    from lineguard.line import plc_sim
    st, srv, cam = plc_link("modbus")
    (cam / "part.png").write_bytes(png_bytes(30, seed=7))
    link = plc_sim.connect("modbus", "127.0.0.1", srv.port)
    try:
        assert _wait(link.ready)
        seen = []
        # the leftover check finds nothing; then another client triggers before this run's part
        orig_ready = link.ready

        def ready_after_another_trigger() -> bool:
            if not seen:
                seen.append(1)
                link.trigger(77)
                assert _wait(link.result_valid)
            return orig_ready()
        link.ready = ready_after_another_trigger
        rep = plc_sim.run(link, 1, 4.0, None, 1000, patience_s=0.5)
    finally:
        link.close()
    assert rep.stopped is not None and "waiting for the PLC's acknowledgement" in rep.stopped, rep.stopped
    assert "Error" not in rep.stopped
