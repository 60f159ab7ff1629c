"""What a shift's test-part verification costs (``GET /api/v1/verification``, the line
view's panel, asked with every summary).

Fills a SQLite station database with ``--parts`` parts of one line (one every 30 s, a
fiftieth NG) and a red rabbit put through at every shift start; the last two checks let
it pass (a failure carried into the last shift and one in it, each with its parts in
doubt to count), then times :func:`lineguard.line.test_parts.verification` for the last
shift.

    python -m benchmarks.test_parts_bench [--parts 400000]

Writes ``benchmarks/results/test-parts.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHIFT_PARTS = 960            # 8 h at one part every 30 s


def _fill(db, n: int) -> dt.datetime:
    from sqlalchemy import insert

    from lineguard.line.orm import Inspection, TestPart
    t0 = dt.datetime(2026, 1, 1, 6)
    last_checks = {(n - 1) // SHIFT_PARTS * SHIFT_PARTS, ((n - 1) // SHIFT_PARTS - 1) * SHIFT_PARTS}
    base = dict(line="L1", station="S1", product="cell", source="api", score=0.1, threshold=0.5,
                pixel_threshold=0.5, model_id="m", model_version="1", regions=[], timings_ms={}, image_width=8,
                image_height=8, reviewed=False, audit_sample=False)
    rows = []
    with db.engine.begin() as c:
        for i in range(n):
            at = t0 + dt.timedelta(seconds=30 * i)
            rows.append(dict(base, part_id=f"p{i}", verdict="NG" if i % 50 == 0 else "OK", image_sha256=f"{i:064x}",
                             created_at=at, test_part=None, test_expected=None))
            if i % SHIFT_PARTS == 0:
                rows.append(dict(base, part_id=f"rr{i}", verdict="OK" if i in last_checks else "NG",
                                 image_sha256=f"{i:063x}f", created_at=at, test_part="RR-01", test_expected="NG"))
            if len(rows) >= 20_000:
                c.execute(insert(Inspection), rows)
                rows = []
        if rows:
            c.execute(insert(Inspection), rows)
        c.execute(insert(TestPart), [dict(product="cell", name="RR-01", expect="NG", created_at=t0)])
    return t0 + dt.timedelta(seconds=30 * n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", type=int, default=400_000)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    from zoneinfo import ZoneInfo

    from lineguard.line.db import Database
    from lineguard.line.shifts import parse_shift_starts, shift_of
    from lineguard.line.test_parts import verification
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'station.db'}")
        db.upgrade()
        t = time.perf_counter()
        end = _fill(db, a.parts)
        fill_s = time.perf_counter() - t
        shift = shift_of(end - dt.timedelta(minutes=1), parse_shift_starts("06:00,14:00,22:00"), ZoneInfo("UTC"))
        times, answer = [], None
        for _ in range(a.repeat):
            t = time.perf_counter()
            answer = verification(db, shift, end)
            times.append((time.perf_counter() - t) * 1e3)
        db.dispose()
    (v,) = answer
    out = {"parts": a.parts, "fill_s": round(fill_s, 1), "state": v["state"],
           "failures": [{"at": f["at"], "parts_in_doubt": f["doubt"]["parts"]} for f in v["failures"]],
           "verification_ms": {"first": round(times[0], 1), "median": round(statistics.median(times), 1),
                               "max": round(max(times), 1)},
           "machine": f"{platform.machine()}, {platform.python_version()}"}
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "test-parts.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
