"""A PatchCore memory bank built from shards of good parts on many workers.

Each shard's patch features are extracted where the shard is (a Ray task per shard)
and cut down there by greedy k-center to ``oversample x coreset_ratio`` of its rows; the
driver then picks the bank, ``coreset_ratio`` of all rows, by greedy k-center over the
union of what the shards kept. Only the kept rows travel (for ratio 0.02 and
oversample 4, 8% of the features), so the good set can be far larger than one
machine's memory. k-center selections compose: centres chosen from the union of
per-shard centres cover the data nearly as well as centres chosen from all of it; the
quality given up is measured against the single-machine coreset in
tests/scale/test_sharded_bank_ray.py (a stated bound on image AUROC) and docs/scale.md.

The bank alone is fitted here: thresholds come from good parts the bank did not learn
from (``Inspector.recalibrate``), as after any training that holds parts out.
"""
from __future__ import annotations

import math
import os
from typing import Any, Optional, Sequence, Union

import numpy as np

Shard = Union[np.ndarray, Sequence[Union[str, os.PathLike]]]


def _shard_features(shard: Shard, params: dict[str, Any], preprocess: Optional[dict[str, Any]],
                    keep_ratio: float, seed: int
                    ) -> tuple[np.ndarray, int, tuple[int, int], tuple[int, int], np.ndarray]:
    """One shard: patch features of every part, reduced by greedy k-center.
    Returns (kept rows, rows seen, patch grid, model input size, each channel's min and
    max over all rows: the int8 bank search's query scale is set from every patch, not
    only the kept ones)."""
    import torch

    from ...vision.detectors.patchcore import PatchCore, greedy_coreset
    if isinstance(shard, np.ndarray):
        x = shard
    else:
        from ...vision.preprocess import Preprocess
        if preprocess is None:
            raise ValueError("shards of image paths need the preprocess settings (Preprocess.to_dict())")
        pre = Preprocess.from_dict(preprocess)
        x = np.stack([pre.load(p)[0] for p in shard])
    det = PatchCore(**params)
    det.backbone_ = det._make_backbone()
    embed = det._patch_embedding()
    rows, grid = [], (0, 0)
    for batch in det._batches(x):
        with torch.no_grad():
            emb = embed(torch.from_numpy(batch))
        grid = tuple(emb.shape[-2:])
        rows.append(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]))
    feats = torch.cat(rows)
    k = max(1, min(len(feats), math.ceil(keep_ratio * len(feats))))
    idx = greedy_coreset(feats, k, det.projection_dim, seed)
    return (feats[idx].numpy(), len(feats), grid, tuple(int(s) for s in x.shape[1:3]),
            torch.stack([feats.amin(0), feats.amax(0)]).numpy())


def fit_sharded(shards: Sequence[Shard], ray_address: Optional[str] = None, oversample: float = 4.0,
                preprocess: Optional[dict[str, Any]] = None, **params: Any):
    """A fitted :class:`PatchCore` whose bank was built shard by shard.

    ``shards``: each an array of model inputs (N, H, W, 3) uint8, or a list of image
    paths every worker can read (then ``preprocess``, a ``Preprocess.to_dict()``, says
    how to turn them into model inputs). ``ray_address``: None runs the shards one after
    another in this process (for a machine without Ray), else a Ray address or ``local``:
    one task per shard. Both run the same method, equal up to float rounding (features
    measured up to 9e-6 apart: other processes, other thread counts), which can change
    which rows the greedy coreset picks; the bank's shape is the same, its rows may differ.
    ``params``: PatchCore's settings.
    """
    import torch

    from ...vision.detectors.patchcore import PatchCore, greedy_coreset
    if not shards:
        raise ValueError("give at least one shard of good parts")
    empty = [i for i, shard in enumerate(shards) if len(shard) == 0]
    if empty:       # (a day's folder with no photos) failed deep in numpy, on a worker
        raise ValueError(f"shard(s) {', '.join(map(str, empty))} hold no parts: leave them out")
    det = PatchCore(**params)
    if not 0 < det.coreset_ratio <= 1:
        raise ValueError(f"coreset_ratio must be in (0, 1], got {det.coreset_ratio}")
    if det.position_norm:
        raise ValueError("position_norm needs every part's leave-one-out distances, which a sharded bank does not "
                         "keep; build it with position_norm=False")
    params = det.get_params()
    keep = min(1.0, oversample * det.coreset_ratio)
    seeds = [det.seed + 1000 + i for i in range(len(shards))]   # each shard its own start point
    if ray_address is None:
        outs = [_shard_features(s, params, preprocess, keep, sd) for s, sd in zip(shards, seeds)]
    else:
        from . import connect
        ray = connect(ray_address)
        task = ray.remote(num_cpus=1)(_shard_features)
        outs = ray.get([task.remote(s, params, preprocess, keep, sd) for s, sd in zip(shards, seeds)])
    grids = {o[2] for o in outs}
    sizes = {o[3] for o in outs}
    if len(grids) != 1 or len(sizes) != 1:
        raise ValueError(f"shards were made at different input sizes {sorted(sizes)}: preprocess them alike")
    union = torch.from_numpy(np.concatenate([o[0] for o in outs]))
    seen = sum(o[1] for o in outs)
    n_keep = max(1, min(len(union), int(round(seen * det.coreset_ratio))))
    bank = union[greedy_coreset(union, n_keep, det.projection_dim, det.seed)].contiguous()
    det.backbone_ = det._make_backbone()
    det.grid_ = grids.pop()
    det.input_size_ = sizes.pop()
    det.memory_bank_ = bank
    det.bank_sq_norms_ = (bank * bank).sum(1)
    ranges = np.stack([o[4] for o in outs])                    # (shards, 2, C)
    det.feature_range_ = torch.from_numpy(np.stack([ranges[:, 0].min(0), ranges[:, 1].max(0)]))
    det.shards_ = [{"rows_seen": int(o[1]), "rows_kept": int(len(o[0]))} for o in outs]
    det.fitted_ = True
    return det
