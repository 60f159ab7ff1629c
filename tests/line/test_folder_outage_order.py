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
