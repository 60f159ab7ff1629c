"""The hot folder's set-aside files, continued (helper D): a file whose request always times out
leaves the folder for failed/ after TIMEOUTS_MAX tries (each held the line for the submit's whole
minute, one every two minutes for ever); the set-aside files are kept across a restart (each was
tried again first, in the folder's order, and one timing out held the line once more at each
start); two photos the station fails on, with new parts coming first in the folder, no longer say
an outage and its end (50 of each in the first minute with 100 such photos). The station is a fake
submit and the watcher's clock a fake one, as in test_folder_outage_order: a timeout moves the
clock on by the submit's 60 s, nothing waits."""
from __future__ import annotations

import json
import logging
import os

import httpx
import pytest

from lineguard.line.sources import SubmitFailed
from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes
from .test_folder_outage_order import clock  # noqa: F401 - the fixture: the watcher's clock, moved by hand

# where the watcher keeps its set-aside files, beside its journal (folder.ASIDE_FILE; written out
# here so that this file runs against a watcher without it, and fails there on what it checks)
ASIDE_FILE = ".lineguard-watch-aside.json"
TIMEOUT_S = 60.0          # what the fake station's "no answer" costs the watcher's clock


def _drop(inbox, names, seed: int = 300) -> None:
    for name in names:
        (inbox / f"{name}.png").write_bytes(png_bytes(40, seed=seed + int(name[2:]), size=16))


def _inbox(tmp_path, n: int):
    inbox = tmp_path / "in"
    inbox.mkdir()
    _drop(inbox, [f"K-{i:04d}" for i in range(n)])
    return inbox


def _station(clock, hangs_on=(), fails_on=()):
    """A fake station: no answer in the submit's time on ``hangs_on`` (a model hanging on those
    images), HTTP 500 on ``fails_on``; ``station["hung"]``: no answer on any part."""
    station = {"hung": False, "asked": [], "recorded": [], "hangs_on": set(hangs_on), "fails_on": set(fails_on)}

    def submit(data, part_id, name):
        station["asked"].append(part_id)
        if station["hung"] or part_id in station["hangs_on"]:
            clock.now += TIMEOUT_S
            raise httpx.ReadTimeout("timed out")
        if part_id in station["fails_on"]:
            raise SubmitFailed(f"HTTP 500: internal_error: the station failed on this request ({part_id})",
                               "internal_error")
        station["recorded"].append(part_id)
        return {"id": len(station["recorded"]), "verdict": "OK"}
    return station, submit


class _EveryPart:
    def __contains__(self, part_id) -> bool:
        return True


def _run(w, clock, inbox, seconds: float, first: int, step: float = 0.5, polls: int = 0) -> int:
    """A new part every ``step`` s of the watcher's clock (K-<first>...), a poll after each, for
    ``seconds`` of that clock and at least ``polls`` polls (a timeout moves the clock a minute)."""
    end = clock.now + seconds
    while clock.now < end or polls > 0:
        polls -= 1
        _drop(inbox, [f"K-{first:04d}"])
        first += 1
        w.poll_once()
        clock.now += step
    return first


def test_a_file_that_always_times_out_goes_to_failed_after_its_tries(tmp_path, clock, caplog):
    """HEAD tried it for ever, a minute of the line's time every two (11 tries in 20 min: 660 s);
    now TIMEOUTS_MAX tries, then failed/ with its reason, said once and in the status. A file the
    station answers 500 on stays set aside (it costs the line nothing)."""
    inbox = _inbox(tmp_path, 10)
    station, submit = _station(clock, hangs_on={"K-0000"}, fails_on={"K-0003"})
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    with caplog.at_level("INFO", logger="lineguard.watch"):
        nxt = _run(w, clock, inbox, 6 * 60, first=10)
    assert station["asked"].count("K-0000") == 3, station["asked"].count("K-0000")
    assert not (inbox / "K-0000.png").exists() and (inbox / "failed" / "K-0000.png").exists()
    reason = (inbox / "failed" / "K-0000.png.reason.txt").read_text()
    assert "no answer" in reason and "3 tries" in reason and "ReadTimeout" in reason, reason
    said = [r for r in caplog.records if r.getMessage().startswith("K-0000.png given up")]
    assert len(said) == 1 and said[0].levelno == logging.ERROR, [r.getMessage() for r in caplog.records]
    st = w.status()
    assert st["given_up"] == 1 and st["given_up_files"] == ["K-0000.png"], st
    assert st["set_aside"] == 1 and st["set_aside_files"] == ["K-0003.png"], st
    assert json.loads(w.status_path.read_text())["given_up"] == 1
    assert w.counts["failed"] == 1 and (inbox / "K-0003.png").exists()
    # every other part, once each, the newest waiting to settle
    assert sorted(station["recorded"]) == [f"K-{i:04d}" for i in range(nxt - 1) if i not in (0, 3)]
    # put back into the folder (the model fixed; moved, its time kept): a new try, inspected
    station["hangs_on"].clear()
    os.replace(inbox / "failed" / "K-0000.png", inbox / "K-0000.png")
    _run(w, clock, inbox, 2, first=nxt)
    assert "K-0000" in station["recorded"]
    assert folder_mod.TIMEOUTS_MAX == 3 and folder_mod.ASIDE_FILE == ASIDE_FILE


def test_a_station_hung_on_every_part_gives_no_file_up(tmp_path, clock):
    """Timeouts with no part taken around them are the station's (hung): counted for no file.
    Once it takes parts again only the file that still times out goes, after its tries."""
    inbox = _inbox(tmp_path, 6)
    station, submit = _station(clock, hangs_on={"K-0000"})
    station["hung"] = True
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    for _ in range(12):
        w.poll_once()
        clock.now += 5.0
    assert len(station["asked"]) >= 8 and w.status()["station_taking_parts"] is False
    assert not (inbox / "failed").exists() and w.status().get("given_up", 0) == 0
    station["hung"] = False
    _run(w, clock, inbox, 6 * 60, first=6)
    assert [p.name for p in (inbox / "failed").glob("*.png")] == ["K-0000.png"]
    assert set(station["recorded"]) >= {f"K-{i:04d}" for i in range(1, 6)}
    assert w.status()["station_taking_parts"] is True and w.status()["given_up"] == 1


def test_set_aside_files_stay_set_aside_across_a_restart(tmp_path, clock, caplog):
    """HEAD forgot them: the new watcher tried K-0000 first (another minute of the line's time)
    and K-0003 in its turn, and a file's timeouts began again from none at each start."""
    inbox = _inbox(tmp_path, 10)
    station, submit = _station(clock, hangs_on={"K-0000"}, fails_on={"K-0003", "K-0005"})
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    nxt = _run(w, clock, inbox, 10, first=10, polls=20)
    assert station["asked"].count("K-0000") == 2 and w.status()["set_aside"] == 3
    w.run(stop_after=0)                                    # as a stop ends it: status written, faults said

    # while stopped: K-0005 written again (a new photo under its name)
    before = (inbox / "K-0005.png").stat()
    (inbox / "K-0005.png").write_bytes(png_bytes(40, seed=7777, size=16))
    os.utime(inbox / "K-0005.png", ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))    # a later photo
    station["fails_on"].discard("K-0005")
    station["asked"].clear()
    clock.now += 1.0
    caplog.clear()
    with caplog.at_level("INFO", logger="lineguard.watch"):
        w2 = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
        nxt = _run(w2, clock, inbox, 5, first=nxt)
    assert "K-0000" not in station["asked"] and "K-0003" not in station["asked"], station["asked"]
    assert "K-0005" in station["recorded"]                 # the new photo: taken as any part
    kept = json.loads((inbox / ASIDE_FILE).read_text())["files"]
    assert sorted(kept) == ["K-0000.png", "K-0003.png"], kept
    assert kept["K-0000.png"]["own"] is True and kept["K-0000.png"]["timeouts"] == 2, kept
    assert w2.status()["set_aside_files"] == ["K-0000.png", "K-0003.png"]
    said = [r.getMessage() for r in caplog.records if "still set aside" in r.getMessage()]
    assert len(said) == 1 and "K-0000.png" in said[0] and "ReadTimeout" in said[0], said
    # its wait over, K-0000 is tried on its own: its third timeout, counted on from before the stop
    nxt = _run(w2, clock, inbox, 70, first=nxt)
    assert station["asked"].count("K-0000") == 1 and (inbox / "failed" / "K-0000.png").exists()
    kept = json.loads((inbox / ASIDE_FILE).read_text())["files"]
    assert list(kept) == ["K-0003.png"], kept
    # the model fixed: K-0003 taken on its try, and nothing set aside is kept any more
    station["fails_on"].clear()
    _run(w2, clock, inbox, 70, first=nxt)
    assert "K-0003" in station["recorded"] and not (inbox / ASIDE_FILE).exists()


def test_an_unreadable_set_aside_file_is_said_and_the_watcher_starts(tmp_path, clock, caplog):
    inbox = _inbox(tmp_path, 4)
    (inbox / ASIDE_FILE).write_text('{"files": {"K-0001.png": ')           # cut short by a power cut
    station, submit = _station(clock, fails_on={"K-0002"})
    with caplog.at_level("WARNING", logger="lineguard.watch"):
        w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    said = [r.getMessage() for r in caplog.records if ASIDE_FILE in r.getMessage()]
    assert len(said) == 1 and "cannot be read" in said[0] and "folder's order" in said[0], said
    _run(w, clock, inbox, 3, first=4)
    assert station["recorded"][:3] == ["K-0000", "K-0001", "K-0003"]
    assert list(json.loads((inbox / ASIDE_FILE).read_text())["files"]) == ["K-0002.png"]


def test_new_parts_between_photos_the_station_fails_on_say_no_outage(tmp_path, clock, caplog):
    """20 photos the station fails on (500) in the folder, a new part every 0.5 s coming first in
    the folder's order: HEAD said "cannot take parts" and "takes parts again" for every two of
    them (10 of each; 50 with 100 photos). A station failing on every part is still said, once."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    bad = [f"P-{i:04d}" for i in range(20)]
    _drop(inbox, bad, seed=5000)
    station, submit = _station(clock, fails_on=set(bad))
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        nxt = _run(w, clock, inbox, 60, first=0)
        said = [r.getMessage() for r in caplog.records]
        assert not [m for m in said if "cannot take parts" in m or "takes parts again" in m], said
        assert len(station["recorded"]) == nxt - 1 and w.status()["set_aside"] == 20
        caplog.clear()
        # then the station fails on every part for a while: an outage, said when it starts and ends
        fails_on, station["fails_on"] = station["fails_on"], _EveryPart()
        nxt = _run(w, clock, inbox, 20, first=nxt)
        assert w.status()["station_taking_parts"] is False
        station["fails_on"] = fails_on
        _run(w, clock, inbox, 20, first=nxt)
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if m.startswith("the station cannot take parts (HTTP 500")]) == 1, said
    assert len([m for m in said if m.startswith("the station takes parts again")]) == 1, said
    assert w.status()["station_taking_parts"] is True


def test_timeouts_max_below_one_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(ValueError, match="timeouts_max must be 1 or more"):
        FolderWatcher(tmp_path / "in", lambda *a: {}, timeouts_max=0)


# -- review of 38f54b3: a suspected outage's try -------------------------------------------------
# Two 500s in a row are an outage only suspected, said once its try fails too. 38f54b3 tried the
# first file waiting in the folder's order: with one counter's names that is the first of the two
# photos that raised the suspicion, and its failing again (no news) said the outage after all.

def _outage_said(caplog) -> tuple[int, int]:
    said = [r.getMessage() for r in caplog.records]
    return (len([m for m in said if m.startswith("the station cannot take parts")]),
            len([m for m in said if m.startswith("the station takes parts again")]))


def test_two_photos_the_station_fails_on_sorting_first_say_no_outage(tmp_path, clock, caplog):
    """The two photos sort before the new parts (older names of one camera): 38f54b3 said an
    outage and its end (1 and 1 in a minute); its own test had them sorting after the new parts."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    _drop(inbox, ["A-0000", "A-0001"], seed=5000)
    station, submit = _station(clock, fails_on={"A-0000", "A-0001"})
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        nxt = _run(w, clock, inbox, 60, first=0)
    assert _outage_said(caplog) == (0, 0), [r.getMessage() for r in caplog.records]
    # every new part, in the folder's order (the newest waits to settle); the two set aside as theirs
    assert station["recorded"] == [f"K-{i:04d}" for i in range(nxt - 1)]
    assert w.status()["set_aside_files"] == ["A-0000.png", "A-0001.png"]


def test_one_counter_every_tenth_and_eleventh_photo_failing_says_no_outage(tmp_path, clock, caplog):
    """One camera, one counter, a photo every 0.5 s; the station fails (500) on every 10th and 11th
    alone. 38f54b3 said 12 outages and 12 ends in the minute, one for each two such photos."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    station, submit = _station(clock)
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        for n in range(120):
            if n % 10 in (5, 6):
                station["fails_on"].add(f"K-{n:04d}")
            _drop(inbox, [f"K-{n:04d}"])
            w.poll_once()
            clock.now += 0.5
    assert _outage_said(caplog) == (0, 0), [r.getMessage() for r in caplog.records
                                            if "take parts" in r.getMessage()]
    good = [f"K-{n:04d}" for n in range(119) if n % 10 not in (5, 6)]     # K-0119 waits to settle
    assert station["recorded"] == good
    assert w.status()["set_aside"] == 24 and w.status()["station_taking_parts"] is True


def test_a_suspected_outage_whose_try_times_out_is_said_when_it_begins(tmp_path, clock, caplog):
    """Two 500s, then the station hangs: the try (a file not set aside) gets no answer in the
    submit's minute. 38f54b3 tried K-0000 again and said "still cannot take parts ... after 61 s"
    before the outage's first line."""
    inbox = _inbox(tmp_path, 3)
    station, submit = _station(clock, fails_on={"K-0000", "K-0001"})
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        w.poll_once()                      # the files seen
        w.poll_once()                      # K-0000, K-0001: 500, 500: an outage suspected, unsaid
        assert w.status()["station_taking_parts"] is True
        station["hung"] = True
        clock.now += 1.0
        w.poll_once()                      # its try: no answer in 60 s
    assert station["asked"] == ["K-0000", "K-0001", "K-0002"]
    said = [r.getMessage() for r in caplog.records if "take parts" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("the station cannot take parts (ReadTimeout"), said
    assert "K-0002.png and the other files wait" in said[0], said
    assert w.status()["station_taking_parts"] is False
    # a minute on, it lasts: said "still", after its beginning
    for _ in range(3):
        clock.now += 30.0
        w.poll_once()
    said = [r.getMessage() for r in caplog.records if "take parts" in r.getMessage()]
    assert said[0].startswith("the station cannot take parts") and \
        said[1].startswith("the station still cannot take parts"), said


def test_a_suspected_outage_with_only_its_own_files_waiting(tmp_path, clock, caplog):
    """No file but the two that raised the suspicion: they are tried (a station failing for a
    moment takes them as soon as it takes parts again), and their failing again says nothing.
    38f54b3 said the outage at their first try. A new part failing too is an outage, said once."""
    inbox = _inbox(tmp_path, 2)
    station, submit = _station(clock, fails_on={"K-0000", "K-0001"})
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        for _ in range(140):               # 70 s, no new part
            w.poll_once()
            clock.now += 0.5
        assert _outage_said(caplog) == (0, 0), [r.getMessage() for r in caplog.records]
        tries = len(station["asked"])
        assert 12 <= tries <= 24, station["asked"]         # tried, the tries growing to 5 s apart
        assert w.status()["station_taking_parts"] is True and w.status()["set_aside"] == 0
        # the station fails on every part: the next part fails too, and that is said, once
        station["fails_on"] = _EveryPart()
        nxt = _run(w, clock, inbox, 20, first=2)
        assert _outage_said(caplog) == (1, 0) and w.status()["station_taking_parts"] is False
        # said as it begins, never "still ... after 70 s" first (suspected since, unsaid)
        said = [r.getMessage() for r in caplog.records if "cannot take parts" in r.getMessage()]
        assert said[0].startswith("the station cannot take parts (HTTP 500"), said
        assert "K-0002.png and the other files wait" in said[0], said
        # it takes parts again: every part in the folder's order, said once
        station["fails_on"] = set()
        _run(w, clock, inbox, 10, first=nxt)
    assert _outage_said(caplog) == (1, 1), [r.getMessage() for r in caplog.records]
    assert station["recorded"][:nxt] == [f"K-{i:04d}" for i in range(nxt)]
    assert not list(inbox.glob("K-000[01].png")) and w.status()["set_aside"] == 0


def test_two_photos_failing_for_a_moment_are_taken_without_a_new_part(tmp_path, clock, caplog):
    """A station failing for a moment (500 on two parts, then fine) with no new part coming: its
    try, with no file but those set aside waiting, takes them; no outage said."""
    inbox = _inbox(tmp_path, 2)
    station, submit = _station(clock, fails_on={"K-0000", "K-0001"})
    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.5)
    w._faults.clock = clock.monotonic
    with caplog.at_level("INFO", logger="lineguard.watch"):
        w.poll_once()
        w.poll_once()                      # 500, 500: suspected
        clock.now += 0.5
        w.poll_once()                      # the try (K-0000 again: no other file) fails: nothing said
        assert station["asked"] == ["K-0000", "K-0001", "K-0000"]
        station["fails_on"] = set()
        for _ in range(20):
            clock.now += 0.5
            w.poll_once()
    assert station["recorded"] == ["K-0000", "K-0001"]
    assert _outage_said(caplog) == (0, 0), [r.getMessage() for r in caplog.records]
