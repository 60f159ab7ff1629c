"""The photo check on real data: how often it doubts a good photo, and how often it
catches a camera or lamp fault (``lineguard.vision.photo_check``).

For each dataset (magnetic_tile, KolektorSDD commutators) a model of the default (fast)
profile learns from 100 train/good photos; the photo check's range is learnt with it.
Two selections: every k-th photo in name order (spread over the folder, as a plant's
photos taken over days are), and the first 100 in name order (magnetic_tile's names
group similar tiles: photos taken in one session, narrower than the line's variety). Then, on the test photos:

- the share of test/good photos (never seen) it doubts (a false doubt sends a good part
  to REVIEW), and of the defective ones;
- faults painted on every test photo, good and defective, before the model's crop and
  resize: the lamp at 60% and 40%, over-exposure (x1.5, clipped), haze (half way to the
  photo's mean grey), defocus (Gaussian blur of 0.5% and 1% of the photo's width). Per
  fault: the share the check doubts, and of the defective parts the share the model
  alone passes as OK (escapes) and the share that still pass with the check (it sends
  doubted OK parts to REVIEW);
- the check's time per part.

    python -m benchmarks.photo_check_bench

Writes ``benchmarks/results/photo-check.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
N_TRAIN = 100


def _faults():
    from PIL import Image, ImageFilter

    def scale(k):
        return lambda a: np.clip(a.astype(np.float32) * k, 0, 255).astype(np.uint8)

    def haze(a):
        f = a.astype(np.float32)
        return (0.5 * f + 0.5 * f.mean()).astype(np.uint8)

    def blur(share):
        def f(a):
            return np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(radius=share * a.shape[1])))
        return f

    return {"lamp at 60%": scale(0.6), "lamp at 40%": scale(0.4), "over-exposed x1.5": scale(1.5),
            "haze (half way to mean grey)": haze, "defocus 0.5% of width": blur(0.005),
            "defocus 1% of width": blur(0.01)}


def bench(root: Path, selection: str) -> dict:
    from lineguard import Inspector
    from lineguard.vision import photo_check
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.profiles import profile_settings
    from lineguard.vision.result import Verdict

    every = sorted((root / "train" / "good").iterdir())
    train = every[:N_TRAIN] if selection == "first" else every[::max(1, len(every) // N_TRAIN)][:N_TRAIN]
    t0 = time.perf_counter()
    insp = Inspector.fit(train, false_reject_rate=0.01, seed=0, **profile_settings("fast"))
    fit_s = time.perf_counter() - t0
    rng = insp.info["photo_range"]
    cat = MVTecCategory(root)
    items = cat.test_items
    photos = [np.asarray(load_image(it.path)) for it in items]
    defect = np.array([it.is_defect for it in items])

    def judge(arrays):
        res = insp.inspect_batch(arrays)
        ok = np.array([r.score <= r.threshold and r.score <= r.ok_threshold for r in res])   # the model alone
        doubted = np.array([bool(r.photo_issues) for r in res])
        verdict_ok = np.array([r.verdict is Verdict.OK for r in res])
        return ok, doubted, verdict_ok

    ok, doubted, _ = judge(photos)
    out = {"dataset": root.relative_to(DATASETS).as_posix(), "selection": selection, "train_good": len(train), "fit_s": round(fit_s, 1),
           "input_hw": list(insp.detector.input_size_), "range": rng,
           "test_good": int((~defect).sum()), "test_defective": int(defect.sum()),
           "doubted_good": round(float(doubted[~defect].mean()), 4),
           "doubted_defective": round(float(doubted[defect].mean()), 4),
           "escapes_model": round(float(ok[defect].mean()), 4), "faults": {}}
    for name, fault in _faults().items():
        ok_f, doubted_f, verdict_ok = judge([fault(p) for p in photos])
        out["faults"][name] = {"doubted": round(float(doubted_f.mean()), 4),
                               "doubted_good": round(float(doubted_f[~defect].mean()), 4),
                               "escapes_model_alone": round(float(ok_f[defect].mean()), 4),
                               "escapes_with_check": round(float(verdict_ok[defect].mean()), 4)}
    xs = [insp.preprocess.apply(p)[0] for p in photos[:200]]
    t0 = time.perf_counter()
    for x in xs:
        photo_check.issues(x, rng)
    out["check_ms_per_part"] = round((time.perf_counter() - t0) * 1000 / len(xs), 3)
    return out


def main() -> None:
    rows = [bench(DATASETS / name, selection) for name in ("magnetic_tile", "kolektorsdd/commutator")
            for selection in ("spread", "first")]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "photo-check.json").write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        print(f"{r['dataset']} ({r['selection']} {r['train_good']}): input {r['input_hw']}, doubted good {r['doubted_good']:.1%} of {r['test_good']}, "
              f"doubted defective {r['doubted_defective']:.1%} of {r['test_defective']}, model escapes "
              f"{r['escapes_model']:.1%}, check {r['check_ms_per_part']} ms/part")
        for name, f in r["faults"].items():
            print(f"  {name:30s} doubted {f['doubted']:6.1%} (good {f['doubted_good']:6.1%})  escapes: model alone "
                  f"{f['escapes_model_alone']:6.1%}, with the check {f['escapes_with_check']:6.1%}")


if __name__ == "__main__":
    main()
