"""`lineguard demo`: the demo line for a pip user (no Makefile), left running with its app."""
from __future__ import annotations

from pathlib import Path

import click

from .core import PathArg


@click.command()
@click.option("--dir", "root", type=PathArg, default=Path("demo-line"), show_default=True,
              help="Folder for the synthetic parts, the model, its report and the station's data.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port of the station (the next free one if taken).")
@click.option("--feed-every", type=float, default=2.0, show_default=True,
              help="Seconds between test parts sent while the app is open (0: send none).")
@click.option("--rebuild", is_flag=True, help="Make the product and model again even if unchanged.")
def demo(root: Path, port: int, feed_every: float, rebuild: bool) -> None:
    """Make a synthetic product, train and export a model, run a station on it and leave the
    operator app open (the URL and a key to sign in with are printed); Ctrl-C stops it.
    A model already made in --dir from the same data and settings is used again. Needs
    pip install 'lineguard[torch,edge,server]' (checked before it starts)."""
    if feed_every < 0:
        raise click.BadParameter("give 0 (no parts) or a number of seconds", param_hint="--feed-every")
    try:
        from .. import demo as demo_line
    except ImportError as exc:   # pragma: no cover - depends on the installed extras
        raise click.ClickException(f"the demo needs pip install 'lineguard[torch,edge,server]' ({exc})") from exc
    demo_line.run_demo(root, port, keep=True, feed_every=feed_every, reuse=not rebuild)


def register(app: click.Group) -> None:
    app.add_command(demo)
