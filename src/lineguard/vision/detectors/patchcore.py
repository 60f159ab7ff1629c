"""PatchCore: a memory bank of good patch features; a patch is as anomalous as its
distance to the nearest good patch (Roth et al., "Towards Total Recall in Industrial
Anomaly Detection", 2022).

One addition, ``position_norm``: nearest-neighbour distances are not equally large
everywhere on a good part. Patches at the image border see the convolutions' zero
padding and sit far from everything in the bank, so a plain max over patches mostly
measures the border and good parts score high. We learn each grid position's typical
distance (mean and spread, leave-one-image-out on training parts) and score a patch by
how unusual its distance is *for that position*. On magnetic-tile validation data
(train/good with painted defects) this raised image AUROC from 0.79 to 0.95 without
excluding any border from inspection.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from .base import BackboneDetector, PatchEmbedding, Progress, smooth_and_upsample


class PatchCore(BackboneDetector):
    name = "patchcore"
    min_good_images = 2

    def __init__(self, backbone: str = "efficientnet_lite0", layers: tuple[str, ...] = ("stage2", "stage4"),
                 coreset_ratio: float = 0.02, projection_dim: int = 64, image_score: str = "max",
                 top_k: int = 10, sigma: float = 4.0, position_norm: bool = True, norm_images: int = 64,
                 batch_size: int = 16, seed: int = 0, max_features_in_memory: Optional[int] = 200_000):
        self.backbone = backbone
        self.layers = layers
        self.coreset_ratio = coreset_ratio
        self.projection_dim = projection_dim
        self.image_score = image_score
        self.top_k = top_k
        self.sigma = sigma
        self.position_norm = position_norm
        self.norm_images = norm_images
        self.batch_size = batch_size
        self.seed = seed
        # None: hold all patch features, one greedy coreset (exact). A row count: stream
        # them through a bounded-memory coreset (detectors/_coreset.py) once a training
        # set has more rows than that. The default (200k rows, about 120 MB) keeps the
        # exact path for the few hundred images a line usually has, and bounds memory and
        # the quadratic greedy cost for larger sets.
        self.max_features_in_memory = max_features_in_memory

    # ------------------------------------------------------------------ fit
    def fit(self, images: np.ndarray, progress: Progress = None) -> "PatchCore":
        self._check_enough(len(images))
        if not 0 < self.coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        self.backbone_ = self._make_backbone()
        embed = self._patch_embedding()
        self.input_size_ = tuple(int(s) for s in images.shape[1:3])
        stream = None
        st = self.backbone_.out_strides[0]
        rows_per_image = -(-self.input_size_[0] // st) * -(-self.input_size_[1] // st)
        if self.max_features_in_memory and len(images) * rows_per_image > self.max_features_in_memory:
            from ._coreset import StreamingCoreset
            stream = StreamingCoreset(self.coreset_ratio, self.max_features_in_memory, self.projection_dim, self.seed)
        # Parts whose distances set the position statistics. Exact path: any training
        # part, scored leave-one-image-out. Streaming path: the bank cannot tell whose
        # patches it kept, so these parts stay out of the bank instead.
        n_norm = min(self.norm_images, len(images) if stream is None else len(images) // 4)
        norm_pick = set(np.unique(np.linspace(0, len(images) - 1, n_norm).round().astype(int)).tolist()) \
            if self.position_norm and n_norm > 0 else set()
        chunks, norm_rows, done = [], {}, 0
        for start, batch in zip(range(0, len(images), self.batch_size), self._batches(images)):
            with torch.no_grad():
                emb = embed(torch.from_numpy(batch))                # (B, C, h, w)
            self.grid_ = tuple(emb.shape[-2:])
            per_image = self.grid_[0] * self.grid_[1]
            rows = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
            if stream is not None:
                keep = [j for j in range(len(batch)) if start + j not in norm_pick]
                for j in range(len(batch)):
                    if start + j in norm_pick:  # a copy: a view would keep the whole batch alive
                        norm_rows[start + j] = rows[j * per_image:(j + 1) * per_image].clone()
                if keep:
                    stream.add(torch.cat([rows[j * per_image:(j + 1) * per_image] for j in keep]))
            else:
                chunks.append(rows)
            done += len(batch)
            if progress:
                progress(done, len(images))
        owner = None
        if stream is not None:
            bank = stream.finish()
            norm_feats = norm_rows
        else:
            feats = torch.cat(chunks)
            n_keep = max(1, int(round(len(feats) * self.coreset_ratio)))
            idx = greedy_coreset(feats, n_keep, self.projection_dim, self.seed)
            bank = feats[idx].contiguous()
            per_image = self.grid_[0] * self.grid_[1]
            owner = idx // per_image
            norm_feats = {i: feats[i * per_image:(i + 1) * per_image] for i in sorted(norm_pick)}
        self.memory_bank_ = bank
        self.bank_sq_norms_ = (bank * bank).sum(1)
        if self.position_norm:
            self._fit_position_stats(norm_feats, owner)
        self.fitted_ = True
        return self

    def _fit_position_stats(self, norm_feats: dict[int, torch.Tensor], owner: Optional[torch.Tensor]) -> None:
        """Mean and spread of each grid position's distance on good parts.

        Leave-one-image-out where the bank's owners are known: a training part is scored
        against the bank without its own patches, so the statistics match what an
        unseen good part gets.
        """
        h, w = self.grid_
        dists = []
        for i, q in norm_feats.items():
            if owner is None:
                dists.append(nearest_distance(q, self.memory_bank_, self.bank_sq_norms_).view(h, w))
                continue
            keep = owner != int(i)
            if not bool(keep.any()):
                continue
            dists.append(nearest_distance(q, self.memory_bank_[keep], self.bank_sq_norms_[keep]).view(h, w))
        if not dists:  # a single training part: nothing to compare against; stay neutral
            self.position_mean_ = torch.zeros(h, w)
            self.position_std_ = torch.ones(h, w)
            return
        d = torch.stack(dists)
        self.position_mean_ = d.mean(0)
        # floor the spread so a position where all good parts agree exactly cannot
        # turn a tiny difference into a huge score
        sd = d.std(0) if len(d) > 1 else torch.ones(h, w)
        self.position_std_ = sd.clamp_min(float(sd.median()) * 0.25 + 1e-6)

    # ---------------------------------------------------------------- score
    def scoring_module(self) -> "PatchCoreScoring":
        self._check_fitted()
        return PatchCoreScoring(self)

    # ---------------------------------------------------------------- state
    def state_tensors(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        out = {"memory_bank": self.memory_bank_.numpy(), **self._backbone_tensors()}
        if self.position_norm:
            out["position_mean"] = self.position_mean_.numpy()
            out["position_std"] = self.position_std_.numpy()
        return out

    def state_meta(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size_), "grid": list(self.grid_)}

    @classmethod
    def from_state(cls, params: dict[str, Any], meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> "PatchCore":
        # files from before position normalisation existed carry no statistics for it
        params = {"position_norm": False, **params, "layers": tuple(params["layers"])}
        det = cls(**params)
        det._load_backbone_tensors(tensors)
        det.memory_bank_ = torch.from_numpy(np.array(tensors["memory_bank"], dtype=np.float32))
        det.bank_sq_norms_ = (det.memory_bank_ * det.memory_bank_).sum(1)
        if det.position_norm:
            det.position_mean_ = torch.from_numpy(np.array(tensors["position_mean"], dtype=np.float32))
            det.position_std_ = torch.from_numpy(np.array(tensors["position_std"], dtype=np.float32))
        det.input_size_ = tuple(meta["input_size"])
        det.grid_ = tuple(meta["grid"])
        det.fitted_ = True
        return det


class PatchCoreScoring(nn.Module):
    """PatchCore's whole scoring path (see :meth:`Detector.scoring_module`): patch
    embeddings -> distance to the nearest bank row -> per-position normalisation ->
    image score and smoothed anomaly map. ``score()`` runs it; the exporter traces it.
    """

    # Query rows per distance matmul when run by torch: a batch of 16 large parts against
    # a large bank would otherwise need gigabytes for one (rows x bank) matrix.
    block = 4096

    def __init__(self, det: "PatchCore"):
        super().__init__()
        if det.image_score not in ("max", "topk"):
            raise ValueError(f"image_score must be 'max' or 'topk', got {det.image_score!r}")
        self.embed = det._patch_embedding()
        bank = det.memory_bank_.float()
        # -2 * bank^T: a power-of-two scale is exact, and one Gemm then gives
        # ||b||^2 - 2 q.b for every bank row at once.
        self.register_buffer("neg2_bank_t", (-2.0 * bank).T.contiguous())
        self.register_buffer("bank_sq", (bank * bank).sum(1))
        self.position_norm = bool(det.position_norm)
        if self.position_norm:
            self.register_buffer("position_mean", det.position_mean_.float())
            self.register_buffer("position_std", det.position_std_.float())
        self.input_size = tuple(int(s) for s in det.input_size_)
        self.sigma = float(det.sigma)
        self.image_score = det.image_score
        self.top_k = int(det.top_k)

    def _nearest(self, q: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or len(q) <= self.block:
            # One matmul for all rows. Traced, row blocks would be cut at the traced
            # batch's size and the exported graph would be wrong for other batch sizes.
            d2 = torch.addmm(self.bank_sq[None, :], q, self.neg2_bank_t).min(1).values + (q * q).sum(1)
            return d2.clamp_min(0).sqrt()
        # Same arithmetic per row, in blocks to bound memory; rows are independent.
        return torch.cat([self._nearest(q[i:i + self.block]) for i in range(0, len(q), self.block)])

    def _image_scores(self, d: torch.Tensor) -> torch.Tensor:
        flat = d.flatten(1)
        if self.image_score == "topk":
            # mean of the k worst patches: steadier than the single max on noisy surfaces
            return flat.topk(min(self.top_k, flat.shape[1]), dim=1).values.mean(1)
        return flat.max(1).values

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(images)                                   # (N, C, h, w)
        c, h, w = emb.shape[1], emb.shape[2], emb.shape[3]
        q = emb.permute(0, 2, 3, 1).reshape(-1, c)
        d = self._nearest(q).reshape(-1, h, w)
        if self.position_norm:
            d = (d - self.position_mean) / self.position_std
        maps = smooth_and_upsample(d, self.input_size, self.sigma)
        return self._image_scores(d), maps


def nearest_distance(q: torch.Tensor, bank: torch.Tensor, bank_sq: Optional[torch.Tensor] = None,
                     block: int = 4096) -> torch.Tensor:
    """Euclidean distance from each row of q to its nearest row of bank.

    ||q - b||^2 = ||q||^2 - 2 q.b + ||b||^2 as one matmul per block; the bank's norms are
    precomputed once at fit time. Blocks bound memory for large query sets.
    """
    if bank_sq is None:
        bank_sq = (bank * bank).sum(1)
    out = torch.empty(len(q), dtype=q.dtype)
    for i in range(0, len(q), block):
        qb = q[i:i + block]
        d2 = torch.addmm(bank_sq[None, :], qb, bank.T, beta=1.0, alpha=-2.0)
        m = d2.min(1).values + (qb * qb).sum(1)
        out[i:i + block] = m.clamp_min_(0).sqrt_()
    return out


def greedy_coreset(feats: torch.Tensor, n_keep: int, projection_dim: int, seed: int) -> torch.Tensor:
    """Greedy k-center selection: repeatedly keep the patch farthest from all kept ones.

    Runs on a random projection of the features (Johnson-Lindenstrauss keeps distances
    roughly), which makes each step several times cheaper on wide features.
    """
    n = len(feats)
    if n_keep >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    x = feats
    if 0 < projection_dim < feats.shape[1]:
        proj = torch.randn(feats.shape[1], projection_dim, generator=g) / projection_dim ** 0.5
        x = feats @ proj
    x_sq = (x * x).sum(1)
    start = int(torch.randint(n, (1,), generator=g))
    selected = torch.empty(n_keep, dtype=torch.long)
    min_d = torch.full((n,), float("inf"))
    cur = start
    for i in range(n_keep):
        selected[i] = cur
        c = x[cur]
        d = x_sq - 2 * (x @ c) + c.dot(c)
        torch.minimum(min_d, d, out=min_d)
        cur = int(torch.argmax(min_d))
    return selected
