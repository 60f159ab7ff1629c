"""Stress-test verb: what a model will miss, before the first real defect.

    lineguard stress cell.onnx parts/held-out-good/ -o stress/ [--per-kind 200] [--kinds scratch crack]
                     [--mm-per-px 0.05] [--seed 0]

Writes ``stress/index.html`` and ``stress/pod.json``, and a short summary beside the
model (``cell.onnx.pod.json``) that ``lineguard info`` prints. The model file itself is
never touched: it is content-hashed, and a study is about a model, not part of it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import click

from ._term import fail, note, progress, say
from .core import PathArg, _threads, runtime_option, threads_option

POD_SUFFIX = ".pod.json"


def pod_summary_path(model: Path) -> Path:
    """Where a model's stress-test summary lives: beside it, named after the whole file
    name, so ``cell.lgm`` and its export ``cell.onnx`` keep their own."""
    return model.with_name(model.name + POD_SUFFIX)


def pod_summary(study: dict) -> dict[str, Any]:
    """The numbers a person reads from a study (no per-part rows)."""
    # the flags with the sizes: one below the smallest defect painted is not a measurement
    keep = ("status", "n", "hits", "a50", "a90", "a90_95", "a50_reached", "a90_reached", "a90_95_reached",
            "a50_below_painted",
            "a90_below_painted", "a90_95_below_painted", "size_min", "size_max")
    kinds = {}
    for kind, e in study["kinds"].items():
        size = e["size"]
        kinds[kind] = {"sentence": e["sentence"], "size_means": e["size_means"],
                       "contrast": e["nominal_contrast"], **{k: size.get(k) for k in keep}}
        if study.get("mm_per_px"):
            for k in ("a50", "a90", "a90_95"):
                kinds[kind][f"{k}_mm"] = size.get(f"{k}_mm")
        _null_unreached(kinds[kind])
        if e.get("line_width_px") is not None:
            kinds[kind]["line_width_px"] = e["line_width_px"]
        if e.get("line_width_input_px") is not None:     # the width the model sees after shrinking
            kinds[kind]["line_width_input_px"] = e["line_width_input_px"]
    painting = study.get("painting") or {}
    return {"kind": "lineguard.pod_summary", "model": study.get("model"), "good_dir": study.get("good_dir"),
            "n_good": study["n_good"], "photo_copies": study.get("photo_copies"),
            "small_left_out": study.get("small_left_out"), "per_kind": study["per_kind"], "seed": study["seed"],
            "mm_per_px": study.get("mm_per_px"), "false_reject_rate": study["false_reject_rate"],
            "review_rate_good": study.get("review_rate_good"), "left_out_photos": study.get("left_out_photos"),
            "learnt_left_out": study.get("learnt_left_out"),
            "calibration_left_out": study.get("calibration_left_out"),
            "roi": painting.get("roi"), "warnings": study.get("warnings", []), "kinds": kinds}


def _null_unreached(k: dict) -> dict:
    """A size beyond the largest painted is the curve's extrapolation, not a finding: null in
    the summary (a report's pod.json keeps the fitted value), with the reason in ``not_reached``."""
    reasons = dict(k.get("not_reached") or {})
    for key in ("a50", "a90", "a90_95"):
        if k.get(key) is not None and k.get(f"{key}_reached") is False:
            reasons[key] = (f"not reached: beyond the largest size painted ({k['size_max']:.3g} px; the curve's "
                            f"extrapolation, {k[key]:.3g} px, is in the report's pod.json)")
            k[key] = None
            if f"{key}_mm" in k:
                k[f"{key}_mm"] = None
    if reasons:
        k["not_reached"] = reasons
    return k


KINDS_HELP = "scratch, crack, spot, missing_material, contamination, low_contrast_area"


@click.command()
@click.argument("model", type=PathArg)
@click.argument("good_dir", type=PathArg)
@click.option("-o", "--output", required=True, type=PathArg, help="Report folder (index.html, pod.json).")
@click.option("--per-kind", type=int, default=200, show_default=True, help="Painted parts per defect kind.")
@click.option("--kinds", multiple=True, help=f"Defect kinds to paint (repeat or comma-separate): {KINDS_HELP}. "
                                             "Default: all.")
@click.option("--mm-per-px", type=float, default=None, help="Millimetres per photo pixel, to state sizes in mm.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--store/--no-store", default=True, show_default=True,
              help="Also write the summary beside the model (MODEL.pod.json) for `lineguard info`.")
@threads_option
@runtime_option
def stress(model: Path, good_dir: Path, output: Path, per_kind: int, kinds: tuple[str, ...],
           mm_per_px: Optional[float], seed: int, store: bool, threads: Optional[int],
           runtime: Optional[str]) -> None:
    """Paint defects of known size on held-out good parts and fit probability-of-detection curves.

    GOOD_DIR must hold good parts the model did NOT learn from (e.g. a held-out folder): on
    its own training parts a model scores low and the curves would flatter it.
    """
    from ..vision.errors import DatasetError, LineguardError
    from ..vision.imageio import list_images, load_images
    from ..vision.inspector import Inspector
    # the painting needs scipy: without it the CLI's group says so (pip install 'scipy>=1.11',
    # not the [torch] extra, which would put torch on an edge PC)
    from ..vision.stress import ABOVE_NG, run_stress
    from ..vision.stress_report import write_stress_report
    chosen = [k.strip() for arg in kinds for k in arg.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in _all_kinds()]
    if unknown:
        fail(f"unknown defect kind(s) {', '.join(unknown)}; --kinds takes: {KINDS_HELP}")
    if per_kind < 4:
        fail("--per-kind must be at least 4 (a curve needs hits and misses); 200 gives a usable a90/95")
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        fail(f"--mm-per-px must be a positive number of millimetres per pixel (got {mm_per_px})")
    if output.exists() and not output.is_dir():
        fail(f"{output} is a file; -o takes a folder for the report")
    _threads(threads)
    try:
        insp = Inspector.load(model, runtime=runtime)
        files = list_images(good_dir)
    except (LineguardError, DatasetError) as exc:
        fail(str(exc))
    good, ok, bad = load_images(files, sensor_bits=insp.preprocess.sensor_bits)
    for b in bad:
        note("skipped", str(b))
    from ..vision.stress import MIN_SIDE_PX
    # A thumbnail among the parts is too small to paint on: left out and named, as other photos
    # that cannot be used are; refusing the folder over 3 of 43 photos named none of them.
    n_read = len(ok)        # read, before any is left out: the "in all" of the notes below
    small = [str(p) for p, g in zip(ok, good) if min(g.shape[:2]) < MIN_SIDE_PX]
    small_left_out = None
    if small:
        small_left_out = {"count": len(small), "images": small[:20]}
        note("left out", f"{len(small)} photo(s) under {MIN_SIDE_PX} px on a side, too small to paint a defect on "
                         f"(e.g. {', '.join(small[:3])}): the study runs on the other {len(ok) - len(small)}")
        keep = [min(g.shape[:2]) >= MIN_SIDE_PX for g in good]
        good = [g for g, k in zip(good, keep) if k]
        ok = [p for p, k in zip(ok, keep) if k]
    # photos the model learned from fit it far better than new parts: judged on its own 100
    # training tiles a model showed 0% false rejects where new parts gave 1.0% (as recalibrate).
    # The photos held out to set its threshold are no measure either: the threshold was put
    # above all but its target share of them (the 12 held-out parts of a training folder:
    # 0% false rejects), so they are left out the same way.
    import numpy as np

    from ..vision.stress import calibration_photos_in, learnt_photos_in, threshold_parts_unknown
    seen = learnt_photos_in(insp, ok)
    set_on = calibration_photos_in(insp, ok)
    learnt_left_out = calibration_left_out = None
    drop = np.zeros(len(ok), bool)
    if seen is not None:
        drop |= seen
    if set_on is not None:
        set_on &= ~drop         # a photo both learnt and scored (cross-fit) is named once, as learnt
        drop |= set_on
    if drop.all() and len(ok):
        which = ("photos this model learned from or that set its reject threshold" if set_on is not None
                 and set_on.any() else "photos this model learned from")
        fail(f"{good_dir}: all {len(ok)} readable photos are {which}: scored by it they fit far better than "
             "new parts (the threshold was set on them), and the false-reject rate and the curves would flatter "
             "it; give good parts it did not learn from and that did not set its threshold (a held-out folder "
             "kept apart from training, photos from the line since training)")
    if seen is not None and seen.any():
        names = [str(p) for p, s_ in zip(ok, seen) if s_]
        learnt_left_out = {"count": len(names), "images": names[:20]}
        note("left out", f"{len(names)} photo(s) the model learned from (e.g. {', '.join(names[:3])}): they fit it "
                         f"far better than new parts and would flatter the study")
    if set_on is not None and set_on.any():
        names = [str(p) for p, s_ in zip(ok, set_on) if s_]
        calibration_left_out = {"count": len(names), "images": names[:20]}
        note("left out", f"{len(names)} photo(s) that set the reject threshold (held out at training or given to "
                         f"recalibrate; e.g. {', '.join(names[:3])}): the threshold sits above nearly all of them "
                         "by construction, so their false-reject rate would be where it was put, not a measurement")
    if drop.any():
        good = [g for g, d_ in zip(good, drop) if not d_]
        ok = [p for p, d_ in zip(ok, drop) if not d_]
        note("left out", f"{n_read - len(ok)} of {n_read} photo(s) in all; the study runs on the other {len(ok)}")
    if len(good) < 2:
        fail(f"{good_dir}: {len(good)} readable good image(s)"
             + (f" of {MIN_SIDE_PX} px or more on a side ({len(small)} smaller left out)" if small else "")
             + "; the stress test needs at least 2, and some 30 or more held-out good parts for a false-reject "
             "rate worth reading")
    try:
        with progress() as cb:
            study = run_stress(insp, good, kinds=chosen or _all_kinds(), per_kind=per_kind, seed=seed,
                               mm_per_px=mm_per_px, progress=cb, sources=[str(p) for p in ok])
        study["model"] = {"file": str(model), "model_id": insp.model_id, "version": insp.model_version}
        study["good_dir"] = str(good_dir)
        study["skipped"] = [str(b) for b in bad]
        if small_left_out:
            study["small_left_out"] = small_left_out
        if learnt_left_out:
            study["learnt_left_out"] = learnt_left_out
        elif seen is None:
            study.setdefault("warnings", []).append(
                "this model keeps no prints of the photos it learned from (trained before they were kept): make "
                "sure these are not its training photos, on which the curves and rates flatter it")
        if calibration_left_out:
            study["calibration_left_out"] = calibration_left_out
        elif set_on is None and threshold_parts_unknown(insp):
            n_cal = (insp.calibration or {}).get("n_calibration")
            study.setdefault("warnings", []).append(
                f"this model's reject threshold was set on {n_cal or 'some'} good part(s) it did not learn from, "
                "and it keeps no prints of them: if these photos include them (the rest of its training folder, "
                "the folder given to recalibrate), the false-reject rate on them is where the threshold was put, "
                "not a measurement; use good parts from the line since calibration")
        index = write_stress_report(output, study, insp, good)
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{output}: cannot write the report ({exc.strerror or exc}); choose a writable folder")
    if store:
        from ..vision.atomic import atomic_write_text
        from ..vision.report import to_jsonable
        target = pod_summary_path(model)
        try:
            atomic_write_text(target, json.dumps(to_jsonable(pod_summary(study)), indent=2) + "\n")
        except OSError as exc:
            note("note", f"could not store the summary beside the model ({target}: {exc.strerror or exc}); "
                         f"`lineguard info {model} --pod {output / 'pod.json'}` shows it")
    from ..vision.stress import threshold_meaning
    n = len(good)
    copies = study.get("photo_copies") or 0
    # copies of one photo are one part: said, so "40 good parts" does not stand for 10
    said_n = (f"{n} good photos ({n - copies} different parts; {copies} copies of another)" if copies
              else f"{n} good parts")
    line = (f"{said_n}, {study['false_rejects']} judged NG unpainted "
            f"(false-reject rate {study['false_reject_rate']:.1%})")
    if study.get("review_threshold") is not None:
        line += f", {study.get('reviews_good', 0)} judged REVIEW (review rate {study['review_rate_good']:.1%})"
    say(line)
    meaning = threshold_meaning(study)
    if meaning:
        say(f"reject threshold {study['threshold']:.4g}: {meaning}")
    left = study.get("left_out_photos") or {}
    doubted = left.get("photo_doubted") or 0
    if left.get("ng", 0) > doubted:
        say(f"  {left['ng'] - doubted} photo(s) already NG unpainted: no defect painted on them, left out of every "
            "curve")
    if doubted:
        # REVIEW for the photo itself whatever is painted: counted as misses, every kind read "never caught"
        say(f"  {doubted} photo(s) unlike the model's good photos (the photo check judges them REVIEW whatever is "
            "painted, never NG): no defect painted on them, left out of every curve")
    if study.get("review_threshold") is not None and left.get("ng_or_review", 0) > left.get("ng", 0):
        say(f"  {left['ng_or_review']} photo(s) already REVIEW or NG unpainted: left out of the "
            "hit = NG-or-REVIEW curves")
    roi = (study.get("painting") or {}).get("roi")
    if roi:
        say(f"  defects painted inside the model's region of interest {tuple(roi)} (x, y, width, height)")
    for w in study.get("warnings", []):
        note("warning", w)
    for kind, e in study["kinds"].items():
        say(f"  {kind}: {e['sentence']}")
        if study.get("review_threshold") is not None:
            for n in (e.get("size_ng_or_review") or {}).get("notes", []):
                if ABOVE_NG in n:
                    say(f"    hit = NG or REVIEW: {n}")
    say(f"report written to {index}")


def _all_kinds() -> list[str]:
    from ..vision.sized_defects import STRESS_KINDS
    return list(STRESS_KINDS)


def load_pod_summary(model: Path, pod: Optional[Path], model_id: str) -> Optional[dict]:
    """The stress-test summary for ``lineguard info``: from ``pod`` (a report's pod.json or a
    stored summary) or beside the model; None when there is none. Raises ValueError for
    a file that is not a stress-test summary."""
    path = pod if pod is not None else pod_summary_path(model)
    if not path.is_file():
        if pod is not None:
            raise ValueError(f"{pod}: no such file; give a report's pod.json or MODEL{POD_SUFFIX}")
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable stress-test summary ({exc}); re-run `lineguard stress`") from exc
    if not isinstance(data, dict) or data.get("kind") not in ("lineguard.stress", "lineguard.pod_summary"):
        raise ValueError(f"{path}: not a stress-test summary (written by `lineguard stress`)")
    try:
        summary = pod_summary(data) if data["kind"] == "lineguard.stress" else data
    except (KeyError, TypeError, AttributeError) as exc:     # cut short or edited: a field missing
        raise ValueError(f"{path}: not a readable stress-test summary (no {exc}); re-run `lineguard stress`") from exc
    for k in (summary.get("kinds") or {}).values():    # a summary stored before a90 was nulled there
        if isinstance(k, dict):
            _null_unreached(k)
    made_for = (summary.get("model") or {}).get("model_id")
    summary["matches_model"] = made_for == model_id
    return summary


def register(app: click.Group) -> None:
    app.add_command(stress)
