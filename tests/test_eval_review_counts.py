"""`eval` counts every part by the verdict it was given, as the station does and as its
own items.csv lists it: a part the photo check sent to REVIEW (a photo unlike the good
ones whose score passed) is in the review load, and a defect there is caught at review,
not an escape. Before, eval counted such parts by their score: a magnetic-tile model with
no band reported review_load 0 while items.csv held 45 good and 42 defective parts judged
REVIEW, and those 42 defects were counted as escapes.
"""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lineguard.vision import photo_check
from lineguard.vision.evaluate import evaluate
from lineguard.vision.imageio import load_image
from lineguard.vision.inspector import Inspector
from lineguard.vision.preprocess import Preprocess


def _items_csv(out: Path) -> list[dict]:
    with open(out / "items.csv", newline="") as f:
        return list(csv.DictReader(f))


def _counted(rows: list[dict]) -> dict[str, int]:
    """What items.csv says, in the summary's terms."""
    good = [r for r in rows if r["defect_type"] == "good"]
    bad = [r for r in rows if r["defect_type"] != "good"]
    return {"false_rejects": sum(r["verdict"] == "NG" for r in good),
            "escapes": sum(r["verdict"] == "OK" for r in bad),
            "reviews_good": sum(r["verdict"] == "REVIEW" for r in good),
            "reviews_defect": sum(r["verdict"] == "REVIEW" for r in bad),
            "reviews": sum(r["verdict"] == "REVIEW" for r in rows),
            "n_good": len(good), "n_defect": len(bad)}


# ------------------------------------------------- exact: a stub model, a band, the photo check

class _PeakDetector:
    """Score: the photo's brightest grey level above its median, / 255 (a bright spot on
    a plain part); the offset of the whole photo does not move it, so a brighter copy of
    a part scores as the part does and only the photo check tells it apart."""

    name = "stub"

    def score(self, x: np.ndarray):
        g = x.astype(np.float32).mean(axis=3)
        flat = g.reshape(len(x), -1)
        scores = (flat.max(axis=1) - np.median(flat, axis=1)) / 255.0
        return scores, (g / 255.0).astype(np.float32)


BASE, BRIGHTER = 60, 80            # a part's grey level; a lamp turned up adds 80
STRONG, IN_BAND, FAINT = 150, 60, 10


def _photo(rng, base: int = BASE, spot: int = 0) -> np.ndarray:
    g = base + rng.integers(0, 16, (64, 64))
    g[20:28, 30:38] += spot
    return np.repeat(np.clip(g, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _stub_inspector(rng) -> Inspector:
    pre = Preprocess(image_size=64)
    good = np.stack([pre.apply(_photo(rng, base=int(b)))[0] for b in rng.integers(BASE - 5, BASE + 6, 30)])
    # the range from these and from photos with a spot as strong as the defects': a spot that
    # moves the photo's contrast would make it doubted, and a doubted photo is REVIEW whatever
    # its score; the parts below doubted for their brightness only (a lamp turned up)
    spotted = np.stack([pre.apply(_photo(rng, base=int(b), spot=STRONG))[0] for b in rng.integers(BASE - 5, BASE + 6, 30)])
    photo_range, _ = photo_check.learn_range(np.concatenate([good, spotted]))
    # one far-out good training photo named, and the threshold there would be without it
    insp = Inspector(_PeakDetector(), pre, {"threshold": 0.35, "review_threshold": 0.15, "pixel_threshold": 0.5,
                                            "threshold_without_suspects": 0.2},
                     info={"version": "stub-1", "photo_range": photo_range,
                           "suspect_good": [{"image": "train/good/odd.png", "score": 0.5}]})
    insp._model_id = "stub"        # the content hash needs a real detector's tensors
    return insp


# name: (base, spot) per part; the comment is the verdict and what sent it there
PARTS = {
    "good": [(BASE, 0)] * 5                        # OK
            + [(BASE + BRIGHTER, 0)] * 3           # REVIEW: photo check (the score passes)
            + [(BASE, IN_BAND)]                    # REVIEW: band
            + [(BASE + BRIGHTER, IN_BAND)]         # REVIEW: band (the photo is doubted too)
            + [(BASE, STRONG)],                    # NG: a false reject
    "scratch": [(BASE, STRONG)] * 2                # NG
               + [(BASE, IN_BAND)]                 # REVIEW: band, caught at review
               + [(BASE, FAINT)]                   # OK: an escape
               + [(BASE + BRIGHTER, STRONG)],      # REVIEW: photo check, whatever its score (a person looks)
    "dent": [(BASE + BRIGHTER, FAINT)] * 2         # REVIEW: photo check, caught at review
            + [(BASE, FAINT)],                     # OK: an escape
}


def _stub_category(root: Path, rng) -> Path:
    for kind, parts in PARTS.items():
        (root / "test" / kind).mkdir(parents=True)
        for i, (base, spot) in enumerate(parts):
            Image.fromarray(_photo(rng, base, spot)).save(root / "test" / kind / f"{i:03d}.png")
    return root


def test_band_and_photo_check_reviews_are_counted_alike_and_apart(tmp_path):
    rng = np.random.default_rng(7)
    insp = _stub_inspector(rng)
    root = _stub_category(tmp_path / "tile", rng)
    ev = evaluate(insp, root, out_dir=tmp_path / "out", max_gallery=6)
    verdicts = {(Path(r["path"]).parent.name, Path(r["path"]).name): r["verdict"] for r in ev["items"]}
    assert Counter(v for (k, _), v in verdicts.items() if k == "good") == {"OK": 5, "REVIEW": 5, "NG": 1}
    assert Counter(v for (k, _), v in verdicts.items() if k != "good") == {"NG": 2, "REVIEW": 4, "OK": 2}

    assert (ev["n_good"], ev["n_defect"]) == (11, 8)
    assert ev["false_rejects"] == 1 and ev["false_reject_rate"] == pytest.approx(1 / 11)
    # the two faint spots on plain photos ship; the two on doubted photos go to a person
    assert ev["escapes"] == 2 and ev["escape_rate"] == pytest.approx(2 / 8)
    assert (ev["reviews"], ev["reviews_good"], ev["reviews_defect"]) == (9, 5, 4)
    assert ev["review_load"] == pytest.approx(9 / 19)
    assert ev["review_load_good"] == pytest.approx(5 / 11) and ev["review_load_defect"] == pytest.approx(4 / 8)
    # of those, the photo check's: a doubted photo whose score would pass or reject it (one in
    # the band is the band's)
    assert (ev["reviews_photo"], ev["reviews_photo_good"], ev["reviews_photo_defect"]) == (6, 3, 3)
    per = ev["per_defect_type"]
    assert (per["dent"]["escapes"], per["dent"]["review_load"], per["dent"]["reviews_photo"]) == \
        (1, pytest.approx(2 / 3), 2)
    assert (per["scratch"]["escapes"], per["scratch"]["review_load"], per["scratch"]["reviews_photo"]) == \
        (1, pytest.approx(2 / 5), 1)
    assert any("photo check" in n and "3 good and 3 defective" in n for n in ev["notes"])
    # the page's row says what they are: photos that would pass or be rejected on their score
    from lineguard.vision.report import _review_rows
    row = [label for label, _ in _review_rows(ev) if "photo check" in label]
    assert row == ["of those, sent to REVIEW by the photo check (photo unlike the good ones, whatever its score)"]
    # the threshold without the named photo, judged by the same rule (band and photo check
    # kept): a lower reject threshold rejects more good parts and ships no more defects
    without = ev["at_threshold_without_suspects"]
    assert (without["false_rejects"], without["escapes"]) == (2, 2)      # the doubted one in the band: REVIEW
    assert not any("differ" in n for n in ev["notes"])

    out = tmp_path / "out"
    rows = _items_csv(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {k: metrics[k] for k in _counted(rows)} == _counted(rows)
    outcome = {(Path(r["path"]).parent.name, Path(r["path"]).name): r["outcome"] for r in rows}
    assert outcome[("dent", "000.png")] == "review (photo check)"
    assert outcome[("dent", "002.png")] == "escape"
    assert outcome[("good", "005.png")] == "review (photo check)"
    assert outcome[("good", "009.png")] == "review"                  # in the band: the band's, doubted or not
    assert outcome[("scratch", "004.png")] == "review (photo check)"     # its score would have rejected it
    page = (out / "index.html").read_text()
    assert "0.5000 (4 of 8)" in page and "3 good, 3 defective" in page
    kinds = {p.name.split("_", 1)[1] for p in (out / "gallery").glob("*.png")}
    assert any(k.startswith("defect_in_review_dent") for k in kinds)   # not shown as an escape


# ------------------------------ the trained model on the synthetic line, some photos unlike the good

def _scaled(path: Path, k: float) -> Image.Image:
    a = np.asarray(load_image(path)).astype(np.float32) * k
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def doubted_line(synth_category, tmp_path_factory) -> Path:
    """The synthetic category's test set, plus dimmed copies of its good parts (score
    still passing, photo too dark) and brightened copies of its stains (the faintest one
    still passing on its score, photo too bright)."""
    root = tmp_path_factory.mktemp("doubted") / "cell"
    shutil.copytree(synth_category / "test", root / "test")
    shutil.copytree(synth_category / "ground_truth", root / "ground_truth")
    for p in sorted((synth_category / "test" / "good").glob("*.png")):
        _scaled(p, 0.7).save(root / "test" / "good" / f"dim_{p.name}")
    for p in sorted((synth_category / "test" / "stain").glob("*.png")):
        _scaled(p, 1.3).save(root / "test" / "stain" / f"bright_{p.name}")
        mask = synth_category / "ground_truth" / "stain" / f"{p.stem}_mask.png"
        if mask.exists():
            shutil.copy(mask, root / "ground_truth" / "stain" / f"bright_{p.stem}_mask.png")
    return root


def test_eval_summary_matches_its_items_csv_with_photo_check_reviews(fitted_inspector, doubted_line, tmp_path):
    assert fitted_inspector.review_threshold == fitted_inspector.threshold      # no band: every REVIEW is the check's
    ev = evaluate(fitted_inspector, doubted_line, out_dir=tmp_path / "out")
    rows = _items_csv(tmp_path / "out")
    counted = _counted(rows)
    # the case this test is for: good and defective parts the photo check sent to REVIEW
    assert counted["reviews_good"] >= 1 and counted["reviews_defect"] >= 1, counted
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {k: metrics[k] for k in counted} == counted
    assert {k: ev[k] for k in counted} == counted
    assert ev["review_load"] == pytest.approx(counted["reviews"] / len(rows))
    assert ev["escape_rate"] == pytest.approx(counted["escapes"] / counted["n_defect"])
    assert (ev["reviews_photo_good"], ev["reviews_photo_defect"]) == (counted["reviews_good"],
                                                                       counted["reviews_defect"])
    assert all(r["outcome"] == "review (photo check)" for r in rows if r["verdict"] == "REVIEW")
    # the score's own metrics do not move: the same scores, whatever the verdicts
    from lineguard.vision.metrics import image_auroc
    scores = np.array([float(r["score"]) for r in ev["items"]])
    labels = np.array([r["defect_type"] != "good" for r in ev["items"]])
    assert ev["image_auroc"] == pytest.approx(image_auroc(scores, labels))
    doubted = np.array([bool(r.get("photo_issues")) for r in ev["items"]])     # REVIEW whatever their score
    assert ev["false_rejects"] == int(((scores > ev["threshold"]) & ~labels & ~doubted).sum())


def test_eval_prints_the_review_load_the_photo_check_makes(fitted_model_path, doubted_line, tmp_path):
    from cli_runner import run_in_process as run_cli
    r = run_cli("eval", doubted_line, "--model", fitted_model_path, "-o", tmp_path / "rep", "--threads", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    out = " ".join(r.stdout.split())
    # no band, and still a review load to print: the parts the photo check sent to a person
    assert f"review_load_good: {metrics['review_load_good']:.4f}" in out, out
    assert f"review_load_defect: {metrics['review_load_defect']:.4f}" in out
    assert metrics["reviews_photo_good"] >= 1 and metrics["reviews_photo_defect"] >= 1
    assert (f"photo check: {metrics['reviews_photo_good']} good and {metrics['reviews_photo_defect']} defective "
            "parts judged REVIEW") in out
