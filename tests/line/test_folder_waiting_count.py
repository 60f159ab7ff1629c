"""The files a stopped watcher leaves for its next start: a walk moved 100 photos into the hot
folder and stopped the watcher (SIGTERM) 1.5 s later; the summary said 100 wait for the next
start, where 7 parts had been judged (in done/) and 93 were left. ``waiting`` was the count
of the pass's start, never counted down as the parts were taken."""
from __future__ import annotations

import json
import time

from lineguard.line.sources.folder import STATUS_FILE

from .conftest import png_bytes
from .test_sources_walk import _watcher


def _inbox(tmp_path, prefix: str, n: int, seed: int):
    """A hot folder holding ``n`` parts' photos, PREFIX-0000.png on."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"{prefix}-{i:04d}.png").write_bytes(png_bytes(40, seed=seed + i))
    return inbox


def test_a_stop_in_the_middle_of_a_batch_counts_the_parts_left_not_the_batch(tmp_path):
    inbox = _inbox(tmp_path, "B", 10, seed=200)
    judged = []

    def submit(data, part_id, name):
        judged.append(part_id)
        if len(judged) == 3:
            w.stop()        # SIGTERM while the third part is in hand: it is finished, no other taken
        return {"id": len(judged), "verdict": "OK", "score": 0.1, "part_id": part_id}

    w = _watcher(submit, inbox)
    w.run(stop_after=30)
    left = sorted(p.name for p in inbox.glob("*.png"))
    assert len(judged) == 3 and len(left) == 7, (judged, left)
    # what the stop's summary prints ("waiting in the folder for the next start: N")
    assert w.waiting == 7, f"{w.waiting} files said to wait, {len(left)} left in the folder: {left}"
    # and what the status file (the station's /health) was told last
    status = json.loads((inbox / STATUS_FILE).read_text())
    assert status["waiting"] == 7 and status["running"] is False, status


def test_the_count_of_parts_waiting_goes_down_as_each_part_is_taken(tmp_path):
    """Between two looks at the folder (a pass through a long backlog takes minutes) the count
    the status and the heartbeat give is the parts still there, not those at the pass's start."""
    inbox = _inbox(tmp_path, "C", 4, seed=300)
    seen_waiting = []

    def submit(data, part_id, name):
        seen_waiting.append(w.waiting)       # as the status would read it while this part is judged
        return {"id": len(seen_waiting), "verdict": "OK", "score": 0.1, "part_id": part_id}

    w = _watcher(submit, inbox)
    w.poll_once()                            # the files first seen: they settle
    time.sleep(w.settle_s + 0.05)
    w.poll_once()                            # one pass takes the four
    assert seen_waiting == [4, 3, 2, 1], seen_waiting
    assert w.waiting == 0
