"""The REST API against a real uvicorn process: endpoints, auth, idempotency, bad input."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from .conftest import ServerProc, fake_model_bytes, make_keys, png_bytes, post_part


def _count(srv, key: str, **filters) -> int:
    with srv.client(key) as c:
        return len(c.get("/api/v1/inspections", params={"limit": 1000, **filters}).json()["items"])


def _stored_files(srv) -> int:
    return sum(1 for p in (srv.data_dir / "images").rglob("*") if p.is_file())


def test_health_docs_and_metrics(fake_server):
    with fake_server.client() as c:
        h = c.get("/health").json()
        assert h["status"] == "ok" and h["database"] == "sqlite"
        assert h["disk"]["min_free_gb"] == 2.0 and h["disk"]["images_deleted"] == {"OK": 0, "NG/REVIEW": 0}
        assert h["disk"]["store_sweep"]["every_h"] == 24 and h["backup"] is None     # no --backup-to
        assert any(m.startswith("cell/") for m in h["active_models"])
        assert c.get("/docs").status_code == 200
        spec = c.get("/openapi.json").json()
        assert "/api/v1/inspections" in spec["paths"]
        m = c.get("/metrics").text
        assert "lineguard_queue_depth" in m and 'lineguard_active_model_version{line="",' in m


def test_inspect_returns_result_links_and_stores_files(fake_server):
    with fake_server.client(fake_server.keys["operator"]) as c:
        r = post_part(c, png_bytes(200, seed=1), "part-ng-1", lot="LOT7", serial="SN1")
        assert r.status_code == 201, r.text
        d = r.json()
        assert d["created"] is True and d["verdict"] == "NG" and d["score"] > d["threshold"]
        assert d["lot"] == "LOT7" and d["serial"] == "SN1"
        assert d["model"]["registry_version"] == 1 and d["model"]["model_id"]
        assert d["regions"] and "station_model" in d["timings_ms"]
        for kind in ("image", "heatmap", "overlay"):
            got = c.get(d["links"][kind])
            assert got.status_code == 200 and got.headers["content-type"] == "image/png"
            assert got.content.startswith(b"\x89PNG")
        assert c.get(d["links"]["image"]).content == png_bytes(200, seed=1)
        ok = post_part(c, png_bytes(30, seed=2), "part-ok-1").json()
        assert ok["verdict"] == "OK" and ok["regions"] == []
        assert c.get(f"/api/v1/inspections/{ok['id']}").json()["part_id"] == "part-ok-1"
        assert c.get(f"/api/v1/inspections/{ok['id']}/overlay").status_code == 200


def test_resubmission_is_idempotent(fake_server):
    img = png_bytes(40, seed=3)
    with fake_server.client(fake_server.keys["operator"]) as c:
        first = post_part(c, img, "part-idem")
        assert first.status_code == 201
        before = c.get("/metrics").text
        again = post_part(c, img, "part-idem")
        assert again.status_code == 200 and again.json()["created"] is False
        assert again.json()["id"] == first.json()["id"]
        assert c.get("/metrics").text.count("lineguard_parts_total") == before.count("lineguard_parts_total")
        assert _count(fake_server, fake_server.keys["operator"], part_id="part-idem") == 1
        # the same image under another part id is another part
        other = post_part(c, img, "part-idem-2")
        assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_write_endpoints_need_a_key_with_the_right_role(fake_server):
    keys = fake_server.keys
    with fake_server.client() as anon:
        r = post_part(anon, png_bytes(50, seed=4), "no-key")
        assert r.status_code == 401 and "X-API-Key" in r.json()["error"]["message"]
        assert anon.post("/api/v1/inspections/1/review", json={"label": "good"}).status_code == 401
        assert anon.post("/api/v1/models/cell/rollback", json={}).status_code == 401
    with fake_server.client("lg_deadbeef_notakey") as bad:
        assert post_part(bad, png_bytes(50, seed=4), "bad-key").status_code == 401
    with fake_server.client(keys["operator"]) as op:
        r = op.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes())}, data={"product": "x"})
        assert r.status_code == 403 and "engineer" in r.json()["error"]["message"]
        assert op.post("/api/v1/keys", json={"role": "operator"}).status_code == 403
    import httpx
    with httpx.Client(base_url=fake_server.url, headers={"Authorization": f"Bearer {keys['operator']}"}) as c:
        assert post_part(c, png_bytes(50, seed=5), "bearer").status_code == 201
    with fake_server.client(keys["admin"]) as admin:
        new = admin.post("/api/v1/keys", json={"role": "operator", "name": "line-3"}).json()
        assert new["key"].startswith("lg_")
        listed = admin.get("/api/v1/keys").json()["items"]
        assert all("key" not in k for k in listed) and any(k["name"] == "line-3" for k in listed)
        # named as the lists name it, so the page can say which key it made
        assert new["prefix"] == next(k["prefix"] for k in listed if k["id"] == new["id"]) and new["key"].startswith(
            f"lg_{new['prefix']}_")
        with fake_server.client(new["key"]) as c:
            assert post_part(c, png_bytes(50, seed=6), "new-key").status_code == 201
        assert admin.delete(f"/api/v1/keys/{new['id']}").status_code == 200
        with fake_server.client(new["key"]) as c:
            assert post_part(c, png_bytes(50, seed=7), "revoked").status_code == 401
    # keys are stored hashed: the clear key is nowhere in the database file
    db_bytes = b"".join(p.read_bytes() for p in fake_server.data_dir.glob("lineguard.db*"))
    assert keys["operator"].encode() not in db_bytes


@pytest.mark.parametrize("case", ["not_image", "corrupt", "oversize", "empty", "missing_field",
                                  "unknown_product", "no_active_model", "bad_field"])
def test_bad_uploads_are_refused_and_nothing_is_stored(fake_server, case):
    before_rows, before_files = _count(fake_server, fake_server.keys["operator"]), _stored_files(fake_server)
    good = png_bytes(50, seed=8)
    with fake_server.client(fake_server.keys["operator"]) as c:
        if case == "not_image":
            r = post_part(c, b"%PDF-1.4 definitely not a picture" * 10, "bad-1")
            want = 415
        elif case == "corrupt":
            r = post_part(c, good[: len(good) // 2], "bad-2")
            want = 422
        elif case == "oversize":
            r = post_part(c, b"\x89PNG\r\n\x1a\n" + b"\0" * (1024 * 1024 + 10), "bad-3")  # limit 1 MB
            want = 413
        elif case == "empty":
            r = post_part(c, b"", "bad-4")
            want = 400
        elif case == "missing_field":
            r = c.post("/api/v1/inspections", files={"image": ("p.png", good)}, data={"part_id": "bad-5"})
            want = 422
        elif case == "unknown_product":
            r = post_part(c, good, "bad-6", product="no-such-product")
            want = 404
            assert "upload" in r.json()["error"]["message"].lower()
        elif case == "no_active_model":
            with fake_server.client(fake_server.keys["engineer"]) as e:
                e.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes())},
                       data={"product": "inactive-product"})
            r = post_part(c, good, "bad-7", product="inactive-product")
            want = 404
            assert "activate" in r.json()["error"]["message"]
        else:
            r = post_part(c, good, "   ")
            want = 422   # the schema says a part id is not blank, and the server agrees
    assert r.status_code == want, r.text
    err = r.json()["error"]
    assert err["code"] and err["message"]
    assert _count(fake_server, fake_server.keys["operator"]) == before_rows
    assert _stored_files(fake_server) == before_files


def test_list_filters_and_cursor_pagination(fake_server):
    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    with fake_server.client(fake_server.keys["operator"]) as c:
        for i in range(7):
            assert post_part(c, png_bytes(20 + i, seed=100 + i), f"page-{i}", line="L9", station="S9").status_code == 201
        post_part(c, png_bytes(220, seed=200), "page-ng", line="L9", station="S9")
        seen, cursor = [], None
        while True:
            params = {"line": "L9", "limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/api/v1/inspections", params=params).json()
            seen += [x["part_id"] for x in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 8 and len(set(seen)) == 8 and seen[0] == "page-ng"   # newest first
        ng = c.get("/api/v1/inspections", params={"line": "L9", "verdict": "NG"}).json()["items"]
        assert [x["part_id"] for x in ng] == ["page-ng"]
        # how many match, beside the first page (the gallery's "48 of N")
        first = c.get("/api/v1/inspections", params={"line": "L9", "limit": 3, "count": "true"}).json()
        assert (len(first["items"]), first["total"], first["total_capped"]) == (3, 8, False)
        assert c.get("/api/v1/inspections", params={"line": "L9", "verdict": "NG", "count": "true"}).json()[
            "total"] == 1
        assert c.get("/api/v1/inspections", params={"line": "L9"}).json()["total"] is None     # not asked: no count
        assert len(c.get("/api/v1/inspections", params={"line": "L9", "since": t0.isoformat()}).json()["items"]) == 8
        future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
        assert c.get("/api/v1/inspections", params={"line": "L9", "since": future}).json()["items"] == []
        assert c.get("/api/v1/inspections", params={"line": "L9", "until": t0.isoformat()}).json()["items"] == []
        assert c.get("/api/v1/inspections", params={"verdict": "maybe"}).status_code == 422
        assert c.get("/api/v1/inspections/999999").status_code == 404


def test_review(fake_server):
    with fake_server.client(fake_server.keys["operator"]) as c:
        rec = post_part(c, png_bytes(210, seed=300), "rev-1", line="LR").json()
        assert c.post(f"/api/v1/inspections/{rec['id']}/review", json={"label": "maybe"}).status_code == 422
        r = c.post(f"/api/v1/inspections/{rec['id']}/review", json={"label": "good", "note": "dust on lens"})
        assert r.status_code == 200
        rv = r.json()["review"]
        assert rv["reviewed"] and rv["label"] == "good" and rv["note"] == "dust on lens"
        assert rv["reviewer"].startswith("test-operator (key ")       # a key, told from a user of one name
        assert [x["id"] for x in c.get("/api/v1/inspections", params={"line": "LR", "reviewed": "true"}).json()["items"]] == [rec["id"]]
        assert c.get("/api/v1/inspections", params={"line": "LR", "reviewed": "false"}).json()["items"] == []
        assert c.post("/api/v1/inspections/999999/review", json={"label": "good"}).status_code == 404


def test_models_upload_activate_rollback_train(fake_server):
    eng = fake_server.keys["engineer"]
    with fake_server.client(eng) as e, fake_server.client(fake_server.keys["operator"]) as op:
        r = e.post("/api/v1/models", files={"file": ("junk.lgm", b"not a model")}, data={"product": "p2"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_model"
        for thr, ver in ((0.5, "a"), (0.1, "b")):
            assert e.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes(thr, ver))},
                          data={"product": "p2", "line": "L2"}).status_code == 201
        items = e.get("/api/v1/models", params={"product": "p2"}).json()["items"]
        assert [m["version"] for m in items] == [1, 2] and not any(m["active"] for m in items)
        assert e.post("/api/v1/models/p2/activate", json={"version": 1, "line": "L2"}).json()["active"]
        img = png_bytes(60, seed=400)   # score ~0.24: OK under v1 (0.5), NG under v2 (0.1)
        assert post_part(op, img, "m-1", product="p2", line="L2").json()["verdict"] == "OK"
        assert e.post("/api/v1/models/p2/activate", json={"version": 2, "line": "L2"}).status_code == 200
        r2 = post_part(op, img, "m-2", product="p2", line="L2").json()
        assert r2["verdict"] == "NG" and r2["model"]["registry_version"] == 2
        assert e.post("/api/v1/models/p2/rollback", json={"line": "L2"}).json()["version"] == 1
        assert post_part(op, img, "m-3", product="p2", line="L2").json()["model"]["registry_version"] == 1
        # the line-specific model is not used for another line
        assert post_part(op, img, "m-4", product="p2", line="L3").status_code == 404
        assert e.post("/api/v1/models/p2/activate", json={"version": 9, "line": "L2"}).status_code == 404
        m = e.get("/metrics").text
        assert 'lineguard_active_model_version{line="L2"' in m
        # train a new version from stored good parts (fake trainer), as a background job
        for i in range(10):
            post_part(op, png_bytes(30 + i, seed=500 + i), f"t-{i}", product="p3")
        r = e.post("/api/v1/models/p3/train", json={})       # nothing stored for p3 yet (no model: parts refused)
        assert r.status_code == 404 and "holds nothing of product 'p3'" in r.json()["error"]["message"], r.text
        e.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes(0.5, "seed"))},
               data={"product": "p3", "activate": "true"})
        for i in range(10):
            rec = post_part(op, png_bytes(30 + i, seed=500 + i), f"t-{i}", product="p3").json()
            # retraining learns only from parts a person confirmed good (or the audit sample)
            assert op.post(f"/api/v1/inspections/{rec['id']}/review", json={"label": "good"}).status_code == 200
        job = e.post("/api/v1/models/p3/train", json={"activate": True, "min_images": 5})
        assert job.status_code == 202, job.text
        jid = job.json()["id"]
        for _ in range(100):
            st = e.get(f"/api/v1/jobs/{jid}").json()
            if st["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert st["status"] == "done", st
        assert st["progress"] == 1.0 and st["result"]["version"] == 2 and st["result"]["images"] == 10
        active = [m for m in e.get("/api/v1/models", params={"product": "p3"}).json()["items"] if m["active"]]
        assert active[0]["version"] == 2


@pytest.mark.slow
def test_model_that_fails_to_load_answers_503(tmp_path):
    data = tmp_path / "data"
    keys = make_keys(data)
    srv = ServerProc(data).start()
    try:
        with srv.client(keys["engineer"]) as e:
            assert e.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes())},
                          data={"product": "cell", "activate": "true"}).status_code == 201
    finally:
        srv.stop()
    # the stored model file gets damaged while the station is down
    for f in (data / "models").rglob("*.lgm"):
        f.write_bytes(b'{"fake_lineguard_model": true, "broken": true}')
    srv = ServerProc(data).start()
    try:
        with srv.client(keys["operator"]) as c:
            r = post_part(c, png_bytes(50, seed=9), "p-503")
            assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
        assert _count(srv, keys["operator"]) == 0
    finally:
        srv.stop()


def test_review_verdict_through_the_api(fake_server):
    with fake_server.client(fake_server.keys["engineer"]) as c:
        r = c.post("/api/v1/models", files={"file": ("band.lgm", fake_model_bytes(0.5, "band-1", review_threshold=0.3))},
                   data={"product": "band", "activate": "true"})
        assert r.status_code == 201, r.text
        for pid, value in (("rv-ok", 30), ("rv-review", 100), ("rv-ng", 230)):
            r = post_part(c, png_bytes(value, seed=300 + value), pid, product="band", line="LR")
            assert r.status_code == 201, r.text
        assert r.json()["verdict"] == "NG"
        items = c.get("/api/v1/inspections", params={"line": "LR", "verdict": "REVIEW"}).json()["items"]
        assert [(x["part_id"], x["verdict"]) for x in items] == [("rv-review", "REVIEW")]
        assert items[0]["review_threshold"] == pytest.approx(0.3) and items[0]["threshold"] == 0.5
        assert c.get(f"/api/v1/inspections/{items[0]['id']}/overlay").status_code == 200
        assert 'lineguard_parts_total{line="LR",station="S1",verdict="REVIEW"} 1.0' in c.get("/metrics").text


def test_a_camera_frame_reaches_a_remote_station_as_the_png_an_in_process_one_would_keep(fake_server):
    # `lineguard camera --server URL`: the frame travels as its PNG, the same file (and
    # image_sha256) that a station in the camera's process stores for a kept frame
    import hashlib

    import numpy as np

    from lineguard.line.camera_frame import CameraFrame
    from lineguard.line.png import encode_frame
    from lineguard.line.sources import remote_submitter
    frame = np.repeat(np.full((40, 56), 210, np.uint8)[:, :, None], 3, axis=2)   # a mono camera, NG
    submit = remote_submitter(fake_server.url, fake_server.keys["operator"], "L1", "CAM1", "cell")
    d = submit(CameraFrame(frame), "remote-frame-1", "remote-frame-1.png")
    png = encode_frame(frame)
    assert d["verdict"] == "NG" and d["image_sha256"] == hashlib.sha256(png).hexdigest()
    with fake_server.client(fake_server.keys["operator"]) as c:
        assert c.get(d["links"]["image"]).content == png


def test_a_file_deleted_under_its_record_is_a_404_not_a_500(fake_server):
    # the disk keeper clears a record before deleting its files, but a reader may hold the
    # record from just before: it gets 404 with the reason
    with fake_server.client(fake_server.keys["operator"]) as c:
        d = post_part(c, png_bytes(200, seed=4242), "deleted-under-1").json()
        path = fake_server.data_dir / "images" / d["image_sha256"][:2] / d["image_sha256"][2:4]
        for f in path.glob(d["image_sha256"] + ".png"):
            f.unlink()
        r = c.get(d["links"]["image"])
        assert r.status_code == 404 and "make room on the disk" in r.json()["error"]["message"]
