"""Photos a camera folder gets out of the camera's order: never another part's photo.

Photos are ordered by the camera's file times, but no order is right for every camera: a copy
written in place that stalled for seconds finishes after the next part's photo (by file time
the next part was judged on the stalled photo); a copier that renames and keeps the camera's
time delivers the later part's photo first (by the order seen, each part got the other's). Where
the file times and the order the station saw the photos in name different photos for a part,
it takes none (NO_IMAGE, answered NG): a person looks, where before a defect could ship as
another part's OK."""
from __future__ import annotations

import os
import threading
import time

import pytest

from lineguard.line.plc_handshake import CameraFolder

OUT_OF_ORDER = "came out of the camera's order"

from .conftest import png_bytes, until


def _save(folder, name, data, mtime_ns=None):
    (folder / name).write_bytes(data)
    if mtime_ns is not None:
        os.utime(folder / name, ns=(mtime_ns, mtime_ns))


def _finished_after(folder, name, data, other):
    """The stalled copy of ``name`` finishing after ``other`` was saved: a later file time."""
    later = (folder / other).stat().st_mtime_ns + 50_000_000
    _save(folder, name, data, mtime_ns=later)


def _taken_while(cam, part, deliver):
    """Part ``part``'s take, its photos delivered by ``deliver(looked)`` once the take looks at
    the folder (``looked(n)`` waits for its n-th look): the photo name it took, or the error."""
    looks = []
    real = cam._listing

    def listing():
        looks.append(time.monotonic())
        return real()
    cam._listing = listing
    got = []

    def take():
        cam.take_begins(part)
        try:
            got.append(cam()[1])
        except LookupError as exc:
            got.append(exc)
    worker = threading.Thread(target=take)
    worker.start()

    def looked(n):
        until(lambda: len(looks) >= n, f"part {part}'s take looked at the folder {n} time(s)")
        return len(looks)
    deliver(looked)
    worker.join(30)
    cam._listing = real
    assert not worker.is_alive(), f"part {part}'s take never ended"
    return got[0]


def test_a_refused_parts_stalled_copy_finished_after_the_next_photo_is_no_parts_photo(tmp_path):
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
    with pytest.raises(LookupError, match=OUT_OF_ORDER):
        name = cam()[1]
        raise AssertionError(f"part N judged on {name}: R.png is the refused part's stalled photo")
    # the photos are accounted for: the next part takes its own
    cam.trigger_taken("M")
    _save(tmp_path, "M.png", png_bytes(90, seed=3))
    cam.take_begins("M")
    assert cam()[1] == "M.png"


def test_a_stalled_write_begun_before_the_next_parts_photo_is_neither_parts(tmp_path):
    """Part 1's take outlived its window and the PLC triggered part 2. Part 1's photo began while
    the take looked, stalled, and finished after part 2's photo was saved. By mtime part 1 took
    part 2's photo, and part 2 part 1's: both judged on the other part's photo."""
    cam = CameraFolder(tmp_path, wait_s=5.0)
    one, two = png_bytes(30, seed=3), png_bytes(230, seed=4)
    cam.trigger_taken(1)
    cam.trigger_taken(2)
    _save(tmp_path, "1.png", one[: len(one) // 2])         # part 1's copy begins, and stalls

    def camera(looked):
        looked(2)       # a second look began: the first (that saw part 1's copy under way) is over
        _save(tmp_path, "2.png", two)                      # part 2's photo, whole
        _finished_after(tmp_path, "1.png", one, "2.png")   # part 1's copy ends after it
    got = _taken_while(cam, 1, camera)
    assert isinstance(got, LookupError) and OUT_OF_ORDER in str(got), f"part 1 judged on {got}"
    _takes_none(cam, 2)


def _takes_none(cam, part):
    """Part ``part``'s take, whose photo is as unsure as the part before it's: NO_IMAGE."""
    cam.take_begins(part)
    with pytest.raises(LookupError):
        name = cam()[1]
        raise AssertionError(f"part {part} judged on {name}, its photo as unsure as the part before it's")


def _delivered(folder, name, data, camera_ns):
    """A copier that writes a hidden name and renames it, keeping the camera's file time
    (rsync -a, WinSCP, syncthing): the photo appears whole, when its copy ends."""
    hidden = folder / f".{name}.part7"
    hidden.write_bytes(data)
    os.utime(hidden, ns=(camera_ns, camera_ns))
    os.rename(hidden, folder / name)


def test_a_copier_that_renames_and_keeps_the_cameras_time_gives_no_part_the_others_photo(tmp_path):
    """A copier that delivers whole files, the later part's first (R's copy slower), with the
    camera's times: by the order seen part N took the refused part's photo (c760549)."""
    cam = CameraFolder(tmp_path, wait_s=3.0)
    r, n = png_bytes(230, seed=5), png_bytes(40, seed=6)
    shot = time.time_ns() - 2_000_000_000
    cam.trigger_refused()                                  # part R, photographed first
    cam.restart()
    cam.trigger_taken("N")

    def copier(looked):
        _delivered(tmp_path, "N.png", n, shot + 200_000_000)   # N's copy ends first
        looked(looked(1) + 1)                                  # the take saw it alone
        _delivered(tmp_path, "R.png", r, shot)
    got = _taken_while(cam, "N", copier)
    assert isinstance(got, LookupError) and OUT_OF_ORDER in str(got), f"part N judged on {got}"


def test_a_late_take_with_a_renaming_copier_takes_no_other_parts_photo(tmp_path):
    """Part 1's take outlived its window and part 2 was triggered; the copier delivered part
    2's photo first: by the order seen each part was judged on the other's photo (c760549)."""
    cam = CameraFolder(tmp_path, wait_s=5.0)
    one, two = png_bytes(30, seed=7), png_bytes(230, seed=8)
    shot = time.time_ns() - 2_000_000_000
    cam.trigger_taken(1)

    def copier(looked):
        looked(1)
        cam.trigger_taken(2)
        _delivered(tmp_path, "2.png", two, shot + 300_000_000)
        looked(looked(1) + 1)                              # it saw part 2's photo alone
        _delivered(tmp_path, "1.png", one, shot)
    got = _taken_while(cam, 1, copier)
    assert isinstance(got, LookupError) and OUT_OF_ORDER in str(got), f"part 1 judged on {got}"
    _takes_none(cam, 2)


def test_a_photo_being_written_when_the_station_starts_is_no_parts(tmp_path):
    """Review of c760549 (old and new alike): a photo a third written at start, finished, was
    taken as a new photo by the first part, and every part after it got the photo before its
    own, with no fault."""
    before = png_bytes(120, seed=9)
    (tmp_path / "0999.png").write_bytes(before[: len(before) // 3])
    cam = CameraFolder(tmp_path, wait_s=3.0)
    (tmp_path / "0999.png").write_bytes(before)            # its copy ends after the start
    for part in (1000, 1001, 1002):
        cam.trigger_taken(part)

        def camera(looked, part=part):
            looked(1)
            (tmp_path / f"{part}.png").write_bytes(png_bytes(30 + part % 7 * 20, seed=part))
        name = _taken_while(cam, part, camera)
        assert name == f"{part}.png", f"part {part} judged on {name}"
