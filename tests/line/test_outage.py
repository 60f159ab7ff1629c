"""A lasting fault said once, not a line per frame or file (line.sources.outage): when it
begins, at most once a minute while it lasts with the newest counts, when it ends with how
long it lasted. The camera and the hot folder both say their faults through it; a 17 s
station outage once logged 92 lines. The clock is a test's own: no sleeps, nothing timed."""
from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest

log = logging.getLogger("lineguard.test_outage")


class _Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _said(caplog, logger: str = "lineguard.test_outage") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


@pytest.fixture
def faults(caplog):
    # imported here: the heartbeat test at the end runs on a lineguard without this module
    from lineguard.line.sources.outage import LastingFaults
    caplog.set_level(logging.INFO, logger="lineguard.test_outage")
    clock = _Clock()
    return LastingFaults(log, clock=clock, wall_clock=lambda: 1_700_000_000.0), clock


BEGINS = "the station cannot take frames (%(reason)s), from frame %(pid)s on"
STILL = "the station still cannot take frames after %(lasted).0f s (%(reason)s); %(lost)d frames lost so far"
OVER = "the station takes frames again after %(lasted).1f s: %(lost)d frames lost"


def test_a_fault_is_said_once_when_it_begins_not_each_time_it_happens(faults, caplog):
    f, clock = faults
    for i in range(5):
        fault = f.happens("station", logging.ERROR, BEGINS, still=STILL, start={"pid": f"p{i}", "lost": 0},
                          reason="ConnectError: refused")
        fault["lost"] += 1
        clock.now += 10.0                       # 40 s in all: under a minute
    assert _said(caplog) == ["the station cannot take frames (ConnectError: refused), from frame p0 on"]
    assert caplog.records[0].levelno == logging.ERROR
    fault = f.get("station")
    # the start's details are the first time's; the counts go on
    assert fault.tries == 5 and fault["pid"] == "p0" and fault["lost"] == 5 and fault.wall == 1_700_000_000.0


def test_a_lasting_fault_is_said_again_once_an_interval_with_the_newest_details(faults, caplog):
    f, clock = faults
    t0 = clock.now
    for t, reason in ((0, "HTTP 503: disk full"), (30, "HTTP 503: disk full"), (59.9, "ConnectError: refused"),
                      (60, "ConnectError: refused"), (61, "ConnectError: refused"), (119, "ReadTimeout: timed out"),
                      (125, "ReadTimeout: timed out")):
        clock.now = t0 + t
        fault = f.happens("station", logging.ERROR, BEGINS, still=STILL, start={"pid": "p1", "lost": 0},
                          reason=reason)
        fault["lost"] += 1
    assert _said(caplog) == [
        "the station cannot take frames (HTTP 503: disk full), from frame p1 on",
        # at 60 s, not before; the reason and the count as they are then
        "the station still cannot take frames after 60 s (ConnectError: refused); 3 frames lost so far",
        # a minute after the last line, not after the start: 125 s, not 119 s
        "the station still cannot take frames after 125 s (ReadTimeout: timed out); 6 frames lost so far",
    ]


def test_a_fault_without_words_of_its_own_for_a_repeat_says_how_often_it_happened_meanwhile(faults, caplog):
    from lineguard.line.sources.outage import REPEAT_S
    f, clock = faults
    t0 = clock.now
    for t in (0, 5, 20, 45, REPEAT_S):
        clock.now = t0 + t
        f.happens(("scan",), logging.ERROR, "scanning %(folder)s failed (%(error)s); trying again",
                  folder="/in", error=f"OSError: gone at {t:g}")
    assert _said(caplog) == ["scanning /in failed (OSError: gone at 0); trying again",
                             "scanning /in failed (OSError: gone at 60); trying again (still; 4 more times in the "
                             "last 60 s)"]


def test_the_end_is_said_once_with_how_long_the_fault_lasted(faults, caplog):
    f, clock = faults
    f.happens("station", logging.ERROR, BEGINS, start={"pid": "p1", "lost": 0}, reason="refused")["lost"] += 2
    clock.now += 75.3
    caplog.clear()
    over = f.ends("station", logging.WARNING, OVER)
    assert over is not None and over.tries == 1
    assert _said(caplog) == ["the station takes frames again after 75.3 s: 2 frames lost"]
    assert caplog.records[0].levelno == logging.WARNING
    # over: not said again, and nothing to end
    assert f.ends("station", logging.WARNING, OVER) is None and f.get("station") is None
    assert len(_said(caplog)) == 1
    # a fault that never began is never said to end
    assert f.ends("never", logging.WARNING, "never began: %(lasted).0f s") is None and len(_said(caplog)) == 1


def test_two_keys_begin_repeat_and_end_on_their_own(faults, caplog):
    f, clock = faults
    t0 = clock.now
    f.happens(("scan",), logging.ERROR, "scan fails")
    clock.now = t0 + 30
    f.happens(("status",), logging.WARNING, "status fails")
    clock.now = t0 + 60
    f.happens(("scan",), logging.ERROR, "scan fails")          # its minute is up
    f.happens(("status",), logging.WARNING, "status fails")    # 30 s: not yet
    f.ends(("scan",), logging.INFO, "scan works again after %(lasted).0f s")
    assert ("scan",) not in f and ("status",) in f
    clock.now = t0 + 90
    f.happens(("status",), logging.WARNING, "status fails")    # its own minute, from its own start
    assert _said(caplog) == ["scan fails", "status fails", "scan fails (still; 1 more times in the last 60 s)",
                             "scan works again after 60 s", "status fails (still; 2 more times in the last 60 s)"]


def test_a_fault_that_begins_again_after_its_end_is_said_again_from_zero(faults, caplog):
    f, clock = faults
    t0 = clock.now
    f.happens("station", logging.ERROR, BEGINS, still=STILL, start={"pid": "p1", "lost": 0},
              reason="refused")["lost"] += 3
    clock.now = t0 + 10
    f.ends("station", logging.WARNING, OVER)
    clock.now = t0 + 11                   # down again a second later: a new outage, said at once
    again = f.happens("station", logging.ERROR, BEGINS, still=STILL, start={"pid": "p9", "lost": 0},
                      reason="HTTP 503: disk full")
    assert again.tries == 1 and again["lost"] == 0 and again.since == t0 + 11
    clock.now = t0 + 15
    f.ends("station", logging.WARNING, OVER)
    assert _said(caplog) == ["the station cannot take frames (refused), from frame p1 on",
                             "the station takes frames again after 10.0 s: 3 frames lost",
                             "the station cannot take frames (HTTP 503: disk full), from frame p9 on",
                             "the station takes frames again after 4.0 s: 0 frames lost"]


def test_a_fault_ended_without_words_is_gone_unsaid(faults, caplog):
    f, clock = faults
    f.happens(("file", "a.png"), logging.ERROR, "%(name)s: not handled", name="a.png")
    assert f.ends(("file", "a.png")) is not None and list(f.keys()) == []
    clock.now += 1
    f.happens(("file", "a.png"), logging.ERROR, "%(name)s: not handled", name="a.png")
    assert _said(caplog) == ["a.png: not handled", "a.png: not handled"]


# -- the sources say their faults through it ---------------------------------------------------
class _LiveCapture:
    def isOpened(self):  # noqa: N802 - cv2.VideoCapture's name
        return True

    def read(self):
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_a_live_cameras_outage_is_said_again_after_a_minute_with_the_frames_lost_so_far(caplog):
    pytest.importorskip("cv2")
    from lineguard.line.sources.camera import CameraSource
    caplog.set_level(logging.INFO, logger="lineguard.camera")
    down = {"on": True}

    def submit(image, part_id, name):
        if down["on"]:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return {"part_id": part_id, "verdict": "OK", "score": 0.1, "id": 1}

    cam = CameraSource("0", submit, station_name="CAM", opener=_LiveCapture)
    clock = _Clock()
    cam._outage.clock = clock
    t0 = clock.now
    frame = np.zeros((8, 8, 3), np.uint8)
    for t in (0, 10, 59, 60, 61):            # a frame a station down cannot take: dropped
        clock.now = t0 + t
        assert cam.inspect_frame(frame) is None
    assert cam.in_outage == "ConnectError: [Errno 111] Connection refused"
    down["on"] = False
    clock.now = t0 + 75
    assert cam.inspect_frame(frame) is not None and cam.in_outage is None
    said = _said(caplog, "lineguard.camera")
    assert len(said) == 3, said
    assert said[0].startswith("the station cannot take frames (ConnectError: [Errno 111] Connection refused), "
                              "from frame CAM-") and "a live camera cannot wait" in said[0]
    assert said[1] == ("the station still cannot take frames after 60 s (ConnectError: [Errno 111] Connection "
                       "refused); 3 frames lost so far")
    assert said[2] == "the station takes frames again after 75.0 s (from its first refusal): 5 frames lost while it could not (not inspected)"
    assert (cam.outages, cam.lost, cam.inspected) == (1, 5, 1)


def test_the_hot_folders_outage_and_backlog_are_said_again_after_a_minute_and_at_their_end(tmp_path, caplog):
    from lineguard.line.sources.folder import FolderWatcher
    inbox = tmp_path / "in"
    inbox.mkdir()
    w = FolderWatcher(inbox, lambda *a: {}, settle_s=0.0, poll_s=0.01)
    clock = _Clock()
    w._faults.clock = clock
    t0 = clock.now
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    w.waiting = 7
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        for t in (0, 30, 60, 61):
            clock.now = t0 + t
            w._not_taking("p1.png", refused)
        assert w.status()["station_taking_parts"] is False
        clock.now = t0 + 75
        w._taking_again()
        w._taking_again()                   # over already: not said twice
        # behind the line: a file ready that waited 40 s, then a minute more, then taken
        w._seen["a.png"] = (10, 1, 0.0)
        for t, oldest in ((100, 40.0), (130, 70.0), (160, 100.0)):
            clock.now = t0 + t
            w._look_behind(["a.png"], now=oldest)
        w.counts["done"] = 3
        w._seen["a.png"] = (10, 1, 100.0)
        clock.now = t0 + 170
        w._look_behind(["a.png"], now=101.0)
    said = [r.getMessage() for r in caplog.records if r.name == "lineguard.watch"]
    assert len(said) == 6, said
    assert said[0].startswith("the station cannot take parts (ConnectError: [Errno 111] Connection refused): p1.png "
                              f"and the other files wait in {inbox}; one file is tried again every 0.01 to 5 s")
    assert said[1] == (f"the station still cannot take parts (ConnectError: [Errno 111] Connection refused) after "
                       f"60 s; 7 files wait in {inbox} (3 tries)")
    assert said[2] == ("the station takes parts again after 75 s (4 tries failed; ConnectError: [Errno 111] "
                       "Connection refused); 7 files waited")
    assert said[3].startswith(f"falling behind: 1 files wait in {inbox}, the oldest for 40 s; parts are judged late")
    assert said[4] == f"still behind: 1 files wait in {inbox}, the oldest for 100 s (behind for 60 s, 0 files " \
                      "handled meanwhile)"
    assert said[5] == f"caught up: 1 files wait in {inbox}, the oldest for 1 s; the backlog lasted 70 s, 3 files " \
                      "handled meanwhile"
    assert w.status()["station_taking_parts"] is True and w.status()["behind"] is False


def test_a_watchers_heartbeat_that_works_again_ends_its_fault_and_a_new_failure_is_said(tmp_path, caplog):
    """Review: the watcher's heartbeat fault never ended (the camera's outage and the
    folder's own scan and status faults do): a heartbeat that failed, worked, and failed
    again 10 s later was not said the second time, and a minute on was said as "still"."""
    from lineguard.line.sources.folder import FolderWatcher
    inbox = tmp_path / "in"
    inbox.mkdir()
    answers = ["fail", "ok", "fail"]

    def heartbeat(status):
        if answers.pop(0) == "fail":
            raise RuntimeError("the station's heartbeat queue is closed")

    w = FolderWatcher(inbox, lambda *a: {}, settle_s=0.0, poll_s=0.01, heartbeat=heartbeat)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        for _ in range(3):
            w._write_status(0.0, force=True)    # three statuses, seconds apart
    said = [r.getMessage() for r in caplog.records if "heartbeat" in r.getMessage()]
    # before: only the first failure, and no word that it worked again
    assert said == ["the watcher's heartbeat failed (RuntimeError: the station's heartbeat queue is closed)",
                    "the watcher's heartbeat works again",
                    "the watcher's heartbeat failed (RuntimeError: the station's heartbeat queue is closed)"], said
