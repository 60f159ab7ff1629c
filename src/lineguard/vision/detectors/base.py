"""The detector contract, after scikit-learn's estimators.

A detector is configured in ``__init__`` (arguments stored unchanged), learns in
``fit(good_images)``, keeps learned state in attributes ending in ``_``, and answers
``score(images) -> (image_scores, anomaly_maps)``. Images here are already the model
input: a uint8 array (N, S, S, 3) RGB; the Inspector owns loading, region of interest
and mapping results back to the part's own resolution.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Optional

import numpy as np
import torch
from torch.nn import functional as F

from ..backbones import NORMALIZATION, StagedBackbone, create_backbone
from ..errors import DatasetError, NotFittedError

Progress = Optional[Callable[[int, int], None]]


class Detector:
    """Base class: parameters, fitted-state bookkeeping and (de)serialisation."""

    name: str = ""
    min_good_images: int = 1

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(good_images) first")

    def _check_enough(self, n: int) -> None:
        if n < self.min_good_images:
            raise DatasetError(f"{self.name} needs at least {self.min_good_images} good images to learn from, "
                               f"got {n}; add more photos of good parts")

    # --- fitted state as plain tensors, for the model file -----------------------------
    def state_tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def state_meta(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_state(cls, params: dict[str, Any], meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> "Detector":
        raise NotImplementedError

    def fit(self, images: np.ndarray, progress: Progress = None) -> "Detector":
        raise NotImplementedError

    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class BackboneDetector(Detector):
    """Shared feature path: pretrained backbone -> local aggregation -> one patch grid."""

    backbone: str
    layers: tuple[str, ...]
    batch_size: int = 16

    def _make_backbone(self, pretrained: bool = True) -> StagedBackbone:
        bb = create_backbone(self.backbone, list(self.layers), pretrained=pretrained)
        # Folding BN is exact up to float rounding and speeds up every conv; the folded
        # weights are what the model file stores, so a loaded model computes identically.
        return bb.fold_bn().eval()

    def _backbone_tensors(self) -> dict[str, np.ndarray]:
        return {f"backbone.{k}": v.detach().cpu().numpy() for k, v in self.backbone_.state_dict().items()}

    def _load_backbone_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        bb = self._make_backbone(pretrained=False)
        state = {k[len("backbone."):]: torch.from_numpy(np.array(v)) for k, v in tensors.items()
                 if k.startswith("backbone.")}
        missing, unexpected = bb.load_state_dict(state, strict=False)
        if missing or unexpected:
            from ..errors import BundleError
            raise BundleError(f"backbone weights in the model file do not fit {self.backbone} "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.backbone_ = bb.eval()

    def _to_tensor(self, images: np.ndarray) -> torch.Tensor:
        mean, std = NORMALIZATION[self.backbone]
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x - m) / s

    @torch.no_grad()
    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised -> (N, C, h, w) patch embeddings on the finest requested grid."""
        feats = self.backbone_(x)
        # 3x3 local averaging gives each patch its neighbourhood's context, which makes
        # the nearest-neighbour distance robust to one-pixel pose jitter.
        feats = [F.avg_pool2d(f, 3, 1, 1, count_include_pad=False) for f in feats]
        h, w = feats[0].shape[-2:]
        feats = [f if f.shape[-2:] == (h, w) else F.interpolate(f, size=(h, w), mode="bilinear",
                                                                   align_corners=False) for f in feats]
        return torch.cat(feats, dim=1)

    def _batches(self, images: np.ndarray) -> Iterable[np.ndarray]:
        for i in range(0, len(images), self.batch_size):
            yield images[i:i + self.batch_size]


def smooth_and_upsample(patch_scores: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """(N, h, w) patch scores -> (N, H, W) map at input size, Gaussian-smoothed.

    Smoothing at input resolution (sigma in input pixels) removes the blockiness of
    the patch grid so region outlines follow the defect rather than the grid.
    """
    m = F.interpolate(patch_scores[:, None], size=size, mode="bilinear", align_corners=False)
    if sigma > 0:
        r = int(round(3 * sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
        k = (k / k.sum()).to(m.dtype)
        m = F.pad(m, (r, r, r, r), mode="reflect")
        m = F.conv2d(m, k.view(1, 1, 1, -1))
        m = F.conv2d(m, k.view(1, 1, -1, 1))
    return m[:, 0]
