"""Where a PLC-triggered part's time goes inside the station, stage by stage.

    python -m benchmarks.plc_stages_bench [--parts 100] [--rate 4] [--protocol modbus] [--work DIR]

The station runs in this process as `lineguard serve` builds it (the exported default
model of :mod:`benchmarks.plc_latency_bench`, both PLC servers, an image folder as the
camera); the simulated PLC is `lineguard line-sim` in its own process, so its 1 ms polls
load the station as a real PLC's would. In-process timers per part:

    trigger -> hand-off    the trigger taken, until the inspection thread starts
    image read             the camera folder's newest image read
    decode                 station_decode (sniff, checks, PNG decode)
    queue                  station_queue: waiting for the model's thread (the batcher)
    model                  station_model: the model call (preprocess, runtime, regions)
    store files            station_store_files: image kept or dropped, map key
    commit + rest          the record and its outbox row committed, the rest of inspect
    answer written         inspect returned -> result registers and ResultsValid set

and then the same model is called directly in this process (``inspector.inspect``) on the
same images while the station is idle: the difference is what running inside the station
costs the model. The 1-min load average is recorded before and after each measurement.
Results go to benchmarks/results/plc-stages.json (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


from .plc_latency_bench import RESULTS, _free_port, distribution, make_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=100)
    ap.add_argument("--rate", type=float, default=4.0, help="parts per second (low: one part at a time)")
    ap.add_argument("--protocol", default="modbus", choices=["modbus", "opcua"])
    ap.add_argument("--window-ms", type=float, default=1000.0)
    ap.add_argument("--label", default="", help="a name for this run in the results file (before, after...)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lineguard-plc-bench")
    ap.add_argument("--out", type=Path, default=RESULTS / "plc-stages.json")
    a = ap.parse_args()
    from lineguard.line.config import StationConfig
    from lineguard.line.plc_handshake import newest_image_source
    from lineguard.line.plc_modbus import ModbusStation
    from lineguard.line.plc_opcua import OpcUaStation
    from lineguard.server.app import open_station
    from lineguard.vision.imageio import load_image

    a.work.mkdir(parents=True, exist_ok=True)
    model, feed = make_model(a.work)
    run = Path(tempfile.mkdtemp(dir=a.work, prefix="stages-"))
    cam = run / "cam"
    cam.mkdir()
    station = open_station(StationConfig(data_dir=run / "data"), str(model), "cell", "L1")
    ports = {"modbus": _free_port(), "opcua": _free_port()}
    stages: dict[int, dict[str, float]] = {}
    lock = threading.Lock()
    plcs = []
    for cls in (ModbusStation, OpcUaStation):
        srv = cls(station, newest_image_source(cam), {1: "cell"}, line="L1", station_name=f"plc-{cls.protocol}",
                  port=ports[cls.protocol], window_ms=a.window_ms)
        hs = srv.hs
        read_image, answered = hs.image_source, hs.answered

        def timed_image(read_image=read_image, hs=hs):
            t = time.perf_counter()
            trig = hs.pending
            out = read_image()
            if trig is not None:
                with lock:
                    stages.setdefault(trig.seq, {}).update(t0=trig.t0, image_start=t, image_end=time.perf_counter())
            return out

        def timed_answered(ans, answered=answered, hs=hs):
            t = time.perf_counter()
            answered(ans)
            with lock:
                stages.setdefault(ans.trigger.seq, {}).update(answer_start=t, code=int(ans.code),
                                                              inspection_id=ans.inspection_id)

        hs.image_source, hs.answered = timed_image, timed_answered
        srv.start()
        plcs.append(srv)
    inspect_ends: dict[int, tuple[float, float]] = {}

    def timed_inspect(data, part, source="api", inspect=station.inspect):
        t = time.perf_counter()
        out = inspect(data, part, source=source)
        inspect_ends[out.record.id] = (t, time.perf_counter())
        return out

    station.inspect = timed_inspect
    report = {}
    try:
        def line_sim(parts: int, rate: float, first: int) -> dict:
            js = run / f"sim-{first}.json"
            cmd = [sys.executable, "-m", "lineguard", "line-sim", "--protocol", a.protocol, "--port",
                   str(ports[a.protocol]), "--parts", str(parts), "--rate", str(rate), "--plc-images", str(cam),
                   "--images", str(feed), "--window-ms", str(a.window_ms), "--first-part-id", str(first),
                   "--json", str(js)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"line-sim failed:\n{r.stdout}\n{r.stderr}")
            return json.loads(js.read_text())

        line_sim(10, 4.0, 1)                  # loads the model, warms the runtime: not counted
        with lock:
            stages.clear()
        inspect_ends.clear()
        load_before = os.getloadavg()[0]
        sim = line_sim(a.parts, a.rate, 1000)
        load_after = os.getloadavg()[0]
        time.sleep(0.5)
        per: dict[str, list[float]] = {k: [] for k in ("trigger_to_handoff", "image_read", "decode", "queue", "model",
                                                        "model_runtime", "model_preprocess", "model_postprocess",
                                                        "store_files", "commit_and_rest", "answer_written",
                                                        "trigger_to_answer")}
        for seq, st in stages.items():
            iid = st.get("inspection_id")
            if not iid or iid not in inspect_ends or "image_start" not in st:
                continue
            rec = station.get(iid)
            tm = rec.timings_ms
            t_in, t_out = inspect_ends[iid]
            ms = lambda x: x * 1000  # noqa: E731
            per["trigger_to_handoff"].append(ms(st["image_start"] - st["t0"]))
            per["image_read"].append(ms(st["image_end"] - st["image_start"]))
            per["decode"].append(tm["station_decode"])
            per["queue"].append(tm["station_queue"])
            per["model"].append(tm["station_model"])
            per["model_runtime"].append(tm.get("model", 0.0))
            per["model_preprocess"].append(tm.get("preprocess", 0.0))
            per["model_postprocess"].append(tm.get("postprocess", 0.0))
            per["store_files"].append(tm["station_store_files"])
            inside = tm["station_decode"] + tm["station_queue"] + tm["station_model"] + tm["station_store_files"]
            per["commit_and_rest"].append(ms(t_out - t_in) - inside)
            per["answer_written"].append(ms(st["answer_start"] - t_out))
            per["trigger_to_answer"].append(ms(st["answer_start"] - st["t0"]))
        report["station"] = {k: distribution(v) for k, v in per.items()}
        report["plc_seen"] = {"latency_ms": sim["latency_ms"], "missed_windows": sim["missed_windows"],
                              "answered": sim["answered"]}
        report["load_1min"] = {"before": round(load_before, 2), "after": round(load_after, 2)}

        # the same model, called directly in this process, the station idle
        mv = station.models.active_for("cell", "L1")
        insp = station.models.inspector(mv)
        images = [load_image(p.read_bytes()) for p in sorted(feed.iterdir())[:20]]
        load_before = os.getloadavg()[0]
        direct: dict[str, list[float]] = {"model": [], "model_runtime": [], "model_preprocess": [],
                                          "model_postprocess": []}
        for i in range(a.parts):
            img = images[i % len(images)]
            t = time.perf_counter()
            res = insp.inspect(img)
            direct["model"].append((time.perf_counter() - t) * 1000)
            direct["model_runtime"].append(res.timings_ms["model"])
            direct["model_preprocess"].append(res.timings_ms["preprocess"])
            direct["model_postprocess"].append(res.timings_ms["postprocess"])
            time.sleep(max(0.0, 1.0 / a.rate - (time.perf_counter() - t)))
        report["direct"] = {k: distribution(v) for k, v in direct.items()}
        report["direct_load_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    finally:
        for srv in plcs:
            srv.close()
        station.close()

    def row(name: str, d: dict) -> str:
        return f"  {name:20s} p50 {d.get('p50', '-'):>8} p90 {d.get('p90', '-'):>8} p99 {d.get('p99', '-'):>8} ms"

    print(f"in the station ({a.parts} parts at {a.rate:g}/s over {a.protocol}; load {report['load_1min']}):")
    for k, v in report["station"].items():
        print(row(k, v))
    lat = report["plc_seen"]["latency_ms"]
    print(f"  PLC saw trigger->ResultsValid p50 {lat['p50']} p99 {lat['p99']} ms")
    print(f"direct, same process, station idle (load {report['direct_load_1min']}):")
    for k, v in report["direct"].items():
        print(row(k, v))
    out = {"what": "stages of a PLC-triggered part inside the station vs the model called directly",
           "parts": a.parts, "rate_per_s": a.rate, "protocol": a.protocol, "label": a.label,
           "cpu_count": os.cpu_count(), "machine": platform.platform(), "python": platform.python_version(),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **report}
    runs = []
    if a.out.exists():
        try:
            runs = json.loads(a.out.read_text()).get("runs", [])
        except (ValueError, AttributeError):
            runs = []
    runs.append(out)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=a.out.parent, prefix=".plc-stages-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({"runs": runs}, fh, indent=2)
    os.replace(tmp, a.out)
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
