"""Edge verbs: export a trained model for the torch-free runtime.

    lineguard export cell.lgm --format onnx [-o cell.onnx] [--int8 --calibration-images good/]
                     [--recalibrate held-out-good/ [--frr 0.01]]

``--int8`` needs ``--recalibrate`` (int8 moves scores: on the synthetic line the fp32
threshold rejected every good part) or, knowingly, ``--keep-fp32-thresholds``.

The exported ``.onnx`` file loads anywhere ``lineguard[edge]`` is installed
(``lineguard inspect cell.onnx parts/``); see :mod:`lineguard.runtime.onnx_file`.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import click

from ._term import RATE, coloured, fail, note, say, sigterm_raises
from .core import PathArg, _threads, odd_parts_choice, odd_parts_options, recalibrate_and_report


@click.command()
@click.argument("model", type=PathArg)
@click.option("--format", "fmt", default="onnx", show_default=True, help="Export format: onnx.")
@click.option("-o", "--output", type=PathArg, default=None, help="File to write (default: MODEL.onnx).")
@click.option("--int8", is_flag=True, help="Quantise the backbone to int8 (measure it first: see README).")
@click.option("--calibration-images", type=PathArg, default=None,
              help="Folder of good part images to calibrate int8 activations "
                   "(recommended with --int8; without it the weights only are quantised).")
@click.option("--max-calibration", type=click.IntRange(min=1), default=64, show_default=True,
              help="Use at most this many calibration images.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Score a few inputs with both runtimes and refuse a mismatch (fp32).")
@click.option("--recalibrate", "recalibrate_dir", type=PathArg, default=None,
              help="Folder of good parts the model did not learn from: set the thresholds (image and pixel) "
                   "from the exported graph's own scores on them (advised with --int8, whose scores move).")
@click.option("--frr", "false_reject_rate", type=RATE, default=None,
              help="Target false-reject rate for --recalibrate, a fraction (0.01 for 1%; default: the model's own).")
@click.option("--keep-fp32-thresholds", is_flag=True,
              help="With --int8 and no --recalibrate: keep the fp32 model's thresholds, which int8's moved scores "
                   "may not fit (every good part can come out NG); recalibrate before using it on a line.")
@odd_parts_options
@click.option("--threads", type=int, default=None, help="CPU threads (at least 1).")
def export(model: Path, fmt: str, output: Optional[Path], int8: bool, calibration_images: Optional[Path],
           max_calibration: int, check: bool, recalibrate_dir: Optional[Path], false_reject_rate: Optional[float],
           keep_fp32_thresholds: bool, keep_odd_parts: bool, leave_out_odd_parts: bool,
           threads: Optional[int]) -> None:
    """Write a self-contained model for the torch-free edge runtime (ONNX Runtime)."""
    _threads(threads)       # refused below 1 as every command refuses it; set before torch is imported
    odd_parts = odd_parts_choice(keep_odd_parts, leave_out_odd_parts)
    if fmt.lower() != "onnx":
        fail(f"--format {fmt!r} is not supported; use --format onnx")
    if model.suffix.lower() != ".lgm":
        fail(f"{model}: export reads a trained .lgm model file")
    from ..runtime import onnx_file
    if model.is_file() and onnx_file.is_export(model):
        # an .onnx renamed .lgm was told "OnnxDetector is not a torch-backed detector"
        fail(f"{model}: this is already an exported model (an .onnx file named .lgm); export reads the trained "
             ".lgm model it was exported from")
    target = output or model.with_suffix(".onnx")
    if target.suffix.lower() != ".onnx":      # any case: cell.ONNX loads as an export too
        fail(f"{target}: exported models end in .onnx")
    if target.is_dir():
        # said before the export, not after minutes of it
        fail(f"{target} is a folder: -o takes the file to write, e.g. {target / model.with_suffix('.onnx').name}")
    if calibration_images is not None and not int8:
        fail("--calibration-images calibrates the int8 graph's activations and is used with --int8 only: add "
             "--int8, or drop --calibration-images for an fp32 export")
    for flag, folder in (("--recalibrate", recalibrate_dir), ("--calibration-images", calibration_images)):
        if folder is not None and not folder.exists():
            fail(f"{flag} {folder}: no such folder; give a folder of good part images")
    if int8 and recalibrate_dir is None and not keep_fp32_thresholds:
        # Refused before anything is written: an int8 model with fp32 thresholds rejected all 15
        # good test parts of a user's line, and a note under a 0 exit went unread.
        fail("an int8 export scores parts differently from the fp32 model, so its thresholds must be set from "
             "the int8 graph's own scores: add --recalibrate GOOD_DIR (good parts the model did not learn from), "
             "or --keep-fp32-thresholds to keep the fp32 ones and recalibrate later (`lineguard recalibrate`)")
    if keep_fp32_thresholds and recalibrate_dir is not None:
        fail("--keep-fp32-thresholds and --recalibrate contradict each other: --recalibrate sets the thresholds "
             "from the exported graph's scores; drop one")
    import importlib.util
    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:      # each one named: "onnx is missing" on a PC that lacked torch too
        fail(f"export needs torch and onnx ({' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
             "missing): pip install 'lineguard[torch,edge]'")
    # Written beside the target under a passing name, and renamed into place only once the
    # parity check and recalibration succeeded: a refused recalibration left the int8 graph
    # with fp32 thresholds at the target (40 of 40 good parts NG), over a good file of the
    # same name. The name ends in .onnx: the recalibrated model saves only as .onnx.
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.partial.onnx")
    # SIGTERM (a service stop, `kill`) ends the export through the ``finally`` that removes the
    # partial file, with the exit status a shell gives a process it ended: killed so, it left a
    # hidden .NAME.PID.partial.onnx beside the target
    with sigterm_raises(lambda signum: SystemExit(128 + signum)):
        try:
            _export_to(tmp, target, model, int8, calibration_images, max_calibration, check, recalibrate_dir,
                       false_reject_rate, threads, odd_parts)
        finally:
            tmp.unlink(missing_ok=True)


def _export_to(tmp: Path, target: Path, model: Path, int8: bool, calibration_images: Optional[Path],
               max_calibration: int, check: bool, recalibrate_dir: Optional[Path],
               false_reject_rate: Optional[float], threads: Optional[int], odd_parts: Optional[str] = None) -> None:
    """Export into ``tmp``, check it, recalibrate it; put the result at ``target`` only at the end."""
    import numpy as np

    from ..runtime.onnx_export import export_onnx, parity_check
    from ..vision.errors import LineguardError
    from ..vision.inspector import Inspector
    try:
        insp = Inspector.load(model)
        calib = None
        if int8 and calibration_images is not None:
            from ..vision.imageio import list_images
            files = list(list_images(calibration_images))[:max_calibration]
            calib = np.stack([insp.preprocess.load(f)[0] for f in files])
        digest = export_onnx(insp, tmp, int8=int8, calibration_images=calib, check=False)
        checked, checked_on = _check_inputs(insp, recalibrate_dir, calib, calibration_images)
        worst = parity_check(insp, tmp, checked) if check else None
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{target}: cannot write the exported model ({exc.strerror or exc}); choose a writable folder")
    size_mb = tmp.stat().st_size / 1e6
    if recalibrate_dir is not None:
        say(f"exported the {'int8' if int8 else 'fp32'} graph ({size_mb:.1f} MB) of model {insp.model_id}; "
            f"setting its thresholds from {recalibrate_dir}")
        with warnings.catch_warnings():  # the fp32 thresholds not fitting int8 is what happens next
            warnings.simplefilter("ignore")
            exported = Inspector.load(tmp, threads=threads)
        # writes ``target`` (atomically) only once the thresholds are set; a refusal ends here
        recalibrate_and_report(exported, [recalibrate_dir], false_reject_rate, target, odd_parts=odd_parts)
    else:
        try:
            os.replace(tmp, target)
        except OSError as exc:
            fail(f"{target}: cannot write the exported model ({exc.strerror or exc}); choose a writable folder")
        say(f"wrote {target} ({size_mb:.1f} MB, {'int8' if int8 else 'fp32'}, model {digest[:16]}, "
            f"from {insp.model_id})")
    if worst is not None:
        if int8:
            # int8 moving scores is expected, not a pass: said plainly, never in green
            thresholds = ("the thresholds above were set from the int8 graph's own scores" if recalibrate_dir
                          else "the fp32 thresholds it keeps do not fit them")
            on_noise = ("" if checked is not None else
                        " (real parts can move far more: --recalibrate GOOD_DIR measures it on them)")
            note("int8", f"int8 moves scores: up to {worst:.1%} from the fp32 model's on {checked_on}{on_noise} "
                         f"(relative difference {worst:.2e}); {thresholds}")
        else:
            note("parity", f"largest relative score difference torch vs ONNX {worst:.2e} on {checked_on}",
                 colour="green")
    if int8 and calibration_images is None:
        note("note", "no --calibration-images: dynamic int8 (weights only); static calibration "
             "on good images is usually faster and more exact, and dynamic int8 can be slower than fp32 "
             "(on one AVX2-only CPU 4x slower: measure it with `lineguard eval --model` before using it)")
    if int8 and recalibrate_dir is None:
        note("warning", "the thresholds are the fp32 model's (--keep-fp32-thresholds), and int8 moves scores: "
             f"before using it on a line, `lineguard recalibrate {target} GOOD_DIR -o OUT.onnx` on good parts "
             "the model did not learn from", colour="red")


# parts scored by both models to measure how far the export moves scores
_CHECK_PARTS = 8


def _check_inputs(insp, recalibrate_dir: Optional[Path], calib, calibration_images: Optional[Path]):
    """The inputs the export's scores are compared on, and what they are in words: good
    parts of the command's own where it has them (the --recalibrate folder first: parts the
    model did not learn from), else generated noise. Measured on noise, int8 "moved scores
    up to 4.9%" where real parts moved 88%, and every good part came out NG."""
    import numpy as np

    from ..vision.errors import LineguardError
    from ..vision.imageio import list_images
    if recalibrate_dir is not None:
        inputs = []
        for f in (list_images(recalibrate_dir) if recalibrate_dir.is_dir() else [recalibrate_dir]):
            try:
                inputs.append(insp.preprocess.load(f)[0])
            except (LineguardError, OSError, ValueError):   # unreadable: recalibrate says so below
                continue
            if len(inputs) == _CHECK_PARTS:
                break
        if inputs:
            return np.stack(inputs), f"{len(inputs)} good parts of {recalibrate_dir}"
    if calib is not None and len(calib):
        n = min(len(calib), _CHECK_PARTS)
        return calib[:n], f"{n} good parts of {calibration_images}"
    return None, "3 generated noise inputs, not parts"


def _show_warning_on_one_line() -> None:
    """Warnings of lineguard's own that a person acts on (``one_line``, e.g. thresholds set
    at another precision) as one ``warning:`` line on the command line, not Python's
    ``file:line: Category: message`` with the source line under it."""
    if getattr(warnings.formatwarning, "_lineguard", False):
        return
    plain = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if getattr(category, "one_line", False):
            label = coloured("warning:", "yellow") if getattr(sys.stderr, "isatty", lambda: False)() else "warning:"
            return f"{label} {' '.join(str(message).split())}\n"
        return plain(message, category, filename, lineno, line)

    formatwarning._lineguard = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def register(app: click.Group) -> None:
    app.add_command(export)
    _show_warning_on_one_line()
