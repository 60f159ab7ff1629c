"""Small building blocks shared by the backbones: same-padding convs and BN folding.

The backbones are rebuilt here (rather than imported from the weight packages) so
that they take any input size, stop at the last stage a detector needs, fold batch
norm into the convolutions for speed, and export cleanly to ONNX.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvBN(nn.Module):
    """Conv2d + BatchNorm2d (+ ReLU6), with TensorFlow-style or symmetric padding.

    Attribute names ``conv``/``bn`` are internal; backbones map the weight files'
    key names onto them explicitly.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                 act: bool = True, tf_same: bool = False, eps: float = 1e-5):
        super().__init__()
        # TF 'SAME' with stride 1 and an odd kernel is plain symmetric padding: let the
        # conv do it. Only stride-2 convs need the explicit (asymmetric) pad.
        tf_same = tf_same and stride > 1
        self.k, self.stride, self.tf_same, self.act = k, stride, tf_same, act
        pad = 0 if tf_same else k // 2
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            x = _tf_same_pad(x, self.k, self.stride)
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.act else x

    @torch.no_grad()
    def fold_bn(self) -> None:
        """Fold the (frozen) batch norm into the conv: one op less per layer at inference."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv = nn.Conv2d(self.conv.in_channels, self.conv.out_channels, self.conv.kernel_size,
                         self.conv.stride, self.conv.padding, groups=self.conv.groups, bias=True)
        conv.weight.copy_(self.conv.weight * scale[:, None, None, None])
        conv.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv = conv
        self.bn = nn.Identity()


def _tf_same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    # TensorFlow 'SAME': output = ceil(in / stride); the extra pixel of an uneven pad
    # goes to the bottom/right. The Lite weights were trained that way.
    ih, iw = x.shape[-2:]
    ph = max((-(-ih // s) - 1) * s + k - ih, 0)
    pw = max((-(-iw // s) - 1) * s + k - iw, 0)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class InvertedResidual(nn.Module):
    """MobileNetV2 / EfficientNet-Lite block: expand 1x1, depthwise kxk, project 1x1."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int,
                 tf_same: bool, eps: float):
        super().__init__()
        hidden = cin * expand
        self.expand = ConvBN(cin, hidden, 1, tf_same=tf_same, eps=eps) if expand != 1 else None
        self.depthwise = ConvBN(hidden, hidden, k, stride, groups=hidden, tf_same=tf_same, eps=eps)
        self.project = ConvBN(hidden, cout, 1, act=False, tf_same=tf_same, eps=eps)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class StagedBackbone(nn.Module):
    """A stem followed by stages; returns the outputs of the requested stages.

    Stage names are ``stage0`` ... ``stageN`` in network order. Only the stages up to
    the deepest requested one are built, so a detector that needs stride-16 features
    does not pay for the stride-32 head.
    """

    def __init__(self, stem: nn.Module, stages: list[nn.Sequential], strides: list[int],
                 channels: list[int], out_stages: list[str]):
        super().__init__()
        idx = [int(s.replace("stage", "")) for s in out_stages]
        last = max(idx)
        self.stem = stem
        self.stages = nn.ModuleList(stages[: last + 1])
        self.out_index = idx
        self.out_strides = [strides[i] for i in idx]
        self.out_channels = [channels[i] for i in idx]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs: dict[int, torch.Tensor] = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_index:
                outs[i] = x
        return [outs[i] for i in self.out_index]

    def fold_bn(self) -> "StagedBackbone":
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fold_bn()
        return self
