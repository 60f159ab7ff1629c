"""A camera frame from grab to stored verdict, in the station's process.

``serve --plc-camera`` and ``lineguard camera`` without ``--server`` run the camera in
the station's process. Their frames used to reach the station as PNG bytes (encoded by
the source, decoded by the station); now they are handed over as pixels
(``line.camera_frame``) and encoded only for a part whose image is kept. This times both
ways through a real station (SQLite, the fast profile's model exported to ONNX, 40 good
tiles) per part: the PNG way is ``encode_frame`` + ``Station.inspect(bytes)``, what the
sources did before; the frame way is ``Station.inspect(CameraFrame)``. Frames are a real
tile photo (``--data``'s first test/good image, an OK part) enlarged to camera sizes with
sensor noise, mono and colour (``frame_encode_bench``'s frames), each call's frame made
unique by one pixel so every kept part writes a file. Two retention settings: every OK
image kept (the station's default) and one OK image in ten (``--ok-sample-rate 0.1``,
a plant that keeps its disk for NG parts). Median of ``--runs`` calls, ms a part (what
a PLC waits for), and the station's own split of it.

    python -m benchmarks.camera_frame_bench [--runs 9] [--tag T]

Writes ``benchmarks/results/camera-frame[-T].json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.frame_encode_bench import SIZES, _frames

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def _station(data_dir: Path, model: bytes, ok_sample_rate: float):
    from lineguard.line.config import RetentionPolicy, StationConfig
    from lineguard.line.station import Station
    cfg = StationConfig(data_dir=data_dir, runtime="onnxruntime",
                        retention=RetentionPolicy(ok_sample_rate=ok_sample_rate), audit_sample_rate=0.0)
    st = Station(cfg)
    st.add_model(model, "tile", activate=True)
    return st


def _time_way(st, frame: np.ndarray, way: str, runs: int, tag: str) -> dict:
    from lineguard.line.camera_frame import CameraFrame
    from lineguard.line.png import encode_frame
    from lineguard.line.station import Part
    totals, splits, kept, verdicts = [], [], 0, set()
    for i in range(runs + 1):
        f = frame.copy()
        f[0, 0, :] = i % 256            # a new image each call (all channels: a mono frame stays mono)
        f[0, 1, :] = i // 256
        part = Part(f"{tag}-{way}-{i}", "L1", "CAM1", "tile")
        t0 = time.perf_counter()
        image = encode_frame(f) if way == "png" else CameraFrame(f)
        rec = st.inspect(image, part, source="camera").record
        ms = (time.perf_counter() - t0) * 1e3
        if i == 0:
            continue                    # the first call loads the model
        totals.append(ms)
        t = rec.timings_ms
        splits.append((t["station_decode"], t["station_model"], t["station_store_files"]))
        kept += rec.image_key is not None
        verdicts.add(rec.verdict)
    med = [round(statistics.median(col), 1) for col in zip(*splits)]
    return {"total_ms": round(statistics.median(totals), 1), "decode_ms": med[0], "model_ms": med[1],
            "store_ms": med[2], "kept": f"{kept}/{runs}", "verdicts": sorted(verdicts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    import cv2

    from lineguard import Inspector
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.runtime.threads import set_threads
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.profiles import profile_settings

    set_threads(args.threads)
    cat = MVTecCategory(args.data)
    train = sorted(cat.train_good, key=lambda p: Path(p).name)[:40]
    photo = load_image(sorted((it.path for it in cat.test_items if not it.is_defect), key=lambda p: Path(p).name)[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(Inspector.fit(train, **profile_settings("fast")), Path(tmp) / "m.onnx")
        model = (Path(tmp) / "m.onnx").read_bytes()
        stations = {"keep every OK image": _station(Path(tmp) / "keep-all", model, 1.0),
                    "keep 1 OK image in 10": _station(Path(tmp) / "keep-tenth", model, 0.1)}
        try:
            for w, h in SIZES:
                for kind, frame in _frames(photo, w, h).items():
                    for retention, st in stations.items():
                        row = {"frame": f"{w}x{h}", "camera": kind, "retention": retention}
                        for way in ("png", "frame"):
                            row[way] = _time_way(st, frame, way, args.runs, f"{w}x{h}-{kind}")
                        print(json.dumps(row), flush=True)
                        rows.append(row)
        finally:
            for st in stations.values():
                st.close()
    out = {"data": Path(args.data).name, "photo": "first test/good image", "runs": args.runs,
           "threads": args.threads, "opencv": cv2.__version__,
           "cpu": platform.processor() or platform.machine(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"camera-frame{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
