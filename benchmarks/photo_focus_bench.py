"""Where the photo check measures focus: blur caught against good photos doubted, and the
time it takes (``lineguard.vision.photo_check``).

Three places tried, on the fast profile's model input of 100 train/good photos spread
over the folder (as photo_range_bench), each learning the focus floor the check uses
(0.6 of the good photos' 1st percentile):

- ``blocks``: the Laplacian of block averages at most 128 px a side (the check before);
- ``crop``: the Laplacian of a 128 px square from the middle of the input, at full
  resolution;
- ``input``: the Laplacian of the whole input at full resolution.

Then on test/, split in core_bench's fixed halves (settings chosen on the validation half,
reported on the report half): the share of good test photos below the floor (a false
doubt), and the share of all test photos below it under a Gaussian defocus of 0.3%, 0.5%
and 1% of the photo's width; and each measure's time per photo.

    python -m benchmarks.photo_focus_bench

Writes ``benchmarks/results/photo-focus.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .photo_range_bench import DATASETS, RESULTS, _blur

BLURS = (0.003, 0.005, 0.01)


def _measures():
    from lineguard.vision import photo_check

    def crop(x: np.ndarray) -> float:
        h, w = x.shape[:2]
        y0, x0 = max(0, (h - 128) // 2), max(0, (w - 128) // 2)
        return photo_check.laplacian_focus(x[y0:y0 + 128, x0:x0 + 128])

    return {"blocks": lambda x: photo_check.measure(x, focus_at="blocks")["focus"],
            "crop": crop,
            "input": photo_check.laplacian_focus}


def bench(root: Path) -> dict:
    from lineguard.vision import photo_check
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.inspector import auto_input_size
    from lineguard.vision.preprocess import Preprocess

    from .core_bench import validation_half

    every = sorted((root / "train" / "good").iterdir())
    pre = Preprocess(image_size=auto_input_size("area224", every[:50]))
    train = [pre.apply(np.asarray(load_image(p)))[0] for p in every[::max(1, len(every) // 100)][:100]]
    items = MVTecCategory(root).test_items
    val, rep = validation_half([{"defect_type": it.defect_type, "path": it.path} for it in items])
    photos = [np.asarray(load_image(it.path)) for it in items]
    good = np.array([not it.is_defect for it in items])
    inputs = {"clean": [pre.apply(p)[0] for p in photos]}
    for share in BLURS:
        blur = _blur(share)
        inputs[f"defocus {share:.1%}"] = [pre.apply(blur(p))[0] for p in photos]
    out = {"dataset": root.relative_to(DATASETS).as_posix(), "input_hw": list(pre.input_hw), "by_place": {}}
    for place, focus in _measures().items():
        floor = photo_check.FOCUS_LOW * float(np.quantile([focus(x) for x in train], 0.01))
        below = {k: np.array([focus(x) < floor for x in xs]) for k, xs in inputs.items()}
        t0 = time.perf_counter()
        for x in inputs["clean"][:200]:
            focus(x)
        ms = (time.perf_counter() - t0) * 1000 / min(200, len(inputs["clean"]))
        row = {"floor": round(floor, 5), "ms_per_photo": round(ms, 3)}
        for half, idx in (("validation", np.array(val)), ("report", np.array(rep))):
            g = idx[good[idx]]
            row[half] = {"good_doubted": round(float(below["clean"][g].mean()), 4),
                         **{f"doubted under {k}": round(float(v[idx].mean()), 4)
                            for k, v in below.items() if k != "clean"}}
        out["by_place"][place] = row
    return out


def main() -> None:
    rows = [bench(DATASETS / name) for name in ("magnetic_tile", "kolektorsdd/commutator")]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "photo-focus.json").write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        print(f"{r['dataset']} (input {r['input_hw']})")
        for place, row in r["by_place"].items():
            cells = "  ".join(f"{half}: good {row[half]['good_doubted']:5.1%}, "
                              + ", ".join(f"{k.replace('doubted under ', '')} {v:5.1%}"
                                          for k, v in row[half].items() if k != "good_doubted")
                              for half in ("validation", "report"))
            print(f"  {place:7s} {row['ms_per_photo']:.3f} ms  {cells}")


if __name__ == "__main__":
    main()
