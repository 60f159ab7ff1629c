"""Which differences between lineguard's old PatchCore and a plain one matter (issue #8).

Backbone stage maps are computed once per dataset and input size and cached; every
experiment then varies one thing on the same features, so the comparisons are cheap and
fair. All metrics are on test/, split into the fixed halves of ``core_bench.validation_half``
(choices were made on the validation half; the report half and the full set are shown).
"escapes@1%" is the escape rate at the threshold that keeps false rejects on those good
test parts <= 1%.

    python -m benchmarks.detection_study features --data ../shared/datasets/magnetic_tile --size 224
    python -m benchmarks.detection_study pooling  --data ../shared/datasets/magnetic_tile --size 224
    python -m benchmarks.detection_study scoring  --data ../shared/datasets/magnetic_tile --size 224
    python -m benchmarks.detection_study coreset  --data ../shared/datasets/magnetic_tile --size 224
    python -m benchmarks.detection_study calibration --data ../shared/datasets/magnetic_tile --size 224
    python -m benchmarks.detection_study discriminator --data ../shared/datasets/magnetic_tile --size 224 \
        [--configs n0.5-lin ...] [--subsets 50 100] [--tag NAME]     (see discriminator_study.py)
    python -m benchmarks.detection_study projection --data ...   (bank searched in a PCA subspace)
    python -m benchmarks.detection_study layers --data ... [--configs stage2+stage3+stage4 ...]
    python -m benchmarks.detection_study backbones --data ... [--configs mobilenet_v2 ...] [--backbone BASE]
    python -m benchmarks.detection_study density --data ...      (distances over a local scale)
    python -m benchmarks.detection_study small --data ... [--subsets 50 100]   (small training sets)
    python -m benchmarks.detection_study precision --data ... [--configs mobilenet_v2]   (int8 bank search)
    python -m benchmarks.detection_study neighbourhood --data ... [--configs mobilenet_v2]   (3x3/5x5/7x7, k nearest)
    python -m benchmarks.detection_study resolution --data ... --size 576x224 --configs 640x256 736x288
    python -m benchmarks.detection_study framing --data ...        (50/100 parts: orient / pad framings)
    python -m benchmarks.detection_study small-scoring --data ...  (50/100/all parts: relative scores, cosine)
    python -m benchmarks.detection_study context --data ...        (within-part deviation map; map sigma)
    python -m benchmarks.detection_study keep-scale --data ... --size 224x384   (one texture scale, not stretched)
    python -m benchmarks.detection_study photometric --data ...    (photos' brightness / contrast evened out)
    python -m benchmarks.detection_study augment --data ...        (50/100 parts: lighting-jittered copies in the bank)
    python -m benchmarks.detection_study rescale --data ...        (50/100 parts: copies at another texture scale)
    python -m benchmarks.detection_study stage-weights --data ...  (stage 2 against stage 4 in the distance)
    python -m benchmarks.detection_study scales --data ... --configs 128 160 [--backbone mobilenet_v2]
                                                                   (several input sizes, distances summed)

(``--size 544x224`` for KolektorSDD's tall parts.) Each prints JSON lines; the runs of this
session are collected, with every setting tried, in benchmarks/results/study-*.json.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

CACHE = Path("benchmarks/.cache")


def _size(text: str) -> tuple[int, int]:
    parts = [int(v) for v in text.lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


# How a photo becomes the model's input (Preprocess's orient and resize): "stretch" is
# the product's default; the others keep texture scale and direction closer between
# photos of different sizes and aspect ratios.
FRAMINGS = {"stretch": dict(orient="none", resize="stretch"),
            "landscape": dict(orient="landscape", resize="stretch"),
            "pad": dict(orient="none", resize="pad"),
            "landscape-pad": dict(orient="landscape", resize="pad")}


# Each photo's brightness and contrast evened out before the backbone (grey mean m and
# spread s of the model input; every channel moved alike, so colour differences stay):
# "meanstd" maps every photo to mean 128, spread 48; "clamp" moves it towards the training
# photos' median mean and spread with the contrast gain held within 0.8-1.25; "mean" moves
# brightness only. Magnetic tiles' spread runs from 15 to 48 grey levels (5th-95th
# percentile of the training photos), which 50 or 100 parts may not cover.
PHOTOMETRIC = ("none", "meanstd", "clamp", "mean")


def _photometric(x: np.ndarray, mode: str, ref: tuple[float, float]) -> np.ndarray:
    if mode == "none":
        return x
    g = x.astype(np.float32).mean(2)
    m, s = float(g.mean()), float(g.std()) + 1e-3
    if mode == "meanstd":
        y = (x.astype(np.float32) - m) / s * 48 + 128
    elif mode == "clamp":
        y = (x.astype(np.float32) - m) * float(np.clip(ref[1] / s, 0.8, 1.25)) + ref[0]
    elif mode == "mean":
        y = x.astype(np.float32) - m + 128
    else:
        raise ValueError(f"photometric must be one of {PHOTOMETRIC}")
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _cache_path(data: str, size: tuple[int, int], backbone: str = "efficientnet_lite0",
                framing: str = "stretch", photometric: str = "none") -> Path:
    tag = "" if backbone == "efficientnet_lite0" else f"-{backbone}"
    tag += "" if framing == "stretch" else f"-{framing}"
    tag += "" if photometric == "none" else f"-photo-{photometric}"
    return CACHE / f"{Path(data).resolve().name}-{size[0]}x{size[1]}{tag}.npz"


def features(data: str, size: tuple[int, int], backbone: str = "efficientnet_lite0",
             framing: str = "stretch", photometric: str = "none") -> Path:
    """Raw stage maps (stages 1-4, fp16) of every train/good and test image."""
    from lineguard.vision.backbones import NORMALIZATION, create_backbone
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.preprocess import Preprocess
    stages = ("stage1", "stage2", "stage3", "stage4")
    cat = MVTecCategory(data)
    pre = Preprocess(image_size=size, **FRAMINGS.get(framing, FRAMINGS["stretch"]))
    bb = create_backbone(backbone, list(stages)).fold_bn().eval()
    mean, std = NORMALIZATION[backbone]
    files = [("train", p, "good", "") for p in cat.train_good] + \
        [("test", it.path, it.defect_type, str(it.mask_path or "")) for it in cat.test_items]
    if framing == "keep-scale":
        x = _keep_scale([load_image(f[1]) for f in files], len(cat.train_good), size)
    else:
        x = np.stack([pre.apply(load_image(f[1]))[0] for f in files])
    if photometric != "none":   # the reference: the training photos' median mean and spread (no test photo)
        grey = x[:len(cat.train_good)].astype(np.float32).mean(3)
        ref = (float(np.median(grey.mean((1, 2)))), float(np.median(grey.std((1, 2)))))
        x = np.stack([_photometric(im, photometric, ref) for im in x])
    out: dict[str, list] = {s: [] for s in stages}
    for i in range(0, len(x), 16):
        for s, f in zip(stages, _backbone_maps(bb, x[i:i + 16], mean, std)):
            out[s].append(f.half().numpy())
    path = _cache_path(data, size, backbone, framing, photometric)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{s: np.concatenate(v) for s, v in out.items()},
             split=np.array([f[0] for f in files]), path=np.array([str(f[1]) for f in files]),
             type=np.array([f[2] for f in files]), mask=np.array([f[3] for f in files]))
    return path


def _keep_scale(photos: list, n_train: int, size: tuple[int, int]) -> np.ndarray:
    """Every photo resized by one factor, the largest at which every training photo fits
    the input, and edge-padded to the input, centred (a photo too large is cut at the
    centre). Where the camera's scale is fixed and the parts differ in size (magnetic tiles:
    103-617 px wide, 235-388 high), texture then keeps one scale in every photo, where
    stretching scales it by up to 6x differently per photo."""
    from lineguard.vision.preprocess import _resize_rgb
    sh, sw = size
    f = min(min(sh / p.shape[0], sw / p.shape[1]) for p in photos[:n_train])
    out = []
    for p in photos:
        nh, nw = max(1, round(p.shape[0] * f)), max(1, round(p.shape[1] * f))
        im = _resize_rgb(p, nw, nh)
        y0, x0 = max(0, (nh - sh) // 2), max(0, (nw - sw) // 2)
        im = im[y0:y0 + sh, x0:x0 + sw]
        oy, ox = (sh - im.shape[0]) // 2, (sw - im.shape[1]) // 2
        out.append(np.pad(im, ((oy, sh - im.shape[0] - oy), (ox, sw - im.shape[1] - ox), (0, 0)), mode="edge"))
    return np.stack(out)


def _backbone_maps(bb, x: np.ndarray, mean, std) -> list:
    """The backbone's stage maps of uint8 (N, H, W, 3) model inputs."""
    import torch
    with torch.no_grad():
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
        return list(bb((t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)))


def _patch_features(maps: list, zero_pad: bool = True, pool: int = 3):
    """Stage maps -> (N, C, h, w) patch features as PatchCore makes them: each map averaged
    over pool x pool neighbours (counting the zero padding or not), resized to the first
    map's grid, concatenated."""
    import torch
    from torch.nn import functional as F
    fs = [F.avg_pool2d(m, pool, 1, pool // 2, count_include_pad=zero_pad) for m in maps]
    h, w = fs[0].shape[-2:]
    fs = [f if f.shape[-2:] == (h, w) else F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
          for f in fs]
    return torch.cat(fs, 1)


class Study:
    def __init__(self, data: str, size: tuple[int, int], backbone: str = "efficientnet_lite0",
                 framing: str = "stretch", photometric: str = "none"):
        path = _cache_path(data, size, backbone, framing, photometric)
        if not path.exists():
            features(data, size, backbone, framing, photometric)
        self.path = path
        self.backbone = backbone
        z = np.load(path)
        self.z = {k: z[k] for k in z.files}
        self.size = size
        self.train = np.flatnonzero(self.z["split"] == "train")
        self.test = np.flatnonzero(self.z["split"] == "test")
        self.is_defect = self.z["type"][self.test] != "good"
        from benchmarks.core_bench import validation_half
        items = [{"defect_type": self.z["type"][i], "path": self.z["path"][i]} for i in self.test]
        self.val, self.rep = (np.array(v) for v in validation_half(items))

    def embed(self, idx: np.ndarray, layers=("stage2", "stage4"), zero_pad: bool = True, pool: int = 3):
        import torch
        return _patch_features([torch.from_numpy(self.z[s][idx]).float() for s in layers], zero_pad, pool)

    def bank(self, zero_pad: bool = True, ratio: float = 0.02, seed: int = 0, layers=("stage2", "stage4"),
             pool: int = 3):
        """Exact greedy coreset over all train/good patches; (rows, bank, owner image).
        The coreset's row numbers are cached beside the features (the greedy pass over
        every patch is the slow step: minutes on magnetic_tile)."""
        import torch

        from lineguard.vision.detectors.patchcore import greedy_coreset
        e = self.embed(self.train, layers=layers, zero_pad=zero_pad, pool=pool)
        n, c, h, w = e.shape
        rows = e.permute(0, 2, 3, 1).reshape(-1, c)
        tag = "" if tuple(layers) == ("stage2", "stage4") else "-" + "+".join(layers)
        tag += "" if pool == 3 else f"-pool{pool}"
        key = self.path.with_suffix(f".coreset-{int(zero_pad)}-{ratio}-{seed}{tag}.npy")
        if key.exists():
            idx = torch.from_numpy(np.load(key))
        else:
            idx = greedy_coreset(rows, max(1, int(round(len(rows) * ratio))), 64, seed)
            np.save(key, idx.numpy())
        return rows, rows[idx].contiguous(), idx // (h * w), (h, w)

    def coreset_rows(self, ratio: float = 0.02, seed: int = 0):
        """The cached coreset's rows (indices into the training patches) of :meth:`bank`'s default."""
        import torch
        self.bank(ratio=ratio, seed=seed)
        return torch.from_numpy(np.load(self.path.with_suffix(f".coreset-1-{ratio}-{seed}.npy")))

    def test_distances(self, bank, zero_pad: bool = True, layers=("stage2", "stage4"), pool: int = 3):
        from lineguard.vision.detectors.patchcore import nearest_distance
        e = self.embed(self.test, layers=layers, zero_pad=zero_pad, pool=pool)
        n, c, h, w = e.shape
        return nearest_distance(e.permute(0, 2, 3, 1).reshape(-1, c), bank).view(n, h, w)

    def image_scores(self, d, rule: str = "map_max", sigma: float = 4.0) -> np.ndarray:
        from lineguard.vision.detectors.base import smooth_and_upsample
        if rule == "grid_max":
            return d.flatten(1).max(1).values.numpy()
        m = smooth_and_upsample(d, self.size, sigma).flatten(1)
        if rule.startswith("top"):
            return m.topk(int(rule[3:]), 1).values.mean(1).numpy()
        return m.max(1).values.numpy()

    def metrics(self, scores: np.ndarray) -> dict[str, Any]:
        from benchmarks.core_bench import operating_point
        from lineguard.vision.metrics import image_auroc
        out = {}
        for name, sel in (("val", self.val), ("report", self.rep), ("full", None)):
            pos = np.arange(len(self.test)) if sel is None else sel   # positions within test/
            s, y = scores[pos], self.is_defect[pos]
            out[name] = {"image_auroc": round(image_auroc(s, y), 4),
                         "escapes_at_1pct": round(operating_point(s, y)["escape_rate"], 3)}
        return out


def _conformal(scores: np.ndarray, rate: float = 0.01) -> float:
    s = np.sort(scores)
    k = min(len(s), math.ceil((len(s) + 1) * (1 - rate)))
    return float(s[k - 1])


def run(kind: str, data: str, size: tuple[int, int], configs: Optional[list[str]] = None,
        subsets: Optional[list[int]] = None, tag: str = "", backbone_name: str = "") -> None:
    import torch
    torch.set_num_threads(2)
    # precision, neighbourhood, calibration, photometric, augment, rescale, stage-weights, gaussian,
    # learning-curve and projection take a backbone as their one config (the quality profile's MobileNetV2)
    backbone = configs[0] if kind in ("precision", "neighbourhood", "calibration", "photometric", "augment",
                                      "rescale", "stage-weights", "gaussian", "learning-curve",
                                      "projection") and configs else None
    if kind in ("scales", "layers", "backbones"):
        # scales: the sizes come from --configs; layers: the stage sets; backbones: the others, fused with this one
        backbone = backbone_name or None
    if kind == "resolution":
        backbone = "mobilenet_v2"        # the quality profile's; sizes come from --configs
    st = Study(data, size, backbone=backbone) if backbone else Study(data, size)

    def emit(**row: Any) -> None:
        print(json.dumps({"study": kind, "dataset": Path(data).name, "size": list(size),
                          **({"backbone": backbone} if backbone else {}), **row}), flush=True)

    if kind == "pooling":          # zero padding counted in the 3x3 average, or not
        for zero_pad in (True, False):
            t0 = time.perf_counter()
            _, bank, _, _ = st.bank(zero_pad=zero_pad)
            d = st.test_distances(bank, zero_pad=zero_pad)
            for rule in ("grid_max", "map_max"):
                emit(pool_zero_padding=zero_pad, image_score=rule, fit_s=round(time.perf_counter() - t0, 1),
                     **st.metrics(st.image_scores(d, rule)))
    elif kind == "scoring":        # image score rules and smoothing on one bank
        _, bank, _, _ = st.bank()
        d = st.test_distances(bank)
        for sigma in (2.0, 4.0, 6.0, 8.0):
            for rule in ("map_max", "top10", "top100", "top1000"):
                emit(sigma=sigma, image_score=rule, **st.metrics(st.image_scores(d, rule, sigma)))
    elif kind == "coreset":        # one exact coreset vs the union of 5 group coresets
        from lineguard.vision.detectors.patchcore import greedy_coreset
        t0 = time.perf_counter()
        rows, bank, _, _ = st.bank()
        emit(coreset="exact greedy over all patches", fit_s=round(time.perf_counter() - t0, 1),
             **st.metrics(st.image_scores(st.test_distances(bank))))
        per = len(rows) // len(st.train)
        fold = np.random.default_rng(0).permutation(len(st.train)) % 5
        t0 = time.perf_counter()
        parts = []
        for k in range(5):
            r = torch.cat([rows[i * per:(i + 1) * per] for i in np.flatnonzero(fold == k)])
            parts.append(r[greedy_coreset(r, int(round(len(r) * 0.02)), 64, k)])
        union = torch.cat(parts)
        emit(coreset="union of 5 group coresets", fit_s=round(time.perf_counter() - t0, 1),
             **st.metrics(st.image_scores(st.test_distances(union))))
    elif kind == "calibration":    # leave-one-part-out scores (refilled or not), position norm, suspects
        from lineguard.vision.detectors._refill import GreedyRefill
        from lineguard.vision.detectors.patchcore import coreset_projection, nearest_distance
        rows, bank, owner, (h, w) = st.bank()
        per = h * w
        bsq = (bank * bank).sum(1)
        loo = torch.stack([nearest_distance(rows[i * per:(i + 1) * per], bank, bsq, exclude=owner == i).view(h, w)
                           for i in range(len(st.train))])
        # the product's refill: each part's bank rows picked again among the other parts' patches
        t0 = time.perf_counter()
        refill = GreedyRefill(coreset_projection(rows, 64, seed=0), st.coreset_rows(),
                              torch.arange(len(st.train)).repeat_interleave(per))
        refilled = loo.clone()
        for i in range(len(st.train)):
            extra = rows[refill.rows_for(i)]
            if len(extra):
                refilled[i] = torch.minimum(loo[i], nearest_distance(rows[i * per:(i + 1) * per], extra).view(h, w))
        refill_s = round(time.perf_counter() - t0, 1)
        d = st.test_distances(bank)
        good = ~st.is_defect
        for norm, refill_on in ((False, False), (True, False), (False, True)):
            dd, cc = d, (refilled if refill_on else loo)
            if norm:
                mu, sd = loo.mean(0), loo.std(0)
                sd = sd.clamp_min(float(sd.median()) * 0.25 + 1e-6)
                dd, cc = (d - mu) / sd, (loo - mu) / sd
            s, cs = st.image_scores(dd), st.image_scores(cc)
            q1, q3 = np.quantile(cs, [0.25, 0.75])
            cut = q3 + 3 * (q3 - q1)
            for exclude in (False, True):
                thr = _conformal(cs[cs <= cut] if exclude else cs)
                emit(position_norm=norm, refill=refill_on, exclude_suspects=exclude, suspects=int((cs > cut).sum()),
                     **({"refill_s": refill_s} if refill_on else {}),
                     calibrated={"false_reject_rate": round(float((s[good] > thr).mean()), 4),
                                 "escape_rate": round(float((s[~good] <= thr).mean()), 4)},
                     loo_quantiles=np.round(np.quantile(cs, [0.5, 0.9, 0.99]), 2).tolist(),
                     test_good_quantiles=np.round(np.quantile(s[good], [0.5, 0.9, 0.99]), 2).tolist(),
                     **st.metrics(s))
    elif kind == "layers":         # which backbone stages make the patch features (finest stage sets the grid)
        for layers in (configs or ["stage2+stage4", "stage2+stage3+stage4", "stage2+stage3"]):
            ls = tuple(layers.split("+"))
            for n, pick in _small_draws(len(st.train), subsets or []):   # --subsets 50 100: a small plant's draws
                bank = _small_bank(st, pick, layers=ls)
                emit(layers=layers, n_good=n, **st.metrics(st.image_scores(st.test_distances(bank, layers=ls))))
            if subsets:
                continue
            t0 = time.perf_counter()
            _, bank, _, _ = st.bank(layers=ls)
            d = st.test_distances(bank, layers=ls)
            emit(layers=layers, dims=int(bank.shape[1]), bank_rows=len(bank), fit_s=round(time.perf_counter() - t0, 1),
                 **st.metrics(st.image_scores(d)))
    elif kind == "backbones":      # another backbone alone, and fused with Lite0 patch by patch
        _backbone_study(st, data, size, configs or ["mobilenet_v2", "efficientnet_lite1"], emit)
    elif kind == "small":          # 50 / 100 good parts: Lite0, MobileNetV2, both
        _small_sets_study(st, data, size, subsets or [50, 100], emit)
    elif kind == "density":        # distances relative to the local spread of good patches
        _density_study(st, emit)
    elif kind == "projection":     # nearest-neighbour search in a PCA subspace of the patch features
        _projection_study(st, emit)
    elif kind == "precision":      # the bank search in int8 (ONNX Runtime's VNNI/AMX kernels), simulated exactly
        _precision_study(st, emit)
    elif kind == "neighbourhood":  # patch = average over a 3x3 / 5x5 / 7x7 neighbourhood; k nearest bank rows
        _neighbourhood_study(st, emit)
    elif kind == "resolution":     # the same backbone at larger inputs (--configs HxW ...; --size names the base)
        _resolution_study(data, size, configs or [], backbone or "mobilenet_v2", emit)
    elif kind == "scales":         # the same backbone at several input sizes, distances summed
        _scales_study(st, data, size, configs or [], backbone or "efficientnet_lite0", emit)
    elif kind == "framing":        # small sets under other photo -> input framings (orient, pad)
        _framing_study(data, size, emit)
    elif kind == "augment":        # 50 / 100 parts: the bank also holds lighting-jittered copies
        _augment_study(st, data, size, backbone or "efficientnet_lite0", emit)
    elif kind == "stage-weights":  # how much stage 2 counts against stage 4 in the distance
        _stage_weight_study(st, data, emit)
    elif kind == "rescale":        # 50 / 100 parts: ... and copies with the texture at another scale
        _augment_study(st, data, size, backbone or "efficientnet_lite0", emit, RESCALES)
    elif kind == "keep-scale":     # one texture scale for photos of different sizes, against stretching
        _keep_scale_study(data, size, emit)
    elif kind == "photometric":    # each photo's brightness / contrast evened out before the backbone
        _photometric_study(data, size, emit, backbone or "efficientnet_lite0")
    elif kind == "small-scoring":  # image scores relative to the part's own typical distance; cosine
        _small_scoring_study(st, emit)
    elif kind == "gaussian":       # 50 / 100 / all parts: one Gaussian over all good patches, beside the bank
        _gaussian_study(st, emit)
    elif kind == "learning-curve":  # image AUROC and escapes against the number of good parts
        _learning_curve_study(st, subsets or [50, 100, 200, 400, len(st.train)], emit)
    elif kind == "context":        # a within-part deviation map fused with the bank distance; map sigma
        _context_study(st, data, emit)
    elif kind == "discriminator":  # a learned patch scorer, alone and fused (discriminator_study.py)
        from benchmarks import discriminator_study
        out = Path("benchmarks/results") / (f"study-discriminator-{Path(data).resolve().name}-{size[0]}x{size[1]}"
                                            f"{'-' + tag if tag else ''}.json")
        discriminator_study.run(st, data, emit, configs or list(discriminator_study.CONFIGS), subsets or [], out)
    else:
        raise SystemExit(f"unknown study {kind!r}")


def _small_draws(n_train: int, sizes=(50, 100)):
    """core_bench's seeded draws of a small plant's training set: 50, then 100 parts."""
    rng = np.random.default_rng(0)
    for n in sizes:
        yield n, np.sort(rng.choice(n_train, size=min(n, n_train), replace=False))


def _coreset(rows):
    """Row numbers of the product's 2% greedy coreset of these patch rows (seed 0)."""
    from lineguard.vision.detectors.patchcore import greedy_coreset
    return greedy_coreset(rows, max(1, int(round(len(rows) * 0.02))), 64, 0)


def _small_bank(st: "Study", pick: np.ndarray, normalize: bool = False, layers=("stage2", "stage4")):
    import torch
    e = st.embed(st.train[pick], layers=layers)
    rows = e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])
    if normalize:
        rows = torch.nn.functional.normalize(rows, dim=1)
    return rows[_coreset(rows)]


def _framing_study(data: str, size: tuple[int, int], emit) -> None:
    """Magnetic tiles come in many sizes and aspect ratios (0.36-2.6), so stretching to a
    square scales texture differently per photo; with 50 or 100 training parts that might
    be what leaves test parts uncovered. Turning portraits to landscape and/or padding
    instead of stretching keep texture scale closer (Preprocess's orient / resize)."""
    for framing in FRAMINGS:
        st = Study(data, size, framing=framing)
        for n, pick in _small_draws(len(st.train)):
            emit(framing=framing, n_good=n, **st.metrics(st.image_scores(st.test_distances(_small_bank(st, pick)))))


def _keep_scale_study(data: str, size: tuple[int, int], emit) -> None:
    """Stretching (the product) against one scale for every photo (``_keep_scale``), with
    every training part (the exact coreset) and with core_bench's 50 / 100-part draws."""
    for framing in ("stretch", "keep-scale"):
        st = Study(data, size, framing=framing)
        _, bank, _, _ = st.bank()
        emit(framing=framing, n_good=len(st.train), **st.metrics(st.image_scores(st.test_distances(bank))))
        for n, pick in _small_draws(len(st.train)):
            emit(framing=framing, n_good=n, **st.metrics(st.image_scores(st.test_distances(_small_bank(st, pick)))))


def _photometric_study(data: str, size: tuple[int, int], emit, backbone: str = "efficientnet_lite0") -> None:
    """Small sets (50, 100 parts) and the full set with each photo's brightness and
    contrast evened out before the backbone (PHOTOMETRIC): at 100 parts a good test
    part's score follows its brightness, so photos lit differently from the few training
    parts might be what leaves them uncovered."""
    from scipy.stats import spearmanr

    from lineguard.vision.imageio import load_image
    from lineguard.vision.preprocess import Preprocess
    looks = None
    for mode in PHOTOMETRIC:
        st = Study(data, size, backbone=backbone, photometric=mode)
        for n, pick in _small_draws(len(st.train)):
            emit(photometric=mode, n_good=n, **st.metrics(st.image_scores(st.test_distances(_small_bank(st, pick)))))
        _, bank, _, _ = st.bank()
        s = st.image_scores(st.test_distances(bank))
        good = ~st.is_defect
        if looks is None:   # each good test photo's grey mean and spread as the model sees it
            pre = Preprocess(image_size=size)
            grey = [pre.apply(load_image(p))[0].astype(np.float32).mean(2) for p in st.z["path"][st.test][good]]
            looks = np.array([(g.mean(), g.std()) for g in grey])
        emit(photometric=mode, n_good=len(st.train), **st.metrics(s),
             good_score_rank_corr={"brightness": round(float(spearmanr(s[good], looks[:, 0])[0]), 3),
                                   "contrast": round(float(spearmanr(s[good], looks[:, 1])[0]), 3)})


# Copies of each training photo with its contrast scaled (gain, about the photo's mean)
# and its brightness shifted (grey levels), added to the small sets' bank before the
# coreset: lighting variation the few training parts did not show. The bank keeps plain's
# row count (2% of the unaugmented patches) unless ``bank x5``.
def _lighting(gain: float, shift: float):
    """A photo's contrast times ``gain`` about its own mean, plus ``shift`` grey levels."""
    def apply(photos: np.ndarray) -> np.ndarray:
        x = photos.astype(np.float32)
        m = x.mean((1, 2, 3), keepdims=True)
        return np.clip(np.round((x - m) * gain + m + shift), 0, 255).astype(np.uint8)
    return apply


def _rescaled(fy: float, fx: float):
    """The photo's texture made ``fy`` x ``fx`` times as large: > 1 crops the middle and
    enlarges it, < 1 shrinks the photo and fills the border by mirroring it."""
    from PIL import Image

    def one(im: np.ndarray) -> np.ndarray:
        h, w = im.shape[:2]
        if fy >= 1 and fx >= 1:
            ch, cw = round(h / fy), round(w / fx)
            top, left = (h - ch) // 2, (w - cw) // 2
            return np.asarray(Image.fromarray(im[top:top + ch, left:left + cw]).resize((w, h), Image.BILINEAR))
        if fy > 1 or fx > 1:
            raise ValueError("enlarge both axes or shrink both")
        sh, sw = round(h * fy), round(w * fx)
        small = np.asarray(Image.fromarray(im).resize((sw, sh), Image.BILINEAR))
        py, px = h - sh, w - sw
        return np.pad(small, ((py // 2, py - py // 2), (px // 2, px - px // 2), (0, 0)), mode="reflect")
    return lambda photos: np.stack([one(im) for im in photos])


_PLAIN = _lighting(1.0, 0.0)
# name: (the copies of each photo in the bank's candidates, bank rows as a multiple of plain's)
AUGMENTS = {"plain": ([_PLAIN], 1),
            "jitter4": ([_PLAIN] + [_lighting(g, b) for g in (0.8, 1.25) for b in (-20.0, 20.0)], 1),
            "jitter4, bank x5": ([_PLAIN] + [_lighting(g, b) for g in (0.8, 1.25) for b in (-20.0, 20.0)], 5),
            "jitter4 strong": ([_PLAIN] + [_lighting(g, b) for g in (0.67, 1.5) for b in (-40.0, 40.0)], 1),
            "gain only": ([_PLAIN, _lighting(0.8, 0.0), _lighting(1.25, 0.0)], 1),
            "brightness only": ([_PLAIN, _lighting(1.0, -20.0), _lighting(1.0, 20.0)], 1)}
# Photos of one product are taken at different distances and, stretched to the input
# size, their texture at different scales per axis (magnetic tiles: 100-630 px a side).
RESCALES = {"plain": ([_PLAIN], 1),
            "zoom 1.25 / 0.8": ([_PLAIN, _rescaled(1.25, 1.25), _rescaled(0.8, 0.8)], 1),
            "stretch x or y 1.25": ([_PLAIN, _rescaled(1.0, 1.25), _rescaled(1.25, 1.0)], 1),
            "zoom and stretch": ([_PLAIN, _rescaled(1.25, 1.25), _rescaled(0.8, 0.8), _rescaled(1.0, 1.25),
                                  _rescaled(1.25, 1.0)], 1),
            "zoom and stretch, bank x3": ([_PLAIN, _rescaled(1.25, 1.25), _rescaled(0.8, 0.8),
                                           _rescaled(1.0, 1.25), _rescaled(1.25, 1.0)], 3)}


def _augment_study(st: "Study", data: str, size: tuple[int, int], backbone: str, emit,
                   variants: Optional[dict] = None) -> None:
    """50 / 100 good parts with a bank that also holds altered copies of each photo
    (AUGMENTS: lighting-jittered; RESCALES: texture at another scale)."""
    import torch

    from lineguard.vision.backbones import NORMALIZATION, create_backbone
    from lineguard.vision.detectors.patchcore import greedy_coreset
    from lineguard.vision.imageio import load_image
    from lineguard.vision.preprocess import Preprocess
    pre = Preprocess(image_size=size)
    bb = create_backbone(backbone, ["stage2", "stage4"]).fold_bn().eval()

    def embed(x: np.ndarray) -> torch.Tensor:   # as Study.embed, from the photos (not the cache: float32)
        e = _patch_features(_backbone_maps(bb, x, *NORMALIZATION[backbone]))
        return e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])

    for n, pick in _small_draws(len(st.train)):
        photos = np.stack([pre.apply(load_image(st.z["path"][st.train[i]]))[0] for i in pick])
        for name, (copies, bank_x) in (variants or AUGMENTS).items():
            rows = []
            for alter in copies:
                x = alter(photos)
                rows += [embed(x[i:i + 16]) for i in range(0, len(x), 16)]
            rows = torch.cat(rows)
            n_keep = int(round(len(rows) // len(copies) * 0.02)) * bank_x
            bank = rows[greedy_coreset(rows, n_keep, 64, 0)]
            emit(n_good=n, augment=name, bank_rows=n_keep, **st.metrics(st.image_scores(st.test_distances(bank))))


# stage 2's 40 channels vary about half as much as stage 4's 112 (summed variance over the
# training patches of magnetic tile: 177 vs 377), so the distance is mostly stage 4's.
STAGE_WEIGHTS = {"as today (1, 1)": (1.0, 1.0), "stage 2 x1.41 (equal variance)": (2 ** 0.5, 1.0),
                 "stage 2 x2": (2.0, 1.0), "stage 2 x0.71": (2 ** -0.5, 1.0), "each channel standardised": None}


def _stage_weight_study(st: "Study", data: str, emit) -> None:
    """How much each stage counts in the patch distance: stage 2's channels scaled against
    stage 4's, or every channel over its spread on the training patches. Each a new exact
    coreset (2%) over every training patch, so a few minutes a setting."""
    import torch

    from benchmarks.discriminator_study import PixelEval
    from lineguard.vision.detectors.base import smooth_and_upsample
    from lineguard.vision.detectors.patchcore import nearest_distance
    pe = PixelEval(st, data)
    train, test = st.embed(st.train), st.embed(st.test)
    c2 = st.z["stage2"].shape[1]
    n, c, h, w = train.shape
    rows = train.permute(0, 2, 3, 1).reshape(-1, c)
    q = test.permute(0, 2, 3, 1).reshape(-1, c)
    for name, weights in STAGE_WEIGHTS.items():
        if weights is None:
            scale = 1 / rows.std(0).clamp_min(1e-6)
        else:
            scale = torch.cat([torch.full((c2,), weights[0]), torch.full((c - c2,), weights[1])])
        t0 = time.perf_counter()
        r = rows * scale
        bank = r[_coreset(r)]
        fit_s = time.perf_counter() - t0
        d = nearest_distance(q * scale, bank).view(len(st.test), h, w)
        emit(stage_weights=name, fit_s=round(fit_s, 1), image=st.metrics(st.image_scores(d)),
             pixel=pe(smooth_and_upsample(d, st.size, 4.0)))


def _relative_rules(st: "Study", d) -> dict:
    """Image score rules: the smoothed map's peak (the product's), and the peak relative
    to the part's own typical patch distance (its median or lower quartile): a part
    photographed brighter or sharper is farther from the bank everywhere."""
    from lineguard.vision.detectors.base import smooth_and_upsample
    peak = smooth_and_upsample(d, st.size, 4.0).flatten(1).max(1).values
    med, q25 = d.flatten(1).median(1).values, d.flatten(1).quantile(0.25, dim=1)
    return {"max": peak, "max-median": peak - med, "max/median": peak / med, "max-q25": peak - q25,
            "max/q25": peak / q25}


def _small_scoring_study(st: "Study", emit) -> None:
    """With 50 or 100 parts, is the score's problem the part's overall offset from the
    bank (brighter parts score higher: rank correlation 0.29 between a good test part's
    score and its mean brightness at 100 parts)? Relative scores, and cosine distances
    (every patch vector scaled to unit length), against the plain peak."""
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    for n, pick in _small_draws(len(st.train)):
        for k, s in _relative_rules(st, st.test_distances(_small_bank(st, pick))).items():
            emit(n_good=n, variant=k, **st.metrics(s.numpy()))
        et = st.embed(st.test)
        nt, c, h, w = et.shape
        q = torch.nn.functional.normalize(et.permute(0, 2, 3, 1).reshape(-1, c), dim=1)
        dc = nearest_distance(q, _small_bank(st, pick, normalize=True)).view(nt, h, w)
        for k, s in _relative_rules(st, dc).items():
            emit(n_good=n, variant="cosine " + k, **st.metrics(s.numpy()))
    _, bank, _, _ = st.bank()
    for k, s in _relative_rules(st, st.test_distances(bank)).items():
        emit(n_good=len(st.train), variant=k, **st.metrics(s.numpy()))


def _gaussian_study(st: "Study", emit) -> None:
    """Does a smooth model of good patches generalise better from 50 or 100 parts than the
    nearest bank row? One Gaussian over every training patch, wherever it lies on the part
    (mean and covariance, the covariance shrunk towards its average variance by 1% / 10%),
    the patch scored by its Mahalanobis distance; alone and added to the bank distance
    (each over its median on good training parts, the Gaussian weighted 0.5 or 1)."""
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    et = st.embed(st.test)
    nt, c, h, w = et.shape
    test_rows = et.permute(0, 2, 3, 1).reshape(-1, c)

    def mahalanobis(rows, shrink: float):
        mu = rows.mean(0)
        cov = torch.cov((rows - mu).T)
        chol = torch.linalg.cholesky((cov + shrink * cov.trace() / c * torch.eye(c)).double())

        def distance(z):
            return torch.cat([torch.linalg.solve_triangular(chol, (z[i:i + 100000] - mu).double().T, upper=False)
                              .pow(2).sum(0).sqrt().float() for i in range(0, len(z), 100000)])
        return distance

    draws = list(_small_draws(len(st.train))) + [(len(st.train), None)]
    for n, pick in draws:
        if pick is None:
            rows, bank, owner, _ = st.bank()
        else:
            e = st.embed(st.train[pick])
            rows = e.permute(0, 2, 3, 1).reshape(-1, c)
            bank = _small_bank(st, pick)
            owner = None
        per = h * w
        # the scale: distances of every so many training parts, their own rows left out of the
        # bank where it records owners (all parts; a small draw's bank is 2% of its rows, so
        # leaving them in moves the median little)
        every = max(1, n // 50)
        loo = torch.cat([nearest_distance(rows[i * per:(i + 1) * per], bank,
                                          exclude=None if owner is None else owner == i) for i in range(0, n, every)])
        s_bank = float(loo[torch.isfinite(loo)].median())
        d_bank = nearest_distance(test_rows, bank).view(nt, h, w)
        emit(n_good=n, variant="bank (today)", **st.metrics(st.image_scores(d_bank)))
        for shrink in (0.01, 0.1):
            dist = mahalanobis(rows, shrink)
            d_gauss = dist(test_rows).view(nt, h, w)
            s_gauss = float(dist(rows[::7]).median())
            emit(n_good=n, variant=f"gaussian, shrink {shrink}", **st.metrics(st.image_scores(d_gauss)))
            for wgt in (0.5, 1.0):
                emit(n_good=n, variant=f"bank + {wgt} x gaussian, shrink {shrink}",
                     **st.metrics(st.image_scores(d_bank / s_bank + wgt * d_gauss / s_gauss)))


def _learning_curve_study(st: "Study", sizes: list[int], emit) -> None:
    """How many good parts does a product need? The bank learns from seeded draws of n
    training parts (the first two are core_bench's 50 and 100; each draw is new, not a
    superset of the one before), judged on the whole test set. And a candidate signal a plant could read at
    training time: each part scored against a bank of the other half of the draw (2-fold)
    beside its leave-own-rows-out score against the bank of all n; if halving the parts
    raises good parts' scores much more while the model is still learning than once it is
    not, `train` could tell a plant to collect more."""
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    rng = np.random.default_rng(0)      # core_bench's draws: 50 then 100 from this seed
    for n in sizes:
        pick = np.sort(rng.choice(len(st.train), size=min(n, len(st.train)), replace=False))
        e = st.embed(st.train[pick])
        n, c, h, w = e.shape
        per = h * w
        if n == len(st.train):     # every part: the cached coreset (the same rows, the same seed)
            rows, bank, owner, _ = st.bank()
        else:
            rows = e.permute(0, 2, 3, 1).reshape(-1, c)
            idx = _coreset(rows)
            bank, owner = rows[idx], idx // per
        own_out = torch.stack([nearest_distance(rows[i * per:(i + 1) * per], bank, exclude=owner == i).view(h, w)
                               for i in range(n)])
        full = st.image_scores(torch.nan_to_num(own_out, posinf=0.0))
        halves = np.arange(n) % 2 == 0
        half = np.zeros(n)
        for learn in (halves, ~halves):
            r = torch.cat([rows[i * per:(i + 1) * per] for i in np.flatnonzero(learn)])
            b = r[_coreset(r)]
            for i in np.flatnonzero(~learn):
                half[i] = st.image_scores(nearest_distance(rows[i * per:(i + 1) * per], b).view(1, h, w))[0]
        test = st.image_scores(st.test_distances(bank))
        emit(n_good=n, bank_rows=len(bank), **st.metrics(test),
             test_good_median=round(float(np.median(test[~st.is_defect])), 3),
             halved_over_all={"median": round(float(np.median(half) / np.median(full)), 3),
                              "p90": round(float(np.percentile(half, 90) / np.percentile(full, 90)), 3)})


def _context_study(st: "Study", data: str, emit) -> None:
    """Pixel AUROC is mostly magnetic tile's 'uneven' defects (71% of all defect pixels,
    a band of other surface finish over ~24% of the tile), where each patch alone looks
    like some good patch. Tried: each patch's distance from its own part's median patch
    (a part should look alike all over) added to the bank distance, each over its median
    on good training parts; and a wider map smoothing."""
    import torch

    from benchmarks.discriminator_study import PixelEval
    from lineguard.vision.detectors.base import smooth_and_upsample
    from lineguard.vision.detectors.patchcore import nearest_distance
    pe = PixelEval(st, data)
    rows, bank, owner, (h, w) = st.bank()
    d = st.test_distances(bank)

    def self_deviation(idx):
        e = st.embed(idx)
        f = e.flatten(2)
        return (f - f.median(2, keepdim=True).values).norm(dim=1).view(len(idx), *e.shape[2:])
    sd_train = torch.cat([self_deviation(st.train[i:i + 64]) for i in range(0, len(st.train), 64)])
    sd_test = torch.cat([self_deviation(st.test[i:i + 64]) for i in range(0, len(st.test), 64)])
    per = h * w
    loo = torch.cat([nearest_distance(rows[i * per:(i + 1) * per], bank, exclude=owner == i)
                     for i in range(0, len(st.train), 8)])        # every 8th training part
    s_d, s_sd = float(loo[torch.isfinite(loo)].median()), float(sd_train.median())
    for wgt in (0.0, 0.25, 0.5, 1.0, 2.0, "only"):
        m = sd_test / s_sd if wgt == "only" else d / s_d + wgt * sd_test / s_sd
        mm = smooth_and_upsample(m, st.size, 4.0)
        emit(selfdev_weight=wgt, image=st.metrics(mm.flatten(1).max(1).values.numpy()), pixel=pe(mm))
    for sigma in (4.0, 8.0, 16.0):
        mm = smooth_and_upsample(d, st.size, sigma)
        emit(sigma=sigma, image=st.metrics(mm.flatten(1).max(1).values.numpy()), pixel=pe(mm))


def _small_sets_study(st: "Study", data: str, size: tuple[int, int], sizes: list[int], emit) -> None:
    """A small plant's training set (the same seeded draws as core_bench: 50 then 100 good
    parts) for Lite0, MobileNetV2 and both summed: escapes at 1% false rejects on test/good."""
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    other = Study(data, size, backbone="mobilenet_v2")
    for n, pick in _small_draws(len(st.train), sizes):
        ds, scales = {}, {}
        for name, s in (("efficientnet_lite0", st), ("mobilenet_v2", other)):
            e = s.embed(s.train[pick])
            _, c, h, w = e.shape
            rows = e.permute(0, 2, 3, 1).reshape(-1, c)
            idx = _coreset(rows)
            bank = rows[idx]
            owner = idx // (h * w)
            loo = torch.cat([nearest_distance(rows[i * h * w:(i + 1) * h * w], bank, exclude=owner == i)
                             for i in range(len(pick))])
            scales[name] = float(loo[torch.isfinite(loo)].median())
            ds[name] = s.test_distances(bank)
            emit(n_good=n, backbone=name, **s.metrics(s.image_scores(ds[name])))
        fused = sum(d / scales[k] for k, d in ds.items())
        emit(n_good=n, backbone="efficientnet_lite0 + mobilenet_v2", **st.metrics(st.image_scores(fused)))


def _loo_and_test(st: "Study"):
    """Every training part's patch distances to the bank without its own patches (what
    PatchCore's calibration uses) and the test parts' distances, stages 2+4."""
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    rows, bank, owner, (h, w) = st.bank()
    per = h * w
    bsq = (bank * bank).sum(1)
    loo = torch.stack([nearest_distance(rows[i * per:(i + 1) * per], bank, bsq, exclude=owner == i).view(h, w)
                       for i in range(len(st.train))])
    return loo, st.test_distances(bank)


def _test_distances_and_scale(st: "Study"):
    """The test parts' patch distances and their unit for summing with another study's:
    the median leave-one-part-out distance of the training parts (from good parts only;
    the product's extra input sizes use the same rule)."""
    loo, d = _loo_and_test(st)
    return d, float(loo.median())


def _backbone_study(st: "Study", data: str, size: tuple[int, int], backbones: list[str], emit) -> None:
    """Each backbone's own PatchCore (stages 2+4, the same bank rules), then the sum of
    ``st``'s (Lite0 unless --backbone) and its patch distances, each divided by its median
    leave-one-part-out distance on the training parts (a scale learned from good parts only), and
    smoothed and scored as one map. Cost: both backbones and both searches per part."""
    from lineguard.vision.detectors.patchcore import on_grid
    base_d, base_scale = _test_distances_and_scale(st)
    for name in backbones:
        t0 = time.perf_counter()
        other = Study(data, size, backbone=name)
        d, scale = _test_distances_and_scale(other)
        d = on_grid(d, base_d.shape[-2:])
        emit(backbone=name, fit_s=round(time.perf_counter() - t0, 1), **other.metrics(other.image_scores(d)))
        for w in (0.5, 1.0):
            fused = base_d / base_scale + w * d / scale
            emit(backbone=f"{st.backbone} + {w} x {name}", scales=[round(base_scale, 3), round(scale, 3)],
                 **st.metrics(st.image_scores(fused)))


def _scales_study(st: "Study", data: str, size: tuple[int, int], sizes: list[str], backbone: str, emit) -> None:
    """The same backbone fed the part at several input sizes (CS-Flow's idea: a defect
    that is one patch at one scale is several at another, and a coarse input sees more
    of the part around each patch), PatchCore's bank at each: every scale's patch
    distances over its median leave-one-part-out distance on the training parts (a scale
    from good parts only), resized to the finer grid and summed, weight 0.5 or 1 on the
    other scale; with two or more other sizes, also all of them summed. Cost: one
    backbone pass and one bank search per size."""
    from benchmarks.discriminator_study import PixelEval
    from lineguard.vision.detectors.base import smooth_and_upsample
    from lineguard.vision.detectors.patchcore import on_grid
    pe = PixelEval(st, data)

    def judge(d) -> dict:
        m = smooth_and_upsample(d, st.size, 4.0)
        return {"image": st.metrics(m.flatten(1).max(1).values.numpy()), "pixel": pe(m)}

    base_d, base_scale = _test_distances_and_scale(st)
    base = base_d / base_scale
    emit(inputs=[list(size)], grid=list(base.shape[-2:]), **judge(base_d))
    others = []
    for text in sizes:
        t0 = time.perf_counter()
        other = Study(data, _size(text), backbone=backbone)
        d, scale = _test_distances_and_scale(other)
        fit_s = round(time.perf_counter() - t0, 1)
        emit(inputs=[list(other.size)], grid=list(d.shape[-2:]), fit_s=fit_s, **judge(on_grid(d, base.shape[-2:])))
        d = d / scale
        others.append(d)
        hw = max(base.shape[-2:], d.shape[-2:])
        for w in (0.5, 1.0):
            emit(inputs=[list(size), list(other.size)], other_weight=w, grid=list(hw),
                 **judge(on_grid(base, hw) + w * on_grid(d, hw)))
    if len(others) > 1:
        hw = max([base.shape[-2:]] + [d.shape[-2:] for d in others])
        emit(inputs=[list(size)] + [list(_size(t)) for t in sizes], other_weight=1.0, grid=list(hw),
             **judge(on_grid(base, hw) + sum(on_grid(d, hw) for d in others)))


def _nearest_with_index(q, bank, block: int = 4096):
    """(distance, index) of each query row's nearest bank row."""
    import torch
    bsq = (bank * bank).sum(1)
    ds, ix = [], []
    for i in range(0, len(q), block):
        qb = q[i:i + block]
        v, j = torch.addmm(bsq[None], qb, bank.T, alpha=-2.0).min(1)
        ds.append((v + (qb * qb).sum(1)).clamp_min(0).sqrt())
        ix.append(j)
    return torch.cat(ds), torch.cat(ix)


def _density_study(st: "Study", emit) -> None:
    """A patch's distance divided by a local scale of the bank row it matched: where good
    parts vary a lot (texture, edges) their patches lie far from the bank rows that cover
    them, so a large distance there is ordinary. Scales learned from train/good only:
    "cover": mean distance of the training patches whose nearest bank row it is (each
    part's own rows left out), "knn-k": distance to the k-th nearest other bank row. The
    score is d / (alpha * median scale + scale), alpha the regulariser."""
    import torch
    rows, bank, owner, (h, w) = st.bank()
    per = h * w
    # training patches' nearest rows, own part's bank rows left out (as calibration does)
    loo_d = torch.empty(len(rows))
    loo_j = torch.empty(len(rows), dtype=torch.long)
    bsq = (bank * bank).sum(1)
    for i in range(len(st.train)):
        q = rows[i * per:(i + 1) * per]
        b2 = bsq.masked_fill(owner == i, float("inf"))
        v, j = torch.addmm(b2[None], q, bank.T, alpha=-2.0).min(1)
        loo_d[i * per:(i + 1) * per] = (v + (q * q).sum(1)).clamp_min(0).sqrt()
        loo_j[i * per:(i + 1) * per] = j
    cnt = torch.bincount(loo_j, minlength=len(bank)).float()
    cover = torch.bincount(loo_j, weights=loo_d, minlength=len(bank)) / cnt.clamp_min(1)
    cover = torch.where(cnt > 0, cover, cover[cnt > 0].median())
    bb = torch.cdist(bank, bank)
    bb.fill_diagonal_(float("inf"))
    knn = bb.topk(5, dim=1, largest=False).values
    e = st.embed(st.test)
    n, c = e.shape[:2]
    d, j = _nearest_with_index(e.permute(0, 2, 3, 1).reshape(-1, c), bank)
    emit(variant="plain nearest distance (today)", **st.metrics(st.image_scores(d.view(n, h, w))))
    for name, scale in (("cover", cover), ("knn-1", knn[:, 0]), ("knn-5", knn[:, 4])):
        med = float(scale.median())
        for alpha in (0.5, 1.0, 3.0):
            dd = d / (alpha * med + scale[j]) * (alpha + 1) * med
            emit(variant=f"{name}, alpha {alpha}", **st.metrics(st.image_scores(dd.view(n, h, w))))


def _projection_study(st: "Study", emit) -> None:
    """The bank and the queries projected onto the top-k principal axes of the good
    patches: the distance matmul then costs k/C of the full one (it is most of an
    inspection's time at 224 px). "+residual" adds each query patch's energy off the
    subspace (what the projection throws away) back to its squared distance. The bank
    rows are the full-width coreset's; speed is the torch matmul of one part's patches
    against the bank (the exported graph does the same arithmetic)."""
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    rows, bank, _, (h, w) = st.bank()
    g = torch.Generator().manual_seed(0)
    sample = rows[torch.randperm(len(rows), generator=g)[:200_000]]
    mean = sample.mean(0)
    cov = torch.cov((sample - mean).T)
    evals, evecs = torch.linalg.eigh(cov)
    order = evals.argsort(descending=True)
    evals, evecs = evals[order], evecs[:, order]
    energy = (evals.cumsum(0) / evals.sum()).numpy()
    e = st.embed(st.test)
    n, c = e.shape[:2]
    q = e.permute(0, 2, 3, 1).reshape(-1, c)
    one = q[:h * w]

    def timed(qq: torch.Tensor, bb: torch.Tensor) -> float:
        bt = (-2 * bb).T.contiguous()
        bsq = (bb * bb).sum(1)
        for _ in range(3):
            torch.addmm(bsq[None], qq, bt).min(1)
        t0 = time.perf_counter()
        for _ in range(20):
            torch.addmm(bsq[None], qq, bt).min(1)
        return round((time.perf_counter() - t0) / 20 * 1000, 2)

    full = nearest_distance(q, bank).view(n, h, w)
    emit(dims=c, variant="full width (today)", bank_rows=len(bank), matmul_ms=timed(one, bank),
         **st.metrics(st.image_scores(full)))
    for k in (16, 24, 32, 48, 64, 96):
        v = evecs[:, :k]
        qk, bk = (q - mean) @ v, (bank - mean) @ v
        d_in = nearest_distance(qk, bk)
        res = ((q - mean) ** 2).sum(1) - (qk ** 2).sum(1)
        ms = timed(qk[:h * w].contiguous(), bk.contiguous())
        for variant, d in (("subspace", d_in), ("subspace+residual", (d_in ** 2 + res.clamp_min(0)).sqrt())):
            emit(dims=k, variant=variant, energy=round(float(energy[k - 1]), 4), matmul_ms=ms,
                 **st.metrics(st.image_scores(d.view(n, h, w))))


def _neighbourhood_study(st: "Study", emit) -> None:
    """How much context a patch feature carries, and how many bank rows judge it: the
    3x3 average (today) against 5x5 and 7x7 (wider defects such as magnetic tile's
    "uneven" fill more of a patch's view), and the mean distance to the k = 1 / 3 nearest
    bank rows (a lone bank row near a defect patch counts less)."""
    import torch
    for pool in (3, 5, 7):
        t0 = time.perf_counter()
        _, bank, _, (h, w) = st.bank(pool=pool)
        e = st.embed(st.test, pool=pool)
        n, c = e.shape[:2]
        q = e.permute(0, 2, 3, 1).reshape(-1, c)
        bsq = (bank * bank).sum(1)
        kd = []
        for i in range(0, len(q), 4096):
            qb = q[i:i + 4096]
            d2 = torch.addmm(bsq[None], qb, bank.T, alpha=-2.0) + (qb * qb).sum(1, keepdim=True)
            kd.append(d2.topk(3, dim=1, largest=False).values.clamp_min(0).sqrt())
        kd = torch.cat(kd)
        for k in (1, 3):
            d = kd[:, :k].mean(1).view(n, h, w)
            emit(pool=pool, k_nearest=k, fit_s=round(time.perf_counter() - t0, 1), **st.metrics(st.image_scores(d)))


def _resolution_study(data: str, base: tuple[int, int], sizes: list[str], backbone: str, emit) -> None:
    """The quality profile's features (MobileNetV2, stages 2+4, the same bank rules) at
    the base input and at larger ones with the same aspect ratio (``auto256``, ``auto288``
    as Inspector.fit computes them): thin cracks cover more patches, at the cost of more
    patches to embed and search (bank rows grow with the input's area)."""
    for size in [base] + [_size(s) for s in sizes]:
        t0 = time.perf_counter()
        st = Study(data, size, backbone=backbone)
        _, bank, _, (h, w) = st.bank()
        d = st.test_distances(bank)
        emit(input=list(size), backbone=backbone, grid=[h, w], bank_rows=len(bank),
             fit_s=round(time.perf_counter() - t0, 1), **st.metrics(st.image_scores(d)))


def _precision_study(st: "Study", emit) -> None:
    """The distance step in int8 instead of float32 (the product's ``Int8Search``): ONNX
    Runtime's integer matmul runs ~3x faster on this CPU (AVX-512 VNNI) at a 762-part
    bank. Query patches get one fixed uint8 scale from the training patches' range
    widened by ``margin`` on each side, each bank row its own int8 scale, both centred on
    the bank's mean. Scores move a little; what matters is whether the ranking (AUROC,
    escapes at 1%) does. (The first run of this study, commit 'PatchCore searches the
    bank with integer dot products', had no centring: same AUROC to 0.001, 25-40% more
    error per distance.)"""
    import torch

    from lineguard.vision.detectors.patchcore import Int8Search, nearest_distance
    rows, bank, _, (h, w) = st.bank()
    e = st.embed(st.test)
    n, c = e.shape[:2]
    q = e.permute(0, 2, 3, 1).reshape(-1, c)
    full = nearest_distance(q, bank).view(n, h, w)
    base = st.image_scores(full)
    emit(variant="float32 (exact)", **st.metrics(base))
    feature_range = torch.stack([rows.amin(0), rows.amax(0)])
    # (margin, query_max, bank_max): the query's range widened by margin x its span on each
    # side; query codes 0..query_max, bank codes -bank_max..bank_max. 255 x 127 was the
    # first product setting: its pair sums overflow int16 on AVX2-only CPUs (Int8Search);
    # 255 x 63 is the product's now.
    variants = [(0.0, 255, 127), (0.25, 255, 127), (1.0, 255, 127), (0.25, 127, 127), (0.25, 255, 63),
                (0.0, 127, 127)]
    for margin, query_max, bank_max in variants:
        search = Int8Search(bank, feature_range, margin=margin, query_max=query_max, bank_max=bank_max) \
            if 2 * query_max * bank_max <= 32767 else _unsafe_search(bank, feature_range, margin)
        d = nearest_distance(q, bank, search=search).view(n, h, w)
        s = st.image_scores(d)
        rel = (d - full).abs().flatten() / full.flatten().clamp_min(1e-6)
        emit(variant=f"int8, centred, query range widened by {margin} x span, query 0..{query_max}, "
                     f"bank +-{bank_max}" + (" (the product)" if (margin, query_max, bank_max) == (0.25, 255, 63)
                                             else ""),
             score_rel_diff_max=round(float(np.abs(s - base).max() / np.abs(base).mean()), 5),
             score_corr=round(float(np.corrcoef(s, base)[0, 1]), 6),
             patch_rel_err_median=round(float(rel.median()), 5),
             patch_rel_err_p99=round(float(rel.quantile(0.99)), 5), **st.metrics(s))


def _unsafe_search(bank, feature_range, margin: float):
    """The first product setting (queries 0..255, bank rows -127..127), computed exactly
    as a VNNI CPU runs it; Int8Search refuses it now because AVX2-only CPUs saturate."""
    from lineguard.vision.detectors.patchcore import Int8Search
    search = Int8Search(bank, feature_range, margin=margin, query_max=255, bank_max=63)
    search.bank_max = 127
    search.bank_t, search.neg2_row_scale = Int8Search.code_bank(bank - search.center, 127)
    return search


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["features", "pooling", "scoring", "coreset", "calibration", "discriminator",
                                     "projection", "layers", "backbones", "density",
                                     "small", "precision", "resolution", "neighbourhood", "framing",
                                     "small-scoring", "context", "photometric", "augment", "rescale",
                                     "stage-weights", "scales", "gaussian", "learning-curve", "keep-scale"])
    ap.add_argument("--data", default="../shared/datasets/magnetic_tile")
    ap.add_argument("--size", default="224")
    ap.add_argument("--configs", nargs="*", help="discriminator: names from discriminator_study.CONFIGS; "
                    "layers: stage sets such as stage2+stage3+stage4; backbones: backbone names")
    ap.add_argument("--backbone", default="", help="scales, layers: the backbone; backbones: the one the others "
                    "are fused with (default Lite0)")
    ap.add_argument("--tag", default="", help="discriminator: suffix of the result file name")
    ap.add_argument("--subsets", nargs="*", type=int, default=[], help="discriminator: train on N good images (seeded draws as core_bench) instead of all; "
                    "learning-curve: the training-set sizes (default 50 100 200 400 all); layers: only these small draws")
    a = ap.parse_args()
    if a.kind == "features":
        print(features(a.data, _size(a.size)))
    else:
        run(a.kind, a.data, _size(a.size), a.configs, a.subsets, a.tag, a.backbone)


if __name__ == "__main__":
    main()
