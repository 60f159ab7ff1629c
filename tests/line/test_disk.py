"""The data disk never fills up: the oldest parts' images make room, OK parts' first;
reviewed parts and the audit sample (retraining's images) and test parts (the shifts'
verification) stay, and so does every record."""
from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from sqlalchemy import update

from lineguard.line.disk import DiskKeeper
from lineguard.line.orm import Inspection, utcnow
from lineguard.line.station import Part, inspection_to_dict

from .conftest import png_bytes


def _line(st) -> dict[str, int]:
    """Parts in the order a line made them: name -> inspection id."""
    made = {}
    st.test_parts.add("cell", "tp", "OK")                              # a known-good test part
    for name, value, seed in (("ok1", 60, 1), ("ok2", 60, 2), ("ng1", 200, 3), ("ok3", 60, 4), ("okr", 60, 5),
                              ("oka", 60, 6), ("ng2", 200, 7), ("dup", 60, 1), ("tp", 60, 8)):   # dup: ok1's image again
        made[name] = st.inspect(png_bytes(value, seed=seed), Part(name, "L1", "S1", "cell")).record.id
    st.maps.flush()
    st.review(made["okr"], "good", "maria", None)                      # retraining's images
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id == made["oka"]).values(audit_sample=True))
    return made


def _records(st, made) -> dict[str, Inspection]:
    return {name: st.get(i) for name, i in made.items()}


def _keeper(st, min_free: int, **kw) -> DiskKeeper:
    # the disk's free space rises by 10 for each part whose images went
    st.images.recent_s = 0          # these parts' files were stored a moment ago
    box: dict = {}
    keeper = DiskKeeper(st.db, st.images, st.faults, min_free, free_bytes=lambda: 10 * sum(box["k"].deleted.values()),
                        min_age_s=0, batch=1, **kw)
    box["k"] = keeper
    return keeper


def _soon() -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=1)


def test_the_oldest_ok_images_make_room_first_and_every_record_stays(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    made = _line(st)
    before = _records(st, made)
    keeper = _keeper(st, min_free=25)                      # 3 parts' worth (to 27.5 with the margin)
    assert keeper.check(now=_soon()) == {"OK": 3, "NG/REVIEW": 0}
    after = _records(st, made)
    for name in ("ok1", "ok2", "ok3"):
        rec = after[name]
        assert rec.image_key is None and rec.heatmap_key is None
        assert (rec.verdict, rec.score) == (before[name].verdict, before[name].score)
        assert inspection_to_dict(rec)["stored"] == {"image": False, "heatmap": False}
    for name in ("ok2", "ok3"):
        assert not st.images.exists(before[name].image_key) and not st.images.exists(before[name].heatmap_key)
    # ok1's image is also dup's (the same image sent for another part): it stays
    assert st.images.exists(before["ok1"].image_key) and after["dup"].image_key == before["ok1"].image_key
    for name in ("ng1", "ng2", "okr", "oka", "dup", "tp"):
        assert after[name].image_key == before[name].image_key and st.images.exists(before[name].image_key)
    assert "disk" not in st.faults


@pytest.mark.one_database
def test_ng_images_go_once_no_ok_image_is_left_and_a_full_disk_is_a_fault(station):
    st = station       # on SQLite and PostgreSQL
    made = _line(st)
    before = _records(st, made)
    keeper = _keeper(st, min_free=1000)
    assert keeper.check(now=_soon()) == {"OK": 4, "NG/REVIEW": 2}
    after = _records(st, made)
    assert [n for n, r in after.items() if r.image_key is not None] == ["okr", "oka", "tp"]
    assert not st.images.exists(before["ok1"].image_key)   # no record names it now
    for name in ("okr", "oka"):
        assert st.images.exists(before[name].image_key) and st.images.exists(before[name].heatmap_key)
    assert "--min-free-gb" in st.faults["disk"] and "a person reviewed" in st.faults["disk"]
    keeper.min_free_bytes = 40                              # space came back: the fault clears itself
    assert keeper.check(now=_soon()) == {"OK": 0, "NG/REVIEW": 0} and "disk" not in st.faults


def test_ok_images_older_than_ok_image_days_go_whatever_the_disk(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    made = _line(st)
    before = _records(st, made)
    old = utcnow() - dt.timedelta(days=2)
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id.in_([made["ok1"], made["ok2"], made["ng1"], made["okr"]]))
                  .values(created_at=old))
    st.images.recent_s = 0
    keeper = DiskKeeper(st.db, st.images, st.faults, 0, ok_image_days=1, free_bytes=lambda: 0)
    assert keeper.check() == {"OK": 2, "NG/REVIEW": 0}
    after = _records(st, made)
    assert after["ok1"].image_key is None and after["ok2"].image_key is None
    assert not st.images.exists(before["ok2"].image_key)
    for name in ("ng1", "okr", "ok3", "oka", "ng2", "dup"):          # NG, reviewed, or younger
        assert after[name].image_key == before[name].image_key


def test_a_station_watches_its_disk_and_says_so(sqlite_station):
    from lineguard.line.config import StationConfig
    st = sqlite_station()
    status = st.disk.status()
    assert status["min_free_gb"] == 2.0 and status["free_gb"] > 0 and st.disk._thread.is_alive()
    with pytest.raises(ValueError, match="min_free_gb"):
        StationConfig(min_free_gb=-1)
    with pytest.raises(ValueError, match="ok_image_days"):
        StationConfig(ok_image_days=0)


def test_a_written_image_makes_the_keeper_look_at_once_when_the_floor_is_near(sqlite_station):
    # a busy line can reach the floor well within the minute between looks
    st = sqlite_station(min_free_gb=0)
    free = {"bytes": 100}
    keeper = DiskKeeper(st.db, st.images, st.faults, 50, free_bytes=lambda: free["bytes"])
    keeper.after_write()
    assert not keeper._wake.is_set()                 # room to spare: nothing to do
    free["bytes"] = 10
    keeper.after_write()
    assert not keeper._wake.is_set()                 # looked less than a second ago
    keeper._looked -= 1.0
    keeper.after_write()
    assert keeper._wake.is_set()


def test_an_image_sent_again_while_its_old_part_is_cleared_keeps_its_file(sqlite_station):
    # the new part found the file there (so stored no copy) and its record is about to
    # name it: deleting the file now would leave that record naming nothing
    st = sqlite_station(min_free_gb=0)
    made = _line(st)
    ok2, ok3 = st.get(made["ok2"]), st.get(made["ok3"])
    keeper = _keeper(st, min_free=25)
    st.images.recent_s = 60
    st.images._stored_at = {k: t - 120 for k, t in st.images._stored_at.items()}   # the line's files: minutes ago
    minutes_ago = time.time() - 120
    for key in list(st.images._stored_at):
        os.utime(st.images.path(key), (minutes_ago, minutes_ago))
    staged = st.images.stage(st.images.get(ok2.image_key))
    staged.commit(ok2.image_key)                               # the new part's file, found there
    assert keeper.check(now=_soon()) == {"OK": 3, "NG/REVIEW": 0}
    assert st.get(made["ok2"]).image_key is None and st.images.exists(ok2.image_key)
    assert not st.images.exists(ok3.image_key)                  # not stored again: deleted


def test_a_part_reviewed_while_its_batch_is_cleared_keeps_its_image(station):
    # the keeper selects a batch, a person reviews one of its parts, then the keeper
    # clears the batch: the review (retraining's image) wins, on SQLite and PostgreSQL
    st = station
    made = _line(st)
    before = _records(st, made)
    keeper = _keeper(st, min_free=15)                       # 2 parts' worth: ok1, ok2 (batch of 1)

    def review_ok2_meanwhile(inspection_id: int) -> bool:   # called between the select and the write
        if inspection_id == made["ok2"] and not st.get(made["ok2"]).reviewed:
            st.review(made["ok2"], "good", "maria", None)
        return False
    keeper.busy = review_ok2_meanwhile
    assert keeper.check(now=_soon()) == {"OK": 2, "NG/REVIEW": 0}
    after = _records(st, made)
    assert after["ok2"].reviewed and after["ok2"].image_key == before["ok2"].image_key
    assert st.images.exists(before["ok2"].image_key) and st.images.exists(before["ok2"].heatmap_key)
    assert after["ok1"].image_key is None and after["ok3"].image_key is None


def test_a_part_whose_map_is_on_its_way_waits_and_its_map_is_not_linked_once_cleared(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    made = _line(st)
    keeper = _keeper(st, min_free=15)
    keeper.busy = lambda inspection_id: inspection_id == made["ok2"]
    assert keeper.check(now=_soon()) == {"OK": 1, "NG/REVIEW": 0}     # ok1, then it stops at ok2
    assert st.get(made["ok2"]).image_key is not None
    # a map stored after its part's image was cleared is not linked to it
    import numpy as np
    st.maps.submit(made["ok1"], "zz/zz/late.map.png", np.zeros((8, 8), np.float32), 1.0)
    st.maps.flush()
    assert st.get(made["ok1"]).heatmap_key is None


def test_an_unreadable_disk_is_not_a_crash_of_the_keeper(sqlite_station):
    st = sqlite_station(min_free_gb=0)

    def gone() -> int:
        raise FileNotFoundError("the data folder was unmounted")
    keeper = DiskKeeper(st.db, st.images, st.faults, 10, free_bytes=gone)
    assert keeper.status()["free_gb"] is None
    assert keeper.check() == {"OK": 0, "NG/REVIEW": 0}
    keeper.after_write()


def _rows(st, created: list[dt.datetime]) -> list[int]:
    """OK parts recorded straight into the database (their files need not exist), in id
    order, with these times; their ids."""
    from lineguard.line.orm import Inspection
    with st.db.session() as s:
        recs = [Inspection(part_id=f"r{i}", line="L1", station="S1", product="cell", source="api", verdict="OK",
                           score=0.1, threshold=0.5, pixel_threshold=0.5, model_id="m", model_version="1",
                           regions=[], timings_ms={}, image_sha256=f"{i:064x}", image_width=8, image_height=8,
                           image_key=f"00/00/{i:064x}.png", created_at=t, reviewed=False, audit_sample=False)
                for i, t in enumerate(created)]
        s.add_all(recs)
        s.flush()
        return [r.id for r in recs]


def test_a_part_recorded_out_of_id_order_is_not_passed_by_the_age_rule(sqlite_station):
    # two threads committing: the later id has the earlier time by a few milliseconds
    st = sqlite_station(min_free_gb=0)
    t = utcnow() - dt.timedelta(days=3)
    first, second = _rows(st, [t + dt.timedelta(seconds=2), t])
    keeper = DiskKeeper(st.db, st.images, st.faults, 0, ok_image_days=3, min_age_s=0)
    assert keeper.check(now=t + dt.timedelta(days=3, seconds=1)) == {"OK": 0, "NG/REVIEW": 0}
    assert keeper.check(now=t + dt.timedelta(days=3, seconds=3)) == {"OK": 2, "NG/REVIEW": 0}
    assert st.get(first).image_key is None and st.get(second).image_key is None


def test_waiting_for_a_map_is_not_a_full_disk(sqlite_station):
    st = sqlite_station(min_free_gb=0)
    made = _line(st)
    keeper = _keeper(st, min_free=1000)
    keeper.busy = lambda inspection_id: inspection_id == made["ok1"]
    assert keeper.check(now=_soon()) == {"OK": 0, "NG/REVIEW": 0}
    assert "disk" not in st.faults
    keeper.busy = lambda inspection_id: False
    keeper.check(now=_soon())
    assert "disk" in st.faults        # all that may go went, and it was not enough


def test_a_disk_filled_to_the_last_byte_gets_its_reserve_back_so_the_keeper_can_delete(sqlite_station):
    """Something else filled the disk to the last byte: the keeper's database change that comes
    before any delete failed ("database or disk is full"), every part was refused, and nothing
    recovered without someone stepping in. The room kept back is given back, once."""
    from sqlalchemy.exc import OperationalError
    st = sqlite_station(min_free_gb=0)
    made = _line(st)
    floor = 1024 ** 3
    free = {"bytes": 2 * floor}                          # nearing the floor: the reserve is allocated
    keeper = DiskKeeper(st.db, st.images, st.faults, floor, free_bytes=lambda: free["bytes"], min_age_s=0,
                        batch=1)
    st.images.recent_s = 0
    keeper.check(now=_soon())
    assert keeper.reserve.exists() and keeper.reserve.stat().st_size == 64 * 1024 ** 2
    free["bytes"] = 0                                    # full to the last byte
    real, tried = keeper._clear, []

    def clear(*a, **kw):
        tried.append(a)
        if len(tried) == 1:
            raise OperationalError("UPDATE inspections", {}, Exception("database or disk is full"))
        free["bytes"] = 2 * floor                         # the first batch freed room
        return real(*a, **kw)

    keeper._clear = clear
    given_back = []
    real_give = keeper._give_back_reserve
    keeper._give_back_reserve = lambda: given_back.append(1) or real_give()
    cleared = keeper.check(now=_soon())                  # no error: tried again with the room given back
    assert given_back == [1] and len(tried) >= 2
    assert cleared["OK"] >= 1 and st.get(made["ok1"]).image_key is None
    assert keeper.reserve.exists()                       # kept back again once there was room
    # a disk far from full holds no reserve
    roomy = DiskKeeper(st.db, st.images, st.faults, floor, free_bytes=lambda: 10 * floor)
    roomy.reserve.unlink(missing_ok=True)
    roomy.check(now=_soon())
    assert not roomy.reserve.exists()
