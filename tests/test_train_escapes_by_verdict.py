"""train, inspect and eval count escapes the same way: by the verdict each defect is given.

train counted a defect as escaped by its score alone, while the photo check sends a part
whose photo is unlike the good ones to REVIEW whatever its score, where a person catches
it: on magnetic tiles train said "escape rate 83.33%" (20 of 24) where inspect judged 10 OK
and eval counted 10 escapes. Here defect photos taken under a cooler lamp are doubted by the
photo check, some scoring below the threshold. And `info` on an F1 model said "set for 1%
false rejects" of a threshold that promises none.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_in_process
from PIL import Image

pytest.importorskip("torch")


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def line(tmp_path_factory) -> Path:
    """A small synthetic line and a defect folder: each defect photo as taken, and again
    under a cooler lamp (blue up 12%), which the colour check doubts."""
    from lineguard.vision.synth import write_dataset
    root = tmp_path_factory.mktemp("escapes_by_verdict")
    write_dataset(root / "cell", n_good=24, n_defect=12, size=64, seed=3)
    defects = root / "defects"
    defects.mkdir()
    for f in sorted((root / "cell" / "test").glob("*/*.png")):
        if f.parent.name == "good":
            continue
        a = np.asarray(Image.open(f).convert("RGB")).astype(float)
        Image.fromarray(a.astype(np.uint8)).save(defects / f"{f.parent.name}_{f.stem}.png")
        a[..., 2] *= 1.12
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(defects / f"{f.parent.name}_{f.stem}_cool_lamp.png")
    return root


def _judged_by_inspect(root: Path, model: str) -> tuple[int, int, list[dict]]:
    import json
    r = run_in_process("inspect", model, "defects", "--json", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stderr
    parts = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return sum(p["verdict"] == "OK" for p in parts), len(parts), parts


def _doubted_below_threshold(parts: list[dict]) -> int:
    # the cases that tell the two counts apart: a score that passes, a photo the check doubts
    return sum(bool(p.get("photo_issues")) and p["score"] <= p["threshold"] for p in parts)


def test_train_counts_a_defect_the_photo_check_sends_to_review_as_caught_not_escaped(line):
    r = run_in_process("train", "cell/train/good", "--defects", "defects", "-o", "frr.lgm", "--image-size", 64,
                       "--threads", 1, cwd=line)
    assert r.returncode == 0, r.stdout + r.stderr
    ok, n, parts = _judged_by_inspect(line, "frr.lgm")
    assert _doubted_below_threshold(parts) >= 1, "no doubted defect scores below the threshold: the test tells nothing"
    out = _flat(r.stdout)
    # train's escapes are inspect's OK verdicts on the same photos
    assert f"escape rate {ok / n:.2%} at this threshold" in out, out
    assert f"({ok} of {n} judged OK" in out
    assert "caught at review, not escapes" in out


def test_train_with_strategy_f1_counts_escapes_as_inspect_judges_them_and_info_says_no_promise(line):
    r = run_in_process("train", "cell/train/good", "--defects", "defects", "--strategy", "f1", "-o", "f1.lgm",
                       "--image-size", 64, "--threads", 1, cwd=line)
    assert r.returncode == 0, r.stdout + r.stderr
    ok, n, parts = _judged_by_inspect(line, "f1.lgm")
    assert _doubted_below_threshold(parts) >= 1
    out = _flat(r.stdout)
    assert f"escape rate {ok / n:.2%} ({ok} of {n} defects judged OK" in out, out
    # and the model file says so, for info and the station
    from lineguard.vision.inspector import Inspector
    c = Inspector.load(line / "f1.lgm").calibration
    assert c["at_f1_threshold"]["escapes"] == ok
    assert c["measured_escape_rate"] == pytest.approx(ok / n)

    r = run_in_process("info", "f1.lgm", cwd=line)
    assert r.returncode == 0, r.stderr
    said = _flat(r.stderr)
    # a threshold chosen by F1 promises no false-reject rate: info said "set for 1% false rejects"
    assert "chosen by F1" in said and "no false-reject promise" in said, said
    assert "set for" not in said


def test_the_record_counts_escapes_by_verdict_as_eval_does():
    # eval's rule: OK at or below the review threshold with a photo the check did not doubt;
    # a doubted photo is REVIEW whatever its score (caught at review)
    from lineguard.vision.calibration import escapes_judged, summarize, with_defect_verdicts
    good = np.arange(100, dtype=float)
    defects = np.array([10.0, 50.0, 97.5, 120.0, 130.0])
    doubted = [True, False, False, True, False]
    c = summarize(good, 0.05, defects, "frr", review_rate=0.05)
    band = escapes_judged(defects, c["threshold"], c["review_threshold"], doubted)
    assert band["escapes"] == 1                     # 50 only: 10 is doubted, so REVIEW
    assert band["defects_review"] == 2              # 10 (photo check) and 97.5 (in the band)
    recounted = with_defect_verdicts(c, defects, doubted)
    assert recounted["at_review_threshold"]["escapes"] == 1
    assert recounted["at_frr_threshold"]["escapes"] == 1 + (97.5 <= c["threshold"])
    assert summarize(good, 0.05, defects, "frr", review_rate=0.05,
                     defect_photo_review=doubted)["at_review_threshold"]["escapes"] == 1
