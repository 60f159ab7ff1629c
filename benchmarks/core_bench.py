"""Detection at the plant's operating point, on real parts: `make bench`.

For each dataset (MVTec layout: magnetic_tile and KolektorSDD by default) and profile,
in its own process (so peak memory is its own):

- trains on all of train/good, threshold by cross-fitting for a 1% false-reject target
  (KolektorSDD's 8 photos of a commutator as one group, `part_labels`, as a plant that
  photographs each part several times says `--group-by`);
- evaluates on test/: image AUROC, pixel AUROC, AUPRO, per defect type, and the plant's
  rates: false rejects and escapes at the model's own threshold (also with the good
  parts it names as suspects left out, as once a person has found them bad), and escapes at the
  threshold that holds false rejects <= 1% on test/good (the issue's operating point);
- the same image metrics on the two fixed halves of test/ (VALIDATION_HALF below: every
  other file by name within each defect type and within good; settings were chosen on
  the "validation" half, the "report" half was not looked at to choose them);
- the same model's 5% review band (`--review-rate 0.05`): good parts sent to a person,
  defects still judged OK (per defect type the report's escapes are these);
- small plants: trains on 50 and 100 good images only (seeded draw) and reports escapes
  at 1% false rejects on test/good and the calibrated threshold's own false rejects;
- times training on 200 images and torch inspection at batch 1 (ONNX Runtime timings:
  benchmarks/edge_bench.py).

    python -m benchmarks.core_bench [--data DIR ...] [--profiles fast quality] [--small 50 100]

Writes benchmarks/results/core-<dataset>-<profile>.json and prints a table.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from lineguard.vision.profiles import PROFILES as _PRODUCT_PROFILES

DATASETS = ["../shared/datasets/magnetic_tile", "../shared/datasets/kolektorsdd/commutator"]
# The product's profiles (lineguard.vision.profiles): fast is the default of `lineguard
# train` and the station; quality takes the parts' own aspect ratio and MobileNetV2.
PROFILES = {name: dict(detector="patchcore", **settings) for name, settings in _PRODUCT_PROFILES.items()}
# Settings measured beside the profiles (`--profiles quality-one-size fast-two-sizes`):
# the quality profile as it was before it also saw each part at 0.7x its input's side,
# and the fast profile with that second size (not kept: more escapes on both validation
# halves; measured while fast squeezed every part into 224x224). Results
# core-*-<name>.json; core-*-quality.json were first written under the name
# "quality-two-sizes", the candidate's until the profile took it.
CANDIDATES = {"quality-one-size": dict(PROFILES["quality"], extra_scales=()),
              "fast-two-sizes": dict(PROFILES["fast"], extra_scales=(0.7,)),
              # the fast profile before 2026-12-03: every part squeezed into a square
              "fast-square": dict(PROFILES["fast"], image_size=224)}
FRR_TARGET = 0.01
# the review band a plant that has a person at the line would add (`train --review-rate`):
# about this share of good parts goes to the person on top of the false rejects
REVIEW_RATE = 0.05


def dataset_name(data: str) -> str:
    """The name results are filed under (KolektorSDD's category folder is `commutator`)."""
    return "kolektorsdd" if Path(data).name == "commutator" else Path(data).name


# how part_labels groups photos, recorded beside results that used it
GROUPS_NOTE = "commutator (source number // 8)"


def part_labels(data: str, paths: list[Path]) -> Optional[list[str]]:
    """The physical part each photo shows, where the dataset records it: KolektorSDD's
    source numbers photos in blocks of 8 per commutator (mapping.csv: `source` ends in
    NNN.jpg; test/good is exactly every fourth block). None where photos are parts."""
    mapping = Path(data) / "mapping.csv"
    if Path(data).name != "commutator" or not mapping.exists():
        return None
    block = {}
    with open(mapping, newline="") as fh:
        for row in csv.DictReader(fh):
            m = re.search(r"(\d+)\.\w+$", row["source"])
            block[row["image"]] = f"commutator{int(m.group(1)) // 8:02d}"
    return [block[f"{p.parent.parent.name}/{p.parent.name}/{p.name}"] for p in paths]


def validation_half(items: list[dict]) -> tuple[list[int], list[int]]:
    """The fixed split of test/: within each defect type (and good), files sorted by
    name; even positions are the validation half, odd ones the report half."""
    val, rep = [], []
    by_type: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_type.setdefault(it["defect_type"], []).append(i)
    for ids in by_type.values():
        ids.sort(key=lambda i: str(items[i]["path"]))
        val += ids[0::2]
        rep += ids[1::2]
    return sorted(val), sorted(rep)


def operating_point(scores: np.ndarray, is_defect: np.ndarray, frr: float = FRR_TARGET) -> dict:
    """Escapes at the lowest threshold that keeps false rejects on these good parts <= frr."""
    g = np.sort(scores[~is_defect])
    allowed = int(math.floor(frr * len(g)))
    thr = float(g[len(g) - 1 - allowed])
    return {"threshold": thr, "false_reject_rate": float((scores[~is_defect] > thr).mean()),
            "escape_rate": float((scores[is_defect] <= thr).mean())}


def _image_metrics(scores: np.ndarray, is_defect: np.ndarray, threshold: float) -> dict:
    from lineguard.vision.metrics import image_auroc
    return {"image_auroc": round(image_auroc(scores, is_defect), 4),
            "at_1pct_frr_on_test_good": {k: round(v, 4) for k, v in operating_point(scores, is_defect).items()},
            "own_threshold": {"false_reject_rate": round(float((scores[~is_defect] > threshold).mean()), 4),
                              "escape_rate": round(float((scores[is_defect] <= threshold).mean()), 4)}}


def band_rates(scores: np.ndarray, is_defect: np.ndarray, threshold: float, review_threshold: float) -> dict:
    """At the model's own two thresholds: good parts judged NG and REVIEW, defects judged
    OK (the escapes left) and REVIEW (caught by the person, not the model)."""
    ng, ok = scores > threshold, scores <= review_threshold
    review = ~ng & ~ok
    return {"review_rate": REVIEW_RATE, "review_threshold": review_threshold,
            "good_ng": round(float(ng[~is_defect].mean()), 4), "good_review": round(float(review[~is_defect].mean()), 4),
            "defects_ok": round(float(ok[is_defect].mean()), 4),
            "defects_review": round(float(review[is_defect].mean()), 4)}


def worker(data: str, profile: str, small: list[int], threads: int) -> dict:
    import torch

    from lineguard import Inspector
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.evaluate import evaluate
    from lineguard.vision.imageio import load_image
    torch.set_num_threads(threads)
    params = dict({**PROFILES, **CANDIDATES}[profile])
    cat = MVTecCategory(data)
    labels = part_labels(data, [Path(p) for p in cat.train_good])
    t0 = time.perf_counter()
    insp = Inspector.fit(cat.train_good, false_reject_rate=FRR_TARGET, groups=labels, review_rate=REVIEW_RATE,
                         **params)
    train_all_s = time.perf_counter() - t0
    report = evaluate(insp, cat)
    items = report["items"]
    scores = np.array([it["score"] for it in items])
    is_defect = np.array([it["defect_type"] != "good" for it in items])
    val, rep = validation_half(items)
    out = {k: report.get(k) for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "false_reject_rate",
                                      "escape_rate", "threshold")}
    out.update({
        "dataset": dataset_name(data),
        "profile": profile, "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "input_hw": list(insp.preprocess.input_hw),
        "n_train": len(cat.train_good), "n_test": len(items),
        "full": _image_metrics(scores, is_defect, insp.threshold),
        "validation_half": _image_metrics(scores[val], is_defect[val], insp.threshold),
        "report_half": _image_metrics(scores[rep], is_defect[rep], insp.threshold),
        "per_defect_type": report.get("per_defect_type"),
        "calibration": {k: insp.calibration.get(k) for k in ("calibration_method", "n_calibration",
                                                             "guaranteed_false_reject_rate", "suspects_excluded",
                                                             "suspect_cut")},
        "suspect_good": insp.info.get("suspect_good"),
        # the threshold a person gets after looking at the suspects and finding them bad
        "own_threshold_without_suspects": _image_metrics(
            scores, is_defect, insp.calibration["threshold_without_suspects"])["own_threshold"]
        if insp.calibration.get("threshold_without_suspects") is not None else None,
        "with_review_band": band_rates(scores, is_defect, insp.threshold, insp.review_threshold),
        "groups": GROUPS_NOTE if labels else None,
        "train_s_all": round(train_all_s, 1),
    })
    test_imgs = None
    rng = np.random.default_rng(0)
    small_out = {}
    for n in small:
        pick = sorted(rng.choice(len(cat.train_good), size=min(n, len(cat.train_good)), replace=False))
        t0 = time.perf_counter()
        s_insp = Inspector.fit([cat.train_good[i] for i in pick], false_reject_rate=FRR_TARGET,
                               groups=[labels[i] for i in pick] if labels else None, **params)
        fit_s = time.perf_counter() - t0
        if test_imgs is None:
            test_imgs = [load_image(it["path"]) for it in items]
        s = np.array([r.score for r in s_insp.inspect_batch(test_imgs, batch_size=16)])
        small_out[str(n)] = {**_image_metrics(s, is_defect, s_insp.threshold), "train_s": round(fit_s, 1),
                             "threshold": s_insp.threshold,
                             "suspects_excluded": s_insp.calibration.get("suspects_excluded")}
    out["small_training_sets"] = small_out
    imgs = test_imgs or [load_image(it["path"]) for it in items[:40]]
    insp.inspect_batch(imgs[:2], batch_size=1)
    t0 = time.perf_counter()
    for im in imgs[:40]:
        insp.inspect_batch([im], batch_size=1)
    out["torch_ms_per_part_batch1"] = round((time.perf_counter() - t0) * 1000 / min(40, len(imgs)), 1)
    t0 = time.perf_counter()
    Inspector.fit(cat.train_good[:200], false_reject_rate=FRR_TARGET, **params)
    out["train_s_200"] = round(time.perf_counter() - t0, 1)
    out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["threads"] = threads
    out["load_avg_at_end"] = os.getloadavg()[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="*", default=DATASETS)
    ap.add_argument("--profiles", nargs="*", default=list(PROFILES), choices=[*PROFILES, *CANDIDATES])
    ap.add_argument("--small", nargs="*", type=int, default=[50, 100])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker[0], a.worker[1], a.small, a.threads), default=str))
        return
    rows = []
    for data in a.data:
        if not Path(data).exists():
            sys.exit(f"{data}: dataset not found; pass --data DATASET/CATEGORY (MVTec layout)")
        for profile in a.profiles:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.core_bench", "--worker", data, profile,
                                   "--threads", str(a.threads), "--small", *map(str, a.small)],
                                  capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stderr[-3000:], file=sys.stderr)
                sys.exit(f"benchmark of {profile} on {data} failed")
            r = json.loads(line[0][7:])
            rows.append(r)
            out = Path("benchmarks/results") / f"core-{r['dataset']}-{profile}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(r, indent=1))
            print(f"wrote {out}", flush=True)
    print("| dataset | profile | input | image AUROC (val / report / full) | pixel AUROC | AUPRO "
          "| escapes at 1% FRR on test/good (val / report / full) | own threshold: false rejects, escapes "
          "| own threshold, suspects left out | 5% review band: good to review, defects judged OK, defects to review "
          "| 100 good: escapes at 1% FRR, own FRR | 50 good: same |")
    print("|---" * 12 + "|")
    for r in rows:
        v, p, f = r["validation_half"], r["report_half"], r["full"]
        sm = r["small_training_sets"]

        def small(n: str) -> str:
            if n not in sm:
                return "-"
            return (f"{sm[n]['at_1pct_frr_on_test_good']['escape_rate']:.1%}, "
                    f"{sm[n]['own_threshold']['false_reject_rate']:.1%}")
        w = r.get("own_threshold_without_suspects")
        without = f"{w['false_reject_rate']:.1%}, {w['escape_rate']:.1%}" if w else "-"
        b = r.get("with_review_band")
        band = f"{b['good_review']:.1%}, {b['defects_ok']:.1%}, {b['defects_review']:.1%}" if b else "-"
        print(f"| {r['dataset']} | {r['profile']} | {r['input_hw'][0]}x{r['input_hw'][1]} "
              f"| {v['image_auroc']:.3f} / {p['image_auroc']:.3f} / {f['image_auroc']:.3f} "
              f"| {r['pixel_auroc']:.3f} | {r['aupro']:.3f} "
              f"| {v['at_1pct_frr_on_test_good']['escape_rate']:.1%} / "
              f"{p['at_1pct_frr_on_test_good']['escape_rate']:.1%} / {f['at_1pct_frr_on_test_good']['escape_rate']:.1%} "
              f"| {f['own_threshold']['false_reject_rate']:.1%}, {f['own_threshold']['escape_rate']:.1%} "
              f"| {without} | {band} | {small('100')} | {small('50')} |")


if __name__ == "__main__":
    main()
