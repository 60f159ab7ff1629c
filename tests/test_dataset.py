"""MVTec-style category folders: layout, masks, and the errors an operator sees."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lineguard.vision.dataset import MVTecCategory, TestItem
from lineguard.vision.errors import DatasetError


def _png(path: Path, w: int = 16, h: int = 12, value: int = 80, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (w, h), value).save(path)
    return path


def _mask(path: Path, w: int = 16, h: int = 12, box=(2, 3, 6, 8), on: int = 255) -> Path:
    arr = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = on
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def category(tmp_path: Path) -> Path:
    root = tmp_path / "widget"
    for i in range(3):
        _png(root / "train" / "good" / f"{i:03d}.png")
    for i in range(2):
        _png(root / "test" / "good" / f"{i:03d}.png")
    for i in range(2):
        _png(root / "test" / "scratch" / f"{i:03d}.png", value=200)
    _png(root / "test" / "crack" / "000.png", value=150)
    _mask(root / "ground_truth" / "scratch" / "000_mask.png")
    _mask(root / "ground_truth" / "crack" / "000_mask.png", on=1)     # 0/1 masks happen
    (root / "test" / "good" / "notes.txt").write_text("not an image")
    return root


def test_reads_layout(category: Path):
    cat = MVTecCategory(category)
    assert len(cat.train_good) == 3
    assert cat.defect_types == ["crack", "scratch"]
    assert [(it.defect_type, it.path.name) for it in cat.test_items] == [
        ("good", "000.png"), ("good", "001.png"), ("crack", "000.png"),
        ("scratch", "000.png"), ("scratch", "001.png")]
    assert cat.n_good == 2 and cat.n_defect == 3
    assert cat.has_ground_truth
    scratch0 = cat.items_of("scratch")[0]
    assert scratch0.mask_path == category / "ground_truth" / "scratch" / "000_mask.png"
    assert scratch0.is_defect and not cat.test_items[0].is_defect
    # The second scratch image has no mask file: None, and recorded.
    assert cat.items_of("scratch")[1].mask_path is None
    assert cat.missing_masks == [category / "test" / "scratch" / "001.png"]
    assert "widget" in repr(cat)


def test_load_mask(category: Path):
    cat = MVTecCategory(category)
    good = cat.test_items[0]
    gm = cat.load_mask(good)
    assert gm.shape == (12, 16) and gm.dtype == bool and not gm.any()
    crack = cat.items_of("crack")[0]
    m = cat.load_mask(crack)
    assert m.dtype == bool and m.sum() == 4 * 5 and m[3:8, 2:6].all()
    assert cat.load_mask(cat.items_of("scratch")[1]) is None
    assert cat.load_mask(crack, image_shape=(12, 16)).sum() == 20


def test_mask_size_mismatch_names_the_file(category: Path):
    _mask(category / "ground_truth" / "scratch" / "000_mask.png", w=20, h=12)
    cat = MVTecCategory(category)
    with pytest.raises(DatasetError, match=r"000_mask\.png.*20x12.*16x12"):
        cat.load_mask(cat.items_of("scratch")[0])


def test_unreadable_mask_is_a_dataset_error(category: Path):
    (category / "ground_truth" / "crack" / "000_mask.png").write_bytes(b"garbage")
    cat = MVTecCategory(category)
    with pytest.raises(DatasetError, match="000_mask.png"):
        cat.load_mask(cat.items_of("crack")[0])


def test_without_ground_truth_masks_are_none_and_not_missing(tmp_path: Path):
    root = tmp_path / "plain"
    _png(root / "test" / "good" / "a.png")
    _png(root / "test" / "dent" / "b.png")
    cat = MVTecCategory(root)
    assert not cat.has_ground_truth and cat.missing_masks == [] and cat.train_good == []
    assert cat.test_items[1] == TestItem(root / "test" / "dent" / "b.png", "dent", None)
    assert cat.load_mask(cat.test_items[1]) is None


def test_mask_named_like_the_image_is_accepted(tmp_path: Path):
    root = tmp_path / "c"
    _png(root / "test" / "dent" / "b.png")
    _mask(root / "ground_truth" / "dent" / "b.png")
    assert MVTecCategory(root).test_items[0].mask_path == root / "ground_truth" / "dent" / "b.png"


def test_not_mvtec_layout_says_what_is_expected(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist"):
        MVTecCategory(tmp_path / "nope")
    flat = tmp_path / "flat"
    _png(flat / "a.png")
    with pytest.raises(DatasetError, match=r"no test/ folder.*test/good/"):
        MVTecCategory(flat)
    with pytest.raises(DatasetError, match="is a file"):
        MVTecCategory(flat / "a.png")
    empty = tmp_path / "empty"
    (empty / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no sub-folder with images"):
        MVTecCategory(empty)
    loose = tmp_path / "loose"
    _png(loose / "test" / "x.png")
    with pytest.raises(DatasetError, match="directly"):
        MVTecCategory(loose)


def test_dataset_root_with_categories_gets_a_hint(tmp_path: Path):
    _png(tmp_path / "mvtec" / "bottle" / "test" / "good" / "0.png")
    _png(tmp_path / "mvtec" / "cable" / "test" / "good" / "0.png")
    with pytest.raises(DatasetError, match=r"several categories \(bottle, cable\)"):
        MVTecCategory(tmp_path / "mvtec")
