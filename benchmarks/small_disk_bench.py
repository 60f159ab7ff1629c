"""A station on a really small disk: is any part refused, and how far does clearing overshoot?

Runs a real station (the tests' fake model, which scores a part by its brightness, so
the disk and not the model is measured) on a small filesystem: a 48 MB tmpfs it mounts
itself (needs root), or ``--folder`` on one you made. ``--parts`` parts of ~150 kB
(noise, so PNG cannot shrink them; 1 in 20 NG) go in at ``--rate`` parts a second with
a floor of ``--floor-mb``. Reported: parts refused, the least and most free space seen
after the first clearing (the most shows the overshoot past the floor's 10% margin),
OK and NG images deleted, records naming a missing file, and files no record names.

    sudo python -m benchmarks.small_disk_bench [--parts 1500] [--rate 100] [--floor-mb 12]

Writes ``benchmarks/results/small-disk.json``.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "server"))


def _part(rng: np.random.Generator, ng: bool) -> bytes:
    from PIL import Image
    arr = np.clip(rng.normal(200 if ng else 60, 40, (224, 224, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def run(folder: Path, parts: int, rate: float, floor_mb: float) -> dict:
    from fake_inspector import FakeInspector
    from sqlalchemy import select

    from lineguard.line.config import StationConfig
    from lineguard.line.errors import StorageUnavailable
    from lineguard.line.orm import Inspection
    from lineguard.line.station import Part, Station
    from lineguard.line.sweep import StoreSweep

    data = folder / "station"
    st = Station(StationConfig(data_dir=data, min_free_gb=floor_mb / 1024, store_sweep_h=0),
                 loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    # The keeper leaves the last two minutes' parts alone (their maps may be on the way),
    # and the store a file stored in the last minute (a record may be about to name it);
    # this disk holds two seconds of parts, so one second and half a second here.
    st.disk.min_age_s = 1.0
    st.images.recent_s = 0.5
    rng = np.random.default_rng(0)
    pool = [_part(rng, ng=False) for _ in range(40)] + [_part(rng, ng=True) for _ in range(4)]
    refused, free_seen = 0, []
    t0 = time.perf_counter()
    for i in range(parts):
        ng = i % 20 == 19
        image = _unique(pool[40 + i % 4] if ng else pool[i % 40], i)
        try:
            st.inspect(image, Part(f"p{i}", "L1", "S1", "cell"))
        except StorageUnavailable:
            refused += 1
        free_seen.append(shutil.disk_usage(folder).free)
        wait = t0 + (i + 1) / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    elapsed = time.perf_counter() - t0
    st.maps.flush()
    deleted = dict(st.disk.deleted)
    with st.db.session() as s:
        rows = list(s.execute(select(Inspection.verdict, Inspection.image_key, Inspection.heatmap_key)))
    missing = sum(1 for _v, *keys in rows for k in keys if k and not st.images.exists(k))
    ng_kept = sum(1 for v, k, _m in rows if v != "OK" and k)
    ng_all = sum(1 for v, _k, _m in rows if v != "OK")
    sweep = StoreSweep(st.db, st.images, min_age_s=0)
    st.images.recent_s = 0
    unnamed = sweep.run(dry_run=True).unnamed
    st.close()
    first = next((n for n, f in enumerate(free_seen) if n and f > free_seen[n - 1] + 1e6), None)
    after = free_seen[first:] if first is not None else []
    mb = 1024 ** 2
    return {"parts": parts, "keeper_min_age_s": 1.0, "store_recent_s": 0.5, "rate_per_s": round(parts / elapsed, 1), "part_kb": round(len(pool[0]) / 1024),
            "floor_mb": floor_mb, "disk_mb": round(shutil.disk_usage(folder).total / mb, 1), "refused": refused,
            "free_mb_min": round(min(free_seen) / mb, 2),
            "free_mb_max_after_first_clearing": round(max(after) / mb, 2) if after else None,
            "images_deleted": deleted, "ng_parts": ng_all, "ng_images_kept": ng_kept,
            "records_naming_a_missing_file": missing, "files_no_record_names": unnamed}


def _unique(png: bytes, i: int) -> bytes:
    """The same picture with a tEXt chunk naming the part: a new file (and SHA-256) each part."""
    import struct
    import zlib
    body = b"tEXt" + b"part\x00" + str(i).encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]        # after the 8-byte signature and the 25-byte IHDR chunk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", type=int, default=1500)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--floor-mb", type=float, default=12.0)
    ap.add_argument("--folder", type=Path, default=None, help="a small filesystem to run on (default: mount a "
                    "48 MB tmpfs, as root)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        mounted = None
        if folder is None:
            mounted = Path(tmp) / "disk"
            mounted.mkdir()
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mounted)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"could not mount a tmpfs ({r.stderr.strip()}): run as root, or give --folder on a "
                         "small filesystem you made")
            folder = mounted
        try:
            out = run(folder, args.parts, args.rate, args.floor_mb)
        finally:
            if mounted is not None:
                subprocess.run(["umount", str(mounted)], check=False)
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"small-disk{'-' + args.tag if args.tag else ''}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
