"""Three small things the command line says, said so a reader cannot take them the wrong way:

- a model input of another shape than square: train and info give it height first (as
  --image-size takes it and the model's settings keep it) while inspect --json gives a
  photo's size width first; each now says which is which;
- inspect --json's timings_ms are the batch's average per part: the JSON says so;
- the "far above the other good parts" notes, once written twice (train, recalibrate):
  one function, each caller's words as its parameters."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from cli_runner import run_in_process

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def wide(synth_category, tmp_path_factory):
    """(folder, model): twelve 2:1 parts, 256 wide and 128 high, and the fast profile's model
    of them, whose input keeps that shape (128x256, height first)."""
    from PIL import Image
    root = tmp_path_factory.mktemp("wide")
    photos = root / "good"
    photos.mkdir()
    for p in sorted((synth_category / "train" / "good").glob("*.png"))[:12]:
        Image.open(p).resize((256, 128)).save(photos / p.name)
    r = run_in_process("train", photos, "-o", root / "wide.lgm", "--frr", 0.2, "--threads", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    return photos, root / "wide.lgm", r


def test_train_and_info_say_which_side_of_the_model_input_comes_first(wide):
    photos, model, trained = wide
    # the words as before (--image-size takes HEIGHTxWIDTH), then the same in width and height
    assert ("model input 128x256 (height x width; area224: the good photos' shape): 256 px wide, 128 px high; "
            "--image-size sets another") in trained.stdout
    r = run_in_process("info", model)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["preprocess"]["image_size"] == [128, 256]      # the stored settings: unchanged
    assert "input 128x256 (height x width)" in r.stderr


def test_inspect_json_labels_the_photo_size_and_says_its_timings_are_a_batch_average(wide):
    photos, model, _ = wide
    parts = sorted(photos.glob("*.png"))[:3]
    r = run_in_process("inspect", model, *parts, "--json", "--batch-size", 2, "--threads", 1)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 3
    for row in rows:
        # the photo's size: width first, and now named so
        assert row["image_size"] == [256, 128] and (row["image_width"], row["image_height"]) == (256, 128)
        assert set(row["timings_ms"]) == {"preprocess", "model", "postprocess", "total"}     # the old keys
    # the first two parts were judged together: each carries the batch's average per part
    assert rows[0]["timings_ms"] == rows[1]["timings_ms"]
    for row in rows[:2]:
        assert row["timings_batch_parts"] == 2
        assert row["timings_ms_are"] == "the average per part over its batch of 2 parts judged together"
    # the third alone in its batch: its own
    assert rows[2]["timings_batch_parts"] == 1 and rows[2]["timings_ms_are"] == "this part's own"


def _far_above(capsys, c, then, where):
    from lineguard.cli import core
    capsys.readouterr()
    core._say_far_above(c, c["suspect_good"], 2.5, where, then)
    return capsys.readouterr().err.splitlines()


def test_the_far_above_notes_are_one_function_in_each_callers_words(capsys):
    c = {"suspect_cut": 1.25, "threshold_without_suspects": 1.5,
         "suspect_good": [{"image": "good/017.png", "score": 3.0}]}
    look = "look at: good/017.png scores 3, far above the other good parts (> 1.25): a bad or odd part {}?"
    without = "note: if those parts are bad, the threshold without them would be 1.5000 instead of 2.5000: {}"
    # train's words (and eval's, when it trains)
    assert _far_above(capsys, c, "train again with --exclude-suspects", "in the good folder") == [
        look.format("in the good folder"), without.format("train again with --exclude-suspects")]
    # recalibrate's; and where the caller left them out or kept them as asked, no threshold line
    assert _far_above(capsys, c, "recalibrate without them", "among them") == [
        look.format("among them"), without.format("recalibrate without them")]
    assert _far_above(capsys, c, None, "among them") == [look.format("among them")]
    # train's notes come from it
    from lineguard.cli import core
    insp = SimpleNamespace(calibration=c, threshold=2.5, info={"suspect_good": c["suspect_good"]})
    capsys.readouterr()
    core._say_good_folder_notes(insp, "train again with --exclude-suspects")
    assert capsys.readouterr().err.splitlines() == [look.format("in the good folder"),
                                                    without.format("train again with --exclude-suspects")]


@pytest.mark.parametrize("option, value, said", [
    ("--frr", 0.5, "0.5 is 50% of good parts, more than a line can scrap: for 0.5%, give 0.005"),
    ("--review-rate", 1, "1 is a fraction of good parts and lies from 0 (none) to below 1: 0.01 for 1% "
                         "(for 1%, give 0.01)"),
])
def test_a_rate_typed_as_a_percentage_is_refused_saying_the_fraction(tmp_path, option, value, said):
    """Walk: `train --frr 0.5` trained a model rejecting half the good parts without a word
    (the station's retrain refuses it), and `--review-rate 1` had no "0.01 for 1%" hint."""
    r = run_in_process("train", tmp_path, "-o", tmp_path / "m.lgm", option, value)
    assert r.returncode == 2 and said in " ".join((r.stdout + r.stderr).split()), r.stdout + r.stderr
    assert not (tmp_path / "m.lgm").exists()


def test_an_empty_review_band_says_how_many_good_parts_it_needs(synth_category, tmp_path):
    """Walk: train's note said "with few held-out parts, try a larger --review-rate": no
    number, and no part is held out under cross-fitting (recalibrate said how many)."""
    r = run_in_process("train", synth_category / "train" / "good", "-o", tmp_path / "m.lgm", "--frr", 0.2,
                       "--review-rate", 0.01, "--threads", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    out = " ".join((r.stdout + r.stderr).split())
    assert "the review band is empty (the review threshold is at the reject threshold): " in out, out
    assert ("a 1.00% band over 40 good parts is less than one part's rank above the threshold: give a larger "
            "--review-rate (at least 2.44%)") in out, out
    assert "held-out" not in out
