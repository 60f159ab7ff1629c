"""Collects benchmarks/results/study-discriminator-*.json into one table (markdown) and
picks, per dataset and training set, the best setting by validation-half image AUROC:
the choice the study's conclusion rests on, made without looking at the report half.

    python -m benchmarks.discriminator_summary [--bootstrap]

``--bootstrap``: for the runs whose per-image scores were kept (benchmarks/.cache/scores-*.npz),
a paired bootstrap of the image-AUROC difference to PatchCore on the validation half
(parts resampled within good and within defective; 2,000 draws): the test halves are
small (KolektorSDD: 26 defective parts per half), so a difference needs its spread.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path("benchmarks/results")


def main() -> None:
    rows = []
    for f in sorted(RESULTS.glob("study-discriminator-*.json")):
        dataset = f.stem[len("study-discriminator-"):].split("-")[0]
        for r in json.loads(f.read_text()):
            rows.append({"file": f.name, "dataset": dataset, **r})
    seen = set()
    print("| dataset | train set | method | config | train s | image AUROC val / report / full "
          "| escapes@1% val / report / full | pixel AUROC full | AUPRO full |")
    print("|---" * 9 + "|")
    for r in rows:
        key = (r["dataset"], r["train_set"], r["method"], r.get("config"))
        if key in seen:          # PatchCore is repeated in every run's file (same cached bank)
            continue
        seen.add(key)
        v, p, f = r["val"], r["report"], r["full"]
        print(f"| {r['dataset']} | {r['train_set']} | {r['method']} | {r.get('config') or '-'} "
              f"| {r.get('train_s', r.get('fit_s'))} "
              f"| {v['image_auroc']:.3f} / {p['image_auroc']:.3f} / {f['image_auroc']:.3f} "
              f"| {v['escapes_at_1pct']:.1%} / {p['escapes_at_1pct']:.1%} / {f['escapes_at_1pct']:.1%} "
              f"| {f['pixel_auroc']:.3f} | {f['aupro']:.3f} |")
    print()
    for ds in sorted({r["dataset"] for r in rows}):
        for ts in sorted({r["train_set"] for r in rows if r["dataset"] == ds}):
            cand = [r for r in rows if r["dataset"] == ds and r["train_set"] == ts]
            base = next(r for r in cand if r["method"] == "patchcore")
            best = max((r for r in cand if r["method"] != "patchcore"), key=lambda r: r["val"]["image_auroc"],
                       default=None)
            if best is None:
                continue
            print(f"{ds} {ts}: best learned/fused on validation = {best['method']} {best['config']} "
                  f"val AUROC {best['val']['image_auroc']:.4f} (PatchCore {base['val']['image_auroc']:.4f}), "
                  f"val escapes {best['val']['escapes_at_1pct']:.1%} (PatchCore {base['val']['escapes_at_1pct']:.1%})")

    # The study's rule: a setting wins only if it beats PatchCore on the validation
    # halves of BOTH datasets (full training sets), in image AUROC and in escapes at 1%.
    print()
    full = {(r["dataset"], r["method"], r.get("config")): r for r in rows if r["train_set"] == "all"}
    datasets = sorted({k[0] for k in full})
    for (ds, method, config), r in sorted(full.items(), key=lambda kv: str(kv[0])):
        if ds != datasets[0] or method == "patchcore":
            continue
        cells, wins = [], True
        for d in datasets:
            other, base = full.get((d, method, config)), full.get((d, "patchcore", None))
            if other is None:
                cells.append(f"{d}: not run")
                wins = False
                continue
            da = other["val"]["image_auroc"] - base["val"]["image_auroc"]
            de = other["val"]["escapes_at_1pct"] - base["val"]["escapes_at_1pct"]
            wins &= da > 0 and de <= 0
            cells.append(f"{d}: AUROC {da:+.4f}, escapes {de:+.1%}")
        print(f"{method} {config}: {'; '.join(cells)}{'  <- beats PatchCore on both' if wins else ''}")

DATA = {"magnetic_tile": "/work/shared/datasets/magnetic_tile",
        "commutator": "/work/shared/datasets/kolektorsdd/commutator"}


def bootstrap(draws: int = 2000) -> None:
    from benchmarks.core_bench import validation_half
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.metrics import image_auroc
    for f in sorted(Path("benchmarks/.cache").glob("scores-study-discriminator-*.npz")):
        dataset = f.stem[len("scores-study-discriminator-"):].split("-")[0]
        items = MVTecCategory(DATA[dataset]).test_items
        y = np.array([it.is_defect for it in items])
        val, _ = validation_half([{"defect_type": it.defect_type, "path": it.path} for it in items])
        val = np.array(val)
        z = np.load(f)
        rng = np.random.default_rng(0)
        pos, neg = val[y[val]], val[~y[val]]
        samples = [np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]) for _ in range(draws)]
        for key in z.files:
            if key.endswith("/patchcore"):
                continue
            base = z[key.split("/")[0] + "/patchcore"]
            s = z[key]
            diffs = np.array([image_auroc(s[i], y[i]) - image_auroc(base[i], y[i]) for i in samples])
            d0 = image_auroc(s[val], y[val]) - image_auroc(base[val], y[val])
            lo, hi = np.quantile(diffs, [0.025, 0.975])
            print(f"{dataset} {key}: val AUROC minus PatchCore {d0:+.4f} (95% bootstrap {lo:+.4f} .. {hi:+.4f}, "
                  f"better in {np.mean(diffs > 0):.0%} of draws)")


if __name__ == "__main__":
    if "--bootstrap" in sys.argv:
        bootstrap()
        sys.exit()
    main()
