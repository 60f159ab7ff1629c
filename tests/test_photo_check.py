"""The photo check: a photo unlike the good photos the model learnt from (a dim lamp, a
blurred lens, a washed-out picture) is not passed on its score, whatever the runtime."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from lineguard.vision import photo_check
from lineguard.vision.imageio import load_image
from lineguard.vision.result import Verdict


def _test_photos(category, kind="good"):
    return [np.asarray(load_image(p)) for p in sorted((category / "test" / kind).glob("*.png"))]


def _dim(a, k=0.4):
    return (a.astype(np.float32) * k).astype(np.uint8)


def _blur(a):
    return np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(radius=0.02 * a.shape[1])))


def test_the_measures_follow_what_a_camera_fault_does():
    rng = np.random.default_rng(0)
    grey = np.clip(rng.normal(128, 40, (128, 128)), 0, 255).astype(np.uint8)
    sharp = np.stack([grey] * 3, axis=2)
    m = photo_check.measure(sharp)
    assert m["brightness"] == pytest.approx(0.5, abs=0.02) and m["contrast"] == pytest.approx(40 / 255, abs=0.02)
    assert photo_check.measure(_blur(sharp))["focus"] < 0.3 * m["focus"]
    # a darker photo of the same sharpness keeps its focus: blur is not read as darkness
    dark = photo_check.measure(_dim(sharp, 0.5))
    assert dark["brightness"] == pytest.approx(0.25, abs=0.02) and dark["focus"] == pytest.approx(m["focus"], rel=0.05)
    flat = photo_check.measure(np.full((64, 64, 3), 90, np.uint8))
    assert flat["contrast"] == 0 and flat["focus"] == 0


def test_focus_is_measured_at_full_resolution_and_older_ranges_keep_theirs():
    rng = np.random.default_rng(5)

    def photo():
        grey = np.clip(rng.normal(128, 40, (224, 224)), 0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=2)

    good = np.stack([photo() for _ in range(20)])
    slight = np.asarray(Image.fromarray(good[0]).filter(ImageFilter.GaussianBlur(radius=0.8)))
    x = good[0]
    g = x.astype(np.float32).mean(axis=2) / 255      # the integer version measures what the float one does
    assert photo_check.laplacian_focus(x) == pytest.approx(photo_check._lap_focus(g, float(g.std())), rel=1e-4)
    new, _ = photo_check.learn_range(good)
    assert new["focus_at"] == "input"
    assert any(w.startswith("blurred") for w in photo_check.issues(slight, new)[1])
    assert not any(photo_check.issues(p, new)[1] for p in good)
    old, _ = photo_check.learn_range(good, focus_at="blocks")
    del old["focus_at"]                                   # a range stored before focus moved to full resolution
    assert not any(w.startswith("blurred") for w in photo_check.issues(slight, old)[1])   # blocks smooth it away


def test_odd_photos_in_the_good_folder_are_named_and_do_not_widen_the_range():
    rng = np.random.default_rng(3)

    def photo(level):
        grey = np.clip(rng.normal(level, 30, (96, 96)), 0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=2)

    good = [photo(120 + 10 * rng.standard_normal()) for _ in range(30)]
    folder = np.stack(good + [_dim(good[0], 0.5), _blur(good[1])])     # a lamp flicker, a shot out of focus
    lamp_at_60 = _dim(photo(120), 0.6)
    rng_, odd = photo_check.learn_range(folder)
    assert [i for i, _ in odd] == [30, 31]
    assert odd[0][1][0].startswith("too dark: brightness") and any(w.startswith("blurred") for w in odd[1][1])
    assert rng_["n"] == 30 and rng_["left_out"] == 2
    assert any(w.startswith("too dark") for w in photo_check.issues(lamp_at_60, rng_)[1])
    assert not any(photo_check.issues(p, rng_)[1] for p in good)
    # taken into the range, the flicker would let a lamp at 60% pass
    wide, none = photo_check.learn_range(folder, fence=None)
    assert none == [] and photo_check.issues(lamp_at_60, wide)[1] == []
    # photos that vary widely are all the product's: none is called odd
    spread = np.stack([photo(level) for level in np.linspace(40, 220, 30)])
    assert photo_check.learn_range(spread)[1] == []
    # nor is a darker variant of the part (a batch of 5 in 40): the range holds it
    variant = np.stack(good + [photo(60 + 3 * i) for i in range(5)] + [photo(125) for _ in range(5)])
    rng_v, none = photo_check.learn_range(variant)
    assert none == [] and not photo_check.issues(photo(62), rng_v)[1]


def test_good_photos_pass_and_faulty_ones_go_to_review(fitted_inspector, synth_category):
    rng = fitted_inspector.info["photo_range"]
    assert rng["n"] == 40 and rng["brightness"][0] < rng["brightness"][2] <= rng["brightness"][3] < rng["brightness"][1]
    good = _test_photos(synth_category)
    results = fitted_inspector.inspect_batch(good)
    assert not any(r.photo_issues for r in results)          # never seen, still like the good photos
    for fault, word in ((_dim, "too dark"), (_blur, "blurred")):
        judged = fitted_inspector.inspect_batch([fault(p) for p in good])
        assert all(any(w.startswith(word) for w in r.photo_issues) for r in judged), [r.photo_issues for r in judged]
        assert all(r.verdict is not Verdict.OK for r in judged)
        assert all(r.to_dict()["photo_issues"] == r.photo_issues for r in judged)


def test_a_doubted_photo_that_scores_low_is_review_without_a_region(fitted_inspector, synth_category):
    good = _test_photos(synth_category)[0]
    x, geo = fitted_inspector.preprocess.apply(_dim(good))
    amap = np.zeros(geo.photo_hw, np.float32)
    res = fitted_inspector._result(0.0, amap, geo, x)           # a score that passes on its own
    assert res.verdict is Verdict.REVIEW and res.regions == [] and res.photo_issues[0].startswith("too dark")
    same = fitted_inspector._result(0.0, amap, geo, fitted_inspector.preprocess.apply(good)[0])
    assert same.verdict is Verdict.OK and same.photo_issues == []


def test_models_from_before_the_check_are_not_checked(fitted_model_path, synth_category):
    from lineguard.vision.inspector import Inspector
    old = Inspector.load(fitted_model_path)
    old.info.pop("photo_range")
    assert not any(r.photo_issues for r in old.inspect_batch([_dim(p) for p in _test_photos(synth_category)]))


def test_the_range_travels_with_the_model_file_and_its_export(fitted_inspector, fitted_model_path, synth_category,
                                                              tmp_path):
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.vision.inspector import Inspector
    path = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, path)
    dim = [_dim(p) for p in _test_photos(synth_category)[:3]]
    for model in (Inspector.load(fitted_model_path), Inspector.load(path)):
        assert model.info["photo_range"] == fitted_inspector.info["photo_range"]
        assert all(r.photo_issues for r in model.inspect_batch(dim))


def test_the_check_can_be_left_off_for_products_whose_photos_vary_that_much(synth_category):
    from lineguard.vision.inspector import Inspector
    insp = Inspector.fit(synth_category / "train" / "good", image_size=64, false_reject_rate=0.1, seed=0,
                         photo_check=False)
    assert insp.info["photo_range"] is None
    assert not any(r.photo_issues for r in insp.inspect_batch([_dim(p) for p in _test_photos(synth_category)]))


def test_inspect_names_what_is_off_about_a_photo(fitted_model_path, synth_category, tmp_path):
    # cli_runner, not test_cli: tests/server holds a test_cli.py too, and with both folders in one
    # run the name meant whichever was imported first
    from cli_runner import run_in_process as run_cli
    dim = tmp_path / "dim.png"
    Image.fromarray(_dim(_test_photos(synth_category)[0])).save(dim)
    r = run_cli("inspect", str(fitted_model_path), str(dim), "--overlays", str(tmp_path / "ov"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "photo: too dark: brightness" in r.stdout and (tmp_path / "ov" / "dim_overlay.png").exists()


def _jpeg(a, **kw):
    import io
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", **kw)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _grey_photo(seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 40, (128, 128)), 0, 255).astype(np.uint8)


def test_a_grey_model_names_a_colour_photo_but_not_a_grey_one_stored_as_rgb_or_jpeg():
    """A tinted copy (channels x1 / 0.9 / 0.8) of 15 good grey commutators was judged NG 14
    times with no photo issue: a model learnt from grey photos checked nothing."""
    g = _grey_photo().astype(np.float32)
    for mult in ((1, 0.9, 0.8), (1, 0.97, 0.94)):
        tinted = np.stack([g * m for m in mult], axis=2).clip(0, 255).astype(np.uint8)
        found = photo_check.colour_issues(tinted, "grey")
        assert len(found) == 1 and found[0].startswith("colour photo: the model learnt from greyscale photos"), found
        assert photo_check.colour_issues(tinted, "mixed") == [] and photo_check.colour_issues(tinted, None) == []
    rgb_of_grey = np.stack([_grey_photo()] * 3, axis=2)
    assert photo_check.colour_issues(rgb_of_grey, "grey") == []
    # JPEG's rounding and chroma noise of a grey photo: a grey file, and one whose red channel
    # is off by a level here and there, both as RGB JPEGs
    jitter = rgb_of_grey.astype(np.int16)
    jitter[..., 0] += np.random.default_rng(1).integers(-1, 2, jitter.shape[:2])
    jitter = jitter.clip(0, 255).astype(np.uint8)
    for a, kw in ((rgb_of_grey, {"quality": 75}), (jitter, {"quality": 90}),
                  (jitter, {"quality": 95, "subsampling": 0})):
        assert photo_check.colour_issues(_jpeg(a, **kw), "grey") == [], kw
    # a colour model keeps naming a grey photo, not a colour one
    assert photo_check.colour_issues(rgb_of_grey, "colour")[0].startswith("greyscale photo")


def test_a_grey_model_sends_a_colour_photo_to_review_or_ng_with_the_issue_named(fitted_inspector, synth_category):
    from lineguard.vision.inspector import Inspector
    insp = Inspector(fitted_inspector.detector, fitted_inspector.preprocess, fitted_inspector.calibration,
                     {**fitted_inspector.info, "photo_colour": "grey"})
    for a in _test_photos(synth_category)[:3]:
        g = a.astype(np.float32).mean(axis=2)
        grey = np.stack([g] * 3, axis=2).astype(np.uint8)
        assert not any(i.startswith("colour photo") for i in insp.inspect(grey).photo_issues)
        tinted = np.stack([g, g * 0.9, g * 0.8], axis=2).clip(0, 255).astype(np.uint8)
        r = insp.inspect(tinted)
        assert any(i.startswith("colour photo") for i in r.photo_issues) and r.verdict is not Verdict.OK
