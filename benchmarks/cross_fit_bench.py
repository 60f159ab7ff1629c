"""How far each way of scoring the training parts out of sample sets the threshold from
where it should be (issue #8, calibration from every good part).

The set-up of ``tests/test_cross_fit_calibration.py``: many good sets of 19 synthetic
parts (``lineguard.vision.synth.make_part``, each seed another good part), a 10% target,
and 40 new good parts judged by each set's threshold. The conformal quantile of 19
exchangeable scores promises between 5% and 10% false rejects on average; far below is
a threshold that ships defects for nothing, above is a broken promise. PatchCore (2%
coreset) as the product fits it, float32 search so that only the calibration differs:

- ``leave-out``: each part's bank rows left out, nothing in their place (until 2026-12-02);
- ``refill``: the product's: as many rows picked again by the greedy rule (``_refill.py``);
- ``refit-K``: the coreset refit on K-1 folds of the parts, each fold scored by its model,
  at the same 2% ratio (fewer rows than the final bank) or with the final bank's row
  count (``-rows``); ``refit-19-rows`` is an exact refit per part.

    python -m benchmarks.cross_fit_bench [--size 64] [--sets 12]

Prints one JSON line per variant (mean false-reject rate over the sets, and each set's);
``benchmarks/results/cross-fit-*.jsonl`` holds the runs quoted in the README.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

N_TRAIN, N_NEW, TARGET = 19, 40, 0.1


def _refit_scores(x: np.ndarray, k: int, same_rows: bool, seed: int) -> np.ndarray:
    from lineguard.vision.detectors import PatchCore
    fold = np.random.default_rng(seed).permutation(len(x)) % k
    scores = np.empty(len(x))
    for f in range(k):
        train = np.flatnonzero(fold != f)
        ratio = 0.02 * len(x) / len(train) if same_rows else 0.02
        det = PatchCore(seed=seed, coreset_ratio=min(1.0, ratio), search="float32").fit(x[train])
        scores[fold == f] = det.score(x[fold == f])[0]
    return scores


def run(size: int, n_sets: int) -> dict[str, list[float]]:
    import torch

    from lineguard.vision.calibration import conformal_threshold
    from lineguard.vision.detectors import PatchCore
    from lineguard.vision.detectors import patchcore as pc
    from lineguard.vision.synth import make_part
    torch.set_num_threads(2)
    parts = np.stack([make_part(s, size=size)[0] for s in range(n_sets * N_TRAIN + N_NEW)])
    new = parts[-N_NEW:]
    rates: dict[str, list[float]] = {}
    for k in range(n_sets):
        x = parts[k * N_TRAIN:(k + 1) * N_TRAIN]
        det = PatchCore(seed=k, search="float32")
        cal = {"refill": det.fit_cross_scored(x)[0]}
        new_scores = det.score(new)[0]
        # the same fit with the refill switched off: the part's rows left out, nothing in their place
        real = pc.GreedyRefill
        pc.GreedyRefill = _NoRefill
        try:
            cal["leave-out"] = PatchCore(seed=k, search="float32").fit_cross_scored(x)[0]
        finally:
            pc.GreedyRefill = real
        for folds, same_rows in ((5, False), (5, True), (10, True), (N_TRAIN, True)):
            cal[f"refit-{folds}{'-rows' if same_rows else ''}"] = _refit_scores(x, folds, same_rows, k)
        for name, s in cal.items():
            threshold, _ = conformal_threshold(s, TARGET)
            rates.setdefault(name, []).append(float((new_scores > threshold).mean()))
    return rates


class _NoRefill:
    def __init__(self, *args, **kwargs):
        pass

    def rows_for(self, group: int):
        import torch
        return torch.empty(0, dtype=torch.long)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--sets", type=int, default=12)
    a = ap.parse_args()
    for name, r in run(a.size, a.sets).items():
        print(json.dumps({"variant": name, "size": a.size, "sets": a.sets, "target": TARGET,
                          "mean_false_reject_rate": round(float(np.mean(r)), 4), "per_set": [round(v, 3) for v in r]}),
              flush=True)


if __name__ == "__main__":
    main()
