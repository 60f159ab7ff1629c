"""The exported edge model (``.onnx``): one ordinary ONNX file that carries everything
the torch-free runtime needs, and proves it was not changed after export.

Layout
------
A plain ONNX ``ModelProto`` (any ONNX tool opens it) whose graph is the detector's whole
scoring path::

    images  uint8 (N, H, W, 3) RGB   ->  scores float32 (N,)      image anomaly scores
                                         maps   float32 (N, H, W)  smoothed anomaly maps

(normalisation, backbone, patch features, nearest-neighbour or Mahalanobis distances,
image score, upsampling and Gaussian smoothing all inside the graph; the batch axis is
dynamic, H and W are the model input size fixed at training).

Two ``metadata_props`` entries carry the rest:

- ``lineguard``: the manifest as JSON: ``format`` (``lineguard-onnx``), ``format_version``,
  preprocessing (region of interest, resize and orientation policy, input size),
  calibration (image and pixel thresholds), ``min_region_area``, the detector's name and
  settings, the source ``.lgm``'s model id, precision (``fp32`` or ``int8``) and versions;
- ``lineguard_sha256``: SHA-256 over ``b"lineguard-onnx\\0"`` and every byte of the file
  that precedes this entry. The entry is the file's last 86 bytes, written by hand in
  protobuf wire format (field 14, a ``StringStringEntryProto``), so the runtime checks
  the hash with nothing but ``hashlib``: no ``onnx`` package, no torch.

Loading reads the bytes once, refuses a file whose trailer or hash does not match (a
truncated, tampered or re-saved file) with a message that says so, and only then hands
the same bytes to ONNX Runtime. ONNX is protobuf: nothing is ever unpickled. Re-saving
the file with other ONNX tools reorders fields and is refused: re-export instead.

Recalibrating an exported model (``lineguard recalibrate``, ``Inspector.save`` on an
exported model) rewrites only the manifest entry, in place, with the same hand-written
protobuf (:func:`replace_manifest`), and seals the result again: every other byte of the
graph is copied as it is, so it needs neither the ``onnx`` package nor torch.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional, Union

from ..vision.atomic import atomic_write_bytes
from ..vision.errors import BundleError, ModelFileCorrupt

FORMAT = "lineguard-onnx"
FORMAT_VERSION = 1
SUFFIX = ".onnx"
MANIFEST_KEY = "lineguard"
HASH_KEY = "lineguard_sha256"
_DOMAIN = b"lineguard-onnx\0"


def _entry(key: str, value: str) -> bytes:
    """ModelProto.metadata_props (field 14) entry, protobuf wire format; short strings only."""
    k, v = key.encode(), value.encode()
    assert len(k) < 128 and len(v) < 128
    inner = b"\x0a" + bytes([len(k)]) + k + b"\x12" + bytes([len(v)]) + v
    return b"\x72" + bytes([len(inner)]) + inner


TRAILER_LEN = len(_entry(HASH_KEY, "0" * 64))  # 86


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | 2) + _encode_varint(len(payload)) + payload


def manifest_entry(manifest: dict[str, Any]) -> bytes:
    """The manifest as a ModelProto.metadata_props entry, protobuf wire format (any length)."""
    inner = _length_delimited(1, MANIFEST_KEY.encode()) + _length_delimited(2, dump_manifest(manifest).encode())
    return _length_delimited(14, inner)


def dump_manifest(manifest: dict[str, Any]) -> str:
    """The manifest's JSON as every writer stores it (sorted keys: the same manifest gives
    the same bytes, so the same content hash)."""
    return json.dumps(manifest, sort_keys=True, default=str)


def digest_of(body: bytes) -> str:
    return hashlib.sha256(_DOMAIN + body).hexdigest()


def seal(body: bytes) -> tuple[bytes, str]:
    """Append the hash entry to a serialised ModelProto -> (file bytes, hex digest)."""
    d = digest_of(body)
    return body + _entry(HASH_KEY, d), d


def write(path: Union[str, os.PathLike], body: bytes) -> str:
    data, d = seal(body)
    atomic_write_bytes(path, data)
    return d


def not_export_message(name: str) -> str:
    """What is said of a file read as an export that is not one (every reader says the same)."""
    return (f"{name}: not an exported lineguard model (no lineguard hash at the end): it was not written by "
            "`lineguard export`, was re-saved by another tool, or is truncated; re-export it with "
            "`lineguard export MODEL.lgm --format onnx`")


# Enough of a file's beginning to tell a .lgm from an ONNX model from anything else.
HEAD_BYTES = 16


def head_kind(head: bytes) -> Optional[str]:
    """What a file's first bytes say it is: "lgm" (a safetensors header: its length as 8
    little-endian bytes, then its JSON), "onnx" (an ONNX ModelProto, which begins with
    its ir_version: field 1, a varint, tag byte 0x08), or None (neither: an image, an
    archive, a text)."""
    from ..vision.bundle import _MAX_HEADER
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= _MAX_HEADER:
        return "lgm"
    if len(head) >= 2 and head[0] == 0x08 and 0 < head[1] < 0x80:
        return "onnx"
    return None


def verify(data: bytes, name: str = "<bytes>") -> str:
    """Check the trailer and hash of an exported model's bytes; return the hex digest."""
    kind = head_kind(data[:HEAD_BYTES])
    if kind == "lgm":
        # known by its first bytes: "re-export it" sent a user to export a model they had
        raise BundleError(f"{name}: a lineguard .lgm model file (a trained model) named .onnx; rename it to end "
                          "in .lgm")
    if len(data) <= TRAILER_LEN:
        if kind is None:    # a 6-byte text was told it was a truncated model to copy again
            raise BundleError(f"{name}: not a model file ({len(data)} bytes that do not begin as an ONNX model "
                              "does); give the .onnx file `lineguard export` wrote")
        raise ModelFileCorrupt(f"{name}: too short to be an exported lineguard model ({len(data)} bytes); "
                          "it is truncated; copy it again")
    tail = data[-TRAILER_LEN:]
    prefix = _entry(HASH_KEY, "0" * 64)[:-64]
    if not tail.startswith(prefix):
        raise BundleError(not_export_message(name))
    want = tail[len(prefix):].decode("ascii", "replace")
    got = digest_of(data[:-TRAILER_LEN])
    if got != want:
        raise ModelFileCorrupt(f"{name}: content hash does not match: the file was modified or corrupted after "
                          "export; do not use it, export it again")
    return got


def is_export(path: Union[str, os.PathLike, bytes]) -> bool:
    """Cheap test used by ``Inspector.load`` to pick the runtime: a ``.onnx`` name, or a
    file or bytes that end with the export's hash entry (a ``.lgm`` never does), or that
    begin as an ONNX model does (an export cut short under another name: the station's
    start-up model, its upload temp file; read as a .lgm it was told "header says
    7308895157998454792 bytes" where inspect said to re-export it)."""
    prefix = _entry(HASH_KEY, "0" * 64)[:-64]
    if isinstance(path, (bytes, bytearray)):
        return (len(path) > TRAILER_LEN and path[-TRAILER_LEN:].startswith(prefix)) or \
            head_kind(bytes(path[:HEAD_BYTES])) == "onnx"
    p = Path(path)
    if p.suffix.lower() == SUFFIX:
        return True
    try:  # stored under another name (a station's content store): look at the last bytes, then the first
        with open(p, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > TRAILER_LEN:
                fh.seek(-TRAILER_LEN, os.SEEK_END)
                if fh.read(TRAILER_LEN).startswith(prefix):
                    return True
            fh.seek(0)
            return head_kind(fh.read(HEAD_BYTES)) == "onnx"
    except OSError:
        return False


def read(path: Union[str, os.PathLike]) -> tuple[bytes, str]:
    from ..vision.bundle import read_model_file
    data = read_model_file(path, "export one with `lineguard export MODEL.lgm --format onnx`", "exported .onnx")
    return data, verify(data, str(path))


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of one protobuf message's top level; values of
    length-delimited fields are bytes, others ints."""
    for field, wire, value, _, _ in _spans(data):
        yield field, wire, value


def _spans(data: bytes):
    """Like :func:`_fields`, plus each field's start and end offsets in ``data``."""
    i = 0
    while i < len(data):
        start = i
        tag, i = _varint(data, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = int.from_bytes(data[i:i + 8], "little"), i + 8
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 5:
            value, i = int.from_bytes(data[i:i + 4], "little"), i + 4
        elif wire == 3:
            # a group (proto2, deprecated; ONNX has none): protobuf readers skip it as an
            # unknown field, and so does this, to its end tag, so that no field after it is
            # hidden from a reader that looks for what a runtime would act on
            value, i = b"", _skip_group(data, i)
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(data):
            raise ValueError("truncated field")
        yield field, wire, value, start, i


# Where tensors sit in an ONNX model, by protobuf field number: (message, field) -> the
# message that field holds. Only the fields that can lead to a tensor are walked.
_TENSOR_PATHS = {
    ("model", 7): "graph", ("model", 25): "function", ("model", 20): "training",
    ("training", 1): "graph", ("training", 2): "graph",
    ("graph", 1): "node", ("graph", 5): "tensor", ("graph", 15): "sparse",
    ("function", 7): "node", ("function", 11): "attribute",
    ("node", 5): "attribute",
    ("attribute", 5): "tensor", ("attribute", 6): "graph", ("attribute", 10): "tensor", ("attribute", 11): "graph",
    ("attribute", 22): "sparse", ("attribute", 23): "sparse",
    ("sparse", 1): "tensor", ("sparse", 2): "tensor",
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _EXTERNAL = 8, 13, 14, 1


def external_tensor(data: bytes) -> Optional[str]:
    """The name of the first tensor (an initializer, a node attribute's, a subgraph's or a
    function's) whose data the model says lies in another file, or None when every tensor
    is in the model itself. ``lineguard export`` never writes such a model: ONNX Runtime,
    handed one, read the file it names (any path, relative to the station's working
    directory: its database) into the graph. Walked without recursion (a hostile nesting
    depth costs a loop, not Python's stack) and without copying the tensors' bytes.

    Bytes that are not a protobuf message where a graph should be give None: no runtime
    opens such a file (their protobuf parsers refuse it: they skip what this skips, groups
    and unknown fields, and no more), and readers of the manifest alone (recalibrate,
    tuning) do not care."""
    try:
        return _external_tensor(memoryview(data))
    except ValueError:
        return None


def _external_tensor(data: memoryview) -> Optional[str]:
    todo = [("model", data)]
    while todo:
        kind, msg = todo.pop()
        external, name = False, None
        for field, wire, value, _, _ in _spans(msg):
            if kind == "tensor":
                if field == _TENSOR_EXTERNAL_DATA and wire == 2 or \
                        field == _TENSOR_DATA_LOCATION and wire == 0 and value == _EXTERNAL:
                    external = True
                elif field == _TENSOR_NAME and wire == 2:
                    name = bytes(value).decode("utf-8", "replace")
            elif wire == 2 and (kind, field) in _TENSOR_PATHS:
                todo.append((_TENSOR_PATHS[kind, field], value))
        if external:
            return name or "(unnamed)"
    return None


def refuse_external_data(data: bytes, name: str) -> None:
    """:class:`BundleError` when the model takes any tensor from another file."""
    tensor = external_tensor(data)
    if tensor is not None:
        raise BundleError(f"{name}: its tensor {tensor[:100]!r} refers to data in another file (ONNX external "
                          "data), which `lineguard export` never writes and the station does not read: a model "
                          "must carry all its weights itself; export it again with `lineguard export MODEL.lgm "
                          "--format onnx`")


def _skip_group(data: bytes, i: int) -> int:
    """The offset past the end tag of the group whose content starts at ``i``."""
    depth = 1
    while depth:
        tag, i = _varint(data, i)
        wire = tag & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            n, i = _varint(data, i)
            i += n
        elif wire == 5:
            i += 4
        elif wire == 3:
            depth += 1
        elif wire == 4:
            depth -= 1
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(data):
            raise ValueError("truncated group")
    return i


def metadata(data: bytes) -> dict[str, str]:
    """The ``metadata_props`` of a serialised ONNX model, read straight from the protobuf
    wire format: every runtime (ONNX Runtime, OpenVINO) gets the manifest the same way,
    without the ``onnx`` package."""
    out: dict[str, str] = {}
    for field, wire, value in _fields(data):
        if field == 14 and wire == 2:  # ModelProto.metadata_props: StringStringEntryProto
            kv = {f: v for f, w, v in _fields(value) if w == 2}
            out[kv.get(1, b"").decode("utf-8", "replace")] = kv.get(2, b"").decode("utf-8", "replace")
    return out


def replace_manifest(data: bytes, manifest: dict[str, Any]) -> bytes:
    """An exported model's file bytes (checked with :func:`verify` first) with ``manifest``
    in place of its manifest -> the new body, to :func:`seal` or :func:`write`.

    The entry is replaced where it stood and every other field is copied byte for byte,
    so the graph ONNX Runtime and OpenVINO run is exactly the one that was exported.
    """
    verify(data)
    body = data[:-TRAILER_LEN]
    out, replaced = bytearray(), False
    try:
        for field, wire, value, start, end in _spans(body):
            if field == 14 and wire == 2 and {f: v for f, w, v in _fields(value) if w == 2}.get(1) == \
                    MANIFEST_KEY.encode():
                if not replaced:
                    out += manifest_entry(manifest)
                    replaced = True
                continue
            out += body[start:end]
    except ValueError as exc:
        raise ModelFileCorrupt(f"not a readable ONNX model ({exc}); export it again") from exc
    if not replaced:
        raise BundleError("an ONNX model without a lineguard manifest; re-export it with "
                          "`lineguard export MODEL.lgm --format onnx`")
    return bytes(out)


def load(path: Union[str, os.PathLike, bytes]) -> tuple[bytes, dict[str, Any], str]:
    """Read and verify an exported model -> (file bytes, manifest, content hash); refuses
    damaged files and manifests this lineguard cannot honour, whatever runtime runs it."""
    if isinstance(path, (bytes, bytearray)):
        data, name = bytes(path), "<bytes>"
        digest = verify(data, name)
    else:
        name = str(path)
        data, digest = read(path)
    try:
        meta = metadata(data)
    except ValueError as exc:
        raise ModelFileCorrupt(f"{name}: not a readable ONNX model ({exc}); export it again") from exc
    # before any runtime opens it: the hash proves the file unchanged since it was sealed,
    # not that lineguard sealed it (anyone can), so a hostile graph passes the hash
    refuse_external_data(data, name)
    if MANIFEST_KEY not in meta:
        raise BundleError(f"{name}: an ONNX model without a lineguard manifest; re-export it with "
                          "`lineguard export MODEL.lgm --format onnx`")
    from ..vision.bundle import check_settings, parse_manifest
    manifest = parse_manifest(meta[MANIFEST_KEY], name, FORMAT, FORMAT_VERSION, "an exported lineguard model",
                              "upgrade lineguard")
    # a precision, preprocessing or runtime this lineguard does not know is refused here,
    # for every runtime and caller (an "fp8" export was run, or sent to recalibrate)
    check_settings(manifest, name, exported=True)
    return data, manifest, digest
