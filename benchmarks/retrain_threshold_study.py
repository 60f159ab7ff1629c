"""Where should a station's retrain set its threshold? (the "get better over time" loop)

A line runs version 1 (trained on the plant's first good photos). People review what it
flags: its false alarms are reviewed good, its catches defect; a random audit sample of
the line's parts is kept whatever the verdict. A retrain (the station's default source,
`both`) learns from the parts reviewed good and the audit sample's OK parts. The parts
reviewed good are mostly version 1's false alarms: the oddest good parts, not a draw of the
line. Counted in the cross-fitted threshold, they lift it above the line's defects (a walk
on real data: held-out escapes 43% -> 75% on tiles, 42% -> 26 of 26 on commutators).

Simulated here on the real photos, per seed:

- version 1: Inspector.fit on ``--first`` train/good photos (fast profile, 1% target);
- the line: the other train/good photos and half of test/good, with ``--defect-share`` of
  defects drawn from half of each defect type (test/ holds far more than a line makes),
  shuffled; version 1 judges them; the audit sample is a random ``--audit-rate`` of them
  (the station's default is 2%; these folders are too small for 20 sample parts at 2%);
  every NG or REVIEW part is reviewed (truthfully), the audit sample's OK parts are not;
- the retrain learns the newest ``--limit`` parts the station's `both` source takes (parts
  reviewed good, and the audit sample's OK parts, its unreviewed escapes among them) and
  sets its threshold: every part counted (before 2026-12-05), the audit-sample parts only,
  the audit-sample parts only with those nobody reviewed left out when far above the
  others (now, when there are at least 20 sample parts), and for reference half of the
  held-out good parts (an oracle no station has; judged on the other half);
- each version judges the other halves (good parts and defects it never saw): false
  rejects and escapes at its own threshold.

KolektorSDD's photos come 8 to a commutator: the halves are split by commutator.

    python -m benchmarks.retrain_threshold_study [--data DIR ...] [--seeds 3] [--audit-rate 0.1]
        [--defect-share 0.02]

Writes benchmarks/results/retrain-threshold-<dataset>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.core_bench import DATASETS, FRR_TARGET, dataset_name, part_labels

OUT = Path(__file__).resolve().parent / "results"


def _halves(paths: list[Path], labels, rng) -> tuple[list[Path], list[Path]]:
    """Two halves of ``paths``, whole parts (commutators) on one side."""
    groups = labels or [str(p) for p in paths]
    names = sorted(set(groups))
    rng.shuffle(names)
    first = set(names[: len(names) // 2])
    return [p for p, g in zip(paths, groups) if g in first], [p for p, g in zip(paths, groups) if g not in first]


def _rates(scores: np.ndarray, is_defect: np.ndarray, threshold: float) -> dict:
    ng = scores > threshold
    good, bad = ~is_defect, is_defect
    return {"false_reject_rate": round(float(ng[good].mean()), 4), "escape_rate": round(float((~ng[bad]).mean()), 4),
            "n_good": int(good.sum()), "n_defect": int(bad.sum()), "threshold": round(float(threshold), 4)}


def run_seed(data: str, seed: int, first: int, audit_rate: float, limit: int, defect_share: float) -> dict:
    from lineguard import Inspector
    from lineguard.line.jobs import MIN_SAMPLE_FOR_THRESHOLD
    from lineguard.vision.calibration import conformal_threshold
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.profiles import profile_settings
    rng = np.random.default_rng(seed)
    cat = MVTecCategory(data)
    train = [Path(p) for p in cat.train_good]
    order = rng.permutation(len(train))
    train = [train[i] for i in order]
    test_good = [it.path for it in cat.test_items if not it.is_defect]
    line_good, held_good = _halves([Path(p) for p in test_good], part_labels(data, [Path(p) for p in test_good]), rng)
    line_bad, held_bad = [], []
    for kind in sorted({it.defect_type for it in cat.test_items if it.is_defect}):
        paths = [Path(it.path) for it in cat.test_items if it.is_defect and it.defect_type == kind]
        a, b = _halves(paths, part_labels(data, paths), rng)
        line_bad += a
        held_bad += b
    n_line_good = len(train) - first + len(line_good)
    n_bad = min(len(line_bad), int(round(defect_share * n_line_good / (1 - defect_share))))
    line_bad = [line_bad[i] for i in sorted(rng.choice(len(line_bad), n_bad, replace=False))]
    settings = dict(profile_settings("fast"), false_reject_rate=FRR_TARGET, seed=seed)
    t0 = time.perf_counter()
    v1 = Inspector.fit([str(p) for p in train[:first]], **settings)
    # the line, in the order it makes its parts
    line = [(p, False) for p in train[first:] + line_good] + [(p, True) for p in line_bad]
    line = [line[i] for i in rng.permutation(len(line))]
    verdicts = [r.verdict.value for r in v1.inspect_batch([str(p) for p, _ in line])]
    in_sample = rng.random(len(line)) < audit_rate
    # what the station's `both` source learns, newest first: reviewed good (every flagged
    # good part is reviewed, the sample's too) and the sample's unreviewed OK parts
    learn: list[tuple[Path, bool, bool, bool]] = []   # (photo, in the audit sample, is a defect, reviewed)
    for (p, bad), v, smp in reversed(list(zip(line, verdicts, in_sample))):
        reviewed_good = v != "OK" and not bad
        if reviewed_good or (smp and v == "OK"):
            learn.append((p, bool(smp), bad, reviewed_good))
    learn = learn[:limit]
    n_sample = sum(1 for _p, s, _b, _r in learn if s)
    flags = [s for _p, s, _b, _r in learn] if MIN_SAMPLE_FOR_THRESHOLD <= n_sample < len(learn) else None
    unreviewed = [not r for _p, _s, _b, r in learn]
    held = [str(p) for p in held_good + held_bad]
    is_defect = np.array([False] * len(held_good) + [True] * len(held_bad))
    out = {"seed": seed, "line_parts": len(line), "line_defects": len(line_bad),
           "v1_flagged_good": int(sum(1 for (p, bad), v in zip(line, verdicts) if v != "OK" and not bad)),
           "learnt": len(learn), "learnt_audit_sample": n_sample,
           "learnt_escapes": int(sum(1 for _p, _s, b, _r in learn if b))}
    v1_scores = np.array([r.score for r in v1.inspect_batch(held)])
    out["v1"] = _rates(v1_scores, is_defect, v1.threshold)
    photos = [str(p) for p, _s, _b, _r in learn]
    v2 = Inspector.fit(photos, **settings, calibrate_on=flags)
    scores = np.array([r.score for r in v2.inspect_batch(held)])
    sub = v2.calibration.get("calibration_subset")
    every = sub["threshold_all_parts"] if sub else v2.threshold
    out["v2_every_part"] = _rates(scores, is_defect, every)
    # with every part learnt in the sample, counting the sample is counting every part
    out["v2_audit_sample"] = _rates(scores, is_defect, v2.threshold)
    # what the station does now: the sample counted, far-out parts nobody reviewed left out
    v2n = Inspector.fit(photos, **settings, calibrate_on=flags, exclude_suspects=unreviewed)
    now = np.array([r.score for r in v2n.inspect_batch(held)])
    out["v2_now"] = _rates(now, is_defect, v2n.threshold)
    out["v2_now"]["left_out"] = int(v2n.calibration.get("suspects_excluded", 0))
    # what a threshold set on good parts drawn like the held-out ones would do (no station
    # has them): set on one half of the held-out good parts, judged on the other half and
    # the defects (set and judged on the same parts, its false rejects were 0 by construction)
    good_idx = np.flatnonzero(~is_defect)
    labels = part_labels(data, [Path(p) for p in held_good])
    cal_half, _rest = _halves([Path(held[i]) for i in good_idx], labels, rng)
    cal_set = {str(p) for p in cal_half}
    use = np.array([h in cal_set for h in held])
    oracle = conformal_threshold(scores[use], FRR_TARGET)[0]
    out["v2_oracle_held_out_good"] = _rates(scores[~use], is_defect[~use], oracle)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="*", default=DATASETS)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first", type=int, default=40, help="good photos version 1 learns from")
    ap.add_argument("--audit-rate", type=float, default=0.1)
    ap.add_argument("--limit", type=int, default=200, help="parts the retrain learns (the station's default)")
    ap.add_argument("--defect-share", type=float, default=0.02, help="share of the line's parts that are defects")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    for data in args.data:
        name = dataset_name(data)
        runs = []
        for seed in range(args.seeds):
            r = run_seed(data, seed, args.first, args.audit_rate, args.limit, args.defect_share)
            runs.append(r)
            print(json.dumps({"dataset": name, **r}), flush=True)
        summary = {}
        for way in ("v1", "v2_every_part", "v2_audit_sample", "v2_now", "v2_oracle_held_out_good"):
            got = [r[way] for r in runs if r[way]]
            if got:
                summary[way] = {k: round(float(np.mean([g[k] for g in got])), 4)
                                for k in ("false_reject_rate", "escape_rate")}
        result = {"dataset": name, "command": "python -m benchmarks.retrain_threshold_study", "first": args.first,
                  "audit_rate": args.audit_rate, "limit": args.limit, "defect_share": args.defect_share,
                  "profile": "fast",
                  "false_reject_target": FRR_TARGET, "runs": runs, "mean": summary}
        (OUT / f"retrain-threshold-{name}.json").write_text(json.dumps(result, indent=1))
        print(f"{name}: mean over {len(runs)} seeds")
        for way, m in summary.items():
            print(f"  {way:26s} false rejects {m['false_reject_rate']:.1%}  escapes {m['escape_rate']:.1%}")


if __name__ == "__main__":
    main()
