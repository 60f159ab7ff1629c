"""PaDiM: a Gaussian (mean + covariance) of good features at every patch position; a
patch is as anomalous as its Mahalanobis distance (Defard et al., 2021).

Needs parts that are aligned from image to image (fixtures, a region of interest):
unlike PatchCore it learns what belongs *where*.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import BackboneDetector, Progress, smooth_and_upsample


class PaDiM(BackboneDetector):
    name = "padim"
    min_good_images = 10

    def __init__(self, backbone: str = "efficientnet_lite0", layers: tuple[str, ...] = ("stage2", "stage3", "stage4"),
                 n_features: int = 64, regularization: float = 0.01, sigma: float = 4.0,
                 batch_size: int = 16, seed: int = 0):
        self.backbone = backbone
        self.layers = layers
        self.n_features = n_features
        self.regularization = regularization
        self.sigma = sigma
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, images: np.ndarray, progress: Progress = None) -> "PaDiM":
        self._check_enough(len(images))
        self.backbone_ = self._make_backbone()
        self.input_size_ = tuple(int(s) for s in images.shape[1:3])
        c_total = sum(self.backbone_.out_channels)
        g = torch.Generator().manual_seed(self.seed)
        k = min(self.n_features, c_total)
        self.channel_index_ = torch.randperm(c_total, generator=g)[:k].sort().values
        # Streaming sums: memory stays at one covariance per position however many
        # images there are.
        total, s1, s2, done = 0, None, None, 0
        for batch in self._batches(images):
            f = self._features(batch)                        # (B, P, k)
            self.grid_ = self._grid
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

    def _features(self, batch: np.ndarray) -> torch.Tensor:
        emb = self._embed(self._to_tensor(batch))[:, self.channel_index_]
        n, c, h, w = emb.shape
        self._grid = (h, w)
        return emb.permute(0, 2, 3, 1).reshape(n, h * w, c)

    @torch.no_grad()
    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        scores, maps = [], []
        h, w = self.grid_
        for batch in self._batches(images):
            diff = self._features(batch) - self.mean_[None]
            d2 = torch.einsum("npi,pij,npj->np", diff, self.inv_cov_, diff).clamp_min_(0)
            d = d2.sqrt().view(len(batch), h, w)
            scores.append(d.flatten(1).max(1).values)
            maps.append(smooth_and_upsample(d, self.input_size_, self.sigma))
        return torch.cat(scores).numpy(), torch.cat(maps).numpy()

    def state_tensors(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_.numpy(), "inv_cov": self.inv_cov_.numpy(),
                "channel_index": self.channel_index_.numpy().astype(np.int64), **self._backbone_tensors()}

    def state_meta(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size_), "grid": list(self.grid_)}

    @classmethod
    def from_state(cls, params: dict[str, Any], meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> "PaDiM":
        det = cls(**{**params, "layers": tuple(params["layers"])})
        det._load_backbone_tensors(tensors)
        det.mean_ = torch.from_numpy(np.array(tensors["mean"], dtype=np.float32))
        det.inv_cov_ = torch.from_numpy(np.array(tensors["inv_cov"], dtype=np.float32))
        det.channel_index_ = torch.from_numpy(np.array(tensors["channel_index"], dtype=np.int64))
        det.input_size_ = tuple(meta["input_size"])
        det.grid_ = tuple(meta["grid"])
        det.fitted_ = True
        return det
