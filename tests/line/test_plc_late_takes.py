"""Two late takes: parts the PLC triggered while an earlier part's take still waited (its
window closed, the PLC went on). Where too few photos came in that wait to tell the parts'
apart, the earlier part is NO_IMAGE and the photos that came are set aside, counted as its and
the next parts', in order. A part whose photo was counted so then took another: the next
part's, set aside as its own, and that part, finding none, owed its photo once more; the
part after it, its own photo there, paid that debt: NO_IMAGE, told to raise the wait."""
from __future__ import annotations

import threading

from lineguard.line.plc_handshake import CameraFolder

from .conftest import png_bytes


def _take(cam, key):
    try:
        cam.take_begins(key)
        return cam()
    except LookupError as exc:
        return exc


def test_a_photo_set_aside_for_a_part_taken_since_is_not_counted_again_by_its_take(tmp_path):
    """Part 1's take began; its window closed and the PLC triggered parts 2 and 3 before it
    ended. Parts 1's and 2's photos came in its wait, part 3's after: too few for three parts
    (the camera may have missed one), so part 1 is NO_IMAGE and both photos are set aside.
    Part 2's take then took part 3's photo as its own (set aside, NO_IMAGE), part 3 found none
    and owed it again, and part 4, its own photo there, paid it: NO_IMAGE, parts 3 and 4 too."""
    cam = CameraFolder(tmp_path, wait_s=0.3)
    cam.trigger_taken(1)
    looked = threading.Event()
    real = cam._listing

    def listing():
        looked.set()
        return real()
    cam._listing = listing
    got = {}
    first = threading.Thread(target=lambda: got.update({1: _take(cam, 1)}))
    first.start()
    assert looked.wait(30), "part 1's take never looked at the folder"
    cam.trigger_taken(2)                                   # part 1's window closed: the PLC goes on
    cam.trigger_taken(3)
    (tmp_path / "1.png").write_bytes(png_bytes(30, seed=1))
    (tmp_path / "2.png").write_bytes(png_bytes(40, seed=2))
    first.join(30)
    assert not first.is_alive(), "part 1's take never ended"
    cam._listing = real
    assert isinstance(got[1], LookupError) and "too few to tell" in str(got[1]), got[1]
    three, four = png_bytes(50, seed=3), png_bytes(60, seed=4)
    (tmp_path / "3.png").write_bytes(three)                # part 3's photo, after part 1's wait
    got2 = _take(cam, 2)
    assert isinstance(got2, LookupError), f"part 2 judged on {got2[1]}, a photo it may not show"
    assert _take(cam, 3) == (three, "3.png"), "part 3, its own photo there, got none"
    cam.trigger_taken(4)
    (tmp_path / "4.png").write_bytes(four)
    got4 = _take(cam, 4)
    assert got4 == (four, "4.png"), f"part 4, its own photo there, was answered {got4!r}"
    assert cam._owed == [] and cam._marks == {}, (cam._owed, cam._marks)
