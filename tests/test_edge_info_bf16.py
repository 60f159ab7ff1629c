"""`lineguard info` on a model recalibrated in OpenVINO bf16, on a PC without OpenVINO.

The README says `inspect`, `info`, `eval` and `recalibrate` run such a model in fp32 with
`--runtime onnxruntime`; `info` had no such option and refused the file (exit 2), though
showing what a model file holds needs no runtime. OpenVINO's absence is simulated by
making `import openvino` fail, as on an install without the [openvino] extra.
"""
from __future__ import annotations

import json
import sys

import pytest
from cli_runner import run_in_process

pytest.importorskip("onnxruntime")

from lineguard.vision.errors import BundleError  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402


@pytest.fixture
def bf16_model(exported, tmp_path, monkeypatch):
    """``exported`` with thresholds set on OpenVINO bf16, on a machine without OpenVINO."""
    insp = Inspector.load(exported)
    calib = dict(insp.calibration, calibrated_on={"runtime": "openvino", "precision": "bf16"})
    data, _ = insp.detector.file_bytes({"calibration": calib})
    path = tmp_path / "cell-bf16.onnx"
    path.write_bytes(data)
    monkeypatch.setitem(sys.modules, "openvino", None)       # `import openvino` raises ImportError
    return path


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_info_shows_a_bf16_model_where_openvino_is_missing(bf16_model):
    r = run_in_process("info", bf16_model)
    assert r.returncode == 0, r.stdout + r.stderr
    shown = json.loads(r.stdout)
    assert shown["calibration"]["calibrated_on"] == {"runtime": "openvino", "precision": "bf16"}
    # what it runs on where it can, not what read it here
    assert (shown["info"]["runtime"], shown["info"]["precision"]) == ("openvino", "bf16")
    assert "calibration_mismatch" not in shown["info"]
    said = _flat(r.stderr)
    assert "this machine cannot run it at its precision (openvino bf16: OpenVINO is not installed here)" in said
    assert "run it in fp32 with --runtime onnxruntime" in said
    assert f"lineguard recalibrate {bf16_model} GOOD_DIR --runtime onnxruntime -o NEW.onnx" in said
    assert "Traceback" not in r.stderr


def test_info_takes_runtime_onnxruntime_as_the_readme_says(bf16_model):
    from lineguard.runtime.loader import CalibrationMismatchWarning
    with pytest.warns(CalibrationMismatchWarning, match="thresholds were set on openvino bf16"):   # said, as inspect
        r = run_in_process("info", bf16_model, "--runtime", "onnxruntime")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["info"]["runtime"] == "onnxruntime"


def test_info_runtime_on_a_lgm_is_refused(fitted_model_path):
    r = run_in_process("info", fitted_model_path, "--runtime", "onnxruntime")
    assert r.returncode == 2 and "--runtime is for an exported .onnx model" in r.stderr, r.stderr


def test_the_refusal_names_recalibrate_and_not_onnx_runtime_as_the_default(bf16_model):
    with pytest.raises(BundleError) as refused:
        Inspector.load(bf16_model)
    said = _flat(str(refused.value))
    assert "(the default)" not in said, said          # for this model ONNX Runtime is not the default
    assert "OpenVINO is not installed here" in said
    assert "inspect, eval and recalibrate run it in fp32 anyway with --runtime onnxruntime" in said
    assert "info shows what it holds" in said
