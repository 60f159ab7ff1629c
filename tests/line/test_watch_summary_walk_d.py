"""Hot-folder walk, helper D.

5. Files the watcher refused (moved to failed/ at once: truncated, zero-byte, a 16-bit TIFF, a
   part-id conflict) were in its log and its status file's counts.failed alone: /health said
   "ok" and its ``watchers`` list left them out. Now the list carries the count and /health
   says them as a housekeeping fault for a while after the latest.
6. On a 20 MB data disk the floor advised ("e.g. 1 GB") was itself refused as not under the
   disk's size: the advice now fits the disk, and is taken.
"""
from __future__ import annotations

import io
import re
import shutil
import time
from collections import namedtuple

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from lineguard.line import watchers

GIB = 1024 ** 3
_Usage = namedtuple("_Usage", "total used free")


# ---- 5: refused files on /health -----------------------------------------------------------

def _status(**more):
    st = {"line": "L1", "station": "S1", "running": True, "updated": time.time(), "folder": "/cam/in", "pid": 41,
          "every_s": 5.0, "waiting": 0, "oldest_wait_s": 0.0, "behind": False, "station_taking_parts": True,
          "given_up": 0, "counts": {"done": 12, "failed": 0, "skipped": 0, "ignored": 0}}
    st.update(more)
    return st


def test_the_failed_count_is_in_the_watchers_summary(tmp_path):
    path = tmp_path / "L1-S1.json"
    st = _status(given_up=1, counts={"done": 12, "failed": 3, "skipped": 0, "ignored": 0})
    [shown] = watchers.summaries([(path, st)])
    assert shown["failed"] == 3 and shown["refused"] == 2, shown          # one of the three was given up
    # a watcher's status from before counts reads as none failed
    old = {k: v for k, v in st.items() if k != "counts"}
    [shown] = watchers.summaries([(tmp_path / "old.json", old)])
    assert shown["failed"] == 0 and shown["refused"] == 0 and shown["refused_last"] is None, shown


def test_a_refusal_the_station_sees_is_a_fault_for_a_while(tmp_path):
    """Today's watcher writes counts.failed only: the station says a refusal from when it saw
    the count grow; one already counted when it first read the file is shown, not a fault."""
    path, now = tmp_path / "L1-S1.json", time.time()
    before = _status(counts={"done": 5, "failed": 1, "skipped": 0, "ignored": 0})
    assert watchers.watcher_faults([(path, before)], now) == {}           # when it failed: unknown
    grown = _status(counts={"done": 5, "failed": 2, "skipped": 0, "ignored": 0})
    faults = watchers.watcher_faults([(path, grown)], now + 5)
    said = faults["watcher L1/S1 refused"]
    assert "2 file(s) of /cam/in refused" in said and "failed/" in said and ".reason.txt" in said, said
    assert watchers.summaries([(path, grown)], now + 6)[0]["refused_last"] == now + 5
    # still said while the count stands, gone REFUSED_SHOWN_S after the latest; the count stays
    assert "watcher L1/S1 refused" in watchers.watcher_faults([(path, grown)], now + 60)
    late = now + 5 + watchers.REFUSED_SHOWN_S + 1
    renewed = {**grown, "updated": late}                          # the watcher still writes its status
    assert watchers.watcher_faults([(path, renewed)], late) == {}
    assert watchers.summaries([(path, renewed)], late)[0]["refused"] == 2


def test_a_restarted_watcher_s_refusals_are_new(tmp_path):
    path, now = tmp_path / "L1-S1.json", time.time()
    assert watchers.watcher_faults([(path, _status(counts={"failed": 4}))], now) == {}
    restarted = _status(pid=42, counts={"failed": 1})            # counts start at 0 again
    assert "watcher L1/S1 refused" in watchers.watcher_faults([(path, restarted)], now + 1)


def test_a_given_up_file_is_not_said_twice(tmp_path):
    path, now = tmp_path / "L1-S1.json", time.time()
    watchers.watcher_faults([(path, _status())], now)
    given = _status(given_up=1, given_up_files=["K-1.png"], given_up_last=now, counts={"failed": 1})
    faults = watchers.watcher_faults([(path, given)], now + 1)
    assert "watcher L1/S1 given up" in faults and "watcher L1/S1 refused" not in faults, faults


def test_the_watcher_s_own_latest_refusal_is_used_where_its_status_holds_it(tmp_path):
    path, now = tmp_path / "L1-S1.json", time.time()
    st = _status(counts={"failed": 1}, refused_last=now - 30, refused_files=["K-0007.tif"],
                 refused_last_reason="a 16-bit TIFF: the station reads 8-bit images")
    said = watchers.watcher_faults([(path, st)], now)["watcher L1/S1 refused"]
    assert "K-0007.tif: a 16-bit TIFF" in said and "seen by this station" not in said, said
    [shown] = watchers.summaries([(path, st)], now)
    assert shown["refused_last"] == now - 30 and shown["refused_files"] == ["K-0007.tif"], shown
    assert shown["refused_last_reason"].startswith("a 16-bit TIFF")
    old = {**st, "refused_last": now - watchers.REFUSED_SHOWN_S - 1}
    assert watchers.watcher_faults([(tmp_path / "other.json", old)], now) == {}


def test_a_refused_file_makes_health_degraded_and_is_listed(tmp_path):
    """A real watcher's refusal (the station refused the image) through /health."""
    from lineguard.line.config import StationConfig
    from lineguard.line.sources.folder import FolderWatcher, SubmitRefused
    from lineguard.line.station import Station
    from lineguard.server.app import create_app

    st = Station(StationConfig(data_dir=tmp_path / "data"))
    client = TestClient(create_app(station=st))
    inbox = tmp_path / "in"
    inbox.mkdir()

    def submit(data, part_id, name):
        raise SubmitRefused(f"{name}: a 16-bit TIFF; the station reads 8-bit images, save it as 8-bit",
                            code="unsupported_image")

    w = FolderWatcher(inbox, submit, settle_s=0.0, poll_s=0.01,
                      status_path=tmp_path / "data" / "watchers" / "L1-S1.json",
                      status_info={"line": "L1", "station": "S1", "product": "cell", "inspects": "here"})
    w._running = True
    w._write_status(time.monotonic(), force=True)
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["watchers"][0]["failed"] == 0, body
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (60, 60, 60)).save(buf, format="PNG")
    (inbox / "K-0001.png").write_bytes(buf.getvalue())
    for _ in range(3):
        w.poll_once()
    assert (inbox / "failed" / "K-0001.png").exists() and w.status()["counts"]["failed"] == 1
    w._write_status(time.monotonic(), force=True)
    r = client.get("/health")
    assert r.status_code == 200, r.text                      # housekeeping: the station judges parts
    body = r.json()
    assert body["status"] == "degraded" and "watcher L1/S1 refused" in body["faults"], body
    [shown] = body["watchers"]
    assert shown["failed"] == 1 and shown["refused"] == 1 and shown["refused_last"] is not None, shown
    # the watcher's own words reach it: which file, and why (only the count did)
    assert shown["refused_files"] == ["K-0001.png"] and "16-bit TIFF" in shown["refused_last_reason"], shown
    assert "K-0001.png" in body["faults"]["watcher L1/S1 refused"] and "at " in body["faults"]["watcher L1/S1 refused"]


# ---- 6: the floor advised on a small disk ----------------------------------------------------

@pytest.fixture
def disk_20mb(monkeypatch):
    """A 20 MB tmpfs, 19 MB free."""
    usage = _Usage(20 * 1024 ** 2, 1024 ** 2, 19 * 1024 ** 2)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    return usage


def test_the_floor_advised_on_a_small_disk_is_taken(tmp_path, serve_opens, disk_20mb):
    from lineguard.cli import app
    r = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "small" / "st")])
    assert r.exit_code == 2 and "not under the size of the data disk" in r.stderr, r.output
    advised = re.search(r"e\.g\. ([0-9.]+) GB", r.stderr)
    assert advised, r.stderr
    assert 0 < float(advised.group(1)) < 19 / 1024, r.stderr            # under the free space: no deletion
    r = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "small" / "st"),
                                 "--min-free-gb", advised.group(1)])
    assert "stopped before the station opens" in r.output, r.output     # it went on to open
    assert "min-free-gb" not in r.stderr, r.stderr                      # not even said: it fits
    (cfg,) = serve_opens
    assert cfg.min_free_gb == float(advised.group(1))


@pytest.mark.parametrize("total_gb, free_gb", [(0.02, 0.019), (0.02, 0.0), (0.5, 0.1), (1.0, 0.9), (1.5, 1.2),
                                               (10, 1.5), (252, 71.5), (4000, 3.0)])
def test_the_floor_advised_fits_any_disk(tmp_path, total_gb, free_gb):
    from lineguard.line.config import disk_floor_check
    usage = lambda path: _Usage(int(total_gb * GIB), int((total_gb - free_gb) * GIB), int(free_gb * GIB))  # noqa: E731
    with pytest.raises(ValueError) as refused:
        disk_floor_check(total_gb * 2, tmp_path, usage=usage)
    advised = float(re.search(r"e\.g\. ([0-9.]+) GB", str(refused.value)).group(1))
    assert advised < total_gb                                   # never refused as not under the disk's size
    if free_gb > 0:
        assert advised > 0 and disk_floor_check(advised, tmp_path, usage=usage) is None, (advised, refused.value)
