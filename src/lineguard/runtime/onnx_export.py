"""Export a trained model (``.lgm``) to the edge format: one ONNX file holding the whole
scoring path plus everything the Inspector needs (see :mod:`lineguard.runtime.onnx_file`).

    from lineguard.runtime.onnx_export import export_onnx
    export_onnx(Inspector.load("cell.lgm"), "cell.onnx")                 # fp32
    export_onnx(insp, "cell-int8.onnx", int8=True, calibration_images=x)  # int8 backbone

The graph is the detector's own scoring module (``det.scoring_module()``, the module its
``score()`` runs in torch) traced as it is: it follows whatever settings and scoring
rule the model was trained with, and a detector that provides a scoring module exports
without any change here. It needs torch
and the ``onnx`` package at export time only; running the result needs neither.

Int8: static quantisation (QDQ, per-channel weights) of the backbone's convolutions,
with activation ranges calibrated (percentile) on good images. The distance part and
the map smoothing stay in float32: quantising distances would move scores near the
threshold. Measured on magnetic_tile (2 threads, a Xeon with AVX-512 VNNI): int8 was
*slower* than fp32 in ONNX Runtime (depthwise convs and the quantise/dequantise steps
cost more than int8 saves on a 1x1-conv-light network this small) and lost 0.02 image
AUROC; percentile calibration beat min-max and entropy, and keeping depthwise convs in
fp32 did not help. Use fp32 unless a target CPU shows otherwise
(``benchmarks/edge_bench.py`` measures both).
"""
from __future__ import annotations

import io
import logging
import os
import platform
import tempfile
import warnings
from pathlib import Path
from contextlib import contextmanager, redirect_stdout
from typing import Any, Iterator, Optional, Union

import numpy as np

from . import onnx_file

OPSET = 17
INPUT = "images"
OUTPUTS = ("scores", "maps")


def scoring_module_of(det: Any):
    """The detector's scoring module (see ``Detector.scoring_module``): the very module its
    ``score()`` runs, traced here as it is. The exporter knows no detector by name: one
    that provides a module exports, one that does not is refused."""
    from torch import nn

    make = getattr(det, "scoring_module", None)
    if make is None:
        raise ValueError(f"this is already an exported model ({type(det).__name__}), not a trained one; "
                         "export reads the trained .lgm model it was exported from")
    try:
        module = make()
    except NotImplementedError as exc:
        raise ValueError(f"detector {det.name!r} provides no scoring module, so it cannot be exported "
                         f"({exc}); give it a scoring_module() (see lineguard.vision.detectors.base) "
                         "or run it from the .lgm model on torch") from exc
    if not isinstance(module, nn.Module):
        raise ValueError(f"detector {det.name!r}: scoring_module() returned {type(module).__name__}, "
                         "not a torch nn.Module; the exporter can only trace a module")
    if getattr(det, "input_size_", None) is None:
        raise ValueError(f"detector {det.name!r} has no input_size_; it must record its model input size in fit")
    return module.eval()


@contextmanager
def _static_same_padding(module: Any, hw: tuple[int, int]) -> Iterator[None]:
    """Give every TensorFlow-'same' conv its padding as constants for the input size.

    The eager code computes the (possibly uneven) padding from the tensor's shape at
    run time; traced, that becomes a chain of Shape/Gather/Sub nodes and a Pad with
    computed amounts that ONNX Runtime can neither fold nor fuse. With constants, the
    Pad folds into the Conv's own ``pads`` (:func:`_fold_pads`), which keeps the whole
    backbone in ORT's blocked-layout kernels.
    """
    import torch
    from torch.nn import functional as F

    from ..vision.backbones._blocks import ConvBN

    sizes: dict[Any, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: sizes.__setitem__(mod, tuple(inp[0].shape[-2:])))
             for m in module.modules() if isinstance(m, ConvBN) and m.tf_same]
    try:
        with torch.no_grad():  # one run of the whole scoring path on a blank part records every conv's input size
            module(torch.zeros(1, *hw, 3, dtype=torch.uint8))
    finally:
        for hk in hooks:
            hk.remove()
    for m, (ih, iw) in sizes.items():
        k, st = m.k, m.stride
        ph = max((-(-ih // st) - 1) * st + k - ih, 0)
        pw = max((-(-iw // st) - 1) * st + k - iw, 0)
        pads = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]

        def forward(x, m=m, pads=pads):
            if any(pads):
                x = F.pad(x, pads)
            x = m.bn(m.conv(x))
            return F.relu6(x) if m.act else x
        m.forward = forward
    try:
        yield
    finally:
        for m in sizes:
            m.__dict__.pop("forward", None)


def _materialize_pad_amounts(model: Any, hw: tuple[int, int]) -> None:
    """The tracer writes constant pad amounts as a little subgraph (ConstantOfShape,
    Concat, Slice, Cast ...) that constant folding leaves alone; evaluate those once
    and store the amounts as initializers."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    known = {i.name for i in g.initializer}
    pads = [n for n in g.node if n.op_type == "Pad" and len(n.input) > 1 and n.input[1] not in known]
    if not pads:
        return
    probe = type(model)()
    probe.CopyFrom(model)
    names = sorted({n.input[1] for n in pads})
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.INT64, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = sess.run(names, {INPUT: np.zeros((1, *hw, 3), np.uint8)})
    for name, v in zip(names, values):
        g.initializer.append(numpy_helper.from_array(np.asarray(v, np.int64), name=f"{name}__static"))
    for n in pads:
        n.input[1] = f"{n.input[1]}__static"


def _prune(model: Any) -> None:
    """Drop nodes whose outputs nothing uses (left over after folding)."""
    g = model.graph
    while True:
        used = {o.name for o in g.output} | {i for n in g.node for i in n.input}
        keep = [n for n in g.node if any(o in used for o in n.output)]
        if len(keep) == len(g.node):
            break
        del g.node[:]
        g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)


def _fold_pads(model: Any) -> int:
    """Merge zero-constant spatial Pads into the Conv that alone consumes them."""
    from onnx import helper, numpy_helper

    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    users: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    drop, folded = set(), 0
    for n in g.node:
        if n.op_type != "Pad" or n.input[1] not in consts:
            continue
        mode = next((a.s for a in n.attribute if a.name == "mode"), b"constant")
        value = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else 0
        pads = [int(v) for v in consts[n.input[1]].ravel()]
        us = users.get(n.output[0], [])
        if (mode != b"constant" or (value is not None and float(np.asarray(value).ravel()[0] if np.size(value) else 0))
                or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or len(us) != 1 or us[0].op_type != "Conv"
                or (len(n.input) > 3 and n.input[3])):
            continue
        conv = us[0]
        old = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [0, 0, 0, 0])
        auto = next((a.s for a in conv.attribute if a.name == "auto_pad"), b"NOTSET")
        if auto not in (b"NOTSET", b""):
            continue
        new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
        keep = [a for a in conv.attribute if a.name != "pads"]
        del conv.attribute[:]
        conv.attribute.extend(keep + [helper.make_attribute("pads", new)])
        conv.input[0] = n.input[0]
        drop.add(id(n))
        folded += 1
    nodes = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(nodes)
    return folded


def _graph_bytes(det: Any, opset: int = OPSET) -> bytes:
    import onnx
    import torch

    mod = scoring_module_of(det)
    h, w = (int(v) for v in det.input_size_)
    dummy = torch.zeros(2, h, w, 3, dtype=torch.uint8)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings(), _static_same_padding(mod, (h, w)):
        warnings.simplefilter("ignore")  # tracer notes on the constant paddings: expected, sizes are fixed
        # The TorchScript tracer: it needs no onnxscript, keeps the batch axis dynamic,
        # and bakes the fixed spatial sizes (TF 'same' paddings, grid) in as constants.
        torch.onnx.export(mod, (dummy,), buf, dynamo=False, input_names=[INPUT], output_names=list(OUTPUTS),
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUTS[0]: {0: "batch"}, OUTPUTS[1]: {0: "batch"}},
                          opset_version=opset, do_constant_folding=True)
    # No custom_opsets: the int8 bank search's com.microsoft op (MatMulIntegerToFloat) gets
    # its domain at version 1 without it, and naming the domain made torch print a raw C++
    # "Custom opset domain 'com.microsoft' provided is not used" on every PaDiM export.
    model = onnx.load_from_string(buf.getvalue())
    _materialize_pad_amounts(model, (h, w))
    _fold_pads(model)
    _prune(model)
    return model.SerializeToString()


class _Reader:
    """Feeds good images to ORT's static calibration, one at a time: the percentile
    calibrator stacks every batch's activations, so batches must all be one size (a
    last, shorter batch of 8 made the export fail for image counts not a multiple of 8)."""

    def __init__(self, images: np.ndarray, batch: int = 1):
        self.images, self.batch, self.i = images, batch, 0

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        if self.i >= len(self.images):
            return None
        x = self.images[self.i:self.i + self.batch]
        self.i += self.batch
        return {INPUT: np.ascontiguousarray(x)}

    def rewind(self) -> None:
        self.i = 0


class _NotFromQuantiser(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "/onnxruntime/quantization/" not in record.pathname.replace("\\", "/")


@contextmanager
def _quantiser_quiet() -> Iterator[None]:
    """ONNX Runtime's quantiser prints its calibration's steps on stdout and advises its own
    pre-processing on the root logger ("Please consider to run pre-processing"): mixed into
    `export --int8`'s own lines, a plant's engineer read them as lineguard's. The export's
    parity check and its words on the moved scores say what matters."""
    quiet = _NotFromQuantiser()
    root = logging.getLogger()      # it logs with logging.warning(): the root logger's own filters apply
    root.addFilter(quiet)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(quiet)


def quantize_int8(model_bytes: bytes, calibration_images: Optional[np.ndarray]) -> bytes:
    """Static int8 (QDQ) on the convolutions, activations calibrated on ``calibration_images``
    (uint8 (N, H, W, 3) model inputs of good parts). Without images, dynamic quantisation of
    the convolution weights is used instead (no calibration needed, usually less accurate)."""
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)

    with tempfile.TemporaryDirectory() as tmp, _quantiser_quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        # Only the backbone's convolutions: a detector's later steps may be convolutions
        # too (the anomaly map's Gaussian smoothing was one), and quantised such a step
        # clips the map at its calibration range, so the map's peak (the image score)
        # came out the same for every part.
        graph = onnx.load_from_string(model_bytes).graph
        not_backbone = [n.name for n in graph.node if n.op_type == "Conv" and "backbone" not in n.name]
        if calibration_images is not None and len(calibration_images):
            # reduce_range: weights coded in 7 bits, so that u8 activations x s8 weights
            # cannot saturate the int16 pair sums of CPUs without VNNI (AVX2 only); at full
            # range an AVX2 AMD EPYC gave image AUROC 0.770 where fp32 gives 0.872
            quantize_static(str(src), str(dst), _Reader(calibration_images), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["Conv"], per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                            nodes_to_exclude=not_backbone, reduce_range=True)
        else:
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=["Conv"], weight_type=QuantType.QUInt8,
                             nodes_to_exclude=not_backbone)
        model = onnx.load(str(dst))
    return model.SerializeToString()


def export_onnx(inspector: Any, path: Union[str, os.PathLike], int8: bool = False,
                calibration_images: Optional[np.ndarray] = None, opset: int = OPSET, check: bool = True) -> str:
    """Write ``inspector`` (a torch-backed Inspector) as an edge ONNX file; return its content hash.

    ``calibration_images``: for ``int8``, uint8 model inputs (N, H, W, 3) of good parts,
    already preprocessed (``inspector.preprocess.apply``); a few dozen suffice.
    ``check``: score a few seeded inputs with both and refuse (delete the file, raise
    ``ValueError``) an fp32 export whose scores differ by more than ``PARITY_RTOL``.
    """
    import onnx
    import torch

    from .. import __version__

    det = inspector.detector
    body = _graph_bytes(det, opset)
    if int8:
        body = quantize_int8(body, calibration_images)
    model = onnx.load_from_string(body)
    params = det.get_params()
    manifest = {
        "format": onnx_file.FORMAT,
        "format_version": onnx_file.FORMAT_VERSION,
        "lineguard_version": __version__,
        "exported_with": {"torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
                          "python": platform.python_version(), "opset": opset},
        "source_model_id": inspector.model_id,
        "precision": "int8" if int8 else "fp32",
        "input": {"name": INPUT, "dtype": "uint8", "layout": "NHWC", "hw": list(det.input_size_)},
        "outputs": list(OUTPUTS),
        "detector": {"name": det.name, "params": params, "meta": det.state_meta()},
        "preprocess": inspector.preprocess.to_dict(),
        "calibration": inspector.calibration,
        "min_region_area": inspector.min_region_area,
        "info": inspector.info,
    }
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = onnx_file.MANIFEST_KEY, onnx_file.dump_manifest(manifest)
    model.producer_name, model.producer_version = "lineguard", __version__
    digest = onnx_file.write(path, model.SerializeToString())
    if check and not int8:
        parity_check(inspector, path)
    return digest


# Float rounding differs between torch and ONNX Runtime kernels; scores agree far
# tighter than this (about 1e-5 relative), a broken graph misses it by orders of magnitude.
PARITY_RTOL = 1e-3


def parity_check(inspector: Any, path: Union[str, os.PathLike], images: Optional[np.ndarray] = None,
                 rtol: float = PARITY_RTOL) -> float:
    """Score ``images`` (default: a few seeded noise inputs) with the torch model and the
    export; return the largest relative score difference, raise ``ValueError`` above
    ``rtol`` for an fp32 export (int8 is only reported)."""
    from . import onnx_file

    h, w = inspector.detector.input_size_
    if images is None or not len(images):
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        images = np.concatenate([base, np.clip(base.astype(int) + rng.integers(-8, 9, (2, h, w, 3)), 0, 255)
                                 .astype(np.uint8)])
    images = images[:8]
    from .onnx_detector import OnnxDetector
    data, manifest, _ = onnx_file.load(path)
    s_onnx, _ = OnnxDetector(data, manifest).score(images)
    s_torch, _ = inspector.detector.score(images)
    worst = float(np.max(np.abs(s_onnx - s_torch) / np.maximum(np.abs(s_torch), 1e-6)))
    if manifest.get("precision") == "fp32" and worst > rtol:
        Path(path).unlink(missing_ok=True)
        raise ValueError(f"the exported graph scores differently from the torch model (relative difference "
                         f"{worst:.2e} > {rtol:.0e}); not written. Report this with the model's settings")
    return worst
