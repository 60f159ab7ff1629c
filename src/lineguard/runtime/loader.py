"""Open an exported model (``.onnx``) as an ordinary Inspector on the chosen runtime.

Importing this module registers the opener with ``lineguard.vision.openers``, which is
how ``Inspector.load("cell.onnx")`` reaches it (``import lineguard`` imports it).
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Optional, Union

from ..vision import openers
from ..vision.errors import BundleError
from . import onnx_file

RUNTIMES = ("onnxruntime", "openvino")


def make_detector(data: bytes, manifest: dict[str, Any], threads: Optional[int] = None,
                  runtime: str = "onnxruntime", precision: Optional[str] = None):
    if runtime == "onnxruntime":
        if precision not in (None, manifest.get("precision", "fp32")):
            raise BundleError(f"ONNX Runtime runs the model at its exported precision "
                              f"({manifest.get('precision', 'fp32')}); --precision {precision} needs "
                              "--runtime openvino (bf16) or an int8 export (`lineguard export --int8`)")
        from .onnx_detector import OnnxDetector
        return OnnxDetector(data, manifest, threads)
    if runtime == "openvino":
        from .openvino_detector import OpenVinoDetector
        return OpenVinoDetector(data, manifest, threads, precision=precision or "fp32")
    raise BundleError(f"unknown runtime {runtime!r}: use {' or '.join(RUNTIMES)}")


class CalibrationMismatchWarning(UserWarning):
    """The thresholds were set on scores of another precision than the model now runs at."""


def calibration_mismatch(calibration: dict[str, Any], runtime: str, precision: str, name: str) -> Optional[str]:
    """Why the thresholds may not fit this runtime, or None.

    Precision is what moves scores (int8, bf16: about 1%, enough to flip parts near the
    threshold); ONNX Runtime, OpenVINO and torch in fp32 agree to ~1e-5, so the runtime
    alone is not a mismatch. A record without ``calibrated_on`` predates it and was set
    on torch fp32 scores, the only way there was then.
    """
    on = calibration.get("calibrated_on") or {"runtime": "torch", "precision": "fp32"}
    if on.get("precision", "fp32") == precision:
        return None
    how = f"--runtime openvino --precision {precision}" if runtime == "openvino" else ""
    return (f"{name}: its thresholds were set on {on.get('runtime', 'torch')} {on.get('precision')} scores, but it "
            f"now runs in {precision} ({runtime}), whose scores differ: good parts may be rejected or defects "
            f"pass. Recalibrate on good parts the model did not learn from: lineguard recalibrate {name} "
            f"GOOD_DIR {how + ' ' if how else ''}-o NEW.onnx")


def load_inspector(cls: type, path: Union[str, os.PathLike, bytes], threads: Optional[int] = None,
                   runtime: str = "onnxruntime", precision: Optional[str] = None):
    """Build an ``Inspector`` (``cls``) around an exported model; used by ``Inspector.load``."""
    from ..vision.preprocess import Preprocess

    data, manifest, digest = onnx_file.load(path)
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    try:
        det = make_detector(data, manifest, threads, runtime, precision)
        pre = Preprocess.from_dict(manifest["preprocess"])
        info = dict(manifest.get("info", {}))
        info.update({"runtime": det.runtime, "precision": det.precision,
                     "source_model_id": manifest.get("source_model_id"),
                     "lineguard_version": manifest.get("lineguard_version")})
        insp = cls(det, pre, manifest["calibration"], info, min_region_area=int(manifest.get("min_region_area", 4)))
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{name}: exported model settings are incomplete ({type(exc).__name__}: {exc}); "
                          "export it again with this lineguard version") from exc
    mismatch = calibration_mismatch(manifest["calibration"], det.runtime, det.precision, name)
    if mismatch:
        insp.info["calibration_mismatch"] = mismatch
        warnings.warn(mismatch, CalibrationMismatchWarning, stacklevel=3)
    insp._model_id = digest[:16]
    return insp


openers.register(onnx_file.is_export, load_inspector)
