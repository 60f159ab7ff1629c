"""What a walk through eval, recalibrate and Ctrl-C found.

- `eval --model M --frr 0.2` reported the model's own 1% threshold, and `--frr 5` was taken:
  the settings of a model eval trains were dropped without a word with --model;
- `eval -o FILE` (an existing file) ended in a traceback once all the scoring was done;
- a test photo that could not be read was left out with no word on the console ("of 20"),
  and the notes of metrics.json ("no ground_truth folder ...") were never printed;
- Ctrl-C ended train, eval, recalibrate and stress with "Aborted!" and exit 1, which the README
  gives to a run done but needing a look.
"""
from __future__ import annotations

import shutil

import pytest

from cli_runner import run_in_process


@pytest.mark.parametrize("extra", [["--frr", "0.2"], ["--frr", "0.01"], ["--seed", "3"], ["--max-train", "10"],
                                   ["--profile", "quality"]])
def test_eval_with_a_model_refuses_the_settings_of_training(fitted_model_path, synth_category, tmp_path, extra):
    r = run_in_process("eval", synth_category, "--model", fitted_model_path, *extra, "-o", tmp_path / "rep")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{extra[0]} sets how eval trains a model" in r.stderr and "drop it or --model" in r.stderr, r.stderr
    assert not (tmp_path / "rep").exists()


def test_eval_to_an_existing_file_is_refused_before_scoring(fitted_model_path, synth_category, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("the shift's notes")
    r = run_in_process("eval", synth_category, "--model", fitted_model_path, "-o", target)
    assert r.returncode == 2 and "is a file; -o takes a folder for the report" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and target.read_text() == "the shift's notes"


def test_eval_says_on_the_console_what_it_left_out(fitted_model_path, synth_category, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(synth_category / "test", cat / "test")     # no ground_truth: no pixel metrics
    good = sorted((cat / "test" / "good").glob("*.png"))
    good[0].write_bytes(good[0].read_bytes()[:200])            # cut short
    r = run_in_process("eval", cat, "--model", fitted_model_path)
    assert r.returncode == 0, r.stderr
    assert f"skipped: {good[0]}" in r.stderr, r.stderr
    assert "no ground_truth folder: pixel metrics" in r.stderr, r.stderr


def test_ctrl_c_is_said_as_interrupted_with_exit_130(monkeypatch, tmp_path):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt
    monkeypatch.setattr("lineguard.vision.synth.write_dataset", interrupted)
    r = run_in_process("synth", tmp_path / "cells", "--n-good", "2", "--n-defect", "0", "--size", "64")
    assert r.returncode == 130, (r.returncode, r.stdout, r.stderr)
    assert "interrupted (Ctrl-C): `lineguard synth` stopped before it finished" in r.stderr
    assert "Aborted!" not in r.stdout + r.stderr


@pytest.mark.parametrize("verb", ["train", "eval", "recalibrate"])
def test_a_false_reject_rate_given_in_percent_says_it_is_a_fraction(verb, fitted_model_path, synth_category, tmp_path):
    """--frr 5 (meant as 5%) was refused as "false_reject_rate must be between 0 and 1, got 5.0"."""
    args = {"train": [synth_category / "train" / "good", "-o", tmp_path / "m.lgm"],
            "eval": [synth_category],
            "recalibrate": [fitted_model_path, synth_category / "test" / "good", "-o", tmp_path / "r.lgm"]}[verb]
    r = run_in_process(verb, *args, "--frr", "5")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "0.01 for 1% (for 5%, give 0.05)" in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())
