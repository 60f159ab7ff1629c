"""A lamp-off photo among the good ones is left out of the photo check's range.

The fence that leaves the good folder's odd photos out of the range (Tukey's, past the
quartiles by 3 interquartile ranges) was drawn on the measures' own scale. On a product
whose good photos spread widely (magnetic tiles: brightness 0.2-0.5, interquartile range
about 0.07-0.2) its lower side fell below 0: a photo taken with the lamp off (brightness
0.005) was not past it, was learnt into the range, and the range then reached brightness 0
and contrast 0, so a black photo (lamp off, lens cap, camera fault) passed the check and was
judged on its score. Now the fence is drawn on a scale bounded as the measures are (logit
for brightness and contrast, log for focus): a photo far darker, far brighter, far flatter or
far blurrier than the rest is past it, however widely the good photos spread.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from lineguard.vision import photo_check


def _photo(rng, brightness, spread=20.0, size=64):
    grey = np.clip(rng.normal(brightness * 255, spread, (size, size)), 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=2)


def _wide_folder(rng, low, high, n=40):
    """n good photos of a part family that spreads widely in brightness, and so in
    contrast (a brighter tile's texture shows more), as magnetic tiles do."""
    return [_photo(rng, b, 0.3 * b * 255) for b in np.linspace(low, high, n)]


def _dark(a, k):
    return (a.astype(np.float32) * k).astype(np.uint8)


def test_a_lamp_off_photo_among_widely_spread_good_photos_is_left_out_and_named():
    rng = np.random.default_rng(11)
    good = _wide_folder(rng, 0.2, 0.55)
    lamp_off = _dark(good[20], 0.03)                          # brightness about 0.005
    folder = np.stack(good + [lamp_off])
    pr, odd, unusual = photo_check.learn_range_and_unusual(folder)
    assert [i for i, _ in odd] == [40] and unusual == []
    assert pr["left_out"] == 1 and pr["n"] == 40
    said = odd[0][1]
    assert said[0].startswith("too dark: brightness 0.00"), said
    assert any(w.startswith("too flat (low contrast)") for w in said), said
    # the range is the one learnt without it: it does not reach black
    alone, _ = photo_check.learn_range(np.stack(good))
    assert pr["brightness"] == alone["brightness"] and pr["contrast"] == alone["contrast"]
    assert pr["brightness"][0] > 0 and pr["contrast"][0] > 0
    # another part photographed with the lamp off goes to REVIEW, not judged on its score
    for part in (lamp_off, _dark(good[5], 0.03), _dark(good[35], 0.02)):
        assert any(w.startswith("too dark") for w in photo_check.issues(part, pr)[1])
    # and the good photos the range was learnt from all pass
    assert not any(photo_check.issues(p, pr)[1] for p in good)


def test_an_over_exposed_white_photo_among_bright_good_photos_is_left_out():
    rng = np.random.default_rng(12)
    good = _wide_folder(rng, 0.45, 0.8)
    white = np.clip(good[20].astype(np.float32) * 3, 0, 255).astype(np.uint8)   # washed out to white
    folder = np.stack(good + [white])
    pr, odd = photo_check.learn_range(folder)
    assert [i for i, _ in odd] == [40], odd
    assert any(w.startswith("too bright: brightness") for w in odd[0][1]), odd
    assert pr["brightness"][1] < 1.0
    assert any(w.startswith("too bright") for w in photo_check.issues(np.full((64, 64, 3), 253, np.uint8), pr)[1])


def test_each_measure_far_out_on_its_own_scale_is_past_the_fence():
    # the good photos' measures as a widely spread family: each measure's additive fence
    # (quartile minus 3 interquartile ranges) lies below 0
    rng = np.random.default_rng(13)
    n = 60
    values = {"brightness": rng.uniform(0.2, 0.55, n), "contrast": rng.uniform(0.03, 0.14, n),
              "focus": rng.uniform(0.25, 0.85, n)}
    for m in photo_check.MEASURES:
        q1, q3 = np.quantile(values[m], [0.25, 0.75])
        assert q1 - 3 * (q3 - q1) < 0, m                      # the old fence could not reach it
    assert photo_check.odd_photos(values) == {}               # the family itself: none odd
    for m, far, word in (("brightness", 0.01, "too dark"), ("brightness", 0.995, "too bright"),
                         ("contrast", 0.003, "too flat"), ("focus", 0.02, "blurred")):
        v = {k: a.copy() for k, a in values.items()}
        v[m][7] = far
        odd = photo_check.odd_photos(v)
        assert list(odd) == [7], (m, far, odd)
        assert odd[7][0].startswith(f"{word}"), odd


def test_a_real_blurred_photo_among_good_photos_of_mixed_sharpness_is_left_out():
    rng = np.random.default_rng(14)
    # good photos of mixed sharpness (a lens left slightly soft on some days)
    good = [np.asarray(Image.fromarray(_photo(rng, 0.4, 40, 96)).filter(ImageFilter.GaussianBlur(radius=float(r))))
            for r in np.linspace(0.0, 0.9, 40)]
    smeared = np.asarray(Image.fromarray(good[0]).filter(ImageFilter.GaussianBlur(radius=6)))
    values = {m: np.array([photo_check.measure(p, "input")[m] for p in good + [smeared]])
              for m in photo_check.MEASURES}
    f = values["focus"][:40]
    q1, q3 = np.quantile(f, [0.25, 0.75])
    assert q1 - 3 * (q3 - q1) < values["focus"][40]          # the old fence left it in
    pr, odd = photo_check.learn_range(np.stack(good + [smeared]))
    assert [i for i, _ in odd] == [40], odd
    assert any(w.startswith("blurred") for w in odd[0][1])
