"""A photo the photo check doubts (a dim lamp, a defocused lens) is judged REVIEW whatever
its score: its score says little about the part either way. Turning only OK into REVIEW
scrapped all 144 good parts of a defocused lens as NG while each answer named the blur.
REVIEW still rejects the part at the PLC (a person looks), and a part whose score did not
pass keeps its regions, so the person sees where the model looked."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from lineguard.vision.imageio import load_image
from lineguard.vision.result import InspectionResult, Verdict


def _photo(category, kind="good"):
    return np.asarray(load_image(sorted((category / "test" / kind).glob("*.png"))[0]))


def _dim(a, k=0.4):
    return (a.astype(np.float32) * k).astype(np.uint8)


def _spot_map(insp, geo, peak):
    """A map flat at 0 but for one square spot of height ``peak`` (in photo pixels)."""
    h, w = geo.photo_hw
    amap = np.zeros((h, w), np.float32)
    amap[h // 3:h // 3 + h // 6, w // 3:w // 3 + w // 6] = peak
    return amap


def test_a_doubted_photo_scoring_above_the_threshold_is_review_with_its_regions_and_why(fitted_inspector,
                                                                                          synth_category):
    insp = fitted_inspector
    good = _photo(synth_category)
    x_dim, geo = insp.preprocess.apply(_dim(good))
    x_ok, geo_ok = insp.preprocess.apply(good)
    score = 2.0 * insp.threshold                                   # NG on its score
    amap = _spot_map(insp, geo, 3.0 * insp.pixel_threshold)

    doubted = insp._result(score, amap, geo, x_dim)
    assert doubted.verdict is Verdict.REVIEW and doubted.score == score      # the score is kept as it was
    assert doubted.photo_issues and doubted.photo_issues[0].startswith("too dark")
    assert doubted.regions, "a person reviewing it must see where the map was high"
    d = doubted.to_dict()                                           # as the record and the API have it
    assert d["verdict"] == "REVIEW" and d["photo_issues"] == doubted.photo_issues and d["regions"]
    back = InspectionResult.from_dict(d)
    assert back.verdict is Verdict.REVIEW and back.photo_issues == doubted.photo_issues

    # the same score on a photo like the good ones: NG, with its region (NG implies a region)
    judged = insp._result(score, _spot_map(insp, geo_ok, 3.0 * insp.pixel_threshold), geo_ok, x_ok)
    assert judged.verdict is Verdict.NG and judged.regions and judged.photo_issues == []


def test_a_doubted_photo_keeps_a_region_where_no_pixel_passed_the_pixel_threshold(fitted_inspector, synth_category):
    insp = fitted_inspector
    x_dim, geo = insp.preprocess.apply(_dim(_photo(synth_category)))
    low = _spot_map(insp, geo, 0.5 * insp.pixel_threshold)         # the map's peak below the pixel threshold
    res = insp._result(2.0 * insp.threshold, low, geo, x_dim)
    assert res.verdict is Verdict.REVIEW and res.photo_issues
    assert len(res.regions) >= 1                                    # the area around the map's highest point


def test_a_blurred_or_dimmed_defect_is_never_scrapped_on_its_score_but_never_passed(fitted_inspector,
                                                                                  synth_category):
    insp = fitted_inspector
    defects = [np.asarray(load_image(p)) for p in sorted((synth_category / "test").glob("*/*.png"))
               if p.parent.name != "good"][:4]
    blurred = [np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(radius=0.03 * a.shape[1])))
               for a in defects]
    sharp = insp.inspect_batch(defects)
    judged = insp.inspect_batch([_dim(a, 0.3) for a in defects] + blurred)
    assert all(r.photo_issues for r in judged), [r.photo_issues for r in judged]
    assert [r.verdict for r in judged] == [Verdict.REVIEW] * len(judged), [(r.verdict, r.score) for r in judged]
    # not a vacuous check: on their photos as they are, at least one of these defects is NG
    assert any(r.verdict is Verdict.NG for r in sharp)
