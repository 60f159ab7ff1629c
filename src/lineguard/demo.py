"""`make demo`: a whole (synthetic) line in a few minutes, on embedded defaults.

1. generates a synthetic electrode-coating product (good parts, six defect kinds),
2. learns the part from good images only,
3. evaluates it on held-back good and defective parts and writes a report,
4. exports it to ONNX (what a line PC without torch runs),
5. starts a station service with the exported model and feeds it the test parts as a
   line, then prints verdicts, false rejects and escapes as the plant would see them.

    python -m lineguard.demo [--dir demo-line] [--serve]

With --serve the station keeps running (Ctrl-C to stop) so its API can be explored at
http://127.0.0.1:8765/docs.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

from .cli._term import rule, say


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _run(args: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "lineguard", *args], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        say(proc.stdout + proc.stderr)
        raise SystemExit(f"demo step failed: lineguard {' '.join(args)}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="demo-line", type=Path)
    ap.add_argument("--serve", action="store_true", help="keep the station running after the demo line")
    ap.add_argument("--port", type=int, default=8765)
    a = ap.parse_args()
    root: Path = a.dir
    data = root / "data" / "cell"
    model = root / "cell.lgm"
    report = root / "report"

    rule("1. a synthetic product line")
    if not (data / "train").exists():
        _run(["synth", str(data), "--n-good", "120", "--n-defect", "36", "--n-test-good", "30",
              "--size", "256", "--seed", "7"])
    say(f"parts in {data} (train/good, test/good, test/<defect>, ground_truth)")

    rule("2. learn the part from good images only")
    t = time.perf_counter()
    say(_run(["train", str(data / "train" / "good"), "-o", str(model), "--image-size", "224",
              "--version", "demo-1"]).strip())
    say(f"trained in {time.perf_counter() - t:.1f} s")

    rule("3. how well does it judge held-back parts?")
    say(_run(["eval", str(data), "--model", str(model), "-o", str(report)]).rstrip())

    rule("4. export it for the line PC (ONNX: no torch needed there)")
    edge_model = root / "cell.onnx"
    say(_run(["export", str(model), "--format", "onnx", "-o", str(edge_model)]).strip())

    rule("5. a station on the line, running the exported model")
    run_station(root, edge_model, data, a.port, a.serve)


def run_station(root: Path, model: Path, data: Path, port: int, keep: bool) -> None:
    import httpx

    station = root / "station"
    port = _free_port(port)
    key = _run(["keys", "create", "--data", str(station), "--role", "operator", "--name", "demo-line"]).strip()
    key = key.split()[-1]
    log = open(root / "station.log", "w")
    srv = subprocess.Popen([sys.executable, "-m", "lineguard", "serve", "--data", str(station), "--model", str(model),
                            "--product", "cell", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if srv.poll() is not None:
                raise SystemExit(f"station did not start; see {root / 'station.log'}")
            time.sleep(0.5)
        parts = sorted((p for p in (data / "test").glob("*/*.png")), key=lambda p: p.name + p.parent.name)
        counts = {"OK": 0, "NG": 0, "false_rejects": 0, "escapes": 0}
        lat = []
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
            for i, p in enumerate(parts):
                t = time.perf_counter()
                r = c.post("/api/v1/inspections", files={"image": (p.name, p.read_bytes(), "image/png")},
                           data={"part_id": f"cell-{i:04d}-{p.parent.name}", "line": "L1", "station": "S1",
                                 "product": "cell"})
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                v = r.json()["verdict"]
                counts[v] += 1
                truth_good = p.parent.name == "good"
                counts["false_rejects"] += truth_good and v == "NG"
                counts["escapes"] += (not truth_good) and v == "OK"
        lat.sort()
        say(f"{len(parts)} parts through station S1 on line L1: {counts['OK']} OK, {counts['NG']} NG; "
            f"{counts['false_rejects']} false reject(s), {counts['escapes']} escape(s); "
            f"median round trip {lat[len(lat) // 2]:.0f} ms")
        say(f"every inspection is stored under {station}; API docs: {base}/docs; "
            f"report: {root / 'report' / 'index.html'}")
        if keep:
            # reads need a key too (the station's default): the operator key opens /docs
            # ("Authorize") and signs in to the pages
            say(f"station running at {base}; sign in with the operator key {key}; Ctrl-C to stop")
            srv.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if srv.poll() is None:
            srv.terminate()
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                srv.kill()
        log.close()


if __name__ == "__main__":
    main()
