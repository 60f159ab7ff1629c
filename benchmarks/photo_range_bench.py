"""The photo check's range when the good folder holds odd photos: which fence keeps a
few dim, over-exposed or blurred training photos from widening the range until a real
lamp or lens fault passes (``lineguard.vision.photo_check``).

The check needs no model: it measures the model input (the fast profile's crop and
resize), so this bench measures photos only and runs in seconds. For each dataset
(magnetic_tile, KolektorSDD commutators) and each training set:

- ``spread 100``: every k-th train/good photo in name order (photos taken over days);
- ``spread 100 + 3 odd``: the same with three more good photos painted as a plant's folder
  gets them: the lamp at 50% (a flicker while they were taken), over-exposed x1.4, and a
  defocus of 1% of the width;
- ``spread 30 + 2 odd``: a small plant's 30 photos and two odd ones (lamp at 50%, defocus);
- ``first 100``: the first 100 by name (one session, narrower than the line's variety).

Each fence setting (``--fences``; ``none`` is the check as it was, the 1st-99th percentile
of every photo) learns a range; then, on test/ split in core_bench's fixed halves
(validation: even positions by name within each type; report: odd), the share of good
test photos doubted, and the share of all test photos doubted under a fault painted on
each (the lamp at 60%, over-exposure x1.5, defocus 1% of the width; the lamp off, x0.03; a
white-out, x8; a flat photo, contrast x0.05 about its mean); and which training
photos the fence named odd (of the painted ones, how many).

    python -m benchmarks.photo_range_bench [--fences none,3,2,1.5]

Writes ``benchmarks/results/photo-range.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _scale(k):
    return lambda a: np.clip(a.astype(np.float32) * k, 0, 255).astype(np.uint8)


def _blur(share):
    from PIL import Image, ImageFilter
    return lambda a: np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(radius=share * a.shape[1])))


def _flat(k):
    def f(a):
        m = a.astype(np.float32).mean()
        return np.clip(m + (a.astype(np.float32) - m) * k, 0, 255).astype(np.uint8)
    return f


# the lamp off, a white-out and a flat (washed-out) photo too: a range whose margin reached past
# black and white (tiles spread over brightness 0.2-0.7 learnt 0-1) passed all three
TEST_FAULTS = {"lamp at 60%": _scale(0.6), "over-exposed x1.5": _scale(1.5), "defocus 1% of width": _blur(0.01),
               "lamp off x0.03": _scale(0.03), "white-out x8": _scale(8), "flat x0.05": _flat(0.05)}
ODD = [("lamp at 50%", _scale(0.5)), ("defocus 1% of width", _blur(0.01)), ("over-exposed x1.4", _scale(1.4))]


def _training_sets(every: list[Path]) -> dict[str, tuple[list[Path], list]]:
    """name -> (photos, [(photo, odd painting)] added): the odd ones are other good photos, painted."""
    spread = every[::max(1, len(every) // 100)][:100]
    rest = [p for p in every if p not in set(spread)]
    small = every[::max(1, len(every) // 30)][:30]
    return {"spread 100": (spread, []),
            "spread 100 + 3 odd": (spread, [(rest[i * 7], f) for i, (_, f) in enumerate(ODD)]),
            "spread 30 + 2 odd": (small, [(rest[i * 11], f) for i, (_, f) in enumerate(ODD[:2])]),
            "first 100": (every[:100], [])}


def bench(root: Path, fences: list) -> dict:
    from lineguard.vision import photo_check
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.inspector import auto_input_size
    from lineguard.vision.preprocess import Preprocess

    from .core_bench import validation_half

    every = sorted((root / "train" / "good").iterdir())
    pre = Preprocess(image_size=auto_input_size("area224", every[:50]))     # the fast profile's input

    def model_input(a):
        return pre.apply(a)[0]

    items = MVTecCategory(root).test_items
    val, rep = validation_half([{"defect_type": it.defect_type, "path": it.path} for it in items])
    photos = [np.asarray(load_image(it.path)) for it in items]
    good = np.array([not it.is_defect for it in items])
    clean = np.stack([model_input(p) for p in photos])
    faulty = {name: np.stack([model_input(f(p)) for p in photos]) for name, f in TEST_FAULTS.items()}
    halves = {"validation": np.array(val), "report": np.array(rep)}

    out = {"dataset": root.relative_to(DATASETS).as_posix(), "input_hw": list(pre.input_hw), "sets": {}}
    for set_name, (train, odd) in _training_sets(every).items():
        x = np.stack([model_input(np.asarray(load_image(p))) for p in train]
                     + [model_input(f(np.asarray(load_image(p)))) for p, f in odd])
        painted = set(range(len(train), len(train) + len(odd)))
        rows = {}
        for fence in fences:
            rng, named = photo_check.learn_range(x, fence=fence)
            doubted = np.array([bool(photo_check.issues(c, rng)[1]) for c in clean])
            fault_doubted = {name: np.array([bool(photo_check.issues(c, rng)[1]) for c in arr])
                             for name, arr in faulty.items()}
            row = {"named_odd": len(named), "painted_named": sum(1 for i, _ in named if i in painted),
                   "named_issues": [iss for _, iss in named][:10]}
            for half, idx in halves.items():
                g = idx[good[idx]]
                row[half] = {"good_doubted": round(float(doubted[g].mean()), 4),
                             **{f"doubted under {name}": round(float(d[idx].mean()), 4)
                                for name, d in fault_doubted.items()}}
            rows["none" if fence is None else str(fence)] = row
        out["sets"][set_name] = {"train": len(x), "painted": len(odd), "by_fence": rows}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fences", default="none,3,2,1.5",
                    help="Tukey fences (IQRs past the quartiles) that name a good photo odd; none: no fence")
    a = ap.parse_args()
    fences = [None if f == "none" else float(f) for f in a.fences.split(",")]
    rows = [bench(DATASETS / name, fences) for name in ("magnetic_tile", "kolektorsdd/commutator")]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "photo-range.json").write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        print(f"{r['dataset']} (input {r['input_hw']})")
        for set_name, s in r["sets"].items():
            for fence, row in s["by_fence"].items():
                cells = "  ".join(f"{half}: good {row[half]['good_doubted']:5.1%}, "
                                  + ", ".join(f"{k.replace('doubted under ', '')} {v:5.1%}"
                                              for k, v in row[half].items() if k != "good_doubted")
                                  for half in ("validation", "report"))
                print(f"  {set_name:20s} fence {fence:4s} named {row['named_odd']:2d} "
                      f"(painted {row['painted_named']}/{s['painted']})  {cells}")


if __name__ == "__main__":
    main()
