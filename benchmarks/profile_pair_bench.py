"""Two profiles' exported models timed side by side in one process.

On a shared VM the machine's own speed drifts by 20% or more within minutes (README,
Speed), so two ``edge_bench`` runs minutes apart compare the hours as much as the models.
Here both profiles are trained on the same good parts, exported, and their ONNX graphs
run alternately on the same real part photos (batch 1, 2 threads: the model alone, no
preprocessing or regions), so a drift hits both alike. Then one profiled pass each says
where the time goes (ONNX Runtime's own profiler, kernel time by operator type: the
convolutions are the backbone, MatMulIntegerToFloat the int8 bank search).

    python -m benchmarks.profile_pair_bench [--data ../shared/datasets/kolektorsdd/commutator]
        [--profiles quality quality-one-size] [--train-n 200] [--runs 120] [--tag T]

Writes ``benchmarks/results/profile-pair-<dataset>-<a>-vs-<b>[-T].json``.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.core_bench import CANDIDATES, PROFILES, dataset_name
from benchmarks.edge_bench import cpu_description, machine_reference

RESULTS = Path(__file__).resolve().parent / "results"


def _session(path: Path, profile_prefix: str = ""):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _kernel_ms_by_op(session, x: np.ndarray, runs: int) -> dict[str, float]:
    """Mean kernel milliseconds a run, per operator type, over ``runs`` profiled runs."""
    name = session.get_inputs()[0].name
    for _ in range(runs):
        session.run(None, {name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    total: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
    return {op: round(us / runs / 1000, 2) for op, us in total.most_common()}


def run(data: str, profiles: list[str], train_n: int, runs: int) -> dict:
    import torch

    from lineguard import Inspector
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    torch.set_num_threads(2)
    cat = MVTecCategory(data)
    train = sorted(cat.train_good)[:train_n]
    photos = [it.path for it in cat.test_items][::4][:16]
    out: dict = {"benchmark": "profile-pair", "dataset": dataset_name(data), "train_n": len(train),
                 "profiles": {}, "machine_before": machine_reference(2), "cpu": cpu_description()}
    with tempfile.TemporaryDirectory() as tmp:
        sessions, inputs = {}, {}
        for p in profiles:
            params = dict({**PROFILES, **CANDIDATES}[p])
            t0 = time.perf_counter()
            insp = Inspector.fit(train, **params)
            fit_s = time.perf_counter() - t0
            path = Path(tmp) / f"{p}.onnx"
            export_onnx(insp, path)
            sessions[p] = _session(path)
            inputs[p] = [insp.preprocess.apply(load_image(f))[0][None] for f in photos]
            out["profiles"][p] = {"params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
                                  "input_hw": list(insp.preprocess.input_hw), "fit_s": round(fit_s, 1),
                                  "model_mb": round(path.stat().st_size / 2 ** 20, 2)}
        times: dict[str, list[float]] = {p: [] for p in profiles}
        for i in range(runs):
            order = profiles if i % 2 else profiles[::-1]
            for p in order:
                s, x = sessions[p], inputs[p][i % len(photos)]
                t0 = time.perf_counter()
                s.run(None, {s.get_inputs()[0].name: x})
                times[p].append((time.perf_counter() - t0) * 1000)
        for p in profiles:
            t = times[p][10:]     # the first runs warm the caches
            out["profiles"][p].update(ms_median=round(statistics.median(t), 2),
                                      ms_p10=round(float(np.percentile(t, 10)), 2),
                                      ms_p90=round(float(np.percentile(t, 90)), 2),
                                      kernel_ms_by_op=_kernel_ms_by_op(
                                          _session(Path(tmp) / f"{p}.onnx", str(Path(tmp) / f"prof-{p}")),
                                          inputs[p][0], 30))
    a, b = profiles
    out["ratio_median"] = round(out["profiles"][a]["ms_median"] / out["profiles"][b]["ms_median"], 3)
    out["ratio_p10"] = round(out["profiles"][a]["ms_p10"] / out["profiles"][b]["ms_p10"], 3)
    out["machine_after"] = machine_reference(2)
    out["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/kolektorsdd/commutator")
    ap.add_argument("--profiles", nargs=2, default=["quality", "quality-one-size"],
                    help="two names from core_bench.PROFILES or CANDIDATES")
    ap.add_argument("--train-n", type=int, default=200)
    ap.add_argument("--runs", type=int, default=120, help="alternating runs of each model")
    ap.add_argument("--tag", default="", help="added to the file name (another host, another day)")
    a = ap.parse_args()
    out = run(a.data, a.profiles, a.train_n, a.runs)
    path = RESULTS / (f"profile-pair-{out['dataset']}-{a.profiles[0]}-vs-{a.profiles[1]}"
                      f"{'-' + a.tag if a.tag else ''}.json")
    path.write_text(json.dumps(out, indent=1))
    for p, r in out["profiles"].items():
        top = ", ".join(f"{k} {v}" for k, v in list(r["kernel_ms_by_op"].items())[:3])
        print(f"{p}: median {r['ms_median']} ms (p10 {r['ms_p10']}, p90 {r['ms_p90']}); kernels: {top}")
    print(f"{a.profiles[0]} / {a.profiles[1]}: {out['ratio_median']} (median), {out['ratio_p10']} (p10); wrote {path}")


if __name__ == "__main__":
    main()
