"""A refused trigger and the camera's photo: a repeat of the trigger of the part in
inspection (or just answered) owes no photo, since the camera fired once for that part and
its photo went to the first trigger; a refused part triggered again takes the photo set
aside for it; a refused part the PLC moves on from leaves its photo to no later part."""
from __future__ import annotations

import hashlib
import logging
import threading
import time

import pytest

from lineguard.line.plc_handshake import CameraFolder, Handshake, ResultCode

from .conftest import png_bytes


def _until(pred, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen in {timeout} s")


def _sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def link(sqlite_station):
    """A handshake on a camera folder, its answers collected."""
    made = []

    def make(**kw):
        st = sqlite_station()
        cam_dir = st.config.data_dir / "cam"
        cam_dir.mkdir(parents=True, exist_ok=True)
        hs = Handshake(st, CameraFolder(cam_dir, wait_s=0.2), {1: "cell"}, line="L1", station_name="S1",
                       window_ms=30_000, protocol=kw.get("protocol", "opcua"), verify_every_s=3600)
        answers = []
        hs.answered = answers.append
        made.append(hs)
        return st, hs, cam_dir, answers

    yield make
    for hs in made:
        hs.close()


def _answer(answers, n):
    return _until(lambda: answers[n - 1] if len(answers) >= n else None, f"answer {n}")


def test_the_opc_ua_plc_calling_start_single_job_again_does_not_scrap_the_next_part(sqlite_station):
    """StartSingleJob(25002) called twice (the second refused, BadInvalidState: correct),
    acknowledged, then the next part 25003: answered 11, '1 photo(s) came for 1 earlier
    trigger(s) without one', and the vision system in Error: a good part scrapped and the
    line stopped for one repeated call."""
    pytest.importorskip("asyncua")
    from asyncua import ua

    from lineguard.line.plc_opcua import OpcUaStation

    from .test_plc_opcua import Plc, _free_port
    st = sqlite_station()
    cam_dir = st.config.data_dir / "cam"
    cam_dir.mkdir(parents=True)
    srv = OpcUaStation(st, CameraFolder(cam_dir, wait_s=0.25), {1: "cell"}, line="L1", station_name="S1",
                       port=_free_port(), window_ms=3000, verify_every_s=3600).start()
    plc = Plc(srv.endpoint)
    try:
        (cam_dir / "25002.png").write_bytes(png_bytes(30, seed=1))
        plc.start_job(25002)
        assert plc.state() == ("Operational", "SingleExecution")
        with pytest.raises(ua.UaStatusCodeError, match="BadInvalidState"):
            plc.start_job(25002)                      # the PLC's repeat of the call
        res = plc.wait_valid()
        assert (res["PartId"], res["ResultCode"]) == (25002, ResultCode.OK)
        refusal = plc.wait(lambda: plc.read(plc.diag, "LastRefusal"), "LastRefusal")
        plc.ack()
        plc.wait(lambda: plc.read(plc.diag, "TriggerReady"), "TriggerReady")
        good = png_bytes(30, seed=2)
        (cam_dir / "25003.png").write_bytes(good)
        plc.start_job(25003)
        res = plc.wait_valid()
        assert (res["PartId"], res["ResultCode"], res["Verdict"]) == (25003, ResultCode.OK, "OK"), res
        assert st.get(res["InspectionId"]).image_sha256 == _sha(good)
        assert plc.state()[0] == "Operational" and not srv.hs.error_code
        # the refusal says what became of the photo
        assert "part 25002" in refusal and "no photo set aside" in refusal, refusal
    finally:
        plc.close()
        srv.close()


def test_a_repeat_while_the_part_is_in_inspection_owes_no_photo(link, caplog):
    """The same PartTag triggered again while its part is judged: OPC UA refuses it, and the
    next part takes its own photo; Modbus latches Error 20, whose log says what became of the
    photo."""
    gate = threading.Event()

    def held(st):
        real = st.inspect

        def inspect(image, part, source="api"):
            gate.wait(30)
            return real(image, part, source=source)
        st.inspect = inspect

    st, hs, cam_dir, answers = link()
    held(st)
    (cam_dir / "a.png").write_bytes(png_bytes(30, seed=3))
    assert hs.trigger(51, fault_if_not_ready=False) is not None
    assert hs.trigger(51, fault_if_not_ready=False) is None       # refused: the part is in inspection
    gate.set()
    _answer(answers, 1)
    hs.ack()
    nxt = png_bytes(30, seed=4)
    (cam_dir / "b.png").write_bytes(nxt)
    assert hs.trigger(52, fault_if_not_ready=False) is not None
    ans = _answer(answers, 2)
    assert (ans.trigger.tag, ans.code) == (52, ResultCode.OK), ans.reason
    assert st.get(ans.inspection_id).image_sha256 == _sha(nxt)

    st, hs, cam_dir, answers = link(protocol="modbus")
    gate.clear()
    held(st)
    first = png_bytes(30, seed=5)
    (cam_dir / "a.png").write_bytes(first)
    assert hs.trigger(41) is not None
    with caplog.at_level(logging.INFO, logger="lineguard.plc"):
        assert hs.trigger(41) is None                  # Modbus: Error 20 latched
    assert hs.error_code == ResultCode.NOT_READY
    gate.set()
    assert st.get(_answer(answers, 1).inspection_id).image_sha256 == _sha(first)
    assert "a repeat of the trigger of part 41, which is in inspection" in caplog.text, caplog.text


def test_a_refused_part_triggered_again_takes_the_photo_set_aside_for_it(link):
    """Part 62 called before part 61's result was acknowledged (refused, twice), then called
    again once ready: its photo had been set aside as owed (twice), and the retry was
    answered NO_IMAGE with Error."""
    st, hs, cam_dir, answers = link()
    (cam_dir / "61.png").write_bytes(png_bytes(30, seed=5))
    assert hs.trigger(61, fault_if_not_ready=False) is not None
    _answer(answers, 1)
    photo62 = png_bytes(230, seed=6)                   # a defect: it must be judged on its own photo
    (cam_dir / "62.png").write_bytes(photo62)
    said = []
    for _ in range(2):
        assert hs.trigger(62, fault_if_not_ready=False) is None
        said.append(getattr(hs, "refusal_photo", ""))
    hs.ack()
    assert hs.trigger(62, fault_if_not_ready=False) is not None
    ans = _answer(answers, 2)
    assert (ans.trigger.tag, ans.code, hs.error_code) == (62, ResultCode.NG, 0), ans.reason
    assert st.get(ans.inspection_id).image_sha256 == _sha(photo62)
    # what the refusals said (OPC UA's LastRefusal) about the photo
    assert "part 62's photo, if the camera took one, is set aside" in said[0], said
    assert "a repeat of the refused trigger of part 62" in said[1], said


def test_a_refused_part_the_plc_moves_on_from_leaves_its_photo_to_no_later_part(link):
    """The case owing is for: part 72 refused, its photo saved a little late; the PLC goes on
    with part 73, whose camera did not save: 73 is NO_IMAGE, never judged on 72's photo."""
    st, hs, cam_dir, answers = link()
    (cam_dir / "71.png").write_bytes(png_bytes(30, seed=7))
    assert hs.trigger(71, fault_if_not_ready=False) is not None
    _answer(answers, 1)
    assert hs.trigger(72, fault_if_not_ready=False) is None
    (cam_dir / "72.png").write_bytes(png_bytes(30, seed=8))     # 72's photo, after its refusal
    hs.ack()
    assert hs.trigger(73, fault_if_not_ready=False) is not None
    ans = _answer(answers, 2)
    assert (ans.trigger.tag, ans.code) == (73, ResultCode.NO_IMAGE), ans.reason
    assert len(st.query()) == 1
