"""Overlays, the report folder, and evaluate() end to end with a tiny fake inspector."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lineguard.vision.evaluate import evaluate
from lineguard.vision.imageio import load_image
from lineguard.vision.overlay import heatmap_rgb, map_display_range, render_overlay
from lineguard.vision.report import select_gallery, write_report
from lineguard.vision.result import DefectRegion, InspectionResult, Verdict

# ------------------------------------------------------------------ overlay


def test_heatmap_is_a_dark_to_bright_ramp():
    ramp = heatmap_rgb(np.linspace(-1, 2, 301)[None, :], vmin=0.0, vmax=1.0)
    assert ramp.shape == (1, 301, 3) and ramp.dtype == np.uint8
    luma = ramp[0] @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(luma) >= -1e-9)                  # never darker as scores rise
    assert (ramp[0, :100] == ramp[0, 0]).all()              # clipped below vmin
    assert (ramp[0, 200:] == ramp[0, -1]).all()             # clipped above vmax
    assert luma[-1] - luma[0] > 200
    assert heatmap_rgb(np.full((2, 2), np.nan), 0, 1).shape == (2, 2, 3)


def test_display_range_is_anchored_to_the_pixel_threshold():
    calm = np.full((4, 4), 0.2, np.float32)
    assert map_display_range(calm, 1.0) == (0.5, 1.0, 1.5)
    hot = calm.copy()
    hot[0, 0] = 4.0
    assert map_display_range(hot, 1.0) == (0.5, 1.0, 4.0)
    lo, mid, hi = map_display_range(hot, None)             # no threshold: relative scale
    assert lo == pytest.approx(0.2) and hi == 4.0 and lo < mid < hi


def _result(amap, regions=(), verdict=Verdict.NG, score=2.5):
    return InspectionResult(verdict=verdict, score=score, threshold=1.8, pixel_threshold=1.0,
                            anomaly_map=amap, regions=list(regions))


def test_render_overlay_good_part_stays_calm_and_defect_stands_out():
    img = np.full((120, 160, 3), 128, np.uint8)
    calm = np.full((120, 160), 0.3, np.float32)             # below threshold/2 everywhere
    out = render_overlay(img, calm, threshold=1.0)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out == img).all()                               # no caption, nothing drawn

    amap = calm.copy()
    amap[60:80, 100:130] = 3.0
    box = DefectRegion(100, 60, 30, 20, 600, 3.0, 3.0)
    out = render_overlay(img, _result(amap, [box]))
    assert np.abs(out[70, 115].astype(int) - 128).sum() > 60     # the defect is coloured
    assert (out[100:, :60] == 128).all()                          # calm area untouched
    assert tuple(out[59, 115]) == (0, 230, 255)                    # box outline
    # caption in the top-left corner on a red (NG) band
    assert out[1, 1, 0] > 150 and out[1, 1, 1] < 80


def test_render_overlay_resizes_map_and_accepts_none():
    img = np.zeros((64, 96, 3), np.uint8)
    small = np.zeros((16, 24), np.float32)
    small[8, 12] = 5.0
    out = render_overlay(img, small, threshold=1.0, alpha=1.0)
    assert out.shape == (64, 96, 3) and out.any()
    out = render_overlay(img, None, caption="OK 0.1")
    assert out[1, 1, 1] > out[1, 1, 0]                       # green band for OK
    res = _result(None, verdict=Verdict.OK, score=0.5)
    assert render_overlay(img, res).shape == (64, 96, 3)


# ------------------------------------------------------------------ report


def _items(tmp_path: Path):
    items = []
    for i, (t, s) in enumerate([("good", 0.1), ("good", 0.2), ("good", 0.7), ("scratch", 0.4),
                                ("scratch", 0.9), ("dent", 0.95)]):
        p = tmp_path / f"{t}_{i}.png"
        Image.new("RGB", (40, 30), (90, 90, 90)).save(p)
        items.append({"path": str(p), "defect_type": t, "score": s, "verdict": "NG" if s > 0.5 else "OK"})
    return items


def test_select_gallery_takes_worst_misses_and_false_alarms(tmp_path: Path):
    items = _items(tmp_path)
    sel = select_gallery(items, threshold=0.5, max_gallery=4)
    assert sel == [("escape", 3), ("low-scoring defect", 4), ("false reject", 2),
                   ("high-scoring good part", 1)]
    # Few defects: the places go to good parts.
    assert [k for k, _ in select_gallery(items[:4], 0.5, 4)] == [
        "escape", "false reject", "high-scoring good part", "high-scoring good part"]
    assert select_gallery(items, 0.5, 0) == []


def _evaluation():
    return {"image_auroc": 0.75, "pixel_auroc": None, "aupro": None, "f1_max": 0.8, "f1_threshold": 0.3,
            "threshold": 0.5, "false_reject_rate": 1 / 3, "escape_rate": 1 / 3, "false_rejects": 1,
            "escapes": 1, "n_good": 3, "n_defect": 3, "category": "widget<script>",
            "per_defect_type": {"scratch": {"n": 2, "image_auroc": 0.66, "escape_rate": 0.5},
                                "dent": {"n": 1, "image_auroc": 1.0, "escape_rate": 0.0}},
            "skipped": [{"path": "x.png", "error": "corrupt"}], "notes": ["a note"],
            "items": ["dropped from metrics.json"], "nan_value": float("nan"), "np": np.float32(0.5)}


def _local_refs(html_text: str) -> list[str]:
    return re.findall(r"(?:src|href)='([^']+)'", html_text)


def test_write_report_writes_a_self_contained_folder(tmp_path: Path):
    items = _items(tmp_path)
    amap = np.zeros((30, 40), np.float32)
    amap[5:10, 5:10] = 2.0
    items[2].update(anomaly_map=amap, pixel_threshold=1.0,
                    regions=[DefectRegion(5, 5, 5, 5, 25, 2.0, 2.0)])
    out = tmp_path / "report"
    (out / "gallery").mkdir(parents=True)
    (out / "gallery" / "07_stale_from_last_run.png").write_bytes(b"old")
    index = write_report(out, _evaluation(), items, max_gallery=4)
    assert index == out / "index.html"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["image_auroc"] == 0.75 and metrics["nan_value"] is None and metrics["np"] == 0.5
    assert "items" not in metrics
    for f in ("roc.png", "histogram.png", "items.csv"):
        assert (out / f).stat().st_size > 0
    pngs = sorted(p.name for p in (out / "gallery").glob("*.png"))
    assert len(pngs) == 4 and not any("stale" in p for p in pngs)
    assert Image.open(out / "gallery" / pngs[2]).size == (40, 30)
    html_text = index.read_text()
    assert "http://" not in html_text and "https://" not in html_text      # no CDN
    assert "<script>" not in html_text                                      # escaped
    refs = _local_refs(html_text)
    assert "roc.png" in refs and "histogram.png" in refs
    for ref in refs:
        assert (out / ref).exists(), ref
    assert "scratch" in html_text and "x.png" in html_text and "a note" in html_text
    rows = (out / "items.csv").read_text().splitlines()
    # photo_issues added last: outcome stays the fifth column for sheets that read by position
    assert rows[0] == "path,defect_type,score,verdict,outcome,photo_issues" and rows[3].endswith("false reject,")


def test_write_report_without_matplotlib(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)     # import fails
    out = tmp_path / "r"
    write_report(out, _evaluation(), _items(tmp_path), max_gallery=2)
    assert not (out / "roc.png").exists()
    assert "need matplotlib" in (out / "index.html").read_text()
    assert len(list((out / "gallery").glob("*.png"))) == 2


# ------------------------------------------------------------------ evaluate()


class FakeInspector:
    """Anomaly map = brightness; score = brightest pixel. Enough to exercise evaluate()."""

    threshold = 0.5
    pixel_threshold = 0.45

    def __init__(self):
        self.calls = []

    def inspect_batch(self, images, batch_size=16):
        images = list(images)
        self.calls.append(len(images))
        out = []
        for photo in images:
            img = load_image(photo)   # evaluate hands parts over as Photo objects
            assert isinstance(img, np.ndarray) and img.dtype == np.uint8
            amap = img[:, :, 0].astype(np.float32) / 255.0
            score = float(amap.max())
            ng = score > self.threshold
            regions = []
            if ng:
                ys, xs = np.nonzero(amap > self.pixel_threshold)
                regions = [DefectRegion(int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1,
                                        int(ys.size), score, score)]
            out.append(InspectionResult(Verdict.NG if ng else Verdict.OK, score, self.threshold,
                                        self.pixel_threshold, amap, regions))
        return out


def _tile(value_box: int | None, box=(8, 10, 14, 18), size=(32, 24)) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = (60 + (xx * yy) % 5).astype(np.uint8)            # textured background, max 64
    if value_box is not None:
        x0, y0, x1, y1 = box
        arr[y0:y1, x0:x1] = value_box
    return Image.fromarray(arr)


def _write_category(root: Path) -> Path:
    box = (8, 10, 14, 18)
    for i in range(2):
        (root / "train" / "good").mkdir(parents=True, exist_ok=True)
        _tile(None).save(root / "train" / "good" / f"{i:03d}.png")
    (root / "test" / "good").mkdir(parents=True)
    for i in range(4):
        _tile(None).save(root / "test" / "good" / f"{i:03d}.png")
    _tile(220, box=(2, 2, 5, 5)).save(root / "test" / "good" / "004.png")     # a false alarm
    (root / "test" / "good" / "005.png").write_bytes(b"\x89PNG broken")       # unreadable
    specs = {"scratch": [200, 200, 100], "dent": [180, 180]}                  # 100: an escape
    for t, values in specs.items():
        (root / "test" / t).mkdir(parents=True)
        (root / "ground_truth" / t).mkdir(parents=True)
        for i, v in enumerate(values):
            _tile(v, box=box).save(root / "test" / t / f"{i:03d}.png")
            mask = np.zeros((24, 32), np.uint8)
            mask[box[1]:box[3], box[0]:box[2]] = 255
            if not (t == "dent" and i == 1):                                  # one mask missing
                Image.fromarray(mask).save(root / "ground_truth" / t / f"{i:03d}_mask.png")
    return root


def test_evaluate_end_to_end(tmp_path: Path):
    root = _write_category(tmp_path / "tile")
    insp = FakeInspector()
    seen = []
    ev = evaluate(insp, root, out_dir=tmp_path / "out", batch_size=4, max_gallery=4,
                  progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert ev["n_good"] == 5 and ev["n_defect"] == 5 and ev["n_test_images"] == 11
    assert [s["path"].endswith("005.png") for s in ev["skipped"]] == [True]
    # Defects score 200,200,100,180,180 /255, good parts 64 (x4) and 220 /255: every defect
    # beats the four plain good parts and loses to the false alarm, 20 of 25 pairs.
    good = np.array([64, 64, 64, 64, 220]) / 255
    bad = np.array([200, 200, 100, 180, 180]) / 255
    expected = np.mean([(b > g) + 0.5 * (b == g) for b in bad for g in good])
    assert ev["image_auroc"] == pytest.approx(expected) == pytest.approx(0.8)
    assert ev["false_reject_rate"] == pytest.approx(1 / 5) and ev["false_rejects"] == 1
    assert ev["escape_rate"] == pytest.approx(1 / 5) and ev["escapes"] == 1
    assert ev["threshold"] == 0.5
    assert 0 < ev["f1_max"] <= 1
    per = ev["per_defect_type"]
    assert set(per) == {"scratch", "dent"}
    assert per["scratch"]["n"] == 3 and per["scratch"]["escape_rate"] == pytest.approx(1 / 3)
    assert per["dent"]["escape_rate"] == 0.0
    assert per["dent"]["image_auroc"] == pytest.approx(0.8)       # 180 loses only to 220
    # Pixel metrics: the dim scratch's region (100) is still above the background (<=64)
    # but below the false alarm's spot (220, 9 pixels): nearly perfect, not quite.
    assert 0.99 < ev["pixel_auroc"] < 1.0
    assert 0.9 < ev["aupro"] <= 1.0
    assert per["dent"]["pixel_auroc"] is not None
    assert ev["n_pixel_images"] == 9                 # 5 good readable... minus broken, minus no-mask dent
    assert any("no usable mask" in n for n in ev["notes"])
    assert len(ev["items"]) == 10
    assert seen[-1] == ("report", 1, 1) and ("inspect", 11, 11) in seen
    assert max(insp.calls) <= 4

    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "false_reject_rate", "escape_rate",
                "threshold", "per_defect_type", "n_good", "n_defect"):
        assert key in metrics
    gallery = sorted(p.name for p in (out / "gallery").glob("*.png"))
    assert len(gallery) == 4
    assert any("escape" in g and "scratch_002" in g for g in gallery)
    assert any("false_reject" in g and "good_004" in g for g in gallery)
    html_text = (out / "index.html").read_text()
    for ref in _local_refs(html_text):
        assert (out / ref).exists()
    # The escape's overlay carries its heatmap (built from the kept map, not a blank one).
    esc = next(g for g in gallery if "escape" in g)
    arr = np.asarray(Image.open(out / "gallery" / esc).convert("RGB"))
    assert arr.shape == (24, 32, 3)


def test_evaluate_without_ground_truth_or_output(tmp_path: Path):
    root = _write_category(tmp_path / "tile")
    import shutil

    shutil.rmtree(root / "ground_truth")
    (root / "test" / "good" / "005.png").unlink()
    ev = evaluate(FakeInspector(), root)
    assert ev["pixel_auroc"] is None and ev["aupro"] is None and "report" not in ev
    assert any("no ground_truth" in n for n in ev["notes"])
    assert ev["image_auroc"] == pytest.approx(0.8) and ev["skipped"] == []


def test_evaluate_with_only_good_parts_gives_none_not_an_error(tmp_path: Path):
    root = tmp_path / "c"
    (root / "test" / "good").mkdir(parents=True)
    for i in range(3):
        _tile(None).save(root / "test" / "good" / f"{i}.png")
    ev = evaluate(FakeInspector(), root, out_dir=tmp_path / "o")
    assert ev["image_auroc"] is None and ev["escape_rate"] is None and ev["false_reject_rate"] == 0.0
    assert (tmp_path / "o" / "index.html").exists()


class ReviewBandInspector(FakeInspector):
    """The fake above with a review band: OK at or below 0.2, REVIEW up to 0.5, NG above."""

    review_threshold = 0.2

    def inspect_batch(self, images, batch_size=16):
        out = super().inspect_batch(images, batch_size)
        for r in out:
            if r.verdict is Verdict.OK and r.score > self.review_threshold:
                r.verdict = Verdict.REVIEW
            r.review_threshold = self.review_threshold
        return out


def test_evaluate_reports_false_rejects_escapes_and_review_load(tmp_path: Path):
    root = _write_category(tmp_path / "tile")
    ev = evaluate(ReviewBandInspector(), root, out_dir=tmp_path / "out", max_gallery=4)
    # Scores (max brightness / 255): good 64 x4 (0.25: REVIEW) and 220 (NG, a false reject);
    # scratch 200, 200 (NG) and 100 (0.39: REVIEW, no longer an escape); dent 180, 180 (NG).
    assert ev["review_threshold"] == 0.2 and ev["threshold"] == 0.5
    assert ev["false_rejects"] == 1 and ev["false_reject_rate"] == pytest.approx(1 / 5)
    assert ev["escapes"] == 0 and ev["escape_rate"] == 0.0
    assert (ev["reviews"], ev["reviews_good"], ev["reviews_defect"]) == (5, 4, 1)
    assert ev["review_load"] == pytest.approx(5 / 10)
    assert ev["review_load_good"] == pytest.approx(4 / 5) and ev["review_load_defect"] == pytest.approx(1 / 5)
    assert ev["per_defect_type"]["scratch"]["review_load"] == pytest.approx(1 / 3)
    assert ev["per_defect_type"]["scratch"]["escapes"] == 0 and ev["per_defect_type"]["dent"]["review_load"] == 0
    assert not any("differ" in n for n in ev["notes"])       # REVIEW verdicts agree with the score rule

    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["review_load_good"] == pytest.approx(0.8) and metrics["reviews_defect"] == 1
    import csv
    with open(out / "items.csv", newline="") as f:
        rows = {"/".join(r["path"].rsplit("/", 2)[-2:]): r["outcome"] for r in csv.DictReader(f)}
    assert rows["scratch/002.png"] == "review" and rows["good/000.png"] == "review"
    assert rows["good/004.png"] == "false reject" and rows["dent/000.png"] == "caught"
    page = (out / "index.html").read_text()
    assert "review load: good parts judged REVIEW" in page and "0.8000 (4 of 5)" in page
    assert any("defect_in_review" in p.name for p in (out / "gallery").glob("*.png"))


def test_evaluate_without_a_band_has_no_review_load(tmp_path: Path):
    ev = evaluate(FakeInspector(), _write_category(tmp_path / "tile"), out_dir=tmp_path / "out")
    assert ev["review_threshold"] == ev["threshold"] and ev["reviews"] == 0 and ev["review_load"] == 0.0
    assert ev["escapes"] == 1                                 # the dim scratch, as without bands
    assert "review band</td><td>none" in (tmp_path / "out" / "index.html").read_text()


def test_a_thumbnail_overlay_has_no_burned_in_caption_and_a_full_one_keeps_it():
    """The gallery's thumbnails carried "NG 42.2 / 20.6" some 7 px high on the card, which says
    the verdict and score in text beside it; the part page's overlay keeps the caption."""
    import io

    from lineguard.line import render
    grey = np.full((1000, 1000, 3), 128, np.uint8)

    def drawn(max_side):
        res = InspectionResult(verdict=Verdict.NG, score=42.2, threshold=20.6, pixel_threshold=20.6, anomaly_map=None,
                               regions=[DefectRegion(600, 600, 100, 100, 10000, 40.0, 30.0)], image_size=(1000, 1000))
        return np.asarray(Image.open(io.BytesIO(render.overlay_png(grey, None, res, max_side))).convert("RGB"))
    thumb, full = drawn(320), drawn(1600)
    assert thumb.shape[:2] == (320, 320) and (thumb[:8, :8] == 128).all()        # the photo, no caption box
    assert tuple(full[2, 2]) == (220, 30, 30)                                      # the NG caption box
    assert (thumb[192:230, 192:230] != 128).any()                                  # the region still boxed
