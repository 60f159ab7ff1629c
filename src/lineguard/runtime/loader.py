"""Open an exported model (``.onnx``) as an ordinary Inspector on the chosen runtime.

Importing this module registers the opener with ``lineguard.vision.openers``, which is
how ``Inspector.load("cell.onnx")`` reaches it (``import lineguard`` imports it).
"""
from __future__ import annotations

import os
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
    insp._model_id = digest[:16]
    return insp


openers.register(onnx_file.is_export, load_inspector)
