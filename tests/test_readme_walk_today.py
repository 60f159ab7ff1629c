"""The README's first steps walked as a new user after the camera-change, drift and service
changes (task H19): what the command line said or did that a plant engineer would trip over.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli_runner import run_in_process

pytest.importorskip("fastapi")

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import png_bytes  # noqa: E402
from test_reference_cli import _station  # noqa: E402


def _kept(data: Path) -> list[int]:
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.reference import ReferencePhotos
    db = Database(StationConfig(data_dir=data).database_url)
    try:
        return [r["id"] for r in ReferencePhotos(db, data, 1 << 25, 26_000_000).list("cell")]
    finally:
        db.dispose()


def test_reference_remove_with_a_mistyped_id_removes_none_and_names_the_command_that_lists_them(tmp_path):
    # `reference remove 1 2 99` removed 1 and 2, then failed on 99 naming GET /api/v1/reference-photos:
    # half done, and a CLI user told to use the API
    data = _station(tmp_path)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        (good / f"g{i}.png").write_bytes(png_bytes(45, seed=i))
    r = run_in_process("reference", "add", "--data", data, "--product", "cell", good)
    assert r.returncode == 0, r.stderr
    ids = _kept(data)
    assert len(ids) == 3
    wrong = max(ids) + 90
    r = run_in_process("reference", "remove", "--data", data, ids[0], ids[1], wrong)
    assert r.returncode == 2                                          # refused, nothing done
    assert f"no reference photo with id {wrong}" in r.stderr
    assert "nothing was removed" in r.stderr and "lineguard reference list" in r.stderr
    assert "/api/v1" not in r.stderr
    assert _kept(data) == ids

    # an id given twice is removed once, not a failure after it went
    r = run_in_process("reference", "remove", "--data", data, ids[0], ids[0])
    assert r.returncode == 0, r.stderr
    assert "removed 1 reference photo(s)" in r.stdout
    assert _kept(data) == ids[1:]


def test_service_unit_as_root_for_a_watcher_sending_to_a_station_does_not_call_it_a_station(tmp_path):
    # the warning said "the station would run as root ... that owns its --data folder" for a
    # watch command line with --server, which has neither
    r = run_in_process("service-unit", "--user", "root", "--working-dir", tmp_path, "--env-file",
                       tmp_path / "L1-watch.env", "--", "watch", tmp_path / "hot1", "--line", "L1", "--product",
                       "cell", "--server", "http://127.0.0.1:20199")
    assert r.returncode == 0, r.stderr
    warning = next(ln for ln in r.stderr.splitlines() if "root" in ln)
    assert "hot folder's watcher would run as root" in warning
    assert "station" not in warning and "--data" not in warning

    # serve's keeps its own words
    r = run_in_process("service-unit", "--user", "root", "--working-dir", tmp_path, "--", "serve", "--data",
                       tmp_path / "line1")
    assert r.returncode == 0, r.stderr
    assert "the station would run as root: give --user an account of its own that owns its --data folder" in r.stderr
