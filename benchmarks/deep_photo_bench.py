"""16-bit photos of a 12-bit camera: what reading them by the 16-bit range cost, and what
reading them by the camera's depth gives back.

The synthetic line (``lineguard.vision.synth``: 40 good training parts, 10 good and 18
defective test parts, 128 px) is written once as 8-bit greyscale PNGs and once as a Mono12
camera writes them (16-bit PNGs, values 0..4080). A model learns from each; for the
16-bit photos once read as models did before 2026-12-03 (``sensor_bits=None``: the 16-bit
range is white) and once with the depth read off the good photos (``"auto"``, the
default). Image AUROC on the test parts, and the mean grey level the model's input has.

    python -m benchmarks.deep_photo_bench

Writes ``benchmarks/results/deep-photo.json``.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    from PIL import Image

    from lineguard import Inspector
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image
    from lineguard.vision.metrics import image_auroc
    from lineguard.vision.synth import write_dataset

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cell"
        write_dataset(src, n_good=40, n_defect=18, size=128, seed=0)
        copies = {}
        for bits in (8, 12):
            root = Path(tmp) / f"cell{bits}"
            for p in src.rglob("*.png"):
                q = root / p.relative_to(src)
                q.parent.mkdir(parents=True, exist_ok=True)
                if "ground_truth" in p.parts:
                    q.write_bytes(p.read_bytes())
                    continue
                grey = np.asarray(Image.open(p).convert("L"))
                Image.fromarray(grey if bits == 8 else grey.astype(np.uint16) << (bits - 8)).save(q)
            copies[bits] = root
        rows = []
        for name, root, setting in (("8-bit photos", copies[8], "auto"),
                                    ("12-bit camera, read by the 16-bit range (before)", copies[12], None),
                                    ("12-bit camera, depth read off the good photos (now)", copies[12], "auto")):
            insp = Inspector.fit(root / "train" / "good", image_size=128, false_reject_rate=0.1, seed=0,
                                 sensor_bits=setting)
            cat = MVTecCategory(root)
            results = insp.inspect_batch([it.path for it in cat.test_items])
            auroc = image_auroc(np.array([r.score for r in results]), np.array([it.is_defect for it in cat.test_items]))
            grey = np.mean([insp.preprocess.apply(load_image(it.path, sensor_bits=insp.preprocess.sensor_bits))[0].mean()
                            for it in cat.test_items])
            row = {"photos": name, "sensor_bits": insp.preprocess.sensor_bits, "image_auroc": round(float(auroc), 4),
                   "mean_input_grey": round(float(grey), 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deep-photo.json").write_text(json.dumps({"line": "synthetic, 40 good parts, 128 px", "rows": rows},
                                                        indent=2) + "\n")
    print(f"wrote {RESULTS / 'deep-photo.json'}")


if __name__ == "__main__":
    main()
