"""PatchCore: a memory bank of good patch features; a patch is as anomalous as its
distance to the nearest good patch (Roth et al., "Towards Total Recall in Industrial
Anomaly Detection", 2022).

What the defaults do, and why (measured on real parts, benchmarks/results/study-*.json):

- Patch features are averaged over 3x3 neighbours with the border's zero padding counted
  (``pool_padding="zeros"``, as the paper). Averaging only the cells inside the image
  made border patches look unlike anything in the bank, which we then had to undo with
  per-position normalisation; counting the zeros needs none (see base.POOL_PADDINGS).
- The image score is the peak of the smoothed anomaly map (``image_score="map_max"``),
  not of the raw patch grid: a single noisy patch is damped, a defect that spans a few
  patches is not.
- ``position_norm`` (off by default): each grid position's distance scored against its
  typical value on good parts. It compensated for the old border treatment; with zero
  padding it no longer helps on average and it hurt another product, so it is opt-in.
- Every training part's patches stay in the bank; the threshold comes from the training
  parts themselves, each scored without its own patches, their places in the bank
  refilled as a refit would (:meth:`PatchCore.fit_cross_scored`, ``_refill.py``).
- The bank is searched with integer dot products (``search="int8"``): the matmul against
  the bank is most of an inspection's time, and integer matmuls run ~3x faster on CPUs
  with VNNI. Same ranking of parts on both products measured; see :class:`Int8Search`.
- ``extra_scales`` (the quality profile: ``(0.7,)``; default none): the part is also seen
  at that factor of the input's side, resized inside the model, with a bank of its own.
  That size's patch distances, in the base size's units (over their median on good parts
  left out, times the base's), are added on the base grid: a defect one patch wide at
  one size spans several at the other, and the coarser input sees more of the part
  around each patch (CS-Flow's several scales, with PatchCore's bank at each). Quality
  profile, core_bench, image AUROC validation / report / full: magnetic tile 0.981 /
  0.968 / 0.974 -> 0.983 / 0.970 / 0.976, KolektorSDD 0.929 / 0.926 / 0.926 -> 0.938 /
  0.928 / 0.930, escapes at the 1% point lower or equal on both validation halves. The
  fast profile keeps one size: with Lite0 at 224 both validation halves shipped more
  (core_bench ``fast-two-sizes``).
"""
from __future__ import annotations

import copy
import inspect
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..bundle import IMAGE_SCORES, SEARCHES
from ._refill import GreedyRefill
from .base import BackboneDetector, Progress, smooth_and_upsample


class PatchCore(BackboneDetector):
    name = "patchcore"
    min_good_images = 2

    def __init__(self, backbone: str = "efficientnet_lite0", layers: tuple[str, ...] = ("stage2", "stage4"),
                 coreset_ratio: float = 0.02, projection_dim: int = 64, image_score: str = "map_max",
                 top_k: int = 10, sigma: float = 4.0, position_norm: bool = False, norm_images: int = 64,
                 batch_size: int = 16, seed: int = 0, max_features_in_memory: Optional[int] = 1_000_000,
                 pool_padding: str = "zeros", search: str = "int8", extra_scales: Sequence[float] = ()):
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
        # set has more rows than that. The default (1M rows, about 600 MB at 152 channels,
        # some 1,270 parts at 224 px) keeps the exact path for the sets a line has: on
        # magnetic_tile (762 parts) the exact coreset scored image AUROC 0.978 against
        # 0.969 for a two-level one.
        self.max_features_in_memory = max_features_in_memory
        self.pool_padding = pool_padding
        # "int8": patch-to-bank dot products in integers (Int8Search), "float32": exact.
        # Scores, calibration and the exported graph all use the model's own choice.
        self.search = search
        # Input-size factors at which the part is also seen, each with its own bank (the
        # same backbone; the resize is part of the model). () : the model input only.
        # See the module docstring for what a second size bought.
        self.extra_scales = extra_scales

    # ------------------------------------------------------------------ fit
    def fit(self, images: np.ndarray, progress: Progress = None,
            groups: Optional[Sequence[Any]] = None) -> "PatchCore":
        """Learn the bank from good parts. Also keeps, for calibration, each training
        part's patch distances to the bank without the patches of its own group
        (``groups``: one label per image, e.g. the part or lot it shows; default: each
        image its own group), in ``self.cross_distances_``. With ``extra_scales``, one
        bank per extra input size as well, and the cross distances are the sum the
        scoring module computes."""
        self._check_enough(len(images))
        if not 0 < self.coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        self._check_choices()
        scales = tuple(float(f) for f in self.extra_scales)
        if any(not 0.25 <= f <= 4.0 or f == 1.0 for f in scales):
            raise ValueError(f"extra_scales are input-size factors other than 1 between 0.25 and 4 (e.g. 0.7: the "
                             f"part also seen at 70% of the input's side), got {self.extra_scales!r}")
        group_ids = _group_ids(groups, len(images))
        self.backbone_ = self._make_backbone()
        self.input_size_ = tuple(int(s) for s in images.shape[1:3])
        passes = 1 + len(scales)
        step = (lambda k: (lambda d, t: progress(d + k * t, passes * t))) if progress else (lambda k: None)
        base = self._fit_bank(images, group_ids, None, step(0), stage_progress(progress))
        self.memory_bank_, self.feature_range_, self.grid_, cross = base
        self.bank_sq_norms_ = (self.memory_bank_ * self.memory_bank_).sum(1)
        extra_banks, extra_ranges, extra_grids, weights = [], [], [], []
        base_median = _finite_median(cross)
        for k, f in enumerate(scales):
            bank, rng, grid, other = self._fit_bank(images, group_ids, self.scaled_input_size(f), step(k + 1),
                                                    stage_progress(progress, f" at {f:g}x"))
            # each size's distances in the base size's units: over their median on good
            # parts left out, times the base's (detection_study scales: summed raw, the
            # size with the larger typical distance would decide alone)
            w = base_median / max(_finite_median(other), 1e-12)
            cross = cross + w * on_grid(other, self.grid_)
            extra_banks.append(bank)
            extra_ranges.append(rng)
            extra_grids.append(grid)
            weights.append(w)
        self.extra_banks_, self.extra_ranges_ = extra_banks, extra_ranges
        self.extra_grids_, self.extra_weights_ = extra_grids, weights
        self.cross_distances_ = cross
        if self.position_norm:
            self._fit_position_stats(cross)
        self.fitted_ = True
        return self

    def _check_choices(self) -> None:
        """The settings chosen by name: fit and a loaded file alike (a file's "int4" search
        was searched as int8: anything not "float32" was)."""
        if self.image_score not in IMAGE_SCORES:
            raise ValueError(f"image_score must be one of {IMAGE_SCORES}, got {self.image_score!r}")
        if self.search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {self.search!r}")

    def scaled_input_size(self, factor: float) -> tuple[int, int]:
        """The input size an extra scale sees: the model input's sides times ``factor``,
        each rounded to a multiple of the backbone's coarsest stride (32)."""
        return tuple(max(32, int(round(s * factor / 32)) * 32) for s in self.input_size_)  # type: ignore[return-value]

    def _fit_bank(self, images: np.ndarray, group_ids: np.ndarray, size: Optional[tuple[int, int]],
                  progress: Progress, stages: Optional["StageProgress"] = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], torch.Tensor]:
        """One bank from the good parts seen at ``size`` (None: the model input as it is):
        (bank rows, each channel's range over the patches, patch grid, each part's
        leave-its-group-out distances (N, h, w)). ``progress`` hears the features;
        ``stages`` (see :func:`stage_progress`), when given, the coreset and the
        cross-scoring after them, which on 762 parts ran 25 minutes without a word."""
        stages = stages or (lambda stage: None)
        embed = self._patch_embedding(size)
        st = self.backbone_.out_strides[0]
        h_in, w_in = size or self.input_size_
        rows_per_image = -(-h_in // st) * -(-w_in // st)
        stream = None
        if self.max_features_in_memory and len(images) * rows_per_image > self.max_features_in_memory:
            from ._coreset import StreamingCoreset
            stream = StreamingCoreset(self.coreset_ratio, self.max_features_in_memory, self.projection_dim, self.seed)
        chunks, done = [], 0
        lo = hi = None                                # each channel's range over the patches seen
        for start, batch in zip(range(0, len(images), self.batch_size), self._batches(images)):
            with torch.no_grad():
                emb = embed(torch.from_numpy(batch))                # (B, C, h, w)
            grid = (int(emb.shape[-2]), int(emb.shape[-1]))
            per_image = grid[0] * grid[1]
            rows = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
            lo = rows.amin(0) if lo is None else torch.minimum(lo, rows.amin(0))
            hi = rows.amax(0) if hi is None else torch.maximum(hi, rows.amax(0))
            if stream is not None:
                stream.add(rows, torch.arange(start, start + len(batch)).repeat_interleave(per_image))
            else:
                chunks.append(rows)
            done += len(batch)
            if progress:
                progress(done, len(images))
        if stream is not None:
            bank, owner = stream.finish(progress=stages("coreset"))
            feats = None
        else:
            feats = torch.cat(chunks)
            del chunks
            n_keep = max(1, int(round(len(feats) * self.coreset_ratio)))
            idx = greedy_coreset(feats, n_keep, self.projection_dim, self.seed, progress=stages("coreset"))
            bank = feats[idx].contiguous()
            owner = idx // per_image
        feature_range = torch.stack([lo, hi])   # (2, C): the int8 search's query scale
        bank_sq = (bank * bank).sum(1)
        search = bank_search_for(self.search, bank, feature_range)
        # Leave-one-group-out distances of every training part: what a part the model
        # never saw would get. Leaving the group's rows out is not enough: the coreset
        # picked them to cover the group's corner of feature space and so skipped the
        # other parts' patches there; a refit would cover the corner again. GreedyRefill
        # picks as many replacement rows the same greedy way (see _refill.py; without it
        # the threshold was far too safe on small banks). Not for the streaming fit,
        # which keeps no features to pick from: there the estimate errs high.
        scored = stages("cross-scoring")          # each part against the bank without its own group
        if scored:
            scored(0, len(images))               # the refill's set-up below takes a while on its own
        owner_group = torch.from_numpy(group_ids)[owner]
        refill = None
        if feats is not None:
            row_group = torch.from_numpy(group_ids).repeat_interleave(per_image)
            refill = GreedyRefill(coreset_projection(feats, self.projection_dim, seed=self.seed), idx, row_group)
        h, w = grid
        cross = torch.empty(len(images), h, w)
        added: dict[int, Any] = {}
        for i in range(len(images)):
            g = int(group_ids[i])
            if feats is not None:
                q = feats[i * per_image:(i + 1) * per_image]
            else:  # streaming: features were not kept; embed the part again
                with torch.no_grad():
                    q = embed(torch.from_numpy(np.ascontiguousarray(images[i:i + 1])))
                q = q.permute(0, 2, 3, 1).reshape(-1, q.shape[1])
            d = nearest_distance(q, bank, bank_sq, exclude=owner_group == g, search=search)
            if refill is not None:
                if g not in added:
                    rows = refill.rows_for(g)
                    added[g] = (feats[rows], search.for_rows(feats[rows]) if search is not None else None)
                extra, coded = added[g]
                if len(extra):
                    d = torch.minimum(d, nearest_distance(q, extra, search=coded))
            cross[i] = d.view(h, w)
            if scored:
                scored(i + 1, len(images))
        return bank, feature_range, grid, cross

    def fit_cross_scored(self, images: np.ndarray, progress: Progress = None,
                         groups: Optional[Sequence[Any]] = None, folds: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Fit on every image and return each one's out-of-sample image score and map
        (scored against the bank without its own group's patches, refilled): calibration from
        every good part, with no part held out of the bank. Leave-one-group-out needs no
        refit, so ``folds`` is not used."""
        if len(np.unique(_group_ids(groups, len(images)))) < 2:
            from ..errors import DatasetError
            # the groups are train's --group-by, with copies of one photo joined (Inspector.fit):
            # name both, for a person who gave no --group-by reads "groups" as their own doing
            raise DatasetError("calibration needs good parts from at least 2 groups (the parts or lots --group-by "
                               "names; copies of one photo count as one): with one group no part can be scored by a "
                               "bank that lacks its own patches; give a --group-by pattern that tells the parts "
                               "apart, or photos of more parts")
        self.fit(images, progress=progress, groups=groups)
        return self.score_distances(self.cross_distances_)

    def score_distances(self, d: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Image scores and maps from (N, h, w) patch distances, exactly as ``score``
        turns distances into them (the scoring module's own last step)."""
        with torch.no_grad():
            s, m = self._scoring_module_cached().finish(d)
        return s.numpy(), m.numpy()

    def _fit_position_stats(self, cross: torch.Tensor) -> None:
        """Mean and spread of each grid position's out-of-sample distance on good parts."""
        d = cross[torch.from_numpy(np.unique(np.linspace(0, len(cross) - 1, min(self.norm_images, len(cross)))
                                             .round().astype(np.int64)))]
        h, w = self.grid_
        finite = torch.isfinite(d).all(dim=(1, 2))
        d = d[finite]
        if len(d) == 0:  # a single training group: nothing to compare against; stay neutral
            self.position_mean_ = torch.zeros(h, w)
            self.position_std_ = torch.ones(h, w)
            return
        self.position_mean_ = d.mean(0)
        # floor the spread so a position where all good parts agree exactly cannot
        # turn a tiny difference into a huge score
        sd = d.std(0) if len(d) > 1 else torch.ones(h, w)
        self.position_std_ = sd.clamp_min(float(sd.median()) * 0.25 + 1e-6)

    def bank_search(self) -> Optional["Int8Search"]:
        """The integer form of the bank for ``search="int8"`` (None for float32)."""
        return bank_search_for(self.search, self.memory_bank_, self.feature_range_)

    # ---------------------------------------------------------------- score
    def scoring_module(self) -> "PatchCoreScoring":
        self._check_fitted()
        return PatchCoreScoring(self)

    # ---------------------------------------------------------------- state
    def state_tensors(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        out = {"memory_bank": self.memory_bank_.numpy(), **self._backbone_tensors()}
        if getattr(self, "feature_range_", None) is not None:   # files from before int8 search have none
            out["feature_range"] = self.feature_range_.numpy()
        if self.position_norm:
            out["position_mean"] = self.position_mean_.numpy()
            out["position_std"] = self.position_std_.numpy()
        for k in range(len(self.extra_scales)):
            out[f"extra{k}.memory_bank"] = self.extra_banks_[k].numpy()
            out[f"extra{k}.feature_range"] = self.extra_ranges_[k].numpy()
        return out

    def state_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"input_size": list(self.input_size_), "grid": list(self.grid_)}
        if self.extra_scales:
            meta["extra_grids"] = [list(g) for g in self.extra_grids_]
            meta["extra_weights"] = [float(w) for w in self.extra_weights_]
        return meta

    @classmethod
    def from_state(cls, params: dict[str, Any], meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> "PatchCore":
        # Files from before a setting existed judged as that setting's old value did:
        # no position statistics, the raw patch grid's max, border cells averaged inside.
        params = {"position_norm": False, "image_score": "max", "pool_padding": "edge", "search": "float32",
                  **params, "layers": tuple(params["layers"]), "extra_scales": tuple(params.get("extra_scales", ()))}
        det = cls(**params)
        det._check_choices()
        det._load_backbone_tensors(tensors)
        det.memory_bank_ = torch.from_numpy(np.array(tensors["memory_bank"], dtype=np.float32))
        det.bank_sq_norms_ = (det.memory_bank_ * det.memory_bank_).sum(1)
        if "feature_range" in tensors:
            det.feature_range_ = torch.from_numpy(np.array(tensors["feature_range"], dtype=np.float32))
        elif det.search != "float32":
            raise ValueError("an int8-search PatchCore file without its feature range: the file is damaged")
        if det.position_norm:
            det.position_mean_ = torch.from_numpy(np.array(tensors["position_mean"], dtype=np.float32))
            det.position_std_ = torch.from_numpy(np.array(tensors["position_std"], dtype=np.float32))
        det.input_size_ = tuple(meta["input_size"])
        det.grid_ = tuple(meta["grid"])
        n_extra = len(det.extra_scales)
        try:
            det.extra_banks_ = [torch.from_numpy(np.array(tensors[f"extra{k}.memory_bank"], dtype=np.float32))
                                for k in range(n_extra)]
            det.extra_ranges_ = [torch.from_numpy(np.array(tensors[f"extra{k}.feature_range"], dtype=np.float32))
                                 for k in range(n_extra)]
            det.extra_grids_ = [tuple(g) for g in meta.get("extra_grids", [])]
            det.extra_weights_ = [float(w) for w in meta.get("extra_weights", [])]
        except KeyError as exc:
            raise ValueError(f"a PatchCore file with extra input sizes lacks {exc}: the file is damaged") from None
        if len(det.extra_grids_) != n_extra or len(det.extra_weights_) != n_extra:
            raise ValueError("a PatchCore file's extra input sizes and their grids or weights do not match: "
                             "the file is damaged")
        det.fitted_ = True
        return det


class BankSearch(nn.Module):
    """The nearest bank row's distance for each patch row: one bank as buffers, searched
    in float32 or in integers (:class:`Int8Search`), in ``PatchCoreScoring.bank_chunk``
    pieces."""

    # Query rows per distance matmul when run by torch: a batch of 16 large parts against
    # a large bank would otherwise need gigabytes for one (rows x bank) matrix.
    block = 4096

    def __init__(self, bank: torch.Tensor, feature_range: Optional[torch.Tensor], search: str):
        super().__init__()
        bank = bank.float()
        self.bank_rows = int(bank.shape[0])
        self.int8 = bank_search_for(search, bank, feature_range)
        if self.int8 is None:
            # -2 * bank^T: a power-of-two scale is exact, and one Gemm then gives
            # ||b||^2 - 2 q.b for every bank row at once.
            self.register_buffer("neg2_bank_t", (-2.0 * bank).T.contiguous())
            self.register_buffer("bank_sq", (bank * bank).sum(1))
        else:
            self.register_buffer("center", self.int8.center)
            self.register_buffer("bank_t", self.int8.bank_t)
            self.register_buffer("neg2_row_scale", self.int8.neg2_row_scale)
            self.register_buffer("bank_sq", self.int8.bank_sq)         # the centred rows' norms

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or len(q) <= self.block:
            # All query rows at once. Traced, row blocks would be cut at the traced batch's
            # size and the exported graph would be wrong for other batch sizes; the bank's
            # pieces are fixed by the fitted state, so they trace as they are.
            if self.int8 is None:
                return min_sq_distance(q, self.neg2_bank_t, self.bank_sq, self.bank_rows).sqrt()
            return self.int8.min_sq_distance(q, self.center, self.bank_t, self.neg2_row_scale, self.bank_sq).sqrt()
        # Same arithmetic per row, in blocks to bound memory; rows are independent.
        return torch.cat([self(q[i:i + self.block]) for i in range(0, len(q), self.block)])


class ExtraScale(nn.Module):
    """The part seen at another input size: its patch distances to that size's bank,
    on the base grid, in the base size's units (times the fitted weight)."""

    def __init__(self, embed: nn.Module, bank: BankSearch, grid: tuple[int, int], base_grid: tuple[int, int],
                 weight: float):
        super().__init__()
        self.embed, self.bank = embed, bank
        self.grid, self.base_grid = tuple(int(v) for v in grid), tuple(int(v) for v in base_grid)
        self.weight = float(weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        emb = self.embed(images)
        q = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
        return self.weight * on_grid(self.bank(q).reshape(-1, *self.grid), self.base_grid)


class PatchCoreScoring(nn.Module):
    """PatchCore's whole scoring path (see :meth:`Detector.scoring_module`): patch
    embeddings -> distance to the nearest bank row (plus, with extra input sizes, each
    size's distances on the same grid) -> per-position normalisation -> image score and
    smoothed anomaly map. ``score()`` runs it; the exporter traces it.
    """

    # Bank rows per distance matmul, in torch and in the exported graph. The matmul's
    # output (queries x bank rows) is written and then read again for the minimum: as one
    # piece it is megabytes (784 x 3136 rows: 9.8 MB; the quality profile's 2016 x 8064:
    # 65 MB) and that memory traffic, not the arithmetic, dominated. In 512-row pieces it
    # stays in cache. Same distances to float rounding; measured in ONNX Runtime, 2 threads
    # (python -m benchmarks.bank_chunk_bench): 784 x 11948 rows 15.4 -> 11.9 ms, 2016 x 8064
    # 26.0 -> 20.1 ms; 784 x 3136 (a 200-part bank) within the noise. 256-2048 were close.
    bank_chunk = 512

    def __init__(self, det: "PatchCore"):
        super().__init__()
        if det.image_score not in IMAGE_SCORES:
            raise ValueError(f"image_score must be one of {IMAGE_SCORES}, got {det.image_score!r}")
        self.embed = det._patch_embedding()
        self.bank = BankSearch(det.memory_bank_, getattr(det, "feature_range_", None), det.search)
        extras = []
        for k, f in enumerate(getattr(det, "extra_scales", ())):
            extras.append(ExtraScale(det._patch_embedding(det.scaled_input_size(f)),
                                     BankSearch(det.extra_banks_[k], det.extra_ranges_[k], det.search),
                                     det.extra_grids_[k], det.grid_, det.extra_weights_[k]))
        self.extras = nn.ModuleList(extras)
        self.position_norm = bool(det.position_norm)
        if self.position_norm:
            self.register_buffer("position_mean", det.position_mean_.float())
            self.register_buffer("position_std", det.position_std_.float())
        self.input_size = tuple(int(s) for s in det.input_size_)
        self.sigma = float(det.sigma)
        self.image_score = det.image_score
        self.top_k = int(det.top_k)

    def _nearest(self, q: torch.Tensor) -> torch.Tensor:
        """Each patch row's distance to the nearest row of the (base) bank."""
        return self.bank(q)

    def _image_scores(self, d: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        if self.image_score == "map_max":
            return maps.flatten(1).max(1).values
        flat = d.flatten(1)
        if self.image_score == "topk":
            # mean of the k worst patches: steadier than the single max on noisy surfaces
            return flat.topk(min(self.top_k, flat.shape[1]), dim=1).values.mean(1)
        return flat.max(1).values

    def finish(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, h, w) nearest-neighbour distances -> image scores and anomaly maps. Split
        out so calibration turns out-of-sample distances into scores the same way."""
        if self.position_norm:
            d = (d - self.position_mean) / self.position_std
        maps = smooth_and_upsample(d, self.input_size, self.sigma)
        return self._image_scores(d, maps), maps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(images)                                   # (N, C, h, w)
        c, h, w = emb.shape[1], emb.shape[2], emb.shape[3]
        q = emb.permute(0, 2, 3, 1).reshape(-1, c)
        d = self._nearest(q).reshape(-1, h, w)
        for extra in self.extras:
            d = d + extra(images)
        return self.finish(d)


def bank_search_for(search: str, bank: torch.Tensor, feature_range: Optional[torch.Tensor]) -> Optional["Int8Search"]:
    """A bank's integer form for ``search="int8"`` (None for "float32": searched exactly)."""
    if search == "float32":
        return None
    if search != "int8":
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    return Int8Search(bank, feature_range)


def on_grid(d: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(N, h, w) patch distances resized (bilinear) to another patch grid."""
    hw = (int(grid[0]), int(grid[1]))
    if tuple(int(v) for v in d.shape[-2:]) == hw:
        return d
    return F.interpolate(d[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]


def _finite_median(d: torch.Tensor) -> float:
    """The median of the finite values (a part alone in a one-group set scores inf)."""
    v = d[torch.isfinite(d)]
    return float(v.median()) if len(v) else 1.0


def nearest_distance(q: torch.Tensor, bank: torch.Tensor, bank_sq: Optional[torch.Tensor] = None,
                     block: int = 4096, exclude: Optional[torch.Tensor] = None,
                     search: Optional["Int8Search"] = None) -> torch.Tensor:
    """Euclidean distance from each row of q to its nearest row of bank.

    ||q - b||^2 = ||q||^2 - 2 q.b + ||b||^2 as one matmul per block; the bank's norms are
    precomputed once at fit time. Blocks bound memory for large query sets. ``exclude``
    (bool per bank row) leaves rows out without copying the bank: they are set to +inf
    (a query with every row excluded gets inf). ``search``: the bank's integer form, to
    get exactly the distances an int8-search model scores with; its own (centred) norms
    then replace ``bank_sq``, and ``exclude`` applies to them.
    """
    if search is not None:
        bank_sq = search.bank_sq                      # the norms of its centred rows
    elif bank_sq is None:
        bank_sq = (bank * bank).sum(1)
    if exclude is not None and bool(exclude.any()):
        bank_sq = bank_sq.masked_fill(exclude, float("inf"))
    out = torch.empty(len(q), dtype=q.dtype)
    for i in range(0, len(q), block):
        if search is None:
            out[i:i + block] = min_sq_distance(q[i:i + block], bank.T, bank_sq, len(bank), alpha=-2.0).sqrt_()
        else:
            out[i:i + block] = search.min_sq_distance(q[i:i + block], search.center, search.bank_t,
                                                      search.neg2_row_scale, bank_sq).sqrt_()
    return out


def min_sq_distance(q: torch.Tensor, bank_t: torch.Tensor, bank_sq: torch.Tensor, n: int,
                    alpha: float = 1.0) -> torch.Tensor:
    """Squared distance from each row of q to its nearest of the ``n`` bank rows, with
    ``bank_sq + alpha * q @ bank_t`` = ||b||^2 - 2 q.b (``bank_t``: the bank transposed,
    pre-scaled by -2 when alpha is 1). The bank is searched in pieces of
    ``PatchCoreScoring.bank_chunk`` rows (why: see there). ``n`` is given, not read from a
    shape, so a traced graph gets a fixed number of pieces."""
    return _min_over_pieces(lambda a, b: torch.addmm(bank_sq[None, a:b], q, bank_t[:, a:b], alpha=alpha), q, n)


def _min_over_pieces(piece, q: torch.Tensor, n: int) -> torch.Tensor:
    """min over the bank's rows of ``piece(a, b)`` (||b||^2 - 2 q.b for rows a..b, one
    column per row), taken in ``PatchCoreScoring.bank_chunk``-row pieces, plus ||q||^2."""
    step = PatchCoreScoring.bank_chunk
    best = None
    for a in range(0, n, step):
        part = piece(a, min(n, a + step)).min(1).values
        best = part if best is None else torch.minimum(best, part)
    assert best is not None, "the bank has no rows"
    return (best + (q * q).sum(1)).clamp_min(0)


# The integer ranges of the int8 search. x86 CPUs without VNNI (AVX2 only: many AMD
# EPYC and older Xeon hosts) multiply uint8 by int8 with VPMADDUBSW, which adds each pair
# of products into an int16 and saturates: 255 x 127 x 2 does not fit, and ONNX Runtime
# then returns wrong distances (seen: a good part's score 19.9 instead of 17.1). With
# bank codes in [-63, 63] the pair sums (2 x 255 x 63) stay within int16 on every kernel
# (ONNX Runtime's "reduce_range" advice for AVX2). The bank gives up the bit rather than
# the query: each bank row has its own scale and the query one shared scale, so halving
# the bank's resolution moved distances by 0.39% (median) instead of 0.37%, halving the
# query's by 0.73% on magnetic tile (``detection_study precision``; image AUROC within 0.002 all
# ways on both products).
QUERY_MAX = 255
BANK_MAX = 63


class Int8Search:
    """The bank search in integers, as ONNX Runtime's ``MatMulIntegerToFloat`` runs it
    (also OpenVINO): each query patch quantised to uint8 (0..255) with one fixed scale and
    zero point, each bank row to int8 with its own symmetric scale, coded -63..63 so that
    no CPU's kernel saturates (``BANK_MAX``); the dot products are exact integer sums,
    scaled back to float, and the squared norms stay float32. In ONNX
    Runtime on this project's 2-core Xeon (AVX-512 VNNI) the search of 784 patches took
    1.8 ms instead of 4.5 (3136 bank rows), 6.4 instead of 15-20 (11,948) and 9.8 instead
    of 32 (2016 x 8064). Image AUROC 0.978 both ways on magnetic_tile, 0.925 vs 0.926 on
    KolektorSDD; escapes at the 1% point within 0.6 points on every half of both test sets
    (``python -m benchmarks.detection_study precision``, results/study-precision.jsonl).

    Both sides are first centred on the bank's mean (distances do not change; the vectors
    get shorter, and the error of a quantised dot product grows with their length: 25-40%
    less error measured). The query scale is fixed at fit time, not taken per batch, so a
    part's score does not depend on which parts share its batch: it spans the training
    patches' centred range widened by a quarter on each side, so a defect's larger values
    are mostly kept; those beyond it are clipped to the edge, which keeps them far from
    the bank. What is given up: a patch identical to a bank row scores ~0-4 instead of 0
    (typical good-patch distances are ~15-25), and distances move by 0.3-0.4% (median).
    Torch computes the integer products in float32: the sums stay under 2^24
    (C x 255 x 63 for C < 1044 channels) and are exact, so torch and the exported graph
    agree up to rounding in the final scaling. (The numbers above were measured with
    bank rows coded -127..127; at -63..63 distances move by 0.39% instead of 0.37%.)
    """

    def __init__(self, bank: torch.Tensor, feature_range: torch.Tensor, margin: float = 0.25,
                 query_max: int = QUERY_MAX, bank_max: int = BANK_MAX):
        if 2 * query_max * bank_max > 32767:
            raise ValueError(f"uint8 queries up to {query_max} times int8 bank values up to {bank_max} can saturate "
                             "the int16 pair sums of x86 AVX2 kernels; keep 2 * query_max * bank_max <= 32767")
        self.query_max, self.bank_max = int(query_max), int(bank_max)
        self.center = bank.mean(0)
        centred = bank - self.center
        lo = float((feature_range[0] - self.center).min())
        hi = float((feature_range[1] - self.center).max())
        span = max(hi - lo, 1e-6)
        lo, hi = min(0.0, lo - margin * span), max(0.0, hi + margin * span)
        self.query_scale = float(np.float32((hi - lo) / self.query_max))
        self.query_zero = int(round(-lo / self.query_scale))
        self._code_rows(centred)

    @staticmethod
    def code_bank(centred: torch.Tensor, bank_max: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Centred bank rows -> (int8 codes in -bank_max..bank_max, transposed; -2 x each
        row's scale: the graph's one scale per output column folds the -2 in)."""
        row_scale = centred.abs().amax(1).clamp_min(1e-12) / bank_max
        codes = torch.round(centred / row_scale[:, None]).clamp(-bank_max, bank_max).to(torch.int8)
        return codes.T.contiguous(), (-2.0 * row_scale).float()

    def for_rows(self, rows: torch.Tensor) -> "Int8Search":
        """The same search (centre, query coding) over other rows, coded as bank rows are:
        the distances a bank holding them would give."""
        other = copy.copy(self)
        other._code_rows(rows - self.center)
        return other

    def _code_rows(self, centred: torch.Tensor) -> None:
        """The searched rows: their int8 codes and scales, and the norms of the centred rows."""
        self.bank_t, self.neg2_row_scale = self.code_bank(centred, self.bank_max)
        self.bank_sq = (centred * centred).sum(1)

    def min_sq_distance(self, q: torch.Tensor, center: torch.Tensor, bank_t: torch.Tensor,
                        neg2_row_scale: torch.Tensor, bank_sq: torch.Tensor) -> torch.Tensor:
        """As :func:`min_sq_distance`, in the same pieces; the tensors are given (the
        scoring module's buffers when traced), the scalars are this object's."""
        q = q - center
        qq = _QuantizeQuery.apply(q, self.query_scale, self.query_zero, self.query_max)
        return _min_over_pieces(lambda a, b: _Int8Dot.apply(qq, bank_t[:, a:b], self.query_scale, self.query_zero,
                                                            neg2_row_scale[a:b], bank_sq[a:b]),
                                q, bank_t.shape[1])


class _QuantizeQuery(torch.autograd.Function):
    """q -> uint8 in [0, top] with a fixed scale and zero point (ONNX Clip, then
    QuantizeLinear: round half to even). The Clip keeps values at or under ``top``
    (QuantizeLinear alone saturates at 255 only)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, scale: float, zero: int, top: int) -> torch.Tensor:  # type: ignore[override]
        return torch.clamp(torch.round(q / scale) + zero, 0, top).to(torch.uint8)

    @staticmethod
    def symbolic(g, q, scale: float, zero: int, top: int):  # pragma: no cover - runs inside the ONNX exporter
        f32 = lambda v: g.op("Constant", value_t=torch.tensor(v, dtype=torch.float32))  # noqa: E731
        if top < 255:   # the float bounds of codes 0 and top: rounding inside them stays inside
            q = g.op("Clip", q, f32(np.float32(-zero * scale)), f32(np.float32((top - zero) * scale)))
        return g.op("QuantizeLinear", q, f32(scale), g.op("Constant", value_t=torch.tensor(zero, dtype=torch.uint8)))


class _Int8Dot(torch.autograd.Function):
    """bias + (qq - zero) @ bank_t * (scale * col_scale): com.microsoft MatMulIntegerToFloat."""

    @staticmethod
    def forward(ctx, qq: torch.Tensor, bank_t: torch.Tensor, scale: float, zero: int,  # type: ignore[override]
                col_scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        dot = (qq.float() - zero) @ bank_t.float()          # exact: integer sums under 2^24
        return dot * (torch.tensor(scale, dtype=torch.float32) * col_scale)[None] + bias[None]

    @staticmethod
    def symbolic(g, qq, bank_t, scale: float, zero: int, col_scale, bias):  # pragma: no cover - ONNX exporter
        out = g.op("com.microsoft::MatMulIntegerToFloat", qq, bank_t,
                   g.op("Constant", value_t=torch.tensor(scale, dtype=torch.float32)), col_scale,
                   g.op("Constant", value_t=torch.tensor(zero, dtype=torch.uint8)),
                   g.op("Constant", value_t=torch.tensor(0, dtype=torch.int8)), bias)
        # the exporter cannot infer a contrib op's output: (query rows, piece rows) float32
        rows = qq.type().sizes()[0] if qq.type().sizes() else None
        out.setType(qq.type().with_dtype(torch.float32).with_sizes([rows, bank_t.type().sizes()[1]]))
        return out


# fit's stages after the features report at most this often (a callback per pick cost
# more than the pick on small banks) and always at their end
PROGRESS_EVERY_S = 1.0

StageProgress = Callable[[str], Progress]


def stage_progress(progress: Optional[Callable[..., None]], suffix: str = "") -> StageProgress:
    """For fit's stages after the features: ``stage -> (done, total) callback or None``.
    A fit callback that takes a ``stage`` keyword (``progress(done, total, stage=...)``,
    as the Inspector's does) hears the coreset and the cross-scoring too; a plain
    ``(done, total)`` one hears the features only, as before. ``suffix`` names an extra
    input size's pass, so each pass is a stage of its own on the progress line."""
    try:
        takes_stage = progress is not None and "stage" in inspect.signature(progress).parameters
    except (TypeError, ValueError):      # a callable without a signature: features only
        takes_stage = False
    if not takes_stage:
        return lambda stage: None
    assert progress is not None
    return lambda stage: (lambda d, t: progress(d, t, stage=stage + suffix))


def _every(progress: Progress, total: int) -> Callable[[int], None]:
    """``progress(done, total)`` at most every PROGRESS_EVERY_S seconds, and at the end."""
    if not progress:
        return lambda done: None
    last = [time.monotonic()]

    def tick(done: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            progress(done, total)
    return tick


def greedy_coreset(feats: torch.Tensor, n_keep: int, projection_dim: int, seed: int,
                   progress: Progress = None) -> torch.Tensor:
    """Greedy k-center selection: repeatedly keep the patch farthest from all kept ones.

    Runs on a random projection of the features (Johnson-Lindenstrauss keeps distances
    roughly), which makes each step several times cheaper on wide features. Each step
    reads every row once, so memory bandwidth is what it costs: the distance update is
    one fused matrix-vector product into a reused buffer (2x fewer passes than
    ``x_sq - 2 x c + c.c`` written out, same picks). ``progress(picked, n_keep)``: now
    and then (PROGRESS_EVERY_S); every pick costs the same, so the share picked is the
    share of the time.
    """
    n = len(feats)
    if n_keep >= n:
        if progress:
            progress(n_keep, n_keep)
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    x = coreset_projection(feats, projection_dim, g)
    x_sq = (x * x).sum(1)
    start = int(torch.randint(n, (1,), generator=g))
    selected = torch.empty(n_keep, dtype=torch.long)
    min_d = torch.full((n,), float("inf"))
    d = torch.empty(n, dtype=x.dtype)
    min_d = min_d.to(x.dtype)
    cur = start
    tick = _every(progress, n_keep)
    for i in range(n_keep):
        selected[i] = cur
        c = x[cur]
        torch.addmv(x_sq, x, c, beta=1.0, alpha=-2.0, out=d)
        d += c.dot(c)
        torch.minimum(min_d, d, out=min_d)
        cur = int(torch.argmax(min_d))
        tick(i + 1)
    return selected


def coreset_projection(feats: torch.Tensor, projection_dim: int, g: Optional[torch.Generator] = None,
                       seed: int = 0) -> torch.Tensor:
    """The features in the random projection the greedy coreset selects in (its first
    draw from the seeded generator; ``feats`` itself when the projection would not be
    narrower)."""
    if not 0 < projection_dim < feats.shape[1]:
        return feats
    g = g if g is not None else torch.Generator().manual_seed(seed)
    return feats @ (torch.randn(feats.shape[1], projection_dim, generator=g) / projection_dim ** 0.5)


def _group_ids(groups: Optional[Sequence[Any]], n: int) -> np.ndarray:
    """One integer per image for its group (part, lot ...); each image alone by default."""
    if groups is None:
        return np.arange(n, dtype=np.int64)
    labels = list(groups)
    if len(labels) != n:
        raise ValueError(f"groups must give one label per training image: got {len(labels)} for {n} images")
    _, ids = np.unique(np.asarray([str(g) for g in labels]), return_inverse=True)
    return ids.astype(np.int64)
