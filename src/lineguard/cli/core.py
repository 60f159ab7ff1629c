"""Inspection verbs: train, inspect, eval, synth, info.

Exit codes: 0 done; 1 done but some parts were NG (``inspect --fail-on-ng``) or some
files were unreadable; 2 refused (bad arguments, unusable model or data).
"""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..vision.errors import LineguardError

err = Console(stderr=True)
out = Console()


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


def _threads(n: Optional[int]) -> None:
    if n:  # torch threads when torch is installed, and ONNX Runtime sessions made after this
        from ..runtime.threads import set_threads
        set_threads(n)


@contextmanager
def _progress(enabled: bool = True) -> Iterator:
    """A rich progress bar per stage; callbacks are (stage, done, total)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False) as prog:
        tasks: dict[str, int] = {}

        def cb(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
            prog.update(tasks[stage], completed=done, total=total)
        yield cb


def _parse_size(size: str):
    """'224' -> 224, '224x384' -> (224, 384) (height x width)."""
    try:
        parts = [int(v) for v in size.lower().split("x")]
    except ValueError:
        _fail(f"--image-size must be N or HEIGHTxWIDTH, e.g. 224 or 224x384 (got {size!r})")
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return (parts[0], parts[1])
    _fail(f"--image-size must be N or HEIGHTxWIDTH (got {size!r})")


def _parse_roi(roi: Optional[str]) -> Optional[tuple[int, int, int, int]]:
    if not roi:
        return None
    try:
        x, y, w, h = (int(v) for v in roi.split(","))
    except ValueError:
        _fail(f"--roi must be four integers x,y,width,height (got {roi!r})")
    return (x, y, w, h)


def train(
    good: List[Path] = typer.Argument(..., help="Folder(s) or files of good part images."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.lgm)."),
    detector: str = typer.Option("patchcore", help="patchcore or padim."),
    false_reject_rate: float = typer.Option(0.01, "--frr", help="Target false-reject rate for the threshold."),
    image_size: str = typer.Option("224", help="Model input: N (square) or HEIGHTxWIDTH, multiples of 32."),
    resize: str = typer.Option("stretch", help="stretch or pad (keep aspect)."),
    orient: str = typer.Option("none", help="landscape: turn portrait photos so the long side is horizontal."),
    roi: Optional[str] = typer.Option(None, help="Region of interest x,y,width,height in photo pixels."),
    holdout: float = typer.Option(0.2, help="Share of good images held out to set the threshold."),
    defects: Optional[Path] = typer.Option(None, help="Folder of defect images (optional) to report escapes."),
    strategy: str = typer.Option("frr", help="Threshold: frr (target false-reject rate) or f1 (needs --defects)."),
    coreset_ratio: Optional[float] = typer.Option(None, help="PatchCore memory bank share of patches."),
    version: Optional[str] = typer.Option(None, help="Model version label (default: a timestamp)."),
    seed: int = typer.Option(0),
    strict: bool = typer.Option(False, help="Refuse to train if any image is unreadable."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for the model."),
) -> None:
    """Learn a part from good images only and write a model file."""
    from ..vision.inspector import Inspector
    _threads(threads)
    params = {}
    if coreset_ratio is not None:
        params["coreset_ratio"] = coreset_ratio
    if output.suffix != ".lgm":
        _fail(f"{output}: model files end in .lgm")
    try:
        with _progress() as cb:
            insp = Inspector.fit(good, detector=detector, false_reject_rate=false_reject_rate,
                                 image_size=_parse_size(image_size), resize=resize, orient=orient,
                                 roi=_parse_roi(roi), holdout=holdout, defect_images=defects,
                                 threshold_strategy=strategy, seed=seed, version=version, skip_bad=not strict,
                                 progress=cb, **params)
        insp.save(output)
    except (LineguardError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{output}: cannot write the model file ({exc.strerror or exc}); choose a writable folder")
    c = insp.calibration
    for s in insp.info.get("skipped", []):
        err.print(f"[yellow]skipped:[/] {s}", highlight=False)
    out.print(f"wrote {output} (model {insp.model_id}, version {insp.model_version}, "
              f"{insp.info['n_train']} parts learned, {insp.info['n_calibration']} held out)", highlight=False)
    out.print(f"threshold {insp.threshold:.4f} for a target false-reject rate of {false_reject_rate:.2%} "
              f"(guaranteed <= {c['guaranteed_false_reject_rate']:.2%})", highlight=False)
    if c.get("note"):
        err.print(f"[yellow]note:[/] {c['note']}", highlight=False)
    if "at_frr_threshold" in c:
        r = c["at_frr_threshold"]
        out.print(f"on the defect images: escape rate {r['escape_rate']:.2%} at this threshold; "
                  f"F1-optimal threshold {c['f1_threshold']:.4f} (F1 {c['f1']:.3f})", highlight=False)
    if insp.info.get("skipped"):
        raise typer.Exit(1)


def inspect(
    model: Path = typer.Argument(..., help="Model file (.lgm, or an exported .onnx for the edge runtime)."),
    images: List[Path] = typer.Argument(..., help="Image files or folders."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per part on stdout."),
    overlays: Optional[Path] = typer.Option(None, help="Write an overlay PNG per part into this folder."),
    batch_size: int = typer.Option(16, help="Parts per model batch."),
    fail_on_ng: bool = typer.Option(False, help="Exit 1 if any part is NG."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for the model."),
) -> None:
    """Judge parts: verdict, score and defect regions for each image."""
    from ..vision.imageio import list_images, load_image
    from ..vision.errors import DatasetError, ImageError
    from ..vision.inspector import Inspector
    _threads(threads)
    try:
        insp = Inspector.load(model)
    except LineguardError as exc:
        _fail(str(exc))
    files: list[Path] = []
    for p in images:
        if p.is_dir():
            try:
                files.extend(list_images(p))
            except DatasetError as exc:
                _fail(str(exc))
        else:
            files.append(p)
    bad: list[str] = []
    n_ng = 0
    for start in range(0, len(files), batch_size):
        chunk, arrays = [], []
        for f in files[start:start + batch_size]:
            try:
                arrays.append(load_image(f))
                chunk.append(f)
            except ImageError as exc:
                bad.append(str(exc))
                if as_json:
                    print(json.dumps({"source": str(f), "error": str(exc)}))
        if not arrays:
            continue
        results = insp.inspect_batch(arrays, batch_size=batch_size, sources=[str(f) for f in chunk])
        for f, arr, r in zip(chunk, arrays, results):
            n_ng += r.is_ng
            if as_json:
                print(json.dumps(r.to_dict()))
            else:
                where = f"  {len(r.regions)} region(s), worst at {r.regions[0].to_dict()['box']}" if r.regions else ""
                colour = "red" if r.is_ng else "green"
                out.print(f"[{colour}]{r.verdict.value}[/] {r.score:8.4f} / {r.threshold:.4f}  {f}{where}",
                          highlight=False)
            if overlays is not None:
                from ..vision.imageio import save_png_atomic
                from ..vision.overlay import render_overlay
                save_png_atomic(render_overlay(arr, r), overlays / f"{f.stem}_overlay.png")
    for b in bad:
        err.print(f"[red]unreadable:[/] {b}", highlight=False)
    if not as_json:
        n = len(files) - len(bad)
        out.print(f"{n} part(s) inspected: {n - n_ng} OK, {n_ng} NG" + (f"; {len(bad)} unreadable" if bad else ""))
    if bad or (fail_on_ng and n_ng):
        raise typer.Exit(1)


def evaluate(
    category: Path = typer.Argument(..., help="MVTec-layout category folder (train/good, test/<type>, ground_truth)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Report folder (JSON, plots, gallery)."),
    model: Optional[Path] = typer.Option(None, help="Evaluate this model instead of training on train/good."),
    detector: str = typer.Option("patchcore"),
    image_size: str = typer.Option("224", help="N (square) or HEIGHTxWIDTH."),
    resize: str = typer.Option("stretch"),
    orient: str = typer.Option("none", help="none or landscape."),
    false_reject_rate: float = typer.Option(0.01, "--frr"),
    coreset_ratio: Optional[float] = typer.Option(None),
    max_train: Optional[int] = typer.Option(None, help="Use at most this many train/good images."),
    save_model: Optional[Path] = typer.Option(None, help="Also write the trained model here."),
    threads: Optional[int] = typer.Option(None),
    seed: int = typer.Option(0),
) -> None:
    """Measure a model on labelled data: AUROC, AUPRO, false rejects and escapes."""
    from ..vision.dataset import MVTecCategory
    from ..vision.evaluate import evaluate as run_eval
    from ..vision.inspector import Inspector
    _threads(threads)
    try:
        cat = MVTecCategory(category)
        if model is not None:
            insp = Inspector.load(model)
        else:
            train_files = cat.train_good[:max_train] if max_train else cat.train_good
            params = {"coreset_ratio": coreset_ratio} if coreset_ratio is not None else {}
            with _progress() as cb:
                insp = Inspector.fit(train_files, detector=detector, image_size=_parse_size(image_size),
                                     resize=resize, orient=orient,
                                     false_reject_rate=false_reject_rate, seed=seed, progress=cb, **params)
            if save_model:
                insp.save(save_model)
        with _progress() as cb:
            report = run_eval(insp, category, out_dir=output,
                              progress=(lambda d, t: cb("inspect", d, t)) if cb else None)
    except (LineguardError, ValueError) as exc:
        _fail(str(exc))
    keys = ("image_auroc", "pixel_auroc", "aupro", "f1_max", "false_reject_rate", "escape_rate", "threshold")
    for k in keys:
        v = report.get(k)
        out.print(f"{k:>18}: {v:.4f}" if isinstance(v, (int, float)) else f"{k:>18}: {v}", highlight=False)
    if output:
        out.print(f"report written to {output}/index.html", highlight=False)


def synth(
    output: Path = typer.Argument(..., help="Category folder to create (MVTec layout)."),
    n_good: int = typer.Option(200, help="Good training parts."),
    n_defect: int = typer.Option(60, help="Defective test parts, spread over the defect types."),
    n_test_good: Optional[int] = typer.Option(None, help="Good test parts (default n_good/4)."),
    size: int = typer.Option(256, help="Image side in pixels."),
    seed: int = typer.Option(0),
) -> None:
    """Generate a synthetic product line (good parts and defects with exact masks)."""
    from ..vision.synth import write_dataset
    try:
        with _progress() as cb:
            write_dataset(output, n_good=n_good, n_defect=n_defect, seed=seed, size=size, n_test_good=n_test_good,
                          progress=(lambda d, t: cb("generate", d, t)) if cb else None)
    except (LineguardError, ValueError, FileExistsError) as exc:
        _fail(str(exc))
    out.print(f"wrote synthetic category to {output}", highlight=False)


def info(model: Path = typer.Argument(..., help="Model file (.lgm).")) -> None:
    """Show what a model file holds: detector, thresholds, versions."""
    from ..vision.inspector import Inspector
    try:
        insp = Inspector.load(model)
    except LineguardError as exc:
        _fail(str(exc))
    print(json.dumps(insp.describe(), indent=2, default=str))


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(inspect)
    app.command(name="eval")(evaluate)
    app.command()(synth)
    app.command()(info)
