"""Write a stress test (:func:`lineguard.vision.stress.run_stress`) to a folder:

    <out_dir>/pod.json           every number: fits, bands, each painted part's verdict
    <out_dir>/pod_<kind>.png     POD vs size with its 95% band and the hit/miss points,
                                 and POD vs contrast beside it
    <out_dir>/examples/*.png     painted parts around each kind's a90, as overlays
                                 (heatmap, regions, verdict; the painted defect outlined)
    <out_dir>/index.html         all of it on one page that loads nothing from elsewhere

Plots need matplotlib (the ``torch`` extra, which the stress test needs anyway for
scipy); without it the page says so. Every file is written atomically.
"""
from __future__ import annotations

import html
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text
from .overlay import render_overlay
from .report import _CSS, _png, to_jsonable
from .stress import ABOVE_NG, KIND_PLURAL, StressPart, paint_part, threshold_meaning
from .pod import PodFit, lower_band, pod_curve

__all__ = ["write_stress_report", "example_parts"]

_MASK_COLOUR = np.array([255, 0, 255], np.uint8)   # magenta: apart from the heatmap ramp and the cyan boxes


def _parts(kind: str, entry: dict) -> list[StressPart]:
    return [StressPart(kind, i, r[0], int(r[1]), float(r[2]), float(r[3])) for i, r in enumerate(entry["parts"])]


def example_parts(kind: str, entry: dict, n: int = 3) -> list[int]:
    """Indices (within the kind) of size-series parts to show: those nearest the size
    that matters (a90, else a50, else where every defect was found, else the largest),
    with a miss and a hit among them where the nearest few hold both."""
    fit = entry["size"]
    target = fit.get("a90") if fit.get("a90_reached") else None
    target = target or fit.get("a50") or fit.get("all_found_from") or fit.get("size_max")
    rows = [(i, r) for i, r in enumerate(entry["parts"]) if r[0] == "size"]
    if not rows or not target:
        return []
    rows.sort(key=lambda ir: (abs(math.log(ir[1][2] / target)), ir[0]))
    near = rows[:max(3 * n, 8)]
    misses = [i for i, r in near if r[4] != "NG"]
    hits = [i for i, r in near if r[4] == "NG"]
    chosen = []
    if misses:
        chosen.append(misses[0])
    if hits:
        chosen.append(hits[0])
    for i, _ in near:
        if len(chosen) >= n:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen[:n], key=lambda i: entry["parts"][i][2])


def _outline(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Draw the painted defect's edge so an escape shows where it is."""
    m = mask > 0
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge = m & ~inner
    out = img.copy()
    out[edge] = _MASK_COLOUR
    return out


def _examples(out: Path, study: dict, inspector: Any, good: Sequence[np.ndarray], n: int) -> dict[str, list[dict]]:
    from PIL import Image

    mm = study.get("mm_per_px")
    entries: dict[str, list[dict]] = {}
    folder = out / "examples"
    written = set()
    for kind, entry in study["kinds"].items():
        parts = _parts(kind, entry)
        entries[kind] = []
        for idx in example_parts(kind, entry, n):
            part = parts[idx]
            painted, mask = paint_part(good, part, study["seed"], study.get("painting"))
            res = inspector.inspect(painted)
            size = f"{part.size_px:.3g} px" + (f" = {part.size_px * mm:.3g} mm" if mm else "")
            overlay = _outline(render_overlay(painted, res), mask)
            name = f"{kind}_{idx:04d}.png"
            buf = io.BytesIO()
            Image.fromarray(overlay).save(buf, format="PNG")
            atomic_write_bytes(folder / name, buf.getvalue())
            written.add(name)
            verdict = str(getattr(res.verdict, "value", res.verdict))
            entries[kind].append({"file": f"examples/{name}", "size": size, "contrast": part.contrast,
                                  "verdict": verdict, "score": float(res.score)})
    # A re-run into the same folder must not leave the last run's pictures behind.
    if folder.is_dir():
        for old in folder.glob("*.png"):
            if old.name not in written and re.match(r"[a-z_]+_\d{4}\.png$", old.name):
                old.unlink(missing_ok=True)
    return entries


def _fit_of(d: dict) -> PodFit:
    keep = {k: d[k] for k in PodFit.__dataclass_fields__ if k in d}
    return PodFit(**keep)


def _plot(out: Path, kind: str, entry: dict, mm_per_px: Optional[float]) -> Optional[str]:
    try:
        from matplotlib.figure import Figure   # the OO API: pyplot would switch a notebook's backend
    except ImportError:
        return None
    fig = Figure(figsize=(10.0, 3.8))
    ax, axc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    parts = entry["parts"]
    rng = np.random.default_rng(0)     # jitter only, so hits and misses at one size stay visible

    def points(axis, rows, col, label):
        if not rows:
            return
        v = np.array([r[col] for r in rows], dtype=float)
        y = np.array([1.0 if r[4] == "NG" else 0.5 if r[4] == "REVIEW" else 0.0 for r in rows])
        axis.scatter(v, y + rng.uniform(-0.03, 0.03, len(y)), s=9, alpha=0.5, color="#34495e", lw=0,
                     label=label)

    size_rows = [r for r in parts if r[0] == "size"]
    fit = entry["size"]
    points(ax, size_rows, 2, "painted parts (NG 1, REVIEW 0.5, OK 0)")
    if size_rows:
        s = np.geomspace(fit["size_min"], fit["size_max"], 200)
        if fit["status"] == "fit":
            f = _fit_of(fit)
            ax.plot(s, pod_curve(f, s), color="#c0392b", lw=2, label="POD (hit = NG)")
            ax.plot(s, lower_band(f, s), color="#c0392b", lw=1, ls="--", label="95% lower band")
            for key, ls in (("a50", ":"), ("a90", "-."), ("a90_95", "--")):
                v = fit.get(key)
                if v is not None and fit["size_min"] <= v <= fit["size_max"]:
                    rule = " (29 of 29)" if key == "a90_95" and fit.get("a90_95_from") == "29 of 29" else ""
                    ax.axvline(v, color="#7f8c8d", lw=1, ls=ls,
                               label=f"{key.replace('_', '/')} {v:.3g} px{rule}")
        elif fit.get("a90_95") is not None:
            ax.axvline(fit["a90_95"], color="#7f8c8d", lw=1, ls="--",
                       label=f"a90/95 {fit['a90_95']:.3g} px (29 of 29)")
        rv = entry.get("size_ng_or_review") or {}
        if rv.get("status") == "fit" and rv.get("b1") != fit.get("b1"):
            ax.plot(s, pod_curve(_fit_of(rv), s), color="#b7950b", lw=1.5, label="POD (hit = NG or REVIEW)")
        ax.set_xscale("log")
    ax.axhline(0.9, color="#bbbbbb", lw=0.8)
    unit = f"{entry['size_means']}, px" + (f" (1 px = {mm_per_px:g} mm)" if mm_per_px else "")
    ax.set_xlabel(unit)
    ax.set_ylabel("probability of detection")
    ax.set_ylim(-0.06, 1.06)
    ax.set_title(f"{kind}: POD vs size at contrast {entry['nominal_contrast']:g}", fontsize=10)
    ax.legend(fontsize=6.5, loc="center right")

    con_rows = [r for r in parts if r[0] == "contrast"]
    cfit = entry.get("contrast")
    points(axc, con_rows, 3, "painted parts")
    if con_rows and cfit:
        c = np.geomspace(cfit["size_min"], cfit["size_max"], 200)
        if cfit["status"] == "fit":
            f = _fit_of(cfit)
            axc.plot(c, pod_curve(f, c), color="#2471a3", lw=2, label="POD (hit = NG)")
            axc.plot(c, lower_band(f, c), color="#2471a3", lw=1, ls="--", label="95% lower band")
        axc.set_xscale("log")
        axc.set_title(f"{kind}: POD vs contrast at {cfit['size_px']:.3g} px", fontsize=10)
        axc.legend(fontsize=6.5, loc="center right")
    axc.axhline(0.9, color="#bbbbbb", lw=0.8)
    axc.set_xlabel("contrast, grey levels")
    axc.set_ylim(-0.06, 1.06)
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    for axis in (ax, axc):
        if axis.get_xscale() == "log":   # 1-2-5 ticks read as sizes; default log ticks print 3x10^0
            axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            axis.xaxis.set_minor_formatter(NullFormatter())
    name = f"pod_{kind}.png"
    atomic_write_bytes(out / name, _png(fig))
    return name


def _v(x: Optional[float], mm: Optional[float]) -> str:
    if x is None:
        return "not reached"
    return f"{x:.3g} px" + (f" / {x * mm:.3g} mm" if mm else "")


def _fit_cells(fit: dict, mm: Optional[float]) -> str:
    if fit["status"] == "fit":
        # a size below the smallest defect painted is the fitted curve's tail, not a finding
        below = f"below {_v(fit['size_min'], mm)} painted: not measured"
        a90 = below if fit.get("a90_below_painted") else \
            _v(fit["a90"], mm) + ("" if fit["a90_reached"] else " (beyond sizes painted)")
        a95 = below if fit.get("a90_95_below_painted") else \
            _v(fit["a90_95"], mm) + ("" if fit["a90_95"] is None or fit["a90_95_reached"] else " (beyond sizes painted)")
        if fit.get("a90_95_from") == "29 of 29":      # a run of finds, not the curve's band
            a95 += " (29 of 29)"
        # a50 past the largest size painted is the curve's other tail (8,630 px from scratches
        # painted up to 180 px, 1 of 45 found): said as such, like a90
        a50 = below if fit.get("a50_below_painted") else \
            _v(fit["a50"], mm) + ("" if fit["a50"] is None or fit.get("a50_reached", True) else " (beyond sizes painted)")
    elif fit["status"] in ("all_found", "separated"):
        a50 = a90 = (f"below {_v(fit['size_min'], mm)}" if fit["status"] == "all_found"
                     else f"step at {_v(fit['all_found_from'], mm)}")
        a95 = _v(fit["a90_95"], mm) + (" (29 of 29)" if fit["a90_95"] is not None else "")
    else:
        a50 = a90 = a95 = "not reached"
    return "".join(f"<td>{html.escape(c)}</td>" for c in
                   (fit["status"], f"{fit['hits']} / {fit['n']}", a50, a90, a95))


def _html(study: dict, figures: dict[str, Optional[str]], examples: dict[str, list[dict]], title: str) -> str:
    mm = study.get("mm_per_px")
    rows = []
    for kind, e in study["kinds"].items():
        rows.append(f"<tr><td>{html.escape(kind)}</td><td>hit = NG</td>{_fit_cells(e['size'], mm)}</tr>")
        if study.get("review_threshold") is not None:
            rows.append(f"<tr><td></td><td>hit = NG or REVIEW</td>{_fit_cells(e['size_ng_or_review'], mm)}</tr>")
    table = ("<table><tr><th>kind</th><th>counted as found</th><th>fit</th><th>found / painted</th>"
             "<th>a50</th><th>a90</th><th>a90/95</th></tr>" + "".join(rows) + "</table>")
    sentences = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(e['sentence'])}</li>"
                        for k, e in study["kinds"].items())
    sections = []
    for kind, e in study["kinds"].items():
        fig = figures.get(kind)
        img = (f"<img src='{html.escape(fig)}' alt='POD curve for {html.escape(kind)}' style='max-width:100%'>"
               if fig else "<p class='note'>Plots need matplotlib (pip install matplotlib).</p>")
        c = e.get("contrast")
        ctext = ""
        if c:
            c90 = (f"{c['a90']:.3g}" if c["status"] == "fit" and c.get("a90") is not None
                   and c["a90"] <= c["size_max"] else "not reached" if c["status"] != "all_found"
                   else f"below {c['size_min']:.3g}")
            ctext = (f"<p class='note'>Contrast series: {c['n']} parts at {c['size_px']:.3g} px, contrast "
                     f"{c['size_min']:.3g} to {c['size_max']:.3g} grey levels; {c['hits']} found; contrast "
                     f"found 90% of the time: {html.escape(c90)} grey levels.</p>")
        cards = "".join(
            f"<div class='card'><a href='{html.escape(x['file'])}'><img src='{html.escape(x['file'])}' "
            f"alt='{html.escape(kind)}'></a><div class='kind'>{html.escape(x['verdict'])}</div>"
            f"<div>{html.escape(x['size'])} &middot; contrast {x['contrast']:.3g} &middot; score "
            f"{x['score']:.4g}</div></div>" for x in examples.get(kind, []))
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in e["size"].get("notes", []))
        if study.get("review_threshold") is not None:
            notes += "".join(f"<p class='note'>hit = NG or REVIEW: {html.escape(n)}</p>"
                             for n in (e.get("size_ng_or_review") or {}).get("notes", [])
                             if "left out" in n or ABOVE_NG in n)
        if e.get("line_width_px") is not None:
            seen = (f"{e['line_width_input_px']:.3g} model-input pixels" if e.get("line_width_input_px") else
                    f"at least {(study.get('painting') or {}).get('line_width_input_px', 1)} model-input pixel(s)")
            notes += (f"<p class='note'>Lines painted {e['line_width_px']:.3g} px wide (photo pixels; {seen}, so "
                      "the model's shrinking of the photo does not average them away). Real lines wider or "
                      "stronger than painted are caught more often: compare with real defects.</p>")
        sections.append(f"<h2>{html.escape(kind)}: {html.escape(KIND_PLURAL[kind])}</h2>"
                        f"<p>{html.escape(e['sentence'])}</p>{notes}{img}{ctext}"
                        f"<div class='gallery'>{cards or '<p class=note>No examples.</p>'}</div>")
    frr = study["false_reject_rate"]
    band = (f"; review threshold {study['review_threshold']:.4g} (REVIEW between the two)"
            if study.get("review_threshold") is not None else "; no review band")
    meaning = threshold_meaning(study)
    n = study["n_good"]
    reviews = ""
    c = study.get("calibration") or {}
    if study.get("review_threshold") is not None:
        rr = study.get("review_rate_good", 0.0)
        reviews = (f" and {round(rr * n)} of {n} were judged REVIEW: a review rate of {rr:.1%}"
                   + (f" (the model's review band is for {c['review_rate']:.1%})" if c.get("review_rate") else ""))
    left = study.get("left_out_photos") or {}
    left_text = ""
    doubted = left.get("photo_doubted") or 0
    if left.get("ng", 0) > doubted:
        left_text += (f" The {left['ng'] - doubted} photo(s) judged NG unpainted had no defect painted on them (any "
                      "defect there would count as caught); they are left out of every curve.")
    if doubted:
        left_text += (f" The {doubted} photo(s) the photo check judged REVIEW unpainted (unlike the model's good "
                      "photos) had no defect painted on them: REVIEW whatever is painted, never NG; they are "
                      "left out of every curve.")
    if study.get("review_threshold") is not None and left.get("ng_or_review", 0) > left.get("ng", 0):
        left_text += (f" For hit = NG or REVIEW, the {left['ng_or_review']} photo(s) judged REVIEW or NG "
                      "unpainted are left out as well.")
    roi = (study.get("painting") or {}).get("roi")
    where = (f" Defects are painted inside the model's region of interest (x, y, width, height = "
             f"{', '.join(str(v) for v in roi)}), the part of the photo it inspects." if roi else "")
    head = (f"<p>{n} good parts, {study['per_kind']} painted parts per kind (seed "
            f"{study['seed']}); the model judged each at its own thresholds: reject threshold "
            f"{_fmt_num(study.get('threshold'))}{band}."
            + (f" {html.escape(meaning[0].upper() + meaning[1:])}." if meaning else "")
            + f" Unpainted, {study['false_rejects']} of "
            f"{n} good parts were judged NG: a false-reject rate of {frr:.1%}{reviews}.{left_text}{where}</p>"
            + "".join(f"<p class='note'><b>Warning:</b> {html.escape(w)}.</p>" for w in study.get("warnings", [])))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{head}"
            f"<h2>What this model will miss</h2><ul>{sentences}</ul>{table}"
            "<p class='note'>a50 / a90: the size found half / 9 in 10 of the time, from a maximum-likelihood "
            "hit/miss fit of detection against log size (MIL-HDBK-1823A); a90/95: where the 95% lower "
            "confidence band (Wald) reaches 90%. Where there is no curve, or the band does not reach 90% "
            "within the sizes painted while a90 does, and every defect from some size up was found, a90/95 is "
            "that size (never less than a90) once at least 29 were found in a row (29 of 29: 0.9<sup>29</sup> &lt; 0.05). "
            "The 95% bound "
            "is on painted defects of this shape and "
            "contrast, not on the plant's real ones (a real break on a part's edge may be missed where a painted "
            "one is caught): checking the model on a few real defects (<code>lineguard eval</code>) is what "
            "confirms it.</p>" + "".join(sections)
            + "<p class='note'>Each example has its painted defect outlined in magenta; boxes are the model's "
              "regions. All numbers: <a href='pod.json'>pod.json</a>.</p></body></html>")


def _fmt_num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.4g}"


def write_stress_report(out_dir: Union[str, os.PathLike], study: dict, inspector: Any,
                        good: Sequence[np.ndarray], n_examples: int = 3, title: Optional[str] = None) -> Path:
    """Write pod.json, the plots, example overlays and index.html; returns index.html's path.

    ``inspector`` and ``good`` must be the ones the study ran with: the examples are
    painted again from the study's plan and seed, and judged again.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "pod.json", json.dumps(to_jsonable(study), indent=1))
    figures = {k: _plot(out, k, e, study.get("mm_per_px")) for k, e in study["kinds"].items()}
    # a kind's plot from an earlier study into the folder (all kinds, then --kinds spot) stayed
    # beside this study's pod.json as if it were this model's
    for old in out.glob("pod_*.png"):
        if old.name not in figures.values():
            old.unlink(missing_ok=True)
    examples = _examples(out, study, inspector, good, n_examples)
    name = title or "Stress test: what this model will miss"
    return atomic_write_text(out / "index.html", _html(study, figures, examples, name))
