"""lineguard (torch, ONNX Runtime fp32/int8, OpenVINO fp32/bf16) next to anomalib's
PatchCore, same data, same machine.

    python -m benchmarks.side_by_side [--data ../shared/datasets/magnetic_tile] [--rerun]

Reads ``benchmarks/results/edge-<category>.json`` (from ``benchmarks.edge_bench``; also
``edge-<category>-cs0.01.json`` from ``edge_bench --coreset-ratio 0.01``, lineguard at
anomalib's coreset setting, where it exists) and
``benchmarks/results/anomalib-<category>.json`` (from ``benchmarks.anomalib_bench``, which
builds its own venv); runs whichever is missing (both with ``--rerun``). Prints a
markdown table with the ratios to anomalib and the issue's targets, and saves it as
``benchmarks/results/edge-side_by_side-<category>.json``. Without an anomalib result
(no venv possible here) the anomalib row says why and the ratios are left out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLS = ("image_auroc", "train_s", "ms_per_part_batch1", "ms_per_part_batch16", "parts_per_s", "peak_mb", "model_mb")


def _run(module: str, data: str) -> None:
    print(f"running python -m {module} --data {data} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", module, "--data", data], check=False)


def _fmt(v, col: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if "auroc" in col:
            return f"{v:.4f}"
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/magnetic_tile")
    ap.add_argument("--rerun", action="store_true", help="run both benchmarks again first")
    ap.add_argument("--no-run", action="store_true", help="only combine the result files that exist")
    a = ap.parse_args()
    cat = Path(a.data).name
    edge_p, ano_p = RESULTS / f"edge-{cat}.json", RESULTS / f"anomalib-{cat}.json"
    if not a.no_run and (a.rerun or not edge_p.exists()):
        _run("benchmarks.edge_bench", a.data)
    if not a.no_run and (a.rerun or not ano_p.exists()):
        _run("benchmarks.anomalib_bench", a.data)
    if not edge_p.exists():
        sys.exit(f"{edge_p} missing: python -m benchmarks.edge_bench failed")
    edge = json.loads(edge_p.read_text())
    ano = json.loads(ano_p.read_text()) if ano_p.exists() else {"skipped": True, "reason": "no result file"}

    labels = {"torch": "lineguard torch", "onnx": "lineguard ONNX Runtime", "int8": "lineguard ONNX int8",
              "openvino": "lineguard OpenVINO", "openvino-bf16": "lineguard OpenVINO bf16"}
    rows = []
    # the default memory bank (2% coreset) and, where measured, anomalib's own setting (1%)
    for path, tag in ((edge_p, ""), (RESULTS / f"edge-{cat}-cs0.01.json", ", coreset 1% as anomalib")):
        if not path.exists():
            continue
        e = json.loads(path.read_text())
        for rt, r in e["runtimes"].items():
            rows.append({"system": labels.get(rt, rt) + tag, **{c: r.get(c) for c in COLS},
                         "train_s": e["train"]["train_s"], "bank_rows": e["train"].get("bank_rows")})
    ano_ok = not ano.get("skipped")
    if ano_ok:
        for row in rows:
            row["throughput_x"] = round(row["parts_per_s"] / ano["parts_per_s"], 2) if ano.get("parts_per_s") else None
            row["batch1_speed_x"] = (round(ano["ms_per_part_batch1"] / row["ms_per_part_batch1"], 2)
                                     if ano.get("ms_per_part_batch1") else None)
            row["train_speed_x"] = round(ano["train_s"] / row["train_s"], 2) if ano.get("train_s") else None
            row["auroc_delta"] = (round(row["image_auroc"] - ano["image_auroc"], 4)
                                  if ano.get("image_auroc") is not None else None)
        # ratios above are to the primary run (the coreset setting listed first when it ran)
        for run in [ano] + [r for r in ano.get("runs", [])[1:] if not r.get("skipped")]:
            rows.append({"system": f"{run.get('system', 'anomalib PatchCore')} (coreset {run.get('coreset_ratio')}"
                                   + (", anomalib's default" if run.get("coreset_ratio") == 0.1 else "") + ")",
                         **{c: run.get(c) for c in COLS}})
    onnx = edge["runtimes"]["onnx"]
    targets = {"onnx_batch1_ms<=10": onnx["ms_per_part_batch1"] <= 10}
    if ano_ok:
        # the targets, for the default ONNX Runtime row and, where measured,
        # the ONNX Runtime row at anomalib's coreset setting (same settings, side by side)
        for row in rows:
            if row["system"].startswith("lineguard ONNX Runtime"):
                key = "default" if "coreset" not in row["system"] else "coreset 1%"
                targets.update({f"throughput>=3x ({key})": (row.get("throughput_x") or 0) >= 3,
                                f"training>=5x ({key})": (row.get("train_speed_x") or 0) >= 5,
                                f"auroc>=anomalib ({key})": (row.get("auroc_delta") or -1) >= 0})

    extra = ("throughput_x", "batch1_speed_x", "train_speed_x", "auroc_delta") if ano_ok else ()
    head = ("system",) + COLS + extra
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c), c) for c in head) + " |")
    print(f"{cat}, {edge['threads']} threads, {edge['train']['n_train']} training images, "
          f"load avg during lineguard runs {edge['load_avg_start'][0]:.1f}-{edge['load_avg_end'][0]:.1f}"
          + (f", during anomalib {ano.get('host', {}).get('loadavg_at_start', ['?'])[0]}" if ano_ok else ""))
    print("\n".join(lines))
    if not ano_ok:
        print(f"anomalib column skipped: {ano.get('reason')}")
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    out = {"category": cat, "rows": rows, "targets": targets, "table_md": "\n".join(lines),
           "anomalib": {k: v for k, v in ano.items() if k != "runs"}, "edge_time": edge.get("time"),
           "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "load_avg": os.getloadavg()}
    path = RESULTS / f"edge-side_by_side-{cat}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
