"""A trigger after the PLC link closed (a request the protocol's server let through as it
stopped) is refused and leaves nothing held: no mark in the camera folder, no part pending,
no trigger number, no error raised into the protocol's thread."""
from __future__ import annotations

import pytest

from lineguard.line.plc_handshake import CameraFolder, Handshake

from .conftest import png_bytes, until


@pytest.fixture
def closed_link(sqlite_station):
    """A link that judged one part, then closed: its camera folder, as the handshake left it."""
    st = sqlite_station()
    cam_dir = st.config.data_dir / "cam"
    cam_dir.mkdir(parents=True, exist_ok=True)
    cam = CameraFolder(cam_dir, wait_s=1.0)
    hs = Handshake(st, cam, {1: "cell"}, line="L1", station_name="S1", window_ms=30_000, protocol="modbus",
                   verify_every_s=3600)
    answers = []
    hs.answered = answers.append
    (cam_dir / "1.png").write_bytes(png_bytes(30, seed=1))
    assert hs.trigger(1) is not None
    until(lambda: answers, "part 1's answer")
    assert answers[0].inspection_id, answers[0].reason
    hs.ack()
    hs.close()
    return hs, cam


@pytest.mark.parametrize("fault_if_not_ready", [True, False], ids=["modbus", "opcua"])
def test_a_trigger_after_close_leaves_no_mark_held(closed_link, fault_if_not_ready):
    """Taken after close, the trigger's mark stayed in the camera folder for ever (its worker
    pool was shut down: no take, no window to drop it), the part stayed pending (the link
    busy) and the call raised RuntimeError into the Modbus or OPC UA server's thread."""
    hs, cam = closed_link
    seq = hs.seq
    try:
        got = hs.trigger(2, fault_if_not_ready=fault_if_not_ready)
    except RuntimeError as exc:          # the shut-down worker pool refusing the part
        got = exc
    assert cam._marks == {}, f"a mark left held in the camera folder after close: {cam._marks}"
    assert hs.pending is None and not hs.busy, "the part triggered after close left pending"
    assert got is None, f"a trigger after close was not refused: {got!r}"
    assert hs.seq == seq, "a trigger number handed out after close (the next start skips it)"
    assert not hs.ready
    assert "closed" in hs.not_ready_reason()
