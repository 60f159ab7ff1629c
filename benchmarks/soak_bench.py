"""Soak of one station: does its memory keep growing while it judges parts for minutes?

    python -m benchmarks.soak_bench [--minutes 7] [--clients 3] [--src PATH] [--label NAME]
                                    [--port 0] [--model M.lgm] [--data DIR]

A real station (`python -m lineguard.server`, SQLite, the fast profile's model fitted once
on ``--n-good`` good magnetic-tile photos and cached in benchmarks/.cache/) is fed for
``--minutes`` by ``--clients`` closed-loop clients posting the real test photos (each
posts its next part as soon as the last is answered), while a reviewer judges the newest
part every 2 s, a poller reads /api/v1/inspections, /health and /metrics every 3 s, and
``--listeners`` clients hold the live event stream (/api/v1/events) open: the traffic of
a line with a review screen and a dashboard.

Every 30 s the station process's resident memory (VmRSS) and its anonymous memory
(/proc/PID/smaps_rollup "Anonymous": the heap and malloc arenas, without the mapped
libraries and model files) are read. Reported: parts, parts/s, RSS and Anonymous at the
start (after three warm-up parts), at 60 s and at the end, the growth in MB per 1000
parts (least-squares line through the samples from 60 s on: the first minute is the
station filling its caches and thread pool, not a leak), and POST latency p50/p95/p99.

At the end, with the load stopped, the station does one malloc_trim(0) in its own
process and its cost (ms) and effect (MB given back) are reported: what glibc was
holding as freed-but-kept memory at that moment. The station gets no endpoint for it:
it is started through a few lines (``_BOOT`` below) that add a SIGUSR2 handler doing the
trim and then run `python -m lineguard.server` unchanged. That handler also names the
lineguard package the station really imported and whether its memory keeper thread
(``lg-memory``) runs, so a run says which code it measured.

``--src PATH`` runs the station from another source tree (its PYTHONPATH), so two
versions can be compared on the same machine, e.g. the commit before the memory keeper:

    git archive b1db191~1 src | tar -x -C OLD && python -m benchmarks.soak_bench --src OLD/src --label before

The model is fitted by this tree's code and loaded by the other; the API key is made by
the other tree's own CLI, so its database is its own.

Results go to benchmarks/results/soak-<label>-<timestamp>.json. Parts/s and latency
depend on what else the machine runs: the load average at start and end is recorded,
and only runs at a similar load compare; the memory growth per part does not depend on
the rate.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
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
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
DATA = Path("/work/shared/datasets/magnetic_tile")
SAMPLE_EVERY_S = 30.0
FIT_FROM_S = 60.0

# Runs the station unchanged, with one addition: SIGUSR2 makes it do a timed
# malloc_trim(0) in its own process and write what it did to $SOAK_TRIM_OUT. Python runs
# the handler on the main thread (uvicorn's event loop) between two bytecodes, so it
# trims while nothing of ours is half done; the trim takes each arena's lock in turn,
# as the station's own memory keeper does.
_BOOT = r"""
import ctypes, json, os, runpy, signal, sys, threading, time
_libc = ctypes.CDLL("libc.so.6")
def _trim(signum, frame):
    t0 = time.perf_counter()
    released = _libc.malloc_trim(0)
    ms = (time.perf_counter() - t0) * 1e3
    out = os.environ["SOAK_TRIM_OUT"]
    info = {"ms": ms, "released": bool(released), "lineguard": sys.modules["lineguard"].__file__,
            "threads": sorted(t.name for t in threading.enumerate())}
    with open(out + ".tmp", "w") as f:
        json.dump(info, f)
    os.replace(out + ".tmp", out)
signal.signal(signal.SIGUSR2, _trim)
sys.argv = ["python -m lineguard.server"] + sys.argv[1:]
runpy.run_module("lineguard.server", run_name="__main__", alter_sys=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid: int) -> dict:
    """Resident and anonymous memory of a process, in MB, and its thread count."""
    rss = anon = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            anon = int(line.split()[1]) / 1024
    return {"rss_mb": round(rss, 1), "anon_mb": round(anon, 1), "threads": len(os.listdir(f"/proc/{pid}/task"))}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (tells a slow machine from a slow station)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cached_model(data: Path, n_good: int) -> Path:
    """The fast profile's model of ``n_good`` good tiles, fitted once and kept (a fit takes ~30 s)."""
    path = CACHE / f"soak-{data.name}-fast-{n_good}.lgm"
    if path.exists():
        return path
    from lineguard import Inspector
    from lineguard.vision.profiles import profile_settings
    good = sorted((data / "train" / "good").glob("*.png"))[:n_good]
    if not good:
        raise SystemExit(f"no good photos in {data / 'train' / 'good'}; give --data a folder in MVTec AD layout")
    t0 = time.perf_counter()
    insp = Inspector.fit([str(p) for p in good], seed=0, **profile_settings("fast"))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.lgm")
    insp.save(tmp)
    os.replace(tmp, path)     # a fit cut short leaves no half-written model for the next run
    print(f"model: fitted on {len(good)} good tiles in {time.perf_counter() - t0:.0f} s -> {path.relative_to(ROOT)}")
    return path


def source_of(src: Path) -> dict:
    """Which code the station runs: the tree, and its commit when it is a git checkout."""
    info: dict = {"src": str(src)}
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
        info.update(commit=head, uncommitted_changes=bool(dirty))
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = None     # an extracted tree (git archive) has no history
    return info


class Station:
    """The station under test as its own process, run from the source tree ``src``."""

    def __init__(self, work: Path, src: Path, model: Path, port: int):
        self.work, self.data = work, work / "data"
        self.trim_out = work / "trim.json"
        self.env = dict(os.environ, PYTHONPATH=str(src), SOAK_TRIM_OUT=str(self.trim_out))
        # the tree under test makes its own database and key: another version may migrate differently
        made = subprocess.run([sys.executable, "-m", "lineguard", "keys", "create", "--new", "--data",
                               str(self.data), "--role", "operator", "--name", "soak"], env=self.env,
                              cwd=work, capture_output=True, text=True)
        if made.returncode != 0:
            raise SystemExit(f"could not make an API key with {src}: {made.stderr.strip()[-1000:]}")
        self.key = made.stdout.split()[-1]
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "station.log"
        # cwd is the work folder, so `python -c` puts no other lineguard before the tree under test
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, "--data", str(self.data), "--port", str(self.port),
                                      "--model", str(model), "--product", "tile"], env=self.env, cwd=work,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        self.pid = self.proc.pid
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit(f"the station did not answer /health in 300 s; see {self.log}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"the station exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")

    def trim(self, timeout_s: float = 30.0) -> dict:
        """One malloc_trim(0) inside the station (SIGUSR2, see _BOOT): its cost and the memory it gave back."""
        self.trim_out.unlink(missing_ok=True)
        before = memory_mb(self.pid)
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout_s
        while not self.trim_out.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the station did not answer SIGUSR2 with a trim")
            time.sleep(0.05)
        info = json.loads(self.trim_out.read_text())
        time.sleep(0.5)     # the kernel's counters follow the unmapping; read them once it has settled
        after = memory_mb(self.pid)
        return {"ms": round(info["ms"], 2), "glibc_released": info["released"],
                "rss_mb_before": before["rss_mb"], "rss_mb_after": after["rss_mb"],
                "anon_mb_before": before["anon_mb"], "anon_mb_after": after["anon_mb"],
                "rss_mb_given_back": round(before["rss_mb"] - after["rss_mb"], 1),
                "anon_mb_given_back": round(before["anon_mb"] - after["anon_mb"], 1),
                "station_lineguard": info["lineguard"],
                "memory_keeper_running": "lg-memory" in info["threads"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Line:
    """The traffic: posting clients, a reviewer, a poller and live-event listeners, on threads."""

    def __init__(self, station: Station, images: list[bytes], clients: int, listeners: int, seed: int):
        self.url, self.headers = station.url, {"X-API-Key": station.key}
        self.images, self.rng = images, random.Random(seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.latency: list[tuple[float, float]] = []     # (answered at, seconds)
        self.ids: list[int] = []
        self.errors: dict[str, int] = {}
        self.reviews = self.polls = self.events = 0
        self.next_part = 0
        self.threads = [threading.Thread(target=self.poster, daemon=True) for _ in range(clients)]
        self.threads += [threading.Thread(target=self.reviewer, daemon=True),
                         threading.Thread(target=self.poller, daemon=True)]
        self.threads += [threading.Thread(target=self.listener, daemon=True) for _ in range(listeners)]

    def _error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def post(self, client: httpx.Client, part_id: str, image: bytes) -> httpx.Response:
        return client.post("/api/v1/inspections", files={"image": ("part.png", image, "image/png")},
                           data={"part_id": part_id, "line": "L1", "station": "S1", "product": "tile"})

    def poster(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as c:
            while not self.stop.is_set():
                with self.lock:
                    n = self.next_part
                    self.next_part += 1
                t0 = time.perf_counter()
                try:
                    r = self.post(c, f"SOAK-{n:07d}", self.images[n % len(self.images)])
                except httpx.HTTPError as e:
                    self._error(f"post {type(e).__name__}")
                    time.sleep(1)       # a station that is down is not hammered
                    continue
                dt = time.perf_counter() - t0
                if r.status_code != 201:
                    self._error(f"post {r.status_code}")
                    continue
                with self.lock:
                    self.latency.append((time.monotonic(), dt))
                    self.ids.append(r.json()["id"])

    def reviewer(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as c:
            while not self.stop.wait(2.0):
                with self.lock:
                    newest = self.ids[-1] if self.ids else None
                if newest is None:
                    continue
                try:
                    r = c.post(f"/api/v1/inspections/{newest}/review",
                               json={"label": self.rng.choice(["good", "defect"])})
                    if r.status_code == 200:
                        self.reviews += 1
                    else:
                        self._error(f"review {r.status_code}")
                except httpx.HTTPError as e:
                    self._error(f"review {type(e).__name__}")

    def poller(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as c:
            while not self.stop.wait(3.0):
                try:
                    for path, params in (("/api/v1/inspections", {"limit": 50}), ("/health", None), ("/metrics", None)):
                        r = c.get(path, params=params)
                        if r.status_code != 200:
                            self._error(f"GET {path} {r.status_code}")
                    self.polls += 1
                except httpx.HTTPError as e:
                    self._error(f"poll {type(e).__name__}")

    def listener(self) -> None:
        while not self.stop.is_set():
            try:
                with httpx.stream("GET", self.url + "/api/v1/events", headers=self.headers,
                                  timeout=httpx.Timeout(10, read=None)) as r:
                    for line in r.iter_lines():
                        if line.startswith("event:"):
                            with self.lock:
                                self.events += 1
                        if self.stop.is_set():
                            return
            except httpx.HTTPError as e:
                if not self.stop.is_set():
                    self._error(f"events {type(e).__name__}")
                    time.sleep(1)

    def warm_up(self, n: int = 3) -> None:
        """The first parts load and initialise the model: kept out of the latency and the start sample."""
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=300) as c:
            for i in range(n):
                r = self.post(c, f"WARM-{i}", self.images[i])
                if r.status_code != 201:
                    raise SystemExit(f"warm-up part refused: {r.status_code} {r.text[:300]}")

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=70)     # a post in flight is answered within the client's 60 s timeout


def slope_per_1000(samples: list[dict], key: str) -> float | None:
    """MB per 1000 parts: least-squares line through the samples from FIT_FROM_S on."""
    pts = [(s["parts"], s[key]) for s in samples if s["t_s"] >= FIT_FROM_S]
    if len(pts) < 3 or pts[-1][0] == pts[0][0]:
        return None
    parts, mb = np.array(pts, dtype=float).T
    return round(float(np.polyfit(parts, mb, 1)[0]) * 1000, 2)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=7.0, help="how long the line runs (default 7)")
    ap.add_argument("--clients", type=int, default=3, help="closed-loop posting clients (default 3)")
    ap.add_argument("--listeners", type=int, default=1, help="clients holding /api/v1/events open (default 1)")
    ap.add_argument("--src", type=Path, default=ROOT / "src",
                    help="source tree the station runs from (its PYTHONPATH; default this checkout's src)")
    ap.add_argument("--label", default=None, help="names the result file (default: 'current', or the folder "
                    "holding --src, e.g. 'before' for OLD/before/src)")
    ap.add_argument("--port", type=int, default=0, help="station port (default: a free one)")
    ap.add_argument("--data", type=Path, default=DATA, help="dataset in MVTec AD layout (default magnetic_tile)")
    ap.add_argument("--n-good", type=int, default=40, help="good photos the model is fitted on (default 40)")
    ap.add_argument("--model", type=Path, default=None, help="serve this model instead of the cached fit")
    ap.add_argument("--seed", type=int, default=0, help="the reviewer's choices")
    a = ap.parse_args(argv)

    src = a.src.resolve()
    if not (src / "lineguard" / "__init__.py").exists():
        raise SystemExit(f"--src {a.src}: no lineguard package there (give the folder that holds lineguard/)")
    own = src == (ROOT / "src").resolve()
    label = a.label or ("current" if own else (src.parent.name if src.name == "src" else src.name))
    if a.minutes * 60 < FIT_FROM_S + 2 * SAMPLE_EVERY_S:
        print(f"note: --minutes {a.minutes} is too short for a growth line (it needs three samples from "
              f"{FIT_FROM_S:.0f} s on, at least {(FIT_FROM_S + 2 * SAMPLE_EVERY_S) / 60:g} minutes)")
    model = (a.model or cached_model(a.data, a.n_good)).resolve()
    images = [p.read_bytes() for p in sorted((a.data / "test").glob("*/*.png"))]
    if not images:
        raise SystemExit(f"no test photos in {a.data / 'test'}")
    print(f"images: {len(images)} test parts, {np.mean([len(b) for b in images]) / 1e3:.0f} kB mean PNG; "
          f"station from {src} ({label})")

    work = Path(tempfile.mkdtemp(prefix="lg-soak-"))
    load_start = os.getloadavg()
    station = Station(work, src, model, a.port)
    try:
        line = Line(station, images, a.clients, a.listeners, a.seed)
        line.warm_up()
        duration = a.minutes * 60
        samples: list[dict] = []
        cpu0 = cpu_s(station.pid)
        t0 = time.monotonic()
        line.start()
        while True:
            station.check_alive()
            el = time.monotonic() - t0
            with line.lock:
                n = len(line.latency)
            s = {"t_s": round(el, 1), "parts": n, **memory_mb(station.pid)}
            samples.append(s)
            print(f"{s['t_s']:6.0f} s  {n:6d} parts  RSS {s['rss_mb']:6.1f} MB  anonymous {s['anon_mb']:6.1f} MB  "
                  f"{s['threads']} threads", flush=True)
            if el >= duration:
                break
            time.sleep(min(SAMPLE_EVERY_S, max(0.1, duration - el)))
        line.finish()
        wall = time.monotonic() - t0
        station_cpu = cpu_s(station.pid) - cpu0
        time.sleep(2)       # the last answers and events are sent before the end trim
        end_trim = station.trim()
    finally:
        station.stop()
    load_end = os.getloadavg()

    lat_ms = np.array([d for _, d in line.latency]) * 1e3
    at60 = next((s for s in samples if s["t_s"] >= FIT_FROM_S), {"rss_mb": None, "anon_mb": None})
    first, last = samples[0], samples[-1]
    result = {
        "benchmark": "soak", "label": label, "station": {**source_of(src), "lineguard_imported": end_trim.pop(
            "station_lineguard"), "memory_keeper_running": end_trim.pop("memory_keeper_running")},
        "minutes": a.minutes, "clients": a.clients, "reviewer_every_s": 2, "poller_every_s": 3,
        "listeners": a.listeners, "database": "sqlite", "profile": "fast", "model_fitted_on": a.n_good,
        "model": model.name, "n_images": len(images),
        "parts": len(lat_ms), "parts_per_s": round(len(lat_ms) / wall, 2), "errors": line.errors,
        "reviews": line.reviews, "polls": line.polls, "events_received": line.events,
        "station_cpu_s": round(station_cpu, 1),
        "memory_mb": {"start": {k: first[k] for k in ("rss_mb", "anon_mb")},
                      "at_60s": {k: at60[k] for k in ("rss_mb", "anon_mb")},
                      "end": {k: last[k] for k in ("rss_mb", "anon_mb")}},
        "growth_mb_per_1000_parts": {"rss": slope_per_1000(samples, "rss_mb"),
                                     "anon": slope_per_1000(samples, "anon_mb"),
                                     "fitted_from_s": FIT_FROM_S},
        "post_latency_ms": {f"p{q}": round(float(np.percentile(lat_ms, q)), 1) for q in (50, 95, 99)},
        "end_trim": {**end_trim, "how": "malloc_trim(0) in the station process on SIGUSR2 (benchmark bootstrap, "
                     "no endpoint), after the load stopped"},
        "samples": samples,
        # the machine may be shared: rate and latency compare only between runs at a similar load
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_end],
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    m = result["memory_mb"]
    print(f"{label}: {result['parts']} parts, {result['parts_per_s']} parts/s, {sum(line.errors.values())} errors; "
          f"RSS {m['start']['rss_mb']} / {m['at_60s']['rss_mb']} / {m['end']['rss_mb']} MB, anonymous "
          f"{m['start']['anon_mb']} / {m['at_60s']['anon_mb']} / {m['end']['anon_mb']} MB (start / 60 s / end); "
          f"growth {result['growth_mb_per_1000_parts']['rss']} MB RSS, {result['growth_mb_per_1000_parts']['anon']} "
          f"MB anonymous per 1000 parts; POST p50/p95/p99 {result['post_latency_ms']['p50']}/"
          f"{result['post_latency_ms']['p95']}/{result['post_latency_ms']['p99']} ms; end trim {end_trim['ms']} ms, "
          f"gave back {end_trim['rss_mb_given_back']} MB RSS; memory keeper running: "
          f"{result['station']['memory_keeper_running']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{label}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"saved {path.relative_to(ROOT)}")
    shutil.rmtree(work, ignore_errors=True)     # kept only when a run fails, for its station.log
    return result


if __name__ == "__main__":
    main()
