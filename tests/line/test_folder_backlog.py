"""A watcher behind its line, stopped with a backlog, and a station outage (walk J): at 20
parts/s on a 2-core PC the newest photo waited 675 s with no word in the log nor on /health;
SIGTERM with 6,900 files waiting was not honoured 40 s later; a 17 s station outage gave a
"will retry" line for each file (thousands a minute with thousands waiting)."""
from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from lineguard.line.sources import SubmitFailed, local_submitter
from lineguard.line.sources import folder as folder_mod
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes

STATUS = ".lineguard-watch-status.json"


def _inbox(tmp_path, n: int):
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"p{i:03d}.png").write_bytes(png_bytes(40, seed=100 + i, size=32))
    return inbox


def _settled(w: FolderWatcher) -> None:
    """Every file seen once and left unchanged past the settle time: the next poll takes them."""
    w.poll_once()
    time.sleep(w.settle_s + 0.02)


def _status(inbox) -> dict:
    return json.loads((inbox / STATUS).read_text())


def test_a_watcher_behind_its_line_says_so_once_and_when_it_catches_up(sqlite_station, tmp_path, caplog,
                                                                       monkeypatch):
    # thresholds a test can reach: behind once a file ready has waited 0.2 s; looked at per file
    monkeypatch.setattr(folder_mod, "BACKLOG_AFTER_S", 0.2, raising=False)
    monkeypatch.setattr(folder_mod, "STATUS_EVERY_S", 0.0, raising=False)
    st = sqlite_station()
    inbox = _inbox(tmp_path, 8)
    inspect = local_submitter(st, "L1", "S1", "cell", "folder")
    seen_in_status = []

    def slow(data, part_id, name):
        time.sleep(0.1)            # a station slower than the line: files wait their turn
        if part_id == "p006" and (inbox / STATUS).exists():
            seen_in_status.append(_status(inbox))
        return inspect(data, part_id, name)

    w = FolderWatcher(inbox, slow, settle_s=0.05, poll_s=0.01)
    _settled(w)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        w.poll_once()                                       # 8 files at 0.1 s each
        w.poll_once()                                       # none left
    said = [r.getMessage() for r in caplog.records]
    behind = [m for m in said if "falling behind" in m]
    # before: not a word while files waited, and /health could not tell
    assert len(behind) == 1, said                           # once, not for each file
    assert "files wait" in behind[0] and "the oldest for" in behind[0]
    assert len([m for m in said if "caught up" in m]) == 1, said
    assert seen_in_status and seen_in_status[0]["behind"] is True and seen_in_status[0]["waiting"] >= 1
    assert seen_in_status[0]["oldest_wait_s"] >= 0.2
    now = _status(inbox)
    assert now["behind"] is False and now["waiting"] == 0 and now["counts"]["done"] == 8
    assert len(st.query()) == 8 and len(list((inbox / "done").iterdir())) == 8


def test_a_stop_with_files_waiting_finishes_the_file_in_hand_and_takes_no_other(tmp_path):
    inbox = _inbox(tmp_path, 20)
    sent = []

    def submit(data, part_id, name):
        sent.append(part_id)
        w.stop()                   # SIGTERM (systemd stop) arrives while this part is judged
        return {"id": len(sent), "verdict": "OK", "score": 0.1, "part_id": part_id}

    w = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01)
    _settled(w)
    w.run()
    # before: every file of the folder judged first (40 s later it was still judging)
    assert sent == ["p000"]
    assert (inbox / "done" / "p000.png").exists() and len(list(inbox.glob("*.png"))) == 19
    assert _status(inbox)["running"] is False


def test_a_station_outage_is_said_once_and_not_every_file_is_tried(sqlite_station, tmp_path, caplog):
    st = sqlite_station()
    inbox = _inbox(tmp_path, 30)
    inspect = local_submitter(st, "L1", "S1", "cell", "folder")
    down = {"on": True, "tries": 0}

    def submit(data, part_id, name):
        if down["on"]:
            down["tries"] += 1
            raise httpx.ConnectError("[Errno 111] Connection refused")   # watch --server, station stopped
        return inspect(data, part_id, name)

    w = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01)
    _settled(w)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        for _ in range(10):
            w.poll_once()
            time.sleep(0.02)
        # before: each of the 30 files tried at each poll, a "will retry" line for each
        assert 1 <= down["tries"] < 30
        assert len(list(inbox.glob("*.png"))) == 30 and not (inbox / "failed").exists()
        status = _status(inbox)
        assert status["station_taking_parts"] is False and "Connection refused" in status["station_error"]
        down["on"] = False
        for _ in range(1000):                              # until the next try finds it back
            w.poll_once()
            if w.counts["done"] == 30:
                break
            time.sleep(0.01)
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "cannot take parts" in m]) == 1, said
    assert len([m for m in said if "takes parts again" in m]) == 1, said
    assert not [m for m in said if "will retry" in m], said
    assert w.counts["done"] == 30 and len(st.query(limit=100)) == 30
    assert _status(inbox)["station_taking_parts"] is True


def test_one_file_the_station_cannot_take_holds_no_other(tmp_path):
    """A 500 on one image (a station bug) looks like an outage; the next try is with the next
    file, so the line goes on (a guard for the outage handling above)."""
    inbox = _inbox(tmp_path, 5)
    sent = []

    def submit(data, part_id, name):
        if part_id == "p000":
            raise SubmitFailed("HTTP 500: internal error", "internal")
        sent.append(part_id)
        return {"id": len(sent), "verdict": "OK", "score": 0.1, "part_id": part_id}

    w = FolderWatcher(inbox, submit, settle_s=0.05, poll_s=0.01)
    _settled(w)
    for _ in range(1000):
        w.poll_once()
        if len(sent) == 4:
            break
        time.sleep(0.01)
    assert sent == ["p001", "p002", "p003", "p004"]
    assert (inbox / "p000.png").exists()


@pytest.mark.parametrize("fault", [SubmitFailed("storage_unavailable: No space left on device",
                                                "storage_unavailable"), ConnectionRefusedError(111, "refused")])
def test_station_faults_are_told_from_file_faults(fault):
    assert FolderWatcher._station_fault(fault)
    assert not FolderWatcher._station_fault(UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed"))
