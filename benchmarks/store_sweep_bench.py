"""What sweeping the image store of files no record names costs (``line.sweep``).

Fills a station's SQLite database with ``--parts`` records, each with an image and a map
file on disk (small stand-ins, spread over the store's folders by their SHA-256 as real
ones are), 1 in 50 NG with an overlay stored the early way (under the overlay's own
SHA-256, which only an unindexed look finds), then leaves ``--leaks`` parts' files
unnamed (their records cleared, as by a crash between the disk keeper's two steps) and
times one sweep: files a second, and its longest database look-up of each kind.

    python -m benchmarks.store_sweep_bench [--parts 100000] [--leaks 500]

Writes ``benchmarks/results/store-sweep.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _write(st, key: str, stamp: float) -> None:
    path = st.images.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (stamp, stamp))


def _fill(st, parts: int, leaks: int) -> int:
    """The records and their files; returns the number of files."""
    from sqlalchemy import update

    from lineguard.line.orm import Inspection
    # parts a millisecond apart, three hours ago (older than the sweep's hour), each part's
    # files stored when it was recorded
    start = time.time() - 3 * 3600
    t0 = dt.datetime.fromtimestamp(start, dt.timezone.utc).replace(tzinfo=None)
    rows, files = [], 0
    for i in range(parts):
        digest = hashlib.sha256(b"part %d" % i).hexdigest()
        image, amap = st.images.key_for(digest, ".png"), st.images.key_for(digest, ".map-m.png")
        overlay = None
        if i % 50 == 0:
            overlay = st.images.key_for(hashlib.sha256(b"overlay %d" % i).hexdigest(), ".png")
        for key in (image, amap, overlay):
            if key:
                _write(st, key, start + i / 1000)
                files += 1
        rows.append(dict(part_id=f"p{i}", line="L1", station="S1", product="cell", source="api",
                         verdict="NG" if overlay else "OK", score=1.0, threshold=2.0, pixel_threshold=2.0,
                         model_id="m", model_version="1", regions=[], timings_ms={}, image_sha256=digest,
                         image_width=64, image_height=64, image_key=image, heatmap_key=amap, overlay_key=overlay,
                         created_at=t0 + dt.timedelta(milliseconds=i), reviewed=False, audit_sample=False))
    with st.db.session() as s:
        s.bulk_insert_mappings(Inspection, rows)
    with st.db.session() as s:        # a crash between the keeper's steps, ``leaks`` times over
        s.execute(update(Inspection).where(Inspection.id.in_(range(2, 2 + 7 * leaks, 7)))
                  .values(image_key=None, heatmap_key=None, overlay_key=None))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", type=int, default=100_000)
    ap.add_argument("--leaks", type=int, default=500)
    args = ap.parse_args()

    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.line.sweep import StoreSweep

    with tempfile.TemporaryDirectory() as tmp:
        st = Station(StationConfig(data_dir=Path(tmp), min_free_gb=0, store_sweep_h=0))
        t = time.perf_counter()
        files = _fill(st, args.parts, args.leaks)
        fill_s = time.perf_counter() - t
        sweep = StoreSweep(st.db, st.images)
        longest = {"by_sha": 0.0, "by_key": 0.0}    # the longest look-up of each kind, ms

        def timed(kind, look):
            def run(*a, **kw):
                t = time.perf_counter()
                try:
                    return look(*a, **kw)
                finally:
                    longest[kind] = max(longest[kind], (time.perf_counter() - t) * 1e3)
            return run
        sweep._named_by_sha = timed("by_sha", sweep._named_by_sha)
        sweep._named_by_key = timed("by_key", sweep._named_by_key)
        dry = sweep.run(dry_run=True)
        report = sweep.run()
        again = sweep.run(dry_run=True)
        st.close()
    out = {"parts": args.parts, "files": files, "fill_s": round(fill_s, 1),
           "unnamed_found": report.unnamed, "refused": report.refused, "deleted": report.deleted,
           "unnamed_after": again.unnamed,
           "dry_run_s": round(dry.seconds, 2), "sweep_s": round(report.seconds, 2),
           "files_per_s": round(report.files / report.seconds),
           "longest_lookup_ms": {k: round(v, 1) for k, v in longest.items()},
           "cpu": platform.processor() or platform.machine()}
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store-sweep.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
