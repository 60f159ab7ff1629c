"""A colour photo of another colour balance than the good photos is said, not judged in silence.

A tinted product variant, or a lamp whose colour changed (a warm LED put in place of a
white one), went NG on every part with nothing said: brightness, contrast and focus stayed
in range and the colour check only told grey from colour. A colour model now keeps its good
photos' colour balance (info ``photo_cast``), and a photo outside it is a photo issue
("colour cast: photo warmer ..."): the part goes to REVIEW, with advice for the alarm.
Defects and good parts of the same product are not called a cast; models from before are
not checked."""
from __future__ import annotations

import numpy as np
import pytest

from lineguard.vision import photo_check
from lineguard.vision.imageio import load_image
from lineguard.vision.result import Verdict
from lineguard.vision.synth import DEFECT_TYPES, make_part


def _tint(a, k=(1.15, 1.0, 0.87)):
    """A photo as a warmer lamp (or a tinted variant) shows it: each channel times a gain."""
    return np.clip(a.astype(np.float32) * np.array(k, np.float32) + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def parts():
    good = np.stack([make_part(s, 64)[0] for s in range(24)])
    held_out = [make_part(s, 64)[0] for s in range(100, 110)]
    defects = [make_part(100 + i, 64, defect=k)[0] for i, k in enumerate(DEFECT_TYPES * 2)]
    return good, held_out, defects


def test_a_tinted_photo_is_named_a_colour_cast_and_good_and_defect_parts_are_not(parts):
    good, held_out, defects = parts
    cast = photo_check.learn_cast(good)
    assert cast is not None and cast["n"] == len(good) and set(photo_check.CAST_AXES) <= set(cast)
    for a in held_out + defects:        # the same product: good or defective, not another colour
        assert photo_check.colour_issues(a, "colour", cast) == []
    for a in held_out:
        warm = photo_check.colour_issues(_tint(a), "colour", cast)
        assert len(warm) == 1 and warm[0].startswith("colour cast: photo warmer (redder, yellower) than the good "
                                                     "photos: red/blue "), warm
        assert "lamp's colour changed" in warm[0] and "white balance" in warm[0] and "variant" in warm[0]
        assert photo_check.colour_issues(_tint(a, (0.87, 1.0, 1.15)), "colour", cast)[0].startswith(
            "colour cast: photo bluer (cooler)")
        assert photo_check.colour_issues(_tint(a, (1.0, 1.15, 1.0)), "colour", cast)[0].startswith(
            "colour cast: photo greener")
        # a dimmer or brighter lamp of the same colour is the brightness range's to say, not a cast
        assert photo_check.colour_issues(_tint(a, (0.7, 0.7, 0.7)), "colour", cast) == []


def test_the_band_is_said_as_the_message_names_it(parts):
    cast = photo_check.learn_cast(parts[0])
    lo, hi = cast["red_blue"][:2]
    said = photo_check.colour_issues(_tint(parts[1][0]), "colour", cast)[0]
    assert f"allowed {lo:.3g}-" in said
    assert photo_check.cast_said(cast).startswith(f"red/blue {lo:.3g}-{hi:.3g}, green/(red, blue) ")


def test_grey_models_mixed_photos_and_models_from_before_get_no_colour_balance(parts):
    good = parts[0]
    grey = np.repeat(good.mean(axis=3, keepdims=True).astype(np.uint8), 3, axis=3)
    assert photo_check.learn_cast(grey) is None                 # a grey model names any colour photo already
    assert photo_check.learn_cast(np.concatenate([good, grey[:4]])) is None      # mixed: not checked
    tinted = _tint(parts[1][0])
    assert photo_check.colour_issues(tinted, "colour") == []     # a model from before: nothing said
    assert photo_check.colour_issues(tinted, "colour", None) == []
    # a grey photo shown to a colour model is named grey, once, not a cast as well
    said = photo_check.colour_issues(grey[0], "colour", photo_check.learn_cast(good))
    assert len(said) == 1 and said[0].startswith("greyscale photo")


def test_a_few_odd_good_photos_do_not_widen_the_band_but_a_variant_among_them_does(parts):
    good = parts[0]
    one_odd = np.concatenate([good, _tint(good[:1], (1.5, 1.0, 0.7))])
    cast = photo_check.learn_cast(one_odd)
    assert cast["left_out"] == 1 and cast["n"] == len(good)
    assert photo_check.colour_issues(_tint(parts[1][0]), "colour", cast)     # still flagged
    # half the good photos of a tinted variant: the band holds both
    both = photo_check.learn_cast(np.concatenate([good, _tint(good)]))
    assert both["left_out"] == 0
    assert photo_check.colour_issues(_tint(parts[1][0]), "colour", both) == []


def test_the_photo_alarm_has_advice_for_a_colour_cast(parts):
    said = photo_check.colour_issues(_tint(parts[1][0]), "colour", photo_check.learn_cast(parts[0]))[0]
    assert photo_check.issue_kind(said) == "colour cast"
    advice = photo_check.advice([said])
    assert len(advice) == 1 and "white balance" in advice[0] and "recalibrate" in advice[0]


def _good(category):
    return [np.asarray(load_image(p)) for p in sorted((category / "test" / "good").glob("*.png"))]


def test_a_warmer_lamp_sends_good_parts_to_review_with_the_cast_named(fitted_inspector, synth_category):
    from lineguard.vision.inspector import Inspector
    insp = fitted_inspector
    assert insp.info["photo_colour"] == "colour" and insp.info["photo_cast"]["n"] > 0
    good = _good(synth_category)[:4]
    for r in insp.inspect_batch(good):
        assert not any(i.startswith("colour cast") for i in r.photo_issues)
    warm = insp.inspect_batch([_tint(a) for a in good])
    for r in warm:
        assert any(i.startswith("colour cast: photo warmer") for i in r.photo_issues), r.photo_issues
        assert r.verdict is Verdict.REVIEW
    # a model from before: no colour balance, nothing said, no error
    old = Inspector(insp.detector, insp.preprocess, insp.calibration,
                    {k: v for k, v in insp.info.items() if k != "photo_cast"})
    assert not any(i.startswith("colour cast") for r in old.inspect_batch([_tint(a) for a in good])
                   for i in r.photo_issues)


def test_the_model_file_and_the_export_carry_it_and_recalibrating_learns_it_again(fitted_inspector,
                                                                                  fitted_model_path,
                                                                                  synth_category, tmp_path):
    from lineguard.vision.inspector import Inspector
    insp = Inspector.load(fitted_model_path)
    assert insp.info["photo_cast"] == fitted_inspector.info["photo_cast"]
    warm = [_tint(a) for a in _good(synth_category)]
    # a warm lamp fitted for good: --photo-range learns its colour
    insp.recalibrate(warm, photo_range=True)
    assert insp.info["photo_cast"]["red_blue"][0] > fitted_inspector.info["photo_cast"]["red_blue"][1]
    assert not any(i.startswith("colour cast") for r in insp.inspect_batch(warm[:3]) for i in r.photo_issues)
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    path = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, path)
    edge = Inspector.load(path)
    assert edge.info["photo_cast"] == fitted_inspector.info["photo_cast"]
    assert all(any(i.startswith("colour cast: photo warmer") for i in r.photo_issues)
               for r in edge.inspect_batch(warm[:3]))
    # an exported model recalibrated for the warm lamp keeps the colour balance it learnt
    edge.recalibrate(warm, photo_range=True)
    edge.save(tmp_path / "warm.onnx")
    assert Inspector.load(tmp_path / "warm.onnx").info["photo_cast"] == edge.info["photo_cast"]
    assert edge.info["photo_cast"] != fitted_inspector.info["photo_cast"]
