"""`lineguard reference add|list|remove` on a station's folder (line.reference)."""
from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import png_bytes  # noqa: E402


def _station(tmp_path: Path) -> Path:
    from lineguard.line.db import Database
    data = tmp_path / "station"
    data.mkdir()
    db = Database(f"sqlite:///{data / 'lineguard.db'}")
    db.upgrade()
    from lineguard.line.orm import Inspection  # noqa: F401  (the station's tables are there)
    db.dispose()
    return data


def test_reference_add_keeps_a_folder_of_good_photos_once_and_refuses_a_bad_one_whole(tmp_path):
    # the group itself: registered under `lineguard reference` by lineguard.cli
    from lineguard.cli.reference import reference_app as app
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.reference import ReferencePhotos
    data = _station(tmp_path)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(4):
        (good / f"g{i}.png").write_bytes(png_bytes(45, seed=i))
    (good / "notes.txt").write_text("not a photo: skipped by its suffix")
    run = CliRunner().invoke
    r = run(app, ["add", "--data", str(data), "--product", "cell", str(good)])
    assert r.exit_code == 0, r.output
    assert "added 4 reference photo(s) of cell" in r.output
    r = run(app, ["add", "--data", str(data), "--product", "cell", str(good / "g0.png")])
    assert r.exit_code == 0 and "added 0" in r.output and "1 there already" in r.output

    (good / "g9.png").write_bytes(png_bytes(45, seed=9)[:50])     # cut short by a copy
    r = run(app, ["add", "--data", str(data), "--product", "other", str(good)])
    assert r.exit_code == 2 and "g9.png" in r.output and "nothing was added" in r.output

    r = run(app, ["list", "--data", str(data)])
    assert r.exit_code == 0 and "4 reference photo(s)" in r.output and "other" not in r.output
    db = Database(StationConfig(data_dir=data).database_url)
    try:
        ref = ReferencePhotos(db, data, 1 << 25, 26_000_000)
        assert ref.count("cell") == 4 and len(ref.for_training("cell")) == 4
        first = ref.list("cell")[0]
        r = run(app, ["remove", "--data", str(data), str(first["id"])])
        assert r.exit_code == 0, r.output
        assert ref.count("cell") == 3
    finally:
        db.dispose()


def test_reference_add_refuses_a_line_no_part_can_carry(tmp_path):
    from lineguard.cli.reference import reference_app as app
    data = _station(tmp_path)
    photo = tmp_path / "g.png"
    photo.write_bytes(png_bytes(45, seed=1))
    r = CliRunner().invoke(app, ["add", "--data", str(data), "--product", "cell", "--line", "L" * 101, str(photo)])
    # refused before any photo is read (it was exit 1, "0 added before it", at the first add)
    assert r.exit_code == 2, r.output
    assert "the line is at most 100 characters" in r.output and "nothing was added" in r.output, r.output
    assert "added before it" not in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["add", "--data", str(data), "--product", "c" * 101, str(photo)])
    assert r.exit_code == 2 and "the product is at most 100 characters" in r.output, r.output
    r = CliRunner().invoke(app, ["list", "--data", str(data)])
    assert "no reference photos" in r.output


def test_backup_names_reference_photos_missing_and_restore_says_they_were_lost(tmp_path):
    from lineguard.cli.reference import reference_app as app
    from lineguard.cli.station import backup, restore
    data = _station(tmp_path)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        (good / f"g{i}.png").write_bytes(png_bytes(45, seed=i))
    run = CliRunner().invoke
    assert run(app, ["add", "--data", str(data), "--product", "cell", str(good)]).exit_code == 0
    files = sorted((data / "reference").glob("??/??/*"))
    assert len(files) == 3
    files[0].unlink()              # gone from the data folder (a disk cleaned by hand)
    key = files[0].relative_to(data / "reference").as_posix()
    dest = tmp_path / "backup"
    r = run(backup, ["--data", str(data), "--to", str(dest)])
    assert r.exit_code == 0, r.output
    assert "reference photos: 2 copied" in r.output
    assert "1 reference photo(s) of good parts are missing" in r.output and key in r.output
    assert "lineguard reference remove" in r.output
    r = run(restore, ["--from", str(dest), "--data", str(tmp_path / "new")])
    assert r.exit_code == 1, r.output
    assert "reference photo(s) lost: 1 (their rows dropped: add them again" in r.output


def test_reference_add_refuses_a_slip_of_a_known_product_unless_said_new(tmp_path):
    """`--product Cell` or `cel` beside cell kept photos no retrain of cell would learn, exit 0."""
    from lineguard.cli.reference import reference_app as app
    data = _station(tmp_path)
    photo = tmp_path / "g.png"
    photo.write_bytes(png_bytes(45, seed=1))
    run = CliRunner().invoke
    assert run(app, ["add", "--data", str(data), "--product", "cell", str(photo)]).exit_code == 0
    for slip in ("Cell", "cel", "celll", "cells"):
        r = run(app, ["add", "--data", str(data), "--product", slip, str(photo)])
        assert r.exit_code == 2, (slip, r.output)
        assert "did you mean 'cell'?" in r.output and "--new-product" in r.output and "nothing was added" in r.output
    r = run(app, ["list", "--data", str(data)])
    assert "1 reference photo(s)" in r.output, r.output
    # a sibling's name is a new product, said; a slip said new is taken
    r = run(app, ["add", "--data", str(data), "--product", "cell-b", str(photo)])
    assert r.exit_code == 0 and "new product 'cell-b'" in r.output and "also knows: cell" in r.output, r.output
    r = run(app, ["add", "--data", str(data), "--product", "Cell", "--new-product", str(photo)])
    assert r.exit_code == 0 and "added 1 reference photo(s) of Cell" in r.output, r.output
