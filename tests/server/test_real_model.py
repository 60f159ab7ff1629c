"""End to end with a real fitted model: `python -m lineguard.server --model X.lgm --product cell`."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from .conftest import ServerProc, make_keys, post_part


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A real PatchCore model on 20 synthetic parts at 128 px, fitted once per session."""
    from lineguard import Inspector
    from lineguard.vision.synth import make_part
    good = [make_part(seed, size=128)[0] for seed in range(20)]
    insp = Inspector.fit(good, detector="patchcore", image_size=128, false_reject_rate=0.05, seed=0)
    path = tmp_path_factory.mktemp("model") / "cell.lgm"
    insp.save(path)
    return path


@pytest.fixture(scope="module")
def real_server(tmp_path_factory, tiny_model):
    data = tmp_path_factory.mktemp("real") / "data"
    keys = make_keys(data)
    srv = ServerProc(data, fake=False, extra=["--model", str(tiny_model), "--product", "cell"]).start(timeout=120)
    srv.keys = keys
    yield srv
    srv.stop()


def test_real_model_judges_parts_and_serves_pictures(real_server):
    from lineguard.vision.synth import make_part
    with real_server.client(real_server.keys["operator"]) as c:
        good = post_part(c, _png(make_part(1000, size=128)[0]), "good-1")
        assert good.status_code == 201, good.text
        bad = post_part(c, _png(make_part(1001, size=128, defect="scratch")[0]), "bad-1")
        g, b = good.json(), bad.json()
        assert b["score"] > g["score"]
        assert b["verdict"] == "NG" and b["regions"]
        assert g["model"]["registry_version"] == 1 and len(g["model"]["model_id"]) >= 16
        assert g["timings_ms"]["station_model"] > 0 and "model" in g["timings_ms"]
        for kind in ("heatmap", "overlay", "image"):
            r = c.get(b["links"][kind])
            assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
        assert g["photo_issues"] == []
        # the lamp at a third: the photo is unlike the good ones, and the record says why
        dim = (make_part(1002, size=128)[0].astype(np.float32) * 0.35).astype(np.uint8)
        doubted = post_part(c, _png(dim), "dim-1").json()
        assert doubted["verdict"] != "OK" and doubted["photo_issues"][0].startswith("too dark")
        assert c.get(f"/api/v1/inspections/{doubted['id']}").json()["photo_issues"] == doubted["photo_issues"]
        # restarting with the same --model does not add a version
        models = c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
        assert [(m["version"], m["active"]) for m in models] == [(1, True)]


def test_pictures_for_a_screen_are_drawn_at_the_size_asked(real_server):
    # A camera's photo at full size costs the station seconds to draw as an overlay and the
    # browser megabytes; the operator pages ask for thumbnails and screen-sized pictures.
    from lineguard.vision.synth import make_part
    part = np.asarray(Image.fromarray(make_part(1002, size=128, defect="scratch")[0]).resize((1600, 1200)))
    with real_server.client(real_server.keys["operator"]) as c:
        r = post_part(c, _png(part), "big-1")
        assert r.status_code == 201, r.text
        links = r.json()["links"]
        overlay = c.get(links["overlay"], params={"max_side": 400})
        assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
        # a part's pictures never change: the browser keeps them (privately) instead of asking again
        assert overlay.headers["cache-control"] == "private, max-age=3600"
        assert Image.open(io.BytesIO(overlay.content)).size == (400, 300)
        full = c.get(links["overlay"])
        assert Image.open(io.BytesIO(full.content)).size == (1600, 1200)
        photo = c.get(links["image"], params={"max_side": 320})
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        shown = np.asarray(Image.open(io.BytesIO(photo.content)))
        assert shown.shape == (240, 320, 3)
        want = np.asarray(Image.fromarray(part).resize((320, 240), Image.BOX)).astype(int)
        assert np.abs(shown.astype(int) - want).mean() < 4            # the same picture, smaller
        assert c.get(links["image"]).content == _png(part)            # as sent without a size
        small = c.get(links["image"], params={"max_side": 4000})      # larger than the photo: as it is
        assert Image.open(io.BytesIO(small.content)).size == (1600, 1200)
        for bad in (0, 8, "big"):
            assert c.get(links["overlay"], params={"max_side": bad}).status_code == 422


def test_train_new_version_from_stored_good_parts(real_server):
    from lineguard.vision.synth import make_part
    with real_server.client(real_server.keys["operator"]) as c:
        for seed in range(2000, 2012):
            r = post_part(c, _png(make_part(seed, size=128)[0]), f"tg-{seed}", product="cell")
            assert r.status_code == 201
            # retraining learns only from parts a person confirmed good (or the audit sample)
            assert c.post(f"/api/v1/inspections/{r.json()['id']}/review", json={"label": "good"}).status_code == 200
    with real_server.client(real_server.keys["engineer"]) as e:
        r = e.post("/api/v1/models/cell/train", json={"image_size": 128, "min_images": 10, "activate": True,
                                                      "false_reject_rate": 0.05})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        seen_progress = set()
        for _ in range(600):
            st = e.get(f"/api/v1/jobs/{jid}").json()
            seen_progress.add(st["progress"])
            if st["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert st["status"] == "done", st
        assert st["result"]["version"] == 2 and st["result"]["images"] >= 10
        active = [m for m in e.get("/api/v1/models", params={"product": "cell"}).json()["items"] if m["active"]]
        assert [m["version"] for m in active] == [2]
        # what it was trained from and its thresholds, read from the bundle at registration
        assert active[0]["detector"] == "patchcore" and active[0]["threshold"] > 0
        assert active[0]["features"] == "efficientnet_lite0 128x128"      # what it looks at, for the versions list
        assert active[0]["train_images"] >= 10 and "reviewed good" in active[0]["trained_from"]
    with real_server.client(real_server.keys["operator"]) as c:
        r = post_part(c, _png(make_part(3000, size=128)[0]), "after-train")
        assert r.json()["model"]["registry_version"] == 2


_NO_TORCH_SERVER = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this station")
sys.meta_path.insert(0, _Block())
from lineguard.server.__main__ import main
main(sys.argv[1:])
"""


def test_station_runs_an_exported_model_without_torch(tiny_model, tmp_path):
    """The edge station: torch cannot be imported, the model is the exported .onnx; parts
    sent at once are judged as the model judges them alone."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from concurrent.futures import ThreadPoolExecutor

    from lineguard import Inspector
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.vision.synth import make_part
    onnx_model = tmp_path / "cell.onnx"
    export_onnx(Inspector.load(tiny_model), onnx_model)
    data = tmp_path / "edge-station"
    keys = make_keys(data)
    srv = ServerProc(data, fake=False, python_args=["-c", _NO_TORCH_SERVER],
                     extra=["--model", str(onnx_model), "--product", "cell"]).start(timeout=120)
    try:
        parts = [make_part(4000 + i, size=128, defect="scratch" if i % 3 == 0 else None)[0] for i in range(6)]
        want = Inspector.load(onnx_model).inspect_batch(parts)
        with srv.client(keys["operator"]) as c, ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda i: post_part(c, _png(parts[i]), f"edge-{i}"), range(len(parts))))
        for r, w in zip(answers, want):
            assert r.status_code == 201, r.text
            assert r.json()["verdict"] == w.verdict.value
            assert r.json()["score"] == pytest.approx(w.score, rel=1e-4)
        assert "blocked" not in srv.log.read_text()
    finally:
        srv.stop()
