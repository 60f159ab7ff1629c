"""A precision ONNX Runtime cannot run is refused with the one way to it: "--precision bf16
needs --runtime openvino (bf16) or an int8 export" read as if an int8 export gave bf16."""
from __future__ import annotations

import pytest

from lineguard.runtime.loader import make_detector
from lineguard.vision.errors import BundleError


def _refusal(precision, exported="fp32"):
    with pytest.raises(BundleError) as exc:
        make_detector(b"", {"precision": exported}, runtime="onnxruntime", precision=precision)
    return str(exc.value)


def test_bf16_on_onnx_runtime_points_to_openvino_only():
    msg = _refusal("bf16")
    assert "--precision bf16 needs --runtime openvino" in msg and "int8" not in msg, msg


def test_int8_on_an_fp32_export_points_to_an_int8_export():
    msg = _refusal("int8")
    assert "--precision int8 needs an int8 export" in msg and "lineguard export --int8" in msg
    assert "openvino" not in msg.lower() and "bf16" not in msg, msg
