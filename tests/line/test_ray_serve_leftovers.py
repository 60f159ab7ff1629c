"""What `lineguard serve-ray`'s replicas left from a walk, without Ray: each replica is the
app ``serve_app`` builds, with its number given instead of asked of Serve.

- /metrics: each scrape through Serve's proxy lands on one replica; the same series
  answered 3 then 5 (read as a counter reset). Each replica's series carry replica="N".
- runs: every replica recorded "serve on HOST:DATA"; the second's start read as a 0.6 s
  unclean outage of the first.
- the unknown-product answer told to start `lineguard serve --model`, which Serve has not.
"""
from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fake_inspector import FakeInspector, png_bytes

from lineguard.line import handover
from lineguard.line.config import StationConfig
from lineguard.line.db import Database
from lineguard.line.orm import utcnow
from lineguard.server.ray_serve import serve_app


def _config(tmp_path, db_backend) -> StationConfig:
    db_url, schema = db_backend
    return StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema)


def _keys(cfg: StationConfig) -> dict[str, str]:
    from lineguard.line.auth import create_key
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(cfg.database_url, schema=cfg.db_schema)
    db.upgrade()
    with db.session() as s:
        keys = {role: create_key(s, role, name=f"test-{role}")[1] for role in ("operator", "engineer")}
    db.dispose()
    return keys


def _replica(cfg: StationConfig, number: str):
    app = serve_app(cfg, loader=FakeInspector.load, trainer=FakeInspector.fit, replica=lambda: number)
    return TestClient(app, raise_server_exceptions=False)


def _parts_total(text: str) -> dict[tuple, float]:
    got = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "lineguard_parts_total":
                got[tuple(sorted(s.labels.items()))] = s.value
    return got


@pytest.mark.one_database
def test_each_replicas_metrics_carry_its_number(tmp_path, db_backend):
    cfg = _config(tmp_path, db_backend)
    keys = _keys(cfg)
    with _replica(cfg, "0") as r0, _replica(cfg, "1") as r1:
        for c in (r0, r1):
            c.headers["X-API-Key"] = keys["engineer"]
        up = r0.post("/api/v1/models", files={"file": ("cell.lgm", FakeInspector(0.5).to_bytes())},
                     data={"product": "cell", "activate": "true"})
        assert up.status_code == 201, up.text
        # replica 0 judged 3 OK parts, replica 1 five: the walk's 3 then 5
        for c, n in ((r0, 3), (r1, 5)):
            for i in range(n):
                r = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(60, seed=i), "image/png")},
                           data={"part_id": f"p-{id(c)}-{i}", "line": "L1", "station": "S1", "product": "cell"})
                assert r.status_code == 201 and r.json()["verdict"] == "OK", r.text
        m0, m1 = (_parts_total(c.get("/metrics").text) for c in (r0, r1))
    want = {"line": "L1", "station": "S1", "verdict": "OK"}
    # two series Prometheus tells apart (sum without(replica) gives the 8 parts), not one that went 3, 5
    assert m0 == {tuple(sorted({**want, "replica": "0"}.items())): 3.0}
    assert m1 == {tuple(sorted({**want, "replica": "1"}.items())): 5.0}


def test_replica_label_leaves_the_plain_station_and_a_series_own_label_alone():
    from lineguard.line.metrics import StationMetrics
    m = StationMetrics()
    m.parts.labels("L1", "S1", "OK").inc()
    plain = m.render().decode()
    assert 'lineguard_parts_total{line="L1",station="S1",verdict="OK"} 1.0' in plain     # `lineguard serve`
    m.const_labels = {"replica": "2", "line": "not-this"}
    labelled = _parts_total(m.render().decode())
    assert labelled == {(("line", "L1"), ("replica", "2"), ("station", "S1"), ("verdict", "OK")): 1.0}
    # every series, gauges and histograms too (a replica's queue depth is its own)
    depth = [s for f in text_string_to_metric_families(m.render().decode()) for s in f.samples
             if s.name == "lineguard_queue_depth"]
    assert depth and all(s.labels.get("replica") == "2" for s in depth)


def test_replicas_starts_are_runs_of_their_own_not_outages(tmp_path, db_backend):
    cfg = _config(tmp_path, db_backend)
    since = utcnow() - dt.timedelta(seconds=1)
    for _ in range(2):          # serve-ray started, stopped (Ctrl-C), started again
        with _replica(cfg, "0"):
            with _replica(cfg, "1"):     # starts while replica 0 runs, as Serve starts them
                pass
    db = Database(cfg.database_url, schema=cfg.db_schema)
    try:
        events = handover.stops_and_starts(db, since, utcnow() + dt.timedelta(seconds=1))
    finally:
        db.dispose()
    # "down": stopped cleanly at the end (the test's window runs on past the last stop)
    said = sorted((e["process"].split(" on ")[0], e["kind"]) for e in events if e["kind"] != "down")
    assert said == [("serve-ray replica 0", "restart"), ("serve-ray replica 0", "started"),
                    ("serve-ray replica 1", "restart"), ("serve-ray replica 1", "started")], events
    assert not [e for e in events if e["kind"] == "outage" or e["clean"] is False], events


@pytest.mark.one_database
def test_create_app_still_records_serve_by_default(tmp_path, db_backend):
    from lineguard.server.app import create_app
    cfg = _config(tmp_path, db_backend)
    since = utcnow() - dt.timedelta(seconds=1)
    with TestClient(create_app(cfg, loader=FakeInspector.load)):
        pass
    with TestClient(create_app(cfg, loader=FakeInspector.load, process=lambda: "serve-ray replica 7")):
        pass
    db = Database(cfg.database_url, schema=cfg.db_schema)
    try:
        events = handover.stops_and_starts(db, since, utcnow() + dt.timedelta(seconds=1))
    finally:
        db.dispose()
    started = sorted(e["process"].split(" on ")[0] for e in events if e["kind"] == "started")
    assert started == ["serve", "serve-ray replica 7"], events


@pytest.mark.one_database
def test_unknown_product_behind_serve_says_upload_not_start_with_model(tmp_path, db_backend):
    cfg = _config(tmp_path, db_backend)
    keys = _keys(cfg)
    with _replica(cfg, "0") as c:
        r = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(60, seed=1), "image/png")},
                   data={"part_id": "p-1", "line": "L1", "station": "S1", "product": "cell"},
                   headers={"X-API-Key": keys["operator"]})
    assert r.status_code == 404, r.text
    said = r.json()["error"]["message"]
    assert "unknown product 'cell'" in said and "POST /api/v1/models" in said and "Models page" in said
    assert "--model" not in said.replace("takes no --model", ""), said
