"""What exporting part records as CSV costs (``GET /api/v1/inspections/export``).

Fills a SQLite station with ``--parts`` records (a third NG with two regions, a tenth
reviewed), then downloads the whole export, one lot's NG parts, and the whole export as .xlsx
through the station's web app (in process), timing each and reading the process's peak
memory.

    python -m benchmarks.part_export_bench [--parts 200000]

Writes ``benchmarks/results/part-export.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _fill(st, n: int) -> None:
    from lineguard.line.orm import Inspection
    t0 = dt.datetime(2026, 1, 1)
    regions = [{"box": [3, 4, 5, 6], "area_px": 20, "peak_score": 2.0, "mean_score": 1.0},     # as stored
               {"box": [1, 1, 2, 2], "area_px": 3, "peak_score": 2.5, "mean_score": 1.0}]
    rows = [dict(part_id=f"part-{i:08d}", line="L1", station="S1", product="cell", lot=f"LOT-{i // 5000}",
                 source="api", verdict="NG" if i % 3 == 0 else "OK", score=0.1 + (i % 97) / 100, threshold=0.5,
                 pixel_threshold=0.5, model_id="m", model_version="1", registry_version=1,
                 regions=regions if i % 3 == 0 else [], timings_ms={"model": 9.0}, image_sha256=f"{i:064x}",
                 image_width=640, image_height=480, image_key=f"ab/cd/{i:064x}.png" if i % 3 == 0 else None,
                 created_at=t0 + dt.timedelta(seconds=i), reviewed=i % 10 == 0,
                 review_label=("good" if i % 20 == 0 else "defect") if i % 10 == 0 else None,
                 reviewer="maria" if i % 10 == 0 else None, audit_sample=False)
            for i in range(n)]
    with st.db.session() as s:
        s.bulk_insert_mappings(Inspection, rows)


def _download(c, params: dict) -> dict:
    t0 = time.perf_counter()
    nbytes = lines = 0
    with c.stream("GET", "/api/v1/inspections/export", params=params) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            nbytes += len(chunk)
            lines += chunk.count(b"\r\n")
    s = time.perf_counter() - t0
    if params.get("format") == "xlsx":     # a zip: no lines to count
        return {"params": params, "mb": round(nbytes / 1e6, 1), "seconds": round(s, 2)}
    return {"params": params, "rows": lines - 1, "mb": round(nbytes / 1e6, 1), "seconds": round(s, 2),
            "rows_per_s": round((lines - 1) / s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", type=int, default=200_000)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        st = Station(StationConfig(data_dir=Path(tmp), min_free_gb=0, store_sweep_h=0, open_reads=True))
        _fill(st, args.parts)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with TestClient(create_app(station=st)) as c:
            runs = [_download(c, {}), _download(c, {"lot": "LOT-7", "verdict": "NG"}), _download(c, {"format": "xlsx"})]
        st.close()
    out = {"parts": args.parts, "runs": runs, "peak_rss_mb_before": round(rss_before),
           "peak_rss_mb_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "cpu": platform.processor() or platform.machine()}
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "part-export.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
