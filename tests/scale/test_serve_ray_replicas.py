"""Two replicas on Ray Serve are two processes to the station: each run named after its
replica (not both "serve", the second's start read as an outage of the first), and each
/metrics series labelled with the replica that answered the scrape."""
from __future__ import annotations

import datetime as dt

import pytest

from .conftest import ray_or_skip

ray_or_skip()
httpx = pytest.importorskip("httpx")
pytest.importorskip("ray.serve")

from server import fake_inspector  # noqa: E402  (tests/server, on the path as in its own tests)
from server.conftest import free_port, make_keys  # noqa: E402

pytestmark = pytest.mark.ray


def test_two_replicas_are_two_runs_and_two_labelled_series(ray_session, tmp_path):
    import ray
    from prometheus_client.parser import text_string_to_metric_families
    from ray import serve

    from lineguard.line import handover
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import utcnow
    from lineguard.server.ray_serve import station_deployment
    ray.cloudpickle.register_pickle_by_value(fake_inspector)
    data = tmp_path / "data"
    keys = make_keys(data)
    since = utcnow() - dt.timedelta(seconds=1)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(station_deployment(StationConfig(data_dir=data), loader=fake_inspector.FakeInspector.load,
                                     num_replicas=2), route_prefix="/", name="station")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": keys["operator"]},
                          timeout=60) as client:
            for _ in range(10):
                r = client.get("/metrics")
                assert r.status_code == 200, r.text
                depth = [s for f in text_string_to_metric_families(r.text) for s in f.samples
                         if s.name == "lineguard_queue_depth"]
                assert len(depth) == 1 and depth[0].labels.get("replica") in {"0", "1"}, r.text[:500]
    finally:
        serve.shutdown()
    db = Database(StationConfig(data_dir=data).database_url)
    try:
        events = handover.stops_and_starts(db, since, utcnow() + dt.timedelta(seconds=1))
    finally:
        db.dispose()
    started = sorted(e["process"].split(" on ")[0] for e in events if e["kind"] == "started")
    assert started == ["serve-ray replica 0", "serve-ray replica 1"], events
    assert not [e for e in events if e["kind"] == "outage" or e["clean"] is False], events
