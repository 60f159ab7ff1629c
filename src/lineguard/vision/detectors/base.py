"""The detector contract, after scikit-learn's estimators.

A detector is configured in ``__init__`` (arguments stored unchanged), learns in
``fit(good_images)``, keeps learned state in attributes ending in ``_``, and answers
``score(images) -> (image_scores, anomaly_maps)``. Images here are already the model
input: a uint8 array (N, S, S, 3) RGB; the Inspector owns loading, region of interest
and mapping results back to the part's own resolution.

Scoring is written once per detector: ``scoring_module()`` returns a torch
``nn.Module`` (uint8 (N, H, W, 3) -> (scores (N,), maps (N, H, W)), the fitted state as
buffers) that ``score()`` runs here and the ONNX exporter traces unchanged. A change to
how a detector scores is made in its module and reaches the exported model by itself.
The shared parts of that path live here: :class:`ImageNormalization`,
:class:`PatchEmbedding` (backbone + local aggregation) and :func:`smooth_and_upsample`.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import NORMALIZATION, StagedBackbone, create_backbone
from ..bundle import POOL_PADDINGS
from ..errors import DatasetError, NotFittedError

Progress = Optional[Callable[[int, int], None]]


class Detector:
    """Base class: parameters, fitted-state bookkeeping, (de)serialisation, and ``score``
    on top of the detector's scoring module."""

    name: str = ""
    min_good_images: int = 1
    batch_size: int = 16
    # What the scores come from, recorded beside thresholds set on them: exported
    # runtimes report their own (onnxruntime / openvino, fp32 / int8 / bf16).
    runtime: str = "torch"
    precision: str = "fp32"

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

    def fit_cross_scored(self, images: np.ndarray, progress: Progress = None,
                         groups: Optional[Sequence[Any]] = None, folds: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Fit on every image; return each image's score and map from a model that did
        not learn from it (K-fold cross-fitting, whole groups to a fold), so every good
        part serves both the model and its threshold. Detectors with a cheaper exact
        way (PatchCore: leave-one-part-out on its bank) override this."""
        n = len(images)
        labels = np.arange(n) if groups is None else np.unique([str(g) for g in groups], return_inverse=True)[1]
        uniq = np.unique(labels)
        k = min(folds, len(uniq))
        if k < 2:
            raise DatasetError("cross-fitting needs good parts from at least 2 groups (parts, lots); "
                               "give more good parts or different group labels")
        order = np.random.default_rng(getattr(self, "seed", 0)).permutation(len(uniq))
        fold = (order % k)[np.searchsorted(uniq, labels)]
        # more folds (up to one per group) until every fold's model has enough parts to learn from
        while k < len(uniq) and n - np.bincount(fold).max() < self.min_good_images:
            k += 1
            fold = (order % k)[np.searchsorted(uniq, labels)]
        scores: Optional[np.ndarray] = None
        maps: Optional[np.ndarray] = None
        # k fold fits and the final one: each reports its share, so the progress only rises
        share = (lambda i: (lambda d, t: progress(i * t + d, (k + 1) * t))) if progress else (lambda i: None)
        for f in range(k):
            test = np.flatnonzero(fold == f)
            train = np.flatnonzero(fold != f)
            clone = type(self)(**self.get_params())
            clone.fit(images[train], progress=share(f))
            s, m = clone.score(images[test])
            if scores is None:
                scores = np.empty(n, np.float32)
                maps = np.empty((n, *m.shape[1:]), np.float32)
            scores[test], maps[test] = s, m
        self.fit(images, progress=share(k))
        assert scores is not None and maps is not None
        return scores, maps

    # --- scoring ---------------------------------------------------------------------
    def scoring_module(self) -> nn.Module:
        """The whole scoring path as one module: uint8 (N, H, W, 3) RGB model inputs ->
        (image scores float32 (N,), anomaly maps float32 (N, H, W)).

        Everything fitted that scoring needs must be a buffer or submodule of it (the
        exporter writes those, and only those, into the graph), and ``forward`` must
        trace: no data-dependent Python control flow. A detector without one can still
        override ``score`` but cannot be exported.
        """
        raise NotImplementedError(f"{type(self).__name__} provides no scoring module")

    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image scores (N,) and anomaly maps (N, H, W) of uint8 model inputs (N, H, W, 3)."""
        self._check_fitted()
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"model input must be (N, H, W, 3) RGB, got shape {images.shape}")
        module = self._scoring_module_cached()
        scores, maps = [], []
        with torch.no_grad():
            for i in range(0, len(images), self.batch_size):
                s, m = module(torch.from_numpy(np.ascontiguousarray(images[i:i + self.batch_size])))
                scores.append(s)
                maps.append(m)
        if not scores:
            h, w = images.shape[1:3]
            return np.zeros(0, np.float32), np.zeros((0, h, w), np.float32)
        return torch.cat(scores).numpy(), torch.cat(maps).numpy()

    def _scoring_module_cached(self) -> nn.Module:
        # Built once per fitted state: building copies state into buffers (PatchCore's
        # bank), which a single-part inspection should not pay for every time. Rebuilt
        # when any fitted attribute is replaced (a refit, or a caller swapping a bank);
        # the cache holds the attributes it was built from, so their ids stay unique.
        # Changing a fitted tensor in place is not seen: replace it instead.
        state = [(k, v) for k, v in sorted(vars(self).items()) if k.endswith("_") and not k.startswith("_")]
        cached = getattr(self, "_scoring", None)
        if cached is None or len(cached[0]) != len(state) or any(
                ka != kb or va is not vb for (ka, va), (kb, vb) in zip(cached[0], state)):
            cached = (state, self.scoring_module().eval())
            self._scoring = cached
        return cached[1]


class ImageNormalization(nn.Module):
    """uint8 (N, H, W, 3) RGB -> float32 (N, 3, H, W) normalised as the backbone was trained.

    One multiply and one subtract (x * 1/(255 std) - mean/std): the same arithmetic in
    torch and in the exported graph, where it costs two element-wise nodes.
    """

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        std_t = torch.tensor(std, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std_t)).view(1, 3, 1, 1))
        self.register_buffer("shift", (torch.tensor(mean) / torch.tensor(std)).float().view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 3, 1, 2).float() * self.scale - self.shift


# How the 3x3 local averaging treats the image border. "zeros" averages over all nine
# cells, the padding's zeros included, as the PatchCore paper does; "edge" averages the
# cells inside the image only (lineguard before 0.2). Measured on real parts (Lite0,
# stages 2+4, 224 px, every other setting equal): image AUROC 0.972 vs 0.929 on
# magnetic_tile and 0.810 vs 0.676 on KolektorSDD (benchmarks/results/study-*.json).
# The zeros shrink border patches' features towards the origin in the same way on every
# part, so good borders match good borders in the bank; averaging only the inside cells
# leaves border patches with an unusual mix of features that then look like defects.
# (the names live in vision.bundle, which checks a model file's settings against them)


class PatchEmbedding(nn.Module):
    """uint8 (N, H, W, 3) -> (N, C, h, w) patch embeddings on the finest requested grid:
    normalise, pretrained backbone, 3x3 local averaging, coarser layers upsampled."""

    def __init__(self, backbone: StagedBackbone, mean: tuple[float, float, float], std: tuple[float, float, float],
                 pool_padding: str = "zeros", resize_to: Optional[tuple[int, int]] = None):
        super().__init__()
        # Another input size (PatchCore's extra scales): the normalised input resized
        # (bilinear) before the backbone, inside the model, so training, torch scoring and
        # the exported graph all see the same pixels. Plain bilinear: an antialiased shrink
        # (as matrices, which export) shipped more defects at the 1% point on both
        # products' validation halves (README, "The quality profile sees each part at two
        # input sizes").
        self.resize_to = None if resize_to is None else (int(resize_to[0]), int(resize_to[1]))
        if pool_padding not in POOL_PADDINGS:
            raise ValueError(f"pool_padding must be one of {POOL_PADDINGS}, got {pool_padding!r}")
        self.normalize = ImageNormalization(mean, std)
        # A submodule, so the exporter writes its weights as graph initializers.
        self.backbone = backbone
        self.count_include_pad = pool_padding == "zeros"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        if self.resize_to is not None:
            x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False)
        feats = self.backbone(x)
        # 3x3 local averaging gives each patch its neighbourhood's context, which makes
        # the nearest-neighbour distance robust to one-pixel pose jitter.
        feats = [F.avg_pool2d(f, 3, 1, 1, count_include_pad=self.count_include_pad) for f in feats]
        h, w = feats[0].shape[-2:]
        feats = [f if f.shape[-2:] == (h, w) else F.interpolate(f, size=(h, w), mode="bilinear",
                                                                   align_corners=False) for f in feats]
        return torch.cat(feats, dim=1)


class BackboneDetector(Detector):
    """Shared feature path: pretrained backbone -> local aggregation -> one patch grid."""

    backbone: str
    layers: tuple[str, ...]

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

    def _patch_embedding(self, resize_to: Optional[tuple[int, int]] = None) -> PatchEmbedding:
        """The embedding both ``fit`` and the scoring module use, so training and scoring
        see the very same features (``resize_to``: the input seen at another size)."""
        return PatchEmbedding(self.backbone_, *NORMALIZATION[self.backbone],
                              pool_padding=getattr(self, "pool_padding", "zeros"), resize_to=resize_to)

    def _batches(self, images: np.ndarray) -> Iterable[np.ndarray]:
        for i in range(0, len(images), self.batch_size):
            yield np.ascontiguousarray(images[i:i + self.batch_size])


def smooth_and_upsample(patch_scores: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """(N, h, w) patch scores -> (N, H, W) map at input size, Gaussian-smoothed.

    Smoothing at input resolution (sigma in input pixels) removes the blockiness of
    the patch grid so region outlines follow the defect rather than the grid.

    Bilinear upsampling (half-pixel centres), reflect padding and the Gaussian are each
    linear and act on rows and columns separately, so the whole step is one matrix per
    axis: map = A_h @ scores @ A_w^T (:func:`axis_operator`). The same numbers as
    upsampling then convolving at input size (to float rounding), at a fraction of the
    work: two small matmuls instead of a 25-tap convolution over every input pixel
    (ONNX Runtime spent ~9% of the fast model's time on the convolution form).
    """
    # int(): while the exporter traces, a shape is a tensor; the grid is fixed by the
    # model's input size, so the operators are constants of the exported graph
    h, w = (int(v) for v in patch_scores.shape[-2:])
    a_h = torch.from_numpy(axis_operator(h, int(size[0]), float(sigma))).to(patch_scores.dtype)
    a_w = torch.from_numpy(axis_operator(w, int(size[1]), float(sigma))).to(patch_scores.dtype)
    return torch.matmul(torch.matmul(a_h, patch_scores), a_w.t())


@functools.lru_cache(maxsize=64)
def axis_operator(n_in: int, n_out: int, sigma: float) -> np.ndarray:
    """(n_out, n_in) float32: one axis of :func:`smooth_and_upsample`.

    Bilinear upsampling as torch's ``interpolate(align_corners=False)`` does it
    (source position (i + 0.5) * n_in / n_out - 0.5, clamped at 0, clamped at the last
    cell), then a Gaussian of ``sigma`` output pixels, truncated at 3 sigma, over the
    reflect-padded result. Built in numpy so that an ONNX export sees a constant, not
    the ops that built it.
    """
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    up = np.zeros((n_out, n_in))
    np.add.at(up, (np.arange(n_out), i0), 1.0 - lam)
    np.add.at(up, (np.arange(n_out), i1), lam)
    if sigma <= 0:
        return up.astype(np.float32)
    r = int(round(3 * sigma))
    if r >= n_out:
        raise ValueError(f"a smoothing sigma of {sigma} px needs a map wider than {r} px; got {n_out}")
    t = np.arange(-r, r + 1)
    k = np.exp(-(t ** 2) / (2.0 * sigma ** 2))
    k /= k.sum()
    # out[i] = sum_j k[j] * x[reflect(i + j - r)], reflecting without repeating the edge
    src_idx = np.arange(n_out)[:, None] + t[None, :]
    src_idx = np.abs(src_idx)
    src_idx = np.where(src_idx > n_out - 1, 2 * (n_out - 1) - src_idx, src_idx)
    blur = np.zeros((n_out, n_out))
    np.add.at(blur, (np.repeat(np.arange(n_out), len(t)), src_idx.ravel()), np.tile(k, n_out))
    return (blur @ up).astype(np.float32)
