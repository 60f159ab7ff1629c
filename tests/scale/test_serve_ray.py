"""The station app on Ray Serve answers a part exactly as the plain station does (fake,
torch-free model on both), and its batched, per-product scoring route agrees too."""
from __future__ import annotations

import concurrent.futures as cf

import pytest

from .conftest import ray_or_skip

ray_or_skip()
httpx = pytest.importorskip("httpx")
pytest.importorskip("ray.serve")

from server import fake_inspector  # noqa: E402  (tests/server, on the path as in its own tests)
from server.conftest import fake_model_bytes, free_port, make_keys, post_part, start_fake_station  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def serve_station(ray_session, tmp_path_factory):
    import ray
    from ray import serve

    from lineguard.line.config import StationConfig
    from lineguard.server.ray_serve import station_deployment
    # the replicas cannot import the tests' folder: ship the fake model's code with the app
    ray.cloudpickle.register_pickle_by_value(fake_inspector)
    data = tmp_path_factory.mktemp("serve-station") / "data"
    keys = make_keys(data)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(station_deployment(StationConfig(data_dir=data), loader=fake_inspector.FakeInspector.load,
                                 trainer=fake_inspector.FakeInspector.fit, batch_wait_timeout_s=0.2),
              route_prefix="/", name="station")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": keys["engineer"]},
                          timeout=60)
    r = client.post("/api/v1/models", files={"file": ("cell.lgm", fake_model_bytes())},
                    data={"product": "cell", "activate": "true"})
    assert r.status_code == 201, r.text
    try:
        yield client
    finally:
        client.close()
        serve.shutdown()


@pytest.fixture(scope="module")
def plain_station(tmp_path_factory):
    srv = start_fake_station(tmp_path_factory.mktemp("plain-station") / "data")
    yield srv
    srv.stop()


@pytest.mark.parametrize("brightness", [60, 200])   # an OK part and an NG part for the fake model
def test_serve_answers_as_the_plain_station(serve_station, plain_station, brightness):
    part = fake_inspector.png_bytes(brightness, seed=brightness)
    with plain_station.client(plain_station.keys["operator"]) as plain:
        a = post_part(plain, part, f"p-{brightness}")
    b = post_part(serve_station, part, f"p-{brightness}")
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    a, b = a.json(), b.json()
    assert a["verdict"] == b["verdict"] == ("OK" if brightness < 128 else "NG")
    assert a["score"] == pytest.approx(b["score"], abs=1e-9)
    assert serve_station.get(f"/api/v1/inspections/{b['id']}").json()["part_id"] == f"p-{brightness}"


def test_batched_scoring_route_agrees_and_batches(serve_station, plain_station):
    parts = [fake_inspector.png_bytes(v, seed=v) for v in (40, 90, 170, 220)]

    def score(data: bytes):
        return serve_station.post("/api/v1/scale/score", files={"image": ("p.png", data, "image/png")},
                                  data={"product": "cell"}, headers={"serve_multiplexed_model_id": "cell"})

    with cf.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(score, parts))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    with plain_station.client(plain_station.keys["operator"]) as plain:
        for i, (data, r) in enumerate(zip(parts, answers)):
            ref = post_part(plain, data, f"batch-{i}").json()
            assert r.json()["verdict"] == ref["verdict"] and r.json()["score"] == pytest.approx(ref["score"])
    assert max(r.json()["batch_size"] for r in answers) > 1, "concurrent requests were not batched"
    unknown = serve_station.post("/api/v1/scale/score", files={"image": ("p.png", parts[0], "image/png")},
                                 data={"product": "no-such-product"})
    assert unknown.status_code == 404 and "error" in unknown.json()
    # a key, as for every other route: it answered 200 with verdict, threshold and model id to anyone
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "not-a-key"}):
        refused = serve_station.post("/api/v1/scale/score", files={"image": ("p.png", parts[0], "image/png")},
                                     data={"product": "cell"}, headers=headers)
        assert refused.status_code == 401 and "score" not in refused.json(), refused.text


def _png16(value: int, seed: int) -> bytes:
    """A grey 16-bit PNG of a 12-bit camera (values up to 4095)."""
    import io

    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(value, 40, (64, 64)), 0, 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_the_scoring_route_reads_a_photo_as_the_station_does(serve_station, plain_station):
    # a 12-bit camera's model: its 16-bit photos scaled by 4095, not by 65535 (16 times darker,
    # which its photo check would doubt); its photo check's issues in the answer
    model = fake_model_bytes(0.5, "deep-1", photo_floor=0.1, sensor_bits=12)
    with plain_station.client(plain_station.keys["engineer"]) as eng:
        assert eng.post("/api/v1/models", files={"file": ("deep.lgm", model)},
                        data={"product": "deep", "activate": "true"}).status_code == 201
    assert serve_station.post("/api/v1/models", files={"file": ("deep.lgm", model)},
                              data={"product": "deep", "activate": "true"}).status_code == 201

    def score(data: bytes):
        return serve_station.post("/api/v1/scale/score", files={"image": ("p.png", data, "image/png")},
                                  data={"product": "deep"}, headers={"serve_multiplexed_model_id": "deep"})

    with plain_station.client(plain_station.keys["operator"]) as plain:
        for i, value in enumerate((2000, 150)):       # a well-lit part; a part under a dead lamp
            data = _png16(value, seed=i)
            ref = post_part(plain, data, f"deep-{i}", product="deep").json()
            r = score(data)
            assert r.status_code == 200, r.text
            assert r.json()["score"] == pytest.approx(ref["score"]) and r.json()["verdict"] == ref["verdict"]
            assert r.json()["photo_issues"] == ref["photo_issues"]
            assert bool(ref["photo_issues"]) is (value == 150)
        assert ref["score"] == pytest.approx(150 / 4095, abs=0.01)
        too_deep = score(_png16(6000, seed=3))           # past the 12-bit camera: refused with the reason
        ref = post_part(plain, _png16(6000, seed=3), "deep-3", product="deep")
        assert too_deep.status_code == ref.status_code == 422
        assert "camera depth" in too_deep.json()["error"]["message"]
