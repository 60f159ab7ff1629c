"""A good photo is called odd only where the photo check would doubt it.

Training left out of the photo check's range the good photos far from the others (past
Tukey's fence) and named each "odd" ("look at ...: too bright: brightness 0.745, most
good photos 0.414-0.495"), while the range itself came from the others' 1st-99th
percentiles with a margin: on folders with heavy-tailed brightness 4 of 72 photos so
named lay inside the range printed beside them ("brightness 0.202-0.763"), and train's
next step said the check sent parts like them to REVIEW, which it did not. Now "odd"
means the range learnt without it doubts it, said in a part's words; a photo the range
holds all the same is merely unusual, said in a gentler note.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from lineguard.vision import photo_check


def _photo(rng, brightness, size=48):
    grey = np.clip(rng.normal(brightness * 255, 20, (size, size)), 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=2)


def _folder():
    """40 good photos: most at brightness 0.45-0.50, two tails the range is learnt with
    (0.40, 0.56), one photo past the fence the range holds (0.605), one lamp flicker (0.25)."""
    rng = np.random.default_rng(7)
    levels = list(np.linspace(0.45, 0.50, 36)) + [0.40, 0.56, 0.605, 0.25]
    return np.stack([_photo(rng, b) for b in levels])


def test_a_good_photo_the_range_holds_is_unusual_not_odd():
    folder = _folder()
    pr, odd = photo_check.learn_range(folder)
    # both are past the fence, so neither widens the range (the fence's job stays done)
    assert pr["n"] == 38 and pr["left_out"] == 2
    # the bright one lies inside the range learnt without it: the check passes it
    assert photo_check.issues(folder[38], pr)[1] == []
    assert [i for i, _ in odd] == [39]                 # only the flicker is odd
    (unusual,) = pr["unusual"]
    assert len(unusual) == 1 and unusual[0].startswith("brighter than most: brightness 0.6")
    assert unusual[0].endswith(f", allowed {pr['brightness'][0]:.3g}-{pr['brightness'][1]:.3g}"), unusual
    # the odd one in the words a part's message uses, with where most good photos lie
    (said,) = photo_check.issues(folder[39], pr)[1]
    (what,) = odd[0][1]
    assert what.startswith(said + ", most good photos "), (what, said)


def test_every_photo_called_odd_is_one_the_check_doubts():
    # heavy-tailed brightness (Student's t, 3 degrees of freedom) and one dimmed photo a folder
    rng = np.random.default_rng(1)
    called = unusual = 0
    for _ in range(60):
        n = int(rng.integers(10, 60))
        levels = (120 + 12 * rng.standard_t(3, n)) / 255
        folder = np.stack([_photo(rng, b, 32) for b in levels]
                          + [(_photo(rng, 120 / 255, 32) * rng.uniform(0.45, 0.75)).astype(np.uint8)])
        pr, odd = photo_check.learn_range(folder, focus_at="blocks")
        for i, what in odd:
            called += 1
            doubts = photo_check.issues(folder[i], pr)[1]
            assert doubts, (n, what, photo_check.range_said(pr))
            assert [w.split(", most good photos")[0] for w in what] == doubts
        unusual += len(pr.get("unusual") or [])
        assert pr["left_out"] == len(odd) + len(pr.get("unusual") or [])
    assert called > 30 and unusual > 0          # both kinds met, so both were checked


def test_train_notes_an_unusual_photo_gently_and_gives_no_review_step_for_it(capsys):
    from lineguard.cli.core import _say_good_folder_notes
    folder = _folder()
    pr, odd = photo_check.learn_range(folder)
    names = [f"good/{i:03d}.png" for i in range(len(folder))]
    insp = SimpleNamespace(info={"photo_range": pr, "photo_odd": [{"image": names[i], "issues": w} for i, w in odd]},
                           calibration={}, threshold=1.0)
    _say_good_folder_notes(insp, "train again with --exclude-suspects")
    err = " ".join(capsys.readouterr().err.split())
    assert "look at: good/039.png: the photo is unlike the other good photos (too dark" in err
    assert "good/038.png" not in err                   # not named odd, nor in the next step
    step = err[err.index("next step: "):]
    assert step.startswith("next step: look at good/039.png:") and "REVIEW" in step
    assert "note: a good photo far from most (brighter than most: brightness 0.6" in err
    assert "judged on its score" in err

    # a folder whose only photo past the fence is held by the range: no next step about REVIEW
    rng = np.random.default_rng(7)
    held = np.stack([_photo(rng, b) for b in list(np.linspace(0.45, 0.50, 36)) + [0.40, 0.56, 0.605]])
    pr, odd = photo_check.learn_range(held)
    assert odd == [] and len(pr["unusual"]) == 1
    insp = SimpleNamespace(info={"photo_range": pr, "photo_odd": []}, calibration={}, threshold=1.0)
    _say_good_folder_notes(insp, "train again with --exclude-suspects")
    err = " ".join(capsys.readouterr().err.split())
    assert "next step" not in err and "look at" not in err and "which holds it all the same" in err
