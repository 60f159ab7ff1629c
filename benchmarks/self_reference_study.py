"""Each part as its own reference: does it close the small-set gap on textured parts?
(#8: with 50 / 100 good tiles the fast profile ships 72% / 67% of defects at 1% false
rejects, target 35%.)

Magnetic tiles differ in brightness, contrast and texture scale from photo to photo, and 50
good tiles do not cover that spread: a good tile unlike all of them scores high everywhere.
A textured part carries its own reference: a crack or blowhole is rare *within* its photo,
while the rest of the surface shows what this tile's texture looks like. Here each test
patch also gets its distance to the same photo's other patches, leaving out those within
RADIUS grid cells (so a defect cannot match itself), and the patch's score is the smaller
of that and its distance to the bank ("min"), or the self distance alone ("self").

This can only suit textures: on a structured part (a commutator) a missing feature matches
the background elsewhere in the photo. KolektorSDD is run to show what it costs there.

    python -m benchmarks.self_reference_study [--datasets magnetic_tile kolektorsdd]

Writes benchmarks/results/study-self-reference.json; image AUROC and escapes at 1% false
rejects on test/ (validation half / report half / full set) for 50, 100 and 200 good parts.
"""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from benchmarks.detection_study import _backbone_maps, _patch_features
from benchmarks.synthetic_selection_study import DATASETS, ROOT, SEED, build_bank, run_each, study_args

OUT = ROOT / "benchmarks" / "results" / "study-self-reference.json"
SIZES = (50, 100, 200)
RADII = (2, 4)


def _self_distance(e, radius: int):
    """(n, c, h, w) patch features -> (n, h, w) distance of each patch to its nearest patch of
    the same photo outside a (2 radius + 1)^2 window around it."""
    import torch
    n, c, h, w = e.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    yy, xx = yy.reshape(-1), xx.reshape(-1)
    near = ((yy[:, None] - yy[None, :]).abs() <= radius) & ((xx[:, None] - xx[None, :]).abs() <= radius)
    out = []
    for f in e.permute(0, 2, 3, 1).reshape(n, h * w, c):
        d = torch.cdist(f, f).masked_fill(near, float("inf"))
        out.append(d.min(1).values.view(h, w))
    return torch.stack(out)


def run(name: str) -> dict[str, Any]:
    from benchmarks.core_bench import operating_point, part_labels, validation_half
    from lineguard.vision.backbones import NORMALIZATION, create_backbone
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.detectors.base import smooth_and_upsample
    from lineguard.vision.detectors.patchcore import nearest_distance
    from lineguard.vision.imageio import load_image
    from lineguard.vision.metrics import image_auroc
    from lineguard.vision.preprocess import Preprocess
    rel, size, backbone, _ = DATASETS[name]
    data = str((ROOT / rel).resolve())
    cat = MVTecCategory(data)
    pre = Preprocess(image_size=size)
    paths = list(cat.train_good)
    labels = part_labels(data, paths) or [str(i) for i in range(len(paths))]
    groups = sorted(set(labels))
    order = np.random.default_rng(SEED).permutation(len(groups))
    items = list(cat.test_items)
    test = np.stack([pre.apply(load_image(it.path))[0] for it in items])
    is_defect = np.array([it.defect_type != "good" for it in items])
    val = np.array(validation_half([{"defect_type": it.defect_type, "path": it.path} for it in items])[0])
    rep = np.setdiff1d(np.arange(len(items)), val)
    bb = create_backbone(backbone, ["stage2", "stage4"]).fold_bn().eval()
    mean, std = NORMALIZATION[backbone]
    # test features once; the self distances do not depend on the bank
    feats, selfd = [], {r: [] for r in RADII}
    for i in range(0, len(test), 16):
        e = _patch_features(_backbone_maps(bb, test[i:i + 16], mean, std))
        feats.append(e)
        for r in RADII:
            selfd[r].append(_self_distance(e, r))
    import torch
    feats = torch.cat(feats)
    selfd = {r: torch.cat(v) for r, v in selfd.items()}
    n, c, h, w = feats.shape
    q = feats.permute(0, 2, 3, 1).reshape(-1, c)

    def metrics(d) -> dict[str, Any]:
        s = smooth_and_upsample(d, size, 4.0).flatten(1).max(1).values.numpy()
        out = {}
        for half, pos in (("val", val), ("report", rep), ("full", np.arange(len(items)))):
            out[half] = {"image_auroc": round(image_auroc(s[pos], is_defect[pos]), 4),
                         "escapes_at_1pct": round(operating_point(s[pos], is_defect[pos])["escape_rate"], 3)}
        by_type = {}
        for t in sorted({it.defect_type for it in items} - {"good"}):
            sel = np.array([it.defect_type in (t, "good") for it in items])
            by_type[t] = round(image_auroc(s[sel], is_defect[sel]), 4)
        out["by_type"] = by_type
        return out
    results: dict[str, Any] = {"size": list(size), "backbone": backbone, "rows": []}
    for r in RADII:
        row = {"n_good": 0, "scoring": f"self, radius {r}", **metrics(selfd[r])}
        print(json.dumps(row), flush=True)
        results["rows"].append(row)
    for n_good in SIZES:
        picked: list[int] = []
        for g in order:
            if len(picked) >= n_good:
                break
            picked.extend(i for i, lab in enumerate(labels) if lab == groups[g])
        t0 = time.perf_counter()
        bank = build_bank(np.stack([pre.apply(load_image(paths[i]))[0] for i in picked]), bb, mean, std)
        d_bank = nearest_distance(q, bank).view(n, h, w)
        rows = [("bank (today)", d_bank)] + [(f"min(bank, self radius {r})", torch.minimum(d_bank, selfd[r]))
                                              for r in RADII]
        for label, d in rows:
            row = {"n_good": len(picked), "scoring": label, **metrics(d),
                   "seconds_bank": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            results["rows"].append(row)
    return results


def main() -> None:
    run_each(OUT, study_args(__doc__).datasets, run)


if __name__ == "__main__":
    main()
