"""The photo check's range is said the same way everywhere: the range the check uses.

`lineguard train` printed `contrast 0.00942-0.145` (the range a photo must be in, margins
included) while a part at the station read `too much contrast: contrast 0.148, good photos
0.0434-0.111` (the good photos' 1st-99th percentiles): two ranges for one check, and a
person could not tell which one sent the part to REVIEW. A photo left out of the range as
odd was not said beside it either. The hot folder's line for such a part read
`P-0009.png REVIEW score=23.42` with no reason.
"""
from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from cli_runner import run_in_process
from PIL import Image

from lineguard.vision import photo_check


def _flat(text: str) -> str:
    return " ".join(text.split())


def _said_range(pr: dict) -> dict[str, str]:
    """The stored range (what the check compares with) per measure, to 3 digits."""
    out = {m: f"{pr[m][0]:.3g}-{pr[m][1]:.3g}" for m in ("brightness", "contrast")}
    out["focus"] = f"at least {pr['focus'][0]:.3g}"
    return out


def _dim(path, k=0.4):
    return (np.asarray(Image.open(path).convert("RGB")).astype(np.float32) * k).astype(np.uint8)


def test_train_prints_the_range_the_check_uses_and_a_doubted_part_names_the_same(synth_category, tmp_path):
    pytest.importorskip("torch")
    from lineguard.vision.inspector import Inspector
    good = tmp_path / "good"
    good.mkdir()
    for f in sorted((synth_category / "train" / "good").glob("*.png")):
        (good / f.name).write_bytes(f.read_bytes())
    odd = good / "005.png"
    Image.fromarray(_dim(odd, 0.3)).save(odd)          # a lamp that flickered for one shot
    r = run_in_process("train", good, "-o", "cell.lgm", "--image-size", "128", "--frr", "0.1", "--threads", "1",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    pr = Inspector.load(tmp_path / "cell.lgm").info["photo_range"]
    assert pr["left_out"] == 1 and pr["n"] == 39
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("photo check:")]
    said = _said_range(pr)
    # exactly the stored range, in the measures' order, and the odd photo said beside it
    assert line.startswith(f"photo check: brightness {said['brightness']}, contrast {said['contrast']}, "
                           f"focus {said['focus']} (the range of 39 good photos with a margin; 1 good photo unlike "
                           "the others left out of it, named under 'look at')"), line
    # as the station judges it: REVIEW whatever its score (it said "if its score passes")
    assert line.endswith("a photo outside it goes to REVIEW whatever its score (a person looks)"), line
    assert f"look at: {odd}: the photo is unlike the other good photos" in _flat(r.stderr)

    # a part whose photo is outside it: its message names the numbers training printed
    dim = tmp_path / "dim.png"
    Image.fromarray(_dim(sorted((synth_category / "test" / "good").glob("*.png"))[0])).save(dim)
    r = run_in_process("inspect", tmp_path / "cell.lgm", dim, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"photo: too dark: brightness ([0-9.]+), allowed (\S+?)(;|$|\s)", r.stdout, re.M)
    assert m, r.stdout
    assert float(m.group(1)) < pr["brightness"][0] and m.group(2) == said["brightness"], r.stdout
    assert "good photos" not in r.stdout


def _range(**over):
    pr = {"n": 40, "left_out": 0, "focus_at": "blocks", "brightness": [0.3, 0.6, 0.4, 0.5],
          "contrast": [0.0, 0.5, 0.1, 0.2], "focus": [0.0, None, 0.5, 0.9]}
    pr.update(over)
    return pr


def test_a_part_message_names_the_bound_it_crossed_with_digits_enough_to_tell_them_apart():
    flat = np.full((64, 64, 3), 36, np.uint8)          # brightness 36/255 = 0.141176
    v = photo_check.measure(flat)["brightness"]
    pr = _range(brightness=[0.14119, 0.349, 0.194, 0.297])
    (issue,) = photo_check.issues(flat, pr)[1]
    # to 3 digits both read 0.141: "brightness 0.141, allowed 0.141-0.349" is a photo inside
    assert issue == "too dark: brightness 0.14118, allowed 0.14119-0.349", (v, issue)
    assert photo_check.range_said(pr) == "brightness 0.141-0.349, contrast 0-0.5, focus at least 0"
    # and the far side of a range, and focus (no upper bound): the range as training says it
    bright = np.full((64, 64, 3), 250, np.uint8)
    (issue,) = photo_check.issues(bright, _range())[1]
    assert issue == "too bright: brightness 0.98, allowed 0.3-0.6"
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    blurred = [w for w in photo_check.issues(noisy, _range(brightness=[0, 1, 0, 1], focus=[9.0, None, 15.0, 20.0]))[1]
               if w.startswith("blurred")]
    assert len(blurred) == 1 and blurred[0].endswith(", allowed at least 9"), blurred


def test_the_hot_folder_line_of_a_part_says_what_is_off_about_its_photo(tmp_path, fitted_model_path,
                                                                        synth_category, monkeypatch):
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line.config import StationConfig
    from lineguard.line.sources.folder import FolderWatcher
    from lineguard.line.station import Station
    from lineguard.vision.inspector import Inspector
    data = tmp_path / "data"
    st = Station(StationConfig(data_dir=data, min_free_gb=0))
    st.ensure_model(fitted_model_path, "cell")
    st.close()
    inbox = tmp_path / "in"
    inbox.mkdir()
    good = sorted((synth_category / "test" / "good").glob("*.png"))[0]
    (inbox / "P-0008.png").write_bytes(good.read_bytes())
    Image.fromarray(_dim(good)).save(inbox / "P-0009.png")         # the lamp gone dim
    run = FolderWatcher.run

    def run_until_both_taken(self, stop_after=None):
        # stops once both files are judged (or after a minute), as Ctrl-C would
        def stop_when_done():
            deadline = time.monotonic() + 60
            while self.counts["done"] + self.counts["failed"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stop()
        threading.Thread(target=stop_when_done, daemon=True).start()
        run(self, stop_after=90)

    monkeypatch.setattr(FolderWatcher, "run", run_until_both_taken)
    r = CliRunner().invoke(app, ["watch", str(inbox), "--line", "L1", "--product", "cell", "--data", str(data),
                                 "--settle", "0.05", "--poll", "0.05", "--min-free-gb", "0"])
    assert r.exit_code == 0, r.output
    lines = {x.split("\t")[0]: x for x in r.stdout.splitlines() if x.startswith("P-")}
    assert set(lines) == {"P-0008.png", "P-0009.png"}, r.output
    lo, hi = Inspector.load(fitted_model_path).info["photo_range"]["brightness"][:2]
    fields = lines["P-0009.png"].split("\t")
    assert fields[1] != "OK" and fields[2].startswith("score=") and fields[3].startswith("id="), fields
    # every issue, each as the part's record has it, the range as training printed it
    assert re.match(rf"photo: too dark: brightness [0-9.]+, allowed {lo:.3g}-{hi:.3g}(; |$)", fields[4]), fields
    # a part judged on its score keeps the line it had
    assert len(lines["P-0008.png"].split("\t")) == 4 and "photo" not in lines["P-0008.png"], lines


def test_the_cameras_line_of_a_part_says_what_is_off_about_its_photo(tmp_path, monkeypatch):
    """The camera printed name, verdict, score and id only, as watch did: a REVIEW from a dim
    lamp read like the model's doubt."""
    cv2 = pytest.importorskip("cv2")
    from click.testing import CliRunner

    import lineguard.cli.station as station_cli
    from lineguard.cli import app
    video = tmp_path / "line.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 2.0, (96, 80))
    for _ in range(2):
        vw.write(np.full((80, 96, 3), 30, np.uint8))
    vw.release()
    issues = iter([[], ["too dark: brightness 0.107, allowed 0.21-0.347"]])

    def submit(image, part_id, name):
        return {"part_id": part_id, "verdict": "REVIEW", "score": 0.1, "id": 1, "photo_issues": next(issues)}
    monkeypatch.setattr(station_cli, "_submitter", lambda *a, **k: (submit, None))
    r = CliRunner().invoke(app, ["camera", "--source", str(video), "--line", "L1", "--product", "cell",
                                 "--data", str(tmp_path)])
    assert r.exit_code == 0, r.output
    first, second = [x.split("\t") for x in r.stdout.splitlines() if "\tREVIEW\t" in x]
    assert len(first) == 4, first
    assert second[4] == "photo: too dark: brightness 0.107, allowed 0.21-0.347", second
