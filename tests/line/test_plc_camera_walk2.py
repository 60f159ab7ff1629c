"""A PLC camera walk (2), each kept fixed:

- an unreadable image in a camera folder ended its playback (`--plc-camera DIR`, `lineguard
  camera --mode trigger --source DIR`): "played to its end" a second after the start, every
  later trigger without a frame, where free mode says it and passes it over;
- a lost or ended --plc-camera was answered ResultCode 10 (timeout) after the whole
  inspection window, not 11 (no image) with an Error: the trigger's frame wait (2 s)
  outlasted the 1 s window, a lost camera was waited on, and an end not told to a waiting
  trigger;
- the answer that raised the no-verdict alarm showed ResultsValid ahead of its own result
  (OPC UA notifications ResultsValid, AlarmCode, TriggerSeq, PartId: a PLC read the part
  before's PartId);
- OPC UA AcknowledgeAlarmsWithCause(99) and AcknowledgeAlarmsOfKinds(99, 99) answered Good
  (the cause dropped, the kinds it happened to name acknowledged), where a call can refuse.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from lineguard.line.plc_handshake import Handshake, ResultCode  # noqa: E402
from lineguard.line.sources.frames import FrameGrabber  # noqa: E402

from .conftest import png_bytes, until  # noqa: E402


def _frame(v: int) -> np.ndarray:
    return np.full((16, 16, 3), v, np.uint8)


def _cut_png() -> bytes:
    ok, data = cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return data.tobytes()[:300]          # the first 300 bytes of a PNG: copied half


class _DeadCamera:
    """A stream that never delivers a frame (its cable pulled)."""

    def get(self, prop):
        return 0.0

    def read(self):
        time.sleep(0.01)
        return False, None

    def release(self):
        pass


def _handshake(st, images, window_ms):
    hs = Handshake(st, images, {1: "cell"}, line="L1", station_name="S1", window_ms=window_ms, protocol="modbus",
                   verify_every_s=3600)
    answers: list = []
    hs.answered = answers.append
    return hs, answers


# -- an unreadable image in a camera folder ----------------------------------------------

def test_an_unreadable_image_in_a_camera_folder_is_passed_over_not_the_end(tmp_path, caplog):
    folder = tmp_path / "fc"
    folder.mkdir()
    for name, v in (("a", 40), ("c", 120), ("d", 160)):
        cv2.imwrite(str(folder / f"{name}.png"), _frame(v))
    (folder / "b.png").write_bytes(_cut_png())
    g = FrameGrabber(str(folder), fps=20.0).start()
    try:
        until(lambda: g.ended, "the folder's end")
    finally:
        g.close()
    assert g.frames == 3, g.status()                    # a, c and d: b said and passed over
    assert "b.png is not an image OpenCV can read" in caplog.text and "passed over" in caplog.text


def test_a_looped_folder_says_an_unreadable_image_once_and_plays_on(tmp_path, caplog):
    folder = tmp_path / "fc"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), _frame(40))
    (folder / "b.png").write_bytes(_cut_png())
    g = FrameGrabber(str(folder), fps=50.0, loop=True).start()
    try:
        until(lambda: g.frames >= 4, "four frames of a looped folder", timeout=10)
        assert not g.ended and g.lost is None
        assert int(g.next_frame(timeout_s=10)[0, 0, 0]) == 40
    finally:
        g.close()
    assert caplog.text.count("b.png is not an image") == 1


@pytest.mark.parametrize("loop", [False, True])
def test_a_folder_of_unreadable_images_says_so_not_that_it_played_to_its_end(tmp_path, loop):
    """Told "played to its end ... start again to play it again" (a looped folder too),
    where no image in it could be read."""
    folder = tmp_path / "fc"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.png").write_bytes(_cut_png())
    g = FrameGrabber(str(folder), fps=50.0, loop=loop).start()
    try:
        until(lambda: g.ended, "the folder given up on")
    finally:
        g.close()
    assert "none of the 2 images in the folder" in g.lost and "played to its end" not in g.lost, g.lost


# -- a lost or ended camera is no image, inside the window ---------------------------------

def test_a_lost_camera_is_answered_no_image_at_once_not_a_timeout(sqlite_station):
    st = sqlite_station()
    g = FrameGrabber("rtsp://camera.local/line1", opener=_DeadCamera, reconnect_s=(0.05, 0.1)).start()
    hs = None
    try:
        until(lambda: g.lost, "the camera lost")
        # a wait longer than the window: a lost camera is not waited on
        hs, answers = _handshake(st, g.image_source(timeout_s=5.0), window_ms=3000)
        assert hs.trigger(5) is not None
        until(lambda: answers, "the part's answer")
        assert answers[0].code == ResultCode.NO_IMAGE, (answers[0].code, answers[0].reason)
        assert "lost stream" in answers[0].reason and hs.error_code == int(ResultCode.NO_IMAGE)
    finally:
        if hs is not None:
            hs.close()
        g.close()


def test_a_trigger_waiting_when_the_folder_ends_is_answered_no_image(sqlite_station, tmp_path):
    st = sqlite_station()
    folder = tmp_path / "fc"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"f{i}.png"), _frame(40 * i))
    g = FrameGrabber(str(folder), fps=2.0)
    hs, answers = _handshake(st, g.image_source(timeout_s=5.0), window_ms=3000)
    try:
        g.start()
        until(lambda: g.frames == 2, "the folder's last frame")
        assert hs.trigger(6) is not None          # waits for a frame: the folder ends 0.5 s later
        until(lambda: answers, "the part's answer")
        assert answers[0].code == ResultCode.NO_IMAGE, (answers[0].code, answers[0].reason)
        assert "played to its end" in answers[0].reason
    finally:
        hs.close()
        g.close()


@pytest.fixture
def served_camera(monkeypatch, serve_ports_anywhere):
    """`serve --modbus-port --plc-camera DIR` with the station and the link stand-ins: the
    real FrameGrabber made for the camera, and the image source handed to the link."""
    from serve_stand_ins import serve_without_a_station

    from lineguard.line import plc_modbus
    from lineguard.line.sources import frames
    serve_without_a_station(monkeypatch)
    made: dict = {}

    class Grabber(FrameGrabber):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made["grabber"] = self

    class Link:
        protocol = "modbus"

        def __init__(self, station, images, recipes, **kw):
            made["images"] = images
            self.hs = None

        def start(self, hold=False):
            return self

        def begin_stop(self):     # serve's stop: every link first drops TriggerReady
            pass

        def close(self, deadline=None):
            pass

    monkeypatch.setattr(frames, "FrameGrabber", Grabber)
    monkeypatch.setattr(plc_modbus, "ModbusStation", Link)
    return made


def test_serve_waits_for_a_plc_cameras_frame_inside_the_inspection_window(tmp_path, served_camera):
    from click.testing import CliRunner

    from lineguard.cli import app
    folder = tmp_path / "fc"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), _frame(40))
    r = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st"), "--modbus-port", "48171", "--line", "L1",
                                 "--product", "cell", "--plc-camera", str(folder), "--inspection-window-ms", "400"])
    assert r.exit_code == 0, r.output
    g = served_camera["grabber"]
    # a part whose camera sends nothing is no image (11) inside the window, not a timeout (10)
    assert 0 < g.trigger_wait_s < 0.4
    assert callable(served_camera["images"])


# -- ResultsValid after the result's values ------------------------------------------------

def test_the_answer_that_raises_the_no_verdict_alarm_shows_results_valid_after_its_result(sqlite_station):
    """Three triggers without an image: the third answer raises the no_verdict alarm. Its
    AlarmCode may go out before its result, never ResultsValid."""
    from lineguard.line.plc_opcua import OpcUaStation
    st = sqlite_station()

    def no_image():
        raise LookupError("camera lost")
    srv = OpcUaStation(st, no_image, {1: "cell"}, line="L1", station_name="S1", verify_every_s=3600)
    sent: list = []
    srv._put = sent.append                # what the server's writer would write, in order (no server)
    srv.hs.start_verification()           # alarm events heard (the server's start does it)
    try:
        for tag in (701, 702, 703):
            with srv.hs.lock:
                assert srv.hs.trigger(tag) is not None
            until(lambda: any(k == "result" and v["PartId"] == tag for k, v in sent), f"part {tag}'s result")
            with srv.hs.lock:
                srv.hs.ack()
                srv.hs.clear_error()
        assert srv.hs.alarm_code == 8
        res = next(i for i, (k, v) in enumerate(sent) if k == "result" and v["PartId"] == 703)
        trig = max(i for i, (k, v) in enumerate(sent[:res]) if k == "state" and v["CurrentSubState"] ==
                   "SingleExecution")
        between = [v for k, v in sent[trig:res] if k == "state"]
        assert any(v["AlarmCode"] == 8 for v in between), between      # the alarm with the answer
        assert not any(v["ResultsValid"] for v in between), between
    finally:
        srv.hs.close()


def test_a_handshake_shows_results_valid_only_after_the_result_is_written(sqlite_station):
    """The rule under both links: Modbus raises ResultsValid in show() (_update_bits), its
    result registers in answered() (_write_result)."""
    st = sqlite_station()

    def no_image():
        raise LookupError("camera lost")
    hs, answers = _handshake(st, no_image, window_ms=3000)
    seen: list = []
    hs.answered = lambda ans: (seen.append(("result", ans.trigger.tag)), answers.append(ans))
    hs.show = lambda: seen.append(("show", hs.result_valid, hs.alarm_code))
    hs.start_verification()                # alarm events heard (the link's start does it)
    try:
        for tag in (801, 802, 803):
            triggered = len(seen)
            assert hs.trigger(tag) is not None
            until(lambda: len(answers) == tag - 800, f"part {tag}'s answer")
            start = len(seen)
            hs.ack()
            hs.clear_error()
            assert seen[start:] and not any(s[0] == "show" and s[1] for s in seen[start:])
        before = seen[triggered:seen.index(("result", 803))]
        assert ("show", False, 8) in before and not any(s[0] == "show" and s[1] for s in before), before
    finally:
        hs.close()


# -- OPC UA refuses a cause or kinds it does not know ----------------------------------------

def test_opcua_refuses_an_unknown_cause_or_kinds_and_acknowledges_nothing(sqlite_station):
    from asyncua import ua

    from lineguard.line.plc_opcua import OpcUaStation

    from .test_plc_opcua import Plc, _free_port
    st = sqlite_station()
    photos = [png_bytes(230, seed=90 + i) for i in range(5)]
    srv = OpcUaStation(st, lambda: (photos.pop(0), "frame.png"), {1: "cell"}, line="L1", station_name="S1",
                       port=_free_port(), window_ms=8000.0, verify_every_s=3600).start()
    plc = None
    try:
        plc = Plc(srv.endpoint)
        for i in range(5):
            plc.start_job(900 + i)
            assert plc.wait_valid()["Verdict"] == "NG"
            plc.ack()
            plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Ready")
        assert plc.read(plc.diag, "AlarmCode") == 1            # the NG run
        u32 = (lambda v: ua.Variant(v, ua.VariantType.UInt32))
        with pytest.raises(Exception, match="BadOutOfRange"):
            plc.call(plc.diag, "AcknowledgeAlarmsWithCause", u32(99))
        said = plc.read(plc.diag, "LastRefusal")
        assert "Cause 99 is no cause code" in said and "4 camera" in said and "nothing acknowledged" in said, said
        with pytest.raises(Exception, match="BadOutOfRange"):
            plc.call(plc.diag, "AcknowledgeAlarmsOfKinds", u32(99), u32(99))
        said = plc.read(plc.diag, "LastRefusal")
        assert "Kinds 99" in said and "Cause 99" in said, said
        with pytest.raises(Exception, match="BadOutOfRange"):
            plc.call(plc.diag, "AcknowledgeAlarmsOfKinds", u32(64), u32(4))
        assert plc.read(plc.diag, "Alarm") is True
        # a known cause is taken: the one acknowledgement, with its cause
        plc.call(plc.diag, "AcknowledgeAlarmsWithCause", u32(4))
        plc.wait(lambda: plc.read(plc.diag, "Alarm") is False, "Alarm cleared")
        (done,) = st.alarms.history()
        assert (done["acked_by"], done["ack_cause"]) == ("plc (opcua)", "camera")
    finally:
        if plc is not None:
            plc.close()
        srv.close()
