"""A recalibration on photos the photo check doubts for their colour or shape is said.

A walk: `recalibrate` on the line's good photos with red and blue swapped (a camera's colour
order changed) wrote "threshold 19.16 -> 24.25" with no word, though every one of those photos
is judged REVIEW at the line: the batch's coverage counted only brightness, contrast and focus
doubts, not colour and shape, which `inspect` doubts too.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from cli_runner import run_in_process


def _swapped(src, dst):
    dst.mkdir()
    for f in sorted(src.glob("*.png")):
        a = np.asarray(Image.open(f).convert("RGB"))
        Image.fromarray(np.ascontiguousarray(a[:, :, ::-1])).save(dst / f.name)


def test_a_recalibration_on_photos_of_another_colour_says_the_check_doubts_them(fitted_model_path, fitted_inspector,
                                                                             synth_category, tmp_path):
    assert fitted_inspector.info.get("photo_cast"), "the synthetic line's model knows its photos' colour balance"
    _swapped(synth_category / "test" / "good", tmp_path / "bgr")
    r = run_in_process("inspect", fitted_model_path, tmp_path / "bgr")
    assert " 0 OK" in r.stdout and "REVIEW" in r.stdout, r.stdout        # every one doubted at the line
    r = run_in_process("recalibrate", fitted_model_path, tmp_path / "bgr", "-o", tmp_path / "out.lgm",
                       "--frr", "0.2", "--narrow-ok")
    n = len(list((tmp_path / "bgr").glob("*.png")))
    assert f"the photo check doubts {n} of these {n} photos" in r.stderr, r.stdout + r.stderr
