"""How many bank rows per distance matmul (``PatchCoreScoring.bank_chunk``), in ONNX Runtime.

The nearest-neighbour step of an inspection is a (query patches x bank rows) matmul and a
minimum over each row. As one piece the distance matrix is megabytes and is written and
read back through memory; cut into pieces of the bank it stays in cache. This exports
just that step for the bank sizes lineguard meets (784 queries = a 224 px part; 2016 = the
quality profile's 576 x 224 KolektorSDD part; banks from 200 and 762 training parts) with
several piece sizes (0 = one piece, as before), checks every variant gives the same
distances, and times them alternately in one process, 2 threads. ``--search int8`` times
the integer search the profiles use now (``Int8Search``; its speed depends on the CPU's
integer instructions, so the file is named after them).

    python -m benchmarks.bank_chunk_bench [--threads 2] [--rounds 7] [--search float32|int8]

Writes benchmarks/results/study-bank-chunks.json (float32) or
study-bank-chunks-int8-<isa>.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

CASES = ((784, 3136), (784, 11948), (2016, 8064))
CHUNKS = (0, 256, 384, 512, 768, 1024, 2048)


def _session(bank, chunk: int, queries: int, threads: int, search: str = "float32"):
    """The product's own search (``min_sq_distance`` or ``Int8Search.min_sq_distance``, as
    PatchCore's scoring module calls them) exported with ``chunk`` rows a piece."""
    import onnxruntime as ort
    import torch
    from torch import nn

    from lineguard.vision.detectors.patchcore import Int8Search, PatchCoreScoring, min_sq_distance

    class Nearest(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("neg2_bank_t", (-2 * bank).T.contiguous())
            self.register_buffer("bank_sq", (bank * bank).sum(1))

        def forward(self, q):
            return min_sq_distance(q, self.neg2_bank_t, self.bank_sq, len(bank)).sqrt()

    class NearestInt8(nn.Module):
        def __init__(self):
            super().__init__()
            self.search = Int8Search(bank, torch.stack([bank.min(0).values, bank.max(0).values]))
            for name in ("center", "bank_t", "neg2_row_scale", "bank_sq"):
                self.register_buffer(name, getattr(self.search, name))

        def forward(self, q):
            return self.search.min_sq_distance(q, self.center, self.bank_t, self.neg2_row_scale, self.bank_sq).sqrt()

    f = io.BytesIO()
    saved = PatchCoreScoring.bank_chunk
    PatchCoreScoring.bank_chunk = chunk or len(bank)      # read while the graph is traced
    try:
        torch.onnx.export(Nearest() if search == "float32" else NearestInt8(), (torch.randn(queries, bank.shape[1]),),
                          f, opset_version=17,
                          input_names=["q"], output_names=["d"], dynamo=False)
    finally:
        PatchCoreScoring.bank_chunk = saved
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(f.getvalue(), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--search", choices=("float32", "int8"), default="float32")
    a = ap.parse_args()
    import torch
    torch.manual_seed(0)
    rows = []
    for queries, bank_rows in CASES:
        bank = torch.randn(bank_rows, 152)
        q = np.random.default_rng(0).standard_normal((queries, 152)).astype(np.float32)
        sessions = {c: _session(bank, c, queries, a.threads, a.search) for c in CHUNKS}
        ref = sessions[0].run(None, {"q": q})[0]
        times: dict[int, list[float]] = {c: [] for c in CHUNKS}
        for _ in range(a.rounds):
            for c, s in sessions.items():
                np.testing.assert_allclose(s.run(None, {"q": q})[0], ref, rtol=1e-4, atol=1e-3)
                t0 = time.perf_counter()
                for _ in range(10):
                    s.run(None, {"q": q})
                times[c].append((time.perf_counter() - t0) * 100)
        row = {"queries": queries, "bank_rows": bank_rows,
               "median_ms_by_chunk": {str(c): round(statistics.median(v), 2) for c, v in times.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    from benchmarks.edge_bench import cpu_description
    cpu = cpu_description()
    name = "study-bank-chunks.json" if a.search == "float32" else \
        f"study-bank-chunks-int8-{'-'.join(cpu.get('cpu_isa', [])) or 'noisa'}.json"
    out = Path(__file__).resolve().parent / "results" / name
    out.write_text(json.dumps({"benchmark": "bank chunks (ONNX Runtime, nearest-neighbour step only)",
                               "search": a.search, "cpu": cpu, "threads": a.threads, "rounds": a.rounds, "chunk_0_means": "one piece (before)",
                               "rows": rows, "load_avg": os.getloadavg(),
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
