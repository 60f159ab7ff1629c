"""A derived product for checking shape rules: an MVTec-layout product's photos (and
masks) cut to their middle rows, e.g. KolektorSDD's 500x1254 commutators to 500x850, a
1.7:1 part between the near-square tiles (1.16:1) and the commutators (2.5:1). Defect
photos whose defect leaves the cut are dropped (on the commutators at 850 rows: none).

    python -m benchmarks.crop_product ../shared/datasets/kolektorsdd/commutator /tmp/commutator17 --rows 850

The output's folder name is the product name in detection_study's cache, so give it a
new one (not "commutator"). Photos are re-encoded (JPEG quality 95), train and test alike.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def middle_rows(im: Image.Image, rows: int) -> Image.Image:
    y0 = max(0, (im.size[1] - rows) // 2)
    return im.crop((0, y0, im.size[0], min(im.size[1], y0 + rows)))


def crop_product(src: Path, dst: Path, rows: int) -> tuple[int, int]:
    """Write the cut product to ``dst``; (defect photos kept, dropped)."""
    if dst.exists():
        shutil.rmtree(dst)
    kept = dropped = 0
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if p.is_dir() or p.suffix.lower() not in (".jpg", ".jpeg", ".png") or rel.parts[0] == "ground_truth":
            continue
        if rel.parts[0] == "test" and rel.parts[1] != "good":
            mask = src / "ground_truth" / rel.parts[1] / f"{p.stem}_mask.png"
            cut_mask = middle_rows(Image.open(mask), rows)
            if np.asarray(cut_mask).max() == 0:
                dropped += 1
                continue
            (dst / "ground_truth" / rel.parts[1]).mkdir(parents=True, exist_ok=True)
            cut_mask.save(dst / "ground_truth" / rel.parts[1] / mask.name)
            kept += 1
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        cut = middle_rows(Image.open(p), rows)
        cut.save(out, quality=95) if p.suffix.lower() in (".jpg", ".jpeg") else cut.save(out)
    return kept, dropped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--rows", type=int, default=850)
    a = ap.parse_args()
    kept, dropped = crop_product(a.src, a.dst, a.rows)
    print(f"wrote {a.dst}: {kept} defect photos kept, {dropped} dropped (their defect left the cut)")


if __name__ == "__main__":
    main()
