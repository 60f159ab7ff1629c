"""The line's camera replaced at night (task H7's walk): what the technician is told to do.

The new camera (same model, a little brighter, 2 px shifted, 1.5x the resolution) was
judged silently, so the steps a plant needs come from two places: the photo alarm's
advice when the check does doubt the photos, and the reference photos a retrain learns,
which still held the old camera's photos beside the new one's.
"""
from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import png_bytes  # noqa: E402
from test_reference_cli import _station  # noqa: E402


def _folder(path: Path, size: int, n: int, seed0: int) -> Path:
    path.mkdir()
    for i in range(n):
        (path / f"p{i}.png").write_bytes(png_bytes(60, size=size, seed=seed0 + i))
    return path


def test_new_cameras_reference_photos_warn_of_the_old_ones_which_go_in_one_command(tmp_path):
    from lineguard.cli.reference import reference_app as app
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.reference import ReferencePhotos
    data = _station(tmp_path)
    old_cam = _folder(tmp_path / "old", 64, 4, 0)
    new_cam = _folder(tmp_path / "new", 96, 3, 100)          # 1.5x the old camera's resolution
    run = CliRunner().invoke
    r = run(app, ["add", "--data", str(data), "--product", "cell", str(old_cam)])
    assert r.exit_code == 0 and "warning" not in r.output, r.output

    r = run(app, ["add", "--data", str(data), "--product", "cell", str(new_cam)])
    assert r.exit_code == 0, r.output
    assert "added 3 reference photo(s) of cell" in r.output
    assert ("warning: these photos are 96 x 96; the 4 kept before are 64 x 64: another camera? "
            "Every retrain learns both.") in r.output
    assert f"lineguard reference remove --data {data} --product cell --size 64x64" in r.output

    # the command the warning gives removes the old camera's photos and only those
    r = run(app, ["remove", "--data", str(data), "--product", "cell", "--size", "64x64"])
    assert r.exit_code == 0, r.output
    assert "removed 4 reference photo(s)" in r.output
    db = Database(StationConfig(data_dir=data).database_url)
    try:
        ref = ReferencePhotos(db, data, 1 << 25, 26_000_000)
        assert ref.sizes("cell") == {(96, 96): 3}
    finally:
        db.dispose()

    # a slip is refused, saying what to give: a typed size, ids beside --product, nothing kept of it
    r = run(app, ["remove", "--data", str(data), "--product", "cell", "--size", "64"])
    assert r.exit_code == 2 and "WIDTHxHEIGHT" in r.output
    r = run(app, ["remove", "--data", str(data), "--product", "cell", "1"])
    assert r.exit_code == 2 and "not both" in r.output
    r = run(app, ["remove", "--data", str(data), "--product", "cell", "--size", "64x64"])
    assert r.exit_code == 2 and "no reference photos of cell of 64x64" in r.output
    r = run(app, ["remove", "--data", str(data), "--size", "96x96"])
    assert r.exit_code == 2 and "give --product too" in r.output


def test_photo_alarm_after_a_camera_change_ends_at_the_station_and_the_test_parts():
    # what the "check the camera" alarm tells the technician for a new camera's photos: the
    # range learnt again on a PC was not yet the station's model, and the shift's red
    # rabbit had been put through with the old camera
    from lineguard.vision import photo_check
    for said in ("photo 384 x 288 (4:3); the model learnt from 256 x 256 (1:1): another camera or its settings "
                 "changed",
                 "too bright: brightness 0.42, allowed 0.207-0.351"):
        advice = photo_check.advice([said])
        assert len(advice) == 1, advice
        assert "Models page" in advice[0] and "test parts" in advice[0], advice[0]
        assert "docs/camera-change.md" in advice[0]
    shape = photo_check.advice(["photo 384 x 288 (4:3); the model learnt from 256 x 256 (1:1): another camera or "
                                "its settings changed"])[0]
    assert "lineguard train" in shape
    # and the procedure it names is there, with the steps the night and the morning need
    doc = Path(__file__).resolve().parents[1] / "docs" / "camera-change.md"
    text = doc.read_text(encoding="utf-8")
    for step in ("recalibrate", "--photo-range", "test parts", "reference remove --data ./station --product cell --size",
                 "photo_doubted", "since="):
        assert step in text, step
