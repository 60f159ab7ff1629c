"""The one-file model (``.lgm``): safe to load from an untrusted source.

Layout: a safetensors file. Tensors are the detector's fitted state (memory bank or
Gaussians) and the folded backbone weights, so the file alone reproduces the model.
The safetensors header's ``__metadata__`` carries two strings: ``lineguard`` (the
manifest as JSON: settings, calibration, versions) and ``content_sha256`` (a hash over
the manifest and every tensor's name, dtype, shape and bytes).

Loading parses the header by hand, checks lengths, recomputes the hash and only then
hands bytes to numpy: nothing is ever unpickled, and a truncated, tampered or foreign
file is refused with a message that says which.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from .atomic import atomic_write_bytes
from .errors import BundleError, ModelFileCorrupt

FORMAT = "lineguard-model"
FORMAT_VERSION = 1
SUFFIX = ".lgm"
# A model file is a few MB; a header beyond this is not ours.
_MAX_HEADER = 16 * 1024 * 1024

# The values this lineguard knows for each setting a model file carries and it acts on.
# A model from a newer lineguard may carry a value (search="int4") or a setting this one
# has never heard of; run anyway, it would score another way than it was calibrated
# (an int4 bank searched as int8: its thresholds then fit other scores) and say nothing.
# So every loaded file is checked against these (check_settings), once, where it is
# read: ``.lgm`` in :func:`loads`, ``.onnx`` in runtime.onnx_file.load. Torch-free (an
# edge install reads .lgm manifests for ``info``); the detectors take their choices from
# here, so what fit accepts and what a file may say cannot drift apart.
DETECTOR_NAMES = ("patchcore", "padim")
BACKBONE_NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2")
STAGE_NAMES = tuple(f"stage{i}" for i in range(7))     # both backbone families have stages 0..6
SEARCHES = ("int8", "float32")
IMAGE_SCORES = ("map_max", "max", "topk")
POOL_PADDINGS = ("zeros", "edge")
EXPORT_PRECISIONS = ("fp32", "int8")                   # what `lineguard export` writes
RUNTIMES = ("torch", "onnxruntime", "openvino")         # what thresholds can have been set on
PRECISIONS = ("fp32", "int8", "bf16")
# calibration key: the prints (inspector.photo_prints) of the good photos held out of training
# to set the reject threshold. The threshold sits above all but its target share of them by
# construction, so a false-reject rate measured on them (`lineguard stress` on the training
# folder: 0% on the 12 held-out parts) is where the threshold was put, not a measurement.
# Kept in the calibration record, so a recalibration (a new record, set on other parts)
# drops them with the threshold they set.
CALIBRATION_PHOTOS = "calibration_photos"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _one_of(values: tuple) -> tuple[Any, str]:
    return (lambda v: isinstance(v, str) and v in values), ", ".join(map(repr, values))


_NUMBER = (_is_num, "a number")
_INT = (_is_int, "a whole number")
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_LAYERS = (lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, str) and x in STAGE_NAMES
                                                                          for x in v),
           "a list of " + ", ".join(STAGE_NAMES))
_BACKBONE_PARAMS = {"backbone": _one_of(BACKBONE_NAMES), "layers": _LAYERS, "sigma": _NUMBER, "batch_size": _INT,
                    "seed": _INT, "pool_padding": _one_of(POOL_PADDINGS)}
# every keyword argument of each detector's __init__ (tests/test_model_settings_known.py
# holds these to the classes' signatures)
DETECTOR_PARAMS: dict[str, dict[str, tuple[Any, str]]] = {
    "patchcore": {**_BACKBONE_PARAMS, "coreset_ratio": _NUMBER, "projection_dim": _INT,
                  "image_score": _one_of(IMAGE_SCORES), "top_k": _INT, "position_norm": _BOOL, "norm_images": _INT,
                  "max_features_in_memory": (lambda v: v is None or _is_int(v), "a whole number or null"),
                  "search": _one_of(SEARCHES),
                  "extra_scales": (lambda v: isinstance(v, (list, tuple)) and all(_is_num(x) for x in v),
                                   "a list of numbers")},
    "padim": {**_BACKBONE_PARAMS, "n_features": _INT, "regularization": _NUMBER},
}


def _preprocess_settings() -> dict[str, tuple[Any, str]]:
    from .imageio import SENSOR_BITS
    from .preprocess import ORIENT_POLICIES, RESIZE_POLICIES

    def size(v: Any) -> bool:
        return _is_int(v) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v))
    return {"image_size": (size, "a whole number or [height, width]"), "resize": _one_of(RESIZE_POLICIES),
            "orient": _one_of(ORIENT_POLICIES),
            "roi": (lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) == 4
                                            and all(_is_int(x) for x in v)), "null or [x, y, width, height]"),
            "sensor_bits": (lambda v: v is None or (_is_int(v) and v in SENSOR_BITS),
                            "null or one of " + ", ".join(map(str, SENSOR_BITS)))}


def _version_tuple(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", str(v or ""))[:3])


def _unknown(name: str, manifest: dict[str, Any], setting: str, value: Any, known: Optional[str]) -> BundleError:
    from .. import __version__
    made = manifest.get("lineguard_version")
    if made and _version_tuple(made) > _version_tuple(__version__):
        what = "upgrade lineguard"
    else:   # not newer: no lineguard wrote it so (hand-edited and resealed, or a damaged writer)
        what = "re-train or re-export the model with this lineguard"
    knows = f" (this one knows {known})" if known else " (this one has no such setting)"
    return BundleError(f"{name}: made by lineguard {made or '(version not recorded)'}; its setting "
                       f"{setting}={value!r} is unknown to this lineguard {__version__}: {what}{knows}")


def _check_dict(name: str, manifest: dict[str, Any], where: str, given: Any,
                known: dict[str, tuple[Any, str]]) -> None:
    if given is None:
        return
    if not isinstance(given, dict):
        raise ModelFileCorrupt(f"{name}: its {where} settings are not a mapping; the file is damaged: re-train or "
                          "re-export the model")
    for key, value in given.items():
        if key not in known:
            raise _unknown(name, manifest, key, value, None)
        ok, said = known[key]
        if not ok(value):
            raise _unknown(name, manifest, key, value, said)


def check_settings(manifest: dict[str, Any], name: str, exported: bool = False) -> None:
    """Refuse a model file carrying a setting this lineguard would act on with a value (or
    a setting) it does not know, as a newer format is refused: its scores would not be
    the ones its thresholds were set on. Settings missing from a file are not checked:
    a file from before a setting existed is read with that setting's old value.

    ``exported``: a ``.onnx``, whose graph does the detector's scoring by itself; its
    detector settings are not acted on here, its precision is. A ``.lgm`` is rebuilt from
    its detector's name and settings, each checked."""
    pre = manifest.get("preprocess")
    _check_dict(name, manifest, "preprocess", pre, _preprocess_settings())
    cal = manifest.get("calibration")
    on = cal.get("calibrated_on") if isinstance(cal, dict) else None
    if isinstance(on, dict):
        _check_dict(name, manifest, "calibrated_on", {k: v for k, v in on.items() if k in ("runtime", "precision")},
                    {"runtime": _one_of(RUNTIMES), "precision": _one_of(PRECISIONS)})
    if exported:
        if "precision" in manifest:
            ok, said = _one_of(EXPORT_PRECISIONS)
            if not ok(manifest["precision"]):
                raise _unknown(name, manifest, "precision", manifest["precision"], said)
        return
    det = manifest.get("detector")
    if not isinstance(det, dict):
        return          # incomplete: the reader says so, naming what is missing
    dname = det.get("name")
    ok, said = _one_of(DETECTOR_NAMES)
    if not ok(dname):
        raise _unknown(name, manifest, "detector", dname, said)
    _check_dict(name, manifest, "detector", det.get("params"), DETECTOR_PARAMS[dname])


def content_hash(manifest_json: str, tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(b"lineguard-model\0")
    h.update(manifest_json.encode("utf-8"))
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def dumps(manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> tuple[bytes, str]:
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    mj = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    digest = content_hash(mj, tensors)
    data = st_save(tensors, metadata={"lineguard": mj, "content_sha256": digest})
    return data, digest


def save(path: Union[str, os.PathLike], manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> str:
    data, digest = dumps(manifest, tensors)
    atomic_write_bytes(path, data)
    return digest


def parse_manifest(text: str, name: str, fmt: str, max_version: int, kind: str, newer_hint: str) -> dict[str, Any]:
    """The JSON manifest of a model file or an export, checked for its format and version.
    ``kind``: what the file should be, with its article ("a lineguard model file")."""
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileCorrupt(f"{name}: manifest is damaged ({exc}); copy or export the model again") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{name}: not {kind} (format {got!r})")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or fv > max_version:
        raise BundleError(f"{name}: format {fv} is newer than this lineguard understands "
                          f"({max_version}); {newer_hint}")
    return manifest


_SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
               (b"PK\x03\x04", "a zip archive"), (b"%PDF", "a PDF"))


def _looks_like(head: bytes) -> Optional[str]:
    """What a file's first bytes say it is, for a refusal: "a PNG image", ...; None if unknown."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    return next((what for sig, what in _SIGNATURES if head.startswith(sig)), None)


def loads(data: bytes, name: str = "<bytes>") -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """Parse and verify a model file's bytes -> (manifest, tensors, content hash)."""
    if len(data) < 8:
        raise ModelFileCorrupt(f"{name}: too short to be a lineguard model file ({len(data)} bytes); "
                          "it is truncated or not a model; copy it again")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > _MAX_HEADER:
        # no model's header begins so: "header says 727905341920923785 bytes" was said of a PNG
        # given as the model, a figure no person can use
        looks = _looks_like(data[:16])
        raise ModelFileCorrupt(f"{name}: not a lineguard model file" + (f" (it is {looks})" if looks else "")
                               + ": give the .lgm `lineguard train -o` wrote, or an export (.onnx)")
    if 8 + hlen > len(data):
        raise ModelFileCorrupt(f"{name}: not a lineguard model file, or truncated (header says {hlen} bytes, "
                          f"file has {len(data)}); copy it again from the source")
    try:
        header = json.loads(data[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileCorrupt(f"{name}: header is damaged ({exc}); the file is corrupt or not a model") from exc
    meta = header.get("__metadata__") or {}
    if "lineguard" not in meta or "content_sha256" not in meta:
        raise BundleError(f"{name}: a safetensors file but not a lineguard model (no lineguard manifest)")
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + hlen + end != len(data):
        raise ModelFileCorrupt(f"{name}: file is truncated or has extra bytes ({len(data)} bytes, expected "
                          f"{8 + hlen + end}); copy it again from the source")
    manifest = parse_manifest(meta["lineguard"], name, FORMAT, FORMAT_VERSION, "a lineguard model file",
                              "upgrade lineguard or re-export the model")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileCorrupt(f"{name}: tensor data is damaged ({exc}); copy the file again") from exc
    digest = content_hash(meta["lineguard"], tensors)
    if digest != meta["content_sha256"]:
        raise ModelFileCorrupt(f"{name}: content hash does not match: the file was modified or corrupted after it "
                          "was saved; do not use it, re-export or re-train the model")
    check_settings(manifest, name)   # whole and unchanged: now whether this lineguard can honour it
    _refuse_first_int8_search(manifest, tensors, name)
    return manifest, tensors, digest


def _refuse_first_int8_search(manifest: dict[str, Any], tensors: dict[str, np.ndarray], name: str) -> None:
    """A PatchCore file from the first int8 bank search (lineguard 0.1.0 at commit a940fd8):
    one value range for all features, kept as two numbers in the detector's settings
    (``meta["feature_range"]``), no ``feature_range`` tensor. Its hash checks, so it is not
    damaged, but the search it was calibrated with (uncentred, uint8 queries up to 255, bank
    rows up to 127) is not the one this lineguard runs (centred, per-feature range): the same
    bank scored here moved scores by up to 1% (0.3% median) on the synthetic line, and its
    thresholds were set on the old ones. The detector called it damaged; say what it is."""
    det = manifest.get("detector")
    if not isinstance(det, dict) or det.get("name") != "patchcore" or "feature_range" in tensors:
        return
    params, meta = det.get("params"), det.get("meta")
    if not (isinstance(params, dict) and params.get("search") == "int8" and isinstance(meta, dict)):
        return
    old = meta.get("feature_range")
    if not (isinstance(old, list) and len(old) == 2 and all(_is_num(v) for v in old)):
        return          # no range in either form: the detector's own "damaged" stands
    made = manifest.get("lineguard_version") or "version not recorded"
    raise BundleError(f"{name}: made by an earlier lineguard ({made}) with the first int8 bank search (one feature "
                      "range for all features); the file is whole, but this lineguard searches the bank another "
                      "way, so its scores would differ from those its thresholds were set on. Train the model "
                      "again with this lineguard (lineguard train GOOD_DIR -o MODEL.lgm, same photos and "
                      "settings); an .onnx already exported from it still runs")


def read_model_file(path: Union[str, os.PathLike], how_to_get_one: str, suffix: str) -> bytes:
    """A model file's bytes, or a BundleError that says what to do (shared by .lgm and .onnx)."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"{p}: model file does not exist; {how_to_get_one} or check the path")
    if p.is_dir():
        raise BundleError(f"{p}: is a folder; give the {suffix} model file")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise BundleError(f"{p}: cannot be read ({exc.strerror or exc})") from exc


def load(path: Union[str, os.PathLike]) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    data = read_model_file(path, "train one with `lineguard train`", SUFFIX)
    return loads(data, str(path))


def describe(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """What ``Inspector.describe`` says of a ``.lgm`` model, read from its manifest alone:
    no torch (``lineguard info`` on an edge install). The file is checked as ``load``
    checks it (its hash over the manifest and every tensor)."""
    manifest, _, digest = load(path)
    name = str(path)
    try:
        cal = manifest["calibration"]
        info = dict(manifest.get("info") or {})
        info.setdefault("lineguard_version", manifest.get("lineguard_version"))
        params = dict(manifest["detector"]["params"])
        params["layers"] = tuple(params.get("layers", ()))
        if isinstance(cal, dict) and isinstance(cal.get(CALIBRATION_PHOTOS), list):     # a count, as learnt_photos
            cal = {**cal, CALIBRATION_PHOTOS: len(cal[CALIBRATION_PHOTOS])}
        return {"model_id": digest[:16], "version": str(info.get("version", "")),
                "detector": manifest["detector"]["name"], "params": params,
                "preprocess": manifest["preprocess"],
                "threshold": float(cal["threshold"]),
                "review_threshold": float(cal.get("review_threshold", cal["threshold"])),
                "pixel_threshold": float(cal["pixel_threshold"]), "calibration": cal,
                "info": {k: (len(v) if k == "learnt_photos" else v) for k, v in info.items()}}
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{name}: model settings are incomplete or from an incompatible lineguard "
                          f"version ({type(exc).__name__}: {exc}); re-train or re-export the model") from exc
