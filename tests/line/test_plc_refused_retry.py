"""A refused trigger and the camera's photo: every refused trigger is owed a photo, a repeat
of the part in inspection too. A rule that owed none for a repeat (the camera fired once for
that part) judged every later part on the photo before its own, for ever and with no fault,
where the camera fires at every call; owed, a camera that fires once per part costs the next
part NO_IMAGE and an Error, which a person sees."""
from __future__ import annotations

import hashlib
import logging
import threading
import time

import pytest

from lineguard.line.plc_handshake import CameraFolder, Handshake, ResultCode

from .conftest import png_bytes, until


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
        hs = Handshake(st, CameraFolder(cam_dir, wait_s=kw.get("wait_s", 0.2)), {1: "cell"}, line="L1", station_name="S1",
                       window_ms=30_000, protocol=kw.get("protocol", "opcua"), verify_every_s=3600)
        answers = []
        hs.answered = answers.append
        made.append(hs)
        return st, hs, cam_dir, answers

    yield make
    for hs in made:
        hs.close()


def _answer(answers, n):
    return until(lambda: answers[n - 1] if len(answers) >= n else None, f"answer {n}")


def _held(st, gate):
    real = st.inspect

    def inspect(image, part, source="api"):
        gate.wait(30)
        return real(image, part, source=source)
    st.inspect = inspect


class _Took:
    """The camera folder, saying when a trigger has taken its photo."""

    def __init__(self, folder):
        self.folder, self.took = folder, threading.Event()

    def __call__(self):
        got = self.folder()
        self.took.set()
        return got

    def __getattr__(self, name):
        return getattr(self.folder, name)


def test_a_camera_firing_at_every_call_never_shifts_photos_onto_later_parts(link):
    """Part 81 triggered, its repeat refused while it is judged, and the camera (fired at
    every call, saving a little after it) saves a second photo of part 81 after the
    refusal: part 82 and part 83 are each judged on their own photo. With a repeat owing no
    photo, 82 was judged on 81's second photo, 83 on 82's, and so on."""
    st, hs, cam_dir, answers = link(wait_s=5.0)
    gate = threading.Event()
    _held(st, gate)
    hs.image_source = source = _Took(hs.image_source)
    (cam_dir / "81.png").write_bytes(png_bytes(30, seed=1))
    assert hs.trigger(81, fault_if_not_ready=False) is not None
    assert source.took.wait(30), "part 81's photo not taken"
    assert hs.trigger(81, fault_if_not_ready=False) is None      # the PLC's repeat: refused
    assert "set aside" in hs.refusal_photo, hs.refusal_photo
    (cam_dir / "81-again.png").write_bytes(png_bytes(230, seed=2))    # the camera fired again
    gate.set()
    _answer(answers, 1)
    for n, (tag, value) in enumerate(((82, 230), (83, 30)), start=2):
        hs.ack()
        own = png_bytes(value, seed=tag)
        assert hs.trigger(tag, fault_if_not_ready=False) is not None
        time.sleep(0.1)                                   # the camera saves after the trigger
        (cam_dir / f"{tag}.png").write_bytes(own)
        ans = _answer(answers, n)
        assert ans.trigger.tag == tag and ans.inspection_id, ans.reason
        assert st.get(ans.inspection_id).image_sha256 == _sha(own), f"part {tag} judged on another part's photo"


def test_a_modbus_repeat_latches_error_20_and_says_the_photo_is_set_aside(link, caplog):
    st, hs, cam_dir, answers = link(protocol="modbus")
    gate = threading.Event()
    _held(st, gate)
    hs.image_source = source = _Took(hs.image_source)
    first = png_bytes(30, seed=5)
    (cam_dir / "a.png").write_bytes(first)
    assert hs.trigger(41) is not None
    assert source.took.wait(30), "part 41's photo not taken"
    with caplog.at_level(logging.INFO, logger="lineguard.plc"):
        assert hs.trigger(41) is None                  # Modbus: Error 20 latched
    assert hs.error_code == ResultCode.NOT_READY
    gate.set()
    assert st.get(_answer(answers, 1).inspection_id).image_sha256 == _sha(first)
    assert "part 41's photo, if the camera took one, is set aside" in caplog.text, caplog.text


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
