"""What backing a station up and restoring it cost (``line.backup``, ``line.restore``).

Fills a station's SQLite database with ``--parts`` records, each with an image and a map
file (``--kb`` kB and a tenth of it, on this disk), backs it up into an empty folder,
records ``--more`` parts more and backs up again into the same folder (only the new
files are copied), then once more with nothing new, and once verifying (every file the backup
holds read back, as a station's own backups do weekly); then checks the backup
(``lineguard restore --check``: every file read and hashed) and restores it into a new
folder.

    python -m benchmarks.backup_bench [--parts 20000] [--more 1000] [--kb 100] [--cold]

``--cold`` (root only) empties the kernel's page cache before the verifying backup, the
check and the restore, so they read from the disk as a backup disk read a week later would.

Writes ``benchmarks/results/backup.json`` (``backup-cold.json`` with ``--cold``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import struct
import tempfile
import time
import zlib
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _png_shaped(nbytes: int) -> bytes:
    """Random bytes in PNG chunks with their checksums (what a restore checks of a map)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", os.urandom(nbytes)) + chunk(b"IEND", b""))


def _record(st, first: int, n: int, size: int) -> None:
    from lineguard.line.orm import Inspection
    t0 = dt.datetime(2026, 1, 1)
    rows = []
    for i in range(first, first + n):
        data = os.urandom(size)           # an image is named by the SHA-256 of its bytes
        digest = hashlib.sha256(data).hexdigest()
        image, amap = st.images.key_for(digest, ".png"), st.images.key_for(digest, ".map-m.png")
        for key, body in ((image, data), (amap, _png_shaped(size // 10))):
            path = st.images.path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        rows.append(dict(part_id=f"p{i}", line="L1", station="S1", product="cell", source="api", verdict="OK",
                         score=1.0, threshold=2.0, pixel_threshold=2.0, model_id="m", model_version="1", regions=[],
                         timings_ms={}, image_sha256=digest, image_width=64, image_height=64, image_key=image,
                         heatmap_key=amap, created_at=t0 + dt.timedelta(seconds=i), reviewed=False,
                         audit_sample=False))
    with st.db.session() as s:
        s.bulk_insert_mappings(Inspection, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", type=int, default=20_000)
    ap.add_argument("--more", type=int, default=1_000)
    ap.add_argument("--kb", type=int, default=100)
    ap.add_argument("--cold", action="store_true", help="empty the page cache before the reads (root)")
    args = ap.parse_args()

    def settle() -> None:
        os.sync()      # what the backups wrote is on the disk, not timed with what comes next
        time.sleep(1)
        if args.cold:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")

    from lineguard.line.backup import backup_station
    from lineguard.line.config import StationConfig
    from lineguard.line.restore import check_backup, restore_station
    from lineguard.line.station import Station

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        data, dest = Path(tmp) / "station", Path(tmp) / "backup"
        st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0))
        _record(st, 0, args.parts, args.kb * 1024)
        runs["first"] = backup_station(data, dest).to_dict()
        _record(st, args.parts, args.more, args.kb * 1024)
        runs["after_more_parts"] = backup_station(data, dest).to_dict()
        runs["nothing_new"] = backup_station(data, dest).to_dict()
        settle()
        runs["verify"] = backup_station(data, dest, verify=True).to_dict()    # every file read back
        st.close()
        settle()
        restores = {"check": check_backup(dest).to_dict()}
        settle()
        restores["restore"] = restore_station(dest, Path(tmp) / "restored").to_dict()
    for r in runs.values():
        r["mb_per_s"] = round(r["bytes_copied"] / 1e6 / r["seconds"], 1) if r["seconds"] else None
    runs["verify"]["files_read_per_s"] = round(runs["verify"]["verified"] / runs["verify"]["seconds"])
    for r in restores.values():
        r["mb_per_s"] = round(r["bytes"] / 1e6 / r["seconds"], 1) if r["seconds"] else None
    out = {"parts": args.parts, "more": args.more, "image_kb": args.kb, "page_cache": "emptied" if args.cold
           else "warm", "runs": runs, "restores": restores,
           "cpu": platform.processor() or platform.machine()}
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("backup-cold.json" if args.cold else "backup.json")).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
