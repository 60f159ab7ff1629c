"""Scale-out past one process on Ray (the ``lineguard[scale]`` extra).

Nothing here imports Ray at module import time: the default install runs without it,
and every entry point calls :func:`require_ray` first, which says how to install it.

- :mod:`.rescore`: re-score an image archive with a model, resumable, Parquet out.
- :mod:`.sharded_bank`: a PatchCore memory bank built from shards on many workers.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Optional

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


class RayUnreachable(ConnectionError):
    """The Ray cluster named by ``--ray`` cannot be reached; the message names the address
    and what to check. Said within seconds: Ray itself retried an unreachable GCS for ever."""


# seconds a TCP connect to the head may take before it is called unreachable
PROBE_TIMEOUT_S = 5.0


def resolve_address(address: str) -> str:
    """The address ``ray.init`` is given for ``--ray ADDRESS``.

    ``auto`` is ``RAY_ADDRESS``, else the head ``ray start`` started on this machine (the
    address Ray records in its temp folder). Ray's own ``auto`` also joined any raylet it
    found among the machine's processes: another user's private ``--ray local`` run, which
    took this run down with it when it ended; that is never joined here."""
    if address != "auto":
        return address
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env:
        return env
    from ray._private.utils import read_ray_address   # what `ray start` wrote, if it did
    found = read_ray_address()
    if not found:
        raise RayUnreachable("--ray auto: no Ray cluster started with `ray start` on this machine and no "
                             "RAY_ADDRESS set: start one (`ray start --head`), give its address "
                             "(--ray HOST:6379), or use --ray local for a private cluster")
    return found


def _host_port(address: str) -> Optional[tuple[str, int]]:
    """(host, port) of ``host:port`` or ``ray://host:port``; None for what is not one."""
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Resolve ``address`` (:func:`resolve_address`) and open a TCP connection to it, or
    :class:`RayUnreachable`; returns the resolved address. ``local`` needs no probe.

    Called before anything is written: ``ray.init`` on an address where nothing answers
    retried for ever with only Ray's warnings, holding the results folder and leaving a
    station database run row unfinished."""
    if address == "local":
        return address
    resolved = resolve_address(address)
    hp = _host_port(resolved)
    if hp is None:
        raise RayUnreachable(f"--ray {address}: not an address; give HOST:PORT (the head's GCS port, "
                             "6379 by default), ray://HOST:10001, auto or local")
    named = address if resolved == address else f"{address} ({resolved})"
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as exc:
        why = "no answer within {:.0f} s".format(timeout) if isinstance(exc, socket.timeout) else \
            (exc.strerror or str(exc))
        raise RayUnreachable(
            f"cannot reach the Ray cluster at {named}: {why}. Check that its head is running (`ray status` "
            "there), the host and port (HOST:PORT is the GCS port of `ray start --head --port`, 6379 by "
            "default; ray://HOST:10001 the Ray Client server), and that no firewall is in between; "
            "or use --ray local for a private cluster on this machine") from exc
    if not _speaks_grpc(hp, timeout):
        # Something else listens there (a Redis on 6379, Ray's dashboard on 8265, a web
        # server): ray.init took the TCP connection for a head's and retried for ever with
        # only Ray's warnings, the results folder made and locked
        raise RayUnreachable(
            f"{named} answers, but not as a Ray cluster's head: no gRPC within {timeout:.0f} s (another program "
            "listens there: a Redis, Ray's dashboard at 8265, a web server?). Give the head's GCS port (`ray "
            "start --head --port`, 6379 by default, as `ray status` on the head shows it) or ray://HOST:10001 "
            "for the Ray Client server; or use --ray local for a private cluster on this machine")
    return resolved


def _speaks_grpc(host_port: tuple[str, int], timeout: float) -> bool:
    """Whether the server at ``host_port`` completes a gRPC (HTTP/2) handshake within
    ``timeout``: a Ray head's GCS and the Ray Client server do; a Redis or a web server does
    not. True where it cannot be told here (no grpc module; a cluster on TLS, RAY_USE_TLS)."""
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("", "0", "false"):
        return True
    try:
        import grpc
    except ImportError:
        return True
    host, port = host_port
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def connect(address: str, num_cpus: Optional[int] = None) -> Any:
    """Join the Ray cluster at ``address`` (``ray://host:10001``, ``host:6379``, ``auto``),
    or start a private one on this machine for ``local``. Reuses a session already open.
    :class:`RayUnreachable` within seconds if nothing answers there."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    import logging
    import signal
    import threading
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                              "include_dashboard": False, "logging_level": logging.WARNING}
    # ray.init puts its own SIGTERM handler (sys.exit) in place of the caller's: `rescore`
    # stopped by SIGTERM then ended with Ray's dump and exit 15, its run recorded as
    # "SystemExit: 15", not as interrupted; the caller's is put back after it
    main = threading.current_thread() is threading.main_thread()
    on_term = signal.getsignal(signal.SIGTERM) if main else None
    try:
        _init(ray, address, num_cpus, kwargs)
    finally:
        if main and on_term is not None and signal.getsignal(signal.SIGTERM) is not on_term:
            signal.signal(signal.SIGTERM, on_term)
    return ray


def _init(ray: Any, address: str, num_cpus: Optional[int], kwargs: dict[str, Any]) -> None:
    if address == "local":
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        # "local" itself, not no address: ray.init() with none joined the machine's `ray start`
        # head (or RAY_ADDRESS) instead of a private cluster; with --num-cpus it was refused,
        # and a head that died uncleanly left an address it retried for ever
        ray.init(address="local", **kwargs)
    else:
        resolved = check_reachable(address)
        kwargs.pop("include_dashboard")
        ray.init(address=resolved, **kwargs)
