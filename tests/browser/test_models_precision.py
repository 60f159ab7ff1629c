"""The Models page says what each version computes in and what runs it (an fp32 .lgm and
an int8 export of one model read alike: "efficientnet_lite0 128x128", the same
model_version), and that an uploaded file is the very same file as an earlier version
(re-activating an old file by upload is allowed, and said).

A real station (the real model loader, torch), on a port of this test's own."""
from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest

from .conftest import api, expect
from server.conftest import ServerProc, make_keys

PORTS = range(48200, 48300)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 48200-48299")


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """Overrides the package's fake station: the real loader, no model yet."""
    pytest.importorskip("torch")
    data = tmp_path_factory.mktemp("real") / "data"
    keys = make_keys(data)
    srv = ServerProc(data, fake=False)
    srv.port = _free_port()
    srv.url = f"http://127.0.0.1:{srv.port}"
    srv.start(timeout=120)
    srv.keys = keys
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def int8_model(fitted_inspector, synth_category, tmp_path_factory):
    """The fitted model exported in int8, its thresholds set on the int8 graph's scores."""
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.vision.imageio import load_image
    from lineguard.vision.inspector import Inspector
    folder = tmp_path_factory.mktemp("int8")
    good = sorted((synth_category / "train" / "good").glob("*.png"))[:8]
    calib = np.stack([fitted_inspector.preprocess.apply(load_image(p))[0] for p in good])
    export_onnx(fitted_inspector, folder / "raw.onnx", int8=True, calibration_images=calib)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        insp = Inspector.load(folder / "raw.onnx")
    insp.recalibrate(synth_category / "test" / "good", false_reject_rate=0.2)
    insp.save(folder / "cell-int8.onnx")
    return folder / "cell-int8.onnx"


def _row(page, version: int):
    return page.locator(f'#versions tr[data-version="{version}"]')


def test_versions_show_precision_and_a_repeated_file(pages, station, fitted_model_path, int8_model):
    with api(station, "engineer") as c:
        for name, path in (("cell.lgm", fitted_model_path), ("cell-int8.onnx", int8_model)):
            r = c.post("/api/v1/models", files={"file": (name, path.read_bytes())}, data={"product": "cell"})
            assert r.status_code == 201, r.text
            assert r.json()["warning"] is None and r.json()["same_file_as"] is None
        # v1's file again: not refused (an old file back by upload), but said
        r = c.post("/api/v1/models", files={"file": ("cell-old.lgm", fitted_model_path.read_bytes())},
                   data={"product": "cell"})
        assert r.status_code == 201, r.text
        again = r.json()
        assert again["version"] == 3 and again["same_file_as"] == 1
        assert again["warning"].startswith("same file as v1"), again
        listed = {m["version"]: m for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]}
    assert (listed[1]["precision"], listed[1]["runtime"]) == ("fp32", "torch")
    assert (listed[2]["precision"], listed[2]["runtime"]) == ("int8", "onnxruntime")
    assert listed[1]["features"] == listed[2]["features"]        # what made them look alike
    assert [listed[v]["same_file_as"] for v in (1, 2, 3)] == [None, None, 1]

    page = pages(role="engineer").open("/app/models?product=cell", "#versions table")
    expect(_row(page, 1).locator('[data-what="precision"]')).to_have_text("fp32 · torch")
    expect(_row(page, 2).locator('[data-what="precision"]')).to_have_text("int8 · onnxruntime")
    expect(_row(page, 3).locator('[data-what="same-file"]')).to_have_text("same file as v1")
    expect(_row(page, 1).locator('[data-what="same-file"]')).to_have_count(0)
    expect(_row(page, 2).locator('[data-what="same-file"]')).to_have_count(0)
