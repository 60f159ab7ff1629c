"""PaDiM: a Gaussian (mean + covariance) of good features at every patch position; a
patch is as anomalous as its Mahalanobis distance (Defard et al., 2021).

Needs parts that are aligned from image to image (fixtures, a region of interest):
unlike PatchCore it learns what belongs *where*.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .base import BackboneDetector, Progress, smooth_and_upsample


class PaDiM(BackboneDetector):
    name = "padim"
    min_good_images = 10

    def __init__(self, backbone: str = "efficientnet_lite0", layers: tuple[str, ...] = ("stage2", "stage3", "stage4"),
                 n_features: int = 64, regularization: float = 0.01, sigma: float = 4.0,
                 batch_size: int = 16, seed: int = 0, pool_padding: str = "edge"):
        self.backbone = backbone
        self.layers = layers
        self.n_features = n_features
        self.regularization = regularization
        self.sigma = sigma
        self.batch_size = batch_size
        self.seed = seed
        # PaDiM learns a Gaussian per grid position, border positions included, so the
        # border treatment that matters for PatchCore (see base.POOL_PADDINGS) is learned
        # away here; kept as it was (not re-measured for PaDiM).
        self.pool_padding = pool_padding

    def fit(self, images: np.ndarray, progress: Progress = None) -> "PaDiM":
        self._check_enough(len(images))
        self.backbone_ = self._make_backbone()
        embed = self._patch_embedding()
        self.input_size_ = tuple(int(s) for s in images.shape[1:3])
        c_total = sum(self.backbone_.out_channels)
        g = torch.Generator().manual_seed(self.seed)
        k = min(self.n_features, c_total)
        self.channel_index_ = torch.randperm(c_total, generator=g)[:k].sort().values
        # Streaming sums: memory stays at one covariance per position however many
        # images there are.
        total, s1, s2, done = 0, None, None, 0
        for batch in self._batches(images):
            with torch.no_grad():
                emb = embed(torch.from_numpy(batch))[:, self.channel_index_]
            n, c, h, w = emb.shape
            self.grid_ = (h, w)
            f = emb.permute(0, 2, 3, 1).reshape(n, h * w, c)   # (B, P, k)
            if s1 is None:
                s1 = torch.zeros(f.shape[1], k, dtype=torch.float64)
                s2 = torch.zeros(f.shape[1], k, k, dtype=torch.float64)
            fd = f.double()
            s1 += fd.sum(0)
            s2 += torch.einsum("npi,npj->pij", fd, fd)
            total += len(batch)
            done += len(batch)
            if progress:
                progress(done, len(images))
        mean = s1 / total
        cov = (s2 - total * torch.einsum("pi,pj->pij", mean, mean)) / max(total - 1, 1)
        cov += self.regularization * torch.eye(k, dtype=torch.float64)
        self.mean_ = mean.float()
        self.inv_cov_ = torch.linalg.inv(cov).float()
        self.fitted_ = True
        return self

    def scoring_module(self) -> "PaDiMScoring":
        self._check_fitted()
        return PaDiMScoring(self)

    def state_tensors(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_.numpy(), "inv_cov": self.inv_cov_.numpy(),
                "channel_index": self.channel_index_.numpy().astype(np.int64), **self._backbone_tensors()}

    def state_meta(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size_), "grid": list(self.grid_)}

    @classmethod
    def from_state(cls, params: dict[str, Any], meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> "PaDiM":
        # files from before pool_padding existed averaged the border's inside cells only
        det = cls(**{"pool_padding": "edge", **params, "layers": tuple(params["layers"])})
        det._load_backbone_tensors(tensors)
        det.mean_ = torch.from_numpy(np.array(tensors["mean"], dtype=np.float32))
        det.inv_cov_ = torch.from_numpy(np.array(tensors["inv_cov"], dtype=np.float32))
        det.channel_index_ = torch.from_numpy(np.array(tensors["channel_index"], dtype=np.int64))
        det.input_size_ = tuple(meta["input_size"])
        det.grid_ = tuple(meta["grid"])
        det.fitted_ = True
        return det


class PaDiMScoring(nn.Module):
    """PaDiM's whole scoring path (see :meth:`Detector.scoring_module`): patch embeddings
    -> the fitted channel subset -> Mahalanobis distance to each position's Gaussian ->
    image score (the worst patch) and smoothed anomaly map."""

    def __init__(self, det: PaDiM):
        super().__init__()
        self.embed = det._patch_embedding()
        self.register_buffer("channel_index", det.channel_index_.long())
        self.register_buffer("mean", det.mean_.float())
        self.register_buffer("inv_cov", det.inv_cov_.float())
        self.input_size = tuple(int(s) for s in det.input_size_)
        self.sigma = float(det.sigma)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(images)
        h, w = emb.shape[2], emb.shape[3]
        f = emb[:, self.channel_index].permute(0, 2, 3, 1).reshape(-1, h * w, self.mean.shape[1])
        diff = f - self.mean[None]
        # (N, P, k) x (P, k, k) -> Mahalanobis per position, as batched matmuls
        t = torch.matmul(diff.permute(1, 0, 2), self.inv_cov).permute(1, 0, 2)
        d = (t * diff).sum(-1).clamp_min(0).sqrt().reshape(-1, h, w)
        maps = smooth_and_upsample(d, self.input_size, self.sigma)
        return d.flatten(1).max(1).values, maps
