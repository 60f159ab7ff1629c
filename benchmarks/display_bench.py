"""What a picture for the operator pages costs the station: the overlay (photo, heatmap,
boxes) and the photo as a JPEG, drawn at the photo's size and at the sizes the pages ask
for (1600 px viewers, 320 px thumbnails), for line-camera photo sizes. The photo is a
magnetic tile enlarged to each size, the map a quarter of it (as the inspector returns
for large photos), one region; median of ``--runs`` draws, one process.

    python -m benchmarks.display_bench [--data ../shared/datasets/magnetic_tile]

Writes ``benchmarks/results/display.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
SIZES = ((1280, 1024), (2448, 2048), (4000, 3000))


def _ms(f, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from PIL import Image

    from lineguard.line import render
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.result import DefectRegion, InspectionResult, Verdict

    cat = MVTecCategory(args.data)
    source = Image.fromarray(load_image(next(it.path for it in cat.test_items if it.is_defect)))
    rows = []
    for w, h in SIZES:
        photo = np.asarray(source.resize((w, h), Image.BICUBIC))
        amap = np.asarray(Image.fromarray(photo[:, :, 0].astype(np.float32) / 64).resize((w // 4, h // 4)))
        box = DefectRegion(w // 3, h // 3, w // 8, h // 8, w * h // 64, 3.0, 2.5)

        def result() -> InspectionResult:
            return InspectionResult(verdict=Verdict.NG, score=3.0, threshold=2.0, pixel_threshold=2.0,
                                    anomaly_map=amap, regions=[box])
        row = {"photo": f"{w}x{h}"}
        for side in (None, 1600, 320):
            key = str(side or "full")
            row[f"overlay_{key}_ms"] = _ms(lambda: render.overlay_png(photo, amap, result(), side), args.runs)
            row[f"overlay_{key}_kb"] = len(render.overlay_png(photo, amap, result(), side)) // 1024
            if side:
                row[f"jpeg_{key}_ms"] = _ms(lambda: render.photo_jpeg(photo, side), args.runs)
                row[f"jpeg_{key}_kb"] = len(render.photo_jpeg(photo, side)) // 1024
        print(json.dumps(row), flush=True)
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "display.json").write_text(json.dumps({"runs": args.runs, "sizes": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS / 'display.json'}")


if __name__ == "__main__":
    main()
