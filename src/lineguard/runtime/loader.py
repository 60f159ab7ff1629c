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
            exported = manifest.get("precision", "fp32")
            # one way per precision: "needs --runtime openvino (bf16) or an int8 export" read as if
            # an int8 export gave bf16
            if precision == "bf16":
                way = "--precision bf16 needs --runtime openvino (bf16 runs on OpenVINO only)"
            elif precision == "int8":
                way = "--precision int8 needs an int8 export of the model (`lineguard export --int8`)"
            else:
                way = f"--precision {precision} needs an export at that precision (`lineguard export`)"
            raise BundleError(f"ONNX Runtime runs the model at its exported precision ({exported}); {way}")
        from .onnx_detector import OnnxDetector
        return OnnxDetector(data, manifest, threads)
    if runtime == "openvino":
        from .openvino_detector import OpenVinoDetector
        return OpenVinoDetector(data, manifest, threads, precision=precision or "fp32")
    raise BundleError(f"unknown runtime {runtime!r}: use {' or '.join(RUNTIMES)}")


class CalibrationMismatchWarning(UserWarning):
    """The thresholds were set on scores of another precision than the model now runs at.

    The command line shows it as one ``warning:`` line (``one_line``), without the
    source line Python adds to a warning."""

    one_line = True


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
    # the runtime named: without it, recalibrate would run the file on the one its old thresholds name
    how = f"--runtime openvino --precision {precision}" if runtime == "openvino" else f"--runtime {runtime}"
    return (f"{name}: its thresholds were set on {on.get('runtime', 'torch')} {on.get('precision')} scores, but it "
            f"now runs in {precision} ({runtime}), whose scores differ: good parts may be rejected or defects "
            f"pass. Recalibrate on good parts the model did not learn from: lineguard recalibrate {name} "
            f"GOOD_DIR {how + ' ' if how else ''}-o NEW.onnx")


def calibrated_runtime(manifest: dict[str, Any]) -> tuple[str, Optional[str]]:
    """The runtime and precision an exported model's thresholds were set on, to run it with
    when none is asked for: ONNX Runtime at the export's precision, unless they were set on
    OpenVINO at another precision (``recalibrate --runtime openvino --precision bf16``)."""
    on = (manifest.get("calibration") or {}).get("calibrated_on") or {}
    exported_at = manifest.get("precision", "fp32")
    if on.get("runtime") == "openvino" and on.get("precision", "fp32") != exported_at:
        return "openvino", on.get("precision")
    return "onnxruntime", None


def _calibrated_runtime_missing(name: str, runtime: str, precision: Optional[str], why: str) -> str:
    return (f"{name}: its thresholds were set on {runtime} {precision} scores, and this machine cannot run it so "
            f"({why}). Thresholds of another precision do not fit its scores here (good parts rejected or defects "
            f"passed), so it is not run otherwise by default: install OpenVINO (pip install 'lineguard[openvino]') "
            f"on a CPU with native bfloat16, or give --runtime onnxruntime to run it in fp32 anyway (it says the "
            f"thresholds do not fit) and recalibrate it for fp32: lineguard recalibrate {name} GOOD_DIR "
            f"--runtime onnxruntime -o NEW.onnx")


def load_inspector(cls: type, path: Union[str, os.PathLike, bytes], threads: Optional[int] = None,
                   runtime: Optional[str] = None, precision: Optional[str] = None):
    """Build an ``Inspector`` (``cls``) around an exported model; used by ``Inspector.load``.

    ``runtime`` None: the runtime and precision its thresholds were set on
    (:func:`calibrated_runtime`; ONNX Runtime for every model not recalibrated in bf16),
    refused with what to do where that runtime is missing (``runtime="onnxruntime"``
    runs it there anyway, with a ``CalibrationMismatchWarning``)."""
    from ..vision.preprocess import Preprocess

    data, manifest, digest = onnx_file.load(path)
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    cal_runtime, cal_precision = calibrated_runtime(manifest)
    chosen = precision is None and runtime in (None, cal_runtime)
    if chosen:              # what the thresholds were set on (--runtime openvino alone: at their precision)
        runtime, precision = cal_runtime, cal_precision
    elif runtime is None:   # a precision alone: ONNX Runtime (bf16 there is refused, naming --runtime openvino)
        runtime = "onnxruntime"
    if threads is not None and int(threads) < 1:
        raise BundleError(f"threads must be at least 1, got {threads}")
    try:
        try:
            det = make_detector(data, manifest, threads, runtime, precision)
        except BundleError as exc:
            if chosen and runtime != "onnxruntime":
                raise BundleError(_calibrated_runtime_missing(name, runtime, precision, str(exc))) from exc
            raise
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
