"""A .lgm from the first int8 bank search (lineguard at commit a940fd8) is not "damaged".

That lineguard kept the int8 search's query range as two numbers in the detector's
settings (``meta["feature_range"]``: one range for all features); this one keeps a range
per feature as a tensor and centres the search, so the old file was refused as "an
int8-search PatchCore file without its feature range: the file is damaged". Its hash
checks: it is whole, but its thresholds were set on scores this lineguard does not give
(the same bank, searched here, moved scores by up to 1%), so it is refused with what it is
and what to do. Checked by hand on a file that lineguard trained (`git archive a940fd8 src`,
`lineguard train ... --image-size 128`): the message below. Here the old layout is rebuilt
from a current file, resealed with a valid hash, as that lineguard wrote it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lineguard.vision import bundle
from lineguard.vision.errors import BundleError


def _old_layout(src: Path, dst: Path, keep_range: bool = True) -> Path:
    manifest, tensors, _ = bundle.load(src)
    assert manifest["detector"]["params"]["search"] == "int8"
    fr = tensors.pop("feature_range")
    if keep_range:      # as a940fd8 wrote it: (lo, hi) over every feature
        manifest["detector"]["meta"]["feature_range"] = [float(fr[0].min()), float(fr[1].max())]
    bundle.save(dst, manifest, tensors)
    return dst


def test_first_int8_search_file_is_refused_with_what_to_do(fitted_model_path, tmp_path):
    pytest.importorskip("torch")
    from lineguard.vision.inspector import Inspector
    old = _old_layout(fitted_model_path, tmp_path / "old.lgm")
    with pytest.raises(BundleError) as e:
        Inspector.load(old)
    msg = str(e.value)
    assert "damaged" not in msg
    assert "first int8 bank search" in msg and "the file is whole" in msg
    assert "Train the model again with this lineguard" in msg
    with pytest.raises(BundleError, match="first int8 bank search"):
        bundle.describe(old)        # `lineguard info` on an edge install
    env = dict(os.environ, COLUMNS="1000")
    r = subprocess.run([sys.executable, "-m", "lineguard", "info", str(old)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "first int8 bank search" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_damaged_old_file_is_still_refused_as_damaged(fitted_model_path, tmp_path):
    old = _old_layout(fitted_model_path, tmp_path / "old.lgm")
    data = bytearray(old.read_bytes())
    data[-100] ^= 0xFF                      # a flipped byte in the tensor data
    old.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="content hash does not match"):
        bundle.load(old)


def test_an_int8_file_with_no_range_at_all_is_still_damaged(fitted_model_path, tmp_path):
    pytest.importorskip("torch")
    from lineguard.vision.inspector import Inspector
    bare = _old_layout(fitted_model_path, tmp_path / "bare.lgm", keep_range=False)
    with pytest.raises(BundleError, match="damaged"):
        Inspector.load(bare)


def test_a_current_int8_file_loads(fitted_model_path):
    manifest, tensors, _ = bundle.load(fitted_model_path)
    assert np.asarray(tensors["feature_range"]).shape[0] == 2
