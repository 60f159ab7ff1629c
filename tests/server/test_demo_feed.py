"""The demo's parts through a real station (fake model): a second run on the same station
adds its own records and counts only them. The demo once sent fixed part ids, so a second
run's parts were answered "200, the existing record" and its summary reported the first
run's verdicts (by the old model) as new results."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from .conftest import png_bytes
from lineguard import demo


def _parts(root: Path) -> list[Path]:
    made = []
    for kind, value in (("good", 60), ("crack", 200)):       # the fake model: bright is NG
        (root / kind).mkdir(parents=True)
        for i in range(3):
            p = root / kind / f"{i:03d}.png"
            p.write_bytes(png_bytes(value, seed=(value, i)))
            made.append(p)
    return made


def _records(c: httpx.Client) -> int:
    day = {"since": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).isoformat()}
    return sum(r["parts"] for r in c.get("/api/v1/lines/summary", params=day).json()["lines"])


def test_two_demo_runs_on_one_station_give_two_sets_of_records(fake_server, tmp_path):
    parts = _parts(tmp_path / "test")
    with fake_server.client(fake_server.keys["operator"]) as c:
        before = _records(c)
        first = demo.feed_line(c, parts, "20261205-100000")
        second = demo.feed_line(c, parts, "20261205-100500")
        assert _records(c) - before == 2 * len(parts)
        again = demo.feed_line(c, parts, "20261205-100500")    # the same run's ids again: replays
        assert _records(c) - before == 2 * len(parts)
    for t in (first, second):
        assert (t.created, t.replayed) == (6, 0)
        assert t.verdicts["OK"] == 3 and t.verdicts["NG"] == 3 and t.escapes == t.false_rejects == 0
        assert t.summary().startswith("6 parts through station S1 on line L1: 3 OK, 3 NG; ")
    assert (again.created, again.replayed) == (0, 6)
    assert again.summary().startswith("0 parts through station S1 on line L1: 0 OK, 0 NG; ")
