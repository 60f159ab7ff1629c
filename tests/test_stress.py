"""The stress test: sized defects, a blind and an all-seeing model, a real model on the
synthetic line, the report, and `lineguard stress` / `lineguard info` end to end."""
from __future__ import annotations

import json
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_in_process

from lineguard.vision.sized_defects import NOMINAL_CONTRAST, STRESS_KINDS, paint_sized_defect
from lineguard.vision.result import InspectionResult, Verdict
from lineguard.vision.synth import make_part


def _good(n: int = 6, size: int = 128) -> list[np.ndarray]:
    return [make_part(s, size)[0] for s in range(n)]


class _Fake:
    """A stand-in model: ``judge(image) -> "OK" | "NG"``, no review band."""

    threshold = 1.0
    review_threshold = 1.0

    def __init__(self, judge):
        self.judge = judge

    def inspect_batch(self, images, **_):
        out = []
        for im in images:
            v = Verdict(self.judge(im))
            out.append(InspectionResult(verdict=v, score=2.0 if v is Verdict.NG else 0.0, threshold=1.0,
                                        pixel_threshold=1.0, anomaly_map=np.zeros(im.shape[:2], np.float32)))
        return out

    def inspect(self, image):
        return self.inspect_batch([image])[0]


# --------------------------------------------------------------------------- painter


@pytest.mark.parametrize("kind", STRESS_KINDS)
def test_painted_area_grows_with_size_and_only_the_mask_changes(kind):
    img = _good(1)[0]
    areas = []
    for size in (4, 12, 36):
        out, mask = paint_sized_defect(img, kind, size, NOMINAL_CONTRAST[kind], np.random.default_rng(1))
        changed = (out != img).any(axis=2)
        assert np.array_equal(changed, mask > 0)
        areas.append(int(changed.sum()))
    assert areas[0] < areas[1] < areas[2]


def test_contrast_sets_the_grey_level_change():
    img = np.full((96, 96, 3), 120, np.uint8)
    for contrast in (10.0, 40.0):
        out, mask = paint_sized_defect(img, "spot", 20, contrast, np.random.default_rng(0))
        change = np.abs(out.astype(float) - img).mean(axis=2)
        assert change.max() == pytest.approx(contrast, abs=1.0)


def test_spot_diameter_is_the_size_asked_for():
    img = np.full((96, 96, 3), 120, np.uint8)
    _, mask = paint_sized_defect(img, "spot", 30, 40, np.random.default_rng(0))
    ys, xs = np.nonzero(mask)
    assert xs.max() - xs.min() + 1 == pytest.approx(30, abs=2)
    assert ys.max() - ys.min() + 1 == pytest.approx(30, abs=2)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(kind="dent"), "unknown defect kind"),
    (dict(size_px=0.2), "at least"),
    (dict(size_px=500), "does not fit"),
    (dict(contrast=0), "contrast"),
])
def test_painter_refuses_bad_requests(kwargs, msg):
    args = dict(image=_good(1)[0], kind="spot", size_px=10, contrast=20, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        paint_sized_defect(**args)


# --------------------------------------------------------------------------- studies


def test_a_blind_model_reaches_no_a90():
    from lineguard.vision.stress import run_stress
    study = run_stress(_Fake(lambda im: "OK"), _good(), per_kind=12, seed=0)
    assert study["false_reject_rate"] == 0.0
    for kind, e in study["kinds"].items():
        assert e["size"]["status"] == "blind"
        assert e["size"]["a90"] is None and e["size"]["a90_95"] is None
        assert "never caught" in e["sentence"]


def test_a_model_that_sees_everything_gets_a_small_a90():
    from lineguard.vision.stress import run_stress
    good = _good()
    seen = {im.tobytes() for im in good}
    # Flags any part that differs from a known good one: it finds every painted defect.
    study = run_stress(_Fake(lambda im: "OK" if im.tobytes() in seen else "NG"), good, per_kind=40, seed=0)
    for kind, e in study["kinds"].items():
        fit = e["size"]
        assert fit["status"] == "all_found" and fit["hits"] == fit["n"] == 30
        # 30 in a row (>= 29): found 90% of the time with 95% confidence from the smallest painted.
        assert fit["a90_95"] == pytest.approx(fit["size_min"])
        assert fit["a90_95"] < 0.1 * 128      # a tenth of the photo: painted sizes reach 0.6 of it
        assert "Every one" in e["sentence"]


def test_false_rejects_on_unpainted_parts_are_counted():
    from lineguard.vision.stress import run_stress
    good = _good(4)
    first = good[0].tobytes()
    study = run_stress(_Fake(lambda im: "NG" if im.tobytes() == first else "OK"), good, per_kind=8,
                       kinds=["spot"], sources=[f"g{i}.png" for i in range(4)])
    assert study["false_rejects"] == 1 and study["false_reject_rate"] == 0.25
    assert study["false_reject_parts"] == ["g0.png"]


def test_a_real_model_gives_curves_that_rise_with_size(fitted_inspector, synth_category):
    """PatchCore on the synthetic line: larger defects are caught at least as often, and
    every fitted curve rises."""
    from lineguard.vision.imageio import list_images, load_image
    from lineguard.vision.pod import PodFit, pod_curve
    from lineguard.vision.stress import run_stress
    good = [load_image(p) for p in list_images(synth_category / "test" / "good")]
    study = run_stress(fitted_inspector, good, kinds=["spot", "scratch", "missing_material"], per_kind=24, seed=1)
    for kind, e in study["kinds"].items():
        rows = sorted((r for r in e["parts"] if r[0] == "size"), key=lambda r: r[2])
        third = len(rows) // 3
        small = np.mean([r[4] == "NG" for r in rows[:third]])
        large = np.mean([r[4] == "NG" for r in rows[-third:]])
        assert large >= small, kind
        assert large > 0.5, kind           # obvious defects on this line are caught
        fit = e["size"]
        if fit["status"] == "fit":
            f = PodFit(**{k: fit[k] for k in PodFit.__dataclass_fields__})
            assert f.b1 > 0
            assert np.all(np.diff(pod_curve(f, np.geomspace(fit["size_min"], fit["size_max"], 50))) > 0)


def test_plan_is_reproducible_and_covers_both_series():
    from lineguard.vision.stress import plan_stress
    shapes = [(100, 140), (120, 90)]
    a = plan_stress(shapes, ["crack"], per_kind=20, seed=3)
    assert a == plan_stress(shapes, ["crack"], per_kind=20, seed=3)
    assert a != plan_stress(shapes, ["crack"], per_kind=20, seed=4)
    assert sum(p.series == "size" for p in a) == 15 and sum(p.series == "contrast" for p in a) == 5
    assert all(p.size_px <= 0.9 * min(shapes[p.base]) for p in a)
    with pytest.raises(ValueError, match="unknown defect kind"):
        plan_stress(shapes, ["dent"])
    with pytest.raises(ValueError, match="per_kind"):
        plan_stress(shapes, ["crack"], per_kind=2)


def test_report_files(tmp_path):
    from lineguard.vision.stress import run_stress
    from lineguard.vision.stress_report import write_stress_report
    good = _good(4)
    seen = {im.tobytes() for im in good}
    fake = _Fake(lambda im: "OK" if im.tobytes() in seen else "NG")
    study = run_stress(fake, good, kinds=["spot", "crack"], per_kind=8, mm_per_px=0.05)
    index = write_stress_report(tmp_path / "r", study, fake, good)
    page = index.read_text()
    assert "spot" in page and "crack" in page and "mm" in page
    assert "http://" not in page and "https://" not in page       # nothing from a CDN
    pod = json.loads((tmp_path / "r" / "pod.json").read_text())
    assert set(pod["kinds"]) == {"spot", "crack"} and pod["mm_per_px"] == 0.05
    assert (tmp_path / "r" / "pod_spot.png").stat().st_size > 1000
    assert len(list((tmp_path / "r" / "examples").glob("spot_*.png"))) == 3
    assert not list((tmp_path / "r").rglob("*.tmp"))
    # a later study of spots alone into the same folder: crack's plot from before does not stay
    # beside it as if it were this study's
    again = run_stress(fake, good, kinds=["spot"], per_kind=8)
    write_stress_report(tmp_path / "r", again, fake, good)
    assert sorted(p.name for p in (tmp_path / "r").glob("pod_*.png")) == ["pod_spot.png"]


# --------------------------------------------------------------------------- CLI


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_in_process(*args, cwd=cwd)     # tests/cli_runner.py: the verb in this process


def test_cli_stress_then_info(fitted_model_path, synth_category, tmp_path):
    pytest.importorskip("torch")
    model = tmp_path / "cell.lgm"
    model.write_bytes(fitted_model_path.read_bytes())       # the summary lands beside it
    r = _cli("stress", model, synth_category / "test" / "good", "-o", "report", "--per-kind", 8,
             "--kinds", "spot,scratch", "--mm-per-px", 0.1, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "spot:" in r.stdout and "scratch:" in r.stdout and "report written" in r.stdout
    # 10 good photos: under 30, said so; and what the reject threshold was set for
    assert "warning:" in r.stderr and "independent" in r.stderr
    assert "false-reject target of" in r.stdout
    report = tmp_path / "report"
    pod = json.loads((report / "pod.json").read_text())
    assert set(pod["kinds"]) == {"spot", "scratch"} and pod["n_good"] == 10
    assert all(len(e["parts"]) == 8 for e in pod["kinds"].values())
    assert (report / "index.html").is_file() and (report / "pod_spot.png").is_file()
    stored = tmp_path / "cell.lgm.pod.json"
    assert stored.is_file()
    r = _cli("info", model, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["stress_test"]["matches_model"] is True
    assert set(info["stress_test"]["kinds"]) == {"spot", "scratch"}
    # The same summary read from a report's pod.json, for a model that has none beside it.
    stored.unlink()
    r = _cli("info", model, "--pod", report / "pod.json", cwd=tmp_path)
    assert r.returncode == 0 and "stress_test" in json.loads(r.stdout)
    r = _cli("info", model, cwd=tmp_path)
    assert "stress_test" not in json.loads(r.stdout)


@pytest.mark.parametrize("extra, msg", [
    (["--kinds", "dent"], "unknown defect kind"),
    (["--per-kind", "2"], "--per-kind must be at least 4"),
    (["--mm-per-px", "-1"], "--mm-per-px must be a positive"),
])
def test_cli_stress_refuses_bad_input(fitted_model_path, synth_category, tmp_path, extra, msg):
    r = _cli("stress", fitted_model_path, synth_category / "test" / "good", "-o", "report", *extra, cwd=tmp_path)
    assert r.returncode == 2 and msg in r.stderr
    assert not (tmp_path / "report").exists()


def test_cli_info_refuses_a_file_that_is_not_a_summary(fitted_model_path, tmp_path):
    bogus = tmp_path / "x.json"
    bogus.write_text('{"hello": 1}')
    r = _cli("info", fitted_model_path, "--pod", bogus, cwd=tmp_path)
    assert r.returncode == 2 and "not a stress-test summary" in r.stderr


def test_contrast_series_is_painted_at_the_size_series_a90():
    from lineguard.vision.stress import run_stress
    good = _good(4)
    flat = [g.astype(np.int16) for g in good]

    def judge(im):
        # Catches a defect once enough pixels changed, give or take a factor drawn per
        # part: detection grows with size but is not a clean step, so a curve is fitted.
        changed = min(int((np.abs(im.astype(np.int16) - g) > 8).any(axis=2).sum()) for g in flat)
        noise = np.random.default_rng(zlib.crc32(im.tobytes())).lognormal(0.0, 0.5)
        return "NG" if changed * noise > 40 else "OK"
    study = run_stress(_Fake(judge), good, kinds=["spot", "contamination"], per_kind=60, seed=2)
    for kind, e in study["kinds"].items():
        fit = e["size"]
        assert fit["status"] == "fit" and fit["a90_reached"], kind
        sizes = {r[2] for r in e["parts"] if r[0] == "contrast"}
        assert sizes == {round(min(fit["a90"], 0.9 * 128), 2)}, kind


def test_a50_and_a90_below_the_smallest_painted_are_said_not_measured():
    """A user's crack study: every crack from 3.6 px up caught but 2 of 30, so the fitted
    curve put a50 at 0.005 px and a90 at 2.85 px, below every size painted. The sentence
    stated them as sizes; they are the curve's tail and must be said to be not measured."""
    from lineguard.vision.pod import fit_pod
    from lineguard.vision.stress import _summary, kind_sentence
    sizes = np.geomspace(3.6, 60, 30)
    fit = _summary(fit_pod(sizes, [i not in (5, 20) for i in range(30)]), 0.05)
    assert fit["status"] == "fit" and fit["a50"] < fit["a90"] < fit["size_min"] == pytest.approx(3.6)
    assert fit["a50_below_painted"] and fit["a90_below_painted"] and not fit["a90_95_below_painted"]
    assert any("below the smallest size painted (3.6 px)" in n for n in fit["notes"])
    s = kind_sentence("crack", fit, 0.05, 40)
    assert "below the smallest crack painted (0.18 mm (3.6 px)): not measured" in s
    assert f"{fit['a50']:.3g}" not in s and f"{fit['a90']:.3g}" not in s and "9 in 10 are caught;" not in s
    assert "28 of the 30 painted were caught" in s
    # only a50 below: a50 not stated as a size, a90 (measured) still is
    fit = _summary(fit_pod(sizes, [i not in (0, 10) for i in range(30)]), None)
    assert fit["a50_below_painted"] and not fit["a90_below_painted"]
    s = kind_sentence("spot", fit, None, 40)
    assert "usually pass at 40 grey levels of contrast lies below the smallest spot painted (3.6 px): not measured" in s
    assert f"from {fit['a90']:.3g} px 9 in 10 are caught" in s and f"{fit['a50']:.3g}" not in s
    # inside the painted range nothing changes
    fit = _summary(fit_pod(sizes, [i >= 12 or i in (3, 8) for i in range(30)]), None)
    assert fit["a50"] > fit["size_min"] and not fit["a50_below_painted"]
    assert "not measured" not in kind_sentence("spot", fit, None, 40)


def test_a_study_with_a90_below_the_painted_range_says_so_in_pod_json_and_the_page(tmp_path):
    """End to end: the same flags and words in the sentence, pod.json and index.html, and the
    contrast series painted at the smallest size painted, not at the unmeasured a90."""
    from lineguard.vision.stress import paint_part, plan_stress, run_stress
    from lineguard.vision.stress_report import write_stress_report
    good = _good(4)
    plan = [p for p in plan_stress([g.shape[:2] for g in good], ["crack"], per_kind=40, seed=0)
            if p.series == "size"]
    by_size = sorted(plan, key=lambda p: p.size_px)
    missed = {paint_part(good, by_size[i], 0)[0].tobytes() for i in (5, 20)}
    seen = {im.tobytes() for im in good}
    fake = _Fake(lambda im: "OK" if im.tobytes() in seen or im.tobytes() in missed else "NG")
    study = run_stress(fake, good, kinds=["crack"], per_kind=40, seed=0, mm_per_px=0.05)
    e = study["kinds"]["crack"]
    fit = e["size"]
    assert fit["status"] == "fit" and fit["hits"] == 28 and fit["a90"] < fit["size_min"]
    assert fit["a50_below_painted"] and fit["a90_below_painted"]
    small = f"below the smallest crack painted ({fit['size_min'] * 0.05:.3g} mm ({fit['size_min']:.3g} px))"
    assert small + ": not measured" in e["sentence"]
    assert {r[2] for r in e["parts"] if r[0] == "contrast"} == {round(fit["size_min"], 2)}
    index = write_stress_report(tmp_path / "r", study, fake, good)
    pod = json.loads((tmp_path / "r" / "pod.json").read_text())["kinds"]["crack"]
    assert pod["size"]["a90_below_painted"] is True and pod["sentence"] == e["sentence"]
    note = next(n for n in pod["size"]["notes"] if "below the smallest size painted" in n)
    page = index.read_text()
    assert "not measured" in page and note in page
    # the table's a50 and a90 cells too, not the curve's tail as sizes
    row = page[page.index("<tr><td>crack</td>"):]
    row = row[:row.index("</tr>")]
    assert row.count("painted: not measured") == 2, row
    # and the summary `lineguard info` shows beside the model
    from lineguard.cli.stress import pod_summary
    assert pod_summary(study)["kinds"]["crack"]["a90_below_painted"] is True


def test_an_a50_beyond_the_largest_size_painted_is_flagged_like_a90():
    """A scratch study with 1 of 45 found: the fit put a50 at 8,630 px for scratches painted up
    to 180 px, and the table, pod.json and `info` showed it as a plain size."""
    from lineguard.cli.stress import pod_summary
    from lineguard.vision.pod import fit_pod
    from lineguard.vision.stress import _summary
    from lineguard.vision.stress_report import _fit_cells
    sizes = np.geomspace(5, 180, 45)
    fit = _summary(fit_pod(sizes, [i in (30, 44) for i in range(45)]), None)
    assert fit["status"] == "fit" and fit["a50"] > fit["size_max"], fit
    assert fit["a50_reached"] is False and fit["a90_reached"] is False
    cells = _fit_cells(fit, None)
    assert cells.count("(beyond sizes painted)") >= 2, cells
    study = {"kinds": {"scratch": {"sentence": "s", "size_means": {}, "nominal_contrast": 40, "size": fit}},
             "n_good": 40, "per_kind": 45, "seed": 0, "false_reject_rate": 0.0}
    assert pod_summary(study)["kinds"]["scratch"]["a50_reached"] is False


def test_cli_stress_leaves_out_the_photos_the_model_learned_from(fitted_model_path, synth_category, tmp_path):
    """On its own 100 training tiles a model's stress test said 0% false rejects and 0%
    review (1.0% and 7.3% on new parts) with no warning: they are left out, counted and
    said, as recalibrate does, and a folder of nothing else is refused."""
    pytest.importorskip("torch")
    train = sorted((synth_category / "train" / "good").glob("*.png"))
    r = _cli("stress", fitted_model_path, synth_category / "train" / "good", "-o", "report", "--per-kind", 4,
             "--kinds", "spot", "--threads", 1, "--no-store", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"all {len(train)} readable photos are photos this model learned from" in " ".join(r.stderr.split())
    assert not (tmp_path / "report").exists()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in train[:3] + sorted((synth_category / "test" / "good").glob("*.png")):
        (mixed / (f.parent.parent.name + "_" + f.name)).write_bytes(f.read_bytes())
    r = _cli("stress", fitted_model_path, mixed, "-o", "report", "--per-kind", 4, "--kinds", "spot",
             "--threads", 1, "--no-store", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "left out: 3 photo(s) the model learned from" in " ".join(r.stderr.split())
    assert r.stdout.startswith("10 good parts")
    pod = json.loads((tmp_path / "report" / "pod.json").read_text())
    assert pod["n_good"] == 10 and pod["learnt_left_out"]["count"] == 3
    assert all(n.startswith(str(mixed / "train_")) for n in pod["learnt_left_out"]["images"])


class _Doubting(_Fake):
    """Sees every painted defect (NG), but its photo check doubts the photos in ``odd``: REVIEW
    whatever their score, as Inspector._result makes them."""

    def __init__(self, clean, odd):
        super().__init__(lambda im: "OK" if im.tobytes() in clean else "NG")
        self.odd = odd

    def inspect_batch(self, images, **_):
        out = super().inspect_batch(images)
        for im, r in zip(images, out):
            if any(np.array_equal(im[:8, :8], o[:8, :8]) for o in self.odd):   # painted or not: the same photo
                r.verdict, r.photo_issues = Verdict.REVIEW, ["colour: unlike the good photos"]
        return out


def test_photos_the_photo_check_doubts_are_left_out_not_counted_as_misses():
    """A folder of photos the photo check doubts: each painted part was REVIEW whatever its
    score, counted as missed, and every kind read "never caught" (a walk: 72 of 72 painted
    parts scored above the threshold)."""
    from lineguard.vision.stress import run_stress
    good = _good(8)
    clean = {g.tobytes() for g in good}
    study = run_stress(_Doubting(clean, good[:3]), good, per_kind=12, kinds=["spot"], seed=0)
    assert study["left_out_photos"] == {"ng": 3, "ng_or_review": 3, "photo_doubted": 3}
    fit = study["kinds"]["spot"]["size"]
    assert fit["left_out_photos"] == 3 and "REVIEW for the photo itself" in " ".join(fit["notes"])
    assert all(r[4] == "NG" for r in study["kinds"]["spot"]["parts"]), "no part painted on a doubted photo"
    with pytest.raises(ValueError, match="8 of the 8 good photos are unlike the model's good photos"):
        run_stress(_Doubting(clean, good), good, per_kind=12, kinds=["spot"], seed=0)


def test_an_a90_95_far_beyond_the_sizes_painted_is_not_said_as_a_size():
    """"9 in 10 with 95% confidence only from 1.58e+04 px" was said of 128 px photos."""
    from lineguard.vision.stress import kind_sentence
    fit = {"status": "fit", "n": 30, "hits": 18, "size_min": 3.0, "size_max": 40.0, "a50": 8.0, "a90": 30.0,
           "a90_95": 15800.0, "a50_reached": True, "a90_reached": True, "a90_95_reached": False,
           "all_found_from": None}
    s = kind_sentence("spot", fit, None, 40)
    assert "1.58e+04" not in s, s
    assert "only far beyond the sizes painted (over 10 times the largest, 40 px): paint more" in s, s
    fit["a90_95"] = 55.0          # beyond, but near: still said as the size it is
    assert "only from 55 px, beyond the sizes painted" in kind_sentence("spot", fit, None, 40)
