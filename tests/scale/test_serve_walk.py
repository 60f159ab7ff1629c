"""`lineguard serve-ray`'s run (server.ray_serve.run_station) as a plant runs it: it stays
up until stopped, its scoring route follows a newly activated model, and a stop closes every
replica's station (its run recorded as stopped, not left open as after a crash)."""
from __future__ import annotations

import threading
import time

import pytest

from .conftest import ray_or_skip

ray_or_skip()
httpx = pytest.importorskip("httpx")
pytest.importorskip("ray.serve")

from server import fake_inspector  # noqa: E402  (tests/server, on the path as in its own tests)
from server.conftest import fake_model_bytes, free_port, make_keys  # noqa: E402

pytestmark = pytest.mark.ray


def test_serve_ray_runs_until_stopped_follows_activation_and_stops_cleanly(ray_session, tmp_path):
    import ray
    from sqlalchemy import select

    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import StationRun
    from lineguard.server.ray_serve import run_station
    ray.cloudpickle.register_pickle_by_value(fake_inspector)   # the replicas cannot import tests/
    data = tmp_path / "data"
    keys = make_keys(data)
    port, stop, said, failed = free_port(), threading.Event(), [], []
    config = StationConfig(data_dir=data)

    def run():
        try:
            run_station(config, ray_address="local", port=port, stop=stop, say=said.append,
                        loader=fake_inspector.FakeInspector.load, trainer=fake_inspector.FakeInspector.fit)
        except BaseException as exc:  # noqa: BLE001 - said by the test's asserts
            failed.append(exc)
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        # up once it says so (the docs' serve.run alone returned at once). Beside the other tests
        # on 2 cores Serve took 130 s to get there (its proxy 40 s, the replica's worker 60 s to
        # be scheduled, its station 30 s to start): 60 s was too short, so 5 minutes by the clock
        up_by = time.monotonic() + 300
        while not (said or failed) and runner.is_alive() and time.monotonic() < up_by:
            runner.join(0.2)
        assert said and not failed, (said, failed, "not up after 5 minutes" if runner.is_alive() else "ended")
        assert f"http://127.0.0.1:{port}/" in said[0]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": keys["engineer"]},
                              timeout=60)

        def upload_and_score(model: bytes) -> dict:
            r = client.post("/api/v1/models", files={"file": ("cell.lgm", model)},
                            data={"product": "cell", "activate": "true"})
            assert r.status_code == 201, r.text
            ref = r.json()["model_id"]
            for _ in range(50):   # the active version is read again within registry.ACTIVE_TTL_S
                r = client.post("/api/v1/scale/score", data={"product": "cell"},
                                files={"image": ("p.png", fake_inspector.png_bytes(90, seed=1), "image/png")},
                                headers={"serve_multiplexed_model_id": "cell"})
                assert r.status_code == 200, r.text
                if r.json()["model_id"] == ref:
                    break
                stop.wait(0.1)
            return {"expected": ref, **r.json()}

        first = upload_and_score(fake_model_bytes(0.5, "v1"))
        assert first["model_id"] == first["expected"] and first["verdict"] == "OK"
        # a stricter v2 activated: the route kept answering with v1's model (OK) for the replica's life
        second = upload_and_score(fake_model_bytes(0.2, "v2"))
        assert second["model_id"] == second["expected"] != first["model_id"], (first, second)
        assert second["verdict"] == "NG"
        client.close()
    finally:
        stop.set()
        runner.join(120)     # Serve gives its controller 30 s to stop the replica, more when busy
    assert not runner.is_alive() and not failed, failed
    assert ray.is_initialized()       # the session's Ray is not its to shut down
    db = Database(config.database_url)
    try:
        with db.session() as s:
            runs = list(s.scalars(select(StationRun)))
    finally:
        db.dispose()
    # each replica closed its station: killed, its run read as a crash at the next start
    assert runs and all(r.stopped_at is not None for r in runs), [(r.pid, r.stopped_at) for r in runs]
