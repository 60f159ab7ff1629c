"""What a second walk through backups and restores found in their words and counts.

- a photo two parts share was counted "already there" in a first backup into an empty
  folder, and read back twice by --verify ("read back 569 files" of a folder of 560);
- a part whose image was lost still had its map copied, by a backup and by a restore,
  into a folder where no record named it;
- a restore said a damaged model version was damaged, not that it was the active one,
  whose every part the station then refuses;
- a backup copied without its dot-files was "a station's folder", with nothing said of the
  marker to put back; `restore --check --data X` told the user to give one of the two;
- "1 parts", "1 model versions".
"""
from __future__ import annotations

import os
import shutil
import sqlite3

from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.backup import backup_station
from lineguard.line.restore import check_backup, restore_station
from lineguard.line.station import Part

from .conftest import png_bytes
from .test_backup import _inspect


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _files(folder, store="images"):
    return {p for p in (folder / store).rglob("*") if p.is_file() and ".staging" not in p.parts}


def test_a_photo_two_parts_share_is_one_file_copied_and_read_back_once(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    same = png_bytes(200, seed=7)
    for i in range(3):                         # the same bytes sent for three parts
        st.inspect(same, Part(f"p{i}", "L1", "S1", "cell"))
    st.maps.flush()
    dest = tmp_path / "bk"
    report = backup_station(st.config.data_dir, dest)
    assert report.files_there == 0, report
    assert report.files_copied == len(_files(dest)) + 1          # and the model
    again = backup_station(st.config.data_dir, dest, verify=True)
    assert again.verified == len(_files(dest)) + 1 == again.files_there
    r = _run(["backup", "--data", st.config.data_dir, "--to", dest, "--verify"])
    assert r.exit_code == 0, r.output
    assert f"read back {len(_files(dest)) + 1} files the backup held" in r.output, r.output


def test_the_maps_of_a_part_whose_image_is_lost_are_neither_backed_up_nor_restored(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    ids = _inspect(st, 4)
    lost = next(st.get(i) for i in ids if st.get(i).heatmap_key)
    os.unlink(st.images.path(lost.image_key))          # the disk keeper deleted it meanwhile
    dest = tmp_path / "bk"
    assert backup_station(st.config.data_dir, dest).gone == 1
    assert not (dest / "images" / lost.heatmap_key).exists()
    # in the backup: the image lost there, its map still whole
    st2_ids = _inspect(st, 2, start=10)
    part = next(st.get(i) for i in st2_ids if st.get(i).heatmap_key)
    backup_station(st.config.data_dir, dest)
    os.unlink(dest / "images" / part.image_key)
    report = restore_station(dest, tmp_path / "back")
    assert report.parts_without_image == 1
    with sqlite3.connect(tmp_path / "back" / "lineguard.db") as db:
        named = {k for row in db.execute("SELECT image_key, heatmap_key, overlay_key FROM inspections")
                 for k in row if k}
    assert {str(p.relative_to(tmp_path / "back" / "images")) for p in _files(tmp_path / "back")} == named


def test_a_restore_says_which_damaged_model_is_the_active_one(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 1)
    dest = tmp_path / "bk"
    backup_station(st.config.data_dir, dest)
    (model,) = _files(dest, "models")
    model.unlink()
    report = check_backup(dest)
    assert report.models_damaged == report.models_damaged_active == ["cell v1"]
    r = _run(["restore", "--from", dest, "--data", tmp_path / "back"])
    assert r.exit_code == 1
    assert "cell v1 is the active model" in r.output and "serve --model" in r.output, r.output
    assert "checked" not in r.output.split("\n")[0] and "1 part," in r.output and "1 model version," in r.output


def test_a_backup_copied_without_its_dot_files_is_still_read_and_said_so(sqlite_station, tmp_path):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 2)
    dest = tmp_path / "bk"
    backup_station(st.config.data_dir, tmp_path / "first")
    shutil.copytree(tmp_path / "first", dest, copy_function=shutil.copy2)
    (dest / ".lineguard-backup").unlink()             # `cp -a first/* bk/` leaves it behind
    r = _run(["restore", "--from", dest, "--check"])
    assert r.exit_code == 0 and ".lineguard-backup file is missing" in r.output, r.output
    r = _run(["backup", "--data", st.config.data_dir, "--to", dest])
    assert r.exit_code == 2 and f"touch {dest / '.lineguard-backup'}" in r.output, r.output
    (dest / ".lineguard-backup").touch()
    assert backup_station(st.config.data_dir, dest).parts == 2


def test_restore_given_both_check_and_data_says_not_both(tmp_path):
    r = _run(["restore", "--from", tmp_path, "--check", "--data", tmp_path / "x"])
    assert r.exit_code == 2 and "not both" in r.output, r.output
