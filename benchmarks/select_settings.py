"""Choose detector settings without looking at the test split.

Real defects live only in test/. To pick resolution, aspect handling, layers and
scoring honestly we validate on the training images alone: every 5th train/good image
is held out; half of those stay good, the other half get a synthetic defect painted on
(``lineguard.vision.synth.add_defect``: scratch, dent, particle, crack, stain,
missing coating) with its exact mask. Each candidate is trained on the remaining
train/good images and ranked by image AUROC, pixel AUROC and AUPRO on that set.

    python -m benchmarks.select_settings --data ../shared/datasets/magnetic_tile [--only NAME ...]

Prints a table and writes benchmarks/results/select-<category>.json.

Kept as a record of how the 2026-11 settings were chosen (its candidates are those of that
time, position normalisation included). Defaults are now chosen on the fixed validation
halves of real defects (benchmarks/core_bench.py, benchmarks/detection_study.py).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

CANDIDATES: dict[str, dict] = {
    "sq224": dict(image_size=224),
    "sq224-raw": dict(image_size=224, position_norm=False),
    "sq224-topk": dict(image_size=224, image_score="topk"),
    "land224x384": dict(image_size=(224, 384), orient="landscape"),
    "land224x384-pad": dict(image_size=(224, 384), orient="landscape", resize="pad"),
    "sq320": dict(image_size=320),
    "land256x448": dict(image_size=(256, 448), orient="landscape"),
    "sq224-s23": dict(image_size=224, layers=("stage2", "stage3")),
    "sq224-s1234": dict(image_size=224, layers=("stage1", "stage2", "stage3", "stage4")),
    "land224x384-lite1": dict(image_size=(224, 384), orient="landscape", backbone="efficientnet_lite1"),
    "land224x384-cs05": dict(image_size=(224, 384), orient="landscape", coreset_ratio=0.05),
    "land224x384-s23": dict(image_size=(224, 384), orient="landscape", layers=("stage2", "stage3")),
    "land224x384-s23-cs05": dict(image_size=(224, 384), orient="landscape", layers=("stage2", "stage3"),
                                 coreset_ratio=0.05),
    "land224x384-sig2": dict(image_size=(224, 384), orient="landscape", sigma=2.0),
}


def build_validation(train_files: list[Path], seed: int = 0):
    from lineguard.vision.imageio import load_image
    from lineguard.vision.synth import DEFECT_TYPES, add_defect

    held = train_files[::5]
    fit_files = [f for i, f in enumerate(train_files) if i % 5]
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for i, f in enumerate(held):
        img = load_image(f)
        if i % 2:
            img, m = add_defect(img, DEFECT_TYPES[(i // 2) % len(DEFECT_TYPES)], rng)
            masks.append(m > 0)
        else:
            masks.append(np.zeros(img.shape[:2], bool))
        images.append(img)
    return fit_files, images, masks


def run(name: str, params: dict, fit_files, images, masks, threads: int) -> dict:
    import torch

    from lineguard import Inspector
    from lineguard.vision.metrics import aupro, image_auroc, pixel_auroc
    torch.set_num_threads(threads)
    p = dict(params)
    t0 = time.perf_counter()
    insp = Inspector.fit(fit_files, **p)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = insp.inspect_batch(images, batch_size=16)
    ms = (time.perf_counter() - t0) * 1000 / len(images)
    labels = np.array([m.any() for m in masks])
    scores = np.array([r.score for r in res])
    maps = [r.anomaly_map for r in res]
    return {"name": name, "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "val_image_auroc": round(image_auroc(scores, labels), 4),
            "val_pixel_auroc": round(pixel_auroc(maps, masks), 4),
            "val_aupro": round(aupro(maps, masks), 4),
            "train_s": round(train_s, 1), "ms_per_part": round(ms, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/magnetic_tile")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from lineguard.vision.dataset import MVTecCategory
    cat = MVTecCategory(args.data)
    fit_files, images, masks = build_validation(list(cat.train_good))
    out = Path("benchmarks/results") / f"select-{Path(args.data).name}.json"
    rows = json.loads(out.read_text()) if out.exists() else {}
    for name, params in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        r = run(name, params, fit_files, images, masks, args.threads)
        rows[name] = r
        print(json.dumps(r), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
    print(f"\n{'candidate':<22}{'img AUROC':>10}{'pix AUROC':>10}{'AUPRO':>8}{'train s':>9}{'ms/part':>9}")
    for r in rows.values():
        print(f"{r['name']:<22}{r['val_image_auroc']:>10.4f}{r['val_pixel_auroc']:>10.4f}{r['val_aupro']:>8.4f}"
              f"{r['train_s']:>9.1f}{r['ms_per_part']:>9.1f}")


if __name__ == "__main__":
    main()
