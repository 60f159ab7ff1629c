"""service-unit wrote a unit for `watch --server URL --data DIR` and for `--server` without
http://, which watch refuses at every start (systemd then started it again for ever); and
`reference add` given a folder with a 64 x 64 photo among 256 x 256 ones, a sub-folder, a
text file and a link kept the odd photo without a word, passed over the rest unsaid and
followed the link; `reference remove --product Widget` named no product meant."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_runner import run_in_process

from test_service_unit import _line1_is_an_account_here  # noqa: F401 - a fixture


def _env_file(tmp_path: Path) -> Path:
    env_file = tmp_path / "watch.env"
    env_file.write_text("LINEGUARD_API_KEY=lg_key\n")
    env_file.chmod(0o600)
    return env_file


@pytest.mark.parametrize("server, here, said", [
    ("http://10.0.0.5:8000", ["--data", "/srv/line1"], "--server and --data given"),
    ("10.0.0.5:8000", [], "is not a station's address"),
])
def test_service_unit_refuses_a_watch_line_watch_refuses_at_every_start(tmp_path, server, here, said):
    r = run_in_process("service-unit", "--user", "line1", "--working-dir", tmp_path, "--env-file",
                       _env_file(tmp_path), "--", "watch", "/srv/hot1", "--line", "L1", "--product", "cell",
                       "--server", server, *here, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and "[Service]" not in r.stdout, r.stderr


def _photo(path: Path, side: int, shade: int) -> None:
    rng = np.random.default_rng(shade)
    cv2.imwrite(str(path), rng.integers(60, 200, (side, side, 3), dtype=np.uint8))


@pytest.fixture
def station(tmp_path):
    from fake_inspector import FakeInspector

    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "station"), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.close()
    first = tmp_path / "first"
    first.mkdir()
    for i in range(3):
        _photo(first / f"good{i}.png", 256, i)
    r = run_in_process("reference", "add", "--data", tmp_path / "station", "--product", "cell", first, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path / "station"


def test_reference_add_says_an_odd_size_what_it_passes_over_and_follows_no_link(tmp_path, station):
    odd = tmp_path / "odd"
    odd.mkdir()
    for i in range(2):
        _photo(odd / f"next{i}.png", 256, 10 + i)
    _photo(odd / "crop.png", 64, 20)
    (odd / "sub").mkdir()
    _photo(odd / "sub" / "old.png", 256, 30)
    (odd / "notes.txt").write_text("lot 7")
    elsewhere = tmp_path / "elsewhere.png"
    _photo(elsewhere, 256, 40)
    os.symlink(elsewhere, odd / "link.png")
    r = run_in_process("reference", "add", "--data", station, "--product", "cell", odd, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "added 3 reference photo(s) of cell; 6 in all" in out, out      # the link not kept
    assert "64 x 64" in out and "crop.png" in out and "--size 64x64" in out, out
    said = [ln for ln in r.stderr.splitlines() if "not read" in ln]
    assert any("sub/" in ln for ln in said) and any("notes.txt" in ln for ln in said), said
    assert any("link.png" in ln and "not followed" in ln for ln in said), said


def test_reference_remove_of_a_product_in_another_case_names_the_one_meant(tmp_path, station):
    r = run_in_process("reference", "remove", "--data", station, "--product", "Cell", cwd=tmp_path)
    assert r.returncode == 2 and "did you mean 'cell'?" in r.stderr, r.stderr
