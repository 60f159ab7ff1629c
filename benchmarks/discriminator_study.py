"""A learned patch scorer beside PatchCore's nearest-neighbour distance (issue #8).

SimpleNet-style (Liu et al., 2023): on the same pooled Lite0 patch features the product
uses (stages 2+4, 3x3 average counting the zero padding), a linear feature adaptor and a
small MLP discriminator are trained on good parts only, to tell good patches from good
patches with Gaussian noise added in feature space (or, ``fake="synth"``, from patches of
defects painted onto the training images by ``lineguard.vision.synth.add_defect``). The
patch score is minus the discriminator's output; the image score, as for PatchCore, is
the peak of the Gaussian-smoothed map. Also scored: the discriminator fused with the
PatchCore distance, each z-normalised on good training patches (sum, max, and sums with
the discriminator weighted 0.5 and 0.25).

Outcome (benchmarks/results/study-discriminator-*.json, summary.md, bootstrap.txt): no
setting beat plain PatchCore on the validation halves of both datasets. On magnetic_tile
every learned or fused score was worse (the more weight on the discriminator, the worse);
on KolektorSDD (544x224) the fused scores were up to +0.02 image AUROC, within the
bootstrap spread of its 26 defective validation parts.

Everything is run through ``detection_study.Study`` (cached backbone maps, the fixed
validation/report halves of test/). Pixel AUROC and AUPRO are computed as core_bench's
``evaluate`` does: the input-size map resized bilinearly to each test image's own size,
against its mask, so the PatchCore row reproduces core_bench's numbers.

    python -m benchmarks.detection_study discriminator --data DATA --size 224 [--configs ...]

Train times are on a shared, loaded 2-core machine (2 torch threads): they say what a
run costs there, not how fast it could be.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

# The settings tried. Keys: noise (std of the added noise, in units of the features' RMS
# channel spread), adaptor ("linear" trained jointly, or "none"), steps, hidden width,
# fake ("noise" or "synth"). Chosen on the validation halves only.
CONFIGS: dict[str, dict[str, Any]] = {
    "n0.1-lin": dict(noise=0.1, adaptor="linear"),
    "n0.25-lin": dict(noise=0.25, adaptor="linear"),
    "n0.5-lin": dict(noise=0.5, adaptor="linear"),
    "n0.25-none": dict(noise=0.25, adaptor="none"),
    "n0.1-none": dict(noise=0.1, adaptor="none"),
    "n0.5-none": dict(noise=0.5, adaptor="none"),
    "n1.0-lin": dict(noise=1.0, adaptor="linear"),
    "n0.5-lin-6k": dict(noise=0.5, adaptor="linear", steps=6000),
    # per-channel standardised features: stage 4's channels are wider than stage 2's, so
    # isotropic noise on raw features mostly tests the narrow channels
    "std-n0.25-lin": dict(noise=0.25, adaptor="linear", standardize=True),
    "std-n0.5-lin": dict(noise=0.5, adaptor="linear", standardize=True),
    "std-n1.0-lin": dict(noise=1.0, adaptor="linear", standardize=True),
    "std-n0.5-lin-6k": dict(noise=0.5, adaptor="linear", standardize=True, steps=6000),
    "synth-lin": dict(noise=0.25, adaptor="linear", fake="synth"),
    "synth-none": dict(noise=0.25, adaptor="none", fake="synth"),
}
DEFAULTS = dict(noise=0.25, adaptor="linear", steps=1500, hidden=256, batch=512, fake="noise",
                lr_d=2e-4, lr_a=1e-4, margin=0.5, standardize=False)


class Scorer(nn.Module):
    """Adaptor (linear, identity at start) + MLP discriminator; higher output = good."""

    def __init__(self, c: int, hidden: int, adaptor: str):
        super().__init__()
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("inv_std", torch.ones(c))
        self.adaptor = nn.Linear(c, c) if adaptor == "linear" else nn.Identity()
        if adaptor == "linear":
            with torch.no_grad():
                self.adaptor.weight.copy_(torch.eye(c))
                self.adaptor.bias.zero_()
        self.disc = nn.Sequential(nn.Linear(c, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, 1))

    def anomaly(self, rows: torch.Tensor, block: int = 65536) -> torch.Tensor:
        self.eval()
        with torch.no_grad():
            return torch.cat([-self.disc(self.adaptor((rows[i:i + block] - self.mean) * self.inv_std))[:, 0]
                              for i in range(0, len(rows), block)])


def train_scorer(good: torch.Tensor, cfg: dict[str, Any], seed: int = 0,
                 defects: Optional[torch.Tensor] = None) -> tuple[Scorer, float]:
    """Train on good patch rows (N, C); ``defects``: rows of painted defects (fake="synth").
    Returns the scorer and its train time in seconds."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    c = good.shape[1]
    model = Scorer(c, cfg["hidden"], cfg["adaptor"])
    if cfg["standardize"]:
        sample = good[torch.randint(len(good), (min(len(good), 200_000),), generator=g)]
        model.mean.copy_(sample.mean(0))
        model.inv_std.copy_(1.0 / sample.std(0).clamp_min(1e-6))
    spread = good.std(0) * model.inv_std          # each channel's spread after standardising
    scale = float(spread.pow(2).mean().sqrt()) * cfg["noise"]
    opt_d = torch.optim.Adam(model.disc.parameters(), lr=cfg["lr_d"], weight_decay=1e-5)
    opt_a = torch.optim.AdamW(model.adaptor.parameters(), lr=cfg["lr_a"]) if cfg["adaptor"] == "linear" else None
    t0 = time.perf_counter()
    model.train()
    b = cfg["batch"]
    for _ in range(cfg["steps"]):
        x = (good[torch.randint(len(good), (b,), generator=g)] - model.mean) * model.inv_std
        a = model.adaptor(x)
        if defects is not None:
            # half painted-defect patches, half noise: painted defects alone cover few
            # appearances, noise keeps the boundary tight around good patches everywhere
            dx = (defects[torch.randint(len(defects), (b // 2,), generator=g)] - model.mean) * model.inv_std
            fake = torch.cat([model.adaptor(dx),
                              a[: b - b // 2] + torch.randn(b - b // 2, c, generator=g) * scale])
        else:
            fake = a + torch.randn(b, c, generator=g) * scale
        out = model.disc(torch.cat([a, fake]))[:, 0]
        # SimpleNet's truncated L1: push good above +margin, fakes below -margin
        loss = (torch.relu(cfg["margin"] - out[:b]).mean() + torch.relu(cfg["margin"] + out[b:]).mean())
        opt_d.zero_grad()
        if opt_a:
            opt_a.zero_grad()
        loss.backward()
        opt_d.step()
        if opt_a:
            opt_a.step()
    return model, time.perf_counter() - t0


class PixelEval:
    """Pixel AUROC / AUPRO of input-size maps, judged at each test image's own size."""

    def __init__(self, st: Any, data: str):
        from lineguard.vision.dataset import MVTecCategory
        cat = MVTecCategory(data)
        by_path = {str(Path(it.path).resolve()): it for it in cat.test_items}
        self.items = [by_path[str(Path(p).resolve())] for p in st.z["path"][st.test]]
        self.masks = [cat.load_mask(it) for it in self.items]
        self.val, self.rep = st.val, st.rep

    def __call__(self, maps: torch.Tensor) -> dict[str, dict[str, float]]:
        from lineguard.vision.preprocess import resize_map
        from lineguard.vision.metrics import PixelMetrics
        acc = {"val": PixelMetrics(), "report": PixelMetrics(), "full": PixelMetrics()}
        val = set(int(i) for i in self.val)
        for i, (m, mask) in enumerate(zip(maps.numpy(), self.masks)):
            if mask is None:
                continue
            m = resize_map(m, mask.shape[1], mask.shape[0])
            for k in ("full", "val" if i in val else "report"):
                acc[k].add(m, mask)
        return {k: {"pixel_auroc": round(a.pixel_auroc(), 4), "aupro": round(a.aupro(0.3), 4)}
                for k, a in acc.items()}


def _rows(e: torch.Tensor) -> torch.Tensor:
    return e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]).contiguous()


def painted_defect_rows(st: Any, train_idx: np.ndarray, n_images: int, seed: int) -> torch.Tensor:
    """Patch rows under defects painted on training images: the product's own painter
    (``synth.add_defect``, what ``lineguard synth`` uses), run through the same backbone
    and pooling. A patch counts as defective when a quarter of its cell is painted."""
    from torch.nn import functional as F

    from lineguard.vision.backbones import NORMALIZATION, create_backbone
    from lineguard.vision.imageio import load_image
    from lineguard.vision.preprocess import Preprocess
    from lineguard.vision.synth import add_defect
    from lineguard.vision.synth import DEFECT_TYPES as kinds
    rng = np.random.default_rng(seed)
    pre = Preprocess(image_size=st.size)
    bb = create_backbone("efficientnet_lite0", ["stage2", "stage4"]).fold_bn().eval()
    mean, std = NORMALIZATION["efficientnet_lite0"]
    pick = rng.choice(train_idx, size=min(n_images, len(train_idx)), replace=False)
    imgs, masks = [], []
    for j, i in enumerate(pick):
        x = pre.apply(load_image(st.z["path"][i]))[0]
        y, m = add_defect(x, kinds[j % len(kinds)], rng)
        imgs.append(y)
        masks.append(m > 0)
    out = []
    with torch.no_grad():
        for s in range(0, len(imgs), 16):
            t = torch.from_numpy(np.stack(imgs[s:s + 16])).permute(0, 3, 1, 2).float() / 255
            t = (t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
            fs = [F.avg_pool2d(f, 3, 1, 1, count_include_pad=True) for f in bb(t)]
            h, w = fs[0].shape[-2:]
            fs = [f if f.shape[-2:] == (h, w) else F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
                  for f in fs]
            e = torch.cat(fs, 1)
            cover = F.adaptive_avg_pool2d(torch.from_numpy(np.stack(masks[s:s + 16])).float()[:, None], (h, w))[:, 0]
            out.append(_rows(e)[cover.reshape(-1) >= 0.25])
    return torch.cat(out)


def run(st: Any, data: str, emit: Callable[..., None], configs: list[str], subsets: list[int],
        out_path: Optional[Path] = None) -> list[dict]:
    from lineguard.vision.detectors.base import smooth_and_upsample
    from lineguard.vision.detectors.patchcore import greedy_coreset, nearest_distance
    # One thread: on this shared, loaded 2-core machine two OpenMP threads spun against
    # each other and trained ~10x slower than one (measured: 20 steps 8.6 s vs 1.3 s).
    torch.set_num_threads(1)
    pix = PixelEval(st, data)
    rows_out: list[dict] = []

    def record(**row: Any) -> None:
        rows_out.append(row)
        emit(**row)
        if out_path is not None:
            tmp = out_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(rows_out, indent=1))
            tmp.replace(out_path)

    scores: dict[str, np.ndarray] = {}

    def evaluate(patch: torch.Tensor, key: str = "") -> dict[str, Any]:
        maps = smooth_and_upsample(patch, st.size, 4.0)
        s = maps.flatten(1).max(1).values.numpy()
        scores[key] = s
        res = st.metrics(s)
        for k, v in pix(maps).items():
            res[k].update(v)
        return res

    test_e = st.embed(st.test)
    n, c, h, w = test_e.shape
    test_rows = _rows(test_e)
    del test_e
    rng = np.random.default_rng(0)       # the draw core_bench makes for its small plants
    n_train = len(st.train)
    # every train/good part, or (``subsets``) only the small plants' seeded draws
    sets = [] if subsets else [("all", np.arange(n_train))]
    for k in subsets:
        sets.append((str(k), np.array(sorted(rng.choice(n_train, size=min(k, n_train), replace=False)))))
    for name, pick in sets:
        tr = st.train[pick]
        train_rows = _rows(st.embed(tr))
        per = h * w
        # --- PatchCore as the product runs it (bank of this set, coreset 2%); cached, as
        # every config of a run and every later run compares against the same one
        cache = Path("benchmarks/.cache") / f"pc-{Path(data).resolve().name}-{st.size[0]}x{st.size[1]}-{name}.pt"
        cal = np.unique(np.linspace(0, len(tr) - 1, min(96, len(tr))).round().astype(int))
        if cache.exists():
            pc = torch.load(cache)
        else:
            t0 = time.perf_counter()
            idx = greedy_coreset(train_rows, max(1, int(round(len(train_rows) * 0.02))), 64, 0)
            bank = train_rows[idx].contiguous()
            fit_s = time.perf_counter() - t0
            owner = idx // per
            d_test = nearest_distance(test_rows, bank).view(n, h, w)
            # good-patch statistics of the distance, each part scored without its own bank
            # rows (what a new good part gets); up to 96 parts, spread over the set
            bsq = (bank * bank).sum(1)
            loo = torch.cat([nearest_distance(train_rows[i * per:(i + 1) * per], bank, bsq, exclude=owner == i)
                             for i in cal])
            pc = {"d_test": d_test, "mu": float(loo.mean()), "sd": float(loo.std()), "fit_s": fit_s}
            torch.save(pc, cache)
        d_test, pc_mu, pc_sd, pc_fit = pc["d_test"], pc["mu"], pc["sd"], pc["fit_s"]
        base = evaluate(d_test, f"{name}/patchcore")
        record(train_set=name, n_train=len(tr), method="patchcore", fit_s=round(pc_fit, 1), **base)
        for cname in configs:
            cfg = {**DEFAULTS, **CONFIGS[cname]}
            defects = None
            synth_s = 0.0
            if cfg["fake"] == "synth":
                t0 = time.perf_counter()
                defects = painted_defect_rows(st, tr, min(len(tr), 200), seed=1)
                synth_s = time.perf_counter() - t0
            model, train_s = train_scorer(train_rows, cfg, seed=0, defects=defects)
            a_test = model.anomaly(test_rows).view(n, h, w)
            a_good = model.anomaly(train_rows[np.concatenate([np.arange(i * per, (i + 1) * per) for i in cal])])
            d_mu, d_sd = float(a_good.mean()), float(a_good.std())
            common = dict(train_set=name, n_train=len(tr), config=cname,
                          settings={k: cfg[k] for k in ("noise", "adaptor", "standardize", "steps", "hidden", "batch", "fake")},
                          train_s=round(train_s + synth_s, 1),
                          n_defect_rows=None if defects is None else len(defects))
            key = f"{name}/{cname}/"
            record(method="discriminator", **common, **evaluate(a_test, key + "discriminator"))
            zp, zd = (d_test - pc_mu) / pc_sd, (a_test - d_mu) / d_sd
            record(method="fused_sum", **common, **evaluate(zp + zd, key + "fused_sum"))
            record(method="fused_max", **common, **evaluate(torch.maximum(zp, zd), key + "fused_max"))
            # the discriminator as a lighter correction of the distance
            for wt in (0.5, 0.25):
                record(method=f"fused_sum_w{wt}", **common, **evaluate(zp + wt * zd, key + f"fused_sum_w{wt}"))
            if out_path is not None:   # per-image scores, for paired bootstrap comparisons
                np.savez(Path("benchmarks/.cache") / f"scores-{out_path.stem}.npz", **scores)
    return rows_out
