"""A part whose inspection window closed before the station got to it (the station held up
by earlier parts: a database locked for seconds) is answered NG by timeout and is then not
inspected at all: it takes no photo, so no later part's photo is stored as its verdict, and
the part then pending still finds its own photo."""
from __future__ import annotations

import hashlib
import threading

from sqlalchemy import select

from lineguard.line.orm import LineSignal
from lineguard.line.plc_handshake import CameraFolder, Handshake, ResultCode

from .conftest import png_bytes, until


def test_parts_queued_behind_a_stalled_database_take_no_later_parts_photo(sqlite_station, monkeypatch):
    """Found at 10 parts/s with the station's SQLite held by BEGIN EXCLUSIVE for 6 s: the
    inspections of the parts answered NG (timeout) meanwhile stayed queued behind the two
    stalled ones, and once the lock went each took the newest photo in the folder: part
    8330 stored as OK on part 8335's photo, and part 8335, the one pending, answered NG 11
    (no new photo) with Error latched, stopping the line."""
    st = sqlite_station()
    cam_dir = st.config.data_dir / "cam"
    cam_dir.mkdir(parents=True)
    # a 60 s window, closed by the test below for each part (as its timer would): no race
    hs = Handshake(st, CameraFolder(cam_dir, wait_s=0.2), {1: "cell"}, line="L1", station_name="S1",
                   window_ms=60_000, protocol="modbus", verify_every_s=3600)
    answers = []
    hs.answered = answers.append
    release = threading.Event()
    stalled = []
    real = st.inspect

    def inspect(image, part, source="api"):
        if part.serial in ("1", "2"):        # the database locked while these two are stored
            stalled.append(part.serial)
            release.wait(30)
        return real(image, part, source=source)

    monkeypatch.setattr(st, "inspect", inspect)
    photos = {tag: png_bytes(30, seed=tag) for tag in range(1, 6)}
    photos[6] = png_bytes(230, seed=6)       # part 6 is a defect: judged on another photo it passed
    try:
        for tag in range(1, 6):
            (cam_dir / f"part{tag:02d}.png").write_bytes(photos[tag])    # the camera, then the trigger
            trig = hs.trigger(tag)
            assert trig is not None
            if tag <= 2:                     # both workers take their photo and wait for the database
                until(lambda: len(stalled) == tag, f"part {tag}'s inspection stalled")
            trig.timer.cancel()
            hs._window_closed(trig.seq)      # its window closes: NG, timeout
            assert (answers[-1].trigger.tag, answers[-1].code) == (tag, ResultCode.TIMEOUT)
            hs.ack()
        (cam_dir / "part06.png").write_bytes(photos[6])
        trig6 = hs.trigger(6)
        release.set()                        # the lock goes: the queued inspections run
        until(lambda: len(answers) == 6, "part 6's answer")
        ans6 = answers[-1]
        assert (ans6.trigger.tag, ans6.code, hs.error_code) == (6, ResultCode.NG, 0), \
            (ans6.code, ans6.reason, hs.error)
        rec6 = st.get(ans6.inspection_id)
        assert rec6.image_sha256 == hashlib.sha256(photos[6]).hexdigest() and "tag6" in rec6.part_id
        trig6.timer.cancel()
    finally:
        release.set()
        hs.close()
    # parts 1 and 2 judged late on their own photos (linked, never sent); 3, 4, 5 not
    # inspected at all: their timeout row is their one record
    judged = {r.serial: r.image_sha256 for r in st.query()}
    assert judged == {str(t): hashlib.sha256(photos[t]).hexdigest() for t in (1, 2, 6)}, judged
    with st.db.session() as s:
        rows = list(s.scalars(select(LineSignal).order_by(LineSignal.trigger_seq)))
    assert [(r.part_tag, r.result_code) for r in rows] == \
        [(1, 10), (2, 10), (3, 10), (4, 10), (5, 10), (6, int(ResultCode.NG))]
    assert [bool(r.late_inspection_id) for r in rows] == [True, True, False, False, False, False]
    assert all("never took its photo" in r.reason for r in rows[2:5]), [r.reason for r in rows]
    assert "never took its photo" not in rows[0].reason


def test_a_part_whose_window_closed_before_its_photo_leaves_that_photo_to_no_later_part(sqlite_station,
                                                                                         monkeypatch):
    """A camera a little late: the photo of the part that was never got to lands after its
    window closed; the next part whose own photo does not come is NO_IMAGE, never judged on
    it."""
    st = sqlite_station()
    cam_dir = st.config.data_dir / "cam"
    cam_dir.mkdir(parents=True)
    hs = Handshake(st, CameraFolder(cam_dir, wait_s=0.2), {1: "cell"}, line="L1", station_name="S1",
                   window_ms=60_000, protocol="modbus", verify_every_s=3600)
    answers = []
    hs.answered = answers.append
    release = threading.Event()
    stalled = []
    real = st.inspect

    def inspect(image, part, source="api"):
        if part.serial in ("1", "2"):
            stalled.append(part.serial)
            release.wait(30)
        return real(image, part, source=source)

    monkeypatch.setattr(st, "inspect", inspect)
    try:
        for tag in (1, 2, 3):
            if tag <= 2:
                (cam_dir / f"part{tag:02d}.png").write_bytes(png_bytes(30, seed=tag))
            trig = hs.trigger(tag)
            if tag <= 2:
                until(lambda: len(stalled) == tag, f"part {tag}'s inspection stalled")
            trig.timer.cancel()
            hs._window_closed(trig.seq)
            hs.ack()
        (cam_dir / "part03.png").write_bytes(png_bytes(30, seed=3))     # part 3's photo, late
        trig4 = hs.trigger(4)                # part 4: its camera did not save
        release.set()
        until(lambda: len(answers) == 4, "part 4's answer")
        assert (answers[-1].trigger.tag, answers[-1].code) == (4, ResultCode.NO_IMAGE), answers[-1].reason
        trig4.timer.cancel()
    finally:
        release.set()
        hs.close()
    assert sorted(r.serial for r in st.query()) == ["1", "2"]
