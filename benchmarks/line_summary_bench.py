"""What the line view's shift counters cost as the shift grows (``GET /api/v1/lines/summary``,
polled every few seconds by each open line view).

    python -m benchmarks.line_summary_bench [--shift 1000,10000,50000,200000] [--history 100000]
                                            [--postgresql URL]

Fills a fresh station database (SQLite under a temp folder, or a private schema of the
PostgreSQL given, dropped afterwards) with ``--history`` parts over the 20 days before the
shift, then the shift's parts in steps up to each ``--shift`` size: four stations on two
lines, a tenth NG or REVIEW, a test part in a hundred, latency timings on every part. At
each size it prints, best of ``--repeat``:

- ``counters``: the statement the summary counts with now (live.shift_counts);
- ``grouped``: the statement it replaced (the shift's production parts grouped by line,
  station and verdict), on the same rows;
- ``summary``: the whole request through the app (in-process HTTP).

The counters are checked against a plain count of the rows before anything is timed. On
PostgreSQL the table is vacuumed and analysed after each fill (autovacuum's work on a
running line), so index-only scans and the planner's statistics are what a plant has.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

STATIONS = [("L1", "S1"), ("L1", "S2"), ("L2", "S3"), ("L2", "S4")]
VERDICTS = ["OK"] * 18 + ["NG", "REVIEW"]


def fill(st, n: int, first: dt.datetime, last: dt.datetime, seed: int) -> None:
    """``n`` parts evenly from ``first`` to ``last``, in batches (one transaction each)."""
    from sqlalchemy import insert

    from lineguard.line.orm import Inspection
    rnd = random.Random(seed)
    span = (last - first).total_seconds()
    rows = []
    for i in range(n):
        line, station = STATIONS[i % len(STATIONS)]
        test = "red-rabbit" if rnd.random() < 0.01 else None
        rows.append(dict(part_id=f"P{seed}-{i}", line=line, station=station, product="cell", source="api",
                         verdict=rnd.choice(VERDICTS), score=0.3, threshold=0.5,
                         pixel_threshold=0.5, model_id="m", model_version="v1",
                         regions=[{"x": 10, "y": 20, "w": 30, "h": 40, "score": 0.7}],
                         timings_ms={"station_decode": 2.1, "station_queue": 0.4, "station_model": 31.5,
                                     "station_store_files": 3.2},
                         image_sha256=uuid.uuid4().hex * 2, image_width=1024, image_height=768,
                         created_at=first + dt.timedelta(seconds=span * i / max(n, 1)), test_part=test,
                         test_expected="NG" if test else None))
        if len(rows) == 5000:
            with st.db.engine.begin() as c:
                c.execute(insert(Inspection), rows)
            rows = []
    if rows:
        with st.db.engine.begin() as c:
            c.execute(insert(Inspection), rows)


def vacuum(st) -> None:
    if st.db.is_sqlite:
        return
    raw = st.db.engine.raw_connection()
    try:
        raw.driver_connection.autocommit = True      # VACUUM runs outside a transaction
        raw.driver_connection.execute(f'VACUUM ANALYZE "{st.db.schema}".inspections')
    finally:
        raw.driver_connection.autocommit = False     # back to the pool as it came
        raw.close()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def counted(st, start: dt.datetime) -> None:
    from lineguard.server.routers.live import shift_counts
    with st.db.session() as s:
        shift_counts(s, start, st.db.is_sqlite)


def grouped_counts(st, statement) -> None:
    with st.db.session() as s:
        s.execute(statement).all()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shift", default="1000,10000,50000,200000", help="the shift's sizes, growing")
    ap.add_argument("--history", type=int, default=100_000, help="parts before the shift")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--postgresql", default=None, help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.shift.split(",")]
    if sizes != sorted(sizes) or sizes[0] < 1:
        ap.error("--shift: growing sizes, each at least 1 (e.g. 1000,10000,50000)")

    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from lineguard.line.config import StationConfig
    from lineguard.line.orm import Inspection as I
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    from lineguard.server.routers.live import shift_counts

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    start = now - dt.timedelta(hours=8)
    grouped = select(I.line, I.station, I.verdict, func.count(), func.max(I.created_at)).where(
        I.created_at >= start, I.test_part.is_(None)).group_by(I.line, I.station, I.verdict)
    tests = select(I.line, I.station, func.count()).where(I.test_part.is_not(None), I.created_at >= start
                                                           ).group_by(I.line, I.station)
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"lg_bench_{uuid.uuid4().hex[:8]}" if a.postgresql else None
        st = Station(StationConfig(data_dir=Path(tmp), db_url=a.postgresql, db_schema=schema, open_reads=True))
        try:
            fill(st, a.history, start - dt.timedelta(days=20), start - dt.timedelta(minutes=1), seed=1)
            print(f"{'postgresql' if a.postgresql else 'sqlite'}: {a.history} parts before the shift, "
                  f"4 stations on 2 lines; best of {a.repeat}")
            done = 0
            with TestClient(create_app(station=st)) as client:
                for n in sizes:
                    # the shift's parts so far, up to a minute ago: each step fills the next span
                    fill(st, n - done, start + (now - start) * done / sizes[-1],
                         start + (now - start) * n / sizes[-1], seed=100 + n)
                    done = n
                    vacuum(st)
                    with st.db.session() as s:
                        rows = shift_counts(s, start, st.db.is_sqlite)
                        plain = {(ln, sn, v): c for ln, sn, v, c, _last in s.execute(grouped)}
                        # test parts by station (verdict None)
                        plain.update({(ln, sn, None): c for ln, sn, c in s.execute(tests)})
                    got = {(ln, sn, v): c for ln, sn, v, c, _last in rows if c}
                    assert got == plain, (got, plain)
                    t_new = best(lambda: counted(st, start), a.repeat)
                    t_old = best(lambda: grouped_counts(st, grouped), a.repeat)
                    q = {"since": start.isoformat() + "Z"}

                    def summary():
                        r = client.get("/api/v1/lines/summary", params=q)
                        assert r.status_code == 200, r.text
                        assert sum(x["parts"] for x in r.json()["lines"]) == sum(c for k, c in got.items() if k[2])
                    t_sum = best(summary, a.repeat)
                    print(f"  {n:>7} parts in the shift: counters {t_new:7.1f} ms   grouped {t_old:7.1f} ms   "
                          f"summary {t_sum:7.1f} ms", flush=True)
        finally:
            if schema:
                st.db.drop_schema()
            st.close()


if __name__ == "__main__":
    sys.exit(main())
