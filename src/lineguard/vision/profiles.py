"""Model profiles: named settings a plant picks by what the line needs, not by knob.

- ``fast`` (the default of ``train`` and of the station): EfficientNet-Lite0 on at most
  224 x 224 pixels: the square for parts within 1.5 : 1 of square, else the parts' own
  shape at no more pixels (``area224``: 320 x 128 for KolektorSDD's 2.5 : 1 commutators).
  Made for the line's pace: 7-10 ms a part through ONNX Runtime on 2 cores (by the day's
  machine speed).
- ``quality``: the good parts' own aspect ratio with a short side of 224 (tall or wide parts
  are not squeezed), MobileNetV2 features, and each part also seen at 0.7x that size with
  a bank of its own (PatchCore's ``extra_scales``). Several times the work of ``fast`` on
  long parts; for parts whose defects are thin or small against the part.

Why these, measured on the fixed validation halves of two real products
(``benchmarks/detection_study.py backbones``, ``benchmarks/results/study-backbones.jsonl``):
at the quality profile's input MobileNetV2's features beat Lite0's on both, image AUROC
0.978 vs 0.975 on magnetic tile (256 x 224) and 0.933 vs 0.884 on KolektorSDD (576 x 224;
Lite0's from core_bench's earlier quality rows); at 224 x 224 on magnetic tile Lite0 stays
ahead (0.984 vs 0.978), so ``fast`` keeps it.
Long parts in ``fast`` (``detection_study layers --configs stage2+stage4`` at each size,
``benchmarks/results/study-fast-long.jsonl``): squeezed into 224 x 224 KolektorSDD's
commutators scored image AUROC 0.836 / 0.805 on the validation / report halves; in their
own shape at the same or fewer pixels 0.908 / 0.877 (320 x 128); shapes in between less
(352 x 160: 0.874, 384 x 160: 0.894 on validation). Magnetic tiles (1.16 : 1) keep the
square: in their own shape (256 x 224) Lite0 scored 0.971 against 0.978. The commutators
cut to 1.7 : 1 (``benchmarks/crop_product.py``) scored alike either way (256 x 160: 0.904 /
0.877, the square 0.887 / 0.888), so parts past 1.5 : 1 take their shape, at fewer pixels.
The second input size (``benchmarks/core_bench.py``, quality with and without it, the
same fixed halves): image AUROC on the validation halves 0.981 -> 0.983 (magnetic tile)
and 0.929 -> 0.938 (KolektorSDD), escapes at the 1% point 34.8% -> 29.3% and 42.3% ->
42.3%; at 224 x 224 with Lite0 it shipped more on both validation halves (core_bench's
``fast-two-sizes``: tiles 19.2% vs 17.2%, commutators 80.8% vs 76.9%), so ``fast`` keeps
one size.
Any setting can still be given on its own (``--image-size``, ``--backbone``,
``--extra-scales``); what is given explicitly wins over the profile.
"""
from __future__ import annotations

from typing import Any, Optional, Union

PROFILES: dict[str, dict[str, Any]] = {
    "fast": {"image_size": "area224", "backbone": "efficientnet_lite0"},
    "quality": {"image_size": "auto", "backbone": "mobilenet_v2", "extra_scales": (0.7,)},
}
DEFAULT_PROFILE = "fast"


def profile_settings(name: str = DEFAULT_PROFILE, image_size: Union[None, int, str, tuple[int, int]] = None,
                     backbone: Optional[str] = None) -> dict[str, Any]:
    """``Inspector.fit`` keyword arguments of a profile, with explicit choices kept."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    out = dict(PROFILES[name])
    if image_size is not None:
        out["image_size"] = image_size
    if backbone is not None:
        out["backbone"] = backbone
    return out
