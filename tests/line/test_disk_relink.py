"""The disk keeper and image files another process wrote a moment ago (a folder just
restored or copied, a second station process on the folder).

- it cleared such a part's link, kept the file for its youth, then named it again in a
  transaction of its own: another deleter on the folder (``watch --data``'s keeper, a
  ``lineguard sweep``) that deleted the file in between left the part naming a missing file;
- the look then started again at the first such part for every later batch: a batch's worth
  of them at the front ended the look at once with a false "no part image is left" disk
  fault while thousands of older parts could go (one short of a batch: every later batch
  selected them again).
"""
from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter

from sqlalchemy import select

from lineguard.line.disk import DiskKeeper, delete_files_no_record_names
from lineguard.line.imagestore import ContentStore
from lineguard.line.orm import Inspection
from lineguard.line.station import Part

from .conftest import png_bytes


def _ok_parts(st, n: int) -> list[int]:
    ids = [st.inspect(png_bytes(60, seed=i), Part(f"p{i}", "L1", "S1", "cell")).record.id for i in range(n)]
    st.maps.flush()
    return ids


def _files_of(st, inspection_id: int) -> list[str]:
    rec = st.get(inspection_id)
    return [k for k in (rec.image_key, rec.heatmap_key, rec.overlay_key) if k]


def _written(st, ids, seconds_ago: float) -> None:
    at = time.time() - seconds_ago
    for i in ids:
        for key in _files_of(st, i):
            os.utime(st.images.path(key), (at, at))


def _naming_missing_files(st) -> list[tuple[int, str]]:
    with st.db.session() as s:
        rows = list(s.execute(select(Inspection.id, Inspection.image_key, Inspection.heatmap_key,
                                     Inspection.overlay_key)))
    return [(r[0], k) for r in rows for k in r[1:] if k and not st.images.path(k).exists()]


def _later() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(minutes=5)


def test_a_second_deleter_on_the_folder_never_leaves_a_part_naming_a_missing_file(sqlite_station):
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    ids = _ok_parts(st, 4)
    _written(st, ids, 30)                   # a folder restored half a minute ago
    shas = {st.get(i).image_sha256 for i in ids}
    # the keeper of `watch --data` on the same folder, looking a moment later: to it the
    # files are past their minute already
    other = ContentStore(st.images.root)
    other.recent_s = 10

    class ThisStationsStore(ContentStore):
        def delete_unnamed(self, key, unless_newer_than_s=None):
            gone = super().delete_unnamed(key, unless_newer_than_s)
            if not gone:
                # right after this keeper decided to keep the file, the other one deletes
                # the files no record names (it selected the same parts before)
                delete_files_no_record_names(st.db, other, shas, {key})
            return gone

    keeper = DiskKeeper(st.db, ThisStationsStore(st.images.root), {}, min_free_bytes=10 ** 15,
                        free_bytes=lambda: 0, min_age_s=0)
    keeper.check(now=_later())
    assert _naming_missing_files(st) == []
    # the files young to this keeper stay, named: the app still shows them
    assert all(st.get(i).image_key and st.images.path(st.get(i).image_key).exists() for i in ids)
    # the other keeper's own look clears the links first, then deletes
    DiskKeeper(st.db, other, {}, min_free_bytes=10 ** 15, free_bytes=lambda: 0, min_age_s=0).check(now=_later())
    assert _naming_missing_files(st) == []
    assert all(st.get(i).image_key is None for i in ids)


def _keeper_freeing(st, ids, min_free: int, batch: int, looked: Counter) -> DiskKeeper:
    """A keeper of another process on the folder (it stored none of the files); the disk's
    free space is 10 for each of the parts' images gone; ``looked`` counts each part a look
    goes through."""
    images = [st.get(i).image_key for i in ids]

    def free() -> int:
        return 10 * sum(not st.images.path(k).exists() for k in images)

    def busy(inspection_id: int) -> bool:
        looked[inspection_id] += 1
        return False
    return DiskKeeper(st.db, ContentStore(st.images.root), {}, min_free_bytes=min_free, free_bytes=free,
                      min_age_s=0, batch=batch, busy=busy)


def test_a_batch_of_parts_with_files_written_just_now_is_passed_not_a_full_disk(sqlite_station):
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    ids = _ok_parts(st, 12)
    fresh, old = ids[:4], ids[4:]
    _written(st, fresh, 30)                 # the first batch's files: half a minute ago
    _written(st, old, 3600)
    looked: Counter = Counter()
    keeper = _keeper_freeing(st, ids, min_free=50, batch=4, looked=looked)   # 6 images to go (55 with the margin)
    cleared = keeper.check(now=_later())
    assert cleared["OK"] == 8 and "disk" not in keeper.faults, (cleared, keeper.faults)
    assert all(st.get(i).image_key is None for i in old)
    assert all(st.get(i).image_key for i in fresh) and _naming_missing_files(st) == []
    assert max(looked.values()) == 1, looked         # each part gone through once in the look
    # a minute on, the next look starts at them again and they go
    _written(st, fresh, 3600)
    keeper.min_free_bytes = 100
    assert keeper.check(now=_later())["OK"] == 4
    assert all(st.get(i).image_key is None for i in fresh)


def test_parts_with_files_written_just_now_are_gone_through_once_a_look(sqlite_station):
    # one short of a batch at the front: every later batch selected them again
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    ids = _ok_parts(st, 12)
    _written(st, ids[:3], 30)
    _written(st, ids[3:], 3600)
    looked: Counter = Counter()
    keeper = _keeper_freeing(st, ids, min_free=80, batch=4, looked=looked)   # all 9 older ones
    assert keeper.check(now=_later())["OK"] == 9
    assert max(looked.values()) == 1, looked
    assert all(st.get(i).image_key for i in ids[:3]) and _naming_missing_files(st) == []


def test_a_folder_restored_just_now_is_said_so_in_the_disk_fault(sqlite_station):
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    ids = _ok_parts(st, 5)
    _written(st, ids, 30)
    keeper = _keeper_freeing(st, ids, min_free=30, batch=2, looked=Counter())
    assert keeper.check(now=_later())["OK"] == 0
    fault = " ".join(keeper.faults["disk"].split())
    assert "5 parts' image files were written in the last 60 s by another process" in fault, fault
    assert "they go at the next look" in fault
    assert all(st.get(i).image_key for i in ids)
