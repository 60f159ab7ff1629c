"""`lineguard train` says what to do about good photos the photo check doubts.

A dark, flat photo in the good folder was named ("look at ...: the photo is unlike the
other good photos ... a lamp flicker or a camera setting changed while it was taken?") but
the output never said what to do next: it is left out of the photo check's range only, and
the model still learned from it and it still counted for the threshold.
"""
from __future__ import annotations

import numpy as np
import pytest
from cli_runner import run_in_process
from PIL import Image


def test_train_names_the_odd_photo_and_the_next_step(synth_category, tmp_path):
    pytest.importorskip("torch")
    good = tmp_path / "good"
    good.mkdir()
    for f in sorted((synth_category / "train" / "good").glob("*.png")):
        (good / f.name).write_bytes(f.read_bytes())
    dark = good / "003.png"
    pixels = np.asarray(Image.open(dark)).astype(np.float32) * 0.3     # a lamp gone dim for one shot
    Image.fromarray(pixels.astype(np.uint8)).save(dark)
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "128", "--frr", "0.1", "--threads", "1",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert f"look at: {dark}: the photo is unlike the other good photos (too dark" in text
    step = text[text.index("next step: "):]
    assert step.startswith(f"next step: look at {dark}: if the lamp or camera was off when taken, take it out of "
                           "the good folder and train again"), step
    assert "add more such photos and train again" in step and "REVIEW" in step


def test_train_without_odd_photos_gives_no_next_step(synth_category, tmp_path):
    pytest.importorskip("torch")
    r = run_in_process("train", synth_category / "train" / "good", "-o", "cell.lgm", "--image-size", "128", "--frr",
                       "0.1", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "photo check:" in r.stdout and "next step" not in r.stdout + r.stderr
