"""Defects found walking the edge deployment (export, int8/bf16, the photo check):
each test failed on the code before its fix."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from click.testing import CliRunner  # noqa: E402

from lineguard.cli import app  # noqa: E402
from lineguard.vision.errors import BundleError, ImageError  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.result import Verdict  # noqa: E402


def _good(synth_category: Path, n: int = 4) -> list[Path]:
    return sorted((synth_category / "test" / "good").glob("*.png"))[:n]


# -- 1. a refused export leaves nothing, and keeps the file it would have replaced ----------

def test_refused_recalibration_leaves_no_export_and_keeps_the_old_file(fitted_model_path, synth_category,
                                                                        tmp_path):
    target = tmp_path / "cell-int8.onnx"
    target.write_bytes(b"the good model deployed yesterday")
    r = CliRunner().invoke(app, ["export", str(fitted_model_path), "--no-check", "--threads", "1",
                                 "--recalibrate", str(synth_category / "train" / "good"), "-o", str(target)])
    assert r.exit_code == 2, r.output
    assert "learned from" in " ".join(r.output.split())
    assert target.read_bytes() == b"the good model deployed yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell-int8.onnx"]     # no partial file left


def test_refused_recalibration_writes_no_new_file(fitted_model_path, synth_category, tmp_path):
    target = tmp_path / "new.onnx"
    r = CliRunner().invoke(app, ["export", str(fitted_model_path), "--no-check", "--threads", "1",
                                 "--recalibrate", str(synth_category / "train" / "good"), "-o", str(target)])
    assert r.exit_code == 2, r.output
    assert list(tmp_path.iterdir()) == []


def test_int8_parity_is_said_as_moved_scores_not_as_a_pass(fitted_model_path, synth_category, tmp_path):
    target = tmp_path / "cell-int8.onnx"
    r = subprocess.run([sys.executable, "-m", "lineguard", "export", str(fitted_model_path), "--int8",
                        "--recalibrate", str(synth_category / "test" / "good"), "--frr", "0.2",
                        "-o", str(target), "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "int8 moves scores" in err and "set from the int8 graph's own scores" in err, r.stderr
    assert "parity:" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell-int8.onnx"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Inspector.load(target).calibration["calibrated_on"]["precision"] == "int8"


# -- 2. a greyscale photo shown to a colour model -----------------------------------------

def _grey_forms(path: Path):
    im = Image.open(path).convert("L")
    a = np.asarray(im)
    return {"mode L": im, "mode LA": im.convert("LA"), "(H, W)": a, "(H, W, 1)": a[:, :, None],
            "I;16": Image.fromarray(a.astype(np.uint16))}   # 16-bit values past 8 bits: refused (PhotoTooDeep)


def test_a_colour_model_names_a_greyscale_photo_and_never_passes_it(fitted_inspector, synth_category):
    assert fitted_inspector.info["photo_colour"] == "colour"
    for f in _good(synth_category):
        colour = fitted_inspector.inspect(f)
        assert not any("greyscale" in i for i in colour.photo_issues)
        for how, grey in _grey_forms(f).items():
            r = fitted_inspector.inspect(grey)
            assert any(i.startswith("greyscale photo") for i in r.photo_issues), how
            assert r.verdict is not Verdict.OK, how
            if r.verdict is Verdict.REVIEW and r.score <= fitted_inspector.review_threshold:
                assert r.regions == []           # the photo is off, not a spot on the part


def test_models_from_before_and_grey_models_are_not_checked(fitted_inspector, synth_category):
    insp = Inspector(fitted_inspector.detector, fitted_inspector.preprocess, fitted_inspector.calibration,
                     {k: v for k, v in fitted_inspector.info.items() if k != "photo_colour"})
    grey = _grey_forms(_good(synth_category)[0])["mode L"]
    assert not any("greyscale" in i for i in insp.inspect(grey).photo_issues)
    insp.info["photo_colour"] = "grey"
    assert not any("greyscale" in i for i in insp.inspect(grey).photo_issues)


def test_the_colour_setting_travels_with_the_export_and_is_relearnt_with_the_photo_range(
        exported, synth_category, tmp_path):
    insp = Inspector.load(exported)
    assert insp.info["photo_colour"] == "colour"
    grey = _grey_forms(_good(synth_category)[0])["(H, W)"]
    assert any("greyscale" in i for i in insp.inspect(grey).photo_issues)
    # a planned switch to a mono camera: recalibrated with --photo-range on its photos
    mono = tmp_path / "mono"
    mono.mkdir()
    for f in sorted((synth_category / "test" / "good").glob("*.png")):
        Image.open(f).convert("L").save(mono / f.name)
    insp.recalibrate(mono, 0.2, photo_range=True)
    assert insp.info["photo_colour"] == "grey"
    insp.save(tmp_path / "mono.onnx")
    again = Inspector.load(tmp_path / "mono.onnx")
    assert again.info["photo_colour"] == "grey"
    assert not any("greyscale" in i for i in again.inspect(grey).photo_issues)


# -- 3. a model calibrated in bf16 runs in bf16 unless told otherwise ------------------------

def _bf16_copy(exported: Path, tmp_path: Path) -> Path:
    insp = Inspector.load(exported)
    bf16 = dict(insp.calibration, calibrated_on={"runtime": "openvino", "precision": "bf16"})
    data, _ = insp.detector.file_bytes({"calibration": bf16})
    path = tmp_path / "bf16.onnx"
    path.write_bytes(data)
    return path


def test_a_bf16_calibrated_model_loads_on_openvino_bf16(exported, tmp_path):
    pytest.importorskip("openvino")
    from lineguard.runtime.openvino_detector import cpu_has_bf16
    if not cpu_has_bf16():
        pytest.skip("this CPU has no native bfloat16")
    path = _bf16_copy(exported, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # thresholds and runtime agree: nothing to warn about
        insp = Inspector.load(path)
    assert (insp.detector.runtime, insp.detector.precision) == ("openvino", "bf16")
    assert "calibration_mismatch" not in insp.info
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Inspector.load(path, runtime="openvino").detector.precision == "bf16"


def test_a_bf16_calibrated_model_without_openvino_is_refused_saying_what_to_do(exported, tmp_path, monkeypatch):
    from lineguard.runtime import openvino_detector
    path = _bf16_copy(exported, tmp_path)

    def no_openvino():
        raise BundleError("the OpenVINO runtime needs openvino: pip install 'lineguard[openvino]'")
    monkeypatch.setattr(openvino_detector, "_core", no_openvino)
    with pytest.raises(BundleError) as err:
        Inspector.load(path)
    msg = str(err.value)
    assert "openvino bf16" in msg and "pip install 'lineguard[openvino]'" in msg and "--runtime onnxruntime" in msg
    # asked for by name, ONNX Runtime runs it, and says the thresholds do not fit
    from lineguard.runtime.loader import CalibrationMismatchWarning
    with pytest.warns(CalibrationMismatchWarning):
        insp = Inspector.load(path, runtime="onnxruntime")
    assert insp.detector.runtime == "onnxruntime"


def test_the_cli_says_a_calibration_mismatch_in_one_line(exported, synth_category, tmp_path):
    path = _bf16_copy(exported, tmp_path)
    r = subprocess.run([sys.executable, "-m", "lineguard", "inspect", str(path), str(_good(synth_category)[0]),
                        "--runtime", "onnxruntime", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    said = [ln for ln in lines if "thresholds were set on openvino bf16" in ln]
    assert len(said) == 1 and said[0].startswith("warning: "), r.stderr
    assert "CalibrationMismatchWarning" not in r.stderr and "warnings.warn" not in r.stderr


# -- 4. lanes follow the spinning setting --------------------------------------------------

def test_lanes_follow_spinning(exported, fitted_inspector, synth_category, monkeypatch):
    from lineguard.runtime import onnx_detector
    made = []
    real = onnx_detector.make_session

    def spy(model, threads=None, spinning=True):
        made.append((threads, spinning))
        return real(model, threads, spinning)
    monkeypatch.setattr(onnx_detector, "make_session", spy)
    insp = Inspector.load(exported, threads=2)
    x = fitted_inspector.preprocess.load(_good(synth_category)[0])[0]
    insp.detector.score_in_lane(x)
    assert made[-1] == (1, True)
    insp.detector.set_spinning(False)           # the station's setting
    made.clear()
    insp.detector.score_in_lane(x)
    assert (1, False) in made and (1, True) not in made
    assert all(not spinning for _, spinning in made)


# -- 5. smaller ----------------------------------------------------------------------------

@pytest.mark.parametrize("n", ["0", "-1"])
def test_export_refuses_threads_below_one(fitted_model_path, tmp_path, n):
    r = CliRunner().invoke(app, ["export", str(fitted_model_path), "-o", str(tmp_path / "x.onnx"), "--threads", n])
    assert r.exit_code == 2 and "error:" in r.output and "at least 1" in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("n", [0, -1])
def test_exported_models_refuse_threads_below_one(exported, n):
    with pytest.raises((BundleError, ValueError), match="at least 1"):
        Inspector.load(exported, threads=n)


def test_a_float_array_in_0_255_is_refused_not_read_as_white(fitted_inspector, synth_category):
    a = np.asarray(Image.open(_good(synth_category)[0]).convert("RGB")).astype(np.float32)
    with pytest.raises(ImageError, match="outside 0-1"):
        fitted_inspector.inspect(a)
    ok = fitted_inspector.inspect(a / 255.0)
    assert ok.verdict is fitted_inspector.inspect(_good(synth_category)[0]).verdict


def test_a_model_files_settings_are_read_without_torch(fitted_model_path, fitted_inspector):
    """`lineguard info fast.lgm` on the edge install: the manifest is plain JSON."""
    code = f"""
import importlib.abc, json, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "scipy"):
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, _Block())
from lineguard.vision.bundle import describe
print(json.dumps(describe({str(fitted_model_path)!r}), default=str))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = json.loads(json.dumps(Inspector.load(fitted_model_path).describe(), default=str))
    assert got == want
