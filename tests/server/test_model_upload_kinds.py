"""A model upload is read as what it was sent as: an .onnx whose end was cut off (a copy
interrupted on its way to the line PC) was read as a .lgm, and the engineer was told "a
.lgm model needs torch (pip install 'lineguard[torch]')" on an edge PC."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from lineguard.line.auth import create_key
from lineguard.line.config import StationConfig
from lineguard.line.station import Station


@pytest.mark.slow
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


def test_an_export_whose_thresholds_do_not_fit_its_precision_is_refused(tmp_path, fitted_inspector, synth_category):
    """An int8 export that kept the fp32 thresholds rejected 40 of 40 good parts on the
    line; its upload and activation answered 200, the mismatch only a warning in the log."""
    import warnings

    import numpy as np
    import pytest
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.loader import CalibrationMismatchWarning
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.server.app import create_app
    from lineguard.vision.imageio import load_image
    good = sorted(synth_category.glob("train/good/*.png"))[:8]
    calib = np.stack([fitted_inspector.preprocess.apply(load_image(p))[0] for p in good])
    int8 = tmp_path / "cell-int8.onnx"
    export_onnx(fitted_inspector, int8, int8=True, calibration_images=calib)
    st = Station(StationConfig(data_dir=tmp_path / "data"))
    try:
        with st.db.session() as s:
            key = create_key(s, "engineer", "eng", by="test")[1]
        with TestClient(create_app(station=st)) as c, warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationMismatchWarning)
            r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell", "activate": "true"},
                       files={"file": ("cell-int8.onnx", int8.read_bytes(), "application/octet-stream")})
            assert r.status_code == 422, r.text
            said = r.json()["error"]["message"]
            assert "thresholds do not fit" in said and "lineguard recalibrate cell-int8.onnx GOOD_DIR" in said, said
            assert str(tmp_path) not in said
            assert c.get("/api/v1/models", headers={"X-API-Key": key}).json()["items"] == []
    finally:
        st.close()
