"""A threshold chosen by F1 (``--strategy f1``) promises nothing about false rejects.

It used to carry the frr threshold's conformal promise: `train --strategy f1` printed
"threshold 23.58 for a target false-reject rate of 1.00% (on average <= 1.96%)" and the
frr threshold's escape rate, while 23.58 rejected 18% of the good parts it was chosen on;
`eval` then found 23% of good test parts NG "ABOVE the promise", and the station's Tuning
page quoted "training promised at most 2.1%". The record now keeps the frr promise apart
(``frr_promise``) and says what the F1 threshold does on the given parts, measured.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_in_process

from lineguard.vision.calibration import promise_check, summarize

# 100 good parts scoring 0..99 and defects overlapping their top: the F1 threshold sits well
# below the 1% conformal one (99), rejecting a large share of the good parts
GOOD = np.arange(100, dtype=float)
DEFECTS = np.arange(80, 140, dtype=float)


def test_an_f1_record_states_its_measured_rates_and_keeps_the_frr_promise_apart():
    c = summarize(GOOD, 0.01, DEFECTS, "f1")
    assert c["threshold"] == c["f1_threshold"] < c["frr_threshold"]
    at = c["at_f1_threshold"]
    assert at["false_reject_rate"] > 0.1          # far above the 1% the frr threshold was set for
    assert c["measured_false_reject_rate"] == at["false_reject_rate"]
    assert c["measured_escape_rate"] == at["escape_rate"]
    assert "no false-reject guarantee" in c["no_promise"]
    # no promise beside the F1 threshold: whatever reads the record must not quote one
    for key in ("guaranteed_false_reject_rate", "false_reject_rate_upper_90", "rank", "guaranteed_not_ok_rate"):
        assert key not in c, key
    frr = summarize(GOOD, 0.01, DEFECTS, "frr")
    assert c["frr_promise"]["guaranteed_false_reject_rate"] == frr["guaranteed_false_reject_rate"]
    assert c["frr_threshold"] == frr["threshold"]


def test_no_promise_is_checked_against_an_f1_threshold_even_in_an_older_model_file():
    c = summarize(GOOD, 0.01, DEFECTS, "f1")
    assert promise_check(c, GOOD) is None
    # a model trained before the fix: the frr promise recorded beside the F1 threshold
    old = {**c, "guaranteed_false_reject_rate": 0.0198}
    assert promise_check(old, GOOD) is None
    # an frr model keeps its check
    assert promise_check(summarize(GOOD, 0.01, DEFECTS, "frr"), GOOD) is not None


def test_an_f1_review_band_sends_the_review_rate_on_top_of_what_the_f1_threshold_rejects():
    # at frr + review rate (6%) the band's threshold sat above an F1 threshold that rejects
    # far more than that, so it was always empty
    c = summarize(GOOD, 0.01, DEFECTS, "f1", review_rate=0.05)
    assert c["review_threshold"] < c["threshold"]
    not_ok = c["at_review_threshold"]["false_reject_rate"]
    assert 0.03 <= not_ok - c["measured_false_reject_rate"] <= 0.07   # the conformal rank rounds up
    assert "guaranteed_not_ok_rate" not in c      # measured, not promised


# --------------------------------------------------------------------------- the CLI

def _run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_in_process(*args, cwd=cwd)     # tests/cli_runner.py: the verb in this process


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_train_and_eval_with_strategy_f1_say_what_the_f1_threshold_does(tmp_path):
    pytest.importorskip("torch")
    from lineguard.vision.inspector import Inspector

    r = _run("synth", "cell", "--n-good", 24, "--n-defect", 12, "--size", 64, "--seed", 3, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cat = tmp_path / "cell"
    r = _run("train", cat / "train" / "good", "--defects", cat / "test" / "scratch", "--strategy", "f1",
             "--frr", 0.1, "-o", "f1.lgm", "--image-size", 64, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = _flat(r.stdout + r.stderr)
    c = Inspector.load(tmp_path / "f1.lgm").calibration
    at = c["at_f1_threshold"]
    assert f"threshold {c['threshold']:.4f}, chosen by F1" in out
    assert (f"{at['false_reject_rate']:.2%} of the good parts judged NG ({at['false_rejects']} of {at['n_good']}) "
            f"and escape rate {at['escape_rate']:.2%}") in out
    assert "no false-reject guarantee at this threshold" in out
    assert f"the frr threshold would be {c['frr_threshold']:.4f}" in out
    # the frr promise is stated for the frr threshold only, never for the one chosen
    assert f"threshold {c['threshold']:.4f} for a target" not in out
    assert "guaranteed_false_reject_rate" not in c
    r = _run("eval", cat, "--model", "f1.lgm", "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = _flat(r.stdout)
    assert "training promised" not in out and "ABOVE the promise" not in out
    assert f"judged {at['false_reject_rate']:.2%} of the good parts given NG" in out
