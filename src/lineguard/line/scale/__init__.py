"""Scale-out past one process on Ray (the ``lineguard[scale]`` extra).

Nothing here imports Ray at module import time: the default install runs without it,
and every entry point calls :func:`require_ray` first, which says how to install it.

- :mod:`.rescore`: re-score an image archive with a model, resumable, Parquet out.
- :mod:`.sharded_bank`: a PatchCore memory bank built from shards on many workers.
"""
from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install 'lineguard[scale]'"


class RayMissing(RuntimeError):
    """Ray (or pyarrow) is not installed; the message says how to install it."""


def require_ray() -> Any:
    """Import and return ``ray``, or raise :class:`RayMissing` with the install line."""
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError as exc:
        raise RayMissing(f"this needs Ray, which is not installed ({exc}): {INSTALL_HINT}") from exc
    return ray


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise RayMissing(f"writing Parquet needs pyarrow, which is not installed ({exc}): {INSTALL_HINT}") from exc
    return pyarrow


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at ``address`` (``ray://host:10001``, ``host:6379``, ``auto``),
    or start a private one on this machine for ``local``. Reuses a session already open."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    import logging
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                              "include_dashboard": False, "logging_level": logging.WARNING}
    if address == "local":
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    else:
        kwargs.pop("include_dashboard")
        ray.init(address=address, **kwargs)
    return ray
