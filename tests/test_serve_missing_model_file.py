"""`serve --model FILE` where FILE is gone but the station holds the model it registered.

A unit written with `--model /opt/models/cell.lgm` (outside the data folder) was restored
onto a new PC: the station came back with that model in its data folder, active, but serve
refused the missing file at every start, restarted every 10 s, for ever. It goes on now
with the version active, saying so; a file never registered (a new model's path mistyped)
is still refused.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector  # noqa: E402

from cli_runner import run_serve_refusal  # noqa: E402

pytest.importorskip("fastapi")

PORT = "18461"        # never bound: serve stops where its station would open


def _station_registered_from(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    data, model = tmp_path / "station", tmp_path / "models" / name
    model.parent.mkdir()
    model.write_bytes(FakeInspector(0.5).to_bytes())
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    try:
        assert st.ensure_model(model, "cell").active
    finally:
        st.close()
    return data, model


def test_a_missing_model_file_the_station_registered_goes_on_with_its_active_version(tmp_path):
    data, model = _station_registered_from(tmp_path, "cell.lgm")
    model.unlink()           # the new PC: the model is in the restored data folder only
    r = run_serve_refusal("--data", data, "--model", model, "--product", "cell", "--port", PORT)
    out = r.stdout + r.stderr
    assert "no such model file" not in out, out
    assert "no such file; this station holds cell v1 active" in out and "leave --model out" in out, out
    assert "serve took these settings" in out, out       # it went on to open its station


@pytest.mark.parametrize("case", ["another file name", "another product"])
def test_a_missing_model_file_never_registered_is_still_refused(tmp_path, case):
    data, model = _station_registered_from(tmp_path, "cell.lgm")
    model.unlink()
    given = model.with_name("cell-v2.lgm") if case == "another file name" else model
    product = "cell" if case == "another file name" else "housing"
    r = run_serve_refusal("--data", data, "--model", given, "--product", product, "--port", PORT)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and f"--model {given}: no such model file" in out, out
    assert "serve took these settings" not in out
