"""`make demo`: a whole (synthetic) line in a few minutes, on embedded defaults.

1. generates a synthetic electrode-coating product (good parts, six defect kinds),
2. learns the part from good images only,
3. evaluates it on held-back good and defective parts and writes a report,
4. exports it to ONNX (what a line PC without torch runs),
5. starts a station service with the exported model and feeds it the test parts as a
   line, then prints verdicts, false rejects and escapes as the plant would see them.

    python -m lineguard.demo [--dir demo-line] [--serve]
    lineguard demo [--dir demo-line]          (the same, with the station left running)

With --serve (always with `lineguard demo`) the station keeps running, Ctrl-C to stop: the
operator app at http://127.0.0.1:8765/app/ (an admin key to sign in with is printed) and
the API docs at /docs, while the test parts keep coming so the line view moves.
"""
from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

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
    ap.add_argument("--feed-every", type=float, default=2.0,
                    help="with --serve: send the next test part every this many seconds (0: stop feeding)")
    a = ap.parse_args()
    run_demo(a.dir, a.port, a.serve, a.feed_every, reuse=a.serve)   # --serve after `make demo`: its model again


def run_demo(root: Path, port: int = 8765, keep: bool = False, feed_every: float = 2.0,
             reuse: bool = False) -> None:
    """The whole demo; with ``keep`` the station and its app stay up until Ctrl-C; with
    ``reuse`` a model already made in ``root`` is used again (a second run starts in seconds)."""
    data = root / "data" / "cell"
    model = root / "cell.lgm"
    report = root / "report"
    edge_model = root / "cell.onnx"
    if reuse and edge_model.exists() and (data / "test").exists():
        rule("1-4. the demo line's product and model are already made")
        say(f"using {edge_model} (delete {root} to start over)")
        rule("5. a station on the line, running the exported model")
        run_station(root, edge_model, data, port, keep, feed_every)
        return

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
    say(_run(["export", str(model), "--format", "onnx", "-o", str(edge_model)]).strip())

    rule("5. a station on the line, running the exported model")
    run_station(root, edge_model, data, port, keep, feed_every)


def run_station(root: Path, model: Path, data: Path, port: int, keep: bool, feed_every: float = 2.0) -> None:
    import httpx

    station = root / "station"
    port = _free_port(port)
    key = _run(["keys", "create", "--data", str(station), "--role", "operator", "--name", "demo-line",
                "--new"]).strip()
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
        _name_defect_kinds(station, base, data)
        parts = sorted((p for p in (data / "test").glob("*/*.png")), key=lambda p: p.name + p.parent.name)
        counts = {"OK": 0, "NG": 0, "REVIEW": 0, "false_rejects": 0, "escapes": 0}
        lat = []
        known: dict[str, Path] = {}     # a defect it rejected, a good part it passed: the test parts below
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
            for i, p in enumerate(parts):
                t = time.perf_counter()
                r = _send(c, p, f"cell-{i:04d}-{p.parent.name}")
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                v = r.json()["verdict"]
                counts[v] += 1
                truth_good = p.parent.name == "good"
                counts["false_rejects"] += truth_good and v == "NG"
                counts["escapes"] += (not truth_good) and v == "OK"
                if (truth_good, v) in ((False, "NG"), (True, "OK")):
                    known.setdefault(v, p)
        lat.sort()
        say(f"{len(parts)} parts through station S1 on line L1: {counts['OK']} OK, {counts['NG']} NG; "
            f"{counts['false_rejects']} false reject(s), {counts['escapes']} escape(s); "
            f"median round trip {lat[len(lat) // 2]:.0f} ms")
        if len(known) == 2:
            _verify_shift(station, base, key, known)
        say(f"every inspection is stored under {station}; API docs: {base}/docs; "
            f"report: {root / 'report' / 'index.html'}")
        if not keep:    # the station stops with the demo: say how to see its operator app
            say(f"to look at the line in the operator app, run it again with the station left up: "
                f"`{sys.executable} -m lineguard.demo --dir {root} --serve` (or `lineguard demo`), then open "
                "the address it prints (the model made here is used again: it starts in seconds)")
        if keep:
            admin = _run(["keys", "create", "--data", str(station), "--role", "admin", "--name", "demo-admin"])
            admin = admin.strip().split()[-1]
            rule("6. the operator app")
            say(f"open {base}/app/ and sign in with the API key {admin} (admin: every page)\n"
                f"the feeder's operator key is {key}; API docs at {base}/docs. Ctrl-C stops the station.")
            stop = _ctrl_c_event()
            if feed_every > 0:
                say(f"a part every {feed_every:g} s keeps the line view moving")
                _keep_feeding(base, key, parts, feed_every, srv, stop)
            while srv.poll() is None and not stop.wait(0.5):
                pass
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


def _name_defect_kinds(station: Path, base: str, data: Path) -> None:
    """Reviewers pick a defect's type from the product's list: the demo product's own
    kinds (as an engineer sets a real product's), not the generic default list."""
    import httpx
    kinds = sorted(p.name for p in (data / "test").iterdir() if p.is_dir() and p.name != "good")
    engineer = _run(["keys", "create", "--data", str(station), "--role", "engineer", "--name", "demo-engineer"])
    r = httpx.put(f"{base}/api/v1/products/cell/defect-types", json={"defect_types": kinds},
                  headers={"X-API-Key": engineer.strip().split()[-1]}, timeout=30)
    r.raise_for_status()
    say(f"reviewers type a confirmed defect as one of the product's kinds: {', '.join(kinds)}")


def _send(c, path: Path, part_id: str, serial: Optional[str] = None):
    form = {"part_id": part_id, "line": "L1", "station": "S1", "product": "cell"}
    if serial:
        form["serial"] = serial
    return c.post("/api/v1/inspections", files={"image": (path.name, path.read_bytes(), "image/png")}, data=form)


def _verify_shift(station: Path, base: str, key: str, known: dict[str, Path]) -> None:
    """The start-of-shift check (line.test_parts): a defect the station rejected becomes
    the red rabbit RR-01, a good part it passed GOOD-01; both go through the line again,
    and the line's verification for this shift is read back."""
    import httpx
    engineer = _run(["keys", "create", "--data", str(station), "--role", "engineer", "--name", "demo-engineer"])
    engineer = engineer.strip().split()[-1]
    with httpx.Client(base_url=base, headers={"X-API-Key": engineer}, timeout=30) as c:
        for name, verdict, what in (("RR-01", "NG", "a defect"), ("GOOD-01", "OK", "a good part")):
            c.post("/api/v1/products/cell/test-parts", json={
                "name": name, "expect": verdict,
                "description": f"{what} from the demo line ({known[verdict].parent.name}/{known[verdict].name})"},
            ).raise_for_status()
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
        for name, verdict in (("RR-01", "NG"), ("GOOD-01", "OK")):
            _send(c, known[verdict], f"check-{name}", serial=name).raise_for_status()
        (v,) = c.get("/api/v1/verification", params={"line": "L1"}).json()["lines"]
    got = ", ".join(f"{t['name']} {t['verdict']} (must be {t['expect']})" for t in v["test_parts"])
    say(f"test parts this shift on line L1: {v['state']}: {got}")


def _ctrl_c_event() -> threading.Event:
    """An event Ctrl-C sets, instead of KeyboardInterrupt raised wherever the main thread
    happens to be: raised inside the HTTP client's connection pool it can leave the pool
    in a state its close() waits on (one CI run saw the demo not stop within 30 s of
    Ctrl-C while it fed parts). The loops below check the event between parts."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # a service manager (systemd, docker stop) asks with SIGTERM: without this the demo died
    # and left its station running on the port
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _keep_feeding(base: str, key: str, parts: list, every: float, srv: subprocess.Popen,
                  stop: threading.Event) -> None:
    """Send the test parts again, round after round, under new part ids, until Ctrl-C
    (``stop``) or the station ends."""
    import httpx
    n = 0
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
        while srv.poll() is None and not stop.is_set():
            p = parts[n % len(parts)]
            try:
                _send(c, p, f"cell-r{n // len(parts) + 1}-{n % len(parts):04d}-{p.parent.name}")
            except httpx.HTTPError:
                pass   # the station is stopping, or busy: the next part tries again
            n += 1
            stop.wait(every)


if __name__ == "__main__":
    main()
