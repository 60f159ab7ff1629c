"""The hot folder after a station outage, and files the station fails on (walk C; review of
2fb3f7f). The parts that waited through an outage are recorded in the folder's order once the
station takes parts again: the try after the one tried last, and the rest of that pass in its
turn, recorded K-0019..K-0025 after K-0099, and a line's alarms count parts in id order. A file
the station answers HTTP 500 on while it takes other parts holds none behind it: 2fb3f7f's
folder order tried such files again in each pass, and two of them first in the folder let one
part through per try (5 of 110 recorded where 95 were before). The station is a fake submit, as
in test_folder_backlog: no answer (refused), 503, a timeout, or its own failure (500)."""
from __future__ import annotations

import time

import httpx
import pytest

from lineguard.line.sources import SubmitFailed
from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes


def _drop(inbox, names) -> None:
    for name in names:
        (inbox / f"{name}.png").write_bytes(png_bytes(40, seed=300 + int(name[2:]), size=16))


def _inbox(tmp_path, n: int):
    inbox = tmp_path / "in"
    inbox.mkdir()
    _drop(inbox, [f"K-{i:04d}" for i in range(n)])
    return inbox


class _Clock:
    """The watcher's clock (its module's ``time``), moved on only between polls: a try falls due
    when a pass begins, never at whatever file a pass has come to, on a machine fast or slow."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(folder_mod, "time", c)
    return c


def _until(w: FolderWatcher, clock: _Clock, done, step: float = 0.25) -> None:
    for _ in range(3000):
        w.poll_once()
        if done():
            return
        clock.now += step


def _failed_on(part_id: str) -> SubmitFailed:
    # what remote_submitter raises for the station's own failure on a request
    return SubmitFailed(f"HTTP 500: internal_error: the station failed on this request ({part_id})",
                        "internal_error")


OUTAGES = {
    "refused": lambda: httpx.ConnectError("[Errno 111] Connection refused"),      # the station PC restarting
    "503": lambda: SubmitFailed("HTTP 503: storage_unavailable: the station's disk is full", "storage_unavailable"),
    "504": lambda: SubmitFailed("HTTP 504: Gateway Timeout", None),               # a proxy in front of it
    "timeout": lambda: httpx.ReadTimeout("timed out"),
    # the station failing on every part (500 for each), then not: an outage too
    "500 for every part": None,
}


@pytest.mark.parametrize("fault", list(OUTAGES))
def test_parts_that_waited_through_an_outage_are_recorded_in_the_folders_order(tmp_path, clock, fault):
    inbox = _inbox(tmp_path, 30)
    station = {"up": False, "tries": 0}
    recorded = []

    def submit(data, part_id, name):
        if not station["up"]:
            station["tries"] += 1
            raise OUTAGES[fault]() if OUTAGES[fault] else _failed_on(part_id)
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.001)
    # an outage of several tries: the try after the one tried last had moved past the first files
    _until(w, clock, lambda: station["tries"] >= 6)
    assert recorded == [] and len(list(inbox.glob("*.png"))) == 30
    station["up"] = True
    _until(w, clock, lambda: len(recorded) == 30)
    # before: K-0005..K-0029 first, then K-0000..K-0004 (refused); every file answered, none twice
    assert recorded == [f"K-{i:04d}" for i in range(30)], "parts recorded out of the folder's order"
    assert w.status()["station_taking_parts"] is True and w.counts["done"] == 30


def test_two_files_the_station_fails_on_first_in_the_folder_hold_no_others(tmp_path, clock):
    """The review's run: 110 parts dropped 16 a poll, the station answering 500 on the first two
    each time it is asked. 2fb3f7f recorded 10 in 12 polls; HEAD and this fix all 108 others."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    names = [f"K-{i:04d}" for i in range(110)]
    poison = {"K-0000", "K-0001"}
    recorded, asked = [], {n: 0 for n in poison}

    def submit(data, part_id, name):
        if part_id in poison:
            asked[part_id] += 1
            raise _failed_on(part_id)
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.01)
    for i in range(12):
        _drop(inbox, names[16 * i:16 * (i + 1)])
        w.poll_once()
        clock.now += 0.01
    assert len(recorded) == 108, f"{len(recorded)} of 110 parts recorded"
    assert sorted(recorded) == sorted(set(names) - poison)
    # the two stay in the folder, tried again (not given up to failed/, not judged twice)
    assert (inbox / "K-0000.png").exists() and (inbox / "K-0001.png").exists()
    assert not (inbox / "failed").exists() and min(asked.values()) >= 2


def test_a_batch_the_station_fails_on_first_in_the_folder_is_passed_in_a_few_tries(tmp_path, clock):
    """Ten photos in a row the station answers 500 on look like a station failing on every part
    until a file behind them is taken: each try also asks as many other files as it failed on so
    far (up to OTHERS_MAX), not one, so the line goes on after a few tries, not ten growing to
    5 s apart (HEAD: none of the 100 others recorded in 8 polls)."""
    inbox = _inbox(tmp_path, 110)
    poison = {f"K-{i:04d}" for i in range(10)}
    recorded = []

    def submit(data, part_id, name):
        if part_id in poison:
            raise _failed_on(part_id)
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.01)
    for _ in range(8):
        w.poll_once()
        clock.now += 0.25
    assert recorded == [f"K-{i:04d}" for i in range(10, 110)], f"{len(recorded)} of the 100 others recorded"
    assert all((inbox / f"{p}.png").exists() for p in poison)


def test_an_outage_then_a_file_the_station_fails_on_among_those_waiting(tmp_path, clock, caplog):
    inbox = _inbox(tmp_path, 12)
    station = {"up": False, "tries": 0, "K-0004 fails": True, "K-0004 asked": 0}
    recorded = []

    def submit(data, part_id, name):
        if not station["up"]:
            station["tries"] += 1
            raise httpx.ConnectError("[Errno 111] Connection refused")
        if part_id == "K-0004" and station["K-0004 fails"]:
            station["K-0004 asked"] += 1
            raise _failed_on(part_id)          # a model that fails on that image
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.001)
    _until(w, clock, lambda: station["tries"] >= 6)
    station["up"] = True
    with caplog.at_level("INFO", logger="lineguard.watch"):
        _until(w, clock, lambda: len(recorded) == 11)
        # the others in the folder's order, K-0004 not holding those behind it
        assert recorded == [f"K-{i:04d}" for i in range(12) if i != 4]
        # tried again on its own while the station takes other parts (new parts go on meanwhile)
        _until(w, clock, lambda: station["K-0004 asked"] >= 4)
        _drop(inbox, ["K-0012", "K-0013"])
        _until(w, clock, lambda: len(recorded) == 13)
        assert recorded[-2:] == ["K-0012", "K-0013"] and (inbox / "K-0004.png").exists()
        assert w.status()["station_taking_parts"] is True
        # the station fails on it no longer (its log read, the model fixed): taken on its own try
        station["K-0004 fails"] = False
        _until(w, clock, lambda: len(recorded) == 14)
    assert recorded[-1] == "K-0004" and not (inbox / "failed").exists()
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if m.startswith("K-0004.png: the station fails on this file")]) == 1, said
    assert [m for m in said if m.startswith("K-0004.png: the station takes this file again")], said
    assert not [m for m in said if "cannot take parts (HTTP 500" in m], said      # no outage said for the one file


# -- review of d34a7e9 -------------------------------------------------------------------------
def test_a_file_whose_request_always_times_out_holds_no_others(tmp_path, clock):
    """A read timeout on one file (a model hanging on that image) is told like a 500: set aside,
    the next file tried at once. d34a7e9 took it for an outage and tried it first for ever: 0 of
    29 parts behind it in 451 s (d34a7e9~1: 29 of 29)."""
    inbox = _inbox(tmp_path, 30)
    recorded, asked = [], {"K-0000": 0}

    def submit(data, part_id, name):
        if part_id == "K-0000":
            asked["K-0000"] += 1
            clock.now += 60.0                    # the submit's read timeout
            raise httpx.ReadTimeout("timed out")
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    for _ in range(10):
        w.poll_once()
        clock.now += 0.25
    assert recorded == [f"K-{i:04d}" for i in range(1, 30)], f"{len(recorded)} of 29 parts recorded"
    assert w.status()["station_taking_parts"] is True and (inbox / "K-0000.png").exists()
    # told as its own, it waits a whole ASIDE_MAX_S between tries: each holds the line for a minute
    assert asked["K-0000"] == 2


def test_two_files_timing_out_in_a_row_none_taken_are_an_outage(tmp_path, clock):
    inbox = _inbox(tmp_path, 5)
    asked = []

    def submit(data, part_id, name):
        asked.append(part_id)
        raise httpx.ReadTimeout("timed out")     # a station hung on every part

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w.poll_once()                                # the files seen
    w.poll_once()
    assert asked == ["K-0000", "K-0001"] and w.status()["station_taking_parts"] is False
    # one try at a time, with at most one other after a timeout: not nine requests of a minute each
    for _ in range(20):
        clock.now += 5.0
        n = len(asked)
        w.poll_once()
        assert len(asked) - n <= 2, asked[n:]


def _poisoned(inbox, names):
    """A submit failing (500) on the bytes of ``names`` as they are now: a new photo written
    under one of those names is taken."""
    bad = {(inbox / f"{n}.png").read_bytes() for n in names}
    recorded, asked = [], []

    def submit(data, part_id, name):
        if data in bad:
            asked.append(part_id)
            raise _failed_on(part_id)
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}
    return submit, recorded, asked


def test_a_new_photo_under_a_set_aside_files_name_does_not_wait_its_turn(tmp_path, clock):
    """d34a7e9 kept the set-aside entry by name: a new photo written under it waited the old
    file's wait (recorded after 59.75 s; 3.75 s before d34a7e9)."""
    inbox = _inbox(tmp_path, 10)
    submit, recorded, asked = _poisoned(inbox, ["K-0004"])
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    _until(w, clock, lambda: len(asked) >= 6)           # its own, its wait grown to 16 s
    assert len(recorded) == 9 and "K-0004" not in recorded
    (inbox / "K-0004.png").write_bytes(png_bytes(40, seed=9999, size=16))
    for _ in range(4):
        clock.now += 0.25
        w.poll_once()
    assert recorded[-1] == "K-0004" and len(asked) == 6
    assert ("aside", "K-0004.png") not in w._faults


def test_set_aside_files_are_not_the_lines_backlog(tmp_path, clock):
    """A file the station fails on alone, the other parts on time: d34a7e9 counted it as waiting
    and the oldest, said "behind" for ever, and /health "the PC does not keep up"."""
    from lineguard.line.watchers import watcher_faults

    inbox = _inbox(tmp_path, 3)
    submit, recorded, _ = _poisoned(inbox, ["K-0001"])
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    for i in range(3, 3 + 240):                          # a part every 0.5 s for 2 minutes
        _drop(inbox, [f"K-{i:04d}"])
        w.poll_once()
        clock.now += 0.5
    st = w.status()
    assert len(recorded) == 241
    assert st["behind"] is False and st["waiting"] <= 2 and st["oldest_wait_s"] < 1, st
    assert st["set_aside"] == 1 and st["set_aside_files"] == ["K-0001.png"], st
    st.update(line="L1", station="S1", updated=time.time(), running=True)     # as run() writes it
    said = watcher_faults([(tmp_path / "status.json", st)])["watcher L1/S1"]
    assert "1 file(s) set aside" in said and "K-0001.png" in said and "keep up" not in said, said
    # a status file from before set_aside still reads as it did
    old = {k: v for k, v in st.items() if not k.startswith("set_aside")}
    assert watcher_faults([(tmp_path / "status.json", old)]) == {}
    old.update(behind=True, waiting=40, oldest_wait_s=45.0)
    assert "keep up" in watcher_faults([(tmp_path / "status.json", old)])["watcher L1/S1"]


def test_after_a_500_spell_the_files_set_aside_in_it_go_first_in_the_folders_order(tmp_path, clock):
    """The station fails on every part (500) for a while and on K-0000 alone for good. d34a7e9
    recorded K-0016..K-0039 before K-0001..K-0015 (the files set aside in the outage were passed
    until the next pass); now only the part that told the station takes parts again goes first."""
    inbox = _inbox(tmp_path, 40)
    station = {"up": False, "tries": 0}
    recorded = []

    def submit(data, part_id, name):
        if part_id == "K-0000":
            raise _failed_on(part_id)
        if not station["up"]:
            station["tries"] += 1
            raise _failed_on(part_id)
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    _until(w, clock, lambda: station["tries"] >= 12)
    station["up"] = True
    _until(w, clock, lambda: len(recorded) == 39)
    assert sorted(recorded) == [f"K-{i:04d}" for i in range(1, 40)]
    assert recorded[1:] == sorted(recorded[1:]), f"out of order: {recorded}"


def test_files_set_aside_are_said_together_once_a_minute(tmp_path, clock, caplog):
    """100 files set aside said 100 lines a minute (each its own "still"); now each is said
    once when set aside, then one line a minute names how many and the first few."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    poison = [f"P-{i:04d}" for i in range(30)]
    for n in poison:
        (inbox / f"{n}.png").write_bytes(png_bytes(40, seed=5000 + int(n[2:]), size=16))
    submit, recorded, _ = _poisoned(inbox, poison)
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        for i in range(6 * 120):                          # a good part every 0.5 s for 6 minutes
            _drop(inbox, [f"K-{i:04d}"])
            w.poll_once()
            clock.now += 0.5
            if i == 2 * 120:
                caplog.clear()                            # minutes 3 to 6
    assert len(recorded) == 719 and w.status()["set_aside"] == 30      # the newest waits to settle
    said = [r.getMessage() for r in caplog.records]
    assert 3 <= len(said) <= 5, said
    assert all(m.startswith("30 file(s) still set aside") and "P-0000.png" in m and "25 more" in m for m in said), said
