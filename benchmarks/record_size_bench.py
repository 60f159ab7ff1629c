"""What a part's record costs on disk, and what deleting old records costs (``line.record_keeper``).

1. ``--judged`` parts go through a SQLite station's own inspection path (the tests' fake
   model, 1 in 30 NG, a serial each, every image kept), then the database is vacuumed and
   its tables and indexes measured: bytes per part, the records apart from the outbox
   (which is pruned a day after its sinks took the rows).
2. ``--old`` records (disk_keeper_bench's: two small files each, 1 in 50 NG, from
   2026-01-01 on) are deleted by a record keeper set to 30 days: parts a second.
3. The same again with an archive folder (``--archive-records-to``, on the same disk,
   the NG parts' images with them, the default): parts a second, the archive's size.

    python -m benchmarks.record_size_bench [--judged 3000] [--old 100000]

Writes ``benchmarks/results/record-size.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _measure_judged(folder: Path, n: int) -> dict:
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    from server.conftest import png_bytes
    from server.fake_inspector import FakeInspector
    st = Station(StationConfig(data_dir=folder), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5, review_threshold=0.4).to_bytes(), "cell", activate=True)
    t0 = time.perf_counter()
    for i in range(n):
        st.inspect(png_bytes(200 if i % 30 == 0 else 60, seed=i),
                   Part(part_id=f"p{i}", line="L1", station="S1", product="cell", serial=f"SN{i:08d}"))
    seconds = time.perf_counter() - t0
    st.close()
    db = folder / "lineguard.db"
    con = sqlite3.connect(db)
    con.execute("VACUUM")
    sizes = dict(con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    con.close()
    outbox = sum(v for k, v in sizes.items() if "outbox" in k)
    inspections = sum(v for k, v in sizes.items() if "inspections" in k)
    return {"parts": n, "seconds": round(seconds, 1), "db_bytes": db.stat().st_size,
            "bytes_per_part": round(db.stat().st_size / n), "outbox_bytes_per_part": round(outbox / n),
            "record_bytes_per_part": round(inspections / n),
            "gb_per_year_at_1_part_per_s": round(inspections / n * 86400 * 365 / 1e9, 1),
            "tables": {k: v for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:12]}}


def _measure_delete(folder: Path, n: int, archive: Optional[Path] = None) -> dict:
    from lineguard.line.config import StationConfig
    from lineguard.line.record_keeper import RecordKeeper
    from lineguard.line.station import Station
    from .disk_keeper_bench import _fill         # its records: two small files each, 1 in 50 NG, from 2026-01-01
    st = Station(StationConfig(data_dir=folder))
    _fill(st, n)
    st.images.recent_s = 0
    if archive is not None:
        archive.mkdir()
    keeper = RecordKeeper(st.db, st.images, 30, archive=archive)     # 2026-01-01 on: far older than 30 days
    t0 = time.perf_counter()
    done = keeper.run_once()
    seconds = time.perf_counter() - t0
    st.close()
    out = {"parts": n, "deleted": done["parts"], "files": done["files"], "seconds": round(seconds, 2),
           "parts_per_s": round(done["parts"] / seconds)}
    if archive is not None:
        files = [f for f in archive.rglob("*") if f.is_file()]
        out["archive"] = {"csv_files": sum(f.suffix == ".csv" for f in files),
                          "images": sum(f.parent != archive for f in files),
                          "bytes": sum(f.stat().st_size for f in files)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judged", type=int, default=3000)
    ap.add_argument("--old", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        judged = _measure_judged(Path(tmp) / "judged", args.judged)
        deleted = _measure_delete(Path(tmp) / "old", args.old)
        archived = _measure_delete(Path(tmp) / "old-archived", args.old, archive=Path(tmp) / "archive")
    out = {"judged": judged, "delete_old": deleted, "delete_old_archived": archived,
           "machine": f"{platform.machine()}, {platform.python_version()}"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "record-size.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
