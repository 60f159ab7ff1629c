"""The hot folder's set-aside files as one object each (AsideFile), and what the watcher says of
them (helper C): an aside file written by the watcher before AsideFile still loads; a station
failing on every part while only set-aside files wait is said (the watcher looked idle, /health
said "behind: the PC does not keep up"); the "falling behind" line gives the cause it can see,
with its numbers and the way out (it named none: "see the watcher's other lines"). The station is
a fake submit and the watcher's clock a fake one (test_folder_outage_order's)."""
from __future__ import annotations

import json
import time

from lineguard.line import watchers
from lineguard.line.sources import SubmitFailed
from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes
from .test_folder_outage_order import clock  # noqa: F401 - the fixture: the watcher's clock, moved by hand

ASIDE_FILE = ".lineguard-watch-aside.json"


def _drop(inbox, n: int) -> None:
    (inbox / f"K-{n:04d}.png").write_bytes(png_bytes(40, seed=300 + n, size=16))


def _fails(part_id: str) -> SubmitFailed:
    return SubmitFailed(f"HTTP 500: internal_error: the station failed on this request ({part_id})", "internal_error")


def test_an_aside_file_written_by_the_watcher_before_asidefile_still_loads(tmp_path, clock):
    """The keys HEAD's watcher wrote (no ``tries`` nor ``last_wall``): the file stays set aside, its
    timeouts counted on, and the file is written back with the same values."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    _drop(inbox, 0)
    _drop(inbox, 1)
    st = (inbox / "K-0001.png").stat()
    since = time.time() - 300
    old = {"files": {"K-0001.png": {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "own": True,
                                    "timeouts": 2, "delay": 60.0, "retry_wall": time.time() + 30,
                                    "since_wall": since, "error": "ReadTimeout: timed out", "given_up": False}}}
    (inbox / ASIDE_FILE).write_text(json.dumps(old) + "\n")
    asked = []

    def submit(data, part_id, name):
        asked.append(part_id)
        return {"id": len(asked), "verdict": "OK"}
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    kept = w._aside["K-0001.png"]
    assert isinstance(kept, folder_mod.AsideFile)
    assert (kept.own, kept.timeouts, kept.tries, kept.error, kept.given_up) == (True, 2, 1, "ReadTimeout: timed out",
                                                                                False)
    assert kept.since_wall == since and kept.last_wall == since
    for _ in range(3):
        w.poll_once()
        clock.now += 0.5
    assert asked == ["K-0000"] and w.status()["set_aside_files"] == ["K-0001.png"]
    w._save_aside()
    again = json.loads((inbox / ASIDE_FILE).read_text())["files"]["K-0001.png"]
    for key in ("size", "mtime_ns", "ino", "own", "timeouts", "delay", "since_wall", "error", "given_up"):
        assert again[key] == old["files"]["K-0001.png"][key], key
    assert abs(again["retry_wall"] - old["files"]["K-0001.png"]["retry_wall"]) < 5
    # and what this watcher writes, a watcher reads back the same
    back = folder_mod.AsideFile.from_json(again, clock.now, time.time(), 0.5, 60.0)
    assert (back.sig, back.own, back.timeouts, back.tries) == (kept.sig, True, 2, 1)


def test_a_station_failing_on_every_part_with_only_set_aside_files_is_said(tmp_path, clock, caplog):
    """Two files, the station failing (500) on every part, no new part: HEAD said the first file's
    failure, then nothing of the station for ever (the tries unsaid, an outage only suspected);
    its status read station_taking_parts true and behind true, /health "the PC does not keep up"."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    _drop(inbox, 0)
    _drop(inbox, 1)
    station = {"failing": True, "recorded": []}

    def submit(data, part_id, name):
        if station["failing"]:
            raise _fails(part_id)
        station["recorded"].append(part_id)
        return {"id": len(station["recorded"]), "verdict": "OK"}
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5,
                      status_info={"line": "L1", "station": "S1"})
    w._faults.clock = clock.monotonic
    w._running = True
    with caplog.at_level("INFO", logger="lineguard.watch"):
        for _ in range(100):                      # 50 s
            w.poll_once()
            clock.now += 0.5
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("every file left in")]
        assert len(said) == 1, [r.getMessage() for r in caplog.records]
        assert "(2: K-0000.png, K-0001.png)" in said[0] and "HTTP 500" in said[0], said
        assert "fails on every part" in said[0] and "not idle" in said[0], said
        st = w.status()
        assert st["only_set_aside"] is True and st["only_set_aside_since"] is not None, st
        assert "HTTP 500" in st["set_aside_error"], st
        # /health names it, not "behind the line: the PC does not keep up"
        faults = watchers.watcher_faults([(tmp_path / "L1-S1.json", {**st, "updated": time.time()})])
        assert "every file left" in faults["watcher L1/S1"] and "behind" not in faults["watcher L1/S1"], faults
        station["failing"] = False
        for _ in range(20):
            w.poll_once()
            clock.now += 0.5
    assert station["recorded"] == ["K-0000", "K-0001"]
    assert w.status()["only_set_aside"] is False
    over = [r.getMessage() for r in caplog.records if r.getMessage().startswith("the station answered a part again")]
    assert len(over) == 1, [r.getMessage() for r in caplog.records]


def test_a_line_between_parts_with_a_file_set_aside_says_nothing_of_it(tmp_path, clock, caplog):
    """One photo the station fails on alone, a part every 5 s taken: every poll between two parts
    finds only the set-aside file, and that is no news (a part answered under 30 s ago)."""
    inbox = tmp_path / "in"
    inbox.mkdir()

    def submit(data, part_id, name):
        if part_id == "K-0001":
            raise _fails(part_id)
        return {"id": 1, "verdict": "OK"}
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        for n in range(60):                        # 5 min
            _drop(inbox, n)
            for _ in range(10):
                w.poll_once()
                clock.now += 0.5
    assert not [r for r in caplog.records if r.getMessage().startswith("every file left")]
    assert w.status()["only_set_aside"] is False and w.status()["set_aside_files"] == ["K-0001.png"]


def _behind_said(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("falling behind")]


def test_falling_behind_says_the_station_is_slower_than_the_line_with_its_numbers(tmp_path, clock, caplog):
    """Two parts a second (120/min) to a station taking 800 ms a part (75/min at most). HEAD said
    "the station or this PC is slower than the line, or the station is not taking parts: see the
    watcher's other lines" whatever the cause."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    line = {"next": 0, "at": clock.now}

    def arrive() -> None:
        # the line drops a photo every 0.5 s of the watcher's clock, also while a part is inspected
        while line["at"] <= clock.now:
            _drop(inbox, line["next"])
            line["next"] += 1
            line["at"] += 0.5

    def submit(data, part_id, name):
        clock.now += 0.8
        arrive()
        return {"id": 1, "verdict": "OK"}
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        end = clock.now + 600
        while clock.now < end and not _behind_said(caplog):
            arrive()
            w.poll_once()
            clock.now += 0.5
    said = _behind_said(caplog)
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "the station is slower than the line: it takes 800 ms a part (75 parts/min at most" in said[0], said
    assert "split the line over two watchers and stations" in said[0] and "other lines" not in said[0], said


def test_falling_behind_in_an_outage_says_the_outage(tmp_path, clock, caplog):
    """The station down (connection refused): the files wait for it, and the behind line says so
    with when the outage began, not "the station or this PC is slower than the line"."""
    import httpx
    inbox = tmp_path / "in"
    inbox.mkdir()

    def submit(data, part_id, name):
        raise httpx.ConnectError("[Errno 111] Connection refused")
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        for n in range(80):
            _drop(inbox, n)
            w.poll_once()
            clock.now += 0.5
    said = _behind_said(caplog)
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "the station is down since" in said[0] and "Connection refused" in said[0], said
    assert "slower than the line" not in said[0], said


def test_the_falling_behind_rates_keep_only_their_last_minute(tmp_path, clock):
    """The records the "falling behind" line's rates come from (listings, answers) are dropped
    past RATE_WINDOW_S at every listing: a watcher never behind kept one per listing and part
    for as long as it ran (170,000 listings a day at poll_s 0.5)."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    w = FolderWatcher(inbox, lambda data, part_id, name: {"id": 1, "verdict": "OK"}, settle_s=0.0, poll_s=0.5)
    for n in range(600):                      # five minutes of polls, a part every second
        if n % 2 == 0:
            _drop(inbox, n)
        w.poll_once()
        clock.now += 0.5
    window = int(folder_mod.RATE_WINDOW_S / 0.5)
    assert w.counts["done"] >= 290
    assert len(w._arrived) <= window + 2 and len(w._answered) <= window + 2, (len(w._arrived), len(w._answered))
