"""Command-line settings that mean nothing are refused at once (exit 2), in the options'
own names, and inspect's and train's words say what they read.

Found on a walk: inspect --batch-size -1 judged no part and said "24 part(s) inspected: 24
OK", --batch-size 0 ended in a traceback; train refused --review-rate 0.99, --coreset-ratio
0, --image-size 100, --group-by part and --strategy f1 without defects in the Python
parameters' names, most of them after training; inspect's "not read" line left .gif out of
the formats it judges; --frr 1e-9 was printed as a target of "0.00%".
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_runner import run_in_process


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def small_line(tmp_path_factory) -> Path:
    from lineguard.vision.synth import write_dataset
    root = tmp_path_factory.mktemp("option_refusals") / "cell"
    write_dataset(root, n_good=24, n_defect=6, size=64, seed=3)
    return root


@pytest.mark.parametrize("size", ["-1", "0"])
def test_inspect_refuses_a_batch_size_that_judges_no_part(fitted_model_path, synth_category, size):
    r = run_in_process("inspect", fitted_model_path, synth_category / "test" / "good", "--batch-size", size,
                       "--fail-on-ng", "--threads", 1)
    # no "N part(s) inspected: N OK" for parts never judged, no traceback
    assert r.returncode == 2, r.stdout + r.stderr
    assert "inspected" not in r.stdout and "Traceback" not in r.stderr
    assert "--batch-size" in r.stderr and "at least 1" in r.stderr


def test_eval_refuses_max_train_zero(synth_category, tmp_path):
    # 0 was read as "no limit" and trained on every photo
    r = run_in_process("eval", synth_category, "--max-train", 0, "--image-size", 128, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--max-train" in r.stderr and "at least 1" in r.stderr


@pytest.mark.parametrize("args, option, python_name", [
    (["--n-good", "-5"], "--n-good", "n_good"),
    (["--seed", "-1"], "--seed", "seed must"),
    (["--size", "10"], "--size", "size (10, 10)"),
])
def test_synth_refuses_in_the_options_names(tmp_path, args, option, python_name):
    r = run_in_process("synth", "line", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert option in r.stderr and python_name not in r.stderr, r.stderr
    assert not (tmp_path / "line").exists()


@pytest.mark.parametrize("args, option, python_name", [
    (["--review-rate", "0.99"], "--review-rate", "false_reject_rate + review_rate"),
    (["--coreset-ratio", "0"], "--coreset-ratio", "coreset_ratio must"),
    (["--image-size", "100"], "--image-size", "image_size sides"),
    (["--group-by", "part"], "--group-by", "groups pattern"),
    (["--strategy", "f1"], "--defects", "strategy 'f1' needs"),
])
def test_train_refuses_settings_in_the_options_names(small_line, tmp_path, args, option, python_name):
    r = run_in_process("train", small_line / "train" / "good", "-o", "m.lgm", "--image-size", 64, *args,
                       "--threads", 1, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert option in r.stderr and python_name not in r.stderr, r.stderr
    assert not (tmp_path / "m.lgm").exists()


def test_inspect_names_gif_among_the_formats_it_judges(fitted_model_path, synth_category, tmp_path):
    folder = tmp_path / "station"
    folder.mkdir()
    shutil.copy(next((synth_category / "test" / "good").glob("*.png")), folder / "part1.png")
    (folder / "notes.txt").write_text("shift notes")
    r = run_in_process("inspect", fitted_model_path, folder, "--threads", 1)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if "notes.txt" in ln)
    assert ".gif" in line, line
    # a folder with no part's photo at all: the refusal lists .gif too
    (folder / "part1.png").unlink()
    r = run_in_process("inspect", fitted_model_path, folder, "--threads", 1)
    assert r.returncode == 2
    assert "no images found" in r.stderr and ".gif" in r.stderr, r.stderr


def test_train_states_a_tiny_target_as_given(small_line, tmp_path):
    r = run_in_process("train", small_line / "train" / "good", "-o", "m.lgm", "--image-size", 64, "--frr", "1e-9",
                       "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = _flat(r.stdout + r.stderr)
    # "a target false-reject rate of 0.00%" beside "needs 999999999": the target read as none
    assert "target false-reject rate of 0.0000001%" in out, out
    assert "0.00% false-reject rate" not in out and "rate of 0.00%" not in out
    assert "needs 999999999" in out
