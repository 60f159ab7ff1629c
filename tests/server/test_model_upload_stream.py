"""A model upload is judged from what the framework already spooled to disk: its size
and its first bytes, before the file is read. A 1.9 GB file that was no model took 2.4x
its size of the station's memory to be told so (the route read it whole, the registry
wrote it out again and the loader read it back); a model file is 1-30 MB.

Also: the station's start-up model (`serve --model`) is read by its content as `inspect`
reads it: an export cut short was told the .lgm reader's "header says 7308895157998454792
bytes" there, "re-export it" everywhere else."""
from __future__ import annotations

import struct

import pytest
from fastapi.testclient import TestClient

from lineguard.line.auth import create_key
from lineguard.line.config import StationConfig
from lineguard.line.errors import StationError
from lineguard.line.station import Station


@pytest.fixture
def station_and_key(tmp_path):
    st = Station(StationConfig(data_dir=tmp_path / "data"))     # the real loader: lineguard's model files
    with st.db.session() as s:
        key = create_key(s, "engineer", "eng", by="test")[1]
    yield st, key
    st.close()


def _png_like(n: int) -> bytes:
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    return head + bytes(n - len(head))


def test_a_file_that_is_no_model_is_refused_from_its_first_bytes_without_being_read(station_and_key, monkeypatch):
    from lineguard.server.app import create_app
    st, key = station_and_key
    reached = []

    def read_whole(data, *a, **k):
        reached.append(len(data))
        raise AssertionError(f"the whole upload ({len(data)} bytes) was read to be refused")
    monkeypatch.setattr(st, "add_model", read_whole)
    with TestClient(create_app(station=st)) as c:
        for name in ("video.lgm", "model.bin"):
            r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                       files={"file": (name, _png_like(3 << 20), "application/octet-stream")})
            assert r.status_code == 422, r.text
            said = r.json()["error"]["message"]
            assert "not a lineguard model file" in said and "89 50 4e 47" in said, said
            assert "header says" not in said, said
        # under an .onnx name, the words every reader of an export uses (inspect, serve)
        r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                   files={"file": ("cell.onnx", _png_like(3 << 20), "application/octet-stream")})
        assert r.status_code == 422, r.text
        assert "not an exported lineguard model (no lineguard hash at the end)" in r.json()["error"]["message"]
    assert reached == []


def test_a_model_file_over_the_limit_is_refused_naming_it(station_and_key, monkeypatch):
    from lineguard.server.app import create_app
    from lineguard.server.routers import models
    st, key = station_and_key
    # a usual model is 1-30 MB, one the station trained on 10,000 parts ~300 MB: the limit fits
    # them, under the 2 GB that let a 1.9 GB upload in
    assert 512 << 20 <= models.MAX_MODEL_BYTES < 2 << 30
    monkeypatch.setattr(models, "MAX_MODEL_BYTES", 1 << 20)
    body = struct.pack("<Q", 32) + b"{" + bytes((1 << 20) + 100)     # begins as a .lgm does, just over
    with TestClient(create_app(station=st)) as c:
        r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                   files={"file": ("big.lgm", body, "application/octet-stream")})
    assert r.status_code == 413, r.text
    said = r.json()["error"]["message"]
    assert "over 1 MiB" in said and "1-30 MB" in said, said


def test_a_real_model_still_uploads(station_and_key, fitted_model_path):
    from lineguard.server.app import create_app
    st, key = station_and_key
    with TestClient(create_app(station=st)) as c:
        r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                   files={"file": ("cell.lgm", fitted_model_path.read_bytes(), "application/octet-stream")})
    assert r.status_code == 201, r.text
    assert r.json()["precision"] == "fp32" and r.json()["runtime"] == "torch"


def test_serve_reads_a_cut_export_as_inspect_does(station_and_key, fitted_inspector, tmp_path):
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.vision.errors import BundleError
    from lineguard.vision.inspector import Inspector
    st, _ = station_and_key
    whole = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, whole)
    cut = tmp_path / "damaged.onnx"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BundleError) as by_inspect:
        Inspector.load(cut)
    with pytest.raises(StationError) as by_serve:
        st.ensure_model(cut, "cell")            # what `serve --model damaged.onnx` does
    said = str(by_serve.value)
    assert "not an exported lineguard model (no lineguard hash at the end)" in said, said
    assert "re-export it" in said and "header says" not in said, said
    assert "not an exported lineguard model (no lineguard hash at the end)" in str(by_inspect.value)
