"""kill -9 during load loses no inspection whose response was sent (SQLite and PostgreSQL)."""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from .conftest import PG_URL, ServerProc, fake_model_bytes, make_keys, pg_reachable, png_bytes, post_part


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill9_mid_stream_keeps_every_acknowledged_inspection(tmp_path, backend):
    extra, db, schema = [], None, None
    if backend == "postgresql":
        if not pg_reachable():
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
        db, schema = PG_URL, f"lg_kill_{uuid.uuid4().hex[:8]}"
        extra = ["--db", db, "--db-schema", schema]
    data = tmp_path / "data"
    keys = make_keys(data, db, schema)
    srv = ServerProc(data, extra=extra).start()
    try:
        with srv.client(keys["engineer"]) as e:
            assert e.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes())},
                          data={"product": "cell", "activate": "true"}).status_code == 201
        acked: dict[str, int] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def client(n: int) -> None:
            with srv.client(keys["operator"]) as c:
                i = 0
                while not stop.is_set():
                    pid = f"k{n}-{i}"
                    try:
                        r = post_part(c, png_bytes(40 + (i % 150), seed=n * 100000 + i), pid)
                    except httpx.HTTPError:
                        return   # the server died under this request: not acknowledged
                    if r.status_code == 201:
                        with lock:
                            acked[pid] = r.json()["id"]
                    i += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        while len(acked) < 40:
            time.sleep(0.02)
        srv.kill9()   # mid-stream: requests are in flight
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert len(acked) >= 40
        srv = ServerProc(data, extra=extra).start()
        with srv.client(keys["operator"]) as c:
            rows = []
            cursor = None
            while True:
                params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = c.get("/api/v1/inspections", params=params).json()
                rows += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
        stored = {r["part_id"]: r["id"] for r in rows}
        missing = {p for p in acked if stored.get(p) != acked[p]}
        assert not missing, f"{len(missing)} acknowledged inspections lost: {sorted(missing)[:5]}"
        # and the station keeps working after the crash
        with srv.client(keys["operator"]) as c:
            assert post_part(c, png_bytes(50, seed=999999), "after-crash").status_code == 201
    finally:
        srv.stop()
        if schema:
            from lineguard.line.db import Database
            d = Database(db, schema=schema)
            d.drop_schema()
            d.dispose()
