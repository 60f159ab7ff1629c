"""Time a part by photo size: where do the milliseconds go when the camera's photo is
large?

The speed targets (fast profile <= 10 ms a part) are measured on the datasets' photos,
a few hundred pixels a side. Line cameras deliver 1.3-12 megapixels. The model's work
does not grow with the photo (it sees its input size), but decoding the photo, shrinking
it to the model input and bringing the anomaly map back to the photo's pixels (and its
regions) do. Here one fast-profile model (trained on ``--train`` good parts of
``--data``, exported to ONNX) inspects one defective part enlarged to each size, as an
array (what ``Inspector.inspect`` is handed by the station after decoding) and, apart,
the decode of that photo as a JPEG file (quality 92), and the whole part from those JPEG
bytes (what a hot folder or an upload hands the station; the decode is then in
"preprocess"), with both ways' scores. Median over ``--runs`` calls of the inspector's own
stage timings, batch 1, ``--threads`` threads.

    python -m benchmarks.photo_size_bench [--data ../shared/datasets/magnetic_tile] [--tag before]

Writes ``benchmarks/results/photo-size[-TAG].json``.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
# width x height: a dataset-sized photo, then 1.3, 5 and 12 megapixel line cameras
SIZES = ((400, 300), (1280, 1024), (2448, 2048), (4000, 3000))


def _median_stages(insp, photo, runs: int) -> dict:
    insp.inspect(photo)   # warm this photo size's path
    rows = [insp.inspect(photo).timings_ms for _ in range(runs)]
    return {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]}


def _decode_ms(jpeg: bytes, runs: int) -> float:
    from lineguard.vision.imageio import load_image
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        load_image(jpeg, max_pixels=10 ** 9)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--train", type=int, default=40, help="good parts to learn from (the timing does not depend on it)")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from PIL import Image

    from lineguard import Inspector
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.runtime.threads import set_threads
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.profiles import profile_settings

    set_threads(args.threads)
    cat = MVTecCategory(args.data)
    train = sorted(cat.train_good, key=lambda p: Path(p).name)[:args.train]
    insp = Inspector.fit(train, **profile_settings("fast"))
    # the first defect the model rejects: NG parts also pay for their regions
    defect = next(it.path for it in cat.test_items if it.is_defect and insp.inspect(it.path).verdict.value == "NG")
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(insp, Path(tmp) / "m.onnx")
        edge = Inspector.load(Path(tmp) / "m.onnx")
    source = Image.fromarray(load_image(defect))
    rows = []
    for w, h in SIZES:
        photo = np.asarray(source.resize((w, h), Image.BICUBIC))
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, format="JPEG", quality=92)
        res = edge.inspect(photo)
        jpeg = buf.getvalue()
        row = {"photo": f"{w}x{h}", "megapixels": round(w * h / 1e6, 2), "verdict": res.verdict.value,
               "regions": len(res.regions), "map_shape": list(res.anomaly_map.shape),
               "onnx_ms": _median_stages(edge, photo, args.runs),
               "torch_ms": _median_stages(insp, photo, max(3, args.runs // 3)),
               "decode_jpeg_ms": _decode_ms(jpeg, max(3, args.runs // 3)),
               "onnx_from_jpeg_ms": _median_stages(edge, jpeg, args.runs),
               "score_array": round(res.score, 4), "score_from_jpeg": round(edge.inspect(jpeg).score, 4),
               "score_jpeg_decoded_in_full": round(edge.inspect(load_image(jpeg, max_pixels=10 ** 9)).score, 4),
               "threshold": round(edge.threshold, 4)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {"data": Path(args.data).name, "defect": Path(defect).name, "model_input": list(insp.preprocess.input_hw),
           "train_parts": len(train), "threads": args.threads, "runs": args.runs,
           "cpu": platform.processor() or platform.machine(), "sizes": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"photo-size{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
