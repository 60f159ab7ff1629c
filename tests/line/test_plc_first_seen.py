"""A camera folder's photos in the order their writing began (first seen by the station), not
by their file times: a copy that stalled for seconds finishes after the next part's photo and
gets the later mtime, and ordered by mtime the next part was judged on the stalled photo."""
from __future__ import annotations

import os
import threading
import time

from lineguard.line.plc_handshake import CameraFolder

from .conftest import png_bytes, until


def _save(folder, name, data, mtime_ns=None):
    (folder / name).write_bytes(data)
    if mtime_ns is not None:
        os.utime(folder / name, ns=(mtime_ns, mtime_ns))


def _finished_after(folder, name, data, other):
    """The stalled copy of ``name`` finishing after ``other`` was saved: a later file time."""
    later = (folder / other).stat().st_mtime_ns + 50_000_000
    _save(folder, name, data, mtime_ns=later)


def test_a_refused_parts_stalled_copy_finished_after_the_next_photo_is_still_the_refused_parts(tmp_path):
    """Part R refused (Error 20); its photo's copy began and stalled; the PLC cleared the error
    and triggered part N, whose photo was saved whole; then R's copy finished. By mtime R's
    photo was the newer one, and part N was judged on it (R's photo set aside as N's)."""
    cam = CameraFolder(tmp_path, wait_s=3.0)
    r, n = png_bytes(230, seed=1), png_bytes(40, seed=2)
    cam.trigger_refused()                                  # part R
    _save(tmp_path, "R.png", r[: len(r) // 2])             # its copy begins, and stalls
    cam.restart()                                          # ClearError: R's photo still being written
    cam.trigger_taken("N")
    _save(tmp_path, "N.png", n)                            # part N's photo, whole
    _finished_after(tmp_path, "R.png", r, "N.png")         # R's copy ends after it
    cam.take_begins("N")
    data, name = cam()
    assert name == "N.png" and data == n, f"part N judged on {name}, the refused part's stalled photo"


def test_a_stalled_write_begun_before_the_next_parts_photo_is_the_earlier_parts(tmp_path):
    """Part 1's take outlived its window and the PLC triggered part 2. Part 1's photo began while
    the take looked, stalled, and finished after part 2's photo was saved. By mtime part 1 took
    part 2's photo, and part 2 part 1's: both judged on the other part's photo."""
    cam = CameraFolder(tmp_path, wait_s=5.0)
    one, two = png_bytes(30, seed=3), png_bytes(230, seed=4)
    cam.trigger_taken(1)
    cam.trigger_taken(2)
    _save(tmp_path, "1.png", one[: len(one) // 2])         # part 1's copy begins, and stalls
    looks = []
    real = cam._listing

    def listing():
        looks.append(time.monotonic())
        return real()
    cam._listing = listing
    got = {}

    def take_one():
        cam.take_begins(1)
        try:
            got[1] = cam()
        except LookupError as exc:
            got[1] = exc
    worker = threading.Thread(target=take_one)
    worker.start()
    # a second look began, so the first one (that saw part 1's copy under way) is over
    until(lambda: len(looks) >= 2, "part 1's take looked at the folder")
    _save(tmp_path, "2.png", two)                          # part 2's photo, whole
    _finished_after(tmp_path, "1.png", one, "2.png")       # part 1's copy ends after it
    worker.join(30)
    assert not worker.is_alive(), "part 1's take never ended"
    cam._listing = real
    assert not isinstance(got[1], Exception), f"part 1 got no photo: {got[1]}"
    assert got[1][1] == "1.png", f"part 1 judged on {got[1][1]}, part 2's photo"
    cam.take_begins(2)
    assert cam()[1] == "2.png", "part 2 judged on part 1's photo"
