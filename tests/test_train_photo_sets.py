"""`lineguard train` says what is wrong with the good photos as a set, not only photo by photo.

Three cases a new product's engineer met in silence or in the wrong words:
- good photos of two shapes (half 128 x 128, half 256 x 192) were learnt as one range of
  width/height, 1.0-1.33: train said nothing, half the photos were stretched, and a camera
  switched between the two shapes (or to 7:6, between them) was no longer named. The
  shapes are now kept apart and train warns, naming them and the photos to move;
- 40 copies of one photo were refused with "calibration needs good parts from at least 2
  groups (parts, lots)", though no --group-by was given: now refused as copies;
- 5 photos wrote a model with only a "note" on its promise, where README step 1 asks for 30
  to 200: now a warning says what so few can and cannot promise (still exit 0: a trial).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from cli_runner import run_in_process
from PIL import Image

from lineguard.vision import photo_check
from lineguard.vision.preprocess import Preprocess


def _flat(text: str) -> str:
    return " ".join(text.split())


def _geo(w, h):
    return Preprocess(image_size=64).apply(np.zeros((h, w, 3), np.uint8))[1]


def _goods(synth_category, n):
    return sorted((synth_category / "train" / "good").glob("*.png"))[:n]


def test_two_shapes_are_kept_apart_and_a_shape_between_them_is_named():
    learnt = photo_check.learn_aspect([(128, 128)] * 20 + [(256, 192)] * 20)
    assert photo_check.aspect_issues(_geo(128, 128), learnt) == []
    assert photo_check.aspect_issues(_geo(512, 384), learnt) == []
    # 7:6 lies between 1:1 and 4:3: a range learnt it as good, a camera of neither shape
    assert photo_check.aspect_issues(_geo(224, 192), learnt) == [
        "photo 224 x 192 (1.17:1); the model learnt from 128 x 128 (1:1) and 256 x 192 (4:3): another camera or "
        "its settings changed"]
    assert photo_check.shapes_said(learnt) == "1:1 x20 (128 x 128), 4:3 x20 (256 x 192)"
    # a model from before keeps the range alone, and is read as it was
    old = {"range": [1.0, 1.33333], "size": [128, 128]}
    assert photo_check.aspect_issues(_geo(224, 192), old) == []
    assert photo_check.aspect_issues(_geo(300, 128), old) != []
    # one shape, or crops a few % apart: the range alone, as before (no "shapes": nothing to say)
    assert photo_check.learn_aspect([(256, 256)] * 5) == {"range": [1.0, 1.0], "size": [256, 256]}
    assert "shapes" not in photo_check.learn_aspect([(640, 480)] * 3 + [(600, 480)])


def test_train_warns_of_photos_of_two_shapes_and_names_the_fewer(synth_category, tmp_path):
    pytest.importorskip("torch")
    good = tmp_path / "good"
    good.mkdir()
    for i, f in enumerate(_goods(synth_category, 12)):
        im = Image.open(f)
        (im.resize((96, 72)) if i in (1, 4, 7, 10) else im.resize((64, 64))).save(good / f.name)
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "64", "--frr", "0.1", "--threads", "1",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    err = _flat(r.stderr)
    assert "warning: the good photos have 2 shapes, 1:1 x8 (64 x 64), 4:3 x4 (96 x 72)" in err, err
    assert "All were learnt as one model, stretched to one input of 64x64" in err
    assert f"move the others out of the good folder (4:3: {good / '001.png'}, {good / '004.png'}" in err
    from lineguard.vision.inspector import Inspector
    insp = Inspector.load(tmp_path / "cell.lgm")
    wide = np.asarray(Image.open(good / "000.png").resize((84, 72)))       # 7:6, between the two
    assert any("another camera" in i for i in insp.inspect(wide).photo_issues)


def test_copies_of_one_photo_are_refused_as_copies(synth_category, tmp_path):
    pytest.importorskip("torch")
    same = tmp_path / "same"
    same.mkdir()
    one = _goods(synth_category, 1)[0]
    for i in range(12):
        shutil.copy(one, same / f"{i:03d}.png")
    r = run_in_process("train", same, "-o", "cell.lgm", "--image-size", "64", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    err = _flat(r.stderr)
    assert "groups" not in err, err
    assert (f"error: all 12 good photos are copies of one photo (the same content: {same / '000.png'} = "
            f"{same / '001.png'} = {same / '002.png'} = ...): a model needs photos of different good parts") in err
    assert not (tmp_path / "cell.lgm").exists()
    # two different photos among the copies: still too few, and said how many there are
    shutil.copy(_goods(synth_category, 2)[1], same / "005.png")
    r = run_in_process("train", same, "-o", "cell.lgm", "--image-size", "64", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert "error: the 12 good photos are copies of only 2 different photos" in _flat(r.stderr)


def test_few_good_photos_warn_what_the_model_cannot_promise(synth_category, tmp_path):
    pytest.importorskip("torch")
    good = tmp_path / "good"
    good.mkdir()
    for f in _goods(synth_category, 5):
        Image.open(f).resize((64, 64)).save(good / f.name)
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "64", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr          # a trial on a few photos is legitimate
    err = _flat(r.stderr)
    assert ("warning: only 5 good photos, where step 1 of the README asks for 30 to 200: a trial, not a model for "
            "the line. From 5 good parts no threshold can promise under 16.67% of good parts judged NG (1 in 6), "
            "not the 1.00% asked (that needs 99)") in err, err
    assert "Add photos of at least 25 more different good parts and train again" in err
    assert "warning" not in r.stdout
    # copies count once: with two copies each of four of them, 13 photos of 5 parts
    for i, f in enumerate(_goods(synth_category, 4) * 2):
        Image.open(f).resize((64, 64)).save(good / f"copy{i}.png")
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "64", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("warning: 13 good photos, but only 5 different ones (8 copies, named under 'look at')"
            in _flat(r.stderr)), r.stderr
    # from the README's 30 different photos up (copies beside them): no warning
    for f in _goods(synth_category, 30):
        Image.open(f).resize((64, 64)).save(good / f.name)
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "64", "--frr", "0.1", "--threads", "1",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in r.stdout + r.stderr, r.stderr
