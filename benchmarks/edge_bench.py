"""Edge benchmark: the same trained model through the torch path, ONNX Runtime (fp32 and
the int8 export) and OpenVINO (fp32 and bf16, where installed), on a real MVTec-layout
category (default magnetic_tile).

    python -m benchmarks.edge_bench [--data ../shared/datasets/magnetic_tile] [--train-n 200]
                                    [--threads 2] [--profile NAME] [--backbone NAME] [--coreset-ratio R]
                                    [--runtimes torch onnx ...] [--processes N] [--nn] [--exact-search]

1. one process trains PatchCore on the first ``--train-n`` train/good images sorted by
   name (224 x 224 like the anomalib column, or ``--profile``), timing the
   fit, then saves the ``.lgm`` and exports ``.onnx`` (fp32) and int8 (static, activations
   calibrated on 64 of the same training images; never test images);
2. one process per runtime loads its model file and inspects every test image end to end
   (decoded photo in memory -> resize -> model -> map at the photo's size -> regions ->
   verdict): image AUROC, verdicts, ms/part at batch 1 and batch 16, parts/s, peak RSS;
3. verdict agreement and score differences of every other runtime against torch.

Batch 16 runs the way ``Inspector.inspect_batch`` does: exported models one part per
core (ONNX Runtime lanes, OpenVINO streams), torch as one batch.

``--nn`` adds the nearest-neighbour micro-benchmark (784 query patches against banks of
10k/50k rows, 152/232 dims: fp32 blocked addmm, bf16, fp16, faiss-cpu flat and HNSW
where faiss is installed) to ``benchmarks/results/edge-nn.json``.

Writes ``benchmarks/results/edge-<category>[-cs<ratio>].json`` and prints a table. Threads:
torch ``set_num_threads``, ONNX Runtime ``intra_op_num_threads`` and OpenVINO's
inference threads all ``--threads``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# runtime name -> (model file, Inspector.load keyword arguments)
RUNTIMES = {"torch": ("m.lgm", {}), "onnx": ("m.onnx", {}), "int8": ("m-int8.onnx", {}),
            "openvino": ("m.onnx", {"runtime": "openvino"}),
            "openvino-bf16": ("m.onnx", {"runtime": "openvino", "precision": "bf16"})}


# The side-by-side compares at anomalib's input, 224 x 224; ``--profile NAME`` takes a
# profile from benchmarks.core_bench.PROFILES (or CANDIDATES) instead.
DEFAULT_PROFILE = dict(detector="patchcore", image_size=224)


def _profile(name: str = "") -> dict:
    if not name:
        return dict(DEFAULT_PROFILE)
    from benchmarks.core_bench import CANDIDATES, PROFILES
    return {k: list(v) if isinstance(v, tuple) else v for k, v in {**PROFILES, **CANDIDATES}[name].items()}


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def train_worker(data: str, workdir: str, train_n: int, threads: int, profile: str = "",
                 coreset_ratio: float = 0.0, backbone: str = "", exact_search: bool = False) -> dict:
    import numpy as np

    from lineguard import Inspector
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.runtime.threads import set_threads
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    set_threads(threads)
    cat = MVTecCategory(data)
    train = sorted(cat.train_good, key=lambda p: Path(p).name)[:train_n]
    params = _profile(profile)
    if backbone:
        params["backbone"] = backbone
    if coreset_ratio:
        params["coreset_ratio"] = coreset_ratio
    if exact_search:
        params["search"] = "float32"
    t0 = time.perf_counter()
    insp = Inspector.fit(train, **params)
    train_s = time.perf_counter() - t0
    peak_train = _peak_mb()
    wd = Path(workdir)
    insp.save(wd / "m.lgm")
    t0 = time.perf_counter()
    export_onnx(insp, wd / "m.onnx")
    export_s = time.perf_counter() - t0
    calib = np.stack([insp.preprocess.apply(load_image(p))[0] for p in train[:64]])
    t0 = time.perf_counter()
    export_onnx(insp, wd / "m-int8.onnx", int8=True, calibration_images=calib)
    export_int8_s = time.perf_counter() - t0
    return {"train_s": round(train_s, 2), "peak_mb_train": peak_train, "export_s": round(export_s, 2),
            "export_int8_s": round(export_int8_s, 2), "n_train": len(train), "params": params,
            # every input size's bank: a two-size model's second bank was left out (8,064 said
            # for a model with half as many rows again)
            "bank_rows": int(insp.detector.memory_bank_.shape[0])
            + sum(int(b.shape[0]) for b in (getattr(insp.detector, "extra_banks_", None) or ())),
            "grid": list(insp.detector.grid_),
            "search": insp.detector.search,
            "model_id": insp.model_id}


def _time_inspect(insp, images, batch: int, passes: int = 2) -> float:
    """ms/part: the median over calls (``passes`` passes over ``images``) of one call's
    time per part, as the anomalib worker measures it; after warming up this batch size's
    path (its session or streams may not have run yet: the test pass used the other)."""
    import statistics
    for i in range(0, 32, batch):
        insp.inspect_batch(images[i:i + batch], batch_size=batch)
    per_part = []
    for _ in range(passes):
        for i in range(0, len(images) - batch + 1, batch):
            t0 = time.perf_counter()
            insp.inspect_batch(images[i:i + batch], batch_size=batch)
            per_part.append((time.perf_counter() - t0) * 1000 / batch)
    return statistics.median(per_part)


def infer_worker(data: str, model: str, threads: int, n_timing: int, load_kw: dict) -> dict:
    from lineguard import Inspector
    from lineguard.runtime.threads import set_threads
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.metrics import image_auroc
    set_threads(threads)
    cat = MVTecCategory(data)
    items = sorted(cat.test_items, key=lambda it: str(it.path))
    t0 = time.perf_counter()
    insp = Inspector.load(model, **load_kw)
    load_s = time.perf_counter() - t0
    results = []
    for i in range(0, len(items), 16):  # streamed, so peak memory is the runtime's, not the test set's
        results.extend(insp.inspect_batch([load_image(it.path) for it in items[i:i + 16]], batch_size=16))
    scores = [r.score for r in results]
    labels = [int(it.is_defect) for it in items]
    step = max(1, len(items) // n_timing)
    timing = [load_image(it.path) for it in items[::step][:n_timing]]
    ms1 = _time_inspect(insp, timing, 1)
    ms16 = _time_inspect(insp, timing, 16)
    return {"image_auroc": round(image_auroc(scores, labels), 4), "scores": scores,
            "verdicts": [r.verdict.value for r in results], "threshold": insp.threshold,
            "ms_per_part_batch1": round(ms1, 2), "ms_per_part_batch16": round(ms16, 2),
            "parts_per_s": round(1000 / ms16, 1), "peak_mb": _peak_mb(),
            "timing_photos_mb": round(sum(p.nbytes for p in timing) / 1e6, 1), "load_s": round(load_s, 3),
            "model_mb": round(Path(model).stat().st_size / 1e6, 2), "n_test": len(items),
            "torch_imported": "torch" in sys.modules}


def nn_bench(threads: int) -> dict:
    import numpy as np
    import torch

    from lineguard.vision.detectors.patchcore import nearest_distance
    torch.set_num_threads(threads)
    try:
        import faiss
        faiss.omp_set_num_threads(threads)
    except ImportError:
        faiss = None

    def best_ms(f, reps: int = 5) -> float:
        f()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return round(min(ts) * 1000, 1)

    rng = np.random.default_rng(0)
    rows = []
    for m in (10_000, 50_000):
        for c in (152, 232):
            bank = torch.from_numpy(rng.standard_normal((m, c)).astype(np.float32))
            q = bank[rng.integers(0, m, 784)] + 0.3 * torch.from_numpy(rng.standard_normal((784, c)).astype(np.float32))
            bsq = (bank * bank).sum(1)
            ref = nearest_distance(q, bank, bsq)
            row = {"bank_rows": m, "dims": c, "queries": 784, "median_distance": round(float(ref.median()), 3)}

            def low(dt):
                b = bank.to(dt)
                bs = bsq[None].to(dt)

                def f():
                    d2 = torch.addmm(bs, q.to(dt), b.T, alpha=-2).float()
                    return (d2.min(1).values + (q * q).sum(1)).clamp_min(0).sqrt()
                return f
            row["fp32_addmm_ms"] = best_ms(lambda: nearest_distance(q, bank, bsq))
            for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                f = low(dt)
                row[f"{name}_ms"] = best_ms(f, 3)
                row[f"{name}_max_abs_err"] = round(float((f() - ref).abs().max()), 4)
            if faiss is not None:
                flat = faiss.IndexFlatL2(c)
                flat.add(bank.numpy())
                qn = q.numpy()
                row["faiss_flat_ms"] = best_ms(lambda: flat.search(qn, 1))
                row["faiss_flat_max_abs_err"] = round(float(np.abs(np.sqrt(np.maximum(flat.search(qn, 1)[0][:, 0], 0))
                                                                   - ref.numpy()).max()), 5)
                hnsw = faiss.IndexHNSWFlat(c, 32)
                hnsw.add(bank.numpy())
                hnsw.hnsw.efSearch = 64
                row["faiss_hnsw_ms"] = best_ms(lambda: hnsw.search(qn, 1))
                row["faiss_hnsw_max_abs_err"] = round(float(np.abs(np.sqrt(np.maximum(hnsw.search(qn, 1)[0][:, 0], 0))
                                                                   - ref.numpy()).max()), 4)
            rows.append(row)
    return {"benchmark": "nearest-neighbour", "threads": threads, "faiss": getattr(faiss, "__version__", None),
            "rows": rows, "load_avg": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def machine_reference(threads: int) -> dict:
    """How fast this machine is today, on work that does not depend on lineguard: the
    reference VM's speed moved by a third between sessions for the same code (fast
    profile 10.7-13.5 ms one day, 7.2 ms another), so each result carries these to
    compare runs made on different days. Best of 7: a 1024^3 fp32 matmul (GFLOP/s) and
    a 256 MB copy (GB/s)."""
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    src = np.ones(64 << 20, np.float32)
    dst = np.empty_like(src)

    def best(f) -> float:
        f()
        ts = []
        for _ in range(7):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return min(ts)
    return {"matmul_gflops": round(2 * 1024 ** 3 / best(lambda: a @ a) / 1e9, 1),
            "copy_gb_per_s": round(2 * src.nbytes / best(lambda: np.copyto(dst, src)) / 1e9, 1),
            **cpu_description()}


def cpu_description() -> dict:
    """The CPU model and the instruction sets integer matmuls use: the reference VM has
    been an AVX-512 VNNI Xeon on some days and an AVX2-only AMD EPYC on others, and the
    int8 bank search's speed depends on which."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:       # not Linux
        model = platform.processor()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16") if f in flags]
    return {"cpu": model, "cpu_isa": isa}


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _sub(args: list[str], timeout: float = 1800) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.edge_bench", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": args[args.index("--threads") + 1]})
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        print(proc.stderr[-3000:], file=sys.stderr)
        sys.exit(f"edge benchmark step {args[:2]} failed")
    return json.loads(line[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/magnetic_tile")
    ap.add_argument("--train-n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing-parts", type=int, default=96)
    ap.add_argument("--profile", default="", help="settings from benchmarks.core_bench.PROFILES (default: 224 px)")
    ap.add_argument("--backbone", default="", help="override the profile's backbone (e.g. efficientnet_lite0)")
    ap.add_argument("--coreset-ratio", type=float, default=0.0,
                    help="PatchCore memory-bank share (default: the detector's, 2%%); the anomalib column uses 1%%")
    ap.add_argument("--processes", type=int, default=1,
                    help="time each runtime in this many fresh processes; ms/part is their median")
    ap.add_argument("--settle", type=float, default=15.0, help="seconds of quiet before each runtime's run")
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    ap.add_argument("--out", default="", help="result file name (default edge-<category>[-cs<ratio>].json)")
    ap.add_argument("--nn", action="store_true", help="also run the nearest-neighbour micro-benchmark")
    ap.add_argument("--exact-search", action="store_true", help="PatchCore's float32 bank search (default int8)")
    ap.add_argument("--train-worker", help=argparse.SUPPRESS)
    ap.add_argument("--infer-worker", help=argparse.SUPPRESS)
    ap.add_argument("--load-kw", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--nn-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--machine-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.train_worker:
        print("RESULT " + json.dumps(train_worker(a.data, a.train_worker, a.train_n, a.threads, a.profile,
                                                  a.coreset_ratio, a.backbone, a.exact_search)))
        return
    if a.infer_worker:
        print("RESULT " + json.dumps(infer_worker(a.data, a.infer_worker, a.threads, a.timing_parts,
                                                  json.loads(a.load_kw))))
        return
    if a.nn_worker:
        print("RESULT " + json.dumps(nn_bench(a.threads)))
        return
    if a.machine_worker:
        print("RESULT " + json.dumps(machine_reference(a.threads)))
        return
    if not Path(a.data).exists():
        sys.exit(f"{a.data}: dataset not found; pass --data DATASET/CATEGORY (MVTec layout)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    machine = _sub(["--machine-worker", "--threads", str(a.threads)])
    with tempfile.TemporaryDirectory() as wd:
        tr = _sub(["--data", a.data, "--train-worker", wd, "--train-n", str(a.train_n), "--threads", str(a.threads),
                   "--profile", a.profile, "--coreset-ratio", str(a.coreset_ratio), "--backbone", a.backbone]
                  + (["--exact-search"] if a.exact_search else []))
        runs = {}
        for rt in a.runtimes:
            if rt.startswith("openvino") and not _has("openvino"):
                print(f"{rt}: skipped, openvino is not installed (pip install 'lineguard[openvino]')", file=sys.stderr)
                continue
            file, kw = RUNTIMES[rt]
            # On the reference VM the process right after a big one (torch) ran its
            # batch-1 timing up to 60% slower for a while (memory being reclaimed);
            # a pause lets every runtime start from the same quiet machine.
            time.sleep(a.settle)
            args = ["--data", a.data, "--infer-worker", str(Path(wd) / file), "--threads", str(a.threads),
                    "--timing-parts", str(a.timing_parts), "--load-kw", json.dumps(kw)]
            runs[rt] = _sub(args)
            # One process's batch-1 time is not the runtime's: on the reference VM the same
            # file timed 7.1 ms in one process and 11.5 ms in the next (the machine's own
            # matmul speed unchanged). More processes; the table shows their median.
            per_process = [runs[rt]["ms_per_part_batch1"]]
            per_process16 = [runs[rt]["ms_per_part_batch16"]]
            for _ in range(a.processes - 1):
                again = _sub(args)
                per_process.append(again["ms_per_part_batch1"])
                per_process16.append(again["ms_per_part_batch16"])
            if a.processes > 1:
                import statistics
                runs[rt]["ms_per_part_batch1_per_process"] = per_process
                runs[rt]["ms_per_part_batch16_per_process"] = per_process16
                runs[rt]["ms_per_part_batch1"] = round(statistics.median(per_process), 2)
                runs[rt]["ms_per_part_batch16"] = round(statistics.median(per_process16), 2)
                runs[rt]["parts_per_s"] = round(1000 / runs[rt]["ms_per_part_batch16"], 1)
    ref = runs.get("torch")  # agreement is against torch, when it ran (--runtimes may leave it out)
    for rt in [r for r in runs if r != "torch" and ref is not None]:
        r = runs[rt]
        agree = sum(x == y for x, y in zip(r["verdicts"], ref["verdicts"]))
        rel = max(abs(x - y) / max(abs(y), 1e-9) for x, y in zip(r["scores"], ref["scores"]))
        r["verdict_agreement_vs_torch"] = round(agree / len(ref["verdicts"]), 4)
        r["verdict_mismatches_vs_torch"] = len(ref["verdicts"]) - agree
        r["max_rel_score_diff_vs_torch"] = float(f"{rel:.3g}")
    for r in runs.values():
        r.pop("scores")
        r.pop("verdicts")
    out = {"benchmark": "edge", "category": Path(a.data).name, "threads": a.threads, "train": tr,
           "runtimes": runs, "cpu_count": os.cpu_count(), "platform": platform.platform(), "machine": machine,
           "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "note": "ms/part are end to end (decoded photo in memory -> verdict, map at photo size, regions); "
                   "train_s: fit on the first train-n train/good images by name; the machine is shared, see load_avg"}
    suffix = f"-cs{a.coreset_ratio:g}" if a.coreset_ratio else ""
    path = RESULTS / (a.out or f"edge-{out['category']}{suffix}.json")
    path.write_text(json.dumps(out, indent=1))
    cols = ("image_auroc", "ms_per_part_batch1", "ms_per_part_batch16", "parts_per_s", "peak_mb", "model_mb")
    print(f"train {tr['train_s']} s on {tr['n_train']} images; export {tr['export_s']} s, int8 {tr['export_int8_s']} s; "
          f"load avg {load_start[0]:.1f} -> {out['load_avg_end'][0]:.1f}; machine: {machine['matmul_gflops']} GFLOP/s "
          f"matmul, {machine['copy_gb_per_s']} GB/s copy")
    print("| runtime | " + " | ".join(cols) + " | verdicts = torch |")
    print("|---" * (len(cols) + 2) + "|")
    for rt, r in runs.items():
        print(f"| {rt} | " + " | ".join(str(r[c]) for c in cols) + f" | {1.0 if rt == 'torch' else r.get('verdict_agreement_vs_torch', '-')} |")
    print(f"wrote {path}")
    if a.nn:
        nn = _sub(["--nn-worker", "--threads", str(a.threads)])
        (RESULTS / "edge-nn.json").write_text(json.dumps(nn, indent=1))
        print(json.dumps(nn["rows"], indent=1))


if __name__ == "__main__":
    main()
