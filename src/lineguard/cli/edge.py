"""Edge verbs: export a trained model for the torch-free runtime.

    lineguard export cell.lgm --format onnx [-o cell.onnx] [--int8 --calibration-images good/]
                     [--recalibrate held-out-good/ [--frr 0.01]]

The exported ``.onnx`` file loads anywhere ``lineguard[edge]`` is installed
(``lineguard inspect cell.onnx parts/``); see :mod:`lineguard.runtime.onnx_file`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ._term import fail, note, say
from .core import PathArg, recalibrate_and_report


@click.command()
@click.argument("model", type=PathArg)
@click.option("--format", "fmt", default="onnx", show_default=True, help="Export format: onnx.")
@click.option("-o", "--output", type=PathArg, default=None, help="File to write (default: MODEL.onnx).")
@click.option("--int8", is_flag=True, help="Quantise the backbone to int8 (measure it first: see README).")
@click.option("--calibration-images", type=PathArg, default=None,
              help="Folder of good part images to calibrate int8 activations "
                   "(recommended with --int8; without it the weights only are quantised).")
@click.option("--max-calibration", type=int, default=64, show_default=True,
              help="Use at most this many calibration images.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Score a few inputs with both runtimes and refuse a mismatch (fp32).")
@click.option("--recalibrate", "recalibrate_dir", type=PathArg, default=None,
              help="Folder of good parts the model did not learn from: set the thresholds (image and pixel) "
                   "from the exported graph's own scores on them (advised with --int8, whose scores move).")
@click.option("--frr", "false_reject_rate", type=float, default=None,
              help="Target false-reject rate for --recalibrate (default: the model's own).")
@click.option("--threads", type=int, default=None, help="CPU threads.")
def export(model: Path, fmt: str, output: Optional[Path], int8: bool, calibration_images: Optional[Path],
           max_calibration: int, check: bool, recalibrate_dir: Optional[Path], false_reject_rate: Optional[float],
           threads: Optional[int]) -> None:
    """Write a self-contained model for the torch-free edge runtime (ONNX Runtime)."""
    from ..runtime.threads import set_threads
    from ..vision.errors import LineguardError
    if fmt.lower() != "onnx":
        fail(f"--format {fmt!r} is not supported; use --format onnx")
    if model.suffix != ".lgm":
        fail(f"{model}: export reads a trained .lgm model file")
    target = output or model.with_suffix(".onnx")
    if target.suffix != ".onnx":
        fail(f"{target}: exported models end in .onnx")
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        fail(f"export needs torch and onnx ({exc.name} is missing): pip install 'lineguard[torch,edge]'")
    import numpy as np

    from ..runtime.onnx_export import export_onnx, parity_check
    from ..vision.inspector import Inspector
    set_threads(threads)
    try:
        insp = Inspector.load(model)
        calib = None
        if int8 and calibration_images is not None:
            from ..vision.imageio import list_images
            files = list(list_images(calibration_images))[:max_calibration]
            calib = np.stack([insp.preprocess.load(f)[0] for f in files])
        digest = export_onnx(insp, target, int8=int8, calibration_images=calib, check=False)
        if check:
            worst = parity_check(insp, target, calib)
            note("parity", f"largest relative score difference torch vs ONNX {worst:.2e}", colour="green")
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    size_mb = target.stat().st_size / 1e6
    say(f"wrote {target} ({size_mb:.1f} MB, {'int8' if int8 else 'fp32'}, model {digest[:16]}, "
        f"from {insp.model_id})")
    if int8 and calibration_images is None:
        note("note", "no --calibration-images: dynamic int8 (weights only); static calibration "
             "on good images is usually faster and more exact")
    if recalibrate_dir is not None:
        import warnings
        with warnings.catch_warnings():  # the fp32 thresholds not fitting int8 is what happens next
            warnings.simplefilter("ignore")
            exported = Inspector.load(target, threads=threads)
        recalibrate_and_report(exported, [recalibrate_dir], false_reject_rate, target)
    elif int8:
        note("note", "the thresholds are the fp32 model's, and int8 moves scores: add --recalibrate GOOD_DIR "
             "(good parts the model did not learn from) to set them from the int8 graph's own scores")


def register(app: click.Group) -> None:
    app.add_command(export)
