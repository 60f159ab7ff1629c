"""Bounded memory for large training sets: PatchCore's streaming coreset
(``max_features_in_memory``) keeps peak memory flat where the plain fit holds every
patch feature, and finds defects as well."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from lineguard.vision.imageio import load_image  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.metrics import image_auroc  # noqa: E402

# 400 parts at 128 px: the plain fit holds 400 x 256 patches x 152 floats = 62 MB of
# features at once (plus copies); the streaming fit is allowed 8000 rows (4.9 MB).
N_PARTS, BUDGET_ROWS, BUDGET_MB = 400, 8000, 24

_FIT = """
import json, resource, sys
import numpy as np, torch
torch.set_num_threads(1)
from lineguard.vision.synth import make_part
from lineguard.vision.detectors import PatchCore
n, budget = int(sys.argv[1]), int(sys.argv[2])
base = [make_part(s, size=128)[0] for s in range(8)]
rng = np.random.default_rng(0)
imgs = np.stack([np.roll(base[i % 8], (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), (0, 1))
                 for i in range(n)])
det = PatchCore(max_features_in_memory=budget)
det.fit(imgs[:48])  # warm up: weights, activations of a full batch, allocator pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
det.fit(imgs)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"growth_mb": after - before, "bank": list(det.memory_bank_.shape),
                  "features_mb": n * det.grid_[0] * det.grid_[1] * det.memory_bank_.shape[1] * 4 / 1e6}))
"""


@pytest.mark.slow
def test_streaming_fit_stays_under_a_fixed_memory_budget():
    r = subprocess.run([sys.executable, "-c", _FIT, str(N_PARTS), str(BUDGET_ROWS)], capture_output=True,
                       text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["features_mb"] > 2 * BUDGET_MB          # a naive bank would not fit the budget
    assert res["growth_mb"] < BUDGET_MB, res
    # about the plain fit's bank (parts held out for position statistics do not enter it)
    assert 0.75 * N_PARTS * 256 * 0.02 <= res["bank"][0] <= N_PARTS * 256 * 0.02


def test_streaming_coreset_finds_defects_like_the_plain_fit(synth_category, fitted_inspector):
    streamed = Inspector.fit(synth_category / "train" / "good", detector="patchcore", image_size=128,
                             false_reject_rate=0.1, seed=0, max_features_in_memory=2000)
    n_plain = fitted_inspector.detector.memory_bank_.shape[0]
    assert 0.75 * n_plain <= streamed.detector.memory_bank_.shape[0] <= n_plain
    files = sorted(synth_category.glob("test/*/*.png"))
    labels = np.array([f.parent.name != "good" for f in files], dtype=int)
    x = np.stack([fitted_inspector.preprocess.apply(load_image(f))[0] for f in files])
    plain = image_auroc(fitted_inspector.detector.score(x)[0], labels)
    stream = image_auroc(streamed.detector.score(x)[0], labels)
    assert stream >= plain - 0.03, (stream, plain)
