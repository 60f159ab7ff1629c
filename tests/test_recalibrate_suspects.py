"""Recalibrating on a folder where one odd good photo sets the threshold: on 64 held-out
KolektorSDD photos one (a fibre, a dark smear) raised the int8 threshold 28.98 -> 35.19
and real defects judged OK went 22 -> 47 of 52, with exit 0 and only a "look at:" line.
Now `recalibrate` (and `export --recalibrate`) refuses unless told what to do with it."""
from __future__ import annotations


import numpy as np
import pytest
from cli_runner import run_in_process

pytest.importorskip("torch")

from lineguard.vision.imageio import load_image, save_png_atomic  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.synth import add_defect  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def model_and_folders(synth_category, tmp_path_factory):
    root = tmp_path_factory.mktemp("suspects")
    train = sorted((synth_category / "train" / "good").glob("*.png"))[:12]
    insp = Inspector.fit(train, image_size=SIZE, false_reject_rate=0.1)
    model = insp.save(root / "cell.lgm")
    fresh = sorted((synth_category / "test" / "good").glob("*.png"))
    odd = root / "odd"
    odd.mkdir()
    bad, _ = add_defect(load_image(fresh[0]), "missing_coating", np.random.default_rng(3))
    save_png_atomic(bad, odd / "000_odd.png")
    for f in fresh[1:]:
        (odd / f.name).write_bytes(f.read_bytes())
    return model, odd


def _cli(*args, cwd):
    return run_in_process(*args, cwd=cwd)     # tests/cli_runner.py: the verb in this process


def test_the_record_says_when_a_named_photo_sets_the_threshold_and_can_leave_it_out(model_and_folders):
    model, odd = model_and_folders
    kept = Inspector.load(model)
    c = kept.recalibrate(odd, 0.1)
    assert [s["image"] for s in c["suspect_good"]] == [str(odd / "000_odd.png")]
    assert c["threshold_set_by_suspects"] is True
    assert kept.threshold == pytest.approx(c["suspect_good"][0]["score"])       # the odd photo's own score
    left = Inspector.load(model)
    c2 = left.recalibrate(odd, 0.1, odd_parts="leave out")
    assert c2["suspects_excluded"] == 1 and c2["n_calibration"] == c["n_calibration"] - 1
    assert left.threshold == pytest.approx(c["threshold_without_suspects"]) and left.threshold < kept.threshold
    assert c2["threshold_with_suspects"] == pytest.approx(kept.threshold)
    with pytest.raises(ValueError, match="odd_parts"):
        Inspector.load(model).recalibrate(odd, 0.1, odd_parts="maybe")


def test_recalibrate_refuses_a_threshold_set_by_a_photo_it_names_odd(model_and_folders, tmp_path):
    model, odd = model_and_folders
    out = tmp_path / "v2.lgm"
    r = _cli("recalibrate", model, odd, "-o", out, "--threads", 1, cwd=tmp_path)
    err = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stdout + r.stderr
    assert not out.exists()
    ref = Inspector.load(model)
    c = ref.recalibrate(odd, 0.1)
    assert "000_odd.png" in err and f"{ref.threshold:.4f}" in err and f"{c['threshold_without_suspects']:.4f}" in err
    assert "every defect scoring below" in err and "remove it from the folder" in err
    assert "--keep-odd-parts" in err and "--leave-out-odd-parts" in err
    # with too few parts for the target the highest score is the threshold: said so
    r = _cli("recalibrate", model, odd, "-o", out, "--threads", 1, "--frr", 0.05, cwd=tmp_path)
    assert r.returncode == 2 and not out.exists()
    assert "10 good parts are too few for a 5.00% false-reject target (needs 19)" in " ".join(r.stderr.split())
    r = _cli("recalibrate", model, odd, "-o", out, "--threads", 1, "--keep-odd-parts", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Inspector.load(out).threshold == pytest.approx(ref.threshold)
    assert "kept: as asked" in " ".join(r.stderr.split())
    r = _cli("recalibrate", model, odd, "-o", out, "--threads", 1, "--leave-out-odd-parts", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Inspector.load(out).threshold == pytest.approx(c["threshold_without_suspects"])
    assert "left out: 1 of them" in " ".join(r.stderr.split())
    r = _cli("recalibrate", model, odd, "-o", out, "--keep-odd-parts", "--leave-out-odd-parts", cwd=tmp_path)
    assert r.returncode == 2 and "contradict" in r.stderr


def test_a_folder_without_odd_photos_recalibrates_as_before(model_and_folders, synth_category, tmp_path):
    model, _ = model_and_folders
    out = tmp_path / "v2.lgm"
    r = _cli("recalibrate", model, synth_category / "test" / "good", "-o", out, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.is_file()


def test_export_recalibrate_refuses_the_same_and_writes_nothing(model_and_folders, tmp_path):
    pytest.importorskip("onnxruntime")
    model, odd = model_and_folders
    target = tmp_path / "cell.onnx"
    r = _cli("export", model, "--recalibrate", odd, "--no-check", "-o", target, "--threads", 1, cwd=tmp_path)
    err = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stdout + r.stderr
    assert "000_odd.png" in err and "every defect scoring below" in err
    assert "--keep-odd-parts" in err and "--leave-out-odd-parts" in err
    assert not target.exists() and not any(p.name.startswith("cell") for p in tmp_path.iterdir())
    # the same choice as recalibrate's, on the export itself
    r = _cli("export", model, "--recalibrate", odd, "--no-check", "-o", target, "--threads", 1,
             "--leave-out-odd-parts", cwd=tmp_path)
    assert r.returncode == 0 and target.is_file(), r.stdout + r.stderr
    assert "left out" in r.stdout + r.stderr
