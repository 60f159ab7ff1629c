"""Inspection verbs: train, recalibrate, inspect, eval, synth, info.

Exit codes: 0 done; 1 done but some parts were NG (``inspect --fail-on-ng``; REVIEW parts
do not count, a person decides those) or some
files were unreadable; 2 refused (bad arguments, unusable model or data).
"""
from __future__ import annotations

import collections
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import click

from ..vision.errors import LineguardError
from ._term import (CORESET, HOLDOUT, RATE, REVIEW_RATE, SEED, Whole, coloured, fail, given, note, progress,
                    say)

if TYPE_CHECKING:
    from ..vision.inspector import Inspector

PathArg = click.Path(path_type=Path)


def _threads(n: Optional[int]) -> None:
    if n is not None and n < 1:   # -1 ended in a ValueError traceback, 0 was dropped unsaid
        fail(f"--threads {n}: give at least 1 thread (leave it out for one per core)")
    if n:  # torch threads when torch is installed, and ONNX Runtime sessions made after this
        from ..runtime.threads import set_threads
        set_threads(n)


threads_option = click.option("--threads", type=int, default=None, help="CPU threads for the model.")
runtime_option = click.option("--runtime", type=click.Choice(["onnxruntime", "openvino"]), default=None,
                              help="Runtime for an exported .onnx model (default: the one its thresholds were "
                                   "set on, onnxruntime unless recalibrated in OpenVINO bf16; openvino needs the "
                                   "[openvino] extra).")
precision_option = click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None,
                                help="bf16: OpenVINO on CPUs with native bfloat16; faster, but scores move and "
                                     "parts near the threshold can flip (measured in the README).")


def _profile_options(f):
    """--profile, --image-size and --backbone: a profile's settings, each overridable.
    Nothing here may import torch: the edge install's CLI loads this module without it
    (an unknown backbone is refused when training starts)."""
    from ..vision.profiles import DEFAULT_PROFILE, PROFILES
    f = click.option("--backbone", default=None,
                     help="Pretrained feature extractor: efficientnet_lite0/1/2 or mobilenet_v2 "
                          "(default: the profile's).")(f)
    f = click.option("--image-size", default=None,
                     help="Model input: N (square), HEIGHTxWIDTH (multiples of 32), auto / autoN: the good "
                          "photos' aspect ratio with a short side of 224 / N (tall or wide parts are not "
                          "squeezed), or areaN: at most NxN pixels, square for parts within 1.5:1 of square, "
                          "else the photos' aspect ratio. Default: the profile's.")(f)
    return click.option("--profile", type=click.Choice(list(PROFILES)), default=DEFAULT_PROFILE, show_default=True,
                        help="fast: EfficientNet-Lite0 on at most 224x224 pixels (long parts keep their shape), "
                             "7-10 ms a part exported. quality: the parts' own "
                             "aspect ratio, MobileNetV2, each part also seen at 0.7x that size; for thin or small "
                             "defects on long parts, several times slower (README, Benchmarks).")(f)


exact_search_option = click.option(
    "--exact-search", is_flag=True, default=False,
    help="PatchCore: search the memory bank in float32 instead of int8. int8 (the default) is ~3x faster "
         "on CPUs with VNNI and ranks parts the same (README, Benchmarks); exact is for a like-for-like "
         "comparison with models made before it.")


extra_scales_option = click.option(
    "--extra-scales", default=None, metavar="F[,F...]",
    help="PatchCore: also see each part at these factors of the input's side, each with its own bank, "
         "e.g. 0.7; 'none' for the input size only. Default: the profile's (quality: 0.7, fast: none).")


def _parse_extra_scales(text: Optional[str]) -> Optional[tuple[float, ...]]:
    if text is None:
        return None
    if text.strip().lower() in ("none", ""):
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        fail(f"--extra-scales takes factors of the input's side separated by commas, e.g. 0.7, or 'none'; "
             f"got {text!r}")
        return None


def _fit_settings(profile: str, image_size: Optional[str], backbone: Optional[str], detector: str,
                  exact_search: bool = False, extra_scales: Optional[str] = None) -> dict:
    from ..vision.profiles import profile_settings
    out = profile_settings(profile, _parse_size(image_size) if image_size else None, backbone)
    scales = _parse_extra_scales(extra_scales)
    if detector != "patchcore":
        if backbone is None:
            out.pop("backbone")      # other detectors keep their own default features
        if scales:
            fail(f"--extra-scales is a PatchCore setting; {detector} has no memory bank per input size")
        out.pop("extra_scales", None)
    elif scales is not None:
        out["extra_scales"] = scales
    if exact_search:
        if detector != "patchcore":
            fail(f"--exact-search is a PatchCore setting; {detector} has no memory bank to search")
        out["search"] = "float32"
    return out


def _parse_size(size: str):
    """'224' -> 224, '224x384' -> (224, 384) (height x width), 'auto' / 'auto256' / 'area224'
    as is (the good photos' aspect ratio, see ``inspector.auto_input_size``)."""
    from ..vision.preprocess import side_ok, size_rule
    if size.strip().lower().startswith(("auto", "area")):
        try:
            size_rule(size)
        except ValueError:
            fail(f"--image-size {size!r}: give auto, autoN or areaN with N a multiple of 32, at least 64 "
                 "(e.g. auto256, area224)")
        return size.strip().lower()
    try:
        parts = [int(v) for v in size.lower().split("x")]
    except ValueError:
        fail(f"--image-size must be N or HEIGHTxWIDTH, e.g. 224 or 224x384 (got {size!r})")
    if len(parts) not in (1, 2):
        fail(f"--image-size must be N or HEIGHTxWIDTH (got {size!r})")
    for side in parts:
        if not side_ok(side):
            # said before training, in the option's words: "image_size sides must be ..." came after
            # the photos were read, with the Python name
            near = ", ".join(str(v) for v in sorted({max(64, side // 32 * 32), max(64, -(-side // 32) * 32)}))
            fail(f"--image-size {size}: each side must be a multiple of 32 and at least 64 (the backbones' grid); "
                 f"for {side}, give {near.replace(', ', ' or ')}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _parse_roi(roi: Optional[str]) -> Optional[tuple[int, int, int, int]]:
    if not roi:
        return None
    try:
        x, y, w, h = (int(v) for v in roi.split(","))
    except ValueError:
        fail(f"--roi must be four integers x,y,width,height (got {roi!r})")
    return (x, y, w, h)


def _promise(c: dict) -> str:
    from ..vision.calibration import promise_text
    return promise_text(c)


def _share(rate: float) -> str:
    """A target or review share as a person asked for it ("1.00%", "0.125%"; 1e-9 read "0.00%")."""
    from ..vision.calibration import share_said
    return share_said(rate)


def _caught_at_review(at: dict) -> str:
    """The defect photos judged REVIEW beside the escapes counted in ``at`` (a record's
    ``at_*`` entry counted by the verdict: calibration.escapes_judged), in eval's words:
    caught at review, not escapes. "" where none, or a record counted by score."""
    n = int(at.get("defects_review") or 0)
    if not n:
        return ""
    photo = int(at.get("defects_photo_review") or 0)
    return (f"; {n} judged REVIEW" + (f", {photo} of them by the photo check whatever their score" if photo else "")
            + ": caught at review, not escapes")


def _empty_band_why(c: dict, false_reject_rate: float, review_rate: float,
                    more: str = "give more good images, or a larger --review-rate") -> str:
    """Why a review band asked for came out empty, with the parts it needs (train, as
    recalibrate and the retrain job say it): train's "with few held-out parts, try a
    larger --review-rate" named no number, and under cross-fitting every good part sets
    the thresholds."""
    from ..vision.calibration import empty_band_cause
    n = int(c.get("n_calibration") or 0)
    cause, needed = empty_band_cause(false_reject_rate, review_rate, n)
    if cause == "tied":
        return "the good parts' highest scores are tied: give more, or more varied, good parts"
    if cause == "too_few":
        return (f"{n} good parts are too few to set a {_share(review_rate)} band above a {_share(false_reject_rate)} "
                f"false-reject rate" + (f" (needs {needed})" if needed else "") + f": {more}")
    # enough parts once, but on these the band's rank falls on the threshold's (a 1% band
    # over 40 parts is less than one part): 40 parts were called "tied"
    return (f"a {_share(review_rate)} band over {n} good parts is less than one part's rank above the threshold: give "
            f"a larger --review-rate (at least {1 / (n + 1):.2%}) or more good parts")


def _say_f1_threshold(insp: "Inspector", c: dict, false_reject_rate: float, review_rate: float) -> None:
    """What an F1-chosen threshold does on the parts given, measured, and that it promises
    nothing: it used to be stated with the frr threshold's promise and escape rate (27.05's
    "<= 1.96%" beside an F1 threshold of 23.58 that rejected 18% of the good parts, and
    `eval` then found 23% NG "ABOVE the promise")."""
    at = c["at_f1_threshold"]
    say(f"threshold {insp.threshold:.4f}, chosen by F1 ({c['f1']:.3f}) on the given good and defect parts: on them "
        f"{at['false_reject_rate']:.2%} of the good parts judged NG ({at['false_rejects']} of {at['n_good']}) "
        f"and escape rate {at['escape_rate']:.2%} ({at['escapes']} of {at['n_defect']} defects judged OK"
        f"{_caught_at_review(at)})")
    note("note", "no false-reject guarantee at this threshold: these rates were measured on the same parts that "
                 "chose it, so the escape rate is optimistic for new defects; check on parts it has not seen "
                 "(lineguard eval)")
    if insp.review_threshold < insp.threshold:
        r = c.get("at_review_threshold") or {}
        say(f"review band: OK at or below {insp.review_threshold:.4f}, REVIEW up to the threshold, set for "
            f"{_share(review_rate)} of good parts to review on top of those judged NG; on the given parts "
            f"{r.get('false_reject_rate', 0.0):.2%} of the good parts judged REVIEW or NG, escape rate "
            f"{r.get('escape_rate', 0.0):.2%}"
            + (f" ({r['escapes']} of {r['n_defect']} defects judged OK{_caught_at_review(r)})"
               if "escapes" in r else "")
            + " (measured, not promised)")
    elif review_rate > 0:
        note("note", "the review band is empty (too few good parts between the two thresholds): try a larger "
                     "--review-rate or more good images")
    frr = c.get("frr_promise") or {}
    alt = c.get("at_frr_threshold") or {}
    line = (f"the frr threshold would be {c['frr_threshold']:.4f} for a target false-reject rate of "
            f"{_share(false_reject_rate)}")
    if frr.get("guaranteed_false_reject_rate") is not None:
        line += f", with the promise {_promise(frr)}"
    if alt.get("escape_rate") is not None:
        line += (f"; escape rate {alt['escape_rate']:.2%} there on the defect images ({alt['escapes']} of "
                 f"{alt['n_defect']} judged OK{_caught_at_review(alt)})")
    say(line + " (train without --strategy f1 for it)")
    if frr.get("note"):
        note("note", f"for the frr threshold: {frr['note']}")


def _keep_calibration_prints(insp: Any, good: list[Path]) -> None:
    """Record in the calibration the prints of the good photos held out of training (the
    ones that set the threshold): every readable good photo the model did not learn from.
    ``lineguard stress`` on the training folder then leaves them out: the threshold sits
    above nearly all of them by construction, and on them it showed 0% false rejects, a
    rate no new part gives. Under cross-fitting every part is learnt and already known so."""
    from ..vision.bundle import CALIBRATION_PHOTOS
    from ..vision.errors import LineguardError
    from ..vision.imageio import list_images
    from ..vision.inspector import LEARNT_PHOTOS, photo_prints
    learnt = set(insp.info.get(LEARNT_PHOTOS) or ())
    prints: list[str] = []
    for item in good:
        for f in (list_images(item) if Path(item).is_dir() else [item]):
            try:
                x = insp.preprocess.load(f)[0]
            except (LineguardError, OSError, ValueError):   # unreadable: training skipped it too
                continue
            p = photo_prints(x[None])[0]
            if p not in learnt:
                prints.append(p)
    insp.calibration[CALIBRATION_PHOTOS] = sorted(set(prints))


def _say_far_above(c: dict, suspects: list, threshold: float, where: str, then: Optional[str]) -> None:
    """Good photos scoring far above the others (``suspects``, cut at ``c['suspect_cut']``),
    each named for a person to look at, then the threshold without them in place of
    ``threshold``. train, eval (when it trains) and recalibrate say it in the same words
    but two: ``where`` the photos are ("in the good folder", "among them") and ``then``,
    how to set the threshold without them (None: no such line, the caller says what was
    done with them as asked)."""
    for sus in suspects:
        note("look at", f"{sus['image']} scores {sus['score']:.4g}, far above the other good parts "
                        f"(> {c['suspect_cut']:.4g}): a bad or odd part {where}?")
    if then is not None and c.get("threshold_without_suspects") is not None:
        note("note", f"if those parts are bad, the threshold without them would be "
                     f"{c['threshold_without_suspects']:.4f} instead of {threshold:.4f}: {then}")


# unusual good photos named one to a line; past this many, the rest by name on one line
UNUSUAL_SHOWN = 5


def _say_unusual(photo_range: Optional[dict], named: Optional[list] = None) -> None:
    """Good photos far from most that the photo check's range holds all the same
    (``photo_range['unusual']``): not odd, a part like them is judged on its score. Said
    gently, apart from the odd ones: train once named such a photo "too bright" beside a
    range that allowed it, and said parts like it went to REVIEW. ``named``: the same
    photos with their names (info['photo_unusual'], recalibrate's record's): each of the
    first few named with what is off, then "and N more" by name, as the odd ones are; the
    note without a name left a person to find the photo among the folder's hundreds.
    Without it (a model from before the names were kept), what is off only."""
    gentle = ("was left out of learning the photo check's range, which holds it all the same: a part "
              "photographed like it is judged on its score")
    if not named:
        for what in (photo_range or {}).get("unusual") or []:
            note("note", f"a good photo far from most ({'; '.join(what)}) {gentle}")
        return
    for u in named[:UNUSUAL_SHOWN]:
        note("note", f"{u['image']}: a good photo far from most ({'; '.join(u['what'])}) {gentle}")
    rest = [str(u["image"]) for u in named[UNUSUAL_SHOWN:]]
    if rest:
        note("note", f"and {len(rest)} more good photos far from most, held by the range all the same: "
                     f"{', '.join(rest)}")


def _say_good_folder_notes(insp: "Inspector", leave_them_out: str) -> None:
    """What training found in the good folder for a person to look at: photos unlike the
    others, parts scoring far above the others (and the threshold without them), the same
    photo twice. train and eval (when it trains) say the same: eval once shipped every
    KolektorSDD defect at a threshold one such photo set (43.8, 26.3 without it) with no
    word. ``leave_them_out``: how to set the threshold without the far-out parts there."""
    from ..vision.inspector import DUPLICATE_PHOTOS, PHOTO_UNUSUAL
    c = insp.calibration
    for odd in insp.info.get("photo_odd", []):
        # odd: the photo check, learnt without it, doubts it (its issues are the check's words)
        note("look at", f"{odd['image']}: the photo is unlike the other good photos ({'; '.join(odd['issues'])}), "
                        "so it was left out of the photo check's range and lies outside it: a lamp flicker or a "
                        "camera setting changed while it was taken?")
    odd_names = [str(o["image"]) for o in insp.info.get("photo_odd", [])]
    if odd_names:
        # what to do, once: the odd photos are out of the photo check's range only; they are
        # still learnt and still count for the threshold, and parts photographed like them
        # go to REVIEW on the line
        shown = ", ".join(odd_names[:5]) + (f" and {len(odd_names) - 5} more" if len(odd_names) > 5 else "")
        it, they = ("it", "it") if len(odd_names) == 1 else ("them", "they")
        note("next step", f"look at {shown}: if the lamp or camera was off when taken, take {it} out of the good "
                          f"folder and train again (the model still learned from {it} and {they} still count"
                          f"{'s' if they == 'it' else ''} for the threshold); if good parts on the line look like "
                          "that, add more such photos and train again, else the photo check sends those parts to "
                          "REVIEW")
    _say_unusual(insp.info.get("photo_range"), insp.info.get(PHOTO_UNUSUAL))
    _say_far_above(c, insp.info.get("suspect_good", []), insp.threshold, "in the good folder", leave_them_out)
    if c.get("suspects_note"):
        note("note", c["suspects_note"])
    twins = insp.info.get(DUPLICATE_PHOTOS) or []
    for ix in twins[:20]:
        note("look at", f"{' = '.join(str(n) for n in ix)}: the same photo (a camera saving twice, or a copy?); "
                        "kept in one group for the threshold so neither scored the other, but a copy adds nothing: "
                        "take it out of the good folder")
    if len(twins) > 20:
        note("look at", f"and {len(twins) - 20} more sets of the same photo (info['{DUPLICATE_PHOTOS}'])")


def _learned_words(insp: "Inspector") -> str:
    """How many parts the model learnt, in the wrote line: copies of one photo are one part
    (60 photos of which 20 were copies read "60 parts learned" beside "40 different ones")."""
    from ..vision.inspector import LEARNT_PHOTOS
    n = int(insp.info["n_train"])
    # by the prints of the photos learnt (a held-out copy is not among them)
    prints = insp.info.get(LEARNT_PHOTOS) or []
    copies = len(prints) - len(set(prints)) if len(prints) == n else 0
    if not copies:
        return f"{n} parts learned"
    return f"{n} photos learned: {n - copies} different parts and {copies} {'copy' if copies == 1 else 'copies'}"


# README step 1 asks for 30 to 200 photos of good parts. Below it train still writes the
# model (a trial on a few photos is legitimate: exit 0), but 5 photos ended with a "note"
# that read as a passing remark: it now warns, saying what so few can and cannot promise
GOOD_PHOTOS_ADVISED = 30


def _say_photo_set(insp: "Inspector", false_reject_rate: float, output: Optional[Path] = None) -> None:
    """What the good photos as a whole call for (stderr): photos of several shapes learnt
    as one model (vision.photo_check.learn_aspect), and fewer different photos than README
    step 1 asks for (copies of one photo count once). ``output``: the model written, beside
    which the photos of the other shapes are listed when too many to name."""
    from ..vision.inspector import LEARNT_PHOTOS
    from ..vision.photo_check import shape_group_said, shapes_said

    def _shape_short(s: dict) -> str:     # "4:3" for a camera's frame, "width/height 0.60-1.03" for crops
        return shape_group_said(s, short=True)
    shapes = (insp.info.get("photo_aspect") or {}).get("shapes") or []
    listed = None
    if output is not None:
        main = max(shapes, key=lambda s: s["n"]) if shapes else None
        listed = _write_shapes_list(output, [(_shape_short(s), s.get("photos") or [])
                                             for s in shapes if s is not main])
    if shapes:
        # half 128 x 128 and half 256 x 192 were learnt in silence: half stretched, and a
        # camera switched between the two shapes no longer named by the photo check
        h, w = insp.preprocess.input_hw
        fitted = "padded" if insp.preprocess.resize == "pad" else "stretched"
        main = max(shapes, key=lambda s: s["n"])
        # every photo to move, up to SKIPPED_SHOWN; past it a few of each shape and the
        # whole list in a file beside the model ("5 of 11 ..." left the user no way to the rest)
        many = sum(len(s.get("photos") or []) for s in shapes if s is not main) > SKIPPED_SHOWN
        odd = "; ".join(f"{_shape_short(s)}: " + (_few(s["photos"]) if many else ", ".join(s["photos"]))
                        + (" ..." if s["n"] > len(s["photos"]) else "")
                        for s in shapes if s is not main and s.get("photos"))
        if odd and many and listed:
            odd += f"; every one listed in {listed}"
        note("warning", f"the good photos have {len(shapes)} shapes, {shapes_said(insp.info['photo_aspect'])}: two "
                        f"cameras, or a camera setting changed while they were taken? All were learnt as one model, "
                        f"{fitted} to one input of {h}x{w}, so a part looks different in each shape, and a camera "
                        "switched from one of these shapes to another is not named by the photo check. One camera "
                        "setting per model: keep the photos of the shape the line's camera takes, move the others "
                        f"out of the good folder{f' ({odd})' if odd else ''} or train them as a model of their own, "
                        "and train again")
    c = insp.calibration
    held_out = c.get("calibration_method") == "held out"
    learnt = insp.info.get(LEARNT_PHOTOS) or []
    photos = len(learnt) + (insp.info["n_calibration"] if held_out else 0)
    distinct = len(set(learnt)) + (insp.info["n_calibration"] if held_out else 0)
    if not learnt or distinct >= GOOD_PHOTOS_ADVISED:
        return
    # the fewest parts a threshold is set from: no conformal threshold from k parts promises
    # under 1 / (k + 1), whatever --frr asks (copies of one part score as one)
    k = min(distinct, int(insp.info["n_calibration"]))
    needed = c.get("calibration_parts_needed") or math.ceil(1 / false_reject_rate - 1)
    counted = (f"only {distinct} good photos" if photos == distinct else
               f"{photos} good photos, but only {distinct} different ones ({photos - distinct} copies, named under "
               "'look at')")
    floor = 1 / (k + 1)
    note("warning", f"{counted}, where step 1 of the README asks for {GOOD_PHOTOS_ADVISED} to 200: a trial, not a "
                    f"model for the line. From {k} good parts no threshold can promise under {floor:.2%} of good "
                    f"parts judged NG (1 in {k + 1})"
                    + (f", not the {_share(false_reject_rate)} asked (that needs {needed})"
                       if floor > false_reject_rate else "")
                    + f"; and a model that has seen {distinct} good parts knows little of how good parts vary: good "
                    "parts unlike those few are judged NG, and which defects it catches is not known (lineguard "
                    f"stress or eval on parts it did not learn say). Add photos of at least "
                    f"{GOOD_PHOTOS_ADVISED - distinct} more different good parts and train again")


# Entries of the good folders that train does not read, and unreadable photos: named on
# the terminal up to this many; past it a few of each kind, and every one in a list file
# beside the model (skipped_list_path), a line each
SKIPPED_SHOWN = 10
_SKIPPED_HEADER = "# lineguard train: files in the good folders it did not learn from, and why"


def skipped_list_path(output: Path) -> Path:
    """Where train lists every file it skipped when there are too many to name: beside
    the model, named after it (cell.lgm: cell.skipped.txt)."""
    return output.with_name(f"{output.stem}.skipped.txt")


def _write_skipped_list(output: Path, rows: list[str]) -> Optional[Path]:
    """Every skipped file, a line each, beside the model (see :func:`_write_list`)."""
    return _write_list(skipped_list_path(output), _SKIPPED_HEADER, rows, "skipped files")


def _write_list(path: Path, header: str, rows: list[str], what: str) -> Optional[Path]:
    """``rows``, a line each under ``header``, at ``path`` beside the model when there are
    more than SKIPPED_SHOWN (temp file, fsync, rename: never a half list); else a list an
    earlier train left there is taken away, so it is never read as this run's. The path
    written, or None (none, or the folder is not writable: the terminal's lines stand alone)."""
    from ..vision.atomic import atomic_write_bytes
    if len(rows) <= SKIPPED_SHOWN:
        try:
            with path.open(encoding="utf-8") as fh:
                ours = fh.readline().rstrip("\n") == header
            if ours:        # only a list train wrote: never a file of the user's by that name
                path.unlink()
        except (OSError, UnicodeDecodeError):
            pass
        return None
    try:
        atomic_write_bytes(path, ("\n".join([header, *rows]) + "\n").encode("utf-8"))
    except OSError as exc:
        note("note", f"{path}: cannot write the list of {what} ({exc.strerror or exc})")
        return None
    return path


_SHAPES_HEADER = "# lineguard train: good photos of other shapes than most (move them out, or train them apart)"


def shapes_list_path(output: Path) -> Path:
    """Where train lists every good photo of a shape other than most's, when too many to
    name: beside the model, named after it (cell.lgm: cell.other-shapes.txt)."""
    return output.with_name(f"{output.stem}.other-shapes.txt")


def _write_shapes_list(output: Path, groups: list[tuple[str, list[str]]]) -> Optional[Path]:
    """Every good photo of the other shapes (``groups``: each shape as said, its photos), a
    line each ("PHOTO: SHAPE"), beside the model (see :func:`_write_list`)."""
    rows = [f"{photo}: {said}" for said, photos in groups for photo in photos]
    return _write_list(shapes_list_path(output), _SHAPES_HEADER, rows, "photos of other shapes")


def _few(names: list[str], few: int = 5) -> str:
    return ", ".join(names[:few]) + (f" and {len(names) - few} more" if len(names) > few else "")


def _not_read_said(entries: list, root: Optional[Path] = None, why: Optional[dict] = None) -> list[str]:
    """Entries not read (dataset.NotRead), one phrase per kind: a few names (their paths
    below ``root`` where given: eval's come from several folders), then why (``why``: in
    place of dataset.NOT_READ_WHY, a verb's own words)."""
    from ..vision.dataset import NOT_READ_WHY
    why = why or NOT_READ_WHY

    def shown(e: Any) -> str:
        return e.shown if root is None else f"{e.path.parent.relative_to(root) / e.shown}"
    by_kind: dict[str, list] = {}
    for e in entries:
        by_kind.setdefault(e.kind, []).append(e)
    return [f"{_few([shown(e) for e in group])}: {why[kind][0 if len(group) == 1 else 1]}"
            for kind, group in by_kind.items()]


def _photos_in(folder: Path) -> int:
    from ..vision.imageio import list_images
    from ..vision.errors import DatasetError
    try:
        return len(list_images(folder))
    except DatasetError:
        return 0


def _good_folders_read(good: Sequence[Path], output: Path) -> list[str]:
    """Say what in the good folders train does not read, and why (a PDF, a phone's HEIC
    photos, a sub-folder: all passed over without a word before), and refuse (exit 2) a
    folder with no photo it reads, saying what it holds. Returns the list file's rows for
    what is not read (see _write_skipped_list)."""
    from ..vision.dataset import not_read_in
    from ..vision.imageio import IMAGE_SUFFIXES
    rows: list[str] = []
    said: list[tuple[Path, int, list]] = []
    for folder in good:
        if not folder.is_dir():
            continue
        entries = not_read_in(folder)
        n_photos = _photos_in(folder)
        rows.extend(f"{e.path}: {e.why}" for e in entries)     # as a skipped photo's line reads
        said.append((folder, n_photos, entries))
    listed = _write_skipped_list(output, rows)
    for folder, n_photos, entries in said:
        if n_photos == 0:
            layout = folder / "train" / "good"
            if layout.is_dir() and _photos_in(layout):
                # a data set's root (synth's, MVTec's layout): "train/ (0 photos)" read as if
                # the good photos were missing, where they wait one folder further down
                fail(f"{folder}: no photos directly in it: it is a data set (train/good/ holds "
                     f"{_photos_in(layout)} photos of good parts); learn from those: lineguard train {layout} "
                     f"-o {output} (with the other options you gave)")
            holds = "; ".join(_not_read_said(entries)) if entries else "nothing (it is empty)"
            fail(f"{folder}: no images found; it holds {holds}"
                 + (f" (every one listed in {listed})" if listed else "")
                 + f". Put the good parts' photos ({', '.join(IMAGE_SUFFIXES)}, upper or lower case) in it, or "
                   "name the folder that holds them")
    for folder, n_photos, entries in said:
        if entries:
            note("not read", f"{folder}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} not learnt "
                             f"from, beside its {n_photos} photo file{'' if n_photos == 1 else 's'}"
                             + (f" (every one listed in {listed})" if listed else "") + ":")
            for line in _not_read_said(entries):
                note("not read", f"  {line}")
    return rows


def _say_skipped(skipped: list[str], output: Path, not_read: list[str]) -> None:
    """Photos training could not read, each with why: all of them up to SKIPPED_SHOWN,
    else the first few and every one in the list file beside the model (500 broken
    photos were 500 lines)."""
    if not skipped:
        return
    listed = _write_skipped_list(output, not_read + skipped) if len(skipped) > SKIPPED_SHOWN else None
    for line in skipped[:SKIPPED_SHOWN if len(skipped) <= SKIPPED_SHOWN else 5]:
        note("skipped", line)
    if len(skipped) > SKIPPED_SHOWN:
        note("skipped", f"and {len(skipped) - 5} more photos that could not be read"
                        + (f": every one listed in {listed}" if listed else ""))


@click.command()
@click.argument("good", nargs=-1, required=True, type=PathArg)
@click.option("-o", "--output", required=True, type=PathArg, help="Model file to write (.lgm).")
@click.option("--detector", default="patchcore", show_default=True, help="patchcore or padim.")
@click.option("--frr", "false_reject_rate", type=RATE, default=0.01, show_default=True,
              help="Target false-reject rate for the threshold, a fraction (0.01 for 1%).")
@click.option("--review-rate", type=REVIEW_RATE, default=0.0, show_default=True,
              help="Share of good parts to send to REVIEW (a person looks) instead of OK, e.g. 0.05; "
                   "0: no review band, every part OK or NG.")
@_profile_options
@click.option("--resize", default="stretch", show_default=True, help="stretch or pad (keep aspect).")
@click.option("--orient", default="none", show_default=True,
              help="landscape: turn portrait photos so the long side is horizontal.")
@click.option("--roi", default=None, help="Region of interest x,y,width,height in photo pixels.")
@click.option("--holdout", type=HOLDOUT, default=0.0, show_default=True,
              help="0: every good image is learned and sets the threshold (cross-fitting); "
                   "a share, e.g. 0.2: keep that share out of the model to set the threshold.")
@click.option("--group-by", "group_by", default=None, metavar="REGEX",
              help="Photos of one part (or lot) belong together: a regular expression whose first group in "
                   "the file name names the part, e.g. '^(part[0-9]+)_'. Each is then calibrated against a "
                   "model without any photo of its part.")
@click.option("--exclude-suspects", is_flag=True, default=False,
              help="Leave good images that score far above the others (listed by train) out of the "
                   "threshold; only once you have looked at them and they are bad parts.")
@click.option("--photo-check/--no-photo-check", default=True, show_default=True,
              help="Send a part whose photo is unlike the good photos (too dark or bright, flat, blurred) to "
                   "REVIEW instead of passing it on its score. Off: for products whose good photos vary that much.")
@click.option("--sensor-bits", default="auto", show_default=True,
              help="For 16-bit photos (PNG, TIFF): the camera's bit depth, 8, 10, 12, 14 or 16, whose full "
                   "scale is white; auto reads it off the good photos' largest value.")
@click.option("--defects", type=PathArg, default=None, help="Folder of defect images (optional) to report escapes.")
@click.option("--strategy", type=click.Choice(["frr", "f1"]), default="frr", show_default=True,
              help="Threshold: frr (target false-reject rate) or f1 (needs --defects).")
@click.option("--coreset-ratio", type=CORESET, default=None,
              help="PatchCore memory bank share of patches, above 0, up to 1.")
@exact_search_option
@extra_scales_option
@click.option("--version", default=None, help="Model version label (default: a timestamp).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--strict/--no-strict", default=False, help="Refuse to train if any image is unreadable.")
@threads_option
def train(good: tuple[Path, ...], output: Path, detector: str, false_reject_rate: float, review_rate: float,
          profile: str, image_size: Optional[str], backbone: Optional[str],
          resize: str, orient: str, roi: Optional[str], holdout: float, defects: Optional[Path], strategy: str,
          coreset_ratio: Optional[float], version: Optional[str], seed: int, strict: bool,
          threads: Optional[int], group_by: Optional[str] = None, exclude_suspects: bool = False,
          exact_search: bool = False, extra_scales: Optional[str] = None, sensor_bits: str = "auto",
          photo_check: bool = True) -> None:
    """Learn a part from good images only and write a model file."""
    from ..vision.inspector import Inspector
    _threads(threads)
    _refuse_missing(list(good) + ([defects] if defects is not None else []))
    # refused here in the options' own words, before the photos are read: each was refused
    # after training, in the Python parameter's name ("false_reject_rate + review_rate ...")
    _refuse_band_past_all(false_reject_rate, review_rate)
    if strategy == "f1" and defects is None:
        fail("--strategy f1 chooses the threshold on defect photos: give them with --defects FOLDER, or use "
             "--strategy frr (the default: a target false-reject rate, --frr)")
    if sensor_bits != "auto":
        if not sensor_bits.isdigit():
            fail(f"--sensor-bits must be auto, 8, 10, 12, 14 or 16 (the camera's bit depth); got {sensor_bits!r}")
        sensor_bits = int(sensor_bits)
    params = _fit_settings(profile, image_size, backbone, detector, exact_search, extra_scales)
    if coreset_ratio is not None:
        params["coreset_ratio"] = coreset_ratio
    if output.suffix != ".lgm":
        fail(f"{output}: model files end in .lgm")
    not_read = _good_folders_read(good, output)
    if group_by is not None:
        _check_group_by(group_by, good)
    try:
        with progress() as cb:
            insp = Inspector.fit(list(good), detector=detector, false_reject_rate=false_reject_rate,
                                 resize=resize, orient=orient,
                                 roi=_parse_roi(roi), holdout=holdout, defect_images=defects,
                                 threshold_strategy=strategy, seed=seed, version=version, skip_bad=not strict,
                                 progress=cb, review_rate=review_rate, groups=group_by,
                                 exclude_suspects=exclude_suspects, sensor_bits=sensor_bits,
                                 photo_check=photo_check, **params)
        if holdout > 0:
            _keep_calibration_prints(insp, list(good))
        insp.save(output)
    except (LineguardError, ValueError, OSError) as exc:
        # no model written: a list of skipped files written above would sit beside the
        # previous model of that name as if it were that model's
        _write_skipped_list(output, [])
        if isinstance(exc, OSError):
            fail(f"{output}: cannot write the model file ({exc.strerror or exc}); choose a writable folder")
        fail(str(exc))
    c = insp.calibration
    _say_skipped(list(insp.info.get("skipped", [])), output, not_read)
    how = ("held out" if c.get("calibration_method") == "held out"
           else "scored by models without them (cross-fit)")
    say(f"wrote {output} (model {insp.model_id}, version {insp.model_version}, "
        f"{_learned_words(insp)}, threshold from {insp.info['n_calibration']} {how})")
    if isinstance(params.get("image_size"), str):    # chosen from the photos: say what it became
        h, w = insp.preprocess.input_hw
        shape = "square, the parts are near square" if h == w else "the good photos' shape"
        # in words too: inspect --json gives a photo's size width first ([w, h], as the station's API),
        # the model's settings and --image-size height first
        say(f"model input {h}x{w} (height x width; {params['image_size']}: {shape}): {w} px wide, {h} px high; "
            "--image-size sets another")
    if (insp.preprocess.sensor_bits or 8) > 8:
        say(f"16-bit photos read as {insp.preprocess.sensor_bits}-bit camera data (value "
            f"{2 ** insp.preprocess.sensor_bits - 1} is white, "
            f"{'read off the good photos' if sensor_bits == 'auto' else 'as set'}); --sensor-bits sets another")
    pr = insp.info.get("photo_range")
    if pr:      # the photo check (vision.photo_check): what a photo must look like to be judged on its score
        from ..vision.photo_check import range_said
        # the range the check uses, in the words a doubted part's message names it with; and
        # that odd good photos were left out of it (a person wonders why a good photo's
        # brightness is outside the range printed): the "look at" lines name them
        # (the fence's photos the range holds all the same are left out of learning it too, but
        # are not odd: "unusual", a note says so; ranges from before kept odd ones only)
        unusual = len(pr.get("unusual") or [])
        left_out = int(pr.get("left_out") or 0) - unusual
        learnt = f"the range of {pr['n']} good photos with a margin" if pr.get("n") else "with a margin"
        if left_out:
            learnt += (f"; {left_out} good photo{'s' if left_out > 1 else ''} unlike the others left out of it, "
                       "named under 'look at'")
        if unusual:
            learnt += (f"; {unusual} {'more ' if left_out else ''}good photo{'s' if unusual > 1 else ''} far from "
                       f"most left out of learning it, though inside it (under 'note')")
        say(f"photo check: {range_said(pr)} ({learnt}); a photo outside it goes to REVIEW whatever its score (a person looks)")
        _say_cast(insp.info.get("photo_cast"))
    # after the photo check's lines, not in them: the grey check runs even with --no-photo-check
    _say_colour_learnt(insp.info)
    _say_good_folder_notes(insp, "train again with --exclude-suspects")
    if c.get("strategy") == "f1":
        _say_f1_threshold(insp, c, false_reject_rate, review_rate)
    else:
        say(f"threshold {insp.threshold:.4f} for a target false-reject rate of {_share(false_reject_rate)} "
            f"({_promise(c)})")
        if insp.review_threshold < insp.threshold:
            # the promise is for REVIEW and NG together (the asked review rate is where the band was set)
            say(f"review band: OK at or below {insp.review_threshold:.4f}, REVIEW up to the threshold, set for "
                f"{_share(review_rate)} of good parts to review; good parts judged REVIEW or NG: on average <= "
                f"{c['guaranteed_not_ok_rate']:.2%}")
        elif review_rate > 0:
            note("note", "the review band is empty (the review threshold is at the reject threshold): "
                 + _empty_band_why(c, false_reject_rate, review_rate))
        if c.get("note"):
            note("note", c["note"])
        if "at_frr_threshold" in c:
            r = c.get("at_review_threshold", c["at_frr_threshold"])    # escapes: defects judged OK
            counted = f" ({r['escapes']} of {r['n_defect']} judged OK{_caught_at_review(r)})" if "escapes" in r else ""
            say(f"on the defect images: escape rate {r['escape_rate']:.2%} at this threshold{counted}; "
                f"F1-optimal threshold {c['f1_threshold']:.4f} (F1 {c['f1']:.3f})")
    _say_photo_set(insp, false_reject_rate, output)
    if insp.info.get("skipped"):
        raise SystemExit(1)


def _refuse_band_past_all(false_reject_rate: float, review_rate: float) -> None:
    """--frr and --review-rate together must leave some parts OK (calibration.check_review_rate's
    rule, said in the options' names: the Python names were said, after training)."""
    if false_reject_rate + review_rate >= 1:
        fail(f"--frr {false_reject_rate:g} + --review-rate {review_rate:g} must stay below 1 (no part would be "
             "OK): lower --review-rate, the share of good parts a person looks at, typically a few percent "
             "(0.05 for 5%)")


def _check_group_by(group_by: str, good: Sequence[Path]) -> None:
    """--group-by's pattern against the good photos' names, before training, in the
    option's words ("groups pattern 'part' does not match ..." came from the training call):
    every name must match, and the groups must be more than one."""
    import re

    from ..vision.errors import DatasetError
    from ..vision.imageio import list_images
    try:
        pattern = re.compile(group_by)
    except re.error as exc:
        fail(f"--group-by {group_by!r} is not a regular expression ({exc}): give one whose first (parenthesised) "
             "group in the file name names the part, e.g. '^(part[0-9]+)_'")
    names: list[str] = []
    for item in good:
        try:
            names.extend(f.name for f in (list_images(item) if item.is_dir() else [item]))
        except DatasetError:
            continue                    # said by the folder check, or by training
    unmatched = [n for n in names if pattern.search(n) is None]
    if unmatched:
        fail(f"--group-by {group_by!r} does not match the name of {len(unmatched)} good photo(s) "
             f"({_few(unmatched)}): give a pattern every good photo's name matches, its first (parenthesised) "
             "group naming the part, e.g. '^(part[0-9]+)_'")
    found = {(m.group(1) if m.groups() else m.group(0)) for m in map(pattern.search, names) if m}
    if len(names) > 1 and len(found) == 1:
        fail(f"--group-by {group_by!r} puts every good photo in one group ({next(iter(found))!r}): a photo's group "
             "is the pattern's first (parenthesised) group, else its whole match, and must name its part, "
             "e.g. '^(part[0-9]+)_'")


def _parts_in(folder: Path) -> list[Path]:
    """The parts' photos in ``folder`` that inspect judges: those train reads and GIFs (the
    station judges them; inspect judged one named alone, and passed over one in a folder).
    What else the folder holds is said, as train says it ("not read"): a sub-folder, a
    phone's HEIC photos and the like were passed over without a word."""
    from ..vision.dataset import NOT_READ_WHY, not_read_in
    from ..vision.errors import DatasetError
    from ..vision.imageio import IMAGE_SUFFIXES, list_images
    # inspect's own words for a file it does not judge: train's listed the formats without
    # .gif, beside GIFs this very folder had judged
    judged = ", ".join(IMAGE_SUFFIXES + (".gif",))
    why = {**NOT_READ_WHY, "other": (f"not a photo format lineguard inspects ({judged}, upper or lower case)",) * 2}
    entries = not_read_in(folder)
    gifs = [e.path for e in entries if e.kind == "gif"]
    others = [e for e in entries if e.kind != "gif"]
    try:
        photos = list_images(folder)
    except DatasetError:
        if gifs:
            photos = []
        elif folder.is_dir():
            below = any(e.kind == "sub-folder" and e.photos for e in others)
            holds = "; ".join(_not_read_said(others, why=why)) if others else "nothing (it is empty)"
            raise DatasetError(f"{folder}: no images found (expected files ending in {judged}, upper or lower case)"
                               + ("; the images in its subfolders are not searched: give a subfolder" if below else "")
                               + f"; it holds {holds}")
        else:
            raise
    if others:
        note("not read", f"{folder}: {len(others)} entr{'y' if len(others) == 1 else 'ies'} not inspected:")
        for line in _not_read_said(others, why=why):
            note("not read", f"  {line}")
    return sorted(photos + gifs)


@click.command()
@click.argument("model", type=PathArg)
@click.argument("images", nargs=-1, required=True, type=PathArg)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per part on stdout.")
@click.option("--overlays", type=PathArg, default=None, help="Write an overlay PNG per part into this folder.")
@click.option("--batch-size", type=Whole(1, "parts judged together per model batch"), default=16, show_default=True,
              help="Parts per model batch.")
@click.option("--fail-on-ng/--no-fail-on-ng", default=False, help="Exit 1 if any part is NG (not REVIEW).")
@threads_option
@runtime_option
@precision_option
def inspect(model: Path, images: tuple[Path, ...], as_json: bool, overlays: Optional[Path], batch_size: int,
            fail_on_ng: bool, threads: Optional[int], runtime: Optional[str], precision: Optional[str]) -> None:
    """Judge parts: verdict, score and defect regions for each image."""
    from ..vision.imageio import load_photo_for
    from ..vision.errors import DatasetError, ImageError
    from ..vision.inspector import Inspector
    _threads(threads)
    # a path that is not there is a mistake in the command (exit 2, as train's), not a part
    # whose photo could not be read (exit 1): a typo'd folder read as "some files unreadable"
    missing = [str(p) for p in images if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}; give the parts' photos or the folders that hold them")
    try:
        insp = Inspector.load(model, runtime=runtime, precision=precision)
    except LineguardError as exc:
        fail(str(exc))
    files: list[Path] = []
    for p in images:
        if p.is_dir():
            try:
                files.extend(_parts_in(p))
            except DatasetError as exc:
                fail(str(exc))
        else:
            files.append(p)
    bad: list[str] = []
    n_ng = n_review = 0
    # photos of the same name from two folders (crack/000.png, dent/000.png): each its own
    # overlay, named with its folder (and more of its path, or a number, while still taken),
    # never one written over the other
    overlay_names: dict[Path, str] = {}
    if overlays is not None:
        alike: dict[str, list[Path]] = collections.defaultdict(list)
        for f in files:
            alike[f.stem].append(f)

        def named(f: Path, k: int) -> str:
            parts = f.parts[1:] if f.is_absolute() else f.parts      # no root "/" in a file name
            return "_".join(parts[max(0, len(parts) - k):-1] + (f.stem,))
        for group in alike.values():
            # the fewest folders above the name that tell the group's photos apart
            depth = next((k for k in range(1, max(len(f.parts) for f in group) + 1)
                          if len({named(f, k) for f in group}) == len(group)), None)
            for i, f in enumerate(group):
                overlay_names[f] = named(f, depth) if depth else f"{named(f, len(f.parts))}_{i + 1}"
        # a name made so may still be another photo's own (crack/000 beside crack_000.png)
        seen: set[str] = set()
        for f in files:
            name, n = overlay_names[f], 2
            while overlay_names[f] in seen:
                overlay_names[f], n = f"{name}_{n}", n + 1
            seen.add(overlay_names[f])
    for start in range(0, len(files), batch_size):
        chunk, photos = [], []
        for f in files[start:start + batch_size]:
            try:
                photos.append(load_photo_for(insp, f))
                chunk.append(f)
            except ImageError as exc:
                bad.append(str(exc))
                if as_json:
                    print(json.dumps({"source": str(f), "error": str(exc)}))
        if not photos:
            continue
        results = insp.inspect_batch(photos, batch_size=batch_size, sources=[str(f) for f in chunk])
        # the model judges a batch at once: each part's timings_ms are the batch's average per
        # part, unless the model runs one part per lane (exported models: inspect_batch), where
        # they are the part's own. The JSON says which, and names image_size's sides
        own = len(photos) == 1 or getattr(insp.detector, "lanes", 1) > 1
        timed = {"timings_ms_are": "this part's own" if own else
                 f"the average per part over its batch of {len(photos)} parts judged together",
                 "timings_batch_parts": 1 if own else len(photos)}
        for f, photo, r in zip(chunk, photos, results):
            n_ng += r.is_ng
            n_review += r.needs_review
            if as_json:
                d = r.to_dict()
                # image_size is the photo's [width, height] (the model's input is height first)
                d.update(timed, image_width=d["image_size"][0], image_height=d["image_size"][1])
                print(json.dumps(d))
            else:
                # its size too: a plant's spec is written in sizes, and the text showed only the box
                # the box said as what it is (a bare [24, 89, 148, 141] left a plant engineer
                # guessing corners or sizes): its top-left corner and its width x height
                w = r.regions[0] if r.regions else None
                where = (f"  {len(r.regions)} region(s), worst at x {w.x}, y {w.y}, {w.width} x {w.height} px "
                         f"({w.area_px} px in it)" if w else "")
                colour = "red" if r.is_ng else "yellow" if r.needs_review else "green"
                verdict = coloured(f"{r.verdict.value:<6}", colour)
                doubt = f"  photo: {'; '.join(r.photo_issues)}" if r.photo_issues else ""
                say(f"{verdict} {r.score:8.4f} / {r.threshold:.4f}  {f}{where}{doubt}")
            if overlays is not None:
                from ..vision.imageio import save_png_atomic
                from ..vision.overlay import render_overlay
                # drawn on the whole photo (the model may have seen a reduced decode)
                save_png_atomic(render_overlay(f if photo.reduced else photo.pixels, r),
                                overlays / f"{overlay_names[f]}_overlay.png")
    for b in bad:
        note("unreadable", b, colour="red")
    if not as_json:
        n = len(files) - len(bad)
        say(f"{n} part(s) inspected: {n - n_ng - n_review} OK, "
            + (f"{n_review} REVIEW, " if n_review or insp.review_threshold < insp.threshold else "")
            + f"{n_ng} NG" + (f"; {len(bad)} unreadable" if bad else ""))
    if bad or (fail_on_ng and n_ng):
        raise SystemExit(1)


@click.command(name="eval")
@click.argument("category", type=PathArg)
@click.option("-o", "--output", type=PathArg, default=None, help="Report folder (JSON, plots, gallery).")
@click.option("--model", type=PathArg, default=None, help="Evaluate this model instead of training on train/good.")
@click.option("--detector", default="patchcore", show_default=True)
@_profile_options
@click.option("--resize", default="stretch", show_default=True)
@click.option("--orient", default="none", show_default=True, help="none or landscape.")
@click.option("--frr", "false_reject_rate", type=RATE, default=0.01, show_default=True,
              help="Target false-reject rate when eval trains, a fraction (0.01 for 1%).")
@click.option("--review-rate", type=REVIEW_RATE, default=None,
              help="Review band when eval trains (share of good parts sent to REVIEW; default 0, no band). "
                   "With --model the model's own band is used.")
@click.option("--coreset-ratio", type=CORESET, default=None)
@exact_search_option
@extra_scales_option
@click.option("--max-train", type=Whole(1, "train/good photos to learn from, at most"), default=None,
              help="Use at most this many train/good images.")
@click.option("--save-model", type=PathArg, default=None, help="Also write the trained model here.")
@threads_option
@runtime_option
@precision_option
@click.option("--seed", type=SEED, default=0, show_default=True)
def evaluate(category: Path, output: Optional[Path], model: Optional[Path], detector: str, profile: str,
             image_size: Optional[str], backbone: Optional[str], resize: str, orient: str,
             false_reject_rate: float, review_rate: Optional[float],
             coreset_ratio: Optional[float],
             max_train: Optional[int], save_model: Optional[Path], threads: Optional[int], runtime: Optional[str],
             precision: Optional[str], seed: int, exact_search: bool = False,
             extra_scales: Optional[str] = None) -> None:
    """Measure a model on labelled data: AUROC, AUPRO, false rejects and escapes."""
    from ..vision.dataset import MVTecCategory
    from ..vision.evaluate import evaluate as run_eval
    from ..vision.inspector import Inspector
    if output is not None and output.exists() and not output.is_dir():
        # said before the scoring, not as a traceback once it was all done
        fail(f"{output} is a file; -o takes a folder for the report")
    if model is not None:
        # the settings of a model eval trains: with --model each was dropped without a word (--frr 0.2
        # reported the model's own 1% threshold, and --frr 5 was taken)
        flags = {p.name: p.opts[0] for p in click.get_current_context().command.params}
        training = [flags[name] for name in ("false_reject_rate", "detector", "profile", "image_size", "backbone",
                                             "resize", "orient", "coreset_ratio", "max_train", "save_model", "seed",
                                             "exact_search", "extra_scales") if given(name)]
        if training:
            fail(f"{', '.join(training)} set{'s' if len(training) == 1 else ''} how eval trains a model; --model is "
                 "judged as it was made (its threshold set at training, or by `lineguard recalibrate MODEL "
                 "GOOD_DIR --frr RATE`): drop " + ("it" if len(training) == 1 else "them") + " or --model")
    _threads(threads)
    try:
        cat = MVTecCategory(category)
        if cat.not_read:
            note("not read", f"{category}: {len(cat.not_read)} entr{'y' if len(cat.not_read) == 1 else 'ies'} of "
                             "train/good and the test folders, not learnt from nor tested:")
            for line in _not_read_said(cat.not_read, cat.root):
                note("not read", f"  {line}")
        if model is not None:
            if review_rate is not None:
                fail("--review-rate sets the band when eval trains a model; a model file carries the band it "
                     "was trained with (`lineguard train --review-rate`): drop --review-rate or --model")
            insp = Inspector.load(model, runtime=runtime, precision=precision)
        elif runtime or precision:
            fail("--runtime and --precision apply to an exported model: give --model MODEL.onnx")
        else:
            _refuse_band_past_all(false_reject_rate, review_rate or 0.0)
            train_files = cat.train_good[:max_train] if max_train else cat.train_good
            params = _fit_settings(profile, image_size, backbone, detector, exact_search, extra_scales)
            if coreset_ratio is not None:
                params["coreset_ratio"] = coreset_ratio
            with progress() as cb:
                insp = Inspector.fit(train_files, detector=detector,
                                     resize=resize, orient=orient,
                                     false_reject_rate=false_reject_rate, seed=seed, progress=cb,
                                     review_rate=review_rate or 0.0, **params)
            if save_model:
                insp.save(save_model)
            _say_good_folder_notes(insp, "train it with `lineguard train --exclude-suspects`, then eval --model")
        with progress() as cb:
            # run_eval calls it as (stage, done, total), as the Inspector does (a two-argument
            # wrapper here ended `lineguard eval` in a TypeError on every terminal)
            report = run_eval(insp, category, out_dir=output, progress=cb)
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    # what was left out and why: said in metrics.json and the page alone, while the console
    # counted "of 20" without the corrupt photo and printed "pixel_auroc: None" unexplained
    for left in report.get("skipped") or []:
        note("skipped", f"{left['path']}: {left.get('error', 'not inspected')}", colour="red")
    for line in report.get("notes") or []:
        note("note", line)
    keys = ("image_auroc", "pixel_auroc", "aupro", "f1_max", "false_reject_rate", "escape_rate", "threshold")
    band = report["review_threshold"] < report["threshold"]
    if band:
        keys += ("review_threshold",)
    if report.get("escapes_held_by_photo_check"):
        # beside escape_rate, which counts the defects only the photo check held back as caught
        keys += ("escape_rate_by_score",)
    # the review load whatever sent the parts to a person: the band or the photo check (a
    # model without a band printed nothing here while 87 magnetic tiles went to REVIEW)
    if band or report.get("reviews"):
        keys += ("review_load", "review_load_good", "review_load_defect")
    for k in keys:
        v = report.get(k)
        say(f"{k:>18}: {v:.4f}" if isinstance(v, (int, float)) else f"{k:>18}: {v}")
    if report.get("reviews_photo"):
        say(f"photo check: {report['reviews_photo_good']} good and {report['reviews_photo_defect']} defective "
            "parts judged REVIEW because their photo was unlike the good ones (whatever their score); counted in "
            "the review load, not as escapes" + (" (items.csv: outcome 'review (photo check)')" if output else ""))
    # the promise is on scores; where the photo check sent good parts to REVIEW whatever their
    # score, "judged NG: 100%" read against false_reject_rate 0.0000 above it (every one REVIEW)
    on_scores = " on their scores" if report.get("reviews_photo_good") else ""
    for key, what in (("ng", "judged NG" + on_scores), ("not_ok", "judged REVIEW or NG" + on_scores)):
        c = (report.get("promise") or {}).get(key)
        if c:
            say(f"good test parts {what}: {c['rate']:.2%} of {c['n']} ({c['lo']:.2%}-{c['hi']:.2%} with "
                f"{report['promise']['confidence']:.0%} confidence); training promised <= {c['promised']:.2%} on "
                "average" + (": ABOVE the promise (are these parts like the training parts?)"
                             if c["above_promise"] else ""))
    cal = getattr(insp, "calibration", None) or {}
    if (report.get("promise") is None and cal.get("strategy") == "f1"
            and cal.get("measured_false_reject_rate") is not None):
        # an F1 threshold promises nothing: say what training measured instead of staying silent
        say(f"no false-reject promise to check: the threshold was chosen by F1 at training, where it judged "
            f"{cal['measured_false_reject_rate']:.2%} of the good parts given NG (measured on the parts that chose it)")
    if output:
        say(f"report written to {output}/index.html")


@click.command()
@click.argument("output", type=PathArg)
@click.option("--n-good", type=Whole(1, "good training parts"), default=200, show_default=True,
              help="Good training parts.")
@click.option("--n-defect", type=Whole(0, "defective test parts, 0 for none"), default=60, show_default=True,
              help="Defective test parts, spread over the defect types.")
@click.option("--n-test-good", type=Whole(0, "good test parts, 0 for none"), default=None,
              help="Good test parts (default n_good/4, at least 10).")
@click.option("--size", type=Whole(64, "the photos' side in pixels", most=8192), default=256, show_default=True,
              help="Image side in pixels.")
@click.option("--seed", type=SEED, default=0, show_default=True)
def synth(output: Path, n_good: int, n_defect: int, n_test_good: Optional[int], size: int, seed: int) -> None:
    """Generate a synthetic product line (good parts and defects with exact masks)."""
    from ..vision.synth import write_dataset
    try:
        with progress() as cb:
            write_dataset(output, n_good=n_good, n_defect=n_defect, seed=seed, size=size, n_test_good=n_test_good,
                          progress=(lambda d, t: cb("generate", d, t)) if cb else None)
    except (LineguardError, ValueError, FileExistsError) as exc:
        fail(str(exc))
    say(f"wrote synthetic category to {output}")


@click.command()
@click.argument("model", type=PathArg)
@click.option("--pod", type=PathArg, default=None,
              help="A stress test's pod.json to show with the model (default: MODEL.pod.json beside it, if any).")
@runtime_option
def info(model: Path, pod: Optional[Path], runtime: Optional[str] = None) -> None:
    """Show what a model file (.lgm or exported .onnx) holds: detector, thresholds, versions,
    and its stress-test summary (what it will miss) where `lineguard stress` left one."""
    import importlib.util

    from ..runtime.onnx_file import is_export
    from ..vision import bundle
    from ..vision.inspector import Inspector
    from .stress import load_pod_summary
    exported = is_export(model)
    if runtime is not None and not exported:
        fail(f"{model}: a .lgm model runs on torch; --runtime is for an exported .onnx model")
    try:
        if not exported and importlib.util.find_spec("torch") is None:
            described = bundle.describe(model)   # the edge install: a .lgm's settings are plain JSON
        else:
            described = _described_export(model) if exported and runtime is None else \
                Inspector.load(model, runtime=runtime).describe()
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    unreadable = None
    try:
        summary = load_pod_summary(model, pod, described["model_id"])
    except ValueError as exc:
        if pod is not None:     # the file the user named: refused
            fail(str(exc))
        # the summary beside the model cut short (a full disk): the model is still shown
        summary, unreadable = None, str(exc)
    cal = described.get("calibration")
    if isinstance(cal, dict) and "held_out" in cal:   # a cross-fit model's record said true
        from ..vision.calibration import held_out
        described["calibration"] = {**cal, "held_out": held_out(cal)}
    if summary is not None:
        described["stress_test"] = summary
        if not summary["matches_model"]:
            made_for = (summary.get("model") or {}).get("model_id")
            note("note", f"the stress-test summary was made for model {made_for}, not this one "
                         f"({described['model_id']}); re-run `lineguard stress` for this model")
    if unreadable:
        described["stress_test_unreadable"] = unreadable
        note("warning", f"the stress-test summary beside the model is not readable ({unreadable}); the model "
                        f"file is unaffected: run `lineguard stress {model} GOOD_DIR -o REPORT` again to make it "
                        f"again, or `lineguard info {model} --pod REPORT/pod.json` to read a report's")
    for line in _summary(described):
        note("model", line, colour="cyan")
    print(json.dumps(described, indent=2, default=str))


def _described_export(model: Path) -> dict:
    """``info`` of an exported model on the runtime its thresholds were set on; where that
    cannot run here (OpenVINO bf16 on a PC without OpenVINO or bfloat16), what the file
    holds all the same, read through ONNX Runtime, and a note of what this machine cannot
    do and how to run it: info refused such a file (exit 2), though showing it needs no
    runtime at all."""
    import warnings

    from ..runtime.loader import CalibratedRuntimeMissing
    from ..vision.inspector import Inspector
    try:
        return Inspector.load(model).describe()
    except CalibratedRuntimeMissing as exc:
        missing = exc
    with warnings.catch_warnings():
        # "its thresholds do not fit" is said below, with what to do, and the record is the file's
        warnings.simplefilter("ignore")
        described = Inspector.load(model, runtime="onnxruntime").describe()
    shown = dict(described.get("info") or {})
    shown.pop("calibration_mismatch", None)
    # the runtime and precision it runs on wherever it can, not ONNX Runtime's that read it here
    shown.update({"runtime": missing.runtime, "precision": missing.precision})
    described["info"] = shown
    note("note", f"this machine cannot run it at its precision ({missing.runtime} {missing.precision}: "
                 f"{missing.why}); inspect, eval and recalibrate run it in fp32 with --runtime onnxruntime, where "
                 "its thresholds do not fit (good parts rejected or defects passed). Install OpenVINO (pip install "
                 "'lineguard[openvino]') on a CPU with native bfloat16, or recalibrate it for fp32: lineguard "
                 f"recalibrate {model} GOOD_DIR --runtime onnxruntime -o NEW.onnx")
    return described


def _pct(x: object) -> str:
    return f"{100 * x:.3g}%" if isinstance(x, (int, float)) else "?"


def _hw(size: object) -> str:
    """A model's input (its settings' image_size: N, or [height, width]) as a person reads
    it: inspect --json gives a photo's size width first, so the order is said."""
    if isinstance(size, list) and len(size) == 2:
        return f"{size[0]}x{size[1]} (height x width)"
    return f"{size}x{size}" if isinstance(size, int) else str(size)


def _summary(d: dict) -> list[str]:
    """``info``'s few lines for a person (on stderr; stdout stays the JSON scripts read):
    what it is, what it learnt from, what its threshold promises, what to look at. The
    whole record, some hundred lines, hid the threshold among the settings."""
    info, cal, params = d.get("info") or {}, d.get("calibration") or {}, d.get("params") or {}
    size = (d.get("preprocess") or {}).get("image_size")
    made = info.get("lineguard_version")
    out = [f"{d.get('model_id')} (version {d.get('version') or '?'}{', lineguard ' + made if made else ''}): "
           f"{d.get('detector')} on {params.get('backbone', '?')}, input {_hw(size)}"]
    learnt = info.get("n_train")
    thr, review = d.get("threshold"), d.get("review_threshold")
    said = f"reject threshold {thr:.4g}" if isinstance(thr, (int, float)) else "reject threshold ?"
    if cal.get("strategy") == "f1":
        # an F1 threshold promises nothing: "set for 1% false rejects" was said of one
        measured = cal.get("measured_false_reject_rate")
        said += (", chosen by F1 on the good and defect photos given at training, with no false-reject promise"
                 + (f" (it judged {_pct(measured)} of those good parts NG)" if measured is not None else ""))
    elif cal.get("target_false_reject_rate") is not None:
        # in train's words (calibration.promise_text): "at most 4.5% with 90% confidence"
        # alone hid what the threshold guarantees, and with too few parts (--holdout 0.2)
        # "set for 1%" was said of a threshold that guarantees 9.09% on average
        said += f", set for a target of {_share(float(cal['target_false_reject_rate']))} false rejects"
        if cal.get("guaranteed_false_reject_rate") is not None:
            said += f" ({_promise(cal)})"
        elif cal.get("false_reject_rate_upper_90") is not None:     # a record without the average bound
            said += f" (at most {_pct(cal['false_reject_rate_upper_90'])} with 90% confidence)"
    if isinstance(review, (int, float)) and isinstance(thr, (int, float)) and review < thr:
        said += f"; review band from {review:.4g} ({_pct(cal.get('review_rate'))} of good parts to REVIEW)"
    else:
        said += "; no review band"
    out.append((f"learnt from {learnt} good photo(s); " if learnt is not None else "") + said)
    if cal.get("strategy") != "f1" and cal.get("note"):
        out.append(f"note: {cal['note']}")      # as train says it: e.g. too few parts for the target
    odd, suspects = info.get("photo_odd") or [], info.get("suspect_good") or []
    if odd or suspects:
        out.append(f"look at: {len(odd)} photo(s) unlike the others and {len(suspects)} scoring far above them "
                   "when it was trained (photo_odd, suspect_good below)")
    pod = d.get("stress_test")
    if pod:
        out.append(f"stress test on {pod.get('n_good', '?')} good parts: {_pct(pod.get('false_reject_rate'))} false "
                   f"rejects, {len(pod.get('kinds') or {})} defect kind(s) (stress_test below)")
    return out


def _refuse_missing(paths: Sequence[Path]) -> None:
    """A path that is not there, said so: counted as an unreadable image, it read as "not
    enough good images" and sent the user looking for more photos."""
    for p in paths:
        if not Path(p).exists():
            fail(f"{p}: no such file or folder (check the path)")


def odd_parts_options(f: Callable) -> Callable:
    """--keep-odd-parts / --leave-out-odd-parts, for recalibrate and export --recalibrate."""
    f = click.option("--leave-out-odd-parts", is_flag=True,
                     help="Set the threshold without the good photos scoring far above the others: once you have "
                          "looked and they are not good parts (better: remove them from the folder).")(f)
    return click.option("--keep-odd-parts", is_flag=True,
                        help="Good photos scoring far above the others (named `look at:`) keep setting the "
                             "threshold, even where one of them sets it alone (refused without this or "
                             "--leave-out-odd-parts): only once you have looked and they are good parts.")(f)


def odd_parts_choice(keep: bool, leave_out: bool) -> Optional[str]:
    """The flags as recalibrate_and_report's ``odd_parts`` (None: neither given)."""
    if keep and leave_out:
        fail("--keep-odd-parts and --leave-out-odd-parts contradict each other: give one")
    return "keep" if keep else "leave out" if leave_out else None


def recalibrate_and_report(insp: "Inspector", good: list[Path], false_reject_rate: Optional[float], output: Path,
                           photo_range: bool = False, odd_parts: Optional[str] = None,
                           narrow_ok: Optional[bool] = None) -> None:
    """Set ``insp``'s thresholds from ``good`` on its own runtime, write it to ``output``,
    say what changed. Shared by ``recalibrate`` and ``export --recalibrate``.

    ``odd_parts`` None: where a good photo named as far above the others would set the
    threshold, refuse (exit 2) with both thresholds and the ways forward; "keep" or
    "leave out": as asked (``Inspector.recalibrate``).

    ``narrow_ok`` False: photos that cover far less of the model's training lighting than
    good parts from across the line would (``photo_coverage``: one lot, shift or lamp
    setting) are refused (exit 2); True: written, said so; None (a caller without the
    flag): written, with a warning."""
    _refuse_missing(good)
    frr = false_reject_rate if false_reject_rate is not None else \
        float(insp.calibration.get("target_false_reject_rate", 0.01))
    old, old_px, old_review = insp.threshold, insp.pixel_threshold, insp.review_threshold
    try:
        c = insp.recalibrate(good, frr, photo_range=photo_range,          # at the model's own review rate
                             odd_parts=odd_parts or "keep")
        # photos unlike the training photos first: no other flag makes another product's threshold fit
        unlike = _unlike_training(c, exported_later=narrow_ok is None)
        if unlike:
            fail(unlike)
        # a narrow batch first: the way forward is other photos, whatever the odd ones among these are
        narrow = _narrow_batch(c)
        if narrow and narrow_ok is False:
            fail(f"{narrow} Nothing written. Recalibrate on good photos from several lots, shifts and lamp "
                 "settings; or, if the line will only make parts like these (a planned change), run again with "
                 "--narrow-ok.")
        if odd_parts is None and c.get("threshold_set_by_suspects"):
            _refuse_odd_parts(c, frr)          # nothing written
        insp.save(output)
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{output}: cannot write the model file ({exc.strerror or exc}); choose a writable folder")
    on = c["calibrated_on"]
    say(f"wrote {output} (model {insp.model_id}), thresholds set on {on['runtime']} {on['precision']} scores "
        f"of {c['n_calibration']} good parts")
    say(f"threshold {old:.4f} -> {insp.threshold:.4f}, pixel threshold {old_px:.4f} -> {insp.pixel_threshold:.4f}, "
        f"for a target false-reject rate of {_share(frr)} ({_promise(c)})")
    _report_band(insp, c, frr, old, old_review)
    for skipped in c.get("skipped", []):
        note("skipped", skipped)
    if c.get("learnt_unknown"):
        note("check", "this model keeps no prints of the photos it learned from (trained before they were kept): "
                      "make sure these are not its training photos, which set the threshold far too low")
    if c.get("learnt_left_out"):
        left = c["learnt_left_out"]
        note("left out", f"{left['count']} photo(s) the model learned from (e.g. {', '.join(left['images'][:3])}): "
                         "scored by it they fit far better than new parts, and would set the threshold too low")
    # the threshold without them is said only where they were neither left out nor kept as asked
    asked = c.get("suspects_excluded") or c.get("threshold_set_by_suspects")
    _say_far_above(c, c.get("suspect_good", []), insp.threshold, "among them",
                   None if asked else "recalibrate without them")
    if c.get("suspects_excluded"):
        note("left out", f"{c['suspects_excluded']} of them, as asked (--leave-out-odd-parts): threshold "
                         f"{insp.threshold:.4f} instead of {c['threshold_with_suspects']:.4f} with them; the "
                         "false-reject promise holds for parts like the rest")
    elif c.get("threshold_set_by_suspects"):
        note("kept", f"as asked (--keep-odd-parts), their score sets the threshold: {insp.threshold:.4f}, where "
                     f"without them it would be {c['threshold_without_suspects']:.4f}; defects scoring below "
                     f"{insp.threshold:.4f} pass")
    if c.get("note"):
        note("note", c["note"])
    cov = c.get("photo_coverage") or {}
    if cov.get("doubted"):
        # a few among many (a flicker, a part set down askew): they still set the threshold, said
        shown = cov.get("doubted_images") or []
        named = f" ({', '.join(shown[:5])}{' and more' if cov['doubted'] > len(shown[:5]) else ''})" if shown else ""
        note("note", f"the photo check doubts {cov['doubted']} of these {cov['n']} photos{named}, unlike the photos "
                     "the model learnt from: parts photographed like them go to REVIEW; look at them, and take out "
                     "any that is not a good part photographed as the line photographs it")
    if narrow:
        note("warning", narrow + (" Written as asked (--narrow-ok)." if narrow_ok else
                                  " Recalibrate on good photos from several lots, shifts and lamp settings."))
    pr = insp.info.get("photo_range")
    if photo_range and pr:
        say(f"photo check learnt again from these photos: brightness {pr['brightness'][0]:.3g}-"
            f"{pr['brightness'][1]:.3g}, contrast {pr['contrast'][0]:.3g}-{pr['contrast'][1]:.3g}, focus at least "
            f"{pr['focus'][0]:.3g}")
        _say_cast(insp.info.get("photo_cast"))
        _say_colour_learnt(insp.info, c.get("photo_colour_odd"))
        for odd in c.get("photo_odd", []):
            note("look at", f"{odd['image']}: the photo is unlike the others ({'; '.join(odd['issues'])}), so it was "
                            "left out of the photo check's range and lies outside it")
        _say_unusual(pr, c.get("photo_unusual"))
        if pr["n"] < 0.5 * c.get("photo_range_before_n", 0):
            note("note", f"the range was learnt from {pr['n']} photos, the one it replaces from "
                         f"{c['photo_range_before_n']}: a narrower set doubts more of the line's photos; give as "
                         "many as at training, taken over days")
    note("check", "the guarantee holds only if these were good parts the model did not learn from")


def _say_cast(photo_cast: Optional[dict]) -> None:
    """A colour model's colour balance (vision.photo_check.learn_cast), as a doubted part's
    message names it: a lamp of another colour or a tinted variant goes to REVIEW, said."""
    if photo_cast:
        from ..vision.photo_check import cast_said
        say(f"colour check: {cast_said(photo_cast)} (the colour balance of {photo_cast['n']} good photos with a "
            "margin); a photo of another colour (lamp, white balance, variant) goes to REVIEW whatever its score")


def _say_colour_learnt(info: dict, odd: Optional[list] = None) -> None:
    """Good photos left out of learning the colour check for their colour, and why the
    check is off where it is (vision.photo_check.colour_learnt): off with no word, a
    greyscale or tinted part passed as OK on its score."""
    from ..vision.inspector import PHOTO_COLOUR_ODD, PHOTO_COLOUR_OFF
    for o in (info.get(PHOTO_COLOUR_ODD) if odd is None else odd) or []:
        note("look at", f"{o['image']}: {'; '.join(o['issues'])}, so it was left out of learning the colour "
                        "check: a camera setting changed while it was taken?")
    if info.get(PHOTO_COLOUR_OFF):
        note("warning", info[PHOTO_COLOUR_OFF])


def _unlike_training(c: dict, exported_later: bool = False) -> str:
    """Why a batch the photo check mostly doubts (``photo_coverage['unlike_training']``: more
    than half of it, where the check learnt its range from the training photos' 1st-99th
    percentiles, so good parts of the product are doubted a few in a hundred) is refused,
    and what to do ("": not such a batch). Recalibrated on 30 greyscale magnetic-tile photos,
    a synthetic product's model was written with its threshold 20.99 -> 48.20 and a note,
    exit 0, and then judged every one of its product's defects OK. More than half: a few
    doubted photos are a lamp flicker or a part set down askew, which the line sends to
    REVIEW anyway; a batch mostly of them is another product, camera or lamp, whose scores
    say nothing of where this product's good parts end. ``--photo-range`` (a planned change
    of lamp or camera) never comes here: the check then learns these photos.
    ``exported_later``: the caller (``export --recalibrate``) has no --photo-range."""
    cov = c.get("photo_coverage") or {}
    if not cov.get("unlike_training"):
        return ""
    changed = ("export without --recalibrate and run `lineguard recalibrate MODEL.onnx GOOD_DIR --photo-range "
               "-o OUT.onnx`" if exported_later else "run again with --photo-range")
    return (f"the photo check doubts {cov['doubted']} of these {cov['n']} photos: they are not like the photos the "
            "model learnt from (another product, or another camera or lamp?), and a threshold set on their scores "
            "says nothing of where this product's good parts end. Nothing written. Recalibrate on "
            "photos of this product's good parts, taken at its station; if the lamp or camera was changed on "
            f"purpose and good parts now look like these, {changed} so the photo check learns the new photos "
            "(or, for another camera, train again on its photos).")


def _narrow_batch(c: dict) -> str:
    """What a narrow recalibration batch covers against what the model learnt from, and
    the false-reject risk, in one sentence set ("": not narrow, or a model without a
    photo range). A threshold from one lot's photos fits that lot: on magnetic tiles the
    darkest 40 held-out photos set one that rejected 13% of the other good tiles, with
    only the generic "check" line said."""
    cov = c.get("photo_coverage") or {}
    if not cov.get("narrow"):
        return ""
    said = "; ".join(f"{m} {cov[m]['batch'][0]:.3g}-{cov[m]['batch'][1]:.3g} where the model learnt from "
                     f"{cov[m]['learnt'][0]:.3g}-{cov[m]['learnt'][1]:.3g} (the batch spans about "
                     f"{cov[m]['covered']:.0%} of its training photos)" for m in cov["narrow"])
    return (f"these {cov['n']} good photos are a narrow batch (one lot, shift or lamp setting?): {said}; "
            f"{cov['n']} photos from across the line would cover about {cov['expected']:.0%}. A threshold set on "
            "them fits parts like them only, and good parts lit or made otherwise are rejected: recalibrated "
            "on its 40 darkest held-out photos, a magnetic-tile model rejected 13% of the other good tiles "
            "(0.2% after 40 taken at random).")


def _refuse_odd_parts(c: dict, frr: float) -> None:
    """Refuse a threshold set by good photos the command itself names as far above the
    others: one such photo among 64 KolektorSDD parts raised the threshold 29.0 -> 35.2 and
    real defects judged OK went 22 -> 47 of 52, with exit 0 and a "look at:" line."""
    sus = c["suspect_good"]
    names = ", ".join(f"{s['image']} (score {s['score']:.4g})" for s in sus[:5]) + \
        (f" and {len(sus) - 5} more" if len(sus) > 5 else "")
    thr, without = float(c["threshold"]), float(c["threshold_without_suspects"])
    n, rest = int(c["n_calibration"]), int(c["n_calibration"]) - len(sus)
    few = ""
    if c.get("enough_calibration_parts") is False:
        few = (f" {n} good parts are too few for a {_share(frr)} false-reject target (needs "
               f"{c['calibration_parts_needed']}), so the highest score sets the threshold.")
    ways = (f"run again with --keep-odd-parts to keep them (threshold {thr:.4f}), or with --leave-out-odd-parts "
            f"to set it without them ({without:.4f})")
    fail(f"the threshold would be set by {names}: good photo(s) scoring far above the others (above "
         f"{c['suspect_cut']:.4g}), a bad or odd part in the good folder?{few} With them: threshold {thr:.4f}; "
         f"their score sets the line's threshold and every defect scoring below {thr:.4f} passes as OK. Without "
         f"them: threshold {without:.4f}, from the other {rest} good parts; if they are good parts after all, "
         "parts like them are rejected. Nothing written. Look at the photo(s): if one is not a good part (a "
         f"defect, dirt, a bad shot), remove it from the folder and run again; if they are good parts, {ways}.")


def _report_band(insp: "Inspector", c: dict, frr: float, old: float, old_review: float) -> None:
    """The review band after recalibration: set again at the rate the model was trained
    with, or, when it came out empty, why. A line that sends parts to review must not
    find the band gone without a word (30 good parts hold no 5% band above 1%)."""
    rate = float(c.get("review_rate", 0.0))
    had_band = old_review < old
    if insp.review_threshold < insp.threshold:
        before = f"{old_review:.4f} -> " if had_band else ""
        say(f"review band: OK at or below {before}{insp.review_threshold:.4f}, REVIEW up to the threshold, set for "
            f"{rate:.2%} of good parts to review (the model's own rate); good parts judged REVIEW or NG: on "
            f"average <= {c['guaranteed_not_ok_rate']:.2%}")
    elif rate > 0:
        note("note", "the review band is empty (the review threshold is at the reject threshold): "
                     f"{_empty_band_why(c, frr, rate, 'give more good parts')}; until then every part is OK or NG")
    elif had_band:
        note("note", f"the review band is gone (it was OK at or below {old_review:.4f}): it was set by hand, with no "
                     "review rate to set it again from good parts; set it again by hand")


@click.command()
@click.argument("model", type=PathArg)
@click.argument("good", nargs=-1, required=True, type=PathArg)
@click.option("-o", "--output", required=True, type=PathArg,
              help="Model file to write: .lgm for a .lgm model, .onnx for an exported one.")
@click.option("--frr", "false_reject_rate", type=RATE, default=None,
              help="Target false-reject rate, a fraction (0.01 for 1%; default: the model's own).")
@click.option("--photo-range", is_flag=True,
              help="Also learn the photo check's brightness/contrast/focus range again from these photos: after a "
                   "planned change of lamp or camera (default: keep the range learnt at training).")
@click.option("--narrow-ok", is_flag=True,
              help="Write the thresholds even where the good photos cover far less of the model's training "
                   "lighting than photos from across the line would (one lot, shift or lamp setting; refused "
                   "without it): only when the line will make nothing else.")
@odd_parts_options
@runtime_option
@precision_option
@threads_option
def recalibrate(model: Path, good: tuple[Path, ...], output: Path, false_reject_rate: Optional[float],
                photo_range: bool, runtime: Optional[str], precision: Optional[str], threads: Optional[int],
                keep_odd_parts: bool = False, leave_out_odd_parts: bool = False, narrow_ok: bool = False) -> None:
    """Set a model's thresholds from good parts it did not learn from, scored on the runtime
    and precision it will run with (e.g. an int8 export, or OpenVINO bf16); with
    --photo-range also the photo check's range (a new lamp or camera)."""
    import warnings

    from ..runtime.onnx_file import is_export
    from ..vision.inspector import Inspector
    _threads(threads)
    odd_parts = odd_parts_choice(keep_odd_parts, leave_out_odd_parts)
    exported = is_export(model)
    if exported and output.suffix != ".onnx":
        fail(f"{output}: an exported model is written as .onnx")
    if not exported:
        if runtime not in (None, "torch") or precision not in (None, "fp32"):
            fail(f"{model}: a .lgm model runs on torch in fp32; export it first (`lineguard export {model} "
                 "--format onnx`) and recalibrate the .onnx with --runtime/--precision")
        if output.suffix != ".lgm":
            fail(f"{output}: a .lgm model is written as .lgm (export it for an .onnx)")
    try:
        with warnings.catch_warnings():
            # the load warns when the old thresholds do not fit this precision: fixing that is this verb's job
            warnings.simplefilter("ignore")
            insp = Inspector.load(model, runtime=runtime, precision=precision, threads=threads)
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    recalibrate_and_report(insp, list(good), false_reject_rate, output, photo_range=photo_range, odd_parts=odd_parts,
                           narrow_ok=narrow_ok)


def register(app: click.Group) -> None:
    for cmd in (train, recalibrate, inspect, evaluate, synth, info):
        app.add_command(cmd)
