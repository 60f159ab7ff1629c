"""What keeping the data disk free costs a station with a long history (``line.disk``).

A station's database holds every part it ever judged; the keeper deletes the oldest
parts' images in batches of 200 (one short transaction each, then the files). This
fills a station's SQLite database with ``--parts`` records (OK parts with an image and a
map file each, 1 in 50 NG), the files being small stand-ins on disk, and times:

- clearing room: the disk "frees" 10 kB for each part cleared, the floor asks for
  ``--clear`` parts' worth; parts cleared a second;
- the next look when the disk has room (what every minute costs);
- one batch of 200 after a restart, when the keeper no longer knows where it stopped
  and the oldest rows (cleared already) come first in the index.

    python -m benchmarks.disk_keeper_bench [--parts 200000] [--clear 20000]

Writes ``benchmarks/results/disk-keeper.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _fill(st, parts: int) -> None:
    from lineguard.line.orm import Inspection
    t0 = dt.datetime(2026, 1, 1)
    rows = []
    for i in range(parts):
        digest = f"{i:064x}"
        image, amap = st.images.key_for(digest, ".png"), st.images.key_for(digest, ".map")
        for key in (image, amap):
            path = st.images.path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        rows.append(dict(part_id=f"p{i}", line="L1", station="S1", product="cell", source="api",
                         verdict="NG" if i % 50 == 0 else "OK", score=1.0, threshold=2.0, pixel_threshold=2.0,
                         model_id="m", model_version="1", regions=[], timings_ms={}, image_sha256=digest,
                         image_width=64, image_height=64, image_key=image, heatmap_key=amap,
                         created_at=t0 + dt.timedelta(seconds=i), reviewed=False, audit_sample=False))
    with st.db.session() as s:
        s.bulk_insert_mappings(Inspection, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", type=int, default=200_000)
    ap.add_argument("--clear", type=int, default=20_000)
    args = ap.parse_args()

    from lineguard.line.config import StationConfig
    from lineguard.line.disk import DiskKeeper
    from lineguard.line.orm import utcnow
    from lineguard.line.station import Station

    with tempfile.TemporaryDirectory() as tmp:
        st = Station(StationConfig(data_dir=Path(tmp), min_free_gb=0))
        t = time.perf_counter()
        _fill(st, args.parts)
        fill_s = time.perf_counter() - t
        box: dict = {}

        def free() -> int:
            return 10_000 * sum(box["k"].deleted.values())

        floor = int(10_000 * args.clear / 1.1)           # cleared to 10% above the floor
        box["k"] = keeper = DiskKeeper(st.db, st.images, st.faults, floor, free_bytes=free)
        t = time.perf_counter()
        cleared = keeper.check()
        clear_s = time.perf_counter() - t
        t = time.perf_counter()
        keeper.check()
        idle_ms = (time.perf_counter() - t) * 1e3
        # a restart: a new keeper starts at the first row; one batch of OK parts
        again = DiskKeeper(st.db, st.images, st.faults, 0, free_bytes=free)
        t = time.perf_counter()
        after_restart = again._clear("OK", utcnow())[0]
        restart_ms = (time.perf_counter() - t) * 1e3
        st.close()
    out = {"parts": args.parts, "cleared": cleared, "fill_s": round(fill_s, 1),
           "clear_s": round(clear_s, 2), "parts_cleared_per_s": round(sum(cleared.values()) / clear_s),
           "idle_check_ms": round(idle_ms, 2), "first_batch_after_restart": after_restart,
           "first_batch_after_restart_ms": round(restart_ms, 1), "cpu": platform.processor() or platform.machine()}
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "disk-keeper.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
