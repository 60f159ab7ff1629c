"""A PatchCore bank built from shards on Ray: per-shard coreset, then a global one over
the union. Bound checked against the single-machine (exact) coreset on the synthetic
product, same seed: image AUROC at most 0.02 lower, and the bank covers the good
patches nearly as well (covering radius, the k-center objective: the farthest any good
training patch lies from the bank, at most 10% larger; the mean distance at most 5%)."""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import ray_or_skip

ray_or_skip()
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.ray

AUROC_DROP_MAX = 0.02
RADIUS_RATIO_MAX = 1.10
MEAN_DISTANCE_RATIO_MAX = 1.05


def _inputs(folders, size):
    from lineguard.vision.imageio import list_images, load_image
    from lineguard.vision.preprocess import Preprocess
    pre = Preprocess(image_size=size)
    files = [p for f in folders for p in list_images(f)]
    return np.stack([pre.apply(load_image(p))[0] for p in files]), files


def _coverage(det, x):
    from lineguard.vision.detectors.patchcore import nearest_distance
    embed = det._patch_embedding()
    d = []
    with torch.no_grad():
        for b in det._batches(x):
            e = embed(torch.from_numpy(b))
            d.append(nearest_distance(e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]), det.memory_bank_,
                                      det.bank_sq_norms_))
    d = torch.cat(d)
    return float(d.max()), float(d.mean())


def test_sharded_bank_within_bound_of_single_machine(ray_session, synth_category):
    from lineguard.line.scale.sharded_bank import fit_sharded
    from lineguard.vision.detectors.patchcore import PatchCore
    from lineguard.vision.metrics import image_auroc
    size = 128
    train, _ = _inputs([synth_category / "train" / "good"], size)
    test, files = _inputs(sorted(p for p in (synth_category / "test").iterdir() if p.is_dir()), size)
    labels = np.array([0 if f.parent.name == "good" else 1 for f in files])

    single = PatchCore(seed=0).fit(train)
    sharded = fit_sharded(np.array_split(train, 4), ray_address=ray_session, seed=0)
    assert len(sharded.memory_bank_) == len(single.memory_bank_)   # the same bank size: a fair comparison
    assert [s["rows_seen"] for s in sharded.shards_] == [len(s) * sharded.grid_[0] * sharded.grid_[1]
                                                         for s in np.array_split(train, 4)]
    a_single = image_auroc(single.score(test)[0], labels)
    a_sharded = image_auroc(sharded.score(test)[0], labels)
    assert a_sharded >= a_single - AUROC_DROP_MAX, (a_single, a_sharded)
    (r1, m1), (r2, m2) = _coverage(single, train), _coverage(sharded, train)
    assert r2 <= RADIUS_RATIO_MAX * r1 and m2 <= MEAN_DISTANCE_RATIO_MAX * m1, ((r1, m1), (r2, m2))

    # the same shards in one process give the very same bank: Ray changes where, not what
    local = fit_sharded(np.array_split(train, 4), ray_address=None, seed=0)
    assert torch.equal(local.memory_bank_, sharded.memory_bank_)


def test_sharded_bank_reads_image_paths_on_the_workers(ray_session, synth_category):
    from lineguard.line.scale.sharded_bank import fit_sharded
    from lineguard.vision.imageio import list_images
    from lineguard.vision.preprocess import Preprocess
    files = [str(p) for p in list_images(synth_category / "train" / "good")]
    pre = Preprocess(image_size=128)
    by_path = fit_sharded([files[:20], files[20:]], ray_address=ray_session, preprocess=pre.to_dict(), seed=0)
    train, _ = _inputs([synth_category / "train" / "good"], 128)
    by_array = fit_sharded([train[:20], train[20:]], ray_address=None, seed=0)
    assert torch.equal(by_path.memory_bank_, by_array.memory_bank_)
    with pytest.raises(ValueError, match="preprocess"):
        fit_sharded([files[:20]], ray_address=None, seed=0)
