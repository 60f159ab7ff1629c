"""The photos owed to refused triggers, in the order the camera saves them: a part is judged on
its own photo, never on the photo of a part refused while it was in inspection, nor on the
photo of a refused part whose error the PLC cleared before the camera had saved it."""
from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from lineguard.line.plc_handshake import CameraFolder, Handshake, ResultCode

from .conftest import png_bytes, until


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _save(folder, name, data, mtime_ns=None):
    (folder / name).write_bytes(data)
    if mtime_ns is not None:
        os.utime(folder / name, ns=(mtime_ns, mtime_ns))


def _late(folder, name, data, after_s=0.04):
    """The camera saving ``name`` a little after the trigger (a thread), for a take that waits."""
    t = threading.Timer(after_s, lambda: _save(folder, name, data))
    t.start()
    return t


class _Take:
    """A take in its own thread (the handshake's worker), saying when it first looked at the
    folder, so the PLC's thread can act while it waits for the camera."""

    def __init__(self, cam):
        self.looking = threading.Event()
        self.got = None
        real = cam._listing

        def listing():
            self.looking.set()
            return real()
        cam._listing = listing
        self._cam, self._real = cam, real
        self._thread = threading.Thread(target=self._run)
        self._thread.start()
        assert self.looking.wait(30), "the take never looked at the folder"

    def _run(self):
        try:
            self.got = self._cam()
        except LookupError as exc:
            self.got = exc
        finally:
            self._cam._listing = self._real

    def result(self):
        self._thread.join(30)
        assert not self._thread.is_alive(), "the take never ended"
        return self.got


def test_a_refusal_while_the_camera_is_still_saving_leaves_the_part_its_own_photo(tmp_path):
    """Part P's take waits for its photo; the PLC's next trigger (part R) is refused meanwhile.
    The camera saves P's photo, then R's. The take re-read the count, took P's photo as the
    one owed and judged P on R's photo."""
    cam = CameraFolder(tmp_path, wait_s=5.0)
    p, r, n = png_bytes(30, seed=1), png_bytes(230, seed=2), png_bytes(40, seed=3)
    take = _Take(cam)
    cam.trigger_refused()                                  # part R: refused while P is judged
    _save(tmp_path, "P.png", p)
    _save(tmp_path, "R.png", r)                            # the camera, in trigger order
    assert take.result() == (p, "P.png"), "part P judged on another part's photo"
    _late(tmp_path, "N.png", n)
    assert cam() == (n, "N.png")                           # R's photo was set aside, no part's


def test_a_refused_parts_photo_saved_after_the_take_goes_to_no_later_part(tmp_path):
    cam = CameraFolder(tmp_path, wait_s=3.0)
    p, r, n = png_bytes(30, seed=4), png_bytes(230, seed=5), png_bytes(40, seed=6)
    take = _Take(cam)
    cam.trigger_refused()
    _save(tmp_path, "P.png", p)
    assert take.result() == (p, "P.png"), f"part P got {take.got!r}"
    _save(tmp_path, "R.png", r)                            # the refused part's photo, later still
    _late(tmp_path, "N.png", n)
    assert cam() == (n, "N.png"), "part N judged on the refused part's photo"


def test_a_clear_error_faster_than_the_camera_keeps_the_refused_parts_photo_owed(tmp_path):
    """Part B refused (Error 20), the PLC acknowledges, clears and triggers part C before the
    camera saved B's photo: C was judged on B's photo, and every later part on the photo
    before its own."""
    cam = CameraFolder(tmp_path, wait_s=5.0)
    a, b, c, d = (png_bytes(v, seed=10 + i) for i, v in enumerate((30, 230, 40, 220)))
    _save(tmp_path, "A.png", a)
    assert cam() == (a, "A.png")
    cam.trigger_refused()                                  # part B
    cam.restart()                                          # ClearError at once
    _save(tmp_path, "B.png", b)                            # B's photo lands after the clear
    _late(tmp_path, "C.png", c)
    assert cam() == (c, "C.png"), "part C judged on the refused part's photo"
    _late(tmp_path, "D.png", d)
    assert cam() == (d, "D.png")


def test_a_kept_photo_that_never_comes_costs_one_no_image_and_no_wrong_photo(tmp_path):
    """A camera that fires once per part did not photograph the refused repeat: the next part's
    photo cannot be told from the refused part's, so that part is NO_IMAGE (a person looks);
    the part after it is in step again."""
    cam = CameraFolder(tmp_path, wait_s=1.0)
    cam.trigger_refused()
    cam.restart()
    _save(tmp_path, "C.png", png_bytes(40, seed=20))
    with pytest.raises(LookupError, match="1 photo\\(s\\) came for 1 earlier trigger"):
        cam()
    d = png_bytes(50, seed=21)
    _late(tmp_path, "D.png", d)
    assert cam() == (d, "D.png")


def test_a_clear_error_long_after_a_photo_that_never_came_forgets_it(tmp_path):
    """The reason the clear forgets what is owed: a camera that did not fire would owe for ever."""
    cam = CameraFolder(tmp_path, wait_s=0.05)
    cam.trigger_refused()
    counted = time.monotonic()
    until(lambda: time.monotonic() - counted > 0.2, "the camera's wait passed")
    cam.restart()
    n = png_bytes(40, seed=30)
    _save(tmp_path, "N.png", n)
    assert cam() == (n, "N.png")


def test_a_photo_still_written_at_the_clear_is_no_later_parts(tmp_path):
    """Half of B's photo there at the clear: it was accounted as it was then, and once written
    to its end (a new time and size) judged as part C."""
    cam = CameraFolder(tmp_path, wait_s=0.1)
    b = png_bytes(230, seed=40)
    cam.trigger_refused()
    _save(tmp_path, "B.png", b[: len(b) // 2])
    counted = time.monotonic()
    until(lambda: time.monotonic() - counted > 0.3, "the camera's wait passed")
    cam.restart()
    _save(tmp_path, "B.png", b, mtime_ns=time.time_ns() + 1_000_000)
    c = png_bytes(40, seed=41)
    cam.wait_s = 5.0
    _late(tmp_path, "C.png", c)
    assert cam() == (c, "C.png"), "part C judged on the refused part's photo"


def test_a_clear_error_while_the_part_is_judged_leaves_the_refused_photo_owed(tmp_path):
    """A refusal and its ClearError while part P's take waits for the camera: the clear
    forgot R's photo, and the next part was judged on it."""
    cam = CameraFolder(tmp_path, wait_s=3.0)
    p, r, n = png_bytes(30, seed=50), png_bytes(230, seed=51), png_bytes(40, seed=52)
    take = _Take(cam)
    cam.trigger_refused()
    cam.restart()
    _save(tmp_path, "P.png", p)
    assert take.result() == (p, "P.png"), f"part P got {take.got!r}"
    _save(tmp_path, "R.png", r)
    _late(tmp_path, "N.png", n)
    assert cam() == (n, "N.png"), "part N judged on the refused part's photo"


def test_a_clear_error_before_the_take_began_leaves_the_part_its_own_photo(tmp_path):
    """Part P triggered (its worker still busy), part R refused, the PLC clears Error 20; P's
    photo is there, R's comes next. Counted afresh at the clear, P's photo paid R's and was
    no part's, and P was judged on R's photo."""
    cam = CameraFolder(tmp_path, wait_s=3.0)
    p, r = png_bytes(30, seed=55), png_bytes(230, seed=56)
    cam.trigger_taken()                                    # part P
    cam.trigger_refused()                                  # part R
    _save(tmp_path, "P.png", p)
    cam.restart()
    _save(tmp_path, "R.png", r)
    assert cam() == (p, "P.png"), "part P judged on part R's photo"


def test_a_clear_error_after_a_trigger_dropped_unlooked_still_counts_afresh(tmp_path):
    """A trigger whose window closed before the station took its photo: the clear after it
    forgets that photo once the camera's wait has passed, like any other."""
    cam = CameraFolder(tmp_path, wait_s=0.05)
    cam.trigger_taken()
    cam.trigger_dropped()
    counted = time.monotonic()
    until(lambda: time.monotonic() - counted > 0.2, "the camera's wait passed")
    cam.restart()
    cam.trigger_taken()                                    # the next part, as the handshake tells it
    n = png_bytes(40, seed=60)
    _save(tmp_path, "N.png", n)
    assert cam() == (n, "N.png")


# -- through the handshake -------------------------------------------------------------

@pytest.fixture
def link(sqlite_station):
    made = []

    def make(wait_s=5.0):
        st = sqlite_station()
        cam_dir = st.config.data_dir / "cam"
        cam_dir.mkdir(parents=True, exist_ok=True)
        hs = Handshake(st, CameraFolder(cam_dir, wait_s=wait_s), {1: "cell"}, line="L1", station_name="S1",
                       window_ms=30_000, protocol="modbus", verify_every_s=3600)
        answers = []
        hs.answered = answers.append
        made.append(hs)
        return st, hs, cam_dir, answers

    yield make
    for hs in made:
        hs.close()


def _answer(answers, n):
    return until(lambda: answers[n - 1] if len(answers) >= n else None, f"answer {n}")


class _SlowWorker:
    """The camera folder behind a worker that starts its take only once let go (busy with an
    earlier part)."""

    def __init__(self, folder):
        self.folder, self.waiting, self.go = folder, threading.Event(), threading.Event()

    def __call__(self):
        self.waiting.set()
        assert self.go.wait(30)
        return self.folder()

    def __getattr__(self, name):
        return getattr(self.folder, name)


def test_a_part_refused_before_the_take_began_is_after_the_part_in_inspection(link):
    """Part 1 triggered; its worker is late; the PLC triggers part 2 (refused, Error 20). The
    camera saves 1's photo, then 2's. Counted from when the take began, 2's refusal stood
    before part 1, and part 1 was judged on part 2's photo (a defect passed or a good
    part rejected)."""
    st, hs, cam_dir, answers = link()
    hs.image_source = source = _SlowWorker(hs.image_source)
    one, two = png_bytes(30, seed=70), png_bytes(230, seed=71)
    assert hs.trigger(1) is not None
    assert source.waiting.wait(30)
    assert hs.trigger(2) is None and hs.error_code == ResultCode.NOT_READY
    source.go.set()
    _save(cam_dir, "1.png", one)
    _save(cam_dir, "2.png", two)
    ans = _answer(answers, 1)
    assert ans.trigger.tag == 1 and ans.inspection_id, ans.reason
    assert st.get(ans.inspection_id).image_sha256 == _sha(one), "part 1 judged on part 2's photo"


def test_a_modbus_clear_faster_than_the_camera_never_gives_the_refused_photo_to_the_next_part(link):
    st, hs, cam_dir, answers = link()
    one, two, three = png_bytes(30, seed=80), png_bytes(230, seed=81), png_bytes(40, seed=82)
    _save(cam_dir, "1.png", one)
    assert hs.trigger(1) is not None
    _answer(answers, 1)
    assert hs.trigger(2) is None                           # result unread: refused, Error 20
    hs.ack()
    hs.clear_error()                                       # before the camera saved part 2's photo
    _save(cam_dir, "2.png", two)
    assert hs.trigger(3) is not None
    _save(cam_dir, "3.png", three)
    ans = _answer(answers, 2)
    assert ans.trigger.tag == 3 and ans.code != ResultCode.NO_IMAGE, ans.reason
    assert st.get(ans.inspection_id).image_sha256 == _sha(three), "part 3 judged on part 2's photo"
