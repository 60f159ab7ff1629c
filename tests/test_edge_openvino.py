"""The optional OpenVINO runtime for exported models: fp32 judges exactly like ONNX
Runtime and torch; bf16 (where the CPU has it) keeps a quality floor; wrong combinations
are refused with a message that says what to do."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from lineguard.runtime.onnx_export import export_onnx  # noqa: E402
from lineguard.runtime.openvino_detector import OpenVinoDetector, cpu_has_bf16  # noqa: E402
from lineguard.vision.errors import BundleError  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.metrics import image_auroc  # noqa: E402

SCORE_RTOL = 1e-4
AUROC_FLOOR = 0.9        # fp32 gives ~0.98 on this synthetic line at 128 px
BF16_AUROC_FLOOR = 0.9


def _files(category: Path) -> list[Path]:
    return sorted(category.glob("test/*/*.png"))


def test_fp32_judges_like_onnxruntime_and_torch(fitted_inspector, exported, synth_category):
    files = _files(synth_category)
    ov = Inspector.load(exported, runtime="openvino", threads=2)
    assert isinstance(ov.detector, OpenVinoDetector)
    assert ov.info["runtime"] == "openvino" and ov.detector.get_params()["precision"] == "fp32"
    ort = Inspector.load(exported)
    r_ov, r_ort, r_t = ov.inspect_batch(files), ort.inspect_batch(files), fitted_inspector.inspect_batch(files)
    assert [r.verdict for r in r_ov] == [r.verdict for r in r_ort] == [r.verdict for r in r_t]
    np.testing.assert_allclose([r.score for r in r_ov], [r.score for r in r_t], rtol=SCORE_RTOL)
    assert [len(r.regions) for r in r_ov] == [len(r.regions) for r in r_t]
    # the lanes (one stream per core) give each part what it gets alone
    alone = [ov.inspect(f) for f in files[:5]]
    np.testing.assert_allclose([r.score for r in r_ov[:5]], [r.score for r in alone], rtol=1e-5)
    assert ov.model_id == ort.model_id


def test_bf16_keeps_a_quality_floor_or_is_refused(exported, synth_category):
    files = _files(synth_category)
    labels = [int(f.parent.name != "good") for f in files]
    if not cpu_has_bf16():
        with pytest.raises(BundleError, match="bfloat16"):
            Inspector.load(exported, runtime="openvino", precision="bf16")
        return
    from lineguard.runtime.loader import CalibrationMismatchWarning
    with pytest.warns(CalibrationMismatchWarning, match="bf16"):   # fp32 thresholds on bf16 scores
        insp = Inspector.load(exported, runtime="openvino", precision="bf16")
    assert insp.detector.get_params()["precision"] == "bf16"
    scores = [r.score for r in insp.inspect_batch(files)]
    assert image_auroc(scores, labels) >= BF16_AUROC_FLOOR


def test_wrong_combinations_are_refused(fitted_model_path, exported, tmp_path):
    with pytest.raises(BundleError, match="export it first"):
        Inspector.load(fitted_model_path, runtime="openvino")
    with pytest.raises(BundleError, match="needs --runtime openvino"):
        Inspector.load(exported, precision="bf16")
    with pytest.raises(BundleError, match="unknown runtime"):
        Inspector.load(exported, runtime="tensorrt")
    with pytest.raises(ValueError, match="precision"):
        Inspector.load(exported, runtime="openvino", precision="fp8")


def test_int8_export_runs_on_onnxruntime_only(fitted_inspector, synth_category, tmp_path):
    from lineguard.vision.imageio import load_image
    files = _files(synth_category)[:8]
    calib = np.stack([fitted_inspector.preprocess.apply(load_image(f))[0] for f in files])
    path = tmp_path / "cell-int8.onnx"
    export_onnx(fitted_inspector, path, int8=True, calibration_images=calib)
    with pytest.raises(BundleError, match="ONNX Runtime only"):
        Inspector.load(path, runtime="openvino")


def test_cli_inspects_with_openvino(exported, synth_category, tmp_path):
    files = _files(synth_category)[:4]
    r = subprocess.run([sys.executable, "-m", "lineguard", "inspect", str(exported), *map(str, files), "--json",
                        "--runtime", "openvino", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    want = Inspector.load(exported).inspect_batch(files)
    assert [row["verdict"] for row in rows] == [w.verdict.value for w in want]
    r = subprocess.run([sys.executable, "-m", "lineguard", "inspect", str(exported), str(files[0]),
                        "--runtime", "tensorrt"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "tensorrt" in r.stderr


def test_cli_evaluates_an_export_on_openvino(exported, synth_category, tmp_path):
    """What a user runs before choosing bf16 for a line: eval on their own labelled parts."""
    r = subprocess.run([sys.executable, "-m", "lineguard", "eval", str(synth_category), "--model", str(exported),
                        "--runtime", "openvino", "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    auroc = float(next(ln for ln in r.stdout.splitlines() if "image_auroc" in ln).split(":")[1])
    assert auroc >= AUROC_FLOOR
    r = subprocess.run([sys.executable, "-m", "lineguard", "eval", str(synth_category), "--runtime", "openvino"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--model MODEL.onnx" in r.stderr


def test_cli_recalibrates_for_bf16(exported, synth_category, tmp_path):
    """Thresholds set on OpenVINO bf16's own scores; opening that file at bf16 is silent,
    at fp32 it warns (the thresholds belong to bf16 scores)."""
    import warnings

    from lineguard.runtime.loader import CalibrationMismatchWarning
    from lineguard.vision.calibration import conformal_threshold
    from lineguard.vision.imageio import load_image
    good = synth_category / "test" / "good"
    target = tmp_path / "cell-bf16.onnx"
    r = subprocess.run([sys.executable, "-m", "lineguard", "recalibrate", str(exported), str(good), "--runtime",
                        "openvino", "--precision", "bf16", "--frr", "0.2", "-o", str(target), "--threads", "1"],
                       capture_output=True, text=True, timeout=300)
    if not cpu_has_bf16():
        assert r.returncode == 2 and "bfloat16" in r.stderr and not target.exists()
        return
    assert r.returncode == 0, r.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        insp = Inspector.load(target, runtime="openvino", precision="bf16", threads=1)
    assert insp.calibration["calibrated_on"] == {"runtime": "openvino", "precision": "bf16"}
    x = np.stack([insp.preprocess.apply(load_image(f))[0] for f in sorted(good.glob("*.png"))])
    want, _ = conformal_threshold(insp.detector.score(x)[0], 0.2)
    assert insp.threshold == pytest.approx(want, rel=1e-6)
    # without --runtime it runs where its thresholds were set (tests/test_edge_walk.py);
    # on ONNX Runtime, asked for by name, its bf16 thresholds do not fit fp32 scores
    assert Inspector.load(target, threads=1).detector.precision == "bf16"
    with pytest.warns(CalibrationMismatchWarning, match="bf16"):
        Inspector.load(target, runtime="onnxruntime")
