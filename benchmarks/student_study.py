"""A student network beside the bank: STFPM-style distillation (issue #8, "What to build" 3:
"a feature adaptor or student network trained on good parts only ... STFPM with Lite0 as
teacher"; the SimpleNet-style adaptor was tried in discriminator_study.py).

The product's backbone is the teacher (frozen, ImageNet weights: Lite0 for magnetic tiles,
MobileNetV2 for the commutators' quality profile). A randomly initialised student learns on
good parts only to reproduce the teacher's stage 2 and stage 4 maps (each position's
feature vector L2-normalised; loss 0.5 * squared distance, as in STFPM, Wang et al. 2021):
``--student same`` is the teacher's architecture (STFPM's choice), ``--student small`` a
plain six-layer convolutional network with the same strides, several times cheaper to
train on a CPU. Where a part is unlike the good ones the student has never
learned to follow the teacher, so its error is the anomaly map. Scored, from the same parts:

- PatchCore as the product runs it (nearest bank row; the bank of the same parts);
- the student alone: its errors on stage 2 and stage 4 multiplied (STFPM) or added;
- both fused: each grid map over its mean and spread on left-out good parts (parts neither
  the bank nor the student saw), summed with the student weighted 1 or 0.5.

Every map is then upsampled and smoothed (sigma 4) as the product does, and the image
score is its peak. The bank and the student learn from the same 90% of the training parts
(the synthetic-selection split; KolektorSDD's photos by commutator); the left-out parts
only set the fusion's scales. Image AUROC and escapes at 1% false rejects on test/
(validation half / report half / full set), pixel AUROC and AUPRO on the full set at the
model input. The student is scored after several epoch counts (one training run).

    python -m benchmarks.student_study [--datasets magnetic_tile kolektorsdd] [--epochs 10 30 60] \
        [--student small|same]

Writes benchmarks/results/study-student.json (one key per product and student). Training
runs on the study machine's CPU cores (Adam, learning rate 1e-3, batch 16, no augmentation);
times are printed.

Outcome (2026-12-02, README "Tried since"): on magnetic tiles every student and every fusion
is below PatchCore on the validation half (small student 0.830 after 60 epochs, fused 0.960-
0.973 against 0.974; the same-architecture student 0.779 after 15). On the commutators the
student localises better than the bank (pixel AUROC 0.958 vs 0.928, AUPRO 0.785 vs 0.691)
and the fusion adds up to 0.009 validation AUROC at the same validation escapes. One
product only: nothing changed in the product.
"""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from benchmarks.shift_study import judge, load
from benchmarks.synthetic_selection_study import ROOT, bank_distances, build_bank, run_each, study_args

OUT = ROOT / "benchmarks" / "results" / "study-student.json"
SHARE = 0.9          # of the training parts, for the bank and the student; the rest set scales
BATCH = 16
SEED = 0


def _inputs(images: np.ndarray, mean, std):
    import torch
    t = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _small_student(teacher_channels: tuple[int, int]):
    """A plain convolutional student (3x3 convolutions, batch norm, ReLU) with the teacher's
    strides: stage 2's map at 1/8 of the input, stage 4's at 1/16. Dense 3x3 convolutions
    train several times faster on a CPU than the teacher's depthwise blocks."""
    from torch import nn

    def block(i: int, o: int, stride: int):
        return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class Small(nn.Module):
        def __init__(self, c2: int, c4: int, w: int = 64):
            super().__init__()
            self.to_stage2 = nn.Sequential(block(3, 32, 2), block(32, w, 2), block(w, w, 2), block(w, w, 1))
            self.head2 = nn.Conv2d(w, c2, 1)
            self.to_stage4 = nn.Sequential(block(w, 2 * w, 2), block(2 * w, 2 * w, 1))
            self.head4 = nn.Conv2d(2 * w, c4, 1)

        def forward(self, x):
            a = self.to_stage2(x)
            return [self.head2(a), self.head4(self.to_stage4(a))]
    return Small(*teacher_channels)


def _errors(teacher_maps: list, student_maps: list) -> list:
    """Per stage, (N, h, w): half the squared distance of the L2-normalised feature vectors."""
    from torch.nn import functional as F
    return [0.5 * (F.normalize(t, dim=1) - F.normalize(s, dim=1)).pow(2).sum(1)
            for t, s in zip(teacher_maps, student_maps)]


def _teacher_maps(teacher, images: np.ndarray, mean, std) -> list:
    """The teacher's stage 2 and stage 4 maps of every image (computed once: they do not change)."""
    import torch
    with torch.no_grad():
        return [torch.cat(t) for t in zip(*(teacher(_inputs(images[i:i + BATCH], mean, std))
                                             for i in range(0, len(images), BATCH)))]


def _student_grids(student, targets: list, images: np.ndarray, mean, std) -> dict[str, Any]:
    """The student's error grids against the teacher's maps ``targets``, at stage 2's
    resolution: stages multiplied and added."""
    import torch
    from torch.nn import functional as F
    student.eval()
    prod, add = [], []
    with torch.no_grad():
        for i in range(0, len(images), BATCH):
            x = _inputs(images[i:i + BATCH], mean, std)
            e2, e4 = _errors([t[i:i + BATCH] for t in targets], student(x))
            e4 = F.interpolate(e4[:, None], size=e2.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            prod.append(e2 * e4)
            add.append(e2 + e4)
    return {"product": torch.cat(prod), "sum": torch.cat(add)}


def _maps(grids, size) -> np.ndarray:
    from lineguard.vision.detectors.base import smooth_and_upsample
    return smooth_and_upsample(grids, size, 4.0).numpy()


def run(name: str, epochs: list[int], kind: str = "small") -> dict[str, Any]:
    import torch

    from lineguard.vision.backbones import create_backbone
    ctx = load(name)
    size, mean, std, teacher = ctx["size"], ctx["mean"], ctx["std"], ctx["bb"]
    picked, held = ctx["split"](int(round(ctx["n_train"] * SHARE)))
    train, left_out = ctx["photos"](picked), ctx["photos"](held)
    out: dict[str, Any] = {"size": list(size), "backbone": ctx["backbone"], "parts": len(picked),
                           "left_out_parts": len(held), "settings": []}

    def record(setting: str, grids, **extra: Any) -> None:
        r = {"setting": setting, **extra, **judge(_maps(grids, size), ctx)}
        print(json.dumps(r), flush=True)
        out["settings"].append(r)

    t0 = time.perf_counter()
    bank = build_bank(train, teacher, mean, std)
    pc_test = bank_distances(ctx["test"], teacher, mean, std, bank)
    pc_held = bank_distances(left_out, teacher, mean, std, bank)
    record("PatchCore (today)", pc_test, seconds=round(time.perf_counter() - t0, 1))
    z_pc = (pc_test - pc_held.mean()) / pc_held.std()   # the bank's side of the fusion, once

    x_train = _inputs(train, mean, std)
    targets = _teacher_maps(teacher, train, mean, std)
    test_targets = _teacher_maps(teacher, ctx["test"], mean, std)
    held_targets = _teacher_maps(teacher, left_out, mean, std)
    torch.manual_seed(SEED)
    student = (create_backbone(ctx["backbone"], ["stage2", "stage4"], pretrained=False) if kind == "same"
               else _small_student((targets[0].shape[1], targets[1].shape[1])))
    out["student"] = kind
    opt = torch.optim.Adam(student.parameters(), lr=1e-3, weight_decay=1e-5)
    rng = np.random.default_rng(SEED)
    t_train, done = 0.0, 0
    for goal in sorted(epochs):
        t0 = time.perf_counter()
        losses = []
        for _ in range(done, goal):
            student.train()
            for b in np.array_split(rng.permutation(len(x_train)), max(1, len(x_train) // BATCH)):
                bt = torch.from_numpy(b)
                err = _errors([t[bt] for t in targets], student(x_train[bt]))
                loss = sum(e.mean() for e in err)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        t_train += time.perf_counter() - t0
        done = goal
        st_test = _student_grids(student, test_targets, ctx["test"], mean, std)
        st_held = _student_grids(student, held_targets, left_out, mean, std)
        common = {"epochs": goal, "train_seconds": round(t_train, 1),
                  "last_epoch_loss": round(float(np.mean(losses[-max(1, len(x_train) // BATCH):])), 5)}
        for rule in ("product", "sum"):
            record(f"student, stages {rule}", st_test[rule], **common)
        # fusion: each grid over its mean and spread on the left-out good parts
        z_st = (st_test["sum"] - st_held["sum"].mean()) / st_held["sum"].std()
        for weight in (1.0, 0.5):
            record(f"PatchCore + {weight} x student (z-scored on left-out parts)", z_pc + weight * z_st, **common)
    return out


def main() -> None:
    def extend(ap) -> None:
        ap.add_argument("--epochs", type=int, nargs="+", default=[10, 30, 60],
                        help="score the student after these epochs")
        ap.add_argument("--student", choices=("small", "same"), default="small",
                        help="a plain convolutional student, or the teacher's architecture (STFPM)")
    args = study_args(__doc__, extend=extend)
    run_each(OUT, args.datasets, lambda name: run(name, args.epochs, args.student), f"-{args.student}")


if __name__ == "__main__":
    main()
