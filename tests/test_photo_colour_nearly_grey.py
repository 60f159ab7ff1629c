"""Good photos that are nearly grey (a mono camera's photos saved as JPEG: colour spread
between 0.1 and 0.5): train says so when the colour check is off, not "two cameras"."""
from __future__ import annotations

import numpy as np

from lineguard.vision import photo_check

N_PARTS = 20


def _nearly_grey(seed: int, share: float = 0.3) -> np.ndarray:
    """A grey part whose red channel is one level up on ``share`` of its pixels, as a JPEG's
    colour rounding leaves a grey photo: its colour spread about ``share``."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(40, 200, size=(64, 64), dtype=np.uint8)
    x = np.repeat(grey[:, :, None], 3, axis=2)
    x[:, :, 0] += (rng.random((64, 64)) < share).astype(np.uint8)
    return x


def _grey(seed: int) -> np.ndarray:
    grey = np.random.default_rng(seed).integers(40, 200, size=(64, 64), dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def test_a_set_of_nearly_grey_photos_is_said_nearly_grey_not_two_cameras():
    photos = np.stack([_nearly_grey(i) for i in range(N_PARTS)])
    spreads = [photo_check.colour_spread(x) for x in photos]
    assert all(photo_check.GREY_SPREAD < v <= photo_check.COLOUR_SPREAD for v in spreads), spreads
    learnt = photo_check.colour_learnt(photos)
    # left off: a grey check learnt from photos already near its line would doubt the same
    # camera's next photo a little past it as a colour photo (a false reject blaming the camera)
    assert learnt["colour"] == "mixed"
    said = photo_check.colour_off_said(learnt["counts"])
    assert said.startswith(f"colour check off: of the {N_PARTS} good photos it looked at, {N_PARTS} nearly grey"), said
    assert "two cameras" not in said, (
        f"every photo is nearly grey, one camera's, yet train blames two cameras or settings: {said}")
    assert "the photos are nearly grey" in said and "neither clearly colour nor greyscale" in said, said


def test_a_few_colour_photos_beside_nearly_grey_ones_are_still_one_nearly_grey_set():
    # one clearly colour photo (a part on a coloured tray) among nearly grey ones: few enough to
    # be the odd one, so the set is still nearly grey, not two cameras
    photos = [_nearly_grey(i) for i in range(N_PARTS - 1)]
    tinted = _grey(99)
    tinted[:, :, 0] = np.clip(tinted[:, :, 0].astype(int) + 20, 0, 255).astype(np.uint8)
    learnt = photo_check.colour_learnt(np.stack(photos + [tinted]))
    said = photo_check.colour_off_said(learnt["counts"])
    assert "two cameras" not in said and "the photos are nearly grey" in said, said


def test_a_nearly_grey_photo_among_greyscale_ones_is_not_called_a_colour_photo():
    # a mono camera's set with one photo saved as JPEG: left out as odd, and named for what it
    # is (a "colour photo" sends the line to look for a colour camera that is not there)
    photos = np.stack([_grey(i) for i in range(N_PARTS)] + [_nearly_grey(500)])
    learnt = photo_check.colour_learnt(photos)
    assert learnt["colour"] == "grey"
    assert [i for i, _ in learnt["odd"]] == [N_PARTS]
    said = learnt["odd"][0][1][0]
    assert said.startswith("nearly grey photo among greyscale ones"), said
