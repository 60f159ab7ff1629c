"""Write an evaluation to a folder a quality engineer can open and forward.

    <out_dir>/metrics.json     every number, machine-readable (plain top-level keys)
    <out_dir>/items.csv        one row per test image: file, type, score, verdict, outcome, the
                               photo check's doubts about the photo (photo_issues)
    <out_dir>/roc.png          image-level ROC with the operating point
    <out_dir>/histogram.png    good vs defective score distributions and the threshold
    <out_dir>/gallery/*.png    overlays of the worst misses and the worst false alarms
    <out_dir>/index.html       all of the above on one self-contained page

The plots need matplotlib (the ``torch`` extra); without it the page says so and the
rest is still written. Every file is written atomically.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text
from .errors import ImageError
from .imageio import load_image
from .metrics import roc_curve
from .overlay import render_overlay

__all__ = ["write_report", "select_gallery", "to_jsonable"]

GOOD = "good"


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN/inf to None, paths to str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "value") and isinstance(getattr(obj, "value"), str):   # enums (Verdict)
        return obj.value
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _is_defect(item: dict) -> bool:
    return item["defect_type"] != GOOD


def _verdict(item: dict) -> str:
    v = item.get("verdict", "")
    return str(getattr(v, "value", v))


_VERDICTS = ("OK", "NG", "REVIEW")


def _judged(item: dict, threshold: Optional[float], ok_threshold: Optional[float]) -> Optional[str]:
    """The verdict the part was given, as the summary counts it (evaluate's rule): the
    review band and the photo check both send parts to REVIEW. A verdict that is none of
    the three falls back to the score rule; None without a threshold to apply."""
    v = _verdict(item)
    if v in _VERDICTS:
        return v
    if threshold is None:
        return None
    s = float(item["score"])
    ok_thr = float(ok_threshold) if ok_threshold is not None else float(threshold)
    return "NG" if s > float(threshold) else "REVIEW" if s > ok_thr else "OK"


def _by_photo(item: dict, judged: Optional[str], ok_threshold: Optional[float],
              threshold: Optional[float] = None) -> bool:
    """Sent to REVIEW by the photo check: a doubted photo whose score alone would have passed
    or been rejected (one in the review band is the band's)."""
    return (judged == "REVIEW" and bool(item.get("photo_issues"))
            and (ok_threshold is None or float(item["score"]) <= float(ok_threshold)
                 or (threshold is not None and float(item["score"]) > float(threshold))))


def _band(evaluation: dict) -> Optional[float]:
    """The review threshold where the evaluation has a review band, else None."""
    thr, rev = evaluation.get("threshold"), evaluation.get("review_threshold")
    return float(rev) if thr is not None and rev is not None and float(rev) < float(thr) else None


def select_gallery(items: list[dict], threshold: Optional[float], max_gallery: int,
                   review_threshold: Optional[float] = None) -> list[tuple[str, int]]:
    """Which items the gallery shows, as (kind, index into items).

    Half the places go to the lowest-scoring defective parts (the worst misses:
    escapes first, as they score lowest), half to the highest-scoring good parts
    (the worst false alarms); a side with too few candidates leaves its places to the
    other. kind is "escape" / "defect in review" / "low-scoring defect" / "false
    reject" / "good part in review" / "high-scoring good part", by the verdict each part
    was given (REVIEW from a review band, ``review_threshold`` below ``threshold``, or
    from the photo check; an item without a verdict by the score rule). Ties in score
    are broken by position, so a caller can keep only the ``max_gallery`` lowest
    defects and highest good parts and know the choice.
    """
    if max_gallery <= 0:
        return []
    defects = sorted((i for i, it in enumerate(items) if _is_defect(it)),
                     key=lambda i: (float(items[i]["score"]), i))
    goods = sorted((i for i, it in enumerate(items) if not _is_defect(it)),
                   key=lambda i: (-float(items[i]["score"]), i))
    n_miss = min(len(defects), (max_gallery + 1) // 2)
    n_alarm = min(len(goods), max_gallery - n_miss)
    n_miss = min(len(defects), max_gallery - n_alarm)
    thr = float(threshold) if threshold is not None else None
    ok_thr = float(review_threshold) if review_threshold is not None and thr is not None else thr
    out = []
    for i in defects[:n_miss]:
        judged = _judged(items[i], thr, ok_thr)
        kind = {"OK": "escape", "REVIEW": "defect in review"}.get(judged or "", "low-scoring defect")
        out.append((kind, i))
    for i in goods[:n_alarm]:
        judged = _judged(items[i], thr, ok_thr)
        kind = {"NG": "false reject", "REVIEW": "good part in review"}.get(judged or "", "high-scoring good part")
        out.append((kind, i))
    return out


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "image"


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}" if math.isfinite(float(v)) else "n/a"
    return str(v)


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _plots(out: Path, items: list[dict], evaluation: dict) -> list[str]:
    """Write roc.png and histogram.png; return the names written (none without matplotlib)."""
    try:
        # The object-oriented API only: pyplot would switch a notebook's backend.
        from matplotlib.figure import Figure
    except ImportError:
        return []
    written = []
    scores = np.array([float(it["score"]) for it in items], dtype=np.float64)
    labels = np.array([_is_defect(it) for it in items], dtype=bool)
    thr = evaluation.get("threshold")

    if labels.any() and (~labels).any():
        fpr, tpr, _ = roc_curve(scores, labels)
        fig = Figure(figsize=(4.6, 4.2))
        ax = fig.add_subplot()
        ax.plot(fpr, tpr, color="#c0392b", lw=2,
                label=f"AUROC {_fmt(evaluation.get('image_auroc'), 3)}")
        ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--")
        frr, esc = evaluation.get("false_reject_rate"), evaluation.get("escape_rate")
        if frr is not None and esc is not None:
            ax.plot([frr], [1.0 - esc], "o", color="black",
                    label=f"threshold {_fmt(thr, 3)}: {frr:.1%} false rejects, {esc:.1%} escapes")
        ax.set_xlabel("false reject rate (good parts judged NG)")
        ax.set_ylabel("detection rate (defective parts judged NG)")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.legend(loc="lower right", fontsize=7)
        ax.set_title("Image-level ROC")
        atomic_write_bytes(out / "roc.png", _png(fig))
        written.append("roc.png")

    if scores.size:
        fig = Figure(figsize=(6.0, 3.6))
        ax = fig.add_subplot()
        finite = scores[np.isfinite(scores)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if thr is not None and math.isfinite(float(thr)):
            lo, hi = min(lo, float(thr)), max(hi, float(thr))
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
        if (~labels).any():
            ax.hist(scores[~labels], bins=bins, alpha=0.45, color="#27ae60", histtype="stepfilled",
                    ec="#1e8449", label=f"good ({int((~labels).sum())})")
        if labels.any():
            ax.hist(scores[labels], bins=bins, alpha=0.45, color="#c0392b", histtype="stepfilled",
                    ec="#922b21", label=f"defective ({int(labels.sum())})")
        if thr is not None:
            ax.axvline(float(thr), color="black", lw=1.5, ls="--", label=f"threshold {_fmt(thr, 3)}")
        rev = _band(evaluation)
        if rev is not None:
            ax.axvline(rev, color="#b7950b", lw=1.5, ls=":", label=f"review threshold {_fmt(rev, 3)}")
        ax.set_xlabel("image score")
        ax.set_ylabel("parts")
        ax.legend(fontsize=8)
        ax.set_title("Score distribution")
        atomic_write_bytes(out / "histogram.png", _png(fig))
        written.append("histogram.png")
    return written


def _gallery(out: Path, items: list[dict], evaluation: dict, max_gallery: int) -> list[dict]:
    from PIL import Image

    entries = []
    for rank, (kind, idx) in enumerate(select_gallery(items, evaluation.get("threshold"), max_gallery,
                                                      _band(evaluation)), 1):
        it = items[idx]
        img = it.get("image")
        if img is None:
            try:
                img = load_image(it["path"], sensor_bits="auto")   # shown, not judged
            except (ImageError, TypeError):
                continue                       # source gone or never a file: nothing to show
        caption = f"{_verdict(it)}  {float(it['score']):.3g}"
        thr = it.get("threshold")
        if thr is None:
            thr = evaluation.get("threshold")
        if thr is not None:
            caption += f" / {float(thr):.3g}"
        overlay = render_overlay(img, it.get("anomaly_map"), threshold=it.get("pixel_threshold"),
                                 regions=it.get("regions") or [], caption=caption)
        stem = Path(str(it["path"])).stem
        name = f"{rank:02d}_{_safe_name(kind)}_{_safe_name(it['defect_type'])}_{_safe_name(stem)}.png"
        buf = io.BytesIO()
        Image.fromarray(overlay).save(buf, format="PNG")
        atomic_write_bytes(out / "gallery" / name, buf.getvalue())
        entries.append({"file": f"gallery/{name}", "kind": kind, "path": str(it["path"]),
                        "defect_type": it["defect_type"], "score": float(it["score"]),
                        "verdict": _verdict(it), "photo_issues": _issues(it)})
    # A re-run into the same folder must not leave the last run's pictures behind.
    keep = {Path(e["file"]).name for e in entries}
    if (out / "gallery").is_dir():
        for old in (out / "gallery").glob("*.png"):
            if old.name not in keep and re.match(r"\d{2}_", old.name):
                old.unlink(missing_ok=True)
    return entries


def _issues(item: dict) -> str:
    """The photo check's words for the photo, one line ("" where it doubted nothing)."""
    issues = item.get("photo_issues") or []
    return "; ".join(str(i) for i in ([issues] if isinstance(issues, str) else issues))


def _items_csv(items: list[dict], threshold: Optional[float], review_threshold: Optional[float] = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # photo_issues: why the photo check doubted the photo ("" when it did not); eval's note
    # sent engineers to it while no file held it. Last: a sheet reading the columns by
    # position finds outcome where it was
    w.writerow(["path", "defect_type", "score", "verdict", "outcome", "photo_issues"])
    ok_thr = review_threshold if review_threshold is not None else threshold
    for it in items:
        # the outcome of the verdict given, as the summary counts it: a REVIEW the photo
        # check made (the score passed) is a review too, and says so
        judged = _judged(it, threshold, ok_thr)
        outcome = ""
        if judged is not None:
            outcome = {(True, "NG"): "caught", (True, "OK"): "escape", (True, "REVIEW"): "review",
                       (False, "NG"): "false reject", (False, "OK"): "passed",
                       (False, "REVIEW"): "review"}[(_is_defect(it), judged)]
            if _by_photo(it, judged, ok_thr, threshold):
                outcome = "review (photo check)"
        w.writerow([str(it["path"]), it["defect_type"], f"{float(it['score']):.6g}", _verdict(it), outcome,
                    _issues(it)])
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.figs img{max-width:48%;margin-right:1%;vertical-align:top}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
.card{width:260px;font-size:0.8em;border:1px solid #ddd;padding:6px;border-radius:4px}
.card img{width:100%;image-rendering:auto}.kind{font-weight:bold}
.escape,.false-reject{color:#c0392b}.defect-in-review,.good-part-in-review{color:#b7950b}.note{color:#666;font-size:0.9em}
"""


def _table(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _review_rows(e: dict) -> list[tuple[str, str]]:
    rev = _band(e)
    if rev is None and not e.get("reviews"):
        return [("review band", "none (every part is OK or NG)")]

    def load(key: str, count: str, n: str) -> str:
        return _fmt(e.get(key)) + (f" ({e.get(count)} of {e.get(n)})" if e.get(count) is not None else "")
    n_all = (e.get("n_good") or 0) + (e.get("n_defect") or 0)
    # without a band every REVIEW is the photo check's: the load is still a person's work
    head = ("review threshold: OK at or below, REVIEW up to the threshold", _fmt(rev)) if rev is not None else \
        ("review band", "none: every REVIEW below is the photo check's")
    rows = [head,
            ("review load: all parts judged REVIEW", _fmt(e.get("review_load"))
             + (f" ({e.get('reviews')} of {n_all})" if e.get("reviews") is not None else "")),
            ("review load: good parts judged REVIEW", load("review_load_good", "reviews_good", "n_good")),
            ("review load: defective parts judged REVIEW", load("review_load_defect", "reviews_defect", "n_defect"))]
    if e.get("reviews_photo"):
        rows.append(("of those, sent to REVIEW by the photo check (photo unlike the good ones, whatever its score)",
                     f"{e.get('reviews_photo_good')} good, {e.get('reviews_photo_defect')} defective"))
    return rows


def _by_score_rows(e: dict) -> list[tuple[str, str]]:
    """The escapes by the score alone beside the headline, where the photo check held defects
    back: a defect it sends to REVIEW counts as caught, and a weaker model doubts more photos,
    so the escape rate alone read better for it (0.59 -> 0.34 as AUROC fell 0.85 -> 0.77)."""
    held = e.get("escapes_held_by_photo_check")
    if not held or e.get("escape_rate_by_score") is None:
        return []
    ok_at = "review threshold" if _band(e) is not None else "threshold"
    rows = [(f"escape rate on scores alone: defective parts scored at or below the {ok_at}, whatever the photo "
             "check said", f"{_fmt(e.get('escape_rate_by_score'))} ({e.get('escapes_by_score')} of {e.get('n_defect')})"),
            ("of those, held back only by the photo check (REVIEW for their photo): counted as caught above",
             str(held))]
    if e.get("review_load_photo_good") is not None:
        rows.append(("what the photo check's REVIEWs cost: good parts it sent to REVIEW",
                     f"{_fmt(e.get('review_load_photo_good'))} ({e.get('reviews_photo_good')} of {e.get('n_good')})"))
    return rows


def _promise_rows(e: dict) -> list[tuple[str, str]]:
    """The good test parts against what training promised (evaluate's ``promise``)."""
    rows = []
    for key, what in (("ng", "NG"), ("not_ok", "REVIEW or NG")):
        c = (e.get("promise") or {}).get(key)
        if c:
            rows.append((f"good parts judged {what}: promised on average; measured ({e['promise']['confidence']:.0%} "
                         "interval)", f"<= {c['promised']:.2%}; {c['rate']:.2%} ({c['lo']:.2%}-{c['hi']:.2%})"
                         + (": ABOVE the promise" if c["above_promise"] else "")))
    return rows


def _html(evaluation: dict, figures: list[str], gallery: list[dict], title: str) -> str:
    e = evaluation
    frr_note = f" ({e.get('false_rejects')} of {e.get('n_good')})" if e.get("false_rejects") is not None else ""
    esc_note = f" ({e.get('escapes')} of {e.get('n_defect')})" if e.get("escapes") is not None else ""
    main_rows = [
        ("image AUROC", _fmt(e.get("image_auroc"))),
        ("pixel AUROC", _fmt(e.get("pixel_auroc"))),
        (f"AUPRO (FPR up to {_fmt(e.get('aupro_fpr_limit', 0.3), 2)})", _fmt(e.get("aupro"))),
        ("best F1 (at score threshold " + _fmt(e.get("f1_threshold")) + ")", _fmt(e.get("f1_max"))),
        ("threshold in use", _fmt(e.get("threshold"))),
        ("false reject rate: good parts judged NG", _fmt(e.get("false_reject_rate")) + frr_note),
        ("escape rate: defective parts judged OK", _fmt(e.get("escape_rate")) + esc_note),
        *_by_score_rows(e),
        *_review_rows(e),
        *_promise_rows(e),
        ("good / defective test images", f"{_fmt(e.get('n_good'))} / {_fmt(e.get('n_defect'))}"),
        ("images skipped (unreadable)", _fmt(len(e.get("skipped", []) or []))),
    ]
    per = e.get("per_defect_type") or {}
    per_rows = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{_fmt(d.get('n'))}</td><td>{_fmt(d.get('image_auroc'))}</td>"
        f"<td>{_fmt(d.get('pixel_auroc'))}</td><td>{_fmt(d.get('escape_rate'))}</td></tr>"
        for t, d in per.items())
    per_html = ("<table><tr><th>defect type</th><th>images</th><th>image AUROC vs good</th>"
                f"<th>pixel AUROC</th><th>escape rate</th></tr>{per_rows}</table>") if per else \
        "<p class='note'>No defect types.</p>"
    figs = "".join(f"<img src='{html.escape(f)}' alt='{html.escape(f)}'>" for f in figures) or \
        "<p class='note'>Plots need matplotlib (pip install matplotlib).</p>"
    cards = []
    for g in gallery:
        src, kind = html.escape(g["file"]), html.escape(g["kind"])
        cls = kind.replace(" ", "-")
        cards.append(
            f"<div class='card'><a href='{src}'><img src='{src}' alt='{kind}'></a>"
            f"<div class='kind {cls}'>{kind}</div>"
            f"<div>{html.escape(g['defect_type'])} &middot; score {g['score']:.4g} &middot; "
            f"{html.escape(g['verdict'])}</div>"
            + (f"<div class='note'>photo: {html.escape(g['photo_issues'])}</div>" if g.get("photo_issues") else "")
            + f"<div class='note'>{html.escape(Path(g['path']).name)}</div></div>")
    gallery_html = (f"<div class='gallery'>{''.join(cards)}</div>" if cards
                    else "<p class='note'>Nothing to show.</p>")
    skipped = e.get("skipped") or []
    skipped_html = ""
    if skipped:
        li = "".join(f"<li>{html.escape(str(s.get('path')))}: {html.escape(str(s.get('error')))}</li>"
                     for s in skipped[:200])
        skipped_html = f"<h2>Skipped images</h2><ul>{li}</ul>"
    notes = [html.escape(str(n)) for n in e.get("notes", []) or []]
    notes_html = "".join(f"<p class='note'>{n}</p>" for n in notes)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<h2>Summary</h2>{_table(main_rows)}{notes_html}"
            f"<h2>By defect type</h2>{per_html}"
            f"<h2>Curves</h2><div class='figs'>{figs}</div>"
            f"<h2>Worst misses and false alarms</h2>{gallery_html}{skipped_html}"
            "<p class='note'>A part is NG when its score is above the threshold"
            + (", REVIEW when above the review threshold but not the threshold, else OK"
               if _band(e) is not None else "")
            + ("; a photo the photo check doubts is REVIEW whatever its score" if e.get("reviews_photo")
               else "") + ". Every count follows the verdicts given. Full numbers: "
            "<a href='metrics.json'>metrics.json</a>, per image: <a href='items.csv'>items.csv</a>.</p>"
            "</body></html>")


def write_report(out_dir: Union[str, os.PathLike], evaluation: dict, items: list[dict],
                 max_gallery: int = 12, title: Optional[str] = None) -> Path:
    """Write metrics.json, items.csv, roc.png, histogram.png, gallery/ and index.html.

    ``evaluation`` is the dict :func:`lineguard.vision.evaluate.evaluate` returns
    (``threshold``, ``image_auroc``, ``false_reject_rate``, ``escape_rate``,
    ``per_defect_type`` ... are read from it; metrics.json is it, made JSON-safe).

    ``items`` has one dict per test image:

    - ``path`` (str or Path), ``defect_type`` ("good" for good parts), ``score``
      (float), ``verdict`` ("OK"/"NG" or :class:`Verdict`): required;
    - ``anomaly_map`` (float (H, W)), ``regions`` (list of DefectRegion),
      ``pixel_threshold``, ``threshold``: optional, used for the gallery overlay;
    - ``photo_issues`` (list of str): optional, what the photo check found off about the
      photo, written to items.csv and the gallery;
    - ``image`` (uint8 (H, W, 3)): optional; gallery images are loaded from ``path``
      when absent, so callers need not keep images in memory.

    Only items chosen by :func:`select_gallery` need maps. Returns the index.html path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threshold = evaluation.get("threshold")
    # Per-image rows belong in items.csv, not in the summary.
    summary = {k: v for k, v in evaluation.items() if k != "items"}
    atomic_write_text(out / "metrics.json", json.dumps(to_jsonable(summary), indent=2))
    atomic_write_text(out / "items.csv", _items_csv(items, threshold, _band(evaluation)))
    figures = _plots(out, items, evaluation)
    gallery = _gallery(out, items, evaluation, max_gallery)
    name = title or f"Evaluation: {evaluation.get('category', out.name)}"
    return atomic_write_text(out / "index.html", _html(evaluation, figures, gallery, name))
