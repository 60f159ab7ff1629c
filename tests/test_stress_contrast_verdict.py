"""The stress test's sentence says what was measured (the line's width, the contrast) and what
the contrast series found, not "do not rely on this model": on KolektorSDD painted cracks 4.9 px
wide at 50 grey levels were caught 2 of 150, while the same model caught 30 of 52 real cracks,
whose core contrast (median about 90) lay above the painted one."""
from __future__ import annotations

import numpy as np

from lineguard.vision.preprocess import Preprocess
from lineguard.vision.result import InspectionResult, Verdict
from lineguard.vision.synth import make_part


def _good(n: int = 6, size: int = 96) -> list[np.ndarray]:
    return [make_part(s, size)[0] for s in range(n)]


class _StrongOnly:
    """A model that catches a painted defect only where it changes the photo by more than
    ``level`` grey levels: faint defects pass, strong ones are caught, whatever their size."""

    def __init__(self, good, level=70.0, preprocess=None):
        self.good = [g.astype(np.float32).mean(axis=2) for g in good]
        self.level, self.threshold, self.review_threshold = level, 1.0, 1.0
        if preprocess is not None:
            self.preprocess = preprocess

    def _change(self, im):
        g = im.astype(np.float32).mean(axis=2)
        return min(float(np.abs(g - b).max()) for b in self.good if b.shape == g.shape)

    def inspect_batch(self, images, **_):
        out = []
        for im in images:
            ng = self._change(im) > self.level
            out.append(InspectionResult(verdict=Verdict.NG if ng else Verdict.OK, score=2.0 if ng else 0.0,
                                        threshold=1.0, pixel_threshold=1.0,
                                        anomaly_map=np.zeros(im.shape[:2], np.float32)))
        return out

    def inspect(self, image):
        return self.inspect_batch([image])[0]


def _study(**kw):
    from lineguard.vision.stress import run_stress
    good = _good(size=192)
    pre = Preprocess(image_size=64)       # 192 px photos shrunk to 64: lines 3.75 px wide
    return run_stress(_StrongOnly(good, preprocess=pre), good, kinds=["crack"], per_kind=40, seed=0, **kw)


def test_cracks_too_faint_at_the_nominal_contrast_are_not_called_a_lost_cause():
    study = _study(mm_per_px=0.05)
    e = study["kinds"]["crack"]
    # the size series at 50 grey levels catches none, the stronger contrast series does
    assert e["size"]["hits"] == 0
    assert e["contrast"]["hits"] > 0
    s = e["sentence"]
    assert "do not rely" not in s
    assert "0.188 mm wide (3.75 px; 1.25 model-input px) at 50 grey levels of contrast" in s, s
    assert f"{e['contrast']['hits']} of {e['contrast']['n']} were caught" in s, s
    assert "lineguard eval" in s


def test_the_line_width_the_model_sees_is_in_pod_json():
    e = _study()["kinds"]["crack"]
    assert e["line_width_px"] == 3.75
    assert e["line_width_input_px"] == 1.25


def test_the_crack_contrast_series_reaches_the_contrast_of_real_cracks():
    # real KolektorSDD cracks: 48 to 148 grey levels at their core; a series that stops at
    # 90 cannot show that the strong ones are caught
    from lineguard.vision.stress import plan_stress
    plan = plan_stress([(500, 1254)] * 80, ["crack"], per_kind=200, seed=0)
    contrasts = [p.contrast for p in plan if p.series == "contrast"]
    assert max(contrasts) > 120
    assert sum(c > 90 for c in contrasts) >= 3


def test_the_sentence_without_mm_names_the_width_in_pixels():
    from lineguard.vision.stress import kind_sentence
    fit = {"status": "blind", "n": 150, "hits": 0, "size_min": 10.0, "size_max": 286.0}
    cfit = {"status": "fit", "n": 50, "hits": 30, "size_min": 8.0, "size_max": 150.0, "a50": 60.0, "a90": 110.0,
            "size_px": 286.0}
    s = kind_sentence("crack", fit, None, 50.0, 4.9, cfit, 1.25)
    assert s.startswith("Cracks 4.9 px wide (1.25 model-input px) at 50 grey levels of contrast were never caught "
                        "(0 of 150), up to 286 px."), s
    assert "Painted at 286 px from 8 to 150 grey levels, 30 of 50 were caught; 9 in 10 from 110 grey levels up" in s


def test_a_line_on_a_photo_smaller_than_the_input_is_said_in_input_pixels_as_enlarged():
    """A 1.2 px scratch on a 128 px photo read at 224 px is 2.1 input pixels; the scale was
    held at 1, and pod.json said 1.2 model-input px, under the 1.25 the README gives as least."""
    from types import SimpleNamespace

    import numpy as np

    from lineguard.vision.stress import LINE_WIDTH_PX, line_width, painting_for
    pre = SimpleNamespace(input_hw=(224, 224), roi=None, orient="none", resize="stretch")
    painting = painting_for(SimpleNamespace(preprocess=pre), [np.zeros((128, 128, 3), np.uint8)])
    scale = painting["photo_px_per_input_px"][0]
    assert scale == round(128 / 224, 4)
    width = line_width("scratch", painting, 0)
    assert width == LINE_WIDTH_PX["scratch"]                 # painted at the painter's own width
    assert round(width / scale, 1) == round(LINE_WIDTH_PX["scratch"] * 224 / 128, 1)
