"""Fewer bank rows for a model trained on many good parts (issue #8, speed vs detection).

The greedy coreset is prefix-consistent: its first k picks are the k-row greedy coreset,
so capping the bank is read off the cached full selection (benchmarks/detection_study.py's
cache) without a refit. Image AUROC and escapes at 1% FRR on the fixed halves.

    python -m benchmarks.bank_cap_study     (writes JSON lines to stdout; kept in
                                             benchmarks/results/study-bank-cap.jsonl)
"""
import json
import sys

import torch

from benchmarks.detection_study import Study


def main() -> None:
    torch.set_num_threads(2)
    for data, size in (("../shared/datasets/magnetic_tile", (224, 224)),
                       ("../shared/datasets/kolektorsdd/commutator", (544, 224))):
        st = Study(data, size)
        _, bank, _, _ = st.bank()
        for k in (1500, 3000, 4000, 6000, len(bank)):
            d = st.test_distances(bank[:k].contiguous())
            print(json.dumps({"study": "bank cap", "dataset": st.path.name.split("-")[0], "size": list(size),
                              "bank_rows": k, "of": len(bank), **st.metrics(st.image_scores(d))}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
