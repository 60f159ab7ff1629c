"""Peak resident memory of the station while four maximum-size uploads arrive at once.

    python -m benchmarks.upload_memory_bench [--model cell.onnx --product cell] [--clients 4]
                                             [--max-megapixels 26]

Each client sends a part at the station's pixel budget (a smooth PNG, small on the wire
but the full budget once decoded: the shape of the issue's 190 kB / 64 MP upload) and
one far over it. The station runs as its own process (`python -m lineguard.server`, or
the torch-free fake model of the tests when no --model is given); its peak resident
memory is read from the kernel (/proc/PID/status VmHWM), so nothing is sampled and
missed. Target (issue #11): under 1 GB. Prints one line per run and writes
benchmarks/results/upload-memory-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _part_png(pixels: int, seed: int) -> bytes:
    from PIL import Image
    side = int(pixels ** 0.5)
    rng = np.random.default_rng(seed)
    row = np.linspace(0, 255, side, dtype=np.float32) * rng.uniform(0.2, 1.0)
    gray = np.broadcast_to(row.astype(np.uint8), (side, side))   # compresses to a few hundred kB
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(gray)).convert("RGB").save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a .lgm or .onnx model (default: the tests' fake model)")
    ap.add_argument("--product", default="cell")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--max-megapixels", type=float, default=26.0)
    a = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lg-upmem-"))
    data = tmp / "data"
    port = _free_port()
    sys.path.insert(0, str(ROOT / "tests" / "server"))
    from conftest import fake_model_bytes, make_keys   # noqa: E402 - the tests' helpers
    keys = make_keys(data)
    if a.model:
        cmd = [sys.executable, "-m", "lineguard.server", "--model", a.model, "--product", a.product]
    else:
        cmd = [sys.executable, str(ROOT / "tests" / "server" / "fake_inspector.py"), "--max-upload-mb", "32"]
    cmd += ["--data", str(data), "--port", str(port), "--max-megapixels", str(a.max_megapixels)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        if not a.model:
            httpx.post(url + "/api/v1/models", headers={"X-API-Key": keys["engineer"]},
                       files={"file": ("cell.lgm", fake_model_bytes())},
                       data={"product": a.product, "activate": "true"}, timeout=60).raise_for_status()
        budget = int(a.max_megapixels * 1e6)
        at_budget = [_part_png(budget - 1000, seed=i) for i in range(a.clients)]
        over = _part_png(64_000_000, seed=99)   # the 64 MP part: refused from its header
        idle_kb = _kb(proc.pid, "VmRSS")
        answers: list[int] = []
        times: list[float] = []

        def send(i: int, body: bytes) -> None:
            t0 = time.perf_counter()
            r = httpx.post(url + "/api/v1/inspections", headers={"X-API-Key": keys["operator"]},
                           files={"image": ("p.png", body, "image/png")},
                           data={"part_id": f"big-{i}-{len(body)}", "line": "L1", "station": "S1",
                                 "product": a.product}, timeout=300)
            answers.append(r.status_code)
            times.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=send, args=(i, b)) for i, b in enumerate(at_budget)]
        threads += [threading.Thread(target=send, args=(100 + i, over)) for i in range(a.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        time.sleep(1.0)
        result = {"clients": a.clients, "max_megapixels": a.max_megapixels, "model": a.model or "fake",
                  "upload_kb_at_budget": round(len(at_budget[0]) / 1024), "upload_kb_64mp": round(len(over) / 1024),
                  "answers": sorted(answers), "wall_s": round(wall, 2), "slowest_s": round(max(times), 2),
                  "idle_rss_mb": round(idle_kb / 1024), "peak_rss_mb": round(_kb(proc.pid, "VmHWM") / 1024),
                  "rss_after_mb": round(_kb(proc.pid, "VmRSS") / 1024)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = ROOT / "benchmarks" / "results" / f"upload-memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{a.clients} parts at {a.max_megapixels:g} MP ({result['upload_kb_at_budget']} kB each) + {a.clients} "
          f"at 64 MP at once: answers {result['answers']}, peak RSS {result['peak_rss_mb']} MB "
          f"(idle {result['idle_rss_mb']}, after {result['rss_after_mb']}), {result['wall_s']} s")
    return result


if __name__ == "__main__":
    main()
