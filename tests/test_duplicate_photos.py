"""The same photo twice in the good folder (a camera saving twice, a copy: KolektorSDD's
train/good has 14 such pairs) is noticed: the twins share a cross-fitting group, so
neither is scored against its copy (two copies of one bad part hid each other, and good
twins set the threshold too low), and train names them."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_in_process

pytest.importorskip("torch")

from lineguard.vision.imageio import load_image, save_png_atomic  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.synth import add_defect  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def good_with_a_copied_bad_part(synth_category, tmp_path_factory) -> Path:
    """16 good photos, one bad part saved twice (byte-identical) among them."""
    good = tmp_path_factory.mktemp("twins") / "good"
    good.mkdir()
    files = sorted((synth_category / "train" / "good").glob("*.png"))[:16]
    for f in files:
        shutil.copyfile(f, good / f.name)
    bad, _ = add_defect(load_image(files[0]), "missing_coating", np.random.default_rng(3))
    save_png_atomic(bad, good / "zz_bad_a.png")
    shutil.copyfile(good / "zz_bad_a.png", good / "zz_bad_b.png")
    return good


def test_twins_are_found_by_their_print():
    from lineguard.vision.inspector import duplicate_photos
    assert duplicate_photos(["a", "b", "a", "c", "b", "a"]) == [[0, 2, 5], [1, 4]]
    assert duplicate_photos(["a", "b", "c"]) == []


def test_twins_join_one_group_even_across_the_groups_given():
    from lineguard.vision.inspector import _join_twins
    # each photo alone but the twins
    assert _join_twins(None, [[0, 2]], 3) == ["photo#0", "photo#1", "photo#0"]
    # a copy filed under another part: the two parts become one group
    labels = _join_twins(["p1", "p1", "p2", "p3"], [[1, 2]], 4)
    assert labels[0] == labels[1] == labels[2] and labels[3] == "p3"
    assert _join_twins(["p1", "p2"], [], 2) == ["p1", "p2"]


def test_two_copies_of_a_bad_part_no_longer_hide_each_other(good_with_a_copied_bad_part):
    insp = Inspector.fit(good_with_a_copied_bad_part, image_size=SIZE, false_reject_rate=0.1)
    # scored against a model without its copy, each copy scores as the bad part it is
    assert sorted(Path(s["image"]).name for s in insp.info["suspect_good"]) == ["zz_bad_a.png", "zz_bad_b.png"]
    names = [[Path(n).name for n in ix] for ix in insp.info["duplicate_photos"]]
    assert names == [["zz_bad_a.png", "zz_bad_b.png"]]
    # the twins are one part in the threshold's stated bound, not two
    assert insp.calibration["design_effect"] > 1.0
    assert "n_groups" not in insp.calibration      # no --group-by given


def test_holdout_keeps_twins_on_one_side(good_with_a_copied_bad_part):
    from lineguard.vision.inspector import photo_prints
    twin = photo_prints(Inspector.fit(good_with_a_copied_bad_part, image_size=SIZE, holdout=0.25)
                        .preprocess.load(good_with_a_copied_bad_part / "zz_bad_a.png")[0][None])[0]
    for seed in range(6):
        insp = Inspector.fit(good_with_a_copied_bad_part, image_size=SIZE, holdout=0.25, seed=seed)
        # both copies learnt, or both held out to set the threshold: never one scored against the other
        assert insp.info["learnt_photos"].count(twin) in (0, 2), seed


def test_train_names_the_twins(good_with_a_copied_bad_part, tmp_path):
    r = run_in_process("train", good_with_a_copied_bad_part, "-o", "m.lgm", "--image-size", SIZE, "--frr", "0.1",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = " ".join((r.stdout + r.stderr).split())
    good = good_with_a_copied_bad_part
    assert f"look at: {good / 'zz_bad_a.png'} = {good / 'zz_bad_b.png'}: the same photo" in out
    # the wrote line counts the copy as a photo, not as a part of its own
    assert "18 photos learned: 17 different parts and 1 copy," in out, out


def test_recalibrate_counts_copies_of_a_photo_once(fitted_model_path, synth_category, tmp_path):
    """A walk: 30 good photos given three times were 90 parts to `recalibrate`, promising 1.10%
    on average where 30 parts give 3.23%; train counted its copies once, recalibrate did not."""
    given = tmp_path / "given"
    given.mkdir()
    photos = sorted((synth_category / "test" / "good").glob("*.png"))
    for f in photos:
        for copy in "abc":
            shutil.copyfile(f, given / f"{copy}{f.name}")
    r = run_in_process("recalibrate", fitted_model_path, given, "-o", tmp_path / "r.lgm", "--frr", "0.2")
    assert r.returncode == 0, r.stdout + r.stderr
    out = " ".join((r.stdout + r.stderr).split())
    n = len(photos)
    assert f"its {3 * n} photos are {n} different ones: copies count once" in out, out
    c = Inspector.load(tmp_path / "r.lgm").calibration
    assert c["distinct_calibration_parts"] == n and c["copies_counted_once"] == 2 * n
    from lineguard.vision.calibration import conformal_threshold
    alone = conformal_threshold(np.arange(n, dtype=float), 0.2)[1]["guaranteed_false_reject_rate"]
    assert c["guaranteed_false_reject_rate"] >= alone - 0.02
