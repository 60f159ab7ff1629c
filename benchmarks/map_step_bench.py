"""The anomaly map step alone, two ways, through ONNX Runtime: patch grid -> input-size
map, Gaussian-smoothed.

- ``convolution``: bilinear upsampling to the input size, reflect padding, then a
  25-tap Gaussian along each axis (how ``smooth_and_upsample`` computed it until
  2026-12-02);
- ``matrices``: the same linear map as one matrix per axis, ``A_h @ grid @ A_w^T``
  (``smooth_and_upsample`` now).

Both are exported as tiny graphs and timed alternately in one process (so a drift in the
machine's speed hits both), batch 1, 2 threads; the maps are compared too.

    python -m benchmarks.map_step_bench [--sizes 28x28:224x224 72x28:576x224] [--runs 400]

Writes ``benchmarks/results/map-step.json``.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SIGMA = 4.0


def _modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    from lineguard.vision.detectors.base import smooth_and_upsample

    class Convolution(nn.Module):
        def __init__(self, size):
            super().__init__()
            self.size = size
            r = int(round(3 * SIGMA))
            t = torch.arange(-r, r + 1, dtype=torch.float32)
            k = torch.exp(-(t ** 2) / (2 * SIGMA ** 2))
            self.r = r
            self.register_buffer("k", k / k.sum())

        def forward(self, d):
            m = F.interpolate(d[:, None], size=self.size, mode="bilinear", align_corners=False)
            m = F.pad(m, (self.r,) * 4, mode="reflect")
            return F.conv2d(F.conv2d(m, self.k.view(1, 1, 1, -1)), self.k.view(1, 1, -1, 1))[:, 0]

    class Matrices(nn.Module):
        def __init__(self, size):
            super().__init__()
            self.size = size

        def forward(self, d):
            return smooth_and_upsample(d, self.size, SIGMA)

    return {"convolution": Convolution, "matrices": Matrices}


def _session(module, grid: tuple[int, int]):
    import onnxruntime as ort
    import torch
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, (torch.zeros(1, *grid),), buf, dynamo=False, input_names=["grid"],
                          output_names=["map"], opset_version=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
    # two sessions take turns: spinning threads of the idle one would slow the other
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(buf.getvalue(), sess_options=opts, providers=["CPUExecutionProvider"])


def bench(grid: tuple[int, int], size: tuple[int, int], runs: int) -> dict:
    kinds = _modules()
    sessions = {k: _session(cls(size).eval(), grid) for k, cls in kinds.items()}
    x = (np.random.default_rng(0).random((1, *grid)) * 30).astype(np.float32)
    maps = {k: s.run(None, {"grid": x})[0] for k, s in sessions.items()}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    order = list(sessions)
    for r in range(runs + 20):
        for k in (order if r % 2 else order[::-1]):
            t0 = time.perf_counter()
            sessions[k].run(None, {"grid": x})
            if r >= 20:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {"grid": list(grid), "size": list(size), "runs": runs,
            **{f"{k}_ms": round(statistics.median(v), 3) for k, v in times.items()},
            "max_rel_diff": float(np.abs(maps["matrices"] - maps["convolution"]).max()
                                  / np.abs(maps["convolution"]).max())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["28x28:224x224", "72x28:576x224"],
                    help="GRID:INPUT pairs, each HxW (fast profile 28x28:224x224, quality on KolektorSDD 72x28:576x224)")
    ap.add_argument("--runs", type=int, default=400)
    a = ap.parse_args()
    from benchmarks.edge_bench import machine_reference
    rows = []
    for pair in a.sizes:
        g, s = (tuple(int(v) for v in part.split("x")) for part in pair.split(":"))
        rows.append(bench(g, s, a.runs))
        print(json.dumps(rows[-1]), flush=True)
    out = {"benchmark": "map_step", "sigma": SIGMA, "machine": machine_reference(2), "rows": rows,
           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "map-step.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS / 'map-step.json'}")


if __name__ == "__main__":
    main()
