"""A photo of another shape than the good photos is said, not stretched in silence.

The model kept only its input size (224 x 224): a 4:3 camera's photos (341 x 256 where the
good photos were 256 x 256) were stretched to it and all 144 good parts went NG with no
photo issue. The model now keeps the good photos' width/height range (info
``photo_aspect``), and a photo outside it by more than a few % is a photo issue naming
both shapes; models from before say nothing. Metadata only: the detectors and the
exported graph never see it."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lineguard.vision import photo_check
from lineguard.vision.imageio import load_image
from lineguard.vision.preprocess import Preprocess
from lineguard.vision.result import Verdict

NEW_CAMERA = ("photo 341 x 256 (4:3); the model learnt from 256 x 256 (1:1): another camera or its settings "
              "changed")


def _geo(w, h, **pre):
    return Preprocess(image_size=64, **pre).apply(np.zeros((h, w, 3), np.uint8))[1]


def _good(category):
    return [np.asarray(load_image(p)) for p in sorted((category / "test" / "good").glob("*.png"))]


def _wide(a, k=4 / 3):
    """A good photo as a wider camera frames it: the same part, another shape."""
    h, w = a.shape[:2]
    return np.asarray(Image.fromarray(a).resize((round(w * k), h)))


def test_a_photo_of_another_shape_is_named_with_both_shapes():
    learnt = photo_check.learn_aspect([(256, 256)] * 30)
    assert learnt == {"range": [1.0, 1.0], "size": [256, 256]}
    assert photo_check.aspect_issues(_geo(341, 256), learnt) == [NEW_CAMERA]
    assert photo_check.aspect_issues(_geo(256, 256), learnt) == []
    assert photo_check.aspect_issues(_geo(512, 512), learnt) == []        # the same shape, larger: not another shape
    assert photo_check.aspect_issues(_geo(262, 256), learnt) == []        # within a few %: a crop's rounding
    tall = photo_check.aspect_issues(_geo(256, 341), learnt)
    assert tall and tall[0].startswith("photo 256 x 341 (3:4); the model learnt from 256 x 256 (1:1)")
    # models from before the shape was kept: nothing said
    assert photo_check.aspect_issues(_geo(341, 256), None) == []
    assert photo_check.aspect_issues(_geo(341, 256), {}) == []


def test_the_shape_is_what_the_model_is_shown():
    # a portrait photo the model turns to landscape is of the landscape photos' shape
    learnt = photo_check.learn_aspect([photo_check.seen_size(_geo(1280, 960, orient="landscape"))] * 5)
    assert learnt["range"] == [pytest.approx(4 / 3, abs=1e-4)] * 2
    assert photo_check.aspect_issues(_geo(960, 1280, orient="landscape"), learnt) == []
    said = photo_check.aspect_issues(_geo(1280, 1280, orient="landscape"), learnt)
    assert said == ["photo 1280 x 1280 (1:1); the model learnt from 1280 x 960 (4:3): another camera or its "
                    "settings changed"]
    # good photos of several shapes: the range holds them all, and says it
    mixed = photo_check.learn_aspect([(640, 480)] * 3 + [(600, 480)])
    assert mixed["size"] == [640, 480]
    assert photo_check.aspect_issues(_geo(620, 480), mixed) == []
    assert "(4:3, width/height 1.25-1.33)" in photo_check.aspect_issues(_geo(480, 480), mixed)[0]


def test_the_fit_keeps_the_good_photos_shape_and_its_file_and_export_carry_it(fitted_inspector, fitted_model_path,
                                                                             tmp_path):
    from lineguard.vision.inspector import Inspector
    assert fitted_inspector.info["photo_aspect"] == {"range": [1.0, 1.0], "size": [128, 128]}
    assert Inspector.load(fitted_model_path).info["photo_aspect"] == fitted_inspector.info["photo_aspect"]
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    path = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, path)
    exported = Inspector.load(path)
    assert exported.info["photo_aspect"] == fitted_inspector.info["photo_aspect"]
    # the graph is the same whether the model keeps a shape or not: the manifest's, not the graph's
    onnx = pytest.importorskip("onnx")
    before = Inspector(fitted_inspector.detector, fitted_inspector.preprocess, fitted_inspector.calibration,
                {k: v for k, v in fitted_inspector.info.items() if k != "photo_aspect"})
    export_onnx(before, tmp_path / "before.onnx")
    assert (onnx.load(str(path)).graph.SerializeToString()
            == onnx.load(str(tmp_path / "before.onnx")).graph.SerializeToString())


def test_a_wider_camera_sends_good_parts_to_review_with_the_shape_named(fitted_inspector, synth_category):
    from lineguard.vision.inspector import Inspector
    good = _good(synth_category)[:4]
    for r in fitted_inspector.inspect_batch(good):
        assert not any("another camera" in i for i in r.photo_issues)
    wide = fitted_inspector.inspect_batch([_wide(a) for a in good])
    for r in wide:
        assert ("photo 171 x 128 (4:3); the model learnt from 128 x 128 (1:1): another camera or its settings "
                "changed") in r.photo_issues
        assert r.verdict is not Verdict.OK
    # the score is the detector's alone: the same photo scores the same, said or not
    old = Inspector(fitted_inspector.detector, fitted_inspector.preprocess, fitted_inspector.calibration,
                    {k: v for k, v in fitted_inspector.info.items() if k != "photo_aspect"})
    before = old.inspect_batch([_wide(a) for a in good])
    assert [r.score for r in before] == [r.score for r in wide]
    assert not any("another camera" in i for r in before for i in r.photo_issues)     # a model from before


def test_recalibrating_for_a_new_camera_learns_its_shape(fitted_model_path, synth_category):
    from lineguard.vision.inspector import Inspector
    insp = Inspector.load(fitted_model_path)
    wide = [_wide(a) for a in _good(synth_category)]
    insp.recalibrate(wide, photo_range=True)
    assert insp.info["photo_aspect"] == {"range": [pytest.approx(171 / 128, abs=1e-4)] * 2, "size": [171, 128]}
    assert not any("another camera" in i for r in insp.inspect_batch(wide[:3]) for i in r.photo_issues)
