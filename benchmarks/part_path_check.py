"""Did a change slow a part's path? One source tree against another, on this machine, alternating.

    python -m benchmarks.part_path_check --src OLD/src [--new NEW/src] [--rounds 3]
                                         [--only after_part verification_sqlite verification_postgresql metrics load]
                                         [--out benchmarks/results/part-path-check.json]

OLD: another commit's sources, e.g. ``git archive f27b4c7 src | tar -x -C /tmp/old`` then
``--src /tmp/old/src``; NEW: this checkout's ``src`` unless given (``--new`` an extracted
HEAD where the working tree holds edits under way). Each measure runs in a
child process whose ``PYTHONPATH`` starts with the tree under test (its own migrations,
its own database), old and new in turn (old first in odd rounds, new first in even), and
the medians of the rounds are compared. CPU time of the process (``time.process_time``)
where the machine is shared, since wall time there measures the neighbours:

- ``after_part``: CPU per part of ``AlarmWatch.after_part`` over ``--parts`` parts of one
  station and product, recorded straight into a SQLite station database and then counted
  one by one, as the station counts each part it records (the alarm rules at their defaults).
- ``verification_sqlite`` / ``verification_postgresql``: ``test_parts.verification()`` of a
  shift of ``--shift-parts`` parts at 4 stations with a red rabbit at each shift start
  (all stations' answer, the line view's; and ``failures=False``, the PLC's VerificationState).
- ``metrics``: ``GET /metrics`` of a station with 4 stations x 3 products counted past their
  drift baselines (the drift series shown), beside each station's part counts and latencies.
- ``load``: ``benchmarks.load_bench``'s clients against ``python -m lineguard.server`` with
  the ONNX model (the README's Station table, at a small size): parts/s, latency p50/p95,
  and the server process's CPU per part from /proc, which a shared machine disturbs less.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ["after_part", "verification_sqlite", "verification_postgresql", "metrics", "load"]
STATIONS = ["S1", "S2", "S3", "S4"]


# -- the measures, each run in a child process on the tree under test -----------------------
def _records(db, rows):
    from types import SimpleNamespace

    from sqlalchemy import insert

    from lineguard.line.orm import Inspection
    with db.session() as s:
        ids = s.scalars(insert(Inspection).returning(Inspection.id, sort_by_parameter_order=True), rows).all()
    return [SimpleNamespace(id=i, test_part=None, test_expected=None, photo_issues=None, review_threshold=None, **r)
            for i, r in zip(ids, rows)]


def _part_rows(n, *, station="S1", product="cell", start=None, seed=0, tag=""):
    import numpy as np
    rng = np.random.default_rng(seed)
    scores = rng.gamma(4.0, 0.05, n)        # good parts' scores, skewed as anomaly scores are
    start = start or dt.datetime(2026, 12, 6, 6)
    return [dict(part_id=f"{tag}{station}-{product}-{i}", line="L1", station=station, product=product, source="camera",
                 verdict="NG" if x > 0.46 else "OK", score=float(x), threshold=0.46, pixel_threshold=0.5,
                 model_id=f"m-{product}", model_version=f"m-{product}", registry_version=1, regions=[],
                 timings_ms={}, image_sha256=f"{seed:08x}{i:056x}", image_width=64, image_height=64,
                 created_at=start + dt.timedelta(seconds=i))
            for i, x in enumerate(scores)]


def _station(tmp, db_url=None, schema=None):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    return Station(StationConfig(data_dir=Path(tmp) / "data", db_url=db_url, db_schema=schema))


def measure_after_part(a) -> dict:
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        st = _station(tmp)
        try:
            recs = _records(st.db, _part_rows(a.parts))
            st.alarms.after_part(recs[0])       # the station's first part: rules and counts read
            raised, t0 = 0, time.process_time()
            for rec in recs[1:]:
                raised += len(st.alarms.after_part(rec))
            cpu = time.process_time() - t0
        finally:
            st.close()
    return {"parts": len(recs) - 1, "cpu_us_per_part": round(cpu / (len(recs) - 1) * 1e6, 2), "alarms": raised}


def _fill_shift(db, n):
    """``n`` parts in one 8-hour shift over 4 stations, a red rabbit at each station at the
    shift's start (passed right) and one at S4 late in the shift judged wrong (its parts in doubt)."""
    from sqlalchemy import insert

    from lineguard.line.orm import Inspection, TestPart
    t0 = dt.datetime(2026, 12, 6, 6)
    step = 8 * 3600 / n * 0.99
    base = dict(line="L1", product="cell", source="api", score=0.1, threshold=0.5, pixel_threshold=0.5,
                model_id="m", model_version="1", regions=[], timings_ms={}, image_width=8, image_height=8,
                reviewed=False, audit_sample=False)
    rows = [dict(base, station=s, part_id=f"rr-{s}", verdict="NG", image_sha256=f"{k:063x}f",
                 created_at=t0 + dt.timedelta(seconds=1), test_part="RR-01", test_expected="NG")
            for k, s in enumerate(STATIONS)]
    with db.engine.begin() as c:
        c.execute(insert(TestPart), [dict(product="cell", name="RR-01", expect="NG", created_at=t0)])
        for i in range(n):
            rows.append(dict(base, station=STATIONS[i % 4], part_id=f"p{i}", verdict="NG" if i % 50 == 0 else "OK",
                             image_sha256=f"{i:064x}", created_at=t0 + dt.timedelta(seconds=2 + step * i),
                             test_part=None, test_expected=None))
            if i == n * 3 // 4:
                rows.append(dict(base, station="S4", part_id="rr-late", verdict="OK", image_sha256=f"{i:063x}e",
                                 created_at=t0 + dt.timedelta(seconds=2 + step * i), test_part="RR-01",
                                 test_expected="NG"))
            if len(rows) >= 10_000:
                c.execute(insert(Inspection), rows)
                rows = []
        if rows:
            c.execute(insert(Inspection), rows)
    return t0, t0 + dt.timedelta(hours=8) - dt.timedelta(minutes=1)


def measure_verification(a, backend) -> dict:
    from zoneinfo import ZoneInfo

    from lineguard.line.db import Database
    from lineguard.line.shifts import parse_shift_starts, shift_of
    from lineguard.line.test_parts import verification
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        schema = None
        if backend == "postgresql":
            schema = f"lg_ppc_{uuid.uuid4().hex[:8]}"
            db = Database(PG_URL, schema=schema)
        else:
            db = Database(f"sqlite:///{Path(tmp) / 'station.db'}")
        try:
            db.upgrade()
            _, end = _fill_shift(db, a.shift_parts)
            shift = shift_of(end, parse_shift_starts("06:00,14:00,22:00"), ZoneInfo("UTC"))
            out = {"parts": a.shift_parts, "stations": len(STATIONS)}
            for name, kw in (("line_view", {}), ("plc_state", {"failures": False, "station": "S1"})):
                answer = verification(db, shift, end, **kw)      # first call: caches warm
                cpu, wall = [], []
                for _ in range(a.repeat):
                    t, w = time.process_time(), time.perf_counter()
                    answer = verification(db, shift, end, **kw)
                    cpu.append((time.process_time() - t) * 1e3)
                    wall.append((time.perf_counter() - w) * 1e3)
                out[name] = {"cpu_ms_median": round(statistics.median(cpu), 2),
                             "wall_ms_median": round(statistics.median(wall), 2),
                             "states": sorted(v["state"] for v in answer)}
        finally:
            if schema:
                db.drop_schema()
            db.dispose()
    return out


def measure_metrics(a) -> dict:
    from fastapi.testclient import TestClient

    from lineguard.server.app import create_app
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        st = _station(tmp)
        try:
            for k, station in enumerate(STATIONS):
                # the series a station's parts leave (Station.inspect's): counts and latencies
                for verdict in ("OK", "NG", "REVIEW"):
                    st.metrics.parts.labels("L1", station, verdict).inc()
                st.metrics.latency.labels("L1").observe(0.02)
                st.metrics.model_latency.labels("L1").observe(0.01)
                for j, product in enumerate(("cell", "tile", "disc")):
                    # past the drift baseline (500 parts) and a group: every drift series shown
                    for rec in _records(st.db, _part_rows(620, station=station, product=product, seed=10 * k + j)):
                        st.alarms.after_part(rec)
            with TestClient(create_app(station=st)) as c:
                body = c.get("/metrics").text
                cpu = []
                for _ in range(a.repeat):
                    t = time.process_time()
                    r = c.get("/metrics")
                    cpu.append((time.process_time() - t) * 1e3)
                    assert r.status_code == 200
        finally:
            st.close()
    series = [ln for ln in body.splitlines() if ln and not ln.startswith("#")]
    return {"stations": len(STATIONS), "products": 3, "series": len(series),
            "drift_series": sum(1 for ln in series if ln.startswith("lineguard_score_drift")),
            "cpu_ms_median": round(statistics.median(cpu), 2), "cpu_ms_min": round(min(cpu), 2)}


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_load(a) -> dict:
    from benchmarks import load_bench
    data = Path(tempfile.mkdtemp(dir=a.tmp)) / "data"
    key = load_bench.make_key(data, None, None)
    images = [p.read_bytes() for p in sorted((load_bench.DATA / "test").glob("*/*.png"))]
    proc, url = load_bench.start_server(data, Path(a.model), ["--sqlite-synchronous", "NORMAL", "--max-batch", "16"])
    runs = []
    try:
        for n in a.clients:
            c0 = _proc_cpu_s(proc.pid)
            r = load_bench.run_load(url, key, images, n, a.requests, tag=f"ppc-{n}")
            r["server_cpu_ms_per_part"] = round((_proc_cpu_s(proc.pid) - c0) / max(1, r["requests"]) * 1e3, 2)
            runs.append(r)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"runs": runs}


def child(a) -> None:
    import lineguard
    kind = a.child
    out = {"lineguard": str(Path(lineguard.__file__).parent)}
    if kind == "after_part":
        out.update(measure_after_part(a))
    elif kind.startswith("verification_"):
        out.update(measure_verification(a, kind.split("_", 1)[1]))
    elif kind == "metrics":
        out.update(measure_metrics(a))
    elif kind == "load":
        out.update(measure_load(a))
    print("RESULT " + json.dumps(out))


# -- the parent: alternate the trees, compare the medians ------------------------------------
def _run_child(src: Path, kind: str, a) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "benchmarks.part_path_check", "--child", kind, "--parts", str(a.parts),
           "--shift-parts", str(a.shift_parts), "--repeat", str(a.repeat), "--requests", str(a.requests),
           "--tmp", a.tmp, "--model", str(a.model or ""), "--clients", *map(str, a.clients)]
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"{kind} on {src} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    got = json.loads(lines[-1][len("RESULT "):])
    if Path(got["lineguard"]).resolve() != (src / "lineguard").resolve():
        raise SystemExit(f"{kind}: the child imported lineguard from {got['lineguard']}, not {src}")
    return got


def _numbers(kind: str, r: dict) -> dict[str, float]:
    """The numbers of one run that are compared (lower is better, but for parts/s)."""
    if kind == "after_part":
        return {"cpu_us_per_part": r["cpu_us_per_part"]}
    if kind.startswith("verification_"):
        out = {f"{k}_cpu_ms": r[k]["cpu_ms_median"] for k in ("line_view", "plc_state")}
        if kind.endswith("postgresql"):      # the server's work is outside this process's CPU time
            out.update({f"{k}_wall_ms": r[k]["wall_ms_median"] for k in ("line_view", "plc_state")})
        return out
    if kind == "metrics":
        return {"cpu_ms": r["cpu_ms_median"]}
    out = {}
    for run in r["runs"]:
        n = run["clients"]
        out.update({f"c{n}_parts_per_s": run["parts_per_s"], f"c{n}_p50_ms": run["latency_ms"]["p50"],
                    f"c{n}_p95_ms": run["latency_ms"]["p95"], f"c{n}_server_cpu_ms_per_part":
                    run["server_cpu_ms_per_part"]})
    return out


def _fit_model(a) -> Path:
    """The load test's ONNX model, fitted and exported once with the new tree (cached in --tmp)."""
    onnx = Path(a.tmp) / "tile-ppc.onnx"
    if not onnx.exists():
        code = ("import sys; from pathlib import Path; from benchmarks.load_bench import fit_model; "
                "from lineguard import Inspector; from lineguard.runtime.onnx_export import export_onnx; "
                f"fit_model(Path(sys.argv[1]) / 'tile-ppc.lgm', {a.n_good}, 224); "
                "export_onnx(Inspector.load(Path(sys.argv[1]) / 'tile-ppc.lgm'), Path(sys.argv[1]) / 'tile-ppc.tmp.onnx')")
        env = {**os.environ, "PYTHONPATH": f"{a.new}{os.pathsep}{ROOT}"}
        subprocess.run([sys.executable, "-c", code, a.tmp], env=env, cwd=ROOT, check=True)
        os.replace(Path(a.tmp) / "tile-ppc.tmp.onnx", onnx)
    return onnx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, help="the old tree's src folder (required but with --child)")
    ap.add_argument("--new", type=Path, default=ROOT / "src", help="the new tree's src folder (default: this checkout's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=KINDS, default=KINDS)
    ap.add_argument("--parts", type=int, default=20_000, help="after_part: parts counted")
    ap.add_argument("--shift-parts", type=int, default=40_000, help="verification: parts in the shift")
    ap.add_argument("--repeat", type=int, default=20, help="verification and metrics: calls timed per run")
    ap.add_argument("--requests", type=int, default=80, help="load: parts posted per client count")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--n-good", type=int, default=30, help="load: good tiles the model is fitted on")
    ap.add_argument("--model", default=None, help="load: the .onnx (or .lgm) model to serve (default: fitted once)")
    ap.add_argument("--tmp", default=None, help="a folder for the databases and the model (default: a new temp folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "part-path-check.json")
    ap.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a)
        return
    if a.src is None or not (a.src / "lineguard").is_dir():
        ap.error("--src must be an old tree's src folder holding lineguard/ "
                 "(git archive COMMIT src | tar -x -C DIR, then --src DIR/src)")
    a.src, a.new = a.src.resolve(), a.new.resolve()
    a.tmp = a.tmp or tempfile.mkdtemp(prefix="lg-ppc-")
    if "load" in a.only and not a.model:
        a.model = _fit_model(a)
    results: dict = {}
    for kind in a.only:
        runs: dict[str, list] = {"old": [], "new": []}
        for rnd in range(a.rounds):
            order = [("old", a.src), ("new", a.new)] if rnd % 2 == 0 else [("new", a.new), ("old", a.src)]
            for name, src in order:
                r = _run_child(src, kind, a)
                runs[name].append(r)
                print(f"{kind:24s} round {rnd + 1} {name}: {_numbers(kind, r)}", flush=True)
        med = {name: {k: round(statistics.median(_numbers(kind, r)[k] for r in rs), 2)
                      for k in _numbers(kind, rs[0])} for name, rs in runs.items()}
        change = {k: round(100 * (med["new"][k] - med["old"][k]) / med["old"][k], 1) if med["old"][k] else None
                  for k in med["old"]}
        results[kind] = {"median": med, "change_pct": change, "runs": runs}
        print(f"{kind:24s} median old {med['old']}\n{'':24s} median new {med['new']}\n{'':24s} change % {change}",
              flush=True)
    out = {"benchmark": "part_path_check", "old": str(a.src), "new": str(a.new), "rounds": a.rounds,
           "parts": a.parts, "shift_parts": a.shift_parts, "repeat": a.repeat, "requests": a.requests,
           "clients": a.clients, "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
           "platform": platform.platform(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp_out, a.out)
    print(f"saved {a.out}")


if __name__ == "__main__":
    main()
