"""`lineguard train` says which files of the good folder it did not learn from, and why,
and the photo check's "unusual" note names its photo.

Train read only files ending in .png, .jpg, ... and passed over the rest without a word: a
phone's HEIC photos, a GIF, a PDF beside them, a sub-folder of last week's lot. The model
learnt from fewer parts than its owner thought, and a folder holding only HEIC photos was
refused with "no images found" and a hint about sub-folders. Now each kind is named with
what to do, every one is listed in a file beside the model when there are many, and a
folder with nothing usable is refused (exit 2) saying what it holds.

The photo check's note on a good photo far from most that its range holds all the same
("unusual") said what was off but not which photo: the range keeps no names, and the
mapping back to the files was dropped on the way.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from cli_runner import run_in_process
from PIL import Image

from lineguard.vision import photo_check
from lineguard.vision.imageio import list_images


def _flat(text: str) -> str:
    return " ".join(text.split())


def _photo(rng, brightness, size=48):
    grey = np.clip(rng.normal(brightness * 255, 20, (size, size)), 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=2)


def _good_photos(folder, synth_category, n=12):
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted((synth_category / "train" / "good").glob("*.png"))[:n]:
        shutil.copy(f, folder / f.name)


def _a_plant_folder(folder, synth_category):
    """Good photos as a plant has them: one with an upper-case suffix each way, and beside
    them what is no photo training reads."""
    _good_photos(folder, synth_category, 12)
    (folder / "010.png").rename(folder / "010.PNG")
    Image.open(folder / "011.png").convert("RGB").save(folder / "011.JPG", format="JPEG", quality=95)
    (folder / "011.png").unlink()
    (folder / "IMG_0001.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (folder / "inspection-plan.pdf").write_bytes(b"%PDF-1.4\n")
    (folder / "notes.txt").write_text("lot 42\n")
    (folder / "report.docx").write_bytes(b"PK\x03\x04")
    Image.open(folder / "000.png").convert("P").save(folder / "part.gif")
    (folder / ".DS_Store").write_bytes(b"\0")            # a desktop's own file: nobody's photo
    (folder / "old_lot").mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(folder / "001.png", folder / "old_lot" / name)


def test_a_folder_says_what_it_holds_besides_the_photos_train_reads(synth_category, tmp_path):
    from lineguard.vision.dataset import not_read_in
    good = tmp_path / "good"
    _a_plant_folder(good, synth_category)
    (good / "raw.DNG").write_bytes(b"II*\0")
    said = {e.path.name: (e.kind, e.shown) for e in not_read_in(good)}
    assert said == {"IMG_0001.heic": ("heic", "IMG_0001.heic"), "inspection-plan.pdf": ("other", "inspection-plan.pdf"),
                    "notes.txt": ("other", "notes.txt"), "report.docx": ("other", "report.docx"),
                    "part.gif": ("gif", "part.gif"), "raw.DNG": ("raw", "raw.DNG"),
                    "old_lot": ("sub-folder", "old_lot/ (2 photos)")}, said
    # what it leaves out is exactly what train's listing does not read: nothing read is named,
    # nothing named is read; a photo's suffix in upper case is read, as inspect and watch do
    read = {p.name for p in list_images(good)}
    assert {"010.PNG", "011.JPG"} <= read and not read & set(said) and len(read) == 12


def test_train_names_each_kind_it_did_not_learn_from_and_learns_upper_case_suffixes(synth_category, tmp_path):
    pytest.importorskip("torch")
    good = tmp_path / "good"
    _a_plant_folder(good, synth_category)
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "64", "--frr", "0.1", "--threads", "1",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "12 parts learned" in r.stdout, r.stdout          # 010.PNG and 011.JPG among them
    err = _flat(r.stderr)
    assert f"not read: {good}: 6 entries not learnt from, beside its 12 photo files:" in err, err
    assert "not read: IMG_0001.heic: a phone's photo format (HEIC/HEIF) lineguard does not read: export it as " \
           "JPEG or PNG" in err, err
    assert "not read: inspection-plan.pdf, notes.txt, report.docx: not a photo format lineguard reads (.png" in err
    assert "not read: part.gif: GIF: the station judges GIFs, training does not learn from them: save it as PNG" \
        in err, err
    assert "not read: old_lot/ (2 photos): its photos are not read: name it as a folder of its own" in err, err
    assert ".DS_Store" not in err
    assert not (tmp_path / "cell.skipped.txt").exists()      # few: all named on the terminal


def test_train_refuses_a_folder_with_nothing_usable_and_says_what_it_holds(synth_category, tmp_path):
    none = tmp_path / "phone"
    none.mkdir()
    for name in ("a.heic", "b.heic", "plan.pdf"):
        (none / name).write_bytes(b"\0")
    (none / "sub").mkdir()
    shutil.copy(sorted((synth_category / "train" / "good").glob("*.png"))[0], none / "sub" / "x.png")
    r = run_in_process("train", none, "-o", "cell.lgm", "--image-size", "64", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    err = _flat(r.stderr)
    assert f"error: {none}: no images found; it holds a.heic, b.heic: a phone's photo format (HEIC/HEIF) " \
           "lineguard does not read: export them as JPEG or PNG; plan.pdf: not a photo format" in err, err
    assert "sub/ (1 photo): its photos are not read: name it as a folder of its own" in err, err
    assert "Put the good parts' photos (.png, .jpg" in err and "upper or lower case" in err, err
    assert "Traceback" not in r.stderr and not (tmp_path / "cell.lgm").exists()


def test_train_refuses_a_folder_whose_photos_are_all_unreadable_naming_them(tmp_path):
    pytest.importorskip("torch")
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(6):
        (broken / f"cam{i}.png").write_bytes(b"not a png at all")
    r = run_in_process("train", broken, "-o", "cell.lgm", "--image-size", "64", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    err = _flat(r.stderr)
    # which ones and why, not only "(6 unreadable)"
    assert f"(6 unreadable: {broken / 'cam0.png'}: is not an image lineguard can read" in err, err
    assert f"{broken / 'cam2.png'}: is not an image" in err and "; and 3 more)" in err, err


def test_train_lists_every_skipped_file_beside_the_model_when_there_are_many(synth_category, tmp_path):
    pytest.importorskip("torch")
    good = tmp_path / "good"
    _good_photos(good, synth_category, 12)
    for i in range(12):
        (good / f"sidecar{i:02d}.xml").write_text("<part/>")
    for i in range(13):
        (good / f"broken{i:02d}.png").write_bytes(b"not a png")
    out = tmp_path / "models"
    r = run_in_process("train", good, "-o", out / "cell.lgm", "--image-size", "64", "--frr", "0.1", "--threads",
                       "1", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr            # some photos unreadable, as before
    listed = out / "cell.skipped.txt"
    err = _flat(r.stderr)
    assert f"not read: {good}: 12 entries not learnt from, beside its 25 photo files (every one listed in " \
           f"{listed}):" in err, err
    assert "sidecar00.xml, sidecar01.xml, sidecar02.xml, sidecar03.xml, sidecar04.xml and 7 more: not a photo" in err
    # a few unreadable ones named with why, then how many more, and where all are
    assert err.count("skipped: ") == 6, err
    assert f"skipped: and 8 more photos that could not be read: every one listed in {listed}" in err, err
    rows = listed.read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == 25, rows
    assert f"{good / 'sidecar11.xml'}: not a photo format lineguard reads" in rows[11], rows
    assert rows[-1].startswith(f"{good / 'broken12.png'}: is not an image lineguard can read"), rows

    # trained again on a tidied folder: the old list is gone, never read as this run's
    for f in list(good.glob("sidecar*")) + list(good.glob("broken*")):
        f.unlink()
    r = run_in_process("train", good, "-o", out / "cell.lgm", "--image-size", "64", "--frr", "0.1", "--threads",
                       "1", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not listed.exists() and "not read" not in r.stderr and "skipped" not in r.stderr


def test_a_file_of_the_users_by_the_list_name_is_never_taken_away(tmp_path):
    from lineguard.cli.core import _write_skipped_list
    mine = tmp_path / "cell.skipped.txt"
    mine.write_text("my own notes on skipped parts\n")
    assert _write_skipped_list(tmp_path / "cell.lgm", ["a.pdf: not a photo"]) is None
    assert mine.read_text() == "my own notes on skipped parts\n"


def test_eval_says_what_the_category_folders_hold_besides_photos(synth_category, tmp_path):
    from lineguard.cli.core import _not_read_said
    from lineguard.vision.dataset import MVTecCategory
    cat = tmp_path / "cell"
    shutil.copytree(synth_category, cat)
    (cat / "train" / "good" / "IMG_7.heic").write_bytes(b"\0")
    (cat / "test" / "good" / "notes.txt").write_text("x")
    got = MVTecCategory(cat)
    assert sorted(e.path.name for e in got.not_read) == ["IMG_7.heic", "notes.txt"]
    said = " ".join(_not_read_said(got.not_read, got.root))
    assert "train/good/IMG_7.heic: a phone's photo format" in said and "test/good/notes.txt: not a photo" in said


# ----------------------------------------------------------------- the unusual note names the photo

def _unusual_folder(folder):
    """40 good photos: most at brightness 0.45-0.50, two tails the range is learnt with, one
    past the fence the range holds all the same (038, "unusual"), one lamp flicker (039, odd)."""
    rng = np.random.default_rng(7)
    levels = list(np.linspace(0.45, 0.50, 36)) + [0.40, 0.56, 0.605, 0.25]
    folder.mkdir()
    for i, b in enumerate(levels):
        Image.fromarray(_photo(rng, b)).save(folder / f"{i:03d}.png")


def test_train_names_the_good_photo_far_from_most_that_the_range_holds(tmp_path):
    pytest.importorskip("torch")
    from lineguard.vision.inspector import Inspector
    good = tmp_path / "good"
    _unusual_folder(good)
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "64", "--frr", "0.1", "--threads", "1",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    err = _flat(r.stderr)
    assert f"note: {good / '038.png'}: a good photo far from most (brighter than most: brightness 0.6" in err, err
    assert "which holds it all the same: a part photographed like it is judged on its score" in err
    assert f"look at: {good / '039.png'}: the photo is unlike the other good photos" in err, err
    info = Inspector.load(tmp_path / "cell.lgm").info
    (u,) = info["photo_unusual"]
    assert u["image"] == str(good / "038.png") and u["what"] == info["photo_range"]["unusual"][0], u


def test_recalibrating_the_photo_range_names_its_unusual_photos(fitted_model_path, tmp_path):
    pytest.importorskip("torch")
    from lineguard.vision.inspector import Inspector
    good = tmp_path / "new"
    _unusual_folder(good)
    insp = Inspector.load(fitted_model_path)
    c = insp.recalibrate(good, 0.1, photo_range=True)
    (u,) = c.get("photo_unusual") or [None]
    assert u["image"] == str(good / "038.png") and u["what"][0].startswith("brighter than most: brightness 0.6")
    assert [o["image"] for o in c["photo_odd"]] == [str(good / "039.png")]


def test_the_unusual_note_names_a_few_then_how_many_more(capsys):
    from lineguard.cli.core import _say_unusual
    named = [{"image": f"good/{i:03d}.png", "what": [f"darker than most: brightness 0.1{i}"]} for i in range(8)]
    pr = {"unusual": [u["what"] for u in named]}
    _say_unusual(pr, named)
    lines = [" ".join(x.split()) for x in capsys.readouterr().err.splitlines()]
    assert [x.split(":")[1].strip() for x in lines[:5]] == [f"good/{i:03d}.png" for i in range(5)], lines
    assert lines[0].startswith("note: good/000.png: a good photo far from most (darker than most: brightness 0.10)")
    assert lines[5] == ("note: and 3 more good photos far from most, held by the range all the same: "
                        "good/005.png, good/006.png, good/007.png"), lines
    assert len(lines) == 6
    # a model from before the names were kept: what is off, as before
    _say_unusual(pr)
    old = capsys.readouterr().err
    assert old.count("note: a good photo far from most (darker than most") == 8


def test_the_range_and_its_unusual_photos_come_from_one_pass():
    rng = np.random.default_rng(7)
    folder = np.stack([_photo(rng, b) for b in list(np.linspace(0.45, 0.50, 36)) + [0.40, 0.56, 0.605, 0.25]])
    pr, odd, unusual = photo_check.learn_range_and_unusual(folder)
    assert [i for i, _ in unusual] == [38] and [i for i, _ in odd] == [39]
    assert pr["unusual"] == [what for _, what in unusual]
    assert photo_check.learn_range(folder) == (pr, odd)       # the two-part answer, unchanged


def test_a_train_that_fails_leaves_no_list_beside_the_model_it_did_not_write(synth_category, tmp_path):
    """The list was written before fitting: a train that then failed (too few readable photos)
    left cell.skipped.txt beside the previous cell.lgm as if it were that model's."""
    good = tmp_path / "good"
    _good_photos(good, synth_category, 2)
    for i in range(12):
        (good / f"sidecar{i:02d}.xml").write_text("<part/>")
    out = tmp_path / "models"
    r = run_in_process("train", good, "-o", out / "cell.lgm", "--image-size", "64", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "needs at least" in r.stderr and "not read:" in r.stderr
    assert not (out / "cell.skipped.txt").exists()


def test_train_on_a_data_sets_root_names_its_good_folder(synth_category, tmp_path):
    """synth's (and MVTec's) layout given whole: "train/ (0 photos)" read as if the photos were
    missing; the refusal names train/good and the command that learns from it."""
    r = run_in_process("train", synth_category, "-o", "cell.lgm", "--image-size", "64", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    err = _flat(r.stderr)
    n = len(list((synth_category / "train" / "good").glob("*.png")))
    assert f"{synth_category}: no photos directly in it: it is a data set (train/good/ holds {n} photos" in err, err
    assert f"lineguard train {synth_category / 'train' / 'good'} -o cell.lgm" in err, err
    assert not (tmp_path / "cell.lgm").exists()
