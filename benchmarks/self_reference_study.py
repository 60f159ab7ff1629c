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
rejects on test/ (validation half / report half / full set), pixel AUROC and AUPRO, for
50, 100 and 200 good parts (the synthetic-selection split's first ones).
"""
from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.detection_study import _backbone_maps, _patch_features
from benchmarks.shift_study import judge, load
from benchmarks.synthetic_selection_study import ROOT, run_each, study_args

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
    import torch

    from lineguard.vision.detectors.base import smooth_and_upsample
    from lineguard.vision.detectors.patchcore import nearest_distance
    ctx = load(name)
    size = ctx["size"]
    # test features once; the self distances do not depend on the bank
    feats, selfd = [], {r: [] for r in RADII}
    for i in range(0, len(ctx["test"]), 16):
        e = _patch_features(_backbone_maps(ctx["bb"], ctx["test"][i:i + 16], ctx["mean"], ctx["std"]))
        feats.append(e)
        for r in RADII:
            selfd[r].append(_self_distance(e, r))
    feats = torch.cat(feats)
    selfd = {r: torch.cat(v) for r, v in selfd.items()}
    n, c, h, w = feats.shape
    q = feats.permute(0, 2, 3, 1).reshape(-1, c)

    def emit(row: dict[str, Any], d) -> None:
        row.update(judge(smooth_and_upsample(d, size, 4.0).numpy(), ctx))
        print(json.dumps(row), flush=True)
        results["rows"].append(row)
    results: dict[str, Any] = {"size": list(size), "backbone": ctx["backbone"], "rows": []}
    for r in RADII:
        emit({"n_good": 0, "scoring": f"self, radius {r}"}, selfd[r])
    for n_good in SIZES:
        t0 = time.perf_counter()
        n_parts, bank = ctx["bank_of"](n_good)
        d_bank = nearest_distance(q, bank).view(n, h, w)
        seconds = round(time.perf_counter() - t0, 1)
        emit({"n_good": n_parts, "scoring": "bank (today)", "seconds_bank": seconds}, d_bank)
        for r in RADII:
            emit({"n_good": n_parts, "scoring": f"min(bank, self radius {r})", "seconds_bank": seconds},
                 torch.minimum(d_bank, selfd[r]))
    return results


def main() -> None:
    run_each(OUT, study_args(__doc__).datasets, run)


if __name__ == "__main__":
    main()
