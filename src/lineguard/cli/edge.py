"""Edge verbs: export a trained model for the torch-free runtime.

    lineguard export cell.lgm --format onnx [-o cell.onnx] [--int8 --calibration-images good/]
                     [--recalibrate held-out-good/ [--frr 0.01]]

``--int8`` needs ``--recalibrate`` (int8 moves scores: on the synthetic line the fp32
threshold rejected every good part) or, knowingly, ``--keep-fp32-thresholds``.

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
@click.option("--keep-fp32-thresholds", is_flag=True,
              help="With --int8 and no --recalibrate: keep the fp32 model's thresholds, which int8's moved scores "
                   "may not fit (every good part can come out NG); recalibrate before using it on a line.")
@click.option("--threads", type=int, default=None, help="CPU threads.")
def export(model: Path, fmt: str, output: Optional[Path], int8: bool, calibration_images: Optional[Path],
           max_calibration: int, check: bool, recalibrate_dir: Optional[Path], false_reject_rate: Optional[float],
           keep_fp32_thresholds: bool, threads: Optional[int]) -> None:
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
    if int8 and recalibrate_dir is None and not keep_fp32_thresholds:
        # Refused before anything is written: an int8 model with fp32 thresholds rejected all 15
        # good test parts of a user's line, and a note under a 0 exit went unread.
        fail("an int8 export scores parts differently from the fp32 model, so its thresholds must be set from "
             "the int8 graph's own scores: add --recalibrate GOOD_DIR (good parts the model did not learn from), "
             "or --keep-fp32-thresholds to keep the fp32 ones and recalibrate later (`lineguard recalibrate`)")
    if keep_fp32_thresholds and recalibrate_dir is not None:
        fail("--keep-fp32-thresholds and --recalibrate contradict each other: --recalibrate sets the thresholds "
             "from the exported graph's scores; drop one")
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
        note("warning", "the thresholds are the fp32 model's (--keep-fp32-thresholds), and int8 moves scores: "
             f"before using it on a line, `lineguard recalibrate {target} GOOD_DIR -o OUT.onnx` on good parts "
             "the model did not learn from", colour="red")


def register(app: click.Group) -> None:
    app.add_command(export)
