"""Load test of the station service on loopback: parts/s, latency, overhead outside the model.

    python -m benchmarks.load_bench [--clients 1 4] [--requests 120] [--backends sqlite postgresql]
                                    [--onnx] [--max-batch 16]

``--onnx`` serves the model exported to ONNX; ``--max-batch 1`` turns off the station's
batching of waiting parts (compare the two for what batching buys).

Fits (once, cached) a 224-px PatchCore model on good magnetic-tile images, starts the
station (`python -m lineguard.server`) per database backend, and has N concurrent
clients post real test images (multipart, as a line would). "Overhead" is what the
service adds around the model: request latency minus the time inside the model and
minus the time a part waited for the model while another part was being judged.
Results go to benchmarks/results/load-<backend>-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/datasets/magnetic_tile")
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fit_model(path: Path, n_good: int, image_size: int) -> None:
    from lineguard import Inspector
    good = sorted((DATA / "train" / "good").glob("*.png"))[:n_good]
    t0 = time.perf_counter()
    insp = Inspector.fit([str(p) for p in good], detector="patchcore", image_size=image_size, seed=0)
    insp.save(path)
    print(f"model: fitted on {len(good)} good tiles at {image_size}px in {time.perf_counter() - t0:.1f}s")


def start_server(data: Path, model: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "lineguard.server", "--data", str(data), "--port", str(port),
           "--model", str(model), "--product", "tile"] + extra
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(data.parent / "server.log", "ab"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(data.parent / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def make_key(data: Path, db: str | None, schema: str | None) -> str:
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    data.mkdir(parents=True, exist_ok=True)
    d = Database(StationConfig(data_dir=data, db_url=db).database_url, schema=schema)
    d.upgrade()
    with d.session() as s:
        key = create_key(s, "operator", "bench")[1]
    d.dispose()
    return key


def run_load(url: str, key: str, images: list[bytes], clients: int, requests: int, tag: str) -> dict:
    lat, model, queue, batch, errors = [], [], [], [], []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as c:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                data = images[i % len(images)]
                t0 = time.perf_counter()
                r = c.post("/api/v1/inspections", files={"image": ("p.png", data, "image/png")},
                           data={"part_id": f"{tag}-{i}", "line": "L1", "station": "S1", "product": "tile"})
                dt_ms = (time.perf_counter() - t0) * 1e3
                if r.status_code != 201:
                    errors.append(r.status_code)
                    continue
                tm = r.json()["timings_ms"]
                with lock:
                    lat.append(dt_ms)
                    model.append(tm["station_model"])
                    queue.append(tm.get("station_queue", 0.0))
                    batch.append(tm.get("station_batch", 1))

    # warm-up: first inspection loads and initialises the model
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as c:
        for i in range(3):
            c.post("/api/v1/inspections", files={"image": ("p.png", images[i], "image/png")},
                   data={"part_id": f"{tag}-warm-{i}", "line": "L0", "station": "S0", "product": "tile"})
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat_a, model_a, queue_a = np.array(lat), np.array(model), np.array(queue)
    overhead = lat_a - model_a - queue_a
    p50_model = float(np.percentile(model_a, 50))
    return {
        "clients": clients, "requests": len(lat), "errors": len(errors), "wall_s": round(wall, 2),
        "parts_per_s": round(len(lat) / wall, 2),
        "latency_ms": {f"p{q}": round(float(np.percentile(lat_a, q)), 1) for q in (50, 95, 99)},
        "model_ms": {f"p{q}": round(float(np.percentile(model_a, q)), 1) for q in (50, 95, 99)},
        "queue_wait_ms_p50": round(float(np.percentile(queue_a, 50)), 1),
        "overhead_ms": {f"p{q}": round(float(np.percentile(overhead, q)), 1) for q in (50, 95, 99)},
        "overhead_vs_model_p50": round(float(np.percentile(overhead, 50)) / p50_model, 3),
        "share_outside_model": round(float(1 - model_a.sum() / lat_a.sum()), 3),
        "batch_mean": round(float(np.mean(batch)), 2), "batch_max": int(np.max(batch)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--requests", type=int, default=120)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--n-good", type=int, default=60)
    ap.add_argument("--model", type=Path, default=None, help="use this .lgm instead of fitting one")
    ap.add_argument("--onnx", action="store_true", help="serve the model exported to ONNX (the edge runtime)")
    ap.add_argument("--max-batch", type=int, default=16,
                    help="station --max-batch: parts judged together when several wait (1: one at a time)")
    ap.add_argument("--sqlite-synchronous", default="NORMAL", choices=["NORMAL", "FULL"],
                    help="NORMAL (the station default) survives kill -9; FULL survives power loss too")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lg-load-"))
    model = a.model or work / "tile.lgm"
    if a.model is None:
        fit_model(model, a.n_good, a.image_size)
    if a.onnx:
        from lineguard import Inspector
        from lineguard.runtime.onnx_export import export_onnx
        onnx_model = work / "tile.onnx"
        export_onnx(Inspector.load(model), onnx_model)
        model = onnx_model
    images = [p.read_bytes() for p in sorted((DATA / "test").glob("*/*.png"))]
    sizes = [len(b) for b in images]
    print(f"images: {len(images)} magnetic-tile test parts, {np.mean(sizes) / 1e3:.0f} kB mean PNG")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for backend in a.backends:
        data = work / backend / "data"
        db = schema = None
        extra: list[str] = ["--sqlite-synchronous", a.sqlite_synchronous] if backend == "sqlite" else []
        if backend == "postgresql":
            db, schema = PG_URL, f"lg_bench_{uuid.uuid4().hex[:8]}"
            extra = ["--db", db, "--db-schema", schema]
        extra += ["--max-batch", str(a.max_batch)]
        key = make_key(data, db, schema)
        proc, url = start_server(data, model, extra)
        runs = []
        try:
            for n in a.clients:
                r = run_load(url, key, images, n, a.requests, tag=f"{backend}-{n}")
                runs.append(r)
                print(f"{backend:10s} clients={n}: {r['parts_per_s']:.1f} parts/s  latency p50/p95/p99 "
                      f"{r['latency_ms']['p50']}/{r['latency_ms']['p95']}/{r['latency_ms']['p99']} ms  "
                      f"model p50 {r['model_ms']['p50']} ms  overhead p50 {r['overhead_ms']['p50']} ms "
                      f"({100 * r['overhead_vs_model_p50']:.1f}% of model)  queue p50 {r['queue_wait_ms_p50']} ms  "
                      f"batch mean {r['batch_mean']}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            if schema:
                from lineguard.line.db import Database
                d = Database(db, schema=schema)
                d.drop_schema()
                d.dispose()
        result = {"benchmark": "load", "backend": backend, "image_size": a.image_size, "detector": "patchcore",
                  "runtime": "onnxruntime" if a.onnx else "torch", "max_batch": a.max_batch,
                  "sqlite_synchronous": a.sqlite_synchronous if backend == "sqlite" else None,
                  "load_average_1m": round(os.getloadavg()[0], 2),
                  "n_images": len(images), "mean_png_kb": round(float(np.mean(sizes)) / 1e3, 1),
                  "cpu_count": os.cpu_count(), "platform": platform.platform(),
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": runs}
        tag = backend + ("-full" if backend == "sqlite" and a.sqlite_synchronous == "FULL" else "")
        tag += ("-onnx" if a.onnx else "") + (f"-b{a.max_batch}" if a.max_batch != 16 else "")
        path = out_dir / f"load-{tag}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
