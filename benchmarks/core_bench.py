"""Core benchmark: each detector on a real MVTec-layout category (default magnetic_tile).

For each detector, in its own process (so peak memory is its own):
- trains on train/good (all of it, as `lineguard eval` does), evaluates on test/ with the
  calibrated threshold: image AUROC, pixel AUROC, AUPRO, F1-max, false-reject and escape
  rates, per defect type;
- times training on 200 good images, and end-to-end inspection (decoded image in memory
  -> verdict, map at the photo's size, regions) at batch 1 and batch 16 with 2 threads;
- records peak RSS and the model file size.

    python -m benchmarks.core_bench [--data ../shared/datasets/magnetic_tile] [--detectors patchcore padim]
                                    [--profile default]

Writes benchmarks/results/<category>-<detector>.json and prints a table. Settings come
from PROFILES, chosen with benchmarks/select_settings.py on train/good only.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROFILES = {
    # chosen on train/good with painted defects (benchmarks/select_settings.py), never on test/
    "patchcore": dict(detector="patchcore", image_size=(224, 384), orient="landscape", layers=("stage2", "stage3"),
                      coreset_ratio=0.05),
    "patchcore-land224x384-s24-cs02": dict(detector="patchcore", image_size=(224, 384), orient="landscape"),
    "patchcore-sq224": dict(detector="patchcore", image_size=224),
    "padim": dict(detector="padim", image_size=(224, 384), orient="landscape"),
}


def _time_inspect(insp, images, batch: int, repeats: int = 1) -> float:
    insp.inspect_batch(images[:batch], batch_size=batch)  # warm-up
    t0 = time.perf_counter()
    n = 0
    for _ in range(repeats):
        for i in range(0, len(images) - batch + 1, batch):
            insp.inspect_batch(images[i:i + batch], batch_size=batch)
            n += batch
    return (time.perf_counter() - t0) * 1000 / n


def worker(data: str, name: str, threads: int) -> dict:
    import torch

    from lineguard import Inspector
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.evaluate import evaluate
    from lineguard.vision.imageio import load_image
    torch.set_num_threads(threads)
    params = dict(PROFILES[name])
    cat = MVTecCategory(data)
    t0 = time.perf_counter()
    insp = Inspector.fit(cat.train_good, **params)
    train_all_s = time.perf_counter() - t0
    report = evaluate(insp, cat)
    with tempfile.TemporaryDirectory() as tmp:
        model_mb = insp.save(Path(tmp) / "m.lgm").stat().st_size / 1e6
    t0 = time.perf_counter()
    Inspector.fit(cat.train_good[:200], **params)
    train_200_s = time.perf_counter() - t0
    imgs = [load_image(it.path) for it in cat.test_items[:96]]
    ms1 = _time_inspect(insp, imgs, 1)
    ms16 = _time_inspect(insp, imgs, 16)
    keys = ("image_auroc", "pixel_auroc", "aupro", "f1_max", "false_reject_rate", "escape_rate", "threshold")
    out = {k: report.get(k) for k in keys}
    out.update({
        "detector": name, "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "category": Path(data).name, "n_train": len(cat.train_good), "n_test": len(cat.test_items),
        "train_s": round(train_200_s, 2), "train_s_all": round(train_all_s, 2),
        "ms_per_part_batch1": round(ms1, 2), "ms_per_part_batch16": round(ms16, 2),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_mb": round(model_mb, 2), "threads": threads,
        "per_defect_type": report.get("per_defect_type"),
        "calibration": {k: insp.calibration.get(k) for k in ("n_calibration", "guaranteed_false_reject_rate")},
        "load_avg_at_end": os.getloadavg()[0],
        "note": "train_s is 200 good images; metrics use a model trained on all train/good",
    })
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/magnetic_tile")
    ap.add_argument("--detectors", nargs="*", default=list(PROFILES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.data, a.worker, a.threads)))
        return
    if not Path(a.data).exists():
        sys.exit(f"{a.data}: dataset not found; pass --data DATASET/CATEGORY (MVTec layout)")
    rows = []
    for name in a.detectors:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.core_bench", "--data", a.data, "--worker", name,
                               "--threads", str(a.threads)], capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stderr[-3000:], file=sys.stderr)
            sys.exit(f"benchmark of {name} failed")
        r = json.loads(line[0][7:])
        rows.append(r)
        out = Path("benchmarks/results") / f"{r['category']}-{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(r, indent=1))
    cols = ("image_auroc", "pixel_auroc", "aupro", "f1_max", "false_reject_rate", "escape_rate", "train_s",
            "ms_per_part_batch1", "ms_per_part_batch16", "peak_mb", "model_mb")
    print("| detector | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for r in rows:
        print(f"| {r['detector']} | " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c])
                                                   for c in cols) + " |")


if __name__ == "__main__":
    main()
