"""An exported model whose one run needs far more memory than any lineguard model is
refused before the station runs it.

A sealed export is whatever graph its file holds: a real model with one branch more, which
expanded the input into 1.5 GiB on every part (its verdicts the real model's), was accepted
(201) and kept the station at 1.8 GB instead of 0.2 GB. Now one run is tried in a child
process with its memory capped, and a model over the station's limit is refused (422)
with the memory it asked for and the limit, never loaded by the station itself.
"""
from __future__ import annotations

import pytest

# one copy of the 128 px test part in float32: 128 x 128 x 3 x 4 bytes
_COPY_BYTES = 128 * 128 * 3 * 4


def _greedy_export(path, copies: int) -> bytes:
    """The export at ``path`` with a branch that expands each part into ``copies`` float
    copies, reduced and added to the scores times 0: the same verdicts, ``copies`` x
    192 KiB taken by every run."""
    import numpy as np
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from lineguard.runtime import onnx_file
    m = onnx.load_from_string(path.read_bytes()[:-onnx_file.TRAILER_LEN])
    g = m.graph
    scores = g.output[0].name
    for node in g.node:
        for i, out in enumerate(node.output):
            if out == scores:
                node.output[i] = "real_scores"
    g.initializer.extend([numpy_helper.from_array(np.array([copies, 1, 1, 1, 1], np.int64), "copies"),
                          numpy_helper.from_array(np.array(0.0, np.float32), "nothing")])
    g.node.extend([helper.make_node("Cast", [g.input[0].name], ["as_float"], to=TensorProto.FLOAT),
                   helper.make_node("Expand", ["as_float", "copies"], ["expanded"]),
                   helper.make_node("ReduceMax", ["expanded"], ["largest"], keepdims=0),
                   helper.make_node("Mul", ["largest", "nothing"], ["zero"]),
                   helper.make_node("Add", ["real_scores", "zero"], [scores])])
    return onnx_file.seal(m.SerializeToString())[0]


@pytest.fixture(scope="module")
def export_path(fitted_inspector, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    path = tmp_path_factory.mktemp("export") / "cell.onnx"
    export_onnx(fitted_inspector, path)
    assert tuple(fitted_inspector.preprocess.input_hw) == (128, 128)     # what _COPY_BYTES counts
    return path


def _station(tmp_path, **settings):
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data", **settings))
    with st.db.session() as s:
        key = create_key(s, "engineer", "eng", by="test")[1]
    return st, {"X-API-Key": key}


def test_an_export_whose_run_takes_1_5_gib_is_refused_and_never_run_by_the_station(tmp_path, export_path,
                                                                                   onnx_sessions_opened):
    from fastapi.testclient import TestClient

    from lineguard.server.app import create_app
    greedy = _greedy_export(export_path, 8192)          # 8192 x 192 KiB = 1.5 GiB a part
    opened = onnx_sessions_opened
    st, eng = _station(tmp_path)
    try:
        with TestClient(create_app(station=st)) as c:
            r = c.post("/api/v1/models", headers=eng, data={"product": "cell", "activate": "true"},
                       files={"file": ("cell.onnx", greedy, "application/octet-stream")})
            assert r.status_code == 422, r.text
            said = r.json()["error"]["message"]
            # what it asked for and what the station allows, and how to raise it
            assert "asked for 1,536 MiB at once" in said and "64 MiB the station allows one run of a 128x128 " \
                "input" in said and "LINEGUARD_MODEL_RUN_BYTES_PER_PIXEL" in said, said
            assert greedy not in opened, "the station's own process ran the greedy model"
            assert c.get("/api/v1/models", headers=eng).json()["items"] == []
            # the real export, the same but for the branch, is taken as before
            r = c.post("/api/v1/models", headers=eng, data={"product": "cell", "activate": "true"},
                       files={"file": ("cell.onnx", export_path.read_bytes(), "application/octet-stream")})
            assert r.status_code == 201, r.text
    finally:
        st.close()


def test_a_real_export_runs_far_within_the_default_limit(export_path):
    from lineguard.line.config import StationConfig
    from lineguard.runtime.loader import run_memory_limit, trial_run_memory
    pytest.importorskip("onnxruntime")
    took = trial_run_memory(export_path, StationConfig.model_run_bytes_per_pixel)
    if took is None:
        pytest.skip("no process limits or /proc on this platform: the trial is not made")
    # a few MB (measured 3 MiB at 128 px, ~200 bytes per input pixel at every size): a wide margin
    assert 0 < took < run_memory_limit((128, 128), StationConfig.model_run_bytes_per_pixel) // 8, took


def test_the_limit_is_the_stations_setting(tmp_path, export_path):
    """A run of ~96 MiB at 128 px is over the default limit (64 MiB: the floor) and within
    8 KiB per input pixel (128 MiB), the station's setting deciding which."""
    from lineguard.line.config import StationConfig, env_settings
    from lineguard.line.errors import InvalidModel
    from lineguard.runtime.loader import ModelRunTooLarge, trial_run_memory
    pytest.importorskip("onnxruntime")
    greedy = tmp_path / "greedy.onnx"
    greedy.write_bytes(_greedy_export(export_path, 512))     # 512 x 192 KiB = 96 MiB a part
    took = trial_run_memory(greedy, 8192)
    if took is None:
        pytest.skip("no process limits or /proc on this platform: the trial is not made")
    assert took > 512 * _COPY_BYTES * 3 // 4, took        # it is the expanded copies that were measured
    with pytest.raises(ModelRunTooLarge, match=r"over the 64 MiB the station allows one run of a 128x128 input"):
        trial_run_memory(greedy, StationConfig.model_run_bytes_per_pixel)
    st, _eng = _station(tmp_path)
    try:
        with pytest.raises(InvalidModel, match=r"64 MiB the station allows one run"):
            st.add_model(greedy.read_bytes(), "cell", filename="greedy.onnx")
        assert st.models.list("cell") == []
    finally:
        st.close()
    st, _eng = _station(tmp_path / "roomier", model_run_bytes_per_pixel=8192)
    try:
        assert st.add_model(greedy.read_bytes(), "cell", filename="greedy.onnx").version == 1
    finally:
        st.close()
    assert env_settings({"LINEGUARD_MODEL_RUN_BYTES_PER_PIXEL": "8192"}) == {
        "LINEGUARD_MODEL_RUN_BYTES_PER_PIXEL": ("model_run_bytes_per_pixel", 8192)}
    with pytest.raises(ValueError, match="at least 256"):
        StationConfig(data_dir=tmp_path / "x", model_run_bytes_per_pixel=100)
