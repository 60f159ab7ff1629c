"""Edge verbs: export a trained model for the torch-free runtime.

    lineguard export cell.lgm --format onnx [-o cell.onnx] [--int8 --calibration-images good/]

The exported ``.onnx`` file loads anywhere ``lineguard[edge]`` is installed
(``lineguard inspect cell.onnx parts/``); see :mod:`lineguard.runtime.onnx_file`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .core import _fail, err, out


def export(
    model: Path = typer.Argument(..., help="Trained model file (.lgm)."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="File to write (default: MODEL.onnx)."),
    int8: bool = typer.Option(False, "--int8", help="Quantise the backbone to int8 (faster, slightly less exact)."),
    calibration_images: Optional[Path] = typer.Option(
        None, "--calibration-images", help="Folder of good part images to calibrate int8 activations "
        "(recommended with --int8; without it the weights only are quantised)."),
    max_calibration: int = typer.Option(64, help="Use at most this many calibration images."),
    check: bool = typer.Option(True, help="Score a few inputs with both runtimes and refuse a mismatch (fp32)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads."),
) -> None:
    """Write a self-contained model for the torch-free edge runtime (ONNX Runtime)."""
    from ..runtime.threads import set_threads
    from ..vision.errors import LineguardError
    if fmt.lower() != "onnx":
        _fail(f"--format {fmt!r} is not supported; use --format onnx")
    if model.suffix != ".lgm":
        _fail(f"{model}: export reads a trained .lgm model file")
    target = output or model.with_suffix(".onnx")
    if target.suffix != ".onnx":
        _fail(f"{target}: exported models end in .onnx")
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        _fail(f"export needs torch and onnx ({exc.name} is missing): pip install 'lineguard[torch,edge]'")
    import numpy as np

    from ..runtime.onnx_export import export_onnx, parity_check
    from ..vision.inspector import Inspector
    set_threads(threads)
    try:
        insp = Inspector.load(model)
        calib = None
        if int8 and calibration_images is not None:
            from ..vision.imageio import list_images, load_image
            files = list(list_images(calibration_images))[:max_calibration]
            calib = np.stack([insp.preprocess.apply(load_image(f))[0] for f in files])
        digest = export_onnx(insp, target, int8=int8, calibration_images=calib, check=False)
        if check:
            worst = parity_check(insp, target, calib)
            err.print(f"parity: largest relative score difference torch vs ONNX {worst:.2e}", highlight=False)
    except (LineguardError, ValueError) as exc:
        _fail(str(exc))
    size_mb = target.stat().st_size / 1e6
    out.print(f"wrote {target} ({size_mb:.1f} MB, {'int8' if int8 else 'fp32'}, model {digest[:16]}, "
              f"from {insp.model_id})", highlight=False)
    if int8 and calibration_images is None:
        err.print("[yellow]note:[/] no --calibration-images: dynamic int8 (weights only); static calibration "
                  "on good images is usually faster and more exact", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(export)
