"""How long the SPC endpoints take on a big inspections table.

    python -m benchmarks.spc_bench [--rows 200000] [--days 30] [--postgresql URL]

Fills a fresh station database (SQLite under a temp folder, or a private schema of the
PostgreSQL given) with ``--rows`` parts spread over ``--days`` on two lines, a few
percent NG, some reviewed, then times each SPC endpoint through the app (in-process
HTTP, so routing, queries, maths and JSON/CSV are all counted). Prints one line per
request; nothing is written elsewhere.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np


def fill(st, rows: int, days: int, seed: int = 0) -> float:
    from sqlalchemy import insert

    from lineguard.line.orm import Inspection
    rng = np.random.default_rng(seed)
    t_end = dt.datetime(2026, 12, 1)
    offsets = np.sort(rng.uniform(0, days * 86400, rows))
    scores = rng.gamma(4.0, 0.08, rows)
    t0 = time.perf_counter()
    batch = []
    for i in range(rows):
        s = float(scores[i])
        verdict = "NG" if s > 0.6 else "REVIEW" if s > 0.5 else "OK"
        reviewed = verdict != "OK" or i % 50 == 0
        batch.append({"part_id": f"p{i}", "line": "L1" if i % 2 else "L2", "station": "S1", "product": "cell",
                      "lot": f"LOT-{i // 2000}", "source": "api", "verdict": verdict, "score": s,
                      "threshold": 0.6, "review_threshold": 0.5, "pixel_threshold": 0.5, "model_id": "m1",
                      "model_version": "v1", "registry_version": 1, "regions": [], "timings_ms": {},
                      "image_sha256": uuid.uuid4().hex, "image_width": 256, "image_height": 256,
                      "created_at": t_end - dt.timedelta(seconds=days * 86400 - float(offsets[i])),
                      "reviewed": reviewed,
                      "review_label": ("defect" if s > 0.65 else "good") if reviewed else None})
        if len(batch) == 5000:
            with st.db.session() as s_:
                s_.execute(insert(Inspection), batch)
            batch = []
    if batch:
        with st.db.session() as s_:
            s_.execute(insert(Inspection), batch)
    return time.perf_counter() - t0


def run(st, days: int) -> None:
    from fastapi.testclient import TestClient

    from lineguard.server.app import create_app
    until = "2026-12-01T00:00:00Z"
    since = (dt.datetime(2026, 12, 1) - dt.timedelta(days=days)).isoformat() + "Z"
    cases = [("p-chart", {"by": "hour"}), ("p-chart", {"by": "shift"}), ("p-chart", {"by": "day"}),
             ("p-chart", {"by": "lot"}), ("p-chart", {"by": "hour", "line": "L1", "format": "csv"}),
             ("scores", {"by": "hour"}), ("scores", {"by": "day", "line": "L1"}), ("scores", {"by": "lot"}),
             ("review-rates", {})]
    with TestClient(create_app(station=st)) as c:
        for path, params in cases:
            q = {"since": since, "until": until, **params}
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = c.get(f"/api/v1/spc/{path}", params=q)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            n = len(r.json()["points"]) if "json" in r.headers["content-type"] and "points" in r.json() else "-"
            print(f"  {path:13s} {str(params):40s} subgroups {n!s:>5}  best {min(times) * 1e3:7.1f} ms  "
                  f"(of 3: {', '.join(f'{t * 1e3:.0f}' for t in times)})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--postgresql", default=None, help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    a = ap.parse_args(argv)
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"lg_bench_{uuid.uuid4().hex[:8]}" if a.postgresql else None
        st = Station(StationConfig(data_dir=Path(tmp), db_url=a.postgresql, db_schema=schema, open_reads=True,
                                   timezone="Europe/Berlin"))
        try:
            took = fill(st, a.rows, a.days)
            print(f"{'postgresql' if a.postgresql else 'sqlite'}: {a.rows} parts over {a.days} days "
                  f"(filled in {took:.1f} s)")
            run(st, a.days)
        finally:
            if schema:
                st.db.drop_schema()
            st.close()


if __name__ == "__main__":
    sys.exit(main())
