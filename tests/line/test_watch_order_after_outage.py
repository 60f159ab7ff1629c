"""Parts waiting in the hot folder through a station outage are recorded in the folder's order
once the station takes parts again (walk C, two lines on one database): the try that found the
station back was with the file after the one tried last, and the rest of that pass kept that
turn's order, so K-0019..K-0025 were recorded after K-0099 and the line's alarms, which count
parts in id order, counted them late. One file the station cannot take still holds no others."""
from __future__ import annotations

import time

import httpx

from lineguard.line.sources import SubmitFailed
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes


def _inbox(tmp_path, n: int):
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"K-{i:04d}.png").write_bytes(png_bytes(40, seed=300 + i, size=32))
    return inbox


def _until(w: FolderWatcher, done: callable) -> None:
    for _ in range(2000):
        w.poll_once()
        if done():
            return
        time.sleep(0.005)


def test_parts_that_waited_through_an_outage_are_recorded_in_the_folders_order(tmp_path):
    inbox = _inbox(tmp_path, 12)
    station = {"up": False, "tries": 0}
    recorded = []

    def submit(data, part_id, name):
        if not station["up"]:
            station["tries"] += 1
            raise httpx.ConnectError("[Errno 111] Connection refused")   # the station PC restarting
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.001)
    # the outage lasts several tries, so the watcher's turn has moved past the first files
    _until(w, lambda: station["tries"] >= 7)
    assert recorded == [] and len(list(inbox.glob("*.png"))) == 12
    station["up"] = True
    _until(w, lambda: len(recorded) == 12)
    assert recorded == [f"K-{i:04d}" for i in range(12)], "parts recorded out of the folder's order"


def test_an_outage_in_the_middle_of_a_pass_keeps_the_folders_order(tmp_path):
    inbox = _inbox(tmp_path, 10)
    station = {"up": True, "tries": 0}
    recorded = []

    def submit(data, part_id, name):
        if part_id == "K-0004" and station["tries"] == 0:
            station["up"] = False                   # the station stops while K-0004 is in hand
        if not station["up"]:
            station["tries"] += 1
            raise SubmitFailed("HTTP 503: the station is restarting", "unavailable")
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.001)
    _until(w, lambda: station["tries"] >= 4)
    assert recorded == [f"K-{i:04d}" for i in range(4)]
    station["up"] = True
    _until(w, lambda: len(recorded) == 10)
    assert recorded == [f"K-{i:04d}" for i in range(10)], "parts recorded out of the folder's order"


def test_parts_the_station_cannot_take_hold_no_other_after_an_outage_and_the_rest_keep_their_order(tmp_path):
    # a 500 on one image (a station bug) looks like an outage: the others go on, in order
    inbox = _inbox(tmp_path, 10)
    station = {"up": False, "tries": 0}
    recorded = []

    def submit(data, part_id, name):
        if not station["up"]:
            station["tries"] += 1
            raise httpx.ConnectError("[Errno 111] Connection refused")
        if part_id in ("K-0003", "K-0006"):
            raise SubmitFailed("HTTP 500: internal error", "internal")
        recorded.append(part_id)
        return {"id": len(recorded), "verdict": "OK"}

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.001)
    _until(w, lambda: station["tries"] >= 8)
    station["up"] = True
    _until(w, lambda: len(recorded) == 8)
    assert recorded == ["K-0000", "K-0001", "K-0002", "K-0004", "K-0005", "K-0007", "K-0008", "K-0009"]
    assert (inbox / "K-0003.png").exists() and (inbox / "K-0006.png").exists()
    # a new part later is taken too, in spite of the two the station cannot take before it
    (inbox / "K-0010.png").write_bytes(png_bytes(40, seed=400, size=32))
    _until(w, lambda: len(recorded) == 9)
    assert recorded[-1] == "K-0010"
