"""A model file carrying a setting this lineguard would act on, with a value it does not
know, is refused where the file is read, as a newer format is: a .lgm from lineguard 9.0.0
whose bank search is "int4" was scored as int8 (its thresholds fit other scores) with exit
0, and an .onnx whose precision is "fp8" ran with a warning that advised recalibrating.

Also here: `lineguard info` says a cross-fit model's parts were not held out, and the
names the files may use match what the detectors take."""
from __future__ import annotations

import inspect as pyinspect
import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from lineguard.cli import app as cli_app  # noqa: E402
from lineguard.vision import bundle  # noqa: E402
from lineguard.vision.errors import BundleError  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402

NEWER = "9.0.0"


def _lgm(src, dst, lineguard_version=NEWER, params=None, preprocess=None, detector=None):
    """``src`` resaved with other settings and a valid content hash (as a newer lineguard
    would write it)."""
    manifest, tensors, _ = bundle.load(src)
    manifest = dict(manifest, lineguard_version=lineguard_version)
    det = dict(manifest["detector"])
    det["params"] = {**det["params"], **(params or {})}
    if detector is not None:
        det["name"] = detector
    manifest["detector"] = det
    manifest["preprocess"] = {**manifest["preprocess"], **(preprocess or {})}
    bundle.save(dst, manifest, tensors)
    return dst


def _onnx(src, dst, **changes):
    from lineguard.runtime import onnx_file
    data, manifest, _ = onnx_file.load(src)
    manifest = {**manifest, "lineguard_version": NEWER}
    for key, value in changes.items():
        if key == "calibrated_on":
            manifest["calibration"] = {**manifest["calibration"], "calibrated_on": value}
        elif key == "preprocess":
            manifest["preprocess"] = {**manifest["preprocess"], **value}
        else:
            manifest[key] = value
    onnx_file.write(dst, onnx_file.replace_manifest(data, manifest))
    return dst


def _cli(*args):
    return CliRunner().invoke(cli_app, [str(a) for a in args])


def test_a_newer_lineguards_int4_search_is_refused_not_run_as_int8(fitted_model_path, tmp_path, synth_category):
    model = _lgm(fitted_model_path, tmp_path / "int4.lgm", params={"search": "int4"})
    part = sorted((synth_category / "test" / "good").glob("*.png"))[0]
    r = _cli("inspect", model, part)
    assert r.exit_code == 2, r.output
    said = r.output
    assert "made by lineguard 9.0.0; its setting search='int4' is unknown to this lineguard" in said, said
    assert "upgrade lineguard" in said and "'int8', 'float32'" in said, said
    assert "OK" not in said.split("error:")[0]      # no part judged
    with pytest.raises(BundleError, match="search='int4'"):
        Inspector.load(model)
    with pytest.raises(BundleError, match="search='int4'"):     # `info` on an edge install reads it so
        bundle.describe(model)
    # the same file as this lineguard wrote it loads
    assert Inspector.load(_lgm(fitted_model_path, tmp_path / "ok.lgm", params={"search": "int8"})).threshold > 0


@pytest.mark.parametrize("change, named", [
    ({"params": {"image_score": "p99"}}, "image_score='p99'"),
    ({"params": {"pool_padding": "reflect"}}, "pool_padding='reflect'"),
    ({"params": {"layers": ["stage2", "stage9"]}}, "layers=['stage2', 'stage9']"),
    ({"params": {"backbone": "convnext_tiny"}}, "backbone='convnext_tiny'"),
    ({"params": {"sigma": "auto"}}, "sigma='auto'"),
    ({"params": {"bank_codec": "pq"}}, "bank_codec='pq'"),          # a setting it has never heard of
    ({"preprocess": {"resize": "crop"}}, "resize='crop'"),
    ({"preprocess": {"orient": "portrait"}}, "orient='portrait'"),
    ({"preprocess": {"colour": "lab"}}, "colour='lab'"),
    ({"detector": "fastflow"}, "detector='fastflow'"),
])
def test_every_setting_a_lgm_acts_on_is_checked(fitted_model_path, tmp_path, change, named):
    model = _lgm(fitted_model_path, tmp_path / "newer.lgm", **change)
    with pytest.raises(BundleError) as exc:
        Inspector.load(model)
    said = str(exc.value)
    assert f"made by lineguard 9.0.0; its setting {named} is unknown to this lineguard" in said, said
    assert "upgrade lineguard" in said, said


def test_an_unknown_value_from_no_newer_lineguard_says_to_remake_the_model(fitted_model_path, tmp_path):
    from lineguard import __version__
    model = _lgm(fitted_model_path, tmp_path / "edited.lgm", lineguard_version=__version__,
                 params={"search": "int4"})
    with pytest.raises(BundleError) as exc:
        Inspector.load(model)
    assert "search='int4'" in str(exc.value) and "re-train or re-export" in str(exc.value)
    assert "upgrade lineguard" not in str(exc.value)


def test_patchcore_state_with_an_unknown_search_is_refused():
    """The detector itself no longer takes anything but "float32" for int8."""
    from lineguard.vision.detectors.patchcore import PatchCore, bank_search_for
    with pytest.raises(ValueError, match="search must be one of"):
        PatchCore.from_state({"layers": ["stage2"], "search": "int4"}, {"input_size": [64, 64], "grid": [8, 8]},
                             {"memory_bank": torch.zeros(4, 8).numpy()})
    with pytest.raises(ValueError, match="int4"):
        bank_search_for("int4", torch.zeros(4, 8), torch.zeros(2, 8))


@pytest.mark.parametrize("change, named", [
    ({"precision": "fp8"}, "precision='fp8'"),
    ({"calibrated_on": {"runtime": "tensorrt", "precision": "fp32"}}, "runtime='tensorrt'"),
    ({"calibrated_on": {"runtime": "onnxruntime", "precision": "fp4"}}, "precision='fp4'"),
    ({"preprocess": {"resize": "crop"}}, "resize='crop'"),
])
def test_every_setting_an_export_acts_on_is_checked(exported, tmp_path, synth_category, change, named):
    model = _onnx(exported, tmp_path / "newer.onnx", **change)
    with pytest.raises(BundleError) as exc:
        Inspector.load(model)
    said = str(exc.value)
    assert f"made by lineguard 9.0.0; its setting {named} is unknown to this lineguard" in said, said
    assert "recalibrate" not in said, said
    part = sorted((synth_category / "test" / "good").glob("*.png"))[0]
    r = _cli("inspect", model, part)
    assert r.exit_code == 2 and named in r.output, r.output
    # recalibrating it (the old advice) is refused the same way: nothing written
    out = tmp_path / "again.onnx"
    r = _cli("recalibrate", model, synth_category / "test" / "good", "-o", out)
    assert r.exit_code == 2 and named in r.output and not out.exists(), r.output


def test_uploads_of_models_with_unknown_settings_are_refused(fitted_model_path, exported, tmp_path):
    from fastapi.testclient import TestClient

    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    int4 = _lgm(fitted_model_path, tmp_path / "int4.lgm", params={"search": "int4"})
    fp8 = _onnx(exported, tmp_path / "fp8.onnx", precision="fp8")
    st = Station(StationConfig(data_dir=tmp_path / "data"))
    try:
        with st.db.session() as s:
            key = create_key(s, "engineer", "eng", by="test")[1]
        with TestClient(create_app(station=st)) as c:
            for f, named in ((int4, "search='int4'"), (fp8, "precision='fp8'")):
                r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                           files={"file": (f.name, f.read_bytes(), "application/octet-stream")})
                assert r.status_code == 422, r.text
                said = r.json()["error"]["message"]
                assert f"made by lineguard 9.0.0; its setting {named} is unknown" in said, said
                assert "upgrade lineguard" in said and "recalibrate" not in said, said
            assert c.get("/api/v1/models", headers={"X-API-Key": key}).json()["items"] == []
    finally:
        st.close()


def test_the_known_settings_are_the_detectors_own():
    """What a file may say and what the detectors take cannot drift apart."""
    from lineguard.vision.backbones import BACKBONES
    from lineguard.vision.detectors import DETECTORS
    assert set(bundle.DETECTOR_NAMES) == set(DETECTORS)
    assert set(bundle.BACKBONE_NAMES) == set(BACKBONES)
    for name, cls in DETECTORS.items():
        takes = {k for k in pyinspect.signature(cls.__init__).parameters if k != "self"}
        assert set(bundle.DETECTOR_PARAMS[name]) == takes, name
        defaults = cls().get_params()
        bundle.check_settings({"detector": {"name": name, "params": {**defaults, "layers": list(defaults["layers"])}}},
                              "defaults")


def test_info_says_a_cross_fit_models_parts_were_not_held_out(fitted_inspector, fitted_model_path, tmp_path):
    assert fitted_inspector.calibration.get("calibration_method") == "cross-fit"
    r = _cli("info", fitted_model_path)
    assert r.exit_code == 0, r.output
    cal = json.loads(r.stdout)["calibration"]   # stdout: the JSON (a summary for people goes to stderr)
    assert "no part held out" in cal["calibration_parts"]
    assert cal["held_out"] is False
