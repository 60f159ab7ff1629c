"""The synthetic product line: determinism, exact defect masks, dataset layout."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from lineguard.vision.synth import DEFECT_TYPES, add_defect, make_part, write_dataset


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=2)


def _absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)


# --------------------------------------------------------------------------- parts


def test_good_part_shape_and_types():
    img, mask = make_part(1, 128)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert mask.shape == (128, 128) and mask.dtype == np.uint8
    assert not mask.any()
    img, mask = make_part(1, (96, 160))
    assert img.shape == (96, 160, 3) and mask.shape == (96, 160)


def test_deterministic_in_seed():
    a, _ = make_part(5, 128)
    b, _ = make_part(5, 128)
    assert a.tobytes() == b.tobytes()
    c, mc = make_part(5, 128, "crack")
    d, md = make_part(5, 128, "crack")
    assert c.tobytes() == d.tobytes() and mc.tobytes() == md.tobytes()
    e, _ = make_part(6, 128)
    assert a.tobytes() != e.tobytes()


def test_part_looks_like_a_part():
    # Dark coating in the middle, bright bare-foil tab strip at the top, darker fixture
    # in the corners: the layout the rest of the suite and the demo rely on.
    img, _ = make_part(0, 256)
    lum = img.astype(float).mean(axis=2)
    coating = lum[100:160, 100:160].mean()
    tab = lum[20:26, 100:160].mean()
    fixture = lum[:5, :5].mean()
    assert fixture < coating < tab
    assert 40 < coating < 100
    # Grain texture and sensor noise: the coating is not flat.
    assert lum[100:160, 100:160].std() > 1.5


def test_good_parts_vary_only_mildly():
    parts = [make_part(s, 128)[0] for s in range(5)]
    for a, b in itertools.combinations(parts, 2):
        d = _absdiff(a, b)
        # Grain, lighting drift and sensor noise: present, but small per pixel.
        assert 2.0 <= np.median(d) <= 12.0
        # Pose jitter only moves the part edges: few pixels change a lot.
        assert (d > 40).mean() < 0.15
        # The coated centre keeps its colour from part to part (lighting drift only).
        ca, cb = a[40:90, 40:90].reshape(-1, 3).mean(0), b[40:90, 40:90].reshape(-1, 3).mean(0)
        assert np.abs(ca - cb).max() < 12.0
    # ...and every part is placed a little differently on the fixture.
    tab_rows = [int(np.argmax(p[:, 64].astype(float).mean(axis=1) > 120)) for p in parts]
    assert len(set(tab_rows)) > 1


@pytest.mark.parametrize("kind", DEFECT_TYPES)
def test_defect_is_exact_visible_and_sized(kind):
    for seed in (0, 1, 2):
        good, _ = make_part(seed, 128)
        img, mask = make_part(seed, 128, kind)
        assert img.shape == good.shape and mask.shape == good.shape[:2]
        assert set(np.unique(mask)) == {0, 255}
        on = mask > 0
        # The mask is exactly the pixels that changed; nothing else moved.
        assert np.array_equal(_changed(img, good), on)
        diff = _absdiff(img, good)
        assert diff[~on].max() == 0
        assert diff[on].mean() >= 10.0, f"{kind} seed {seed} barely visible"
        area = on.mean()
        assert 0.001 <= area <= 0.03, f"{kind} seed {seed} area {area:.4f}"


@pytest.mark.parametrize("size", [64, 256, (80, 200)])
def test_defect_area_scales_with_image(size):
    for kind in DEFECT_TYPES:
        _, mask = make_part(11, size, kind)
        area = (mask > 0).mean()
        assert 0.001 <= area <= 0.03, f"{kind} at {size}: area {area:.4f}"


def test_defect_kinds_look_different():
    # A crack darkens a thin line; missing coating exposes bright foil over a patch;
    # a stain is wider and softer than a scratch.
    good, _ = make_part(3, 128)
    g = good.astype(float).mean(axis=2)
    crack, cm = make_part(3, 128, "crack")
    assert (crack.astype(float).mean(axis=2) - g)[cm > 0].mean() < -10
    miss, mm = make_part(3, 128, "missing_coating")
    assert (miss.astype(float).mean(axis=2) - g)[mm > 0].mean() > 40
    _, sm = make_part(3, 128, "stain")
    _, scm = make_part(3, 128, "scratch")
    assert (sm > 0).sum() > (scm > 0).sum()


# --------------------------------------------------------------------------- add_defect


@pytest.mark.parametrize("kind", DEFECT_TYPES)
def test_add_defect_on_non_synthetic_images(kind):
    rng = np.random.default_rng(0)
    flat = np.full((96, 128, 3), 128, np.uint8)
    photo = np.clip(rng.normal(90, 25, (96, 128, 3)), 0, 255).astype(np.uint8)
    white = np.full((96, 128, 3), 255, np.uint8)
    for base in (flat, photo, white):
        before = base.copy()
        img, mask = add_defect(base, kind, np.random.default_rng(1))
        assert np.array_equal(base, before), "input image was modified"
        on = mask > 0
        assert on.any()
        assert np.array_equal(_changed(img, base), on)
        assert 0.001 <= on.mean() <= 0.03


def test_add_defect_respects_region_and_rng():
    base = np.full((128, 128, 3), 100, np.uint8)
    region = np.zeros((128, 128), bool)
    region[:, :50] = True
    for kind in DEFECT_TYPES:
        _, mask = add_defect(base, kind, np.random.default_rng(4), region=region)
        assert mask.any()
        assert not mask[~region].any(), f"{kind} left its region"
    a = add_defect(base, "stain", np.random.default_rng(9))[1]
    b = add_defect(base, "stain", np.random.default_rng(9))[1]
    assert np.array_equal(a, b)


# --------------------------------------------------------------------------- dataset


def test_write_dataset_layout(tmp_path):
    calls = []
    out = write_dataset(tmp_path / "cells", n_good=4, n_defect=7, seed=3, size=64,
                        progress=lambda d, t: calls.append((d, t)))
    assert out == tmp_path / "cells"
    assert sorted(p.name for p in (out / "train" / "good").iterdir()) == ["000.png", "001.png", "002.png", "003.png"]
    assert len(list((out / "test" / "good").glob("*.png"))) == 10  # max(10, 4 // 4)
    counts = {k: len(list((out / "test" / k).glob("*.png"))) for k in DEFECT_TYPES}
    assert sum(counts.values()) == 7 and max(counts.values()) - min(counts.values()) <= 1
    for kind in DEFECT_TYPES:
        for p in (out / "test" / kind).glob("*.png"):
            m = out / "ground_truth" / kind / f"{p.stem}_mask.png"
            img, mask = np.asarray(Image.open(p)), np.asarray(Image.open(m))
            assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
            assert set(np.unique(mask)) == {0, 255}
    assert calls[-1] == (21, 21) and len(calls) == 21
    # Train and test are different parts.
    a = np.asarray(Image.open(out / "train" / "good" / "000.png"))
    b = np.asarray(Image.open(out / "test" / "good" / "000.png"))
    assert not np.array_equal(a, b)
    # Atomic: no temporary folder left next to it.
    assert [p.name for p in tmp_path.iterdir()] == ["cells"]


def test_write_dataset_is_reproducible_and_takes_empty_dir(tmp_path):
    (tmp_path / "b").mkdir()  # an existing empty folder is fine
    a = write_dataset(tmp_path / "a", n_good=2, n_defect=2, seed=1, size=64, n_test_good=1,
                      defect_types=("dent", "particle"))
    b = write_dataset(tmp_path / "b", n_good=2, n_defect=2, seed=1, size=64, n_test_good=1,
                      defect_types=("dent", "particle"))
    for rel in ("train/good/001.png", "test/dent/000.png", "ground_truth/particle/000_mask.png"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert not (a / "test" / "scratch").exists()


def test_write_dataset_refuses_non_empty_and_cleans_up(tmp_path):
    out = tmp_path / "cells"
    out.mkdir()
    (out / "keep.txt").write_text("operator notes")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(out, n_good=1, n_defect=0, size=64)
    assert (out / "keep.txt").read_text() == "operator notes"

    def boom(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "half", n_good=3, n_defect=0, size=64, progress=boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells"]


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="missing_coating"):
        make_part(0, 128, "smudge")
    with pytest.raises(ValueError, match="64"):
        make_part(0, 32)
    with pytest.raises(ValueError):
        make_part(0, (128, 40))
    with pytest.raises(ValueError):
        make_part(-1, 128)
    with pytest.raises(ValueError):
        make_part(0, 128.0)
    img = np.zeros((128, 128, 3), np.uint8)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="scratch"):
        add_defect(img, "blob", rng)
    with pytest.raises(ValueError):
        add_defect(img.astype(np.float32), "dent", rng)
    with pytest.raises(ValueError):
        add_defect(img[..., 0], "dent", rng)
    with pytest.raises(ValueError):
        add_defect(img, "dent", rng, region=np.ones((64, 64), bool))
    with pytest.raises(ValueError):
        add_defect(img, "dent", rng, region=np.zeros((128, 128), bool))
    with pytest.raises(ValueError, match="valid kinds"):
        write_dataset("/nonexistent/never", n_good=1, defect_types=("scratch", "rust"))
    with pytest.raises(ValueError):
        write_dataset("/nonexistent/never", n_good=-1)
