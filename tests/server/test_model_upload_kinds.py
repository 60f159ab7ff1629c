"""A model upload is read as what it was sent as: an .onnx whose end was cut off (a copy
interrupted on its way to the line PC) was read as a .lgm, and the engineer was told "a
.lgm model needs torch (pip install 'lineguard[torch]')" on an edge PC."""
from __future__ import annotations

from fastapi.testclient import TestClient

from lineguard.line.auth import create_key
from lineguard.line.config import StationConfig
from lineguard.line.station import Station


def test_a_truncated_onnx_upload_is_said_to_be_a_damaged_export(tmp_path, fitted_inspector):
    import pytest
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.server.app import create_app
    exported_model = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, exported_model)
    st = Station(StationConfig(data_dir=tmp_path / "data"))
    try:
        with st.db.session() as s:
            key = create_key(s, "engineer", "eng", by="test")[1]
        whole = exported_model.read_bytes()
        with TestClient(create_app(station=st)) as c:
            r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                       files={"file": ("cell.onnx", whole[: len(whole) // 2], "application/octet-stream")})
            assert r.status_code == 422, r.text
            said = r.json()["error"]["message"]
            # (an edge PC's old answer: "a .lgm model needs torch"; with torch: "header says
            # 7308895157998454792 bytes", the .lgm reader's words for another file's bytes)
            assert "not an exported lineguard model" in said and "truncated" in said, said
            assert "torch" not in said and "header says" not in said, said
            ok = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                        files={"file": ("cell.onnx", whole, "application/octet-stream")})
            assert ok.status_code == 201, ok.text
    finally:
        st.close()
