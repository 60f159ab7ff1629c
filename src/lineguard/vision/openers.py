"""Openers for model files made by higher layers (exported ``.onnx`` models).

``Inspector.load`` opens ``.lgm`` files itself. Exported models are run by
``lineguard.runtime`` (layer 2), which registers an opener here when it is imported
(``import lineguard`` imports it), so that layer 1 never imports a layer above it.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Union

PathLike = Union[str, os.PathLike, bytes]
# (recognise(path) -> bool, open(inspector_cls, path, **options) -> Inspector)
Opener = tuple[Callable[[PathLike], bool], Callable[..., Any]]

_OPENERS: list[Opener] = []


def register(recognise: Callable[[PathLike], bool], open_: Callable[..., Any]) -> None:
    if (recognise, open_) not in _OPENERS:
        _OPENERS.append((recognise, open_))


def find(path: PathLike) -> Callable[..., Any] | None:
    for recognise, open_ in _OPENERS:
        if recognise(path):
            return open_
    return None
