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
import struct
from pathlib import Path
from typing import Any, Union

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from .atomic import atomic_write_bytes
from .errors import BundleError

FORMAT = "lineguard-model"
FORMAT_VERSION = 1
SUFFIX = ".lgm"
# A model file is a few MB; a header beyond this is not ours.
_MAX_HEADER = 16 * 1024 * 1024


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
        raise BundleError(f"{name}: manifest is damaged ({exc}); copy or export the model again") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{name}: not {kind} (format {got!r})")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or fv > max_version:
        raise BundleError(f"{name}: format {fv} is newer than this lineguard understands "
                          f"({max_version}); {newer_hint}")
    return manifest


def loads(data: bytes, name: str = "<bytes>") -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """Parse and verify a model file's bytes -> (manifest, tensors, content hash)."""
    if len(data) < 8:
        raise BundleError(f"{name}: too short to be a lineguard model file ({len(data)} bytes); "
                          "it is truncated or not a model; copy it again")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > _MAX_HEADER or 8 + hlen > len(data):
        raise BundleError(f"{name}: not a lineguard model file, or truncated (header says {hlen} bytes, "
                          f"file has {len(data)}); copy it again from the source")
    try:
        header = json.loads(data[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{name}: header is damaged ({exc}); the file is corrupt or not a model") from exc
    meta = header.get("__metadata__") or {}
    if "lineguard" not in meta or "content_sha256" not in meta:
        raise BundleError(f"{name}: a safetensors file but not a lineguard model (no lineguard manifest)")
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + hlen + end != len(data):
        raise BundleError(f"{name}: file is truncated or has extra bytes ({len(data)} bytes, expected "
                          f"{8 + hlen + end}); copy it again from the source")
    manifest = parse_manifest(meta["lineguard"], name, FORMAT, FORMAT_VERSION, "a lineguard model file",
                              "upgrade lineguard or re-export the model")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise BundleError(f"{name}: tensor data is damaged ({exc}); copy the file again") from exc
    digest = content_hash(meta["lineguard"], tensors)
    if digest != meta["content_sha256"]:
        raise BundleError(f"{name}: content hash does not match: the file was modified or corrupted after it "
                          "was saved; do not use it, re-export or re-train the model")
    return manifest, tensors, digest


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
