"""Can a plant's own good parts choose a setting? (#8: "a setting that only helps magnetic
tiles is not a win"; products nobody tuned on need another way to choose.)

Photometric levelling raised magnetic tiles' image AUROC (0.978 -> 0.985) and lowered
KolektorSDD's; MobileNetV2 wins at the quality profile's input and Lite0 at 224 x 224. A
plant has no defect photos to decide such things, but it has good parts and the stress
test's painter. Here, per product and per setting, the bank learns from BANK_N good
training parts, synthetic defects (the stress test's six kinds, its size series at
nominal contrast) are painted on training parts left out of the bank, and the setting is
scored twice: how well it separates painted from unpainted left-out parts (synthetic
AUROC: what a plant can measure) and how well it catches the dataset's real defects (image
AUROC and escapes at 1% false rejects on test/, validation half and full set: what
matters). If the synthetic ranking follows the real one on both products, a product can
choose its own setting at training time; if not, synthetic defects say what a model
misses but not which model to pick.

    python -m benchmarks.synthetic_selection_study [--datasets magnetic_tile kolektorsdd]

Writes benchmarks/results/study-synthetic-selection.json (every setting, both scores).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from benchmarks.detection_study import _backbone_maps, _patch_features, _photometric

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "study-synthetic-selection.json"
DATASETS = {  # the product's profile input and backbone, as core_bench trains them
    "magnetic_tile": ("../shared/datasets/magnetic_tile", (224, 224), "efficientnet_lite0", "mobilenet_v2"),
    "kolektorsdd": ("../shared/datasets/kolektorsdd/commutator", (576, 224), "mobilenet_v2", "efficientnet_lite0"),
}
BANK_N = 200        # good parts the bank learns from (a small plant's set, as edge_bench trains)
HELD_N = 100        # at most this many left-out good parts to paint on and to score unpainted
PER_KIND = 60       # painted parts per defect kind (six kinds)
SEED = 0


def bank_split(data: str, paths: list[Path], bank_n: int = BANK_N) -> tuple[np.ndarray, np.ndarray]:
    """Bank and left-out training parts; KolektorSDD's photos by commutator (no commutator
    on both sides, or the left-out photos would be scored against their own twins)."""
    from benchmarks.core_bench import part_labels
    rng = np.random.default_rng(SEED)
    labels = part_labels(data, paths) or [str(i) for i in range(len(paths))]
    groups = sorted(set(labels))
    order = rng.permutation(len(groups))
    bank, held = [], []
    for g in order:
        members = [i for i, lab in enumerate(labels) if lab == groups[g]]
        (bank if len(bank) < bank_n else held).extend(members)
    return np.array(sorted(bank)), np.array(sorted(held[:HELD_N] if len(held) > HELD_N else held))


def build_bank(images: np.ndarray, bb, mean, std):
    """The bank as the product trains it: exact greedy coreset (2%) over every patch of
    the bank parts' (uint8 model inputs) stage 2 + 4 features."""
    import torch

    from lineguard.vision.detectors.patchcore import greedy_coreset
    rows = []
    for i in range(0, len(images), 16):
        e = _patch_features(_backbone_maps(bb, images[i:i + 16], mean, std))
        rows.append(e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]))
    rows = torch.cat(rows)
    return rows[greedy_coreset(rows, max(1, int(round(len(rows) * 0.02))), 64, SEED)].contiguous()


def study_args(doc: str, all_parts: bool = False,
               extend: Optional[Callable[[argparse.ArgumentParser], None]] = None) -> argparse.Namespace:
    """A study's command line: ``--datasets`` (both by default), where the study offers it
    ``--all-parts``, and what ``extend`` adds; torch on the machine's 2 cores."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    if all_parts:
        ap.add_argument("--all-parts", action="store_true",
                        help="every training part in the bank, as core_bench trains (minutes per product)")
    if extend is not None:
        extend(ap)
    import torch
    torch.set_num_threads(2)
    return ap.parse_args()


def run_each(out: Path, names: list[str], run: Callable[[str], dict], suffix: str = "") -> None:
    """``run`` per dataset, the results file rewritten after each (a run stopped part way
    keeps the products it finished; other keys in the file are kept)."""
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in names:
        results[name + suffix] = run(name)
        out.write_text(json.dumps(results, indent=1))


def bank_distances(images: np.ndarray, bb, mean, std, bank):
    """(N, h, w) tensor: each patch's distance to its nearest bank row, on the patch grid."""
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    out = []
    for i in range(0, len(images), 16):
        e = _patch_features(_backbone_maps(bb, images[i:i + 16], mean, std))
        n, c, h, w = e.shape
        out.append(nearest_distance(e.permute(0, 2, 3, 1).reshape(-1, c), bank).view(n, h, w))
    return torch.cat(out)


def anomaly_maps(images: np.ndarray, bb, mean, std, bank, size, sigma: float = 4.0) -> np.ndarray:
    """(N, H, W) maps as the product makes them: nearest bank row per patch, the grid
    upsampled to the input and smoothed (sigma in input pixels)."""
    from lineguard.vision.detectors.base import smooth_and_upsample
    return smooth_and_upsample(bank_distances(images, bb, mean, std, bank), size, sigma).numpy()


def _scores(images: np.ndarray, bb, mean, std, bank, size) -> np.ndarray:
    """Image score as the product computes it: the map's peak."""
    return anomaly_maps(images, bb, mean, std, bank, size).reshape(len(images), -1).max(1)


def _spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation (ties averaged) of two score lists; no scipy in the product."""
    def ranks(x: list[float]) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        r = np.empty(len(x))
        for v in np.unique(x):
            r[x == v] = np.mean(np.flatnonzero(np.sort(x) == v)) + 1
        return r
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def run_setting(name: str, data: str, size: tuple[int, int], backbone: str, photometric: str,
                cache: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.core_bench import operating_point
    from lineguard.vision.backbones import NORMALIZATION, create_backbone
    from lineguard.vision.metrics import image_auroc
    pre_bank, pre_held, pre_painted, pre_test, is_defect, val = (
        cache[k] for k in ("bank", "held", "painted", "test", "is_defect", "val"))
    t0 = time.perf_counter()
    grey = pre_bank.astype(np.float32).mean(3)   # the reference: the bank photos' median mean and spread
    ref = (float(np.median(grey.mean((1, 2)))), float(np.median(grey.std((1, 2)))))

    def level(x: np.ndarray) -> np.ndarray:
        return x if photometric == "none" else np.stack([_photometric(im, photometric, ref) for im in x])
    bb = create_backbone(backbone, ["stage2", "stage4"]).fold_bn().eval()
    mean, std = NORMALIZATION[backbone]
    bank = build_bank(level(pre_bank), bb, mean, std)
    held = _scores(level(pre_held), bb, mean, std, bank, size)
    painted = _scores(level(pre_painted), bb, mean, std, bank, size)
    test = _scores(level(pre_test), bb, mean, std, bank, size)
    synth_y = np.r_[np.zeros(len(held), bool), np.ones(len(painted), bool)]
    synth_s = np.r_[held, painted]
    out: dict[str, Any] = {"setting": name, "backbone": backbone, "photometric": photometric,
                           "synthetic_auroc": round(image_auroc(synth_s, synth_y), 4),
                           # with ~100 left-out good parts the 1% point is one part: use 5%
                           "synthetic_escapes_at_5pct": round(operating_point(synth_s, synth_y, 0.05)["escape_rate"], 3),
                           "synthetic_by_kind": {}}
    kinds, shares = np.array(cache["kinds"]), np.array(cache["shares"])
    large = np.zeros(len(kinds), bool)     # the larger half of each kind's sizes: the smallest
    for kind in sorted(set(cache["kinds"])):   # painted defects are invisible to every setting alike
        sel = kinds == kind
        y = np.r_[np.zeros(len(held), bool), np.ones(int(sel.sum()), bool)]
        out["synthetic_by_kind"][kind] = round(image_auroc(np.r_[held, painted[sel]], y), 4)
        large |= sel & (shares > np.median(shares[sel]))
    y = np.r_[np.zeros(len(held), bool), np.ones(int(large.sum()), bool)]
    out["synthetic_auroc_larger_half"] = round(image_auroc(np.r_[held, painted[large]], y), 4)
    out["scores_left_out_good"] = [round(float(v), 4) for v in held]
    out["scores_painted"] = [round(float(v), 4) for v in painted]
    rep = np.setdiff1d(np.arange(len(test)), val)
    for half, pos in (("val", val), ("report", rep), ("full", np.arange(len(test)))):
        out[f"real_auroc_{half}"] = round(image_auroc(test[pos], is_defect[pos]), 4)
        out[f"real_escapes_at_1pct_{half}"] = round(operating_point(test[pos], is_defect[pos])["escape_rate"], 3)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def test_set(cat: Any, pre: Any) -> dict[str, Any]:
    """A category's test parts as model inputs ("test"), their defect types, which are
    defective, and the fixed validation half's indices ("val", core_bench's split)."""
    from benchmarks.core_bench import validation_half
    from lineguard.vision.imageio import load_image
    items = list(cat.test_items)
    return {"test": np.stack([pre.apply(load_image(it.path))[0] for it in items]),
            "types": [it.defect_type for it in items],
            "is_defect": np.array([it.defect_type != "good" for it in items]),
            "val": np.array(validation_half([{"defect_type": it.defect_type, "path": it.path} for it in items])[0])}


def prepare(data: str, size: tuple[int, int]) -> dict[str, Any]:
    """Every photo the settings score, preprocessed once (uint8 model inputs)."""
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.preprocess import Preprocess
    from lineguard.vision.stress import paint_part, plan_stress
    cat = MVTecCategory(data)
    pre = Preprocess(image_size=size)
    paths = list(cat.train_good)
    bank_i, held_i = bank_split(data, paths)
    held_raw = [load_image(paths[i]) for i in held_i]
    plan = [p for p in plan_stress([im.shape[:2] for im in held_raw], per_kind=PER_KIND, seed=SEED)
            if p.series == "size"]           # nominal contrast; the contrast series needs a fitted a90
    painted = np.stack([pre.apply(paint_part(held_raw, p, SEED)[0])[0] for p in plan])
    tests = test_set(cat, pre)
    return {"bank": np.stack([pre.apply(load_image(paths[i]))[0] for i in bank_i]),
            "held": np.stack([pre.apply(im)[0] for im in held_raw]),
            "painted": painted, "kinds": [p.kind for p in plan],
            "shares": [p.size_px / min(held_raw[p.base].shape[:2]) for p in plan],
            "test": tests["test"], "is_defect": tests["is_defect"], "val": tests["val"],
            "n_bank": len(bank_i), "n_held": len(held_i)}


def main() -> None:
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in study_args(__doc__).datasets:
        rel, size, backbone, other = DATASETS[name]
        data = str((ROOT / rel).resolve()) if not Path(rel).is_absolute() else rel
        cache = prepare(data, size)
        print(f"{name}: bank {cache['n_bank']} parts, {cache['n_held']} left out, {len(cache['painted'])} painted, "
              f"{len(cache['test'])} test", flush=True)
        rows = []
        settings = [(f"{backbone}", backbone, "none")] + \
            [(f"{backbone} + photometric {m}", backbone, m) for m in ("meanstd", "clamp", "mean")] + \
            [(f"{other}", other, "none")]
        for label, bb, photo in settings:
            r = run_setting(label, data, size, bb, photo, cache)
            print(json.dumps(r), flush=True)
            rows.append(r)
        real = [r["real_auroc_val"] for r in rows]
        summary: dict[str, Any] = {"real_val_pick": rows[int(np.argmax(real))]["setting"]}
        for key in ("synthetic_auroc", "synthetic_auroc_larger_half"):
            syn = [r[key] for r in rows]
            pick = rows[int(np.argmax(syn))]
            summary[key] = {"rank_correlation_with_real_val": round(_spearman(syn, real), 3),
                            "pick": pick["setting"],
                            # what choosing by painted defects gains over the product's default
                            # on real defects (it saw none, so every half is fair)
                            "pick_minus_default_real_auroc": {h: round(pick[f"real_auroc_{h}"] - rows[0][f"real_auroc_{h}"], 4)
                                                              for h in ("val", "report", "full")},
                            "pick_minus_default_real_escapes_at_1pct": {
                                h: round(pick[f"real_escapes_at_1pct_{h}"] - rows[0][f"real_escapes_at_1pct_{h}"], 3)
                                for h in ("val", "report", "full")}}
        results[name] = {"size": list(size), "bank_parts": cache["n_bank"], "left_out_parts": cache["n_held"],
                         "painted_parts": len(cache["painted"]), **summary, "settings": rows}
        print(json.dumps(summary), flush=True)
    OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
