"""What the command line prints: plain lines, coloured words on a terminal, one progress
line per stage, and the error that ends a command.

Built on click alone: the edge install (``lineguard[edge]``) carries the CLI, and a
richer terminal library with its dependencies cost ~25 MB there. Colours are dropped
automatically when output is not a terminal (pipes, files, tests).
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import click

Progress = Optional[Callable[[str, int, int], None]]


def say(msg: str = "") -> None:
    click.echo(msg)


def coloured(word: str, colour: str, bold: bool = False) -> str:
    return click.style(word, fg=colour, bold=bold)


def note(label: str, msg: str, colour: str = "yellow") -> None:
    """``label: msg`` on stderr (skipped files, notes, warnings)."""
    click.echo(f"{coloured(label + ':', colour)} {msg}", err=True)


def fail(msg: str, code: int = 2) -> None:
    """End the command: ``error: msg`` on stderr and exit ``code`` (2: refused)."""
    click.echo(f"{coloured('error:', 'red', bold=True)} {msg}", err=True)
    raise SystemExit(code)


def rule(title: str) -> None:
    click.echo("\n" + click.style(f"== {title} ", bold=True) + "=" * max(0, 60 - len(title)))


@contextmanager
def progress(enabled: bool = True, width: int = 28) -> Iterator[Progress]:
    """A callback ``(stage, done, total)`` that redraws one line per stage on a terminal;
    ``None`` when stderr is not a terminal, so logs and pipes stay clean."""
    stream = sys.stderr
    if not enabled or not stream.isatty():
        yield None
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
        stream.write(f"\r{stage:<12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {now - t0:5.1f}s")
        if finished:
            ended.add(stage)
            stream.write("\n")
        stream.flush()

    yield cb
